//! Which identity a stored token belongs to. Every token file mcp-credd writes records what
//! the token was obtained for (`binding`: kind, token endpoint or issuer, client id,
//! username, user pool, scopes, audience, resource); a stored token is used, refreshed or
//! rendered only while all of these still match the configuration. Pure.

use crate::config::{Endpoint, IdentityConfig, IdentityKind, Kind};
use crate::store::TokenRecord;
use crate::store::record::Binding;

/// Where an identity's tokens come from, as the configuration names it: the token URL,
/// the discovery document (an issuer), or the Cognito API of a region.
pub fn endpoint_of(id: &IdentityConfig) -> String {
    match &id.endpoint {
        Endpoint::TokenUrl(u) => u.clone(),
        Endpoint::Discovery { url, .. } => url.clone(),
        Endpoint::McpServer {
            server_url,
            authorization_server,
        } => authorization_server
            .clone()
            .unwrap_or_else(|| server_url.clone()),
        Endpoint::CognitoApi => match &id.kind {
            Kind::CognitoPassword {
                region, account, ..
            } => account
                .endpoint_url
                .clone()
                .unwrap_or_else(|| format!("https://cognito-idp.{region}.amazonaws.com/")),
            // The config gives this endpoint to service accounts only.
            _ => String::new(),
        },
    }
}

/// What a token obtained now for `id` is bound to.
pub fn of(id: &IdentityConfig) -> Binding {
    let mut scopes = id.scopes.clone();
    scopes.sort();
    scopes.dedup();
    Binding {
        kind: Some(id.kind.tag()),
        endpoint: endpoint_of(id),
        client_id: id.client_id.clone(),
        username: id.cognito().map(|c| c.username.clone()),
        user_pool_id: id.user_pool_id().map(str::to_string),
        scopes,
        audience: id.audience().map(str::to_string),
        resource: id.resource().map(str::to_string),
        gateway: id.gateway.clone(),
    }
}

fn show(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("`{s}`"),
        None => "none".into(),
    }
}

/// Why the stored token `rec` may not be used for `id` as configured now; `None` when it
/// may. Files without a binding (the reference tool's, or mcp-credd's before bindings) are
/// adopted when what they do record matches: provider, client id and token endpoint. A
/// service account's file is never adopted without one: it names no user, and signing in
/// again needs no person.
pub fn mismatch(rec: &TokenRecord, id: &IdentityConfig) -> Option<String> {
    if rec.provider != id.provider_label.as_str() {
        return Some(format!(
            "it was obtained from provider `{}`, the configuration says `{}`",
            rec.provider, id.provider_label
        ));
    }
    let Some(b) = &rec.binding else {
        if let Some(c) = &rec.client_id
            && c != &id.client_id
        {
            return Some(format!(
                "it was obtained for client `{c}`, the configuration says `{}`",
                id.client_id
            ));
        }
        if let (Some(t), Endpoint::TokenUrl(u)) = (&rec.token_endpoint, &id.endpoint)
            && t != u
        {
            return Some(format!(
                "it was obtained from `{t}`, the configuration says `{u}`"
            ));
        }
        if id.cognito().is_some() {
            return Some("the file does not say which user it was obtained for".into());
        }
        return None;
    };
    let want = of(id);
    let differs = |what: &str, had: String, now: String| {
        Some(format!(
            "it was obtained for {what} {had}, the configuration says {now}"
        ))
    };
    if b.kind != want.kind {
        let name = |k: Option<IdentityKind>| k.map_or("(another)", IdentityKind::as_str);
        return differs(
            "kind",
            format!("`{}`", name(b.kind)),
            format!("`{}`", name(want.kind)),
        );
    }
    // An MCP server's interactive identity finds its issuer and (without a configured
    // `client_id`) its client at login: the configuration alone pins only what it names.
    // A refresh compares the rest with what discovery finds (`mcpauth::interactive`).
    let mcp = id.mcp_login();
    let pinned_issuer = mcp.is_none_or(|(_, issuer)| issuer.is_some());
    if pinned_issuer && b.endpoint != want.endpoint {
        let shown = |u: &str| format!("`{}`", crate::sanitize::redact_url(u, true));
        return differs("token endpoint", shown(&b.endpoint), shown(&want.endpoint));
    }
    if (mcp.is_none() || !want.client_id.is_empty()) && b.client_id != want.client_id {
        return differs(
            "client",
            format!("`{}`", b.client_id),
            format!("`{}`", want.client_id),
        );
    }
    if b.username != want.username {
        return differs("username", show(&b.username), show(&want.username));
    }
    if b.user_pool_id != want.user_pool_id {
        return differs("user pool", show(&b.user_pool_id), show(&want.user_pool_id));
    }
    let mut had = b.scopes.clone();
    had.sort();
    had.dedup();
    // An MCP login may hold more scopes than configured (a step-up asked for them).
    let scopes_differ = match mcp {
        Some(_) => !want.scopes.iter().all(|s| had.contains(s)),
        None => had != want.scopes,
    };
    if scopes_differ {
        let list = |s: &[String]| {
            if s.is_empty() {
                "none".to_string()
            } else {
                format!("`{}`", s.join(" "))
            }
        };
        return differs("scopes", list(&had), list(&want.scopes));
    }
    if b.audience != want.audience {
        return differs("audience", show(&b.audience), show(&want.audience));
    }
    if b.resource != want.resource {
        return differs("resource", show(&b.resource), show(&want.resource));
    }
    // A token is handed only to the gateway it was obtained for: a `.env` planted in a
    // checkout cannot pair a stored token with a gateway of its own. (Bindings written
    // before the gateway was recorded have none and are adopted.)
    if b.gateway.is_some() && b.gateway != want.gateway {
        return differs("gateway", show(&b.gateway), show(&want.gateway));
    }
    None
}

