//! The service as people set it up, under a real systemd user manager (tests/common/systemd.rs):
//! `install-service` from a gateway checkout's `.env` or from `--config`, `systemctl --user
//! enable --now`, tokens and editor files written by the unit, refusals with reason and fix,
//! an unwritable target reported, a vanished servers directory that wipes nothing, and
//! `uninstall-service`.

mod common;

use std::path::Path;
use std::process::Command;

use common::systemd::UserManager;
use common::*;

const UNIT: &str = "mcp-credd.service";

fn run(c: Command) -> Run {
    Sandbox::run_cmd(c)
}

fn read_json(p: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}\n{text}", p.display()))
}

fn json_if(p: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

fn ok(o: &std::process::Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A gateway checkout as the reference scripts lay it out: the `.env` in
/// `credentials-provider/oauth/`, the servers in `registry/servers/` at the root.
fn gateway_checkout(root: &Path, token_url: &str) {
    let oauth = root.join("credentials-provider/oauth");
    std::fs::create_dir_all(&oauth).unwrap();
    std::fs::create_dir_all(root.join("registry/servers")).unwrap();
    std::fs::write(
        oauth.join(".env"),
        format!(
            "# gateway\nREGISTRY_URL=https://gw.example.com  # the registry\nAWS_REGION=us-east-1\nINGRESS_OAUTH_USER_POOL_ID=us-east-1_AbC123\nINGRESS_OAUTH_CLIENT_ID=m2m-client\nINGRESS_OAUTH_CLIENT_SECRET=m2m-secret  # from the console\nINGRESS_OAUTH_TOKEN_URL={token_url}\n"
        ),
    )
    .unwrap();
    std::fs::write(root.join("registry/servers/currenttime.json"), r#"{"server_name":"Current Time","path":"/currenttime/","proxy_pass_url":"http://currenttime-server:8000/","supported_transports":["streamable-http"]}"#).unwrap();
}

#[test]
fn env_file_user_installs_the_service_and_the_unit_writes_tokens_and_editors() {
    let Some(m) = UserManager::start() else {
        return;
    };
    let idp = Idp::start(&[("TOKEN_TTL", "600")]);
    let gw = m.path("gw");
    gateway_checkout(&gw, &idp.token_url());

    // From the checkout's root, as the reference scripts are run: the `.env` is found in
    // credentials-provider/oauth/, the servers at the root, and both go into the unit.
    let r = run(m.mcp_credd(&["install-service"], &gw));
    assert_eq!(r.code, 0, "{r:?}");
    let unit_path = m.path(".config/systemd/user/mcp-credd.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let env_file = gw.join("credentials-provider/oauth/.env");
    assert!(
        unit.contains(&format!(
            "\"--env-file\" \"{}\" \"--tokens-dir\" \"{}\" \"--servers-dir\" \"{}\" daemon",
            env_file.display(),
            m.path(".oauth-tokens").display(),
            gw.join("registry/servers").display()
        )),
        "{unit}"
    );
    assert!(
        unit.contains("LimitCORE=0") && !unit.contains("EnvironmentFile"),
        "{unit}"
    );
    m.test_drop_in(UNIT);

    ok(&m.systemctl(&["daemon-reload"]), "daemon-reload");
    ok(&m.systemctl(&["enable", "--now", UNIT]), "enable --now");
    assert_eq!(m.show(UNIT, "ActiveState"), "active", "{}", m.status(UNIT));
    assert_eq!(m.show(UNIT, "LimitCORE"), "0");

    // The unit (working directory /, its own environment) obtains the token and writes
    // VS Code's file and the reference copies.
    let token = m.path(".oauth-tokens/ingress.json");
    let vscode = m.path(".config/Code/User/mcp.json");
    let roo_copy = m.path(".oauth-tokens/mcp.json");
    // Files are written one after another: wait for the last of them too.
    m.wait(
        30,
        "the token, VS Code's file and the reference copy",
        UNIT,
        || {
            json_if(&vscode).is_some_and(|v| v["servers"]["currenttime"]["headers"].is_object())
                && json_if(&roo_copy)
                    .is_some_and(|v| v["mcpServers"]["currenttime"]["headers"].is_object())
        },
    );
    let tok = read_json(&token);
    let bearer = format!("Bearer {}", tok["access_token"].as_str().unwrap());
    let v = read_json(&vscode);
    assert_eq!(
        v["servers"]["currenttime"]["headers"]["X-Authorization"],
        bearer
    );
    let roo = read_json(&roo_copy);
    assert_eq!(
        roo["mcpServers"]["currenttime"]["headers"]["X-Authorization"],
        bearer
    );
    assert_eq!(m.show(UNIT, "NRestarts"), "0", "{}", m.status(UNIT));

    // A reload under Type=notify (systemd 252 has no notify-reload) keeps it running.
    ok(&m.systemctl(&["reload", UNIT]), "reload");
    assert_eq!(m.show(UNIT, "ActiveState"), "active", "{}", m.status(UNIT));

    // The servers directory vanishes (a moved checkout): the daemon keeps the entries
    // it wrote, and the one-shot says why and exits non-zero.
    std::fs::rename(
        gw.join("registry/servers"),
        gw.join("registry/servers.moved"),
    )
    .unwrap();
    ok(&m.systemctl(&["reload", UNIT]), "reload");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let v = read_json(&vscode);
    assert_eq!(
        v["servers"]["currenttime"]["headers"]["X-Authorization"],
        bearer
    );
    let r = run(m.mcp_credd(&[], &gw));
    assert_ne!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("wrote"), "{r:?}");
    assert!(
        r.stderr.contains("registry/servers") && r.stderr.contains("kept"),
        "{r:?}"
    );
    let v = read_json(&vscode);
    assert!(v["servers"]["currenttime"].is_object(), "{v}");
    let roo = read_json(&m.path(".oauth-tokens/mcp.json"));
    assert!(roo["mcpServers"]["currenttime"].is_object(), "{roo}");

    // uninstall-service stops, disables and removes the unit.
    let r = run(m.mcp_credd(&["uninstall-service"], &gw));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("stopped and disabled"), "{r:?}");
    assert!(!unit_path.exists());
    let state = m.show(UNIT, "ActiveState");
    assert!(state == "inactive" || state.is_empty(), "{state}");
    assert_eq!(m.show(UNIT, "UnitFileState"), "", "no unit file left");
}

#[test]
fn config_user_with_a_workspace_target_and_secrets_file() {
    let Some(m) = UserManager::start() else {
        return;
    };
    let idp = Idp::start(&[("TOKEN_TTL", "600")]);
    // A config in a directory with a space and a percent sign: escaped into the unit.
    let cfg_dir = m.path("conf 50%");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let cfg = cfg_dir.join("credd.yaml");
    let config = |extra: &str| {
        format!(
            "gateway_url: https://gw.example.com
{}servers:
  - name: currenttime
on_error: [/bin/sh, -c, 'echo \"$MCP_CREDD_EVENT $MCP_CREDD_IDENTITY $MCP_CREDD_MESSAGE\" >> \"$HOME/.oauth-tokens/hook.log\"']
editors:
  - {{format: cursor, path: ~/my proj/.cursor/mcp.json}}
{extra}",
            cognito_m2m_ingress(&idp.base(), "{env: GW_SECRET}")
        )
    };
    std::fs::write(&cfg, config("")).unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let home = m.home().to_path_buf();

    // The secret is exported in this shell only: the service would not see it.
    let mut c = m.mcp_credd(&["--config", cfg_s, "install-service"], &home);
    c.env("GW_SECRET", "m2m-secret");
    let r = run(c);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains("not installed")
            && r.stderr.contains("GW_SECRET")
            && r.stderr.contains("mcp-credd/env"),
        "{r:?}"
    );
    assert!(!m.path(".config/systemd/user/mcp-credd.service").exists());

    // Without the secret, commands that make no network call still work.
    let r = run(m.mcp_credd(&["--config", cfg_s, "status"], &home));
    assert!(r.stdout.contains("ingress"), "{r:?}");
    assert!(!r.all().contains("GW_SECRET"), "{r:?}");
    // ... and the one that needs it names the variable.
    let r = run(m.mcp_credd(&["--config", cfg_s], &home));
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("`GW_SECRET` is not set"), "{r:?}");

    // The secrets file, read with the one .env parser (an inline comment is not the value).
    let secrets = m.path(".config/mcp-credd/env");
    write_private(&secrets, "GW_SECRET=m2m-secret   # from the console\n");
    let r = run(m.mcp_credd(&["--config", cfg_s, "install-service"], &home));
    assert_eq!(r.code, 0, "{r:?}");
    let unit = std::fs::read_to_string(m.path(".config/systemd/user/mcp-credd.service")).unwrap();
    let cursor_dir = m.path("my proj/.cursor");
    assert!(
        cursor_dir.is_dir(),
        "created at install so systemd can grant it"
    );
    assert!(
        unit.contains(&format!("ReadWritePaths=\"-{}\"", cursor_dir.display())),
        "{unit}"
    );
    m.test_drop_in(UNIT);
    ok(&m.systemctl(&["daemon-reload"]), "daemon-reload");
    assert!(
        m.show(UNIT, "ExecStart")
            .contains(&format!("{}", cfg.display())),
        "systemd reads the escaped path back: {}",
        m.show(UNIT, "ExecStart")
    );
    // The config file stays in charge of its own directories: the unit does not pin them.
    assert!(
        !m.show(UNIT, "ExecStart").contains("--tokens-dir"),
        "{}",
        m.show(UNIT, "ExecStart")
    );
    ok(&m.systemctl(&["enable", "--now", UNIT]), "enable --now");
    let cursor = cursor_dir.join("mcp.json");
    m.wait(30, "Cursor's workspace file", UNIT, || {
        json_if(&cursor).is_some_and(|v| v["mcpServers"]["currenttime"]["headers"].is_object())
    });
    let tok = read_json(&m.path(".oauth-tokens/ingress.json"));
    assert_eq!(
        read_json(&cursor)["mcpServers"]["currenttime"]["headers"]["X-Authorization"],
        format!("Bearer {}", tok["access_token"].as_str().unwrap())
    );

    // With the secret gone from everywhere, the commands that make no network call still
    // work: Claude Code's headersHelper (`headers`) and `render`.
    let hidden = m.path("env.hidden");
    std::fs::rename(&secrets, &hidden).unwrap();
    let r = run(m.mcp_credd(&["--config", cfg_s, "headers", "currenttime"], &home));
    assert_eq!(r.code, 0, "{r:?}");
    let h: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        h["X-Authorization"],
        format!("Bearer {}", tok["access_token"].as_str().unwrap())
    );
    let r = run(m.mcp_credd(&["--config", cfg_s, "render"], &home));
    assert_eq!(r.code, 0, "{r:?}");
    std::fs::rename(&hidden, &secrets).unwrap();

    // A target added later, outside what the unit may write: reported, not silently lost.
    std::fs::write(
        &cfg,
        config("  - {format: cursor, path: ~/elsewhere/.cursor/mcp.json}\n"),
    )
    .unwrap();
    m.wait(30, "STATUS= to name the unwritable file", UNIT, || {
        m.show(UNIT, "StatusText").contains("cannot write")
    });
    assert!(
        m.show(UNIT, "StatusText")
            .contains(&m.path("elsewhere/.cursor/mcp.json").display().to_string()),
        "{}",
        m.show(UNIT, "StatusText")
    );
    // ... and through on_error, once.
    let hook_log = m.path(".oauth-tokens/hook.log");
    m.wait(10, "the on_error hook", UNIT, || {
        std::fs::read_to_string(&hook_log).is_ok_and(|t| t.contains("elsewhere/.cursor"))
    });
    let log = std::fs::read_to_string(&hook_log).unwrap();
    assert!(log.starts_with("error editors "), "{log}");
    // doctor compares the installed unit with the config and says what to run.
    let r = run(m.mcp_credd(&["--config", cfg_s, "doctor", "--json"], &home));
    assert_eq!(r.code, 1, "{r:?}");
    let findings: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["level"] == "fail"
                && f["check"].as_str().unwrap().starts_with("service ")
                && f["message"].as_str().unwrap().contains("elsewhere/.cursor")
                && f["hint"].as_str().unwrap().contains("install-service")),
        "{findings:#}"
    );
    let r = run(m.mcp_credd(&["--config", cfg_s, "status"], &home));
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("not written by the daemon") && r.stdout.contains("install-service"),
        "{r:?}"
    );
    // Re-running install-service grants it; after a restart the file is written.
    let r = run(m.mcp_credd(&["--config", cfg_s, "install-service"], &home));
    assert_eq!(r.code, 0, "{r:?}");
    ok(&m.systemctl(&["daemon-reload"]), "daemon-reload");
    ok(&m.systemctl(&["restart", UNIT]), "restart");
    let other = m.path("elsewhere/.cursor/mcp.json");
    m.wait(30, "the newly granted file", UNIT, || {
        json_if(&other).is_some_and(|v| v["mcpServers"]["currenttime"]["headers"].is_object())
    });
    m.wait(10, "status to clear", UNIT, || {
        run(m.mcp_credd(&["--config", cfg_s, "status"], &home)).code == 0
    });
    let r = run(m.mcp_credd(&["--config", cfg_s, "doctor"], &home));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("matches the configuration"), "{r:?}");
    ok(&m.systemctl(&["stop", UNIT]), "stop");
}

