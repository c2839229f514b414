//! The proxy rules both HTTP stacks follow (reqwest's `Http` and the Cognito SDK's client),
//! read in one place (`config::load`, from the environment the configuration is loaded
//! from, the secrets file included; never from the process's own): never a proxy for plain http (which goes only to loopback, and would
//! carry secrets in clear text to the proxy); for https, `HTTPS_PROXY` (or `ALL_PROXY`),
//! minus `NO_PROXY`. `HTTP_PROXY` is ignored.

/// The proxy settings from the environment; empty values count as unset. Its Debug form
/// shows the proxy without a user name or password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// The proxy for https requests.
    pub https: Option<String>,
    /// Hosts reached without it (the `NO_PROXY` syntax).
    pub no_proxy: Option<String>,
}

/// What to say when the proxy variable cannot be used.
pub const INVALID: &str = "the HTTPS_PROXY (or ALL_PROXY) variable is not a valid proxy URL";

impl std::fmt::Debug for ProxyEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyEnv")
            .field(
                "https",
                &self
                    .https
                    .as_deref()
                    .map(|u| crate::sanitize::redact_url(u, false)),
            )
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ProxyEnv {
    /// From a variable lookup (upper case first, as curl reads them).
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> ProxyEnv {
        let get = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| env(k).filter(|v| !v.trim().is_empty()))
        };
        ProxyEnv {
            https: get(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]),
            no_proxy: get(&["NO_PROXY", "no_proxy"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_proxys_credentials() {
        let p = ProxyEnv {
            https: Some("http://user:pr0xy-pw@proxy.example:3128".into()),
            no_proxy: None,
        };
        let d = format!("{p:?}");
        assert!(
            d.contains("http://proxy.example:3128") && !d.contains("pr0xy-pw"),
            "{d}"
        );
    }

    #[test]
    fn https_and_all_proxy_in_order_http_proxy_never() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let p = ProxyEnv::from_lookup(&env(&[
            ("HTTP_PROXY", "http://h:1"),
            ("all_proxy", "http://a:1"),
            ("https_proxy", "http://s:1"),
            ("no_proxy", "example.com"),
        ]));
        assert_eq!(p.https.as_deref(), Some("http://s:1"));
        assert_eq!(p.no_proxy.as_deref(), Some("example.com"));
        let p = ProxyEnv::from_lookup(&env(&[("HTTPS_PROXY", " "), ("ALL_PROXY", "http://a:1")]));
        assert_eq!(
            p.https.as_deref(),
            Some("http://a:1"),
            "empty counts as unset"
        );
        assert_eq!(
            ProxyEnv::from_lookup(&env(&[("HTTP_PROXY", "http://h:1")])),
            ProxyEnv::default()
        );
    }
}
