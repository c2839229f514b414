//! The provider catalog: one YAML definition per OAuth provider (`providers/*.yaml`,
//! embedded in the binary), overridable and extendable by the user's files and by the
//! config's `providers:` map. Pure: parsing, merging and `{variable}` substitution.

use std::collections::BTreeMap;

use serde::Deserialize;

/// How the client authenticates at the token endpoint when it has a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuth {
    #[default]
    Basic,
    Post,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenBody {
    #[default]
    Form,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshKind {
    /// Each refresh may return a new refresh token and invalidate the old one.
    Rotating,
    /// The refresh token stays valid across refreshes.
    Reusable,
    /// Tokens do not expire; there is no refresh token.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudIdExtra {
    pub url: String,
    pub header: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Extras {
    pub cloud_id: Option<CloudIdExtra>,
}

/// One provider, as documented in providers/README.md.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderDef {
    /// Defaults to the provider's key.
    #[serde(default)]
    pub display_name: String,
    /// Empty: read from the `issuer`'s discovery document when needed.
    #[serde(default)]
    pub authorize_url: String,
    #[serde(default)]
    pub token_url: String,
    /// Defaults to none: the client's default scopes at the provider.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default = "default_scope_param")]
    pub scope_param: String,
    #[serde(default = "default_separator")]
    pub scope_separator: String,
    /// Defaults to on (S256); turn it off only for providers that reject it.
    #[serde(default = "yes")]
    pub pkce: bool,
    /// Defaults to `basic` (RFC 6749 §2.3.1).
    #[serde(default)]
    pub token_auth: TokenAuth,
    #[serde(default)]
    pub token_body: TokenBody,
    #[serde(default)]
    pub accept_json: bool,
    #[serde(default)]
    pub auth_params: BTreeMap<String, String>,
    pub reply_nesting: Option<String>,
    /// Defaults to `rotating`: the safe assumption, since every new refresh token is
    /// stored before use and the old one kept when none comes.
    #[serde(default = "rotating")]
    pub refresh: RefreshKind,
    pub access_token_lifetime: Option<i64>,
    pub refresh_token_lifetime: Option<i64>,
    pub device_authorization_url: Option<String>,
    pub revocation_url: Option<String>,
    pub userinfo_url: Option<String>,
    /// The `iss` the provider puts on its redirect (RFC 9207), checked when set.
    pub issuer: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub extras: Extras,
    pub notes: Option<String>,
}

fn yes() -> bool {
    true
}

fn rotating() -> RefreshKind {
    RefreshKind::Rotating
}

fn default_scope_param() -> String {
    "scope".into()
}

fn default_separator() -> String {
    " ".into()
}

/// The built-in definitions, by key.
pub const BUILTIN: &[(&str, &str)] = &[
    ("atlassian", include_str!("../providers/atlassian.yaml")),
    ("box", include_str!("../providers/box.yaml")),
    ("cognito", include_str!("../providers/cognito.yaml")),
    ("github", include_str!("../providers/github.yaml")),
    ("google", include_str!("../providers/google.yaml")),
    ("keycloak", include_str!("../providers/keycloak.yaml")),
    ("linear", include_str!("../providers/linear.yaml")),
    ("microsoft", include_str!("../providers/microsoft.yaml")),
    ("notion", include_str!("../providers/notion.yaml")),
    ("salesforce", include_str!("../providers/salesforce.yaml")),
    ("slack", include_str!("../providers/slack.yaml")),
    ("zoom", include_str!("../providers/zoom.yaml")),
];

/// The catalog as YAML mappings, so overrides can replace single fields.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    raw: BTreeMap<String, yaml_serde::Mapping>,
}

impl Catalog {
    pub fn builtin() -> Catalog {
        let mut c = Catalog::default();
        for (key, text) in BUILTIN {
            let m: yaml_serde::Mapping =
                yaml_serde::from_str(text).expect("built-in provider definitions parse");
            c.raw.insert((*key).to_string(), m);
        }
        c
    }

