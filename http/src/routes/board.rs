//! `GET /board/{hotel_id}`: the room board, one static page (HTML, CSS and JS embedded in
//! the binary; no CDN, no build step).
//!
//! The page is public: a browser navigation cannot send a Bearer header, and the shell
//! holds no data — it is the same bytes for every hotel code. Everything it shows it asks
//! the API for (rooms, front desk, the event stream) with the API key the user types in,
//! which those routes check as always. A Content-Security-Policy with the hashes of the
//! inline script and style lets nothing else run on the page, since the key sits in its
//! sessionStorage.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use innkeep_engine::HotelId;
use sha2::{Digest, Sha256};

use crate::constraints::Code;
use crate::error::{ApiError, Problem};
use crate::extract::ApiPath;

const HTML: &str = include_str!("../../assets/board.html");
const CSS: &str = include_str!("../../assets/board.css");
const JS: &str = include_str!("../../assets/board.js");
const CSS_SLOT: &str = "/*BOARD_CSS*/";
const JS_SLOT: &str = "/*BOARD_JS*/";

/// The assembled page and its policy, built once.
struct Page {
    html: String,
    csp: HeaderValue,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| Page {
    html: HTML.replacen(CSS_SLOT, CSS, 1).replacen(JS_SLOT, JS, 1),
    csp: HeaderValue::from_str(&content_security_policy())
        .unwrap_or(HeaderValue::from_static("default-src 'none'")),
});

/// Only the page's own inline script and style run; it may talk to its own origin and
/// nothing else, may not be framed, and has no forms that submit anywhere.
fn content_security_policy() -> String {
    format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
         connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        base64(&Sha256::digest(JS.as_bytes())),
        base64(&Sha256::digest(CSS.as_bytes())),
    )
}

/// Standard base64 with padding (what CSP hash sources use).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The room board of a hotel: a grid of rooms coloured by status, today's arrivals and
/// departures, live from the event stream. Public (no key): the page is the same static
/// shell for every hotel and asks the user for an API key when the API answers 401.
#[utoipa::path(
    get,
    path = "/board/{hotel_id}",
    tag = "rooms",
    params(("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO")),
    responses(
        (status = 200, description = "The board page (HTML with inline CSS and JS)", content_type = "text/html"),
        (status = 400, description = "invalid_request: bad hotel code", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn board(ApiPath(hotel_id): ApiPath<String>) -> Result<Response, ApiError> {
    HotelId::parse(&hotel_id)?;
    let page: &'static Page = &PAGE;
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::CONTENT_SECURITY_POLICY, page.csp.clone()),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ];
    Ok((headers, page.html.as_str()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (raw, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), encoded);
        }
    }

    #[test]
    fn page_embeds_its_assets_once_and_they_cannot_break_out() {
        assert_eq!(HTML.matches(CSS_SLOT).count(), 1);
        assert_eq!(HTML.matches(JS_SLOT).count(), 1);
        assert!(!JS.contains("</script"), "the script would end early");
        assert!(!CSS.contains("</style"), "the style would end early");
        // Inline style attributes and handlers would be blocked by the policy.
        assert!(!HTML.contains(" style=") && !HTML.contains(" onclick="));
        let page = &PAGE.html;
        assert!(page.contains(&format!("<script>{JS}</script>")));
        assert!(page.contains(&format!("<style>{CSS}</style>")));
        assert!(!page.contains(JS_SLOT) && !page.contains(CSS_SLOT));
    }
}
