//! Extractors that turn every rejection into an [`ApiError`], so malformed JSON, bad path
//! segments and bad query strings get the same problem+json answer as everything else, plus
//! the header parsers (`If-Match`, `Idempotency-Key`) the routes share.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use innkeep_engine::IdempotencyKey;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, BODY_LIMIT_BYTES};

/// Header a client sends to make `POST .../reservations` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A JSON request body. Like `axum::Json`, but a rejection is a problem+json [`ApiError`]:
/// 400 for bad syntax, unknown fields and wrong types, 415 for a missing or non-JSON
/// `Content-Type`, 413 for a body over the limit.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The usual request says plainly that it is JSON and parses: read it with
        // serde_json alone. axum's own path tracks every field's path as it parses (a
        // String per field and level): a third of a booking's request parsing in a profile
        // (BENCHMARKS.md, twentieth session). Anything else, and a body that does not
        // parse, takes axum's path, so every rejection is the one axum gives.
        if plainly_json(req.headers().get(CONTENT_TYPE)) {
            let bytes = Bytes::from_request(req, state)
                .await
                .map_err(|r| bytes_rejection(&r))?;
            return match serde_json::from_slice(&bytes) {
                Ok(value) => Ok(ApiJson(value)),
                Err(_) => match axum::Json::<T>::from_bytes(&bytes) {
                    Ok(axum::Json(value)) => Ok(ApiJson(value)),
                    Err(rejection) => Err(json_rejection(&rejection)),
                },
            };
        }
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// True for the `Content-Type`s clients send for JSON almost always, which axum accepts as
/// JSON too: `application/json`, alone or with `; charset=utf-8` (ASCII case ignored). Any
/// other value goes through axum's own check.
fn plainly_json(content_type: Option<&HeaderValue>) -> bool {
    content_type.is_some_and(|v| {
        let v = v.as_bytes();
        v.eq_ignore_ascii_case(b"application/json")
            || v.eq_ignore_ascii_case(b"application/json; charset=utf-8")
    })
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "the body must be JSON, sent with Content-Type: application/json".to_owned(),
        ),
        JsonRejection::BytesRejection(b) => bytes_rejection(b),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit_bytes: BODY_LIMIT_BYTES,
        },
        other => ApiError::InvalidRequest(other.body_text()),
    }
}

fn bytes_rejection(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge {
            limit_bytes: BODY_LIMIT_BYTES,
        }
    } else {
        ApiError::InvalidRequest(rejection.body_text())
    }
}

/// The raw body bytes, for routes that must see them before parsing (payment callbacks are
/// signed over the exact bytes). Over the limit → 413 `payload_too_large`.
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|r| bytes_rejection(&r))
    }
}

/// The body of an action call (cancel, check-in, check-out): empty, or an empty JSON object.
/// Anything else is 400, so a client that thinks the call takes options learns it does not.
#[derive(Debug, Clone, Copy)]
pub struct EmptyBody;

impl<S> FromRequest<S> for EmptyBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(EmptyBody);
        }
        // A map, not a struct with no fields: serde would take `[]` for that too.
        match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes) {
            Ok(object) if object.is_empty() => Ok(EmptyBody),
            Ok(object) => Err(ApiError::InvalidRequest(format!(
                "the body must be empty or {{}}: unknown field `{}`",
                object.keys().next().map_or("", String::as_str)
            ))),
            Err(e) => Err(ApiError::InvalidRequest(format!(
                "the body must be empty or {{}}: {e}"
            ))),
        }
    }
}

/// Path parameters. Like `axum::extract::Path`, but a rejection is 400 `invalid_request`.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|r| ApiError::InvalidRequest(r.body_text()))
    }
}

/// A query string. Like `axum::extract::Query`, but a rejection is 400 `invalid_request`.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|r| ApiError::InvalidRequest(r.body_text()))
    }
}

/// The `If-Match` header's values, moved out of the request rather than copied (see
/// [`IdempotencyKeyHeader`]); validated with [`if_match_values`] where the handler did
/// before.
#[derive(Debug, Clone, Default)]
pub struct IfMatchHeader(pub Vec<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatchHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.entry(axum::http::header::IF_MATCH) {
            axum::http::header::Entry::Occupied(e) => Ok(Self(e.remove_entry_mult().1.collect())),
            axum::http::header::Entry::Vacant(_) => Ok(Self::default()),
        }
    }
}

/// Parses `If-Match` into the version the client saw. Accepts `"7"`, `7` and `W/"7"`;
/// `*` (or no header) means "no check". Several entity tags, or one that is not a version
/// this API ever sent, are 400: the engine compares against exactly one version.
pub fn if_match_values<'a>(
    values: impl IntoIterator<Item = &'a HeaderValue>,
) -> Result<Option<u64>, ApiError> {
    let mut tags = Vec::new();
    for value in values {
        let text = value
            .to_str()
            .map_err(|_| bad_if_match("it is not visible ASCII"))?;
        tags.extend(text.split(',').map(str::trim).filter(|t| !t.is_empty()));
    }
    if tags.is_empty() || tags.contains(&"*") {
        return Ok(None);
    }
    let [tag] = tags.as_slice() else {
        return Err(bad_if_match("give exactly one entity tag"));
    };
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    let tag = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    tag.parse::<u64>()
        .map(Some)
        .map_err(|_| bad_if_match("it must be a reservation version such as \"3\""))
}