    /// Layers `over` on top of the definition `key` (field by field), or adds it.
    pub fn overlay(&mut self, key: &str, over: yaml_serde::Mapping) {
        let entry = self.raw.entry(key.to_string()).or_default();
        for (k, v) in over {
            entry.insert(k, v);
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.raw.keys().map(String::as_str)
    }

    /// The definition of `key`, validated.
    pub fn get(&self, key: &str) -> Option<Result<ProviderDef, String>> {
        let m = self.raw.get(key)?;
        Some(
            yaml_serde::from_value::<ProviderDef>(yaml_serde::Value::Mapping(m.clone()))
                .map(|mut d| {
                    if d.display_name.is_empty() {
                        d.display_name = key.to_string();
                    }
                    d
                })
                .map_err(|e| format!("provider `{key}`: {e}")),
        )
    }
}

/// Replaces `{name}` in `template` by `vars[name]`; names a variable that is unset.
pub fn substitute(template: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        match vars.get(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push_str(v.trim_end_matches('/')),
            None => {
                return Err(format!(
                    "`{name}` is not set; add `variables: {{{name}: ...}}`"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ProviderDef {
    /// The definition with its URL placeholders filled from the defaults and `vars`.
    pub fn resolved(&self, vars: &BTreeMap<String, String>) -> Result<ProviderDef, String> {
        let mut all = self.variables.clone();
        all.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        let sub = |s: &str| substitute(s, &all);
        let opt = |s: &Option<String>| s.as_deref().map(sub).transpose();
        let mut d = self.clone();
        d.authorize_url = sub(&self.authorize_url)?;
        d.token_url = sub(&self.token_url)?;
        d.device_authorization_url = opt(&self.device_authorization_url)?;
        d.revocation_url = opt(&self.revocation_url)?;
        d.userinfo_url = opt(&self.userinfo_url)?;
        d.issuer = opt(&self.issuer)?;
        d.variables = all;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_resolves_with_its_defaults_or_says_what_is_missing() {
        let c = Catalog::builtin();
        assert_eq!(c.keys().count(), 12);
        for key in c.keys() {
            let d = c.get(key).unwrap().unwrap_or_else(|e| panic!("{e}"));
            assert!(!d.display_name.is_empty());
            match d.resolved(&BTreeMap::new()) {
                Ok(r) => {
                    assert!(
                        r.authorize_url.starts_with("https://"),
                        "{key}: {}",
                        r.authorize_url
                    );
                    assert!(r.token_url.starts_with("https://"), "{key}");
                }
                Err(e) => assert!(e.contains("is not set"), "{key}: {e}"),
            }
        }
    }

    #[test]
    fn catalog_facts() {
        let c = Catalog::builtin();
        let g = |k: &str| c.get(k).unwrap().unwrap();
        assert!(!g("atlassian").pkce);
        assert_eq!(
            g("atlassian").extras.cloud_id.unwrap().header,
            "X-Atlassian-Cloud-Id"
        );
        assert!(g("google").pkce && g("github").accept_json);
        assert_eq!(g("notion").token_body, TokenBody::Json);
        assert_eq!(g("slack").reply_nesting.as_deref(), Some("authed_user"));
        assert_eq!(g("github").refresh, RefreshKind::None);
        let ms = g("microsoft").resolved(&BTreeMap::new()).unwrap();
        assert!(
            ms.authorize_url.contains("/common/"),
            "{}",
            ms.authorize_url
        );
        let kc = g("keycloak")
            .resolved(&BTreeMap::from([
                ("base_url".into(), "https://id.example.com/".into()),
                ("realm".into(), "mcp".into()),
            ]))
            .unwrap();
        assert_eq!(
            kc.token_url,
            "https://id.example.com/realms/mcp/protocol/openid-connect/token"
        );
    }

    #[test]
    fn overlay_replaces_fields() {
        let mut c = Catalog::builtin();
        c.overlay(
            "github",
            yaml_serde::from_str("scopes: [read:user]").unwrap(),
        );
        assert_eq!(c.get("github").unwrap().unwrap().scopes, vec!["read:user"]);
        c.overlay("mine", yaml_serde::from_str("display_name: Mine\nauthorize_url: https://a\ntoken_url: https://t\nscopes: []\npkce: true\ntoken_auth: post\nrefresh: rotating\n").unwrap());
        assert_eq!(c.get("mine").unwrap().unwrap().token_auth, TokenAuth::Post);
        // Only the endpoints are needed; the rest has defaults.
        c.overlay(
            "short",
            yaml_serde::from_str("authorize_url: https://a\ntoken_url: https://t\n").unwrap(),
        );
        let d = c.get("short").unwrap().unwrap();
        assert_eq!(
            (d.display_name.as_str(), d.pkce, d.token_auth, d.refresh),
            ("short", true, TokenAuth::Basic, RefreshKind::Rotating)
        );
        assert!(d.scopes.is_empty());
        c.overlay("bad", yaml_serde::from_str("pkce: maybe\n").unwrap());
        assert!(
            c.get("bad")
                .unwrap()
                .unwrap_err()
                .contains("provider `bad`")
        );
        assert!(c.get("nope").is_none());
    }

    #[test]
    fn substitution() {
        let v = BTreeMap::from([("tenant".to_string(), "common".to_string())]);
        assert_eq!(
            substitute("https://l/{tenant}/x", &v).unwrap(),
            "https://l/common/x"
        );
        assert!(
            substitute("https://{nope}/", &v)
                .unwrap_err()
                .contains("`nope` is not set")
        );
    }
}
