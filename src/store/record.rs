//! The token file format: the reference tool's fields first, in its order, then ours.
//! Unknown fields in a file are kept when it is rewritten.

use serde::{Deserialize, Serialize};

use crate::clock::Ts;
use crate::schedule::plan::{Expiry, TokenTimes};
use crate::secret::Secret;

fn lenient_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    // Files written by other tools may hold a number, a numeric string, or null.
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A value of a known set of spellings, or `None` for null and for a spelling this version
/// does not know (a file written by another tool or a newer version still loads).
pub(crate) fn lenient_known<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(Option::<serde_json::Value>::deserialize(d)?.and_then(|v| serde_json::from_value(v).ok()))
}

/// Where a token's recorded expiry came from; kept in the token file so `status` can say.
/// The serde spellings are those the token files have always held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpirySource {
    /// The reply's `expires_in`.
    ExpiresIn,
    /// The access token is a JWT: its `exp`.
    JwtExp,
    /// Nothing said: refreshed every `unknown_expiry_interval`.
    Unknown,
    /// The provider's tokens do not expire (the catalog says so, and no refresh token came).
    Never,
    /// The catalog's typical lifetime for a provider that sends none.
    Catalog,
}

impl ExpirySource {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpirySource::ExpiresIn => "expires_in",
            ExpirySource::JwtExp => "jwt_exp",
            ExpirySource::Unknown => "unknown",
            ExpirySource::Never => "never",
            ExpirySource::Catalog => "catalog",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    pub provider: String,
    #[serde(serialize_with = "crate::secret::expose_ser")]
    pub access_token: Secret,
    #[serde(serialize_with = "crate::secret::expose_ser_opt")]
    pub refresh_token: Option<Secret>,
    /// Epoch seconds; `null` when the expiry is unknown or the token never expires.
    #[serde(default, deserialize_with = "lenient_secs")]
    pub expires_at: Option<f64>,
    pub expires_at_human: Option<String>,
    #[serde(default = "bearer")]
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default)]
    pub saved_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pool_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_notes: Option<String>,
    /// Egress (reference fields): the Atlassian site id and the granted scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    // mcp-credd's own fields.
    /// The OpenID ID token, when the provider gave one (Cognito service accounts).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::secret::expose_ser_opt"
    )]
    pub id_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Epoch seconds when the token was obtained: the start of its lifetime for planning.
    #[serde(
        default,
        deserialize_with = "lenient_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub obtained_at: Option<f64>,
    #[serde(
        default,
        deserialize_with = "lenient_known",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiry_source: Option<ExpirySource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// What the token was obtained for; it is used only while the configuration agrees
    /// (`crate::binding`). Absent in the reference tool's files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
    /// Epoch seconds when the refresh token stops working, when the provider says.
    #[serde(
        default,
        deserialize_with = "lenient_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_token_expires_at: Option<f64>,
    /// Fields we do not know (written by another tool or a newer version), kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
impl TokenRecord {
    /// A record holding only a provider label and an access token, for unit tests to fill
    /// in with `..TokenRecord::bare(..)`.
    pub fn bare(provider: &str, access_token: &str) -> TokenRecord {
        TokenRecord {
            provider: provider.into(),
            access_token: Secret::new(access_token),
            refresh_token: None,
            id_token: None,
            expires_at: None,
            expires_at_human: None,
            token_type: "Bearer".into(),
            client_id: None,
            saved_at: String::new(),
            user_pool_id: None,
            region: None,
            usage_notes: None,
            cloud_id: None,
            scopes: None,
            refresh_token_expires_at: None,
            identity: None,
            obtained_at: None,
            expiry_source: None,
            scope: None,
            token_endpoint: None,
            binding: None,
            extra: Default::default(),
        }
    }
}

/// What identifies the identity a token was obtained for. Not secret: names and URLs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Binding {
    /// `cognito_m2m`, `oidc_m2m`, `cognito_password` or `egress`; `None` for a kind this
    /// version does not know (such a token serves no identity).
    #[serde(default, deserialize_with = "lenient_known")]
    pub kind: Option<crate::config::IdentityKind>,
    /// The token endpoint, the discovery document (issuer) or the Cognito API URL.
    pub endpoint: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pool_id: Option<String>,
    /// The scopes asked for (sorted), not those granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The gateway the token is handed to (`gateway_url`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

fn bearer() -> String {
    "Bearer".into()
}

impl TokenRecord {
    pub fn times(&self) -> TokenTimes {
        let expiry = match (self.expires_at, self.expiry_source) {
            (Some(e), _) => Expiry::At(Ts::from_secs_f64(e)),
            (None, Some(ExpirySource::Never)) => Expiry::Never,
            (None, _) => Expiry::Unknown,
        };
        TokenTimes {
            obtained_at: self.obtained_at.map(Ts::from_secs_f64),
            expiry,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a token record always serializes");
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_reference_files_and_keeps_unknown_fields() {
        let text = r#"{"provider":"cognito_m2m","access_token":"t","refresh_token":null,"expires_at":1718000000.5,
            "expires_at_human":"2024-06-10 06:13:20 UTC","token_type":"Bearer","client_id":"c","saved_at":"x",
            "user_pool_id":"p","region":"r","usage_notes":"n","future_field":[1]}"#;
        let r: TokenRecord = serde_json::from_str(text).unwrap();
        assert_eq!(r.times().expiry, Expiry::At(Ts(1_718_000_000_500)));
        assert_eq!(r.times().obtained_at, None);
        let out = String::from_utf8(r.to_json()).unwrap();
        assert!(out.contains("\"future_field\": [\n    1\n  ]"), "{out}");
        let keys: Vec<&str> = out
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
            .collect();
        assert_eq!(
            &keys[..8],
            [
                "provider",
                "access_token",
                "refresh_token",
                "expires_at",
                "expires_at_human",
                "token_type",
                "client_id",
                "saved_at"
            ]
        );
    }

    #[test]
    fn lenient_expiry() {
        let r: TokenRecord = serde_json::from_str(r#"{"provider":"p","access_token":"t","refresh_token":null,"expires_at":null,"expires_at_human":null}"#).unwrap();
        assert_eq!(r.times().expiry, Expiry::Unknown);
        assert_eq!(r.token_type, "Bearer");
        let r: TokenRecord = serde_json::from_str(r#"{"provider":"p","access_token":"t","refresh_token":null,"expires_at":"12.5","expires_at_human":null,"expiry_source":"never"}"#).unwrap();
        assert_eq!(r.expires_at, Some(12.5));
        assert_eq!(r.expiry_source, Some(ExpirySource::Never));
        assert!(!format!("{r:?}").contains("\"t\""));
        // A source this version does not know (another tool, a newer version): still loads.
        let r: TokenRecord = serde_json::from_str(r#"{"provider":"p","access_token":"t","refresh_token":null,"expires_at":null,"expires_at_human":null,"expiry_source":"sundial"}"#).unwrap();
        assert_eq!(r.expiry_source, None);
        assert_eq!(r.times().expiry, Expiry::Unknown);
    }
}
