//! `mcp-credd doctor` on a healthy setup and on broken ones.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::Value;

/// An `oidc_m2m` ingress with the secret `$SEC`, found through `endpoint` (its `issuer` or
/// `token_url` line, and any more keys of the ingress).
fn config(endpoint: &str) -> String {
    format!(
        "gateway_url: https://gw.example.com
ingress:
  kind: oidc_m2m
  {endpoint}
  client_id: m2m-client
  client_secret: {{env: SEC}}
servers:
  - name: currenttime
"
    )
}

/// The findings of `doctor --json` at level `fail`.
fn fails(r: &Run) -> Vec<Value> {
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|_| panic!("{r:?}"));
    v.as_array()
        .unwrap()
        .iter()
        .filter(|x| x["level"] == "fail")
        .cloned()
        .collect()
}

/// Whether one of `fails` is of a check named `check` (exactly, or as its start with
/// `prefix`) and says `text`.
fn has(fails: &[Value], check: &str, prefix: bool, text: &str) -> bool {
    fails.iter().any(|x| {
        let c = x["check"].as_str().unwrap();
        (c == check || (prefix && c.starts_with(check)))
            && x["message"].as_str().unwrap().contains(text)
    })
}

#[test]
fn doctor_finds_what_is_wrong_and_says_what_to_do() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new();
    sb.write_config(&config(&format!(
        "issuer: {}\n  scopes: [mcp-servers-unrestricted/read]",
        idp.base()
    )));
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
    let fails = fails(&r);
    let found = |check: &str, text: &str| has(&fails, check, true, text);
    assert!(found("permissions", "readable by other users"), "{fails:?}");
    assert!(
        fails.iter().any(|x| x["hint"]
            .as_str()
            .is_some_and(|h| h.starts_with("chmod 600"))),
        "{fails:?}"
    );
    assert!(found("editor", "does not parse"), "{fails:?}");
    assert!(found("reach ingress", "could not connect"), "{fails:?}");
}

#[test]
fn doctor_reports_a_missing_or_wrong_secret_and_a_wrong_endpoint() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new();
    let config = |token_url: &str| config(&format!("token_url: {token_url}"));
    sb.write_config(&config(&idp.token_url()));

    // No secret anywhere: a finding naming the variable, not a configuration error.
    let r = sb.run(&["doctor", "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let f = fails(&r);
    assert!(has(&f, "secret", false, "`SEC`"), "{f:?}");

    // A wrong secret: the token endpoint refuses it, and doctor says so.
    let r = sb.run_env(&["doctor", "--json"], &[("SEC", "wrong")]);
    assert_eq!(r.code, 1, "{r:?}");
    let f = fails(&r);
    assert!(has(&f, "credentials ingress", false, ""), "{f:?}");
    assert!(!r.all().contains("wrong\""), "the secret is not printed");

    // The right one, from the secrets file: all ok.
    sb.write_secrets("SEC=m2m-secret # from the console\n");
    let r = sb.run(&["doctor", "--json"]);
    assert!(fails(&r).is_empty(), "{r:?}");
    assert!(r.stdout.contains("issues a token"), "{r:?}");

    // A token endpoint that is not there (HTTP 404) is a failure, not "answers".
    sb.write_config(&config(&format!("{}/nowhere/token", idp.base())));
    let r = sb.run(&["doctor", "--json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let f = fails(&r);
    assert!(has(&f, "reach ingress", false, "HTTP 404"), "{f:?}");
}

#[test]
fn doctor_flags_a_token_from_an_issuer_the_config_no_longer_names() {
    let a = Idp::start(&[]);
    let b = Idp::start(&[]);
    let sb = Sandbox::new();
    let config = |issuer: &str| config(&format!("issuer: {issuer}"));
    let env = [("SEC", "m2m-secret")];
    sb.write_config(&config(&a.base()));
    assert_eq!(sb.run_env(&[], &env).code, 0);
    sb.write_config(&config(&b.base()));
    let r = sb.run_env(&["doctor", "--json"], &env);
    assert_eq!(r.code, 1, "{r:?}");
    let f = fails(&r);
    assert!(
        has(
            &f,
            "token ingress",
            false,
            &format!("issued by `{}", a.base())
        ),
        "{f:#?}"
    );
}
