//! Token endpoint replies (`identity::reply`) on arbitrary bytes, flat and Slack-nested.
//!
//! Properties: no panic; Ok means a non-empty access token and token type, and positive
//! lifetimes when present; computing the expiry from the reply never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_credd::clock::Ts;
use mcp_credd::identity::reply::{TokenReply, expiry_of, parse, parse_error, parse_nested};

fn check(r: &TokenReply) {
    assert!(
        !r.access_token.expose().is_empty(),
        "Ok with an empty access token"
    );
    assert!(!r.token_type.is_empty(), "Ok with an empty token type");
    assert!(r.expires_in.is_none_or(|s| s > 0));
    assert!(r.refresh_token_expires_in.is_none_or(|s| s > 0));
    assert!(r.refresh_token.as_ref().is_none_or(|t| !t.is_empty()));
    for now in [Ts(0), Ts(1_800_000_000_000), Ts(i64::MAX), Ts(i64::MIN)] {
        let _ = expiry_of(r, now);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse(data) {
        check(&r);
    }
    if let Ok(r) = parse_nested(data, Some("authed_user")) {
        check(&r);
    }
    if let Some(e) = parse_error(data) {
        let _ = mcp_credd::identity::reply::describe(&e);
    }
});
