"""An MCP server (official MCP Python SDK) that is an OAuth protected resource, for tests.

It answers 401 with `WWW-Authenticate: Bearer ... resource_metadata="..."` and serves its
protected resource metadata (RFC 9728) at /.well-known/oauth-protected-resource/mcp. Its
token verifier accepts only a JWT signed by a key of the authorization server's JWKS, with
the right issuer, `aud` = this server's URL, and the required scope (else the SDK answers
403 insufficient_scope).

Usage: server.py --issuer URL [--port N] [--scope S] [--no-metadata]
Prints exactly one line, `READY <port>`, on stdout once listening; logs go to stderr.
With --no-metadata it is a plain endpoint that answers 401 without any metadata.
"""

import argparse
import asyncio
import json
import socket
import sys

import jwt
import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer


class JwtVerifier:
    """Checks signature (the issuer's JWKS), iss, aud = the resource, expiry."""

    def __init__(self, issuer: str, resource: str):
        self.issuer = issuer
        self.resource = resource
        # No key cache: an authorization server restarted on the same port (tests do that)
        # signs with a new key at once.
        self.jwks = jwt.PyJWKClient(f"{issuer}/jwks", cache_keys=False, cache_jwk_set=False)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256", "ES256", "PS256"],
                issuer=self.issuer,
                audience=self.resource,
                options={"require": ["exp", "iss", "aud"]},
            )
        except Exception as e:  # any failure: the token is not good here
            print(f"[mcp-server] token refused: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            return None
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id", "")),
            scopes=str(claims.get("scope", "")).split(),
            expires_at=claims.get("exp"),
            resource=self.resource,
            subject=claims.get("sub"),
        )


def free_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


def bare_app():
    """401 for everything, without resource metadata: a server mcp-credd cannot discover."""

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = json.dumps({"error": "invalid_token"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--issuer")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--scope", default="mcp:tools")
    p.add_argument("--no-metadata", action="store_true")
    args = p.parse_args()

    sock = free_socket() if args.port == 0 else None
    port = sock.getsockname()[1] if sock else args.port
    resource = f"http://127.0.0.1:{port}/mcp"

    if args.no_metadata:
        app = bare_app()
    else:
        scopes = [s for s in args.scope.split() if s]
        mcp = MCPServer(
            "mcp-credd test server",
            token_verifier=JwtVerifier(args.issuer, resource),
            auth=AuthSettings(
                issuer_url=args.issuer,
                resource_server_url=resource,
                required_scopes=scopes,
                validate_token_resource=True,
            ),
        )

        @mcp.tool()
        def add(a: int, b: int) -> int:
            """Adds two numbers."""
            return a + b

        app = mcp.streamable_http_app()

    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)

    async def run() -> None:
        if sock is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        else:
            s = sock
        task = asyncio.create_task(server.serve(sockets=[s]))
        while not server.started:
            if task.done():
                task.result()
                return
            await asyncio.sleep(0.05)
        print(f"READY {port}", flush=True)
        await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
