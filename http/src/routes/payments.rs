//! The payment provider's signed callback.
//!
//! The signature is checked over the raw body bytes before anything is parsed, so an
//! unauthenticated caller learns nothing about which references exist. Callbacks are
//! idempotent: a duplicate success answers 200 and changes nothing.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::Json;
use innkeep_engine::{
    BookingId, DomainError, Money, PaymentOutcome, PaymentReport, Reservation, ReservationId,
};
use subtle::ConstantTimeEq;

use crate::auth::Caller;
use crate::constraints::{Code, OutTradeNo};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiPath, RawBody};
use crate::wire::{NotifyAck, NotifyRequest, NotifyStatus, PaymentDetailView};
use crate::{AppState, PaymentConfig};

/// Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
pub const SIGNATURE_HEADER: &str = "x-signature";

/// Longest provider `trade_no` accepted; it is stored on the reservation.
const MAX_TRADE_NO_LEN: usize = 128;

/// Handles a payment callback.
///
/// A success confirms a `pending_payment` reservation. A success for a payment already
/// applied (succeeded, refund owed or refunded) is a duplicate: 200, nothing changes. A
/// success the reservation cannot take (it expired or was cancelled first, or its hold
/// lapsed) also answers 200 — the provider must stop retrying — and is recorded durably
/// with a refund owed; the payment supervisor refunds it through the provider and records
/// `refunded`. A failure is recorded; the reservation stays pending until its hold expires.
///
/// A difference charge (`<out_trade_no>-<n>`, created when a modification raised a paid
/// reservation's total) is validated the same way against the difference due
/// (`balance_due`); its success marks the difference paid, its failure changes nothing.
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
    notified(&state, &headers, &body, None).await
}

