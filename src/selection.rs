//! Which identities a command is about, and which stored token each may use. The rules
//! behind `--provider` / `--egress-only` / `--ingress-only`, `token NAME`, `logout NAME`,
//! `login [NAME]` and `headers SERVER`, and token ownership: a stored token serves only the
//! identity its binding names (`binding::mismatch`); and each identity's `status` row from
//! what is stored, which `login` without a name also goes by. `app` turns the answers into
//! output and exit codes; the only I/O here is reading token and state files through the
//! store.

use std::collections::HashMap;

use crate::clock::Ts;
use crate::config::{Config, IdentityConfig, Login, ServerAuth};
use crate::refresh::token_file_name;
use crate::schedule::plan::Expiry;
use crate::store::{Store, TokenRecord};
use crate::timefmt::{human_utc, relative};

fn is_egress(id: &IdentityConfig) -> bool {
    id.egress().is_some()
}

/// `(configured: a, b)`, or `none` when nothing is.
fn known(names: Vec<&str>, none: &str) -> String {
    if names.is_empty() {
        none.to_string()
    } else {
        format!("configured: {}", names.join(", "))
    }
}

/// The identity `token NAME` or `logout NAME` means: by its name, or an egress identity by
/// its provider's.
pub fn named<'a>(config: &'a Config, name: &str) -> Result<&'a IdentityConfig, String> {
    config
        .all_identities()
        .find(|i| i.name == name || i.egress().is_some_and(|e| e.provider == name))
        .ok_or_else(|| {
            let names = config.all_identities().map(|i| i.name.as_str()).collect();
            format!(
                "no identity named `{}` is configured ({})",
                crate::sanitize::escape(name),
                known(names, "none is")
            )
        })
}

/// The identities `login [NAME]` means (provider logins and MCP servers with `auth:
/// oauth`): the one named (by its name or its provider's), or all of them.
pub fn to_log_in<'a>(config: &'a Config, name: Option<&str>) -> Result<Vec<Login<'a>>, String> {
    let logins = || config.all_identities().filter_map(IdentityConfig::login);
    let chosen: Vec<Login> = match name {
        Some(n) => logins()
            .filter(|l| l.id.name == n || l.eg.provider == n)
            .take(1)
            .collect(),
        None => logins().collect(),
    };
    match name {
        Some(n) if chosen.is_empty() => {
            let names: Vec<&str> = logins().map(|l| l.id.name.as_str()).collect();
            Err(format!(
                "no egress provider or MCP server with `auth: oauth` named `{}` is configured{}",
                crate::sanitize::escape(n),
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", known(names, ""))
                }
            ))
        }
        _ if chosen.is_empty() => {
            Err("nothing to log in to: add an `egress:` entry or a server with `auth: oauth` (see README)".into())
        }
        _ => Ok(chosen),
    }
}

/// What a one-shot run does: every configured identity, and whether to refresh it (the
/// others' stored tokens are only rendered).
#[derive(Debug)]
pub struct Oneshot<'a> {
    /// Only egress identities run (`--egress-only`, or `--provider`).
    pub egress_only: bool,
    pub identities: Vec<(&'a IdentityConfig, bool)>,
}

/// The one-shot's choice. `provider` names an egress entry, or else every entry of that
/// provider; with it, only egress identities run. `ingress_only` leaves egress out.
pub fn oneshot<'a>(
    config: &'a Config,
    provider: Option<&str>,
    egress_only: bool,
    ingress_only: bool,
) -> Result<Oneshot<'a>, String> {
    let egress_only = egress_only || provider.is_some();
    let by_name =
        provider.is_some_and(|p| config.all_identities().any(|i| is_egress(i) && i.name == p));
    let selected = |id: &IdentityConfig| match provider {
        Some(p) if by_name => is_egress(id) && id.name == p,
        Some(p) => id.egress().is_some_and(|e| e.provider == p),
        None => !ingress_only || !is_egress(id),
    };
    if let Some(p) = provider
        && !config.all_identities().any(selected)
    {
        let names = config
            .all_identities()
            .filter(|i| is_egress(i))
            .map(|i| i.name.as_str())
            .collect();
        return Err(format!(
            "no egress provider named `{}` is configured ({})",
            crate::sanitize::escape(p),
            known(names, "none is configured")
        ));
    }
    let identities = config
        .all_identities()
        .map(|id| (id, selected(id) && (!egress_only || is_egress(id))))
        .collect();
    Ok(Oneshot {
        egress_only,
        identities,
    })
}

/// The identities whose tokens a server's headers carry.
pub fn of_server<'a>(config: &'a Config, auth: &ServerAuth) -> Vec<&'a IdentityConfig> {
    let mut out = Vec::new();
    let gateway = matches!(
        auth,
        ServerAuth::Gateway | ServerAuth::Identity { gateway: true, .. }
    );
    if gateway && let Some(i) = &config.ingress {
        out.push(i);
    }
    if let ServerAuth::Identity { name, .. } = auth
        && let Some(i) = config.identity(name)
    {
        out.push(i);
    }
    out
}

