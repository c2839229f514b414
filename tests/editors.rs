//! The real binary writing editors' MCP config files in a temporary HOME, with tokens from
//! oidc-provider on 127.0.0.1: default targets, hand-written files kept byte for byte, no
//! rewrite without a change, broken files left alone, symlinks written through, entries
//! removed with their server, opt-in formats, `render` without network, `headers`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use mcp_credd::render::formats::Syntax;
use mcp_credd::render::jsonc::Doc;
use serde_json::{Value, json};

const SECRET: &str = "m2m-secret";

fn config(base: &str, servers: &str, extra: &str) -> String {
    format!(
        "gateway_url: https://gw.example.com
{}http:
  attempts: 2
  initial_backoff: 100ms
  timeout: 5s
servers:
{servers}{extra}",
        cognito_m2m_ingress(base, "{env: INGRESS_OAUTH_CLIENT_SECRET}")
    )
}

const SERVERS: &str = "  - name: currenttime
  - name: fininfo
    transport: sse
  - name: docs
    url: https://docs.example.com/mcp
    auth: none
";

fn env() -> [(&'static str, &'static str); 1] {
    [("INGRESS_OAUTH_CLIENT_SECRET", SECRET)]
}

/// The identity provider and a sandbox configured for it, with [`SERVERS`] and `extra`.
fn setup(extra: &str) -> (Idp, Sandbox) {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new();
    sb.write_config(&config(&idp.base(), SERVERS, extra));
    (idp, sb)
}

fn vscode(sb: &Sandbox) -> PathBuf {
    sb.home().join(".config/Code/User/mcp.json")
}

