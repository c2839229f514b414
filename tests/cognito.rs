//! Cognito service accounts (`cognito_password`) against moto, the Cognito API on
//! 127.0.0.1: sign-in with SECRET_HASH, refresh, sign-in again after revocation, errors,
//! identities bound to servers, and the COGNITO_* variables.

mod common;

use common::*;

const PASSWORD: &str = "Svc-Passw0rd!";

fn config(m: &Moto, user: &str, password_var: &str) -> String {
    format!(
        "gateway_url: https://gw.example.com
ingress:
  kind: cognito_password
  region: us-east-1
  user_pool_id: {pool}
  client_id: {cid}
  client_secret: {{env: COGNITO_CLIENT_SECRET}}
  username: {user}
  password: {{env: {password_var}}}
  endpoint_url: {ep}
http:
  attempts: 2
  initial_backoff: 100ms
servers:
  - name: currenttime
",
        pool = m.pool_id,
        cid = m.client_id,
        ep = m.endpoint
    )
}

fn env<'a>(m: &'a Moto, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("COGNITO_CLIENT_SECRET", m.client_secret.as_str()),
        ("SVC_PASSWORD", password),
    ]
}

#[test]
fn signs_in_refreshes_and_signs_in_again_after_revocation() {
    let m = Moto::start();
    let sb = Sandbox::new();
    sb.write_config(&config(&m, "svc-account", "SVC_PASSWORD"));
    let r = sb.run_env(&["-v"], &env(&m, PASSWORD));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("signed in with the password"), "{r:?}");
    let file = sb.tokens().join("ingress.json");
    assert_eq!(mode(&file), 0o600);
    let t1 = sb.read_json(&file);
    assert_eq!(t1["provider"], "cognito_password");
    assert_eq!(t1["user_pool_id"], m.pool_id.as_str());
    assert_eq!(t1["client_id"], m.client_id.as_str());
    assert_eq!(
        jwt_claims(t1["access_token"].as_str().unwrap())["username"],
        "svc-account"
    );
    assert!(t1["id_token"].is_string());
    let rt1 = t1["refresh_token"].as_str().unwrap().to_string();
    let left = t1["expires_at"].as_f64().unwrap() - now_secs();
    assert!((3590.0..=3600.0).contains(&left), "{left}");
    let roo = sb.read_json(&sb.tokens().join("mcp.json"));
    assert_eq!(
        roo["mcpServers"]["currenttime"]["headers"]["X-Authorization"],
        format!("Bearer {}", t1["access_token"].as_str().unwrap())
    );
    assert_eq!(
        roo["mcpServers"]["currenttime"]["headers"]["X-User-Pool-Id"],
        m.pool_id.as_str()
    );

    // Refresh: moto checks SECRET_HASH (computed from the token's username) on refresh.
    let r = sb.run_env(&["-v", "--force"], &env(&m, PASSWORD));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("refreshed with the stored refresh token"),
        "{r:?}"
    );
    let t2 = sb.read_json(&file);
    assert_ne!(t2["access_token"], t1["access_token"]);
    assert_eq!(
        t2["refresh_token"].as_str().unwrap(),
        rt1,
        "REFRESH_TOKEN_AUTH keeps the refresh token"
    );

    // Revoked refresh token: sign in again with the password, no human needed.
    m.sign_out("svc-account");
    let r = sb.run_env(&["-v", "--force"], &env(&m, PASSWORD));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("refresh refused; signing in again"),
        "{r:?}"
    );
    assert!(r.stderr.contains("signed in with the password"), "{r:?}");
    let t3 = sb.read_json(&file);
    assert_ne!(t3["refresh_token"].as_str().unwrap(), rt1);

    // An unknown refresh token (say, from another pool) is handled the same way.
    sb.edit_json(&file, |t| {
        t["refresh_token"] = serde_json::json!("not-a-refresh-token")
    });
    let r = sb.run_env(&["-v", "--force"], &env(&m, PASSWORD));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("signing in again"), "{r:?}");
}

#[test]
fn errors_are_clear_and_keep_the_old_token() {
    let m = Moto::start();
    let sb = Sandbox::new();
    sb.write_config(&config(&m, "svc-account", "SVC_PASSWORD"));
    assert_eq!(sb.run_env(&[], &env(&m, PASSWORD)).code, 0);
    let before = std::fs::read(sb.tokens().join("ingress.json")).unwrap();

    // Wrong password (with no refresh token to fall back on).
    let mut t = sb.read_json(&sb.tokens().join("ingress.json"));
    t.as_object_mut().unwrap().remove("refresh_token");
    let without_rt = serde_json::to_vec(&t).unwrap();
    std::fs::write(sb.tokens().join("ingress.json"), &without_rt).unwrap();
    let r = sb.run_env(&["--force", "-vvv"], &env(&m, "Wrong-Passw0rd!"));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("Cognito sign-in for `svc-account` failed: Incorrect username or password."),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("check username, password and client_secret"),
        "{r:?}"
    );
    assert!(
        !r.all().contains("Wrong-Passw0rd!") && !r.all().contains(&m.client_secret),
        "secret leaked: {r:?}"
    );
    assert_eq!(
        std::fs::read(sb.tokens().join("ingress.json")).unwrap(),
        without_rt
    );
    drop(before);

    // Unknown user.
    let sb2 = Sandbox::new();
    sb2.write_config(&config(&m, "nobody", "SVC_PASSWORD"));
    let r = sb2.run_env(&[], &env(&m, PASSWORD));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("User does not exist.") && r.stderr.contains("case-sensitive"),
        "{r:?}"
    );
    assert!(!sb2.tokens().join("ingress.json").exists());

    // A user who still has a temporary password: a challenge a daemon cannot answer.
    let sb3 = Sandbox::new();
    sb3.write_config(&config(&m, "temp-user", "SVC_PASSWORD"));
    let r = sb3.run_env(&[], &env(&m, "Temp-Passw0rd!"));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("NEW_PASSWORD_REQUIRED") && r.stderr.contains("--permanent"),
        "{r:?}"
    );
    let s = sb3.run_env(&["status", "--json"], &env(&m, PASSWORD));
    let j: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(j["identities"][0]["state"], "error");
    assert!(
        j["identities"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("NEW_PASSWORD_REQUIRED")
    );
}

