//! Secrets never reach output or logs: every command, at the most verbose log level (our
//! crate and every dependency at trace), with known secret values; nor the command lines of
//! the processes mcp-credd starts.

mod common;

use common::*;

const CLIENT_SECRET: &str = "m2m-secret";

#[test]
fn no_command_prints_a_secret_at_trace_level() {
    let port = closed_port();
    let idp = Idp::with_web_client(port, &[]);
    let sb = Sandbox::new();
    let hook_out = sb.home().join("hook.txt");
    sb.write_config(&format!(
        "gateway_url: https://gw.example.com
{ingress}providers:
  local:
    display_name: Local
    authorize_url: {base}/oauth2/authorize
    token_url: {base}/oauth2/token
    scopes: [openid, offline_access, profile]
    pkce: true
    token_auth: basic
    refresh: rotating
egress:
  - name: local
    provider: local
    client_id: mcp-web
    client_secret: {{env: EGRESS_SECRET}}
    redirect_uri: http://127.0.0.1:{port}/callback
    server: tools
servers:
  - name: currenttime
on_reauth_required: [sh, -c, 'echo \"$0 $@\" > {hook}; cat /proc/$$/cmdline >> {hook}; env >> {hook}', hook-arg]
",
        ingress = cognito_m2m_ingress(&idp.base(), "{env: INGRESS_SECRET}"),
        base = idp.base(),
        hook = hook_out.display()
    ));
    let env = [
        ("INGRESS_SECRET", CLIENT_SECRET),
        ("EGRESS_SECRET", "mcp-web-secret"),
        ("MCP_CREDD_LOG", "trace"),
        ("RUST_LOG", "trace"),
    ];
    let mut outputs = Vec::new();
    // One-shot and status before and after a login.
    outputs.push(sb.run_env(&["-vvv", "--force", "--ingress-only"], &env));
    let mut c = sb.command(&["-vvv", "login", "local", "--no-browser", "--timeout", "30"]);
    for (k, v) in env {
        c.env(k, v);
    }
    // Drive the login from the URL it prints, then collect everything.
    let l = Login::at(c, &idp.base());
    node_ok("drive-login.mjs", &[&l.url]);
    let out = l.finish(std::time::Duration::from_secs(30));
    assert_eq!(out.code, 0, "{out:?}");
    outputs.push(out);
    outputs.push(sb.run_env(&["-vvv", "--force"], &env));
    outputs.push(sb.run_env(&["-vvv", "--provider", "local", "--force"], &env));
    outputs.push(sb.run_env(&["-vvv", "status"], &env));
    outputs.push(sb.run_env(&["-vvv", "status", "--json"], &env));
    outputs.push(sb.run_env(&["-vvv", "render"], &env));
    // A revoked grant runs the hook, whose argv and environment we inspect below.
    let egress_file = sb.tokens().join("local-tools-egress.json");
    sb.edit_json(&egress_file, |t| {
        t["refresh_token"] = serde_json::json!("not-the-refresh-token");
        t["expires_at"] = serde_json::json!(now_secs() - 10.0);
        t["obtained_at"] = serde_json::json!(now_secs() - 3610.0);
    });
    // The daemon for a moment: first pass (refresh fails, hook runs), then SIGTERM.
    let mut daemon = Daemon::start(&sb, &["-vvv", "daemon"], &env);
    wait_for(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(50),
        || hook_out.exists(),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    daemon.stop();
    outputs.push(Run {
        code: 0,
        stdout: daemon.out_text(),
        stderr: daemon.log_text(),
    });
    outputs.push(sb.run_env(&["-vvv", "headers", "currenttime"], &env));

    // The secrets: configured ones and every token that was issued.
    let mut secrets = vec![CLIENT_SECRET.to_string(), "mcp-web-secret".to_string()];
    for f in ["ingress.json", "local-tools-egress.json"] {
        let v = sb.read_json(&sb.tokens().join(f));
        for k in ["access_token", "refresh_token", "id_token"] {
            if let Some(s) = v[k]
                .as_str()
                .filter(|s| s.len() > 8 && *s != "not-the-refresh-token")
            {
                secrets.push(s.to_string());
            }
        }
    }
    assert!(secrets.len() >= 4, "{secrets:?}");
    let headers_out = outputs.pop().unwrap();
    // The log level really was trace, dependencies included (hyper's connection logs).
    assert!(
        outputs[0].stderr.contains("TRACE") && outputs[0].stderr.contains("Http::connect"),
        "{:?}",
        outputs[0]
    );
    for (i, o) in outputs.iter().enumerate() {
        for s in &secrets {
            assert!(
                !o.all().contains(s.as_str()),
                "run {i} printed a secret ({}...):\n{o:?}",
                &s[..6]
            );
        }
    }
    // `headers` prints a token on purpose (it is what headersHelper asks for) and nothing
    // else: its stderr stays clean.
    for s in &secrets {
        assert!(!headers_out.stderr.contains(s.as_str()));
    }
    // The hook ran with the details in its environment, and no secret on its command line.
    let hook = std::fs::read_to_string(&hook_out).expect("the on_reauth_required hook ran");
    assert!(
        hook.contains("MCP_CREDD_EVENT=reauth_required")
            && hook.contains("MCP_CREDD_IDENTITY=local"),
        "{hook}"
    );
    let argv = hook.lines().take(2).collect::<Vec<_>>().join("\n");
    for s in &secrets {
        assert!(
            !argv.contains(s.as_str()),
            "a secret in the hook's argv: {argv}"
        );
    }
}

/// Credentials and queries in endpoint URLs (`AWS_ENDPOINT_URL=http://user:pass@host`, a
/// token URL with `?api_key=`) never reach a log line; errors name the URL without them.
#[test]
fn credentials_in_endpoint_urls_stay_out_of_logs() {
    let sb = Sandbox::new();
    sb.write_config(
        "gateway_url: https://gw.example.com
ingress:
  kind: cognito_password
  region: us-east-1
  user_pool_id: us-east-1_AbC123
  client_id: svc-client
  username: svc
  password: {env: SVC_PASSWORD}
http:
  attempts: 1
",
    );
    let run = |endpoint: &str| {
        sb.run_env(
            &["-vvv"],
            &[
                ("SVC_PASSWORD", "Svc-Passw0rd!"),
                ("AWS_ENDPOINT_URL", endpoint),
            ],
        )
    };
    // Refused when the config is read: the message names the URL without its secrets.
    let r = run("http://svc:pw-in-url@cognito.example.com/x?k=q-in-url");
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr
            .contains("`http://cognito.example.com/x?[redacted]` uses plain http"),
        "{r:?}"
    );
    assert!(
        !r.all().contains("pw-in-url") && !r.all().contains("q-in-url"),
        "{r:?}"
    );
    // Accepted (loopback): the debug line names scheme, host and port only.
    let port = closed_port();
    let r = run(&format!(
        "http://svc:pw-in-url@127.0.0.1:{port}/?k=q-in-url"
    ));
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("endpoint=http://127.0.0.1:{port}\n")),
        "{r:?}"
    );
    assert!(
        !r.all().contains("pw-in-url") && !r.all().contains("q-in-url"),
        "{r:?}"
    );
    let st = sb.run(&["status", "--json"]);
    assert!(!st.all().contains("pw-in-url"), "{st:?}");
    // doctor names the Cognito API it tries to reach the same way.
    let d = sb.run_env(
        &["doctor"],
        &[
            ("SVC_PASSWORD", "Svc-Passw0rd!"),
            (
                "AWS_ENDPOINT_URL",
                &format!("http://svc:pw-in-url@127.0.0.1:{port}/?k=q-in-url"),
            ),
        ],
    );
    assert!(
        d.all().contains(&format!("http://127.0.0.1:{port}/")),
        "{d:?}"
    );
    assert!(
        !d.all().contains("pw-in-url") && !d.all().contains("q-in-url"),
        "{d:?}"
    );

    // A token URL whose query holds a key: the retry's log line names only its origin.
    let port = closed_port();
    sb.write_config(&format!(
        "ingress:\n  kind: oidc_m2m\n  client_id: m2m\n  client_secret: s\n  token_url: http://127.0.0.1:{port}/token?api_key=q-in-url\nhttp:\n  attempts: 2\n  initial_backoff: 10ms\n"
    ));
    let r = sb.run(&["-vvv", "--ingress-only"]);
    assert_ne!(r.code, 0, "{r:?}");
    let logs: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| {
            ["TRACE", "DEBUG", " INFO", " WARN"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("transient failure; retrying")
                && l.contains(&format!("what=http://127.0.0.1:{port} "))),
        "{r:?}"
    );
    assert!(!logs.iter().any(|l| l.contains("q-in-url")), "{logs:?}");
    // Nor does the error: it names the endpoint with its path, the query redacted.
    assert!(
        r.stderr.contains(&format!(
            "error: ingress: token endpoint http://127.0.0.1:{port}/token?[redacted]: could not connect"
        )),
        "{r:?}"
    );
    assert!(!r.all().contains("q-in-url"), "{r:?}");
    let st = sb.run(&["status", "--json"]);
    assert!(!st.all().contains("q-in-url"), "{st:?}");
    let d = sb.run(&["doctor"]);
    assert!(d.all().contains("/token?[redacted]"), "{d:?}");
    assert!(!d.all().contains("q-in-url"), "{d:?}");
}
