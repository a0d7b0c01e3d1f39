//! The payment provider's signed callback.
//!
//! The signature is checked over the raw body bytes before anything is parsed, so an
//! unauthenticated caller learns nothing about which references exist. Callbacks are
//! idempotent: a duplicate success answers 200 and changes nothing.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::Json;
use hmac::{Hmac, Mac};
use innkeep_actors::EngineError;
use innkeep_engine::{Action, DomainError, PaymentStatus, Reservation, ReservationId};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, Problem};
use crate::extract::RawBody;
use crate::wire::{NotifyAck, NotifyRequest, NotifyStatus};
use crate::{AppState, PaymentConfig};

/// Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
pub const SIGNATURE_HEADER: &str = "x-signature";

/// Longest provider `trade_no` accepted; it is stored on the reservation.
const MAX_TRADE_NO_LEN: usize = 128;

/// Handles a payment callback.
///
/// A success confirms a `pending_payment` reservation. A success for a reservation that
/// already recorded this very payment is a duplicate and answers 200 without change. A
/// success the reservation cannot take (it expired or was cancelled first, or a second,
/// different payment arrived) also answers 200 — the provider must stop retrying — and is
/// logged as a warning that a refund is owed: recording and issuing refunds belongs to the
/// payment supervisor and is not built yet. A failure report changes nothing; the hold
/// runs on until it expires.
#[utoipa::path(
    post,
    path = "/v1/payments/notify",
    tag = "payments",
    params(("X-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>; several v1= allowed")),
    request_body = NotifyRequest,
    responses(
        (status = 200, description = "Verified and handled (duplicates included)", body = NotifyAck),
        (status = 400, description = "invalid_request: signed but malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "bad_signature: missing, malformed, wrong or more than the tolerance away from now", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: unknown out_trade_no", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "amount_mismatch: amount or currency differs from what the reservation owes", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down: retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn notify(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<NotifyAck>, ApiError> {
    let result = handle_notify(&state, &headers, &body).await;
    let outcome = match &result {
        Ok(outcome) => *outcome,
        Err(e) => e.code(),
    };
    metrics::counter!(crate::metrics::METRIC_PAYMENT_CALLBACKS, "outcome" => outcome).increment(1);
    result.map(|_| Json(NotifyAck { received: true }))
}

/// The callback's work; answers the outcome for the metric: `confirmed`, `duplicate`,
/// `refund_owed` or `failed_reported`.
async fn handle_notify(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<&'static str, ApiError> {
    let now_unix_secs = jiff::Timestamp::now().as_second();
    verify_signature(
        &state.payment,
        headers.get(SIGNATURE_HEADER),
        body,
        now_unix_secs,
    )?;
    let callback: NotifyRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidRequest(format!("callback body: {e}")))?;
    let id = ReservationId::from_out_trade_no(&callback.out_trade_no)
        .ok_or_else(|| ApiError::NotFound(format!("no payment {:?}", callback.out_trade_no)))?;
    let reservation = state.engine.reservation(id).await?;
    check_amount(&reservation, &callback)?;
    match callback.status {
        NotifyStatus::Failed => {
            tracing::info!(reservation = %id, trade_no = %callback.trade_no, "payment failed");
            return Ok("failed_reported");
        }
        NotifyStatus::Succeeded => {}
    }
    if callback.trade_no.is_empty()
        || callback.trade_no.len() > MAX_TRADE_NO_LEN
        || callback.trade_no.chars().any(char::is_control)
    {
        return Err(ApiError::InvalidRequest(format!(
            "trade_no: must be 1 to {MAX_TRADE_NO_LEN} printable characters"
        )));
    }
    let pay = Action::Pay {
        trade_no: callback.trade_no.clone(),
    };
    let outcome = match state.engine.change(id, pay, None).await {
        Ok(_) => "confirmed",
        Err(EngineError::Domain(DomainError::InvalidTransition { from, .. })) => {
            // Re-read: another callback may have just applied this payment.
            let current = state.engine.reservation(id).await?;
            let already_applied = current.payment.status == PaymentStatus::Succeeded
                && current.payment.trade_no.as_deref() == Some(callback.trade_no.as_str());
            if already_applied {
                tracing::debug!(reservation = %id, "duplicate payment callback");
                "duplicate"
            } else {
                tracing::warn!(
                    reservation = %id,
                    out_trade_no = %callback.out_trade_no,
                    trade_no = %callback.trade_no,
                    amount_minor = callback.amount,
                    currency = %callback.currency,
                    status = %from,
                    "payment succeeded for a reservation that cannot take it; a refund is owed"
                );
                "refund_owed"
            }
        }
        Err(e) => return Err(e.into()),
    };
    Ok(outcome)
}

fn check_amount(reservation: &Reservation, callback: &NotifyRequest) -> Result<(), ApiError> {
    let owed = reservation.payment.amount;
    if callback.amount != owed.amount_minor || callback.currency != owed.currency.as_str() {
        return Err(ApiError::AmountMismatch(format!(
            "paid {} {}, but the reservation owes {} {}",
            callback.amount, callback.currency, owed.amount_minor, owed.currency
        )));
    }
    Ok(())
}

/// Checks `X-Signature` against the raw body: a `t=` within the tolerance of `now_unix_secs`
/// and at least one `v1=` equal (in constant time) to HMAC-SHA256 of `"<t>.<body>"` under
/// the current or the previous secret. Unknown `key=value` parts are ignored, so a provider
/// can add schemes.
pub fn verify_signature(
    config: &PaymentConfig,
    header: Option<&HeaderValue>,
    body: &[u8],
    now_unix_secs: i64,
) -> Result<(), ApiError> {
    if config.secret.is_empty() {
        tracing::warn!("payment callback refused: no payment secret is configured");
        return Err(ApiError::BadSignature);
    }
    let header = header
        .and_then(|h| h.to_str().ok())
        .ok_or(ApiError::BadSignature)?;
    let mut timestamp: Option<&str> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(ApiError::BadSignature);
        };
        match key {
            "t" if timestamp.is_none() => timestamp = Some(value),
            "t" => return Err(ApiError::BadSignature),
            "v1" => {
                // A v1 that is not 32 bytes of hex can never match; skip it.
                if let Ok(sig) = hex::decode(value) {
                    if sig.len() == 32 {
                        candidates.push(sig);
                    }
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(ApiError::BadSignature)?;
    let t: i64 = timestamp.parse().map_err(|_| ApiError::BadSignature)?;
    if t.abs_diff(now_unix_secs) > config.tolerance_secs || candidates.is_empty() {
        return Err(ApiError::BadSignature);
    }
    let secrets = std::iter::once(config.secret.as_slice())
        .chain(config.previous_secret.as_deref().filter(|s| !s.is_empty()));
    for secret in secrets {
        let expected = sign(secret, timestamp, body)?;
        // Compare against every candidate without early exit, so timing does not tell
        // which one (if any) was close.
        let matched = candidates
            .iter()
            .fold(subtle::Choice::from(0), |acc, c| acc | expected.ct_eq(c));
        if bool::from(matched) {
            return Ok(());
        }
    }
    Err(ApiError::BadSignature)
}

/// HMAC-SHA256(secret, "<t>.<body>").
fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| ApiError::BadSignature)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Builds an `X-Signature` value for `body` at `t`, as the provider would. Public so
/// embedders' tests and tools (e.g. a load generator) can sign callbacks.
pub fn signature_header(secret: &[u8], t: i64, body: &[u8]) -> String {
    let ts = t.to_string();
    let sig = sign(secret, &ts, body).unwrap_or_default();
    format!("t={ts},v1={}", hex::encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_000_000;

    fn check(config: &PaymentConfig, header: &str, body: &[u8]) -> bool {
        let h = HeaderValue::from_str(header).unwrap();
        verify_signature(config, Some(&h), body, NOW).is_ok()
    }

    #[test]
    fn signature_matrix() {
        let cfg = PaymentConfig::new("s3cret");
        let body = br#"{"a":1}"#;
        let good = signature_header(b"s3cret", NOW, body);
        assert!(check(&cfg, &good, body));
        // Body changed by one byte.
        assert!(!check(&cfg, &good, br#"{"a":2}"#));
        // Wrong secret.
        assert!(!check(&cfg, &signature_header(b"other", NOW, body), body));
        // Stale and future, just past the tolerance; at the edge still fine.
        assert!(!check(
            &cfg,
            &signature_header(b"s3cret", NOW - 301, body),
            body
        ));
        assert!(!check(
            &cfg,
            &signature_header(b"s3cret", NOW + 301, body),
            body
        ));
        assert!(check(
            &cfg,
            &signature_header(b"s3cret", NOW - 300, body),
            body
        ));
        // Several v1, one good.
        let sig = good.split("v1=").nth(1).unwrap();
        let several = format!("t={NOW},v1={},v1={sig},v0=zz", "00".repeat(32));
        assert!(check(&cfg, &several, body));
        // Malformed.
        assert!(!check(&cfg, "", body));
        assert!(!check(&cfg, &format!("v1={sig}"), body));
        assert!(!check(&cfg, &format!("t=abc,v1={sig}"), body));
        assert!(!check(&cfg, &format!("t={NOW}"), body));
        assert!(!check(&cfg, &format!("t={NOW},t={NOW},v1={sig}"), body));
        assert!(!check(&cfg, &format!("t={NOW},v1=nothex"), body));
        assert!(verify_signature(&cfg, None, body, NOW).is_err());
        // Previous secret during rotation.
        let rotated = PaymentConfig::new("new").with_previous_secret("s3cret");
        assert!(check(&rotated, &good, body));
        assert!(!check(&PaymentConfig::new("new"), &good, body));
        // No secret configured: nothing verifies.
        assert!(!check(
            &PaymentConfig::new(""),
            &signature_header(b"", NOW, body),
            body
        ));
    }
}