/// `POST /v1/payments/notify` with the hotel in the path, so a proxy can route it to the
/// node serving the hotel: the same, and 404 unless the payment is of `hotel_id`.
#[utoipa::path(
    post,
    path = "/v1/hotels/{hotel_id}/payments/notify",
    tag = "payments",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("X-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>; several v1= allowed"),
    ),
    request_body = NotifyRequest,
    responses(
        (status = 200, description = "Verified and handled (duplicates included)", body = NotifyAck),
        (status = 400, description = "invalid_request: signed but malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "bad_signature: missing, malformed, wrong or more than the tolerance away from now", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: unknown out_trade_no, or a payment of another hotel", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "amount_mismatch: amount or currency differs from what the reservation owes", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "overloaded, storage_unavailable or shutting_down: retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn notify_hotel(
    State(state): State<AppState>,
    ApiPath(hotel_id): ApiPath<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<NotifyAck>, ApiError> {
    notified(&state, &headers, &body, Some(&hotel_id)).await
}

/// A callback handled and counted; `hotel` is the path's, in the hotel-scoped form.
async fn notified(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    hotel: Option<&str>,
) -> Result<Json<NotifyAck>, ApiError> {
    let result = handle_notify(state, headers, body, hotel).await;
    let outcome = match &result {
        Ok(outcome) => *outcome,
        Err(e) => e.code(),
    };
    metrics::counter!(crate::metrics::METRIC_PAYMENT_CALLBACKS, "outcome" => outcome).increment(1);
    result.map(|_| Json(NotifyAck { received: true }))
}

/// The callback's work; answers the outcome for the metric: `confirmed`, `duplicate`,
/// `refund_owed` or `failed_recorded`.
async fn handle_notify(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    hotel: Option<&str>,
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
    let (id, seq) = ReservationId::from_charge_reference(&callback.out_trade_no)
        .ok_or_else(|| ApiError::NotFound(format!("no payment {:?}", callback.out_trade_no)))?;
    // A multi-room booking's one payment: its reference is the booking's id.
    let booking = match seq {
        None => match state.engine.booking(BookingId(id.0)).await {
            Ok(b) => Some(b),
            Err(innkeep_actors::EngineError::Domain(DomainError::NotFound(_))) => None,
            Err(e) => return Err(e.into()),
        },
        Some(_) => None,
    };
    match &booking {
        Some(b) => {
            check_here(state, hotel, &b.hotel_id, &callback.out_trade_no)?;
            check_owed(b.summary.amount, "booking", &callback)?;
        }
        None => {
            let reservation = state.engine.reservation(id).await?;
            check_here(state, hotel, &reservation.hotel_id, &callback.out_trade_no)?;
            check_amount(&reservation, seq, &callback)?;
        }
    }
    if callback.trade_no.is_empty()
        || callback.trade_no.len() > MAX_TRADE_NO_LEN
        || callback.trade_no.chars().any(char::is_control)
    {
        return Err(ApiError::InvalidRequest(format!(
            "trade_no: must be 1 to {MAX_TRADE_NO_LEN} printable characters"
        )));
    }
    let trade_no = callback.trade_no.clone();
    if let Some(b) = booking {
        let report = match callback.status {
            NotifyStatus::Succeeded => PaymentReport::Succeeded { trade_no },
            NotifyStatus::Failed => PaymentReport::Failed { trade_no },
        };
        let (_, outcome) = state.engine.pay_booking(b.summary.id, report).await?;
        if outcome == PaymentOutcome::RefundOwed {
            tracing::warn!(booking = %b.summary.id, out_trade_no = %callback.out_trade_no,
                trade_no = %callback.trade_no,
                "payment succeeded for a booking that cannot take it; refunds owed");
        }
        return Ok(outcome.as_str());
    }
    let report = match (callback.status, seq) {
        (NotifyStatus::Succeeded, None) => PaymentReport::Succeeded { trade_no },
        (NotifyStatus::Failed, None) => PaymentReport::Failed { trade_no },
        (NotifyStatus::Succeeded, Some(seq)) => PaymentReport::BalanceSucceeded { seq, trade_no },
        // A failed attempt at a difference charge changes nothing: the difference stays
        // due and the guest may pay it again.
        (NotifyStatus::Failed, Some(_)) => return Ok(PaymentOutcome::FailedRecorded.as_str()),
    };
    let (_, outcome) = state.engine.apply_payment(id, report).await?;
    match outcome {
        PaymentOutcome::RefundOwed => tracing::warn!(
            reservation = %id,
            out_trade_no = %callback.out_trade_no,
            trade_no = %callback.trade_no,
            "payment succeeded for a reservation that cannot take it; refund owed"
        ),
        PaymentOutcome::Duplicate => {
            tracing::debug!(reservation = %id, "duplicate payment callback")
        }
        PaymentOutcome::Confirmed
        | PaymentOutcome::FailedRecorded
        | PaymentOutcome::BalancePaid => {}
    }
    Ok(outcome.as_str())
}

/// Checks that a callback's payment, of hotel `of`, is handled here: 404 (as for an
/// unknown reference) when the path names another hotel (`path_hotel`, in the
/// hotel-scoped form), 421 `misdirected` when another node of the cluster serves `of`.
fn check_here(
    state: &AppState,
    path_hotel: Option<&str>,
    of: &innkeep_engine::HotelId,
    out_trade_no: &str,
) -> Result<(), ApiError> {
    if path_hotel.is_some_and(|hotel| hotel != of.as_str()) {
        return Err(ApiError::NotFound(format!("no payment {out_trade_no:?}")));
    }
    match &state.security.cluster {
        Some(cluster) => cluster.check(of.as_str()),
        None => Ok(()),
    }
}

/// A payment with its history. Admins and the front desk of the reservation's hotel, and
/// the channel that created the reservation, may look.
#[utoipa::path(
    get,
    path = "/v1/payments/{out_trade_no}",
    tag = "payments",
    params(("out_trade_no" = OutTradeNo, Path, description = "Our payment reference of a reservation: its payment.out_trade_no, or for a reservation of a multi-room booking (whose payment.out_trade_no is the booking's, shown on the booking) `ik` and its own id's hex digits: its share, history and refunds")),
    responses(
        (status = 200, description = "The payment", body = PaymentDetailView),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_payment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(out_trade_no): ApiPath<String>,
) -> Result<Json<PaymentDetailView>, ApiError> {
    payment(&state, &caller, None, &out_trade_no).await
}

/// `GET /v1/payments/{out_trade_no}` with the hotel in the path, so a proxy can route it:
/// the same, and 404 unless the payment is of `hotel_id`.
#[utoipa::path(
    get,
    path = "/v1/hotels/{hotel_id}/payments/{out_trade_no}",
    tag = "payments",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("out_trade_no" = OutTradeNo, Path, description = "Our payment reference of a reservation, as for `GET /v1/payments/{out_trade_no}`"),
    ),
    responses(
        (status = 200, description = "The payment", body = PaymentDetailView),
        (status = 404, description = "not_found (also a payment of another hotel)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_hotel_payment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((hotel_id, out_trade_no)): ApiPath<(String, String)>,
) -> Result<Json<PaymentDetailView>, ApiError> {
    payment(&state, &caller, Some(&hotel_id), &out_trade_no).await
}

/// The payment `out_trade_no` for `caller`, of `hotel` when the path names one.
async fn payment(
    state: &AppState,
    caller: &Caller,
    hotel: Option<&str>,
    out_trade_no: &str,
) -> Result<Json<PaymentDetailView>, ApiError> {
    let id = ReservationId::from_out_trade_no(out_trade_no)
        .ok_or_else(|| ApiError::NotFound(format!("no payment {out_trade_no:?}")))?;
    let reservation = state.engine.reservation(id).await?;
    if hotel.is_some_and(|hotel| hotel != reservation.hotel_id.as_str()) {
        return Err(ApiError::NotFound(format!("no payment {out_trade_no:?}")));
    }
    caller.check_reservation(&reservation)?;
    Ok(Json(PaymentDetailView::from(&*reservation)))
}

/// The sandbox provider's books (every charge, money captured and refunded, the faults it
/// injected) and the payment supervisor's counters. Only when `payment.provider =
/// "sandbox"`; 404 otherwise. Admins of every hotel only.
#[utoipa::path(
    get,
    path = "/v1/payments/sandbox/ledger",
    tag = "payments",
    responses(
        (status = 200, description = "The ledger", content_type = "application/json", body = Object),
        (status = 404, description = "not_found: the sandbox provider is not in use", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sandbox_ledger(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(sandbox) = &state.sandbox else {
        return Err(ApiError::NotFound(
            "the sandbox payment provider is not in use".into(),
        ));
    };
    let stats = state.engine.payment_stats().await?;
    Ok(Json(serde_json::json!({
        "ledger": sandbox.ledger(),
        "supervisor": {
            "charges_created": stats.charges_created,
            "refunds_recorded": stats.refunds_recorded,
            "reconciliation_fixes": stats.reconciliation_fixes,
            "gateway_failures": stats.gateway_failures,
            "refunds_owed": stats.refunds_owed,
            "open_payments": stats.open_payments,
        }
    })))
}

/// The callback's amount must be what its charge asks: the payment's (its first charge)
/// for `out_trade_no`, the difference due for the difference charge `<out_trade_no>-<n>`
/// (`seq` n). A difference charge already paid or superseded asks nothing any more: its
/// callback is a duplicate (only the currency is checked); one never created is unknown.
fn check_amount(
    reservation: &Reservation,
    seq: Option<u32>,
    callback: &NotifyRequest,
) -> Result<(), ApiError> {
    let owed = match seq {
        // A reservation of a multi-room booking is paid under the booking's reference
        // only: no charge was ever made under its own id (that id names its refund), so a
        // callback for it is for an unknown payment and must not confirm it alone.
        None if reservation.payment.out_trade_no.reservation_id() != reservation.id => {
            return Err(ApiError::NotFound(format!(
                "no payment {:?}",
                callback.out_trade_no
            )));
        }
        None => reservation.payment.amount,
        Some(n) => {
            let latest = reservation.adjustment.map_or(0, |a| a.seq);
            if n > latest {
                return Err(ApiError::NotFound(format!(
                    "no payment {:?}",
                    callback.out_trade_no
                )));
            }
            match reservation.balance_charge() {
                Some((_, due)) if n == latest => due,
                _ => {
                    let currency = reservation.total.currency;
                    if callback.currency != currency.as_str() {
                        return Err(ApiError::AmountMismatch(format!(
                            "paid in {}, but the reservation is in {currency}",
                            callback.currency
                        )));
                    }
                    return Ok(());
                }
            }
        }
    };
    check_owed(owed, "reservation", callback)
}

/// The callback's amount and currency must be `owed`, what `what` owes.
fn check_owed(owed: Money, what: &str, callback: &NotifyRequest) -> Result<(), ApiError> {
    if callback.amount != owed.amount_minor || callback.currency != owed.currency.as_str() {
        return Err(ApiError::AmountMismatch(format!(
            "paid {} {}, but the {what} owes {} {}",
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
        let expected = innkeep_actors::signature::sign(secret, timestamp, body);
        // Compare against every candidate without early exit, so timing does not tell
        // which one (if any) was close.
        let matched = candidates.iter().fold(subtle::Choice::from(0), |acc, c| {
            acc | expected.as_slice().ct_eq(c.as_slice())
        });
        if bool::from(matched) {
            return Ok(());
        }
    }
    Err(ApiError::BadSignature)
}

/// Builds an `X-Signature` value for `body` at `t`, as the provider would (the scheme
/// our webhooks sign with too: [`innkeep_actors::signature`]). Public so embedders' tests
/// and tools (e.g. a load generator) can sign callbacks.
pub fn signature_header(secret: &[u8], t: i64, body: &[u8]) -> String {
    innkeep_actors::signature::header(secret, t, body)
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
