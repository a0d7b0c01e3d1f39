//! The one HMAC signature scheme of Innkeep's HTTP callbacks, both ways: the payment
//! provider's callbacks to us (`X-Signature`, verified by the HTTP layer; the built-in
//! sandbox signs with it) and our outbound webhooks (`Innkeep-Signature`). A header is
//! `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, so one verifier
//! serves both.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA256(secret, "`<timestamp>`.`<body>`"): 32 bytes. HMAC takes a key of any
/// length, so this cannot fail.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> [u8; 32] {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        unreachable!("HMAC takes keys of any length (long ones are hashed, short ones padded)")
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The header value `t=<t>,v1=<hex signature>` signing `body` at unix second `t`.
pub fn header(secret: &[u8], t: i64, body: &[u8]) -> String {
    let ts = t.to_string();
    format!("t={ts},v1={}", hex::encode(sign(secret, &ts, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scheme is HMAC-SHA256 over "t.body" in lower-case hex, checked against a value
    /// computed independently (`printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac
    /// whsec-0123456789abcdef`).
    #[test]
    fn header_is_hmac_sha256_of_timestamp_dot_body() {
        let h = header(b"whsec-0123456789abcdef", 1_700_000_000, br#"{"a":1}"#);
        let (t, v1) = h.split_once(',').unwrap();
        assert_eq!(t, "t=1700000000");
        let v1 = v1.strip_prefix("v1=").unwrap();
        assert_eq!(
            v1,
            "d77c78ac4da074c56908b55eac30358b2a7bfc573be4c76819af5102e8dcf939"
        );
        assert_eq!(
            v1,
            hex::encode(sign(b"whsec-0123456789abcdef", "1700000000", br#"{"a":1}"#))
        );
        // Any change of secret, time or body changes it.
        assert_ne!(
            h,
            header(b"whsec-0123456789abcdeg", 1_700_000_000, br#"{"a":1}"#)
        );
        assert_ne!(
            h,
            header(b"whsec-0123456789abcdef", 1_700_000_001, br#"{"a":1}"#)
        );
        assert_ne!(
            h,
            header(b"whsec-0123456789abcdef", 1_700_000_000, br#"{"a":2}"#)
        );
    }
}
