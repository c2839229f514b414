//! `private_key_jwt` client authentication (RFC 7523 §2.2, OIDC Core §9): a short-lived
//! JWT signed with the client's private key. iss = sub = client_id, aud = the token
//! endpoint, a unique `jti`, `exp` one minute after `iat`. RS256 for an RSA key, ES256 for
//! an EC P-256 key (PEM, PKCS#1 or PKCS#8 for RSA, PKCS#8 for EC). Pure apart from the
//! `jti` randomness, which the caller passes in.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// The form parameter value naming the assertion type.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is good for: long enough for one request and its clock skew.
pub const LIFETIME_SECS: i64 = 60;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: i64,
    exp: i64,
}

/// A signing key read from PEM text, with the algorithm that goes with it.
pub struct SigningKey {
    key: EncodingKey,
    alg: Algorithm,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({:?}, [redacted])", self.alg)
    }
}

impl SigningKey {
    /// Reads an RSA (RS256) or EC P-256 (ES256) private key. The error never quotes the key.
    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        if !pem.contains("PRIVATE KEY-----") {
            return Err(
                "the private key is not a PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)"
                    .into(),
            );
        }
        if let Ok(key) = EncodingKey::from_rsa_pem(pem.as_bytes()) {
            return Ok(SigningKey {
                key,
                alg: Algorithm::RS256,
            });
        }
        if let Ok(key) = EncodingKey::from_ec_pem(pem.as_bytes()) {
            return Ok(SigningKey {
                key,
                alg: Algorithm::ES256,
            });
        }
        Err("the private key is neither an RSA key nor an EC P-256 key in PKCS#8 form; convert it with `openssl pkcs8 -topk8 -nocrypt`".into())
    }

    pub fn algorithm(&self) -> &'static str {
        match self.alg {
            Algorithm::ES256 => "ES256",
            _ => "RS256",
        }
    }

    /// Signs an assertion for `client_id` at `token_endpoint`, issued at `now_secs`.
    pub fn assertion(
        &self,
        client_id: &str,
        token_endpoint: &str,
        now_secs: i64,
        jti: [u8; 16],
    ) -> Result<String, String> {
        let claims = Claims {
            iss: client_id,
            sub: client_id,
            aud: token_endpoint,
            jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
            iat: now_secs,
            exp: now_secs + LIFETIME_SECS,
        };
        let header = Header::new(self.alg);
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("cannot sign the client assertion: {e}"))
    }
}

/// A fresh random `jti`.
pub fn random_jti() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source works");
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    // Test keys made for this test with openssl; they protect nothing.
    const RSA_PEM: &str = include_str!("testdata/rsa-test.pem");
    const RSA_PUB: &str = include_str!("testdata/rsa-test.pub.pem");
    const EC_PEM: &str = include_str!("testdata/ec-test.pem");
    const EC_PUB: &str = include_str!("testdata/ec-test.pub.pem");

    fn check(pem: &str, public: &str, alg: Algorithm) {
        let k = SigningKey::from_pem(pem).unwrap();
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let a = k
            .assertion("agent", "https://as.example.com/token", now, [7; 16])
            .unwrap();
        let b = k
            .assertion("agent", "https://as.example.com/token", now, [8; 16])
            .unwrap();
        assert_ne!(a, b, "each assertion has its own jti");
        let dk = match alg {
            Algorithm::ES256 => DecodingKey::from_ec_pem(public.as_bytes()).unwrap(),
            _ => DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
        };
        let mut v = Validation::new(alg);
        v.set_audience(&["https://as.example.com/token"]);
        v.set_issuer(&["agent"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(&a, &dk, &v).unwrap();
        let c = data.claims;
        assert_eq!(c["sub"], "agent");
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 60);
        assert_eq!(data.header.alg, alg);
    }

    #[test]
    fn signs_with_rsa_and_ec_keys() {
        check(RSA_PEM, RSA_PUB, Algorithm::RS256);
        check(EC_PEM, EC_PUB, Algorithm::ES256);
        assert_eq!(SigningKey::from_pem(EC_PEM).unwrap().algorithm(), "ES256");
    }

    #[test]
    fn bad_keys_are_refused_without_quoting_them() {
        let e = SigningKey::from_pem("hunter2").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = SigningKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(e.contains("neither an RSA key"), "{e}");
        assert!(!e.contains("c2VjcmV0"));
        assert!(!format!("{:?}", SigningKey::from_pem(RSA_PEM).unwrap()).contains("MII"));
    }
}
