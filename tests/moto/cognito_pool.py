"""Sets up and pokes a Cognito user pool on a local moto server, for mcp-credd's tests.

usage:
  cognito_pool.py setup ENDPOINT          -> prints JSON {pool_id, client_id, client_secret}
  cognito_pool.py signout ENDPOINT POOL USER   (revokes the user's refresh tokens)

Users created by `setup`: `svc-account` (permanent password "Svc-Passw0rd!") and
`temp-user` (still FORCE_CHANGE_PASSWORD, temporary password "Temp-Passw0rd!").
"""
import json
import sys

import boto3


def client(endpoint):
    # moto accepts any credentials; real ones are never used here.
    return boto3.client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def setup(endpoint):
    c = client(endpoint)
    pool = c.create_user_pool(PoolName="mcp-credd-test")["UserPool"]["Id"]
    app = c.create_user_pool_client(
        UserPoolId=pool,
        ClientName="mcp-credd",
        GenerateSecret=True,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    for user, permanent in (("svc-account", True), ("temp-user", False)):
        c.admin_create_user(
            UserPoolId=pool,
            Username=user,
            TemporaryPassword="Temp-Passw0rd!",
            MessageAction="SUPPRESS",
        )
        if permanent:
            c.admin_set_user_password(
                UserPoolId=pool, Username=user, Password="Svc-Passw0rd!", Permanent=True
            )
    print(json.dumps({"pool_id": pool, "client_id": app["ClientId"], "client_secret": app["ClientSecret"]}))


def signout(endpoint, pool, user):
    client(endpoint).admin_user_global_sign_out(UserPoolId=pool, Username=user)


if __name__ == "__main__":
    cmd, endpoint, *rest = sys.argv[1:]
    {"setup": setup, "signout": signout}[cmd](endpoint, *rest)