#[test]
fn install_service_refuses_what_the_service_could_not_load() {
    let sb = Sandbox::new();
    let unit = sb.home().join("units/mcp-credd.service");
    let unit_s = unit.to_str().unwrap();
    // Variables exported in the shell only.
    let r = sb.run_env(
        &["install-service", "--unit-path", unit_s],
        &[
            ("INGRESS_OAUTH_CLIENT_ID", "c"),
            ("INGRESS_OAUTH_USER_POOL_ID", "us-east-1_AbC123"),
            ("INGRESS_OAUTH_CLIENT_SECRET", "s"),
            ("INGRESS_OAUTH_TOKEN_URL", "https://idp.example.com/token"),
        ],
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("--env-file"), "{r:?}");
    assert!(!unit.exists());

    // A tokens directory whose name would break the unit file (a newline starts a new
    // directive): refused, nothing written.
    sb.write_config("tokens_dir: ~/tok\n");
    let evil = sb.home().join("tok\nExecStartPre=/bin/sh -c evil");
    let r = sb.run(&[
        "--tokens-dir",
        evil.to_str().unwrap(),
        "install-service",
        "--unit-path",
        unit_s,
    ]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("control character"), "{r:?}");
    assert!(!unit.exists() && !evil.exists());

    // A config file that does not parse as the service would read it.
    let cfg = sb.write_config("ingress: [\n");
    let r = sb.run(&["install-service", "--unit-path", unit_s]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains(&cfg.display().to_string()), "{r:?}");
    assert!(!unit.exists());
}

#[test]
fn user_provider_files_apply_without_a_config_file() {
    let sb = Sandbox::new();
    let gw = sb.home().join("gw");
    std::fs::create_dir_all(&gw).unwrap();
    std::fs::write(
        gw.join(".env"),
        "EGRESS_OAUTH_CLIENT_ID_1=app\nEGRESS_OAUTH_CLIENT_SECRET_1=appsecret\nEGRESS_OAUTH_REDIRECT_URI_1=http://localhost:8080/callback\nEGRESS_PROVIDER_NAME_1=myidp\n",
    )
    .unwrap();
    let mut c = sb.command(&["status", "--json"]);
    c.current_dir(&gw);
    let r = run(c);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("unknown provider `myidp`"), "{r:?}");

    let dir = sb.home().join(".config/mcp-credd/providers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("myidp.yaml"),
        "display_name: My IdP\nauthorize_url: https://idp.example.com/authorize\ntoken_url: https://idp.example.com/token\n",
    )
    .unwrap();
    let mut c = sb.command(&["status", "--json"]);
    c.current_dir(&gw);
    let r = run(c);
    assert!(!r.stderr.contains("unknown provider"), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["identities"][0]["state"], "needs_login", "{v:#}");
}