fn bad_if_match(why: &str) -> ApiError {
    ApiError::InvalidRequest(format!("If-Match: {why}"))
}

/// The `Idempotency-Key` header's first value, moved out of the request rather than
/// copied: axum's `HeaderMap` extractor clones every header of the request (measured on
/// the booking route: one in eight of the server's `malloc` calls). The handler validates
/// it with [`idempotency_key_value`] where it validated the map before, so a request with
/// several faults gets the same answer as it did.
#[derive(Debug, Clone)]
pub struct IdempotencyKeyHeader(pub Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.remove(IDEMPOTENCY_KEY)))
    }
}

/// Parses the optional `Idempotency-Key` header's value with the engine's rules for keys.
pub fn idempotency_key_value(
    value: Option<&HeaderValue>,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::InvalidRequest("Idempotency-Key: must be visible ASCII".to_owned())
    })?;
    IdempotencyKey::parse(text)
        .map(Some)
        .map_err(|e| ApiError::InvalidRequest(format!("Idempotency-Key: {}", e.reason)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
        if_match_values(headers.get_all(axum::http::header::IF_MATCH))
    }

    fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
        idempotency_key_value(headers.get(IDEMPOTENCY_KEY))
    }

    fn with_if_match(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(axum::http::header::IF_MATCH, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn if_match_forms() {
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
        assert_eq!(if_match(&with_if_match(&["*"])).unwrap(), None);
        assert_eq!(if_match(&with_if_match(&["\"3\""])).unwrap(), Some(3));
        assert_eq!(if_match(&with_if_match(&["3"])).unwrap(), Some(3));
        assert_eq!(if_match(&with_if_match(&["W/\"12\""])).unwrap(), Some(12));
        assert!(if_match(&with_if_match(&["\"abc\""])).is_err());
        assert!(if_match(&with_if_match(&["\"1\", \"2\""])).is_err());
        assert!(if_match(&with_if_match(&["\"1\"", "\"2\""])).is_err());
    }

    /// A body shaped like the API's: named fields, nested, unknown fields refused.
    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        nights: u8,
        guest: SampleGuest,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct SampleGuest {
        email: String,
    }

    fn request(content_type: Option<&'static str>, body: &'static str) -> Request {
        let mut req = Request::new(axum::body::Body::from(body));
        if let Some(ct) = content_type {
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        req
    }

    /// `ApiJson` answers every body and content type exactly as axum's `Json` would
    /// (mapped to an `ApiError`): its own quicker parse of plain JSON must not change a
    /// value or a rejection's wording.
    #[tokio::test]
    async fn json_bodies_read_as_axum_reads_them() {
        let bodies = [
            r#"{"name":"a","nights":2,"guest":{"email":"e@x"}}"#,
            r#" {"guest":{"email":"e@x"},"nights":2,"name":"a\u00e9"} "#,
            r#"{"name":"a","nights":2,"guest":{"email":"e@x"}} trailing"#,
            r#"{"name":"a","nights":2,"guest":{"email":"e@x","extra":1}}"#,
            r#"{"name":"a","nights":"two","guest":{"email":"e@x"}}"#,
            r#"{"name":"a","nights":300,"guest":{"email":"e@x"}}"#,
            r#"{"name":"a","guest":{"email":"e@x"}}"#,
            r#"{"name":"a","nights":2,"guest":{"email":"e@x"}"#,
            "",
            "\u{ff}",
        ];
        let types = [
            Some("application/json"),
            Some("Application/JSON; charset=UTF-8"),
            Some("application/json;charset=utf-8"),
            Some("application/problem+json"),
            Some("text/plain"),
            None,
        ];
        let mut parsed = 0;
        for body in bodies {
            for ct in types {
                let ours = ApiJson::<Sample>::from_request(request(ct, body), &()).await;
                let axums = axum::Json::<Sample>::from_request(request(ct, body), &())
                    .await
                    .map(|axum::Json(v)| ApiJson(v))
                    .map_err(|r| json_rejection(&r));
                assert_eq!(
                    format!("{ours:?}"),
                    format!("{axums:?}"),
                    "body {body:?}, content type {ct:?}"
                );
                parsed += usize::from(ours.is_ok());
            }
        }
        // The two well-formed bodies, under the four JSON content types each.
        assert_eq!(parsed, 8);
    }

    /// Which content types take serde_json's quick read (the others take axum's): exactly
    /// `application/json`, alone or with `; charset=utf-8`, in any ASCII case.
    #[test]
    fn plain_json_content_types() {
        let plain = |v: &'static str| plainly_json(Some(&HeaderValue::from_static(v)));
        assert!(plain("application/json"));
        assert!(plain("APPLICATION/Json"));
        assert!(plain("application/json; charset=utf-8"));
        assert!(plain("application/json; charset=UTF-8"));
        assert!(!plain("application/json;charset=utf-8"));
        assert!(!plain("application/problem+json"));
        assert!(!plain("application/json; charset=latin1"));
        assert!(!plain("text/plain"));
        assert!(!plainly_json(None));
    }

    #[test]
    fn idempotency_key_rules() {
        let mut h = HeaderMap::new();
        assert!(idempotency_key(&h).unwrap().is_none());
        h.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("order-42"));
        assert!(idempotency_key(&h).unwrap().is_some());
        h.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("has space"));
        assert!(idempotency_key(&h).is_err());
    }
}
