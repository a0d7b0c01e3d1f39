//! `innkeep keygen`: a new API key and the SHA-256 that goes into the configuration.

use sha2::{Digest, Sha256};

/// Random bytes in a key: 256 bits, far beyond guessing.
pub const KEY_BYTES: usize = 32;

/// A new key (hex of [`KEY_BYTES`] random bytes from the OS) and its SHA-256 (hex).
pub fn generate() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes)?;
    let key = hex::encode(bytes);
    let hash = sha256_hex(&key);
    Ok((key, hash))
}

/// SHA-256 of a key as the configuration's `key_sha256` wants it: lowercase hex of the
/// hash of the key's text (what a client sends after `Bearer `).
pub fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// What `innkeep keygen` prints: the key and its hash as `key = "…"` and
/// `key_sha256 = "…"` lines (machine-readable), then a commented configuration entry.
pub fn text(key: &str, hash: &str) -> String {
    format!(
        "# A new Innkeep API key. Give `key` to the client (it sends \
         `Authorization: Bearer <key>`);\n\
         # it is shown only this once. Only `key_sha256` goes into the configuration.\n\
         key = \"{key}\"\n\
         key_sha256 = \"{hash}\"\n\
         \n\
         # In innkeep.toml:\n\
         # [[api_keys]]\n\
         # name = \"my-client\"\n\
         # key_sha256 = \"{hash}\"\n\
         # role = \"channel\"        # admin | channel | front_desk\n\
         # hotels = [\"*\"]          # or [\"H1\", \"H2\"]\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of a `name = "..."` line.
    pub(crate) fn value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .trim()
                .strip_prefix('=')?
                .trim()
                .strip_prefix('"')?
                .strip_suffix('"')
        })
    }

    #[test]
    fn keygen_output_format() {
        let (key, hash) = generate().unwrap();
        let out = text(&key, &hash);
        let k = value(&out, "key ").unwrap();
        let h = value(&out, "key_sha256 ").unwrap();
        assert_eq!((k, h), (key.as_str(), hash.as_str()));
        for v in [k, h] {
            assert_eq!(v.len(), 64);
            assert!(v
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        assert_eq!(sha256_hex(k), h);
        assert_eq!(
            innkeep_http::auth::parse_key_sha256(h),
            Some(innkeep_http::auth::hash_key(k))
        );
        // The configuration snippet is commented out and names the fields.
        assert!(out.contains("# [[api_keys]]") && out.contains("# role = "));
        // Fresh randomness each time.
        assert_ne!(generate().unwrap().0, key);
    }
}
