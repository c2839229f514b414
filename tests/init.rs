//! `mcp-credd init` (a starter config; a reference `.env` converted, its secret moved to
//! the secrets file), shell completions and the manual page, with the real binary.

mod common;

use common::*;

#[test]
fn init_writes_a_starter_that_loads_and_never_overwrites() {
    let sb = Sandbox::new();
    let r = sb.run(&["init"]);
    assert_eq!(r.code, 0, "{r:?}");
    let cfg = sb.config_path();
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.starts_with("# mcp-credd configuration"), "{text}");
    assert_eq!(mode(&cfg), 0o600);
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("no identities configured"), "{r:?}");
    let r = sb.run(&["init"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("--force"), "{r:?}");
}

#[test]
fn init_converts_a_reference_env_and_the_result_gets_the_token() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new();
    let gw = sb.home().join("gw");
    let oauth = gw.join("credentials-provider/oauth");
    std::fs::create_dir_all(&oauth).unwrap();
    std::fs::create_dir_all(gw.join("registry/servers")).unwrap();
    std::fs::write(
        oauth.join(".env"),
        format!(
            "REGISTRY_URL=https://gw.example.com\nAWS_REGION=us-east-1\nINGRESS_OAUTH_USER_POOL_ID=us-east-1_AbC123\nINGRESS_OAUTH_CLIENT_ID=m2m-client\nINGRESS_OAUTH_CLIENT_SECRET=m2m-secret # console\nINGRESS_OAUTH_TOKEN_URL={}\n",
            idp.token_url()
        ),
    )
    .unwrap();
    std::fs::write(gw.join("registry/servers/currenttime.json"), r#"{"server_name":"Current Time","path":"/currenttime/","proxy_pass_url":"http://x:8000/","supported_transports":["streamable-http"]}"#).unwrap();

    let env_file = oauth.join(".env");
    let r = sb.run(&["init", "--from-env", env_file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let text = std::fs::read_to_string(sb.config_path()).unwrap();
    assert!(!text.contains("m2m-secret"), "the secret stays out: {text}");
    let secrets = sb.home().join(".config/mcp-credd/env");
    assert_eq!(mode(&secrets), 0o600);
    assert!(
        std::fs::read_to_string(&secrets)
            .unwrap()
            .contains("INGRESS_OAUTH_CLIENT_SECRET=\"m2m-secret\""),
    );

    // The converted config, from anywhere, with the secret from the secrets file only.
    let r = sb.run(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    let tok = sb.read_json(&sb.tokens().join("ingress.json"));
    let vscode = sb.read_json(&sb.home().join(".config/Code/User/mcp.json"));
    assert_eq!(
        vscode["servers"]["currenttime"]["headers"]["X-Authorization"],
        format!("Bearer {}", tok["access_token"].as_str().unwrap())
    );

    // What a config file cannot express exactly is refused, with the way to keep the .env.
    std::fs::write(&env_file, "KEYCLOAK_URL=https://kc.example.com\n").unwrap();
    let r = sb.run(&["init", "--force", "--from-env", env_file.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("--env-file"), "{r:?}");
}

#[test]
fn completions_and_man_page_come_from_the_command_definition() {
    let sb = Sandbox::new();
    let r = sb.run(&["completions", "bash"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("install-service") && r.stdout.contains("uninstall-service"));
    let script = sb.home().join("mcp-credd.bash");
    std::fs::write(&script, &r.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "bash -n: {check:?}");
    for shell in ["zsh", "fish"] {
        let r = sb.run(&["completions", shell]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("install-service"), "{shell}: {r:?}");
    }
    assert_ne!(sb.run(&["completions", "tcsh"]).code, 0);
    let r = sb.run(&["man"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(".TH mcp-credd"), "{}", r.stdout);
    assert!(r.stdout.contains("install\\-service"), "{}", r.stdout);
}