/// The stored tokens by identity, read only: nothing is created or fetched. A token that
/// belongs to another identity is left out; so, with `usable_only`, is an expired one.
/// Also says, for the user, which identities have no usable token and what to do.
pub fn stored_tokens(
    config: &Config,
    store: Option<&Store>,
    now: Ts,
    usable_only: bool,
) -> (HashMap<String, TokenRecord>, Vec<String>) {
    let mut records = HashMap::new();
    let mut problems = Vec::new();
    let get_one = "run `mcp-credd` (or start the daemon) to get one";
    for id in config.all_identities() {
        let rec = match store.map(|s| s.read_token(&token_file_name(id))) {
            Some(Ok(Some(r))) => match crate::binding::mismatch(&r, id) {
                None => r,
                Some(why) => {
                    let next = if is_egress(id) {
                        format!("run `mcp-credd login {}`", id.name)
                    } else {
                        get_one.to_string()
                    };
                    problems.push(format!(
                        "{}: the stored token is not used: {why}; {next}",
                        id.name
                    ));
                    continue;
                }
            },
            Some(Err(e)) => {
                problems.push(e.to_string());
                continue;
            }
            Some(Ok(None)) | None => {
                problems.push(format!("{}: no stored token; {get_one}", id.name));
                continue;
            }
        };
        if let Expiry::At(t) = rec.times().expiry
            && t <= now
        {
            problems.push(format!(
                "{}: the stored token expired {} ({}); run `mcp-credd` (or start the daemon) to refresh it",
                id.name,
                human_utc(t),
                relative(t, now)
            ));
            if usable_only {
                continue;
            }
        }
        records.insert(id.name.clone(), rec);
    }
    (records, problems)
}

/// One identity's `status` row, from what is stored. `login` with no name uses the same
/// rows, so it logs in exactly the identities `status` says need it.
pub fn status_row(
    config: &Config,
    store: Option<&Store>,
    id: &IdentityConfig,
    now: Ts,
) -> crate::status::Row {
    let file = token_file_name(id);
    let (record, state) = match store {
        Some(s) => (
            s.read_token(&file).map_err(|e| e.to_string()),
            s.read_state(&id.name),
        ),
        None => (Ok(None), crate::store::IdentityState::default()),
    };
    let input = crate::status::Input {
        name: &id.name,
        provider: id.provider_label.as_str(),
        token_file: config.tokens_dir.join(&file),
        record: record.as_ref().map(Option::as_ref).map_err(Clone::clone),
        state: &state,
        needs_login_when_missing: id.egress().is_some(),
        not_used: match &record {
            Ok(Some(r)) => crate::binding::mismatch(r, id),
            _ => None,
        },
        uses_refresh_token: matches!(
            id.kind,
            crate::config::Kind::Egress(_) | crate::config::Kind::CognitoPassword { .. }
        ),
    };
    crate::status::row(&input, &config.refresh, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::{LoadOptions, load};

    /// An ingress identity and two egress identities of one provider, through the real
    /// loader.
    fn config() -> Config {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.yaml");
        std::fs::write(
            &p,
            "gateway_url: https://gw.example.com
tokens_dir: /nonexistent/tok
ingress:
  kind: oidc_m2m
  token_url: https://idp.example.com/token
  client_id: c
  client_secret: s
egress:
  - name: gh-work
    provider: github
    client_id: a
  - name: gh-home
    provider: github
    client_id: b
",
        )
        .unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let opts = LoadOptions {
            config: Some(p),
            ..LoadOptions::default()
        };
        let env = HashMap::from([("HOME".to_string(), d.path().display().to_string())]);
        load(&opts, &env).unwrap().config
    }

    fn running(o: &Oneshot) -> Vec<String> {
        o.identities
            .iter()
            .filter(|(_, run)| *run)
            .map(|(i, _)| i.name.clone())
            .collect()
    }

    #[test]
    fn oneshot_choices() {
        let c = config();
        let all = oneshot(&c, None, false, false).unwrap();
        assert_eq!(running(&all), ["ingress", "gh-work", "gh-home"]);
        assert!(!all.egress_only);
        assert_eq!(
            running(&oneshot(&c, None, false, true).unwrap()),
            ["ingress"]
        );
        assert_eq!(
            running(&oneshot(&c, None, true, false).unwrap()),
            ["gh-work", "gh-home"]
        );
        // A provider names every entry of it; an entry's name names that one only.
        let by_provider = oneshot(&c, Some("github"), false, false).unwrap();
        assert!(by_provider.egress_only);
        assert_eq!(running(&by_provider), ["gh-work", "gh-home"]);
        assert_eq!(
            running(&oneshot(&c, Some("gh-home"), false, false).unwrap()),
            ["gh-home"]
        );
        let e = oneshot(&c, Some("gitlab"), false, false).unwrap_err();
        assert_eq!(
            e,
            "no egress provider named `gitlab` is configured (configured: gh-work, gh-home)"
        );
    }

    #[test]
    fn names_and_providers() {
        let c = config();
        assert_eq!(named(&c, "ingress").unwrap().name, "ingress");
        assert_eq!(named(&c, "github").unwrap().name, "gh-work");
        assert_eq!(
            named(&c, "nope").unwrap_err(),
            "no identity named `nope` is configured (configured: ingress, gh-work, gh-home)"
        );
        let all: Vec<&str> = to_log_in(&c, None)
            .unwrap()
            .iter()
            .map(|l| l.id.name.as_str())
            .collect();
        assert_eq!(all, ["gh-work", "gh-home"]);
        assert_eq!(
            to_log_in(&c, Some("gh-home")).unwrap()[0].id.name,
            "gh-home"
        );
        assert!(to_log_in(&c, Some("ingress")).is_err(), "not an egress one");
    }
}