#[test]
fn a_named_identity_authenticates_its_own_server() {
    let m = Moto::start();
    let idp = Idp::start(&[]);
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "gateway_url: https://gw.example.com
{ingress}identities:
  svc:
    kind: cognito_password
    region: us-east-1
    client_id: {cid}
    client_secret: {{env: COGNITO_CLIENT_SECRET}}
    username: svc-account
    password: {{env: SVC_PASSWORD}}
    bearer: id_token
servers:
  - name: currenttime
  - name: direct
    url: https://mcp.example.com/mcp
    auth: {{identity: svc}}
  - name: both
    auth: {{identity: svc, header: X-Service-Token, scheme: '', gateway: true}}
",
        ingress = cognito_m2m_ingress(&idp.base(), "m2m-secret"),
        cid = m.client_id
    ));
    let mut e = env(&m, PASSWORD);
    e.push((
        "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
        m.endpoint.as_str(),
    ));
    let r = sb.run_env(&[], &e);
    assert_eq!(r.code, 0, "{r:?}");
    let svc = sb.read_json(&sb.tokens().join("svc.json"));
    let id_token = svc["id_token"].as_str().unwrap();
    let ingress = sb.read_json(&sb.tokens().join("ingress.json"));
    let roo = sb.read_json(&sb.tokens().join("mcp.json"));
    let direct = &roo["mcpServers"]["direct"]["headers"];
    assert_eq!(
        direct,
        &serde_json::json!({"Authorization": format!("Bearer {id_token}")})
    );
    let both = &roo["mcpServers"]["both"]["headers"];
    assert_eq!(both["X-Service-Token"], id_token);
    assert_eq!(
        both["X-Authorization"],
        format!("Bearer {}", ingress["access_token"].as_str().unwrap())
    );
    assert!(
        roo["mcpServers"]["currenttime"]["headers"]
            .get("Authorization")
            .is_none()
    );
    let s = sb.run_env(&["status", "--json"], &e);
    let j: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    let names: Vec<&str> = j["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ingress", "svc"]);
}

#[test]
fn the_cognito_variables_configure_a_service_account() {
    let m = Moto::start();
    let sb = Sandbox::new();
    let r = sb.run_env(
        &[],
        &[
            ("REGISTRY_URL", "https://gw.example.com"),
            ("COGNITO_USER_POOL_REGION", "us-east-1"),
            ("COGNITO_CLIENT_ID", &m.client_id),
            ("COGNITO_CLIENT_SECRET", &m.client_secret),
            ("COGNITO_USERNAME", "svc-account"),
            ("COGNITO_PASSWORD", PASSWORD),
            ("AWS_ENDPOINT_URL", &m.endpoint),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let t = sb.read_json(&sb.tokens().join("ingress.json"));
    assert_eq!(t["provider"], "cognito_password");
    assert!(t["refresh_token"].is_string());
}

/// The Cognito client reads the AWS configuration as AWS tools do (aws-config): with no
/// `endpoint_url` in the config, `AWS_PROFILE`'s `endpoint_url` names the endpoint.
/// An endpoint from there obeys the https-except-loopback rule like any other.
#[test]
fn the_aws_profile_names_the_cognito_endpoint() {
    let m = Moto::start();
    let sb = Sandbox::new();
    let text = config(&m, "svc-account", "SVC_PASSWORD")
        .replace(&format!("  endpoint_url: {}\n", m.endpoint), "");
    assert!(!text.contains("endpoint_url"), "{text}");
    sb.write_config(&text);
    std::fs::create_dir_all(sb.home().join(".aws")).unwrap();
    std::fs::write(
        sb.home().join(".aws/config"),
        format!(
            "[profile ci]\nendpoint_url = {}\n\n[profile elsewhere]\nendpoint_url = http://cognito.example.com\n",
            m.endpoint
        ),
    )
    .unwrap();
    let mut e = env(&m, PASSWORD);
    e.push(("AWS_PROFILE", "ci"));
    let r = sb.run_env(&[], &e);
    assert_eq!(r.code, 0, "{r:?}");
    let t = sb.read_json(&sb.tokens().join("ingress.json"));
    assert_eq!(t["provider"], "cognito_password");
    assert!(t["refresh_token"].is_string(), "{t}");

    // A profile whose endpoint is plain http off this machine: refused, the token kept.
    let before = std::fs::read(sb.tokens().join("ingress.json")).unwrap();
    let mut e = env(&m, PASSWORD);
    e.push(("AWS_PROFILE", "elsewhere"));
    let r = sb.run_env(&["--force"], &e);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("the Cognito endpoint from the AWS configuration")
            && r.stderr
                .contains("`http://cognito.example.com` uses plain http"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read(sb.tokens().join("ingress.json")).unwrap(),
        before
    );
}
