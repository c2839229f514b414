//! `mcp-credd init`: a commented starter config, or one converted from a reference `.env`
//! (secrets go to the secrets file, never into the config). The texts are built by pure
//! functions; `run` writes them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::load::{LoadOptions, dotenv_entries, load, read_text, servers_dir_for};
use crate::dirs::Dirs;

/// The starter: every setting explained, the examples commented out. As it stands it
/// loads and configures nothing but the default editors.
pub const STARTER: &str = r#"# mcp-credd configuration. Every key is described in the README ("Configuration file").
# Secrets: write {env: VARIABLE} and put VARIABLE=value in ~/.config/mcp-credd/env (chmod 600);
# every command and the service read that file.

# The MCP gateway: servers are written as {gateway_url}/{name}/mcp.
# gateway_url: https://gateway.example.com

# The gateway identity (machine to machine). Cognito:
# ingress:
#   kind: cognito_m2m
#   region: us-east-1
#   user_pool_id: us-east-1_AbC123
#   client_id: your-m2m-client-id
#   client_secret: {env: INGRESS_OAUTH_CLIENT_SECRET}
#   domain: your-domain-prefix          # or token_url: https://.../oauth2/token
#   scopes: [mcp-servers-unrestricted/read, mcp-servers-unrestricted/execute]
# Any other OpenID provider:
# ingress:
#   kind: oidc_m2m
#   issuer: https://login.example.com/realms/mcp
#   client_id: your-client-id
#   client_secret: {env: INGRESS_OAUTH_CLIENT_SECRET}

# The servers to write into the editors (or servers_dir: the gateway's registry/servers).
# servers:
#   - name: currenttime
#   - name: docs
#     url: https://docs.example.com/mcp
#     auth: none

# Where tokens are kept (default ~/.oauth-tokens).
# tokens_dir: ~/.oauth-tokens

# Which editor files to keep current. Add workspace files as {format: FORMAT, path: PATH};
# after changing this, run `mcp-credd install-service` again if the service runs.
editors:
  - vscode
  - roo
  - reference
"#;

