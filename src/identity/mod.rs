//! Ways of getting a token. `reply` and `jwt` are pure parsers; `oauth` talks to token
//! endpoints and discovery documents over HTTP.

pub mod assertion;
pub mod cognito;
pub mod egress;
pub mod grant;
pub mod jwt;
pub mod oauth;
pub mod proxy;
pub mod reply;

use std::fmt;

pub use crate::failure::FailureKind;

/// A failed attempt to get a token. The message names the endpoint and what to do, and
/// never contains a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct FetchError {
    pub kind: FailureKind,
    pub message: String,
    /// A server-sent Retry-After, in milliseconds.
    pub retry_after_ms: Option<u64>,
    /// The OAuth error code (RFC 6749 §5.2 `error`, RFC 7009 §2.2.1) of the server's
    /// refusal, exactly as sent: for matching only, never shown (the message has it escaped).
    pub oauth_error: Option<String>,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl FetchError {
    pub fn transient(message: impl Into<String>) -> Self {
        FetchError {
            kind: FailureKind::Transient,
            message: message.into(),
            retry_after_ms: None,
            oauth_error: None,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        FetchError {
            kind: FailureKind::Permanent,
            message: message.into(),
            retry_after_ms: None,
            oauth_error: None,
        }
    }
    /// A failure only a new login mends.
    pub fn reauth(message: impl Into<String>) -> Self {
        FetchError {
            kind: FailureKind::ReauthRequired,
            message: message.into(),
            retry_after_ms: None,
            oauth_error: None,
        }
    }
}