/// May `rec` be used for `id` as configured now?
pub fn matches(rec: &TokenRecord, id: &IdentityConfig) -> bool {
    mismatch(rec, id).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientAuth, CognitoPassword, Kind, ProviderLabel};
    use crate::secret::Secret;

    fn service_account(user: &str) -> IdentityConfig {
        IdentityConfig {
            gateway: None,
            name: "svc".into(),
            file_name: "svc.json".into(),
            kind: Kind::CognitoPassword {
                region: "us-east-1".into(),
                user_pool_id: Some("us-east-1_P".into()),
                account: CognitoPassword {
                    username: user.into(),
                    password: Secret::new("pw"),
                    bearer: Default::default(),
                    refresh_rotation: false,
                    endpoint_url: None,
                },
            },
            provider_label: ProviderLabel::CognitoPassword,
            client_id: "c".into(),
            client_secret: None,
            scopes: vec![],
            endpoint: Endpoint::CognitoApi,
            client_auth: ClientAuth::Basic,
            extra_fields: vec![],
            extra_headers: vec![],
        }
    }

    fn m2m(token_url: &str, scopes: &[&str]) -> IdentityConfig {
        IdentityConfig {
            gateway: None,
            kind: Kind::OidcM2m {
                audience: None,
                resource: None,
            },
            provider_label: ProviderLabel::OidcM2m,
            endpoint: Endpoint::TokenUrl(token_url.into()),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..service_account("x")
        }
    }

    fn record_for(id: &IdentityConfig) -> TokenRecord {
        let mut r: TokenRecord = serde_json::from_str(&format!(
            r#"{{"provider":"{}","access_token":"t","refresh_token":null,"expires_at":null,"expires_at_human":null,"client_id":"c"}}"#,
            id.provider_label
        ))
        .unwrap();
        r.binding = Some(of(id));
        r
    }

    #[test]
    fn a_kind_this_version_does_not_know_binds_to_nothing() {
        let alice = service_account("alice");
        let mut v = serde_json::to_value(record_for(&alice)).unwrap();
        assert_eq!(v["binding"]["kind"], "cognito_password");
        v["binding"]["kind"] = "quantum".into();
        let rec: TokenRecord = serde_json::from_value(v).unwrap();
        assert_eq!(rec.binding.as_ref().unwrap().kind, None);
        assert_eq!(
            mismatch(&rec, &alice).unwrap(),
            "it was obtained for kind `(another)`, the configuration says `cognito_password`"
        );
    }

    #[test]
    fn a_changed_user_or_issuer_unbinds_the_token() {
        let alice = service_account("alice");
        let rec = record_for(&alice);
        assert_eq!(mismatch(&rec, &alice), None);
        let why = mismatch(&rec, &service_account("bob")).unwrap();
        assert_eq!(
            why,
            "it was obtained for username `alice`, the configuration says `bob`"
        );
        let a = m2m("https://a.example/token", &["x", "y"]);
        let rec = record_for(&a);
        assert!(matches(
            &rec,
            &m2m("https://a.example/token", &["y", "x", "x"])
        ));
        let why = mismatch(&rec, &m2m("https://b.example/token", &["x", "y"])).unwrap();
        assert!(
            why.contains("token endpoint `https://a.example/token`"),
            "{why}"
        );
        let why = mismatch(&rec, &m2m("https://a.example/token", &["x"])).unwrap();
        assert!(why.contains("scopes `x y`"), "{why}");
        let mut other_aud = m2m("https://a.example/token", &["x", "y"]);
        other_aud.kind = Kind::OidcM2m {
            audience: Some("api".into()),
            resource: None,
        };
        assert!(
            mismatch(&rec, &other_aud)
                .unwrap()
                .contains("audience none")
        );
    }

    fn mcp_login_at(
        resource: &str,
        client: &str,
        issuer: Option<&str>,
        scopes: &[&str],
    ) -> IdentityConfig {
        IdentityConfig {
            kind: Kind::Egress(Box::new(crate::config::EgressConfig {
                provider: "calc".into(),
                def: serde_json::from_value(serde_json::json!({})).unwrap(),
                redirect_uri: String::new(),
                server: "calc".into(),
                cloud_site: None,
                resource: Some(resource.into()),
            })),
            provider_label: ProviderLabel::McpOauth,
            client_id: client.into(),
            endpoint: Endpoint::McpServer {
                server_url: resource.into(),
                authorization_server: issuer.map(str::to_string),
            },
            ..m2m("https://unused.example/token", scopes)
        }
    }

    fn mcp_login(client: &str, issuer: Option<&str>, scopes: &[&str]) -> IdentityConfig {
        mcp_login_at("https://calc.example/mcp", client, issuer, scopes)
    }

    #[test]
    fn an_mcp_login_is_bound_to_what_discovery_found() {
        // The token as obtained: issuer, registered client, the scopes asked (a step-up).
        let got = mcp_login(
            "dcr-1",
            Some("https://as.example"),
            &["mcp:tools", "mcp:read"],
        );
        let rec = record_for(&got);
        // The configuration names none of them: served.
        assert_eq!(mismatch(&rec, &mcp_login("", None, &[])), None);
        assert_eq!(mismatch(&rec, &mcp_login("", None, &["mcp:read"])), None);
        // What it names must agree.
        assert!(
            mismatch(&rec, &mcp_login("", Some("https://other.example"), &[]))
                .unwrap()
                .contains("token endpoint `https://as.example`")
        );
        assert!(
            mismatch(&rec, &mcp_login("pre-registered", None, &[]))
                .unwrap()
                .contains("client `dcr-1`")
        );
        assert!(
            mismatch(&rec, &mcp_login("", None, &["mcp:admin"]))
                .unwrap()
                .contains("scopes")
        );
        let moved = mcp_login_at("https://calc2.example/mcp", "", None, &[]);
        assert!(mismatch(&rec, &moved).unwrap().contains("resource"));
        // The same discovery result matches in full.
        assert_eq!(mismatch(&rec, &got), None);
    }

    #[test]
    fn unbound_files_are_adopted_only_when_nothing_they_record_differs() {
        let a = m2m("https://a.example/token", &[]);
        let mut rec = record_for(&a);
        rec.binding = None;
        assert!(matches(&rec, &a), "the reference tool's files are read");
        rec.token_endpoint = Some("https://old.example/token".into());
        assert!(!matches(&rec, &a));
        rec.token_endpoint = None;
        rec.client_id = Some("other".into());
        assert!(!matches(&rec, &a));
        let alice = service_account("alice");
        let mut rec = record_for(&alice);
        rec.binding = None;
        assert!(mismatch(&rec, &alice).unwrap().contains("which user"));
    }
}