/// Variables of reference setups a config file cannot express exactly (their token files
/// carry provider-specific fields); for those, the `.env` stays the source.
const KEEP_ENV: &[&str] = &[
    "AUTH_PROVIDER",
    "KEYCLOAK_",
    "ENTRA_",
    "COGNITO_USERNAME",
    "AGENTCORE_",
    "EGRESS_",
    "OAUTH_",
];

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A double-quoted `.env` value the dotenv parser reads back exactly.
pub fn dotenv_quote(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The config for a reference `.env` (its variables in `vars`), plus the secrets to put in
/// the secrets file. `Err` says why the `.env` should stay the source.
pub fn from_reference_env(
    vars: &HashMap<String, String>,
    servers_dir: Option<&Path>,
    env_file: &Path,
) -> Result<(String, Vec<(String, String)>), String> {
    let get = |k: &str| vars.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if let Some(k) = vars.keys().find(|k| {
        KEEP_ENV.iter().any(|p| k.starts_with(p))
            && !(k.as_str() == "AUTH_PROVIDER" && get(k) == Some("cognito"))
    }) {
        return Err(format!(
            "{} uses {k}, which a config file cannot express exactly yet; keep it as the source: pass --env-file {} (install-service records it)",
            env_file.display(),
            env_file.display()
        ));
    }
    let (Some(client_id), Some(secret)) = (
        get("INGRESS_OAUTH_CLIENT_ID"),
        get("INGRESS_OAUTH_CLIENT_SECRET"),
    ) else {
        return Err(format!(
            "{} has no INGRESS_OAUTH_CLIENT_ID and INGRESS_OAUTH_CLIENT_SECRET: nothing to convert",
            env_file.display()
        ));
    };
    let mut y = format!(
        "# Converted by `mcp-credd init` from {}.\n# The client secret is in ~/.config/mcp-credd/env, not here.\n",
        env_file.display()
    );
    if let Some(u) = get("REGISTRY_URL") {
        y.push_str(&format!("gateway_url: {}\n", yaml_str(u)));
    }
    y.push_str("ingress:\n  kind: cognito_m2m\n");
    let region = get("AWS_REGION").unwrap_or("us-east-1");
    y.push_str(&format!("  region: {}\n", yaml_str(region)));
    if let Some(p) = get("INGRESS_OAUTH_USER_POOL_ID") {
        y.push_str(&format!("  user_pool_id: {}\n", yaml_str(p)));
    }
    y.push_str(&format!("  client_id: {}\n", yaml_str(client_id)));
    y.push_str("  client_secret: {env: INGRESS_OAUTH_CLIENT_SECRET}\n");
    if let Some(u) = get("INGRESS_OAUTH_TOKEN_URL") {
        y.push_str(&format!("  token_url: {}\n", yaml_str(u)));
    } else if let Some(d) = get("COGNITO_DOMAIN") {
        y.push_str(&format!("  domain: {}\n", yaml_str(d)));
    }
    if let Some(s) = get("INGRESS_OAUTH_SCOPES") {
        let scopes: Vec<String> = s
            .split([' ', ','])
            .filter(|x| !x.is_empty())
            .map(yaml_str)
            .collect();
        y.push_str(&format!("  scopes: [{}]\n", scopes.join(", ")));
    }
    if let Some(a) = get("INGRESS_OAUTH_CLIENT_AUTH") {
        y.push_str(&format!("  client_auth: {}\n", yaml_str(a)));
    }
    if let Some(d) = servers_dir {
        y.push_str(&format!(
            "servers_dir: {}\n",
            yaml_str(&d.display().to_string())
        ));
    }
    Ok((
        y,
        vec![(
            "INGRESS_OAUTH_CLIENT_SECRET".to_string(),
            secret.to_string(),
        )],
    ))
}

/// `mcp-credd init [--from-env FILE] [--force]`: writes the config to `dest` (default
/// place when `None`). Returns what it did.
pub fn run(
    dest: Option<PathBuf>,
    from_env: Option<PathBuf>,
    force: bool,
    process_env: &HashMap<String, String>,
) -> Result<Vec<String>, String> {
    let dirs = Dirs::from_env(process_env);
    let dest = dest
        .or_else(|| dirs.config_file())
        .ok_or("cannot tell where the config goes (HOME is not set); pass --config PATH")?;
    let dest = std::path::absolute(&dest).unwrap_or(dest);
    if dest.exists() && !force {
        return Err(format!(
            "{} already exists; pass --force to replace it",
            dest.display()
        ));
    }
    let mut said = Vec::new();
    let (text, secrets) = match &from_env {
        None => (STARTER.to_string(), Vec::new()),
        Some(f) => {
            let f = std::path::absolute(f).unwrap_or_else(|_| f.clone());
            let entries =
                dotenv_entries(&f, "an env file", "the env file").map_err(|e| e.to_string())?;
            let vars: HashMap<String, String> =
                entries.into_iter().map(|e| (e.key, e.value)).collect();
            from_reference_env(&vars, servers_dir_for(&f).as_deref(), &f)?
        }
    };
    if let Some(dir) = dest.parent() {
        crate::store::atomic::create_private_dirs(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Secrets first: the config refers to them.
    if !secrets.is_empty() {
        let path = dirs
            .secrets_file()
            .ok_or("cannot tell where the secrets file goes")?;
        // Only a missing file counts as empty: an unreadable one must not be replaced by a
        // file holding just the new secret (the user's other secrets would be lost).
        let old = match read_text(&path, "the secrets file") {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(format!(
                    "cannot read {}: {e}; fix or move it, then run init again",
                    path.display()
                ));
            }
        };
        let present: HashMap<String, String> = crate::config::dotenv::parse(&old)
            .map_err(|e| format!("{}:{}: {}", path.display(), e.line, e.message))?
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect();
        let mut new = old.clone();
        for (k, v) in &secrets {
            if let Some(have) = present.get(k) {
                if have != v {
                    // Never name the values; the kept one would make the new config fail.
                    return Err(format!(
                        "{k} in {} differs from the one in the .env; remove it from {} (or make them equal), then run init again",
                        path.display(),
                        path.display()
                    ));
                }
                said.push(format!("{k} is already in {}; kept", path.display()));
                continue;
            }
            if !new.is_empty() && !new.ends_with('\n') {
                new.push('\n');
            }
            new.push_str(&format!("{k}={}\n", dotenv_quote(v)));
            said.push(format!("added {k} to {}", path.display()));
        }
        if new != old {
            if let Some(dir) = path.parent() {
                crate::store::atomic::create_private_dirs(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            crate::store::atomic::write_atomic(&path, new.as_bytes(), 0o600)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    crate::store::atomic::write_atomic(&dest, text.as_bytes(), 0o600)
        .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    // What was written must load: check it as every command will.
    let check = load(
        &LoadOptions {
            config: Some(dest.clone()),
            lazy_secrets: true,
            ..LoadOptions::default()
        },
        process_env,
    );
    if let Err(e) = check {
        return Err(format!(
            "wrote {}, but it does not load: {e}; fix it by hand",
            dest.display()
        ));
    }
    said.push(format!("wrote {}", dest.display()));
    said.push(if from_env.is_some() {
        "check it with `mcp-credd doctor`; the service: `mcp-credd install-service`".into()
    } else {
        "fill it in (every key is explained in it), then run `mcp-credd doctor`".into()
    });
    Ok(said)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_quoting_round_trips() {
        for v in ["plain", "with \"quotes\" and \\ and # hash", "a'b", "x=y"] {
            let line = format!("K={}\n", dotenv_quote(v));
            let e = crate::config::dotenv::parse(&line).unwrap();
            assert_eq!(e[0].value, v, "{line}");
        }
    }

    #[test]
    fn conversion_keeps_the_secret_out_and_refuses_what_it_cannot_express() {
        let vars: HashMap<String, String> = [
            ("REGISTRY_URL", "https://gw.example.com"),
            ("INGRESS_OAUTH_USER_POOL_ID", "us-east-1_AbC"),
            ("INGRESS_OAUTH_CLIENT_ID", "cid"),
            ("INGRESS_OAUTH_CLIENT_SECRET", "s3cr3t"),
            ("INGRESS_OAUTH_SCOPES", "a/read,a/execute"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (y, secrets) = from_reference_env(
            &vars,
            Some(Path::new("/g/registry/servers")),
            Path::new("/g/.env"),
        )
        .unwrap();
        assert!(!y.contains("s3cr3t"), "{y}");
        assert!(y.contains("client_secret: {env: INGRESS_OAUTH_CLIENT_SECRET}"));
        assert!(y.contains("scopes: [\"a/read\", \"a/execute\"]"), "{y}");
        assert!(y.contains("servers_dir: \"/g/registry/servers\""), "{y}");
        assert_eq!(secrets[0].1, "s3cr3t");
        let mut k = vars.clone();
        k.insert("KEYCLOAK_URL".into(), "https://kc".into());
        let e = from_reference_env(&k, None, Path::new("/g/.env")).unwrap_err();
        assert!(
            e.contains("KEYCLOAK_URL") && e.contains("--env-file"),
            "{e}"
        );
    }
}
