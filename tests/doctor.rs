//! `mcp-credd doctor` on a healthy setup and on broken ones.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

#[test]
fn doctor_finds_what_is_wrong_and_says_what_to_do() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "gateway_url: https://gw.example.com
ingress:
  kind: oidc_m2m
  issuer: {}
  client_id: m2m-client
  client_secret: {{env: SEC}}
  scopes: [mcp-servers-unrestricted/read]
servers:
  - name: currenttime
",
        idp.base()
    ));
    let env = [("SEC", "m2m-secret")];
    assert_eq!(sb.run_env(&[], &env).code, 0);
    let r = sb.run_env(&["doctor"], &env);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("ok    token ingress: claims fit the configuration"),
        "{r:?}"
    );
    assert!(r.stdout.contains("lists token_endpoint"), "{r:?}");
    assert!(r.stdout.contains("clocks agree"), "{r:?}");
    assert!(!r.stdout.contains("FAIL"), "{r:?}");

    // A token file others can read, a broken editor file, a provider that is gone.
    let f = sb.tokens().join("ingress.json");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let vscode = sb.home().join(".config/Code/User/mcp.json");
    std::fs::write(&vscode, "{ \"servers\": { oops").unwrap();
    drop(idp);
    let r = sb.run_env(&["doctor", "--json"], &env);
    assert_eq!(r.code, 1, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let fails: Vec<&serde_json::Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["level"] == "fail")
        .collect();
    let has = |check: &str, text: &str| {
        fails.iter().any(|x| {
            x["check"].as_str().unwrap().starts_with(check)
                && x["message"].as_str().unwrap().contains(text)
        })
    };
    assert!(has("permissions", "readable by other users"), "{fails:?}");
    assert!(
        fails.iter().any(|x| x["hint"]
            .as_str()
            .is_some_and(|h| h.starts_with("chmod 600"))),
        "{fails:?}"
    );
    assert!(has("editor", "does not parse"), "{fails:?}");
    assert!(has("reach ingress", "could not connect"), "{fails:?}");
}