fn roo(sb: &Sandbox) -> PathBuf {
    sb.home().join(
        ".config/Code/User/globalStorage/rooveterinaryinc.roo-cline/settings/mcp_settings.json",
    )
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn jsonc(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap();
    let doc = Doc::parse(&text, Syntax::Jsonc).unwrap_or_else(|e| panic!("{e}\n{text}"));
    jsonc_parser::cst::CstNode::from(doc.object_at(&[]).unwrap().unwrap())
        .to_serde_value()
        .unwrap()
}

/// `text` without the `servers` members named in `names`.
fn without(text: &str, names: &[&str]) -> String {
    let mut doc = Doc::parse(text, Syntax::Jsonc).unwrap();
    for n in names {
        assert!(
            doc.remove_member_at(&["servers"], n).unwrap(),
            "{n} missing in:\n{text}"
        );
    }
    doc.text()
}

#[test]
fn default_targets_are_written_private_and_complete() {
    let (_idp, sb) = setup("");
    let r = sb.run_env(&[], &env());
    assert_eq!(r.code, 0, "{r:?}");
    let tok = sb.access_token("ingress.json");
    for p in [
        vscode(&sb),
        roo(&sb),
        sb.tokens().join("vscode_mcp.json"),
        sb.tokens().join("mcp.json"),
    ] {
        assert!(
            r.stdout.contains(&format!("wrote {}", p.display())),
            "{r:?}"
        );
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    let v = sb.read_json(&vscode(&sb));
    let ct = &v["servers"]["currenttime"];
    assert_eq!(ct["type"], "http");
    assert_eq!(ct["url"], "https://gw.example.com/currenttime/mcp");
    assert_eq!(
        ct["headers"],
        json!({"X-Authorization": format!("Bearer {tok}"), "X-User-Pool-Id": "us-east-1_AbC123", "X-Client-Id": "m2m-client", "X-Region": "us-east-1"})
    );
    assert_eq!(v["servers"]["fininfo"]["type"], "sse");
    assert_eq!(
        v["servers"]["docs"],
        json!({"type": "http", "url": "https://docs.example.com/mcp"})
    );
    let r2 = sb.read_json(&roo(&sb));
    assert_eq!(
        r2["mcpServers"]["currenttime"]["type"], "streamable-http",
        "Roo needs `type` with `url`"
    );
    assert_eq!(r2["mcpServers"]["fininfo"]["type"], "sse");
    assert_eq!(r2["mcpServers"]["docs"]["disabled"], false);
    let legacy = sb.read_json(&sb.tokens().join("vscode_mcp.json"));
    assert_eq!(
        legacy["mcp"]["servers"]["currenttime"]["headers"]["X-Authorization"],
        format!("Bearer {tok}")
    );
    let owned = sb.read_json(&sb.tokens().join(".mcp-credd/owned.json"));
    assert_eq!(
        owned["files"][vscode(&sb).display().to_string()],
        json!({"format": "vscode", "names": ["currenttime", "docs", "fininfo"]})
    );
    assert!(!r.all().contains(&tok), "no token on the terminal");
}

const USER_VSCODE: &str = r#"// My MCP servers; mcp-credd adds the gateway's.
{
    "inputs": [
        {"type": "promptString", "id": "key", "password": true},
    ],
    "servers": {
        /* local */
        "mine": {
            "type": "stdio",
            "command": "node",
            "args": ["srv.js",], // trailing comma
        },

        "handmade": {"type": "http", "url": "https://other.example.com/mcp"}, // not ours
    },
    "x-unknown": {"kept": true},
}
"#;

#[test]
fn a_commented_vscode_file_keeps_every_byte_but_our_entries() {
    let (_idp, sb) = setup("");
    std::fs::create_dir_all(vscode(&sb).parent().unwrap()).unwrap();
    std::fs::write(vscode(&sb), USER_VSCODE).unwrap();
    let r = sb.run_env(&[], &env());
    assert_eq!(r.code, 0, "{r:?}");
    let text = std::fs::read_to_string(vscode(&sb)).unwrap();
    assert_eq!(
        without(&text, &["currenttime", "fininfo", "docs"]),
        USER_VSCODE,
        "only our entries differ:\n{text}"
    );
    let v = jsonc(&vscode(&sb));
    assert_eq!(
        v["servers"]["currenttime"]["headers"]["X-Authorization"],
        format!("Bearer {}", sb.access_token("ingress.json"))
    );
    let keys: Vec<&String> = v["servers"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["mine", "handmade", "currenttime", "fininfo", "docs"]);

    // Nothing changed: nothing rewritten (an editor would restart its servers).
    let before = mtime(&vscode(&sb));
    let r = sb.run_env(&[], &env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("wrote"), "{r:?}");
    assert_eq!(mtime(&vscode(&sb)), before);
    assert_eq!(std::fs::read_to_string(vscode(&sb)).unwrap(), text);

    // A new token: our entries change, in place; the user's bytes still do not.
    let r = sb.run_env(&["--force"], &env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("wrote {}", vscode(&sb).display())),
        "{r:?}"
    );
    let new_text = std::fs::read_to_string(vscode(&sb)).unwrap();
    assert_ne!(new_text, text);
    assert!(new_text.contains(&format!("Bearer {}", sb.access_token("ingress.json"))));
    assert_eq!(
        without(&new_text, &["currenttime", "fininfo", "docs"]),
        USER_VSCODE
    );
    assert_eq!(mode(&vscode(&sb)), 0o600, "it holds a token");
}

#[test]
fn a_broken_file_is_reported_untouched_and_the_others_written() {
    let (_idp, sb) = setup("");
    // Roo reads strict JSON: a comment breaks the file for Roo, so it is not ours to fix.
    let broken = "{\n  \"mcpServers\": {} // mine\n}\n";
    std::fs::create_dir_all(roo(&sb).parent().unwrap()).unwrap();
    std::fs::write(roo(&sb), broken).unwrap();
    let r = sb.run_env(&[], &env());
    assert_eq!(r.code, 1, "{r:?}");
    let want = format!(
        "error: {}: line 2, column 20: not valid JSON (this editor reads strict JSON: no comments or trailing commas): Comments are not allowed; left untouched",
        roo(&sb).display()
    );
    assert!(r.stderr.contains(&want), "{r:?}");
    assert!(r.stderr.contains("left untouched"), "{r:?}");
    assert_eq!(std::fs::read_to_string(roo(&sb)).unwrap(), broken);
    for p in [
        vscode(&sb),
        sb.tokens().join("vscode_mcp.json"),
        sb.tokens().join("mcp.json"),
    ] {
        assert!(
            r.stdout.contains(&format!("wrote {}", p.display())),
            "{r:?}"
        );
    }
    assert!(r.stdout.contains("new token obtained"), "{r:?}");
}

#[test]
fn a_symlinked_file_is_written_through_to_its_target() {
    let (_idp, sb) = setup("");
    let dotfiles = sb.home().join("dotfiles/vscode");
    std::fs::create_dir_all(&dotfiles).unwrap();
    let real = dotfiles.join("mcp.json");
    std::fs::write(
        &real,
        "{\n  \"servers\": {\"mine\": {\"command\": \"x\"}}\n}\n",
    )
    .unwrap();
    std::fs::create_dir_all(vscode(&sb).parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("../../../dotfiles/vscode/mcp.json", vscode(&sb)).unwrap();
    let r = sb.run_env(&[], &env());
    assert_eq!(r.code, 0, "{r:?}");
    let meta = std::fs::symlink_metadata(vscode(&sb)).unwrap();
    assert!(meta.file_type().is_symlink(), "the link stays a link");
    let v = jsonc(&real);
    assert_eq!(v["servers"]["mine"]["command"], "x");
    assert_eq!(
        v["servers"]["currenttime"]["headers"]["X-Authorization"],
        format!("Bearer {}", sb.access_token("ingress.json"))
    );
    assert_eq!(mode(&real), 0o600);
    assert_eq!(
        std::fs::read_dir(&dotfiles).unwrap().count(),
        1,
        "no temp file left"
    );
}

/// A workspace file dropped from `editors:`, where a checkout then plants a symlink to
/// another file of the user's holding entries of the same names: the clean-up does not
/// follow it; the link and the file it leads to stay as they are, and the user is told.
#[test]
fn a_symlink_planted_at_a_dropped_editor_file_is_not_followed() {
    let (idp, sb) =
        setup("editors:\n  - reference\n  - {format: vscode, path: ~/proj/.vscode/mcp.json}\n");
    let ws = sb.home().join("proj/.vscode/mcp.json");
    let r = sb.run_env(&[], &env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(jsonc(&ws)["servers"]["currenttime"].is_object());
    // The user's own VS Code file, with servers named like ours.
    let theirs = sb.home().join("theirs.json");
    let text = "{\n  \"servers\": {\"currenttime\": {\"command\": \"mine\"}, \"docs\": {\"url\": \"u\"}}\n}\n";
    std::fs::write(&theirs, text).unwrap();
    std::fs::remove_file(&ws).unwrap();
    std::os::unix::fs::symlink(&theirs, &ws).unwrap();

    sb.write_config(&config(&idp.base(), SERVERS, "editors: [reference]\n"));
    for args in [&["render"][..], &["logout", "--all"]] {
        let r = sb.run_env(args, &env());
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains(&format!(
                "{} is no longer in `editors` and is a symbolic link (to {}); not followed, left untouched",
                ws.display(),
                theirs.display()
            )),
            "{args:?}: {r:?}"
        );
        assert!(!r.stdout.contains(&ws.display().to_string()), "{r:?}");
        assert_eq!(std::fs::read_to_string(&theirs).unwrap(), text, "{args:?}");
        assert!(
            std::fs::symlink_metadata(&ws)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
    // The link gone, the record goes too: nothing more is said.
    std::fs::remove_file(&ws).unwrap();
    let r = sb.run_env(&["render"], &env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains(&ws.display().to_string()), "{r:?}");
    let owned = sb.read_json(&sb.tokens().join(".mcp-credd/owned.json"));
    assert!(
        owned["files"].get(ws.display().to_string()).is_none(),
        "{owned}"
    );
    assert!(!ws.exists(), "not recreated");
}

#[test]
fn a_server_dropped_from_the_config_leaves_every_editor() {
    let (idp, sb) = setup("");
    assert_eq!(sb.run_env(&[], &env()).code, 0);
    // The user copies one of ours by hand under another name: theirs, never removed.
    let mut v = sb.read_json(&vscode(&sb));
    v["servers"]["my-copy"] = v["servers"]["fininfo"].clone();
    std::fs::write(vscode(&sb), serde_json::to_string_pretty(&v).unwrap()).unwrap();

    let only_currenttime = "  - name: currenttime\n";
    sb.write_config(&config(&idp.base(), only_currenttime, ""));
    let r = sb.run_env(&[], &env());
    assert_eq!(r.code, 0, "{r:?}");
    let v = sb.read_json(&vscode(&sb));
    let names: Vec<&String> = v["servers"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["currenttime", "my-copy"]);
    let roo = sb.read_json(&roo(&sb));
    assert_eq!(
        roo["mcpServers"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["currenttime"]
    );
    let legacy = sb.read_json(&sb.tokens().join("vscode_mcp.json"));
    assert_eq!(
        legacy["mcp"]["servers"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["currenttime"]
    );
}

#[test]
fn opt_in_formats_get_what_their_editors_accept() {
    let idp = Idp::start(&[]);
    let sb = Sandbox::new();
    let proj = sb.home().join("proj");
    let editors = format!(
        "editors:
  - cursor
  - cline
  - windsurf
  - {{format: vscode, path: {p}/.vscode/mcp.json}}
  - {{format: roo, path: {p}/.roo/mcp.json}}
  - {{format: cursor, path: {p}/.cursor/mcp.json}}
  - format: claude_code
    path: {p}/.mcp.json
",
        p = proj.display()
    );
    sb.write_config(&config(&idp.base(), SERVERS, &editors));
    let r = sb.run_env(&[], &env());
    assert_eq!(r.code, 0, "{r:?}");
    let tok = format!("Bearer {}", sb.access_token("ingress.json"));
    let h = sb.home();
    // (file, servers key, URL key, `type` for streamable HTTP, for SSE)
    type Row = (
        PathBuf,
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );
    let table: [Row; 7] = [
        (h.join(".cursor/mcp.json"), "mcpServers", "url", None, None),
        (
            h.join(".config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"),
            "mcpServers",
            "url",
            Some("streamableHttp"),
            Some("sse"),
        ),
        (
            h.join(".codeium/windsurf/mcp_config.json"),
            "mcpServers",
            "serverUrl",
            None,
            None,
        ),
        (proj.join(".vscode/mcp.json"), "servers", "url", Some("http"), Some("sse")),
        (
            proj.join(".roo/mcp.json"),
            "mcpServers",
            "url",
            Some("streamable-http"),
            Some("sse"),
        ),
        (proj.join(".cursor/mcp.json"), "mcpServers", "url", None, None),
        (proj.join(".mcp.json"), "mcpServers", "url", Some("http"), Some("sse")),
    ];
    for (file, key, url_key, http, sse) in table {
        let v = sb.read_json(&file);
        let ct = &v[key]["currenttime"];
        let fi = &v[key]["fininfo"];
        assert_eq!(
            ct[url_key],
            "https://gw.example.com/currenttime/mcp",
            "{}",
            file.display()
        );
        if file.ends_with(".mcp.json") {
            // Claude Code's project file (meant to be committed) names the helper instead.
            assert!(ct.get("headers").is_none());
            assert!(
                ct["headersHelper"]
                    .as_str()
                    .is_some_and(|h| h.ends_with("mcp-credd headers")),
                "{ct}"
            );
        } else {
            assert_eq!(ct["headers"]["X-Authorization"], tok, "{}", file.display());
        }
        assert_eq!(
            ct.get("type").and_then(Value::as_str),
            http,
            "{}",
            file.display()
        );
        assert_eq!(
            fi.get("type").and_then(Value::as_str),
            sse,
            "{}",
            file.display()
        );
        assert!(v[key]["docs"].get("headers").is_none());
        assert_eq!(mode(&file), 0o600);
    }
    // Only what was listed: the defaults are not written.
    assert!(!vscode(&sb).exists());
    assert!(!sb.tokens().join("mcp.json").exists());
    // Never Claude Code's own user file.
    assert!(!h.join(".claude.json").exists());
}

#[test]
fn render_rewrites_from_stored_tokens_without_the_network() {
    let (idp, sb) = setup("");
    assert_eq!(sb.run_env(&[], &env()).code, 0);
    let tok = sb.access_token("ingress.json");
    let base = idp.base();
    drop(idp);
    // The provider is gone (its address now answers nothing); a new server appears in the
    // config. The identity is the same, so its stored token is still the one to render.
    sb.write_config(&config(&base, &format!("{SERVERS}  - name: newsrv\n"), ""));
    std::fs::remove_file(roo(&sb)).unwrap();
    let r = sb.run_env(&["render"], &env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!("wrote {}", roo(&sb).display())),
        "{r:?}"
    );
    assert!(!r.all().contains("could not connect"), "no network: {r:?}");
    let v = sb.read_json(&vscode(&sb));
    assert_eq!(
        v["servers"]["newsrv"]["headers"]["X-Authorization"],
        format!("Bearer {tok}")
    );
    assert!(sb.read_json(&roo(&sb))["mcpServers"]["newsrv"].is_object());
    // Again: nothing to do.
    let r = sb.run_env(&["render"], &env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("wrote"), "{r:?}");
}

#[test]
fn headers_prints_a_servers_headers_from_the_store() {
    let (idp, sb) = setup("");
    // No token yet: `headers` obtains one on demand (Claude Code is waiting) and stores it.
    let r = sb.run_env(&["headers", "currenttime"], &env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("Bearer {}", sb.access_token("ingress.json"))),
        "{r:?}"
    );
    // With the provider gone, the stored token (still valid) is served without any call.
    drop(idp);
    let r = sb.run_env(&["headers", "currenttime"], &env());
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 1, "one line of JSON: {r:?}");
    let h: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        h,
        json!({"X-Authorization": format!("Bearer {}", sb.access_token("ingress.json")), "X-User-Pool-Id": "us-east-1_AbC123", "X-Client-Id": "m2m-client", "X-Region": "us-east-1"})
    );
    let r = sb.run_env(&["headers", "docs"], &env());
    assert_eq!((r.code, r.stdout.trim()), (0, "{}"), "{r:?}");
    let r = sb.run_env(&["headers", "nope"], &env());
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("no server named `nope` in the configuration from")
            && r.stderr.contains("configured: currenttime, fininfo, docs"),
        "{r:?}"
    );
    assert!(r.stdout.is_empty());

    // An expired token is not handed out: with the provider down, nothing is printed.
    let file = sb.tokens().join("ingress.json");
    let mut t = sb.read_json(&file);
    t["expires_at"] = json!(now_secs() - 60.0);
    std::fs::write(&file, serde_json::to_string(&t).unwrap()).unwrap();
    let r = sb.run_env(&["headers", "currenttime"], &env());
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("ingress: token endpoint")
            && r.stderr
                .contains("no usable token for server `currenttime`; nothing printed"),
        "{r:?}"
    );
    assert!(r.stdout.is_empty(), "{r:?}");
}

#[test]
fn no_editors_means_only_tokens() {
    let (_idp, sb) = setup("editors: []\n");
    let r = sb.run_env(&[], &env());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("wrote"), "{r:?}");
    assert!(sb.tokens().join("ingress.json").exists());
    assert!(!sb.home().join(".config/Code").exists());
    assert!(!sb.tokens().join("mcp.json").exists());
}
