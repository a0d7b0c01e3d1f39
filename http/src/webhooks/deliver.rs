//! One webhook's delivery task: read the events after its cursor, POST each that matches,
//! retry with backoff until a 2xx or until the receiver has failed for `max_age`, move
//! the cursor, write it down.
//!
//! A request is `POST <url>` with `Content-Type: application/json`, `Innkeep-Event-Id`
//! (the journal sequence number, so a receiver drops duplicates by it),
//! `Innkeep-Event-Type`, `Innkeep-Hotel-Id` and `Innkeep-Signature: t=<unix
//! seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` ([`innkeep_actors::signature`],
//! the scheme of our payment callbacks), and the body [`envelope`]. Events go one at a
//! time in journal order, so a receiver sees each hotel's events in order (after a crash,
//! the tail since the last cursor write comes again, in order).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use innkeep_actors::feed::FeedEvent;
use innkeep_actors::{Engine, EngineError};
use serde_json::json;

use super::store::{Attempt, DeadLetter};
use super::{
    lock, now_rfc3339, now_unix_ms, Hook, WebhookSettings, Webhooks, CURSOR_WRITE_INTERVAL,
};
use crate::routes::events::describe;

/// Events decoded per read from the in-memory window.
const WINDOW_PAGE_EVENTS: usize = 64;
/// Events read per page from the journal's files (a webhook far behind).
const DISK_PAGE_EVENTS: usize = 1024;

/// The body of a delivery: `{"id": <seq>, "type": "<event type>", "hotel_id": "<id>",
/// "data": <the payload the event stream sends for it>}`, and its type and hotel.
pub fn envelope(e: &FeedEvent) -> (&'static str, String, Vec<u8>) {
    let (event_type, data) = describe(&e.event);
    let hotel = e.event.hotel_id().as_str().to_owned();
    let body = json!({"id": e.seq, "type": event_type, "hotel_id": hotel, "data": data});
    // A `Value` always serializes.
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    (event_type, hotel, bytes)
}

/// The wait before attempt `failures + 1`: `backoff_base · 2^failures`, at most
/// `backoff_max`, of which a random part (`random`, any `u64`) of the upper half is taken,
/// so receivers coming back are not hit by every webhook at once ("equal jitter").
pub fn backoff(settings: &WebhookSettings, failures: u32, random: u64) -> Duration {
    let base = settings.backoff_base.as_millis() as u64;
    let cap = settings.backoff_max.as_millis() as u64;
    let full = base
        .saturating_mul(1u64.checked_shl(failures.min(63)).unwrap_or(u64::MAX))
        .min(cap)
        .max(1);
    let half = full / 2;
    Duration::from_millis(full - half + random % (half + 1))
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // Jitter only spreads retries; without OS randomness they are merely in step.
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// What a read after the cursor found.
#[derive(Debug)]
pub enum Fetched {
    /// The next events, consecutive from the cursor on.
    Events(Vec<FeedEvent>),
    /// The journal no longer holds the events from the cursor on up to `first`.
    Gap { first: u64 },
    /// Nothing after the cursor yet.
    UpToDate,
}

/// The events after `cursor`: from the engine's in-memory window, or, for a reader
/// further behind, a page from the journal's files (bounded memory either way).
pub async fn fetch(engine: &Engine, cursor: u64) -> Result<Fetched, EngineError> {
    let page = engine.events_page(cursor, WINDOW_PAGE_EVENTS);
    let Some(window_first) = page.missed_before else {
        return Ok(if page.events.is_empty() {
            Fetched::UpToDate
        } else {
            Fetched::Events(page.events)
        });
    };
    let read = engine
        .journal_events_after(cursor, DISK_PAGE_EVENTS)
        .await?;
    Ok(match read.first().map(|e| e.seq) {
        Some(first) if first == cursor + 1 => Fetched::Events(read),
        Some(first) => Fetched::Gap { first },
        None => Fetched::Gap {
            first: window_first,
        },
    })
}

/// How one attempt went.
enum Sent {
    /// The receiver answered (any status).
    Answered(reqwest::Response),
    /// No answer: refused by the address policy, no connection, a timeout; why.
    Failed(String),
}

/// How one event ended.
enum Outcome {
    /// Settled (delivered, not matching, or dead-lettered); the cursor is past it. Write
    /// the cursor now (a failure run ended or a dead letter was added) or when due.
    Settled { write_now: bool },
    /// A replay, a new definition or a stop came first; the cursor did not move.
    Interrupted,
}

/// The task of `hook`: runs until the webhook is deleted or the server stops.
pub(super) async fn run(webhooks: Webhooks, hook: Arc<Hook>) {
    let engine = webhooks.inner.engine.clone();
    let mut next_seq = engine.watch_next_event_seq();
    let mut unwritten = false;
    let mut last_write = Instant::now();
    while !hook.stop.is_cancelled() {
        // Seen before reading: a publication after this wakes the wait below.
        next_seq.borrow_and_update();
        let generation = hook.generation.load(Ordering::SeqCst);
        let cursor = lock(&hook.state).cursor;
        match fetch(&engine, cursor).await {
            Err(e) => {
                tracing::warn!(webhook = %hook.name, error = %e, "webhook could not read events");
                let pause = webhooks.inner.settings.backoff_base;
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = hook.stop.cancelled() => {}
                }
            }
            Ok(Fetched::Gap { first }) => {
                {
                    let mut s = lock(&hook.state);
                    if hook.generation.load(Ordering::SeqCst) == generation && s.cursor == cursor {
                        s.push_dead_letter(DeadLetter {
                            event_id: cursor + 1,
                            through_event_id: first - 1,
                            event_type: None,
                            at: now_rfc3339(),
                            attempts: 0,
                            reason: "no longer in the journal when the webhook reached them (its receiver had failed for max_age)".into(),
                        });
                        s.cursor = first - 1;
                        metrics::counter!(super::METRIC_WEBHOOK_DEAD_LETTERS, "webhook" => hook.name.clone())
                            .increment(first - 1 - cursor);
                    }
                }
                tracing::warn!(webhook = %hook.name, from = cursor + 1, through = first - 1, "webhook skipped events the journal no longer holds; dead-lettered");
                write(&webhooks, &hook).await;
                unwritten = false;
                last_write = Instant::now();
            }
            Ok(Fetched::Events(events)) => {
                for e in events {
                    match deliver_one(&webhooks, &hook, &e, generation).await {
                        Outcome::Interrupted => break,
                        Outcome::Settled { write_now } => {
                            unwritten = true;
                            if write_now || last_write.elapsed() >= CURSOR_WRITE_INTERVAL {
                                write(&webhooks, &hook).await;
                                unwritten = false;
                                last_write = Instant::now();
                            }
                        }
                    }
                }
            }
            Ok(Fetched::UpToDate) => {
                if unwritten {
                    write(&webhooks, &hook).await;
                    unwritten = false;
                    last_write = Instant::now();
                }
                tokio::select! {
                    changed = next_seq.changed() => {
                        if changed.is_err() {
                            // The engine is gone: nothing more will come.
                            break;
                        }
                    }
                    () = hook.wake.notified() => {}
                    () = hook.stop.cancelled() => {}
                }
            }
        }
    }
    if unwritten {
        write(&webhooks, &hook).await;
    }
}

/// Writes the hook's state; a failure is logged and the next write tries again (the
/// cursor in memory is right; on disk it is older, which only resends).
async fn write(webhooks: &Webhooks, hook: &Arc<Hook>) {
    if let Err(e) = webhooks.persist(hook).await {
        tracing::error!(webhook = %hook.name, error = %e, "webhook cursor could not be written");
    }
}

/// The full error chain of a failed request, for the operator.
fn error_text(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn deliver_one(
    webhooks: &Webhooks,
    hook: &Arc<Hook>,
    e: &FeedEvent,
    generation: u64,
) -> Outcome {
    let settings = &webhooks.inner.settings;
    let current = |hook: &Hook| hook.generation.load(Ordering::SeqCst) == generation;
    let (event_type, hotel, body) = envelope(e);
    let matches = lock(&hook.state).definition.matches(&hotel, event_type);
    if !matches {
        let mut s = lock(&hook.state);
        if !current(hook) {
            return Outcome::Interrupted;
        }
        s.cursor = e.seq;
        return Outcome::Settled { write_now: false };
    }
    let max_age_ms = i64::try_from(settings.max_age.as_millis()).unwrap_or(i64::MAX);
    let mut failures: u32 = 0;
    loop {
        if hook.stop.is_cancelled() || !current(hook) {
            return Outcome::Interrupted;
        }
        let (url, secret) = {
            let s = lock(&hook.state);
            (s.definition.url.clone(), s.definition.secret.clone())
        };
        let at = now_rfc3339();
        let signature = innkeep_actors::signature::header(
            secret.as_bytes(),
            jiff::Timestamp::now().as_second(),
            &body,
        );
        let started = Instant::now();
        // Checked again at every attempt: a stored URL may predate a stricter
        // `allow_private` (names are checked as they resolve, in the client's resolver).
        let sent = match super::policy::check_url(&url, settings.reach) {
            Err(refused) => Sent::Failed(refused.to_string()),
            Ok(_) => {
                let request = webhooks
                    .inner
                    .client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("innkeep-event-id", e.seq.to_string())
                    .header("innkeep-event-type", event_type)
                    .header("innkeep-hotel-id", hotel.as_str())
                    .header("innkeep-signature", signature)
                    .body(body.clone())
                    .send();
                tokio::select! {
                    sent = request => match sent {
                        Ok(res) => Sent::Answered(res),
                        Err(err) => Sent::Failed(error_text(&err)),
                    },
                    () = hook.stop.cancelled() => return Outcome::Interrupted,
                }
            }
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        let (status, error) = match &sent {
            Sent::Answered(res) if res.status().is_success() => (Some(res.status().as_u16()), None),
            Sent::Answered(res) => (
                Some(res.status().as_u16()),
                Some(format!("answered {}", res.status())),
            ),
            Sent::Failed(why) => (None, Some(why.clone())),
        };
        drop(sent);
        failures += u32::from(error.is_some());
        let outcome = if error.is_some() {
            "failed"
        } else {
            "delivered"
        };
        metrics::counter!(super::METRIC_WEBHOOK_ATTEMPTS, "webhook" => hook.name.clone(), "outcome" => outcome)
            .increment(1);
        let now_ms = now_unix_ms();
        let first_failure;
        {
            let mut s = lock(&hook.state);
            s.push_attempt(Attempt {
                event_id: e.seq,
                at,
                status,
                error: error.clone(),
                latency_ms,
            });
            if !current(hook) {
                return Outcome::Interrupted;
            }
            let Some(reason) = error else {
                let was_failing = s.failing_since_unix_ms.take().is_some();
                s.cursor = e.seq;
                return Outcome::Settled {
                    write_now: was_failing,
                };
            };
            first_failure = s.failing_since_unix_ms.is_none();
            let since = *s.failing_since_unix_ms.get_or_insert(now_ms);
            if now_ms.saturating_sub(since) >= max_age_ms {
                s.push_dead_letter(DeadLetter {
                    event_id: e.seq,
                    through_event_id: e.seq,
                    event_type: Some(event_type.to_owned()),
                    at: now_rfc3339(),
                    attempts: failures,
                    reason,
                });
                s.cursor = e.seq;
                metrics::counter!(super::METRIC_WEBHOOK_DEAD_LETTERS, "webhook" => hook.name.clone())
                    .increment(1);
                tracing::warn!(webhook = %hook.name, event_id = e.seq, "webhook event dead-lettered after max_age of failures");
                return Outcome::Settled { write_now: true };
            }
            tracing::debug!(webhook = %hook.name, event_id = e.seq, failures, error = %reason, "webhook delivery failed; will retry");
        }
        if first_failure {
            // The failure run's start is what max_age counts from: durable at once.
            write(webhooks, hook).await;
        }
        let since = lock(&hook.state).failing_since_unix_ms.unwrap_or(now_ms);
        let left_ms = (since.saturating_add(max_age_ms) - now_ms).max(0) as u64;
        let pause =
            backoff(settings, failures - 1, random_u64()).min(Duration::from_millis(left_ms));
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = hook.wake.notified() => {}
            () = hook.stop.cancelled() => return Outcome::Interrupted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use innkeep_engine::{HotelId, RoomKey, RoomNumber};

    fn settings(base_ms: u64, max_ms: u64) -> WebhookSettings {
        WebhookSettings {
            backoff_base: Duration::from_millis(base_ms),
            backoff_max: Duration::from_millis(max_ms),
            ..WebhookSettings::default()
        }
    }

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let s = settings(100, 1_000);
        for failures in 0..70u32 {
            let full = (100u64 << failures.min(20)).min(1_000);
            for random in [0, 1, 17, u64::MAX / 3, u64::MAX] {
                let d = backoff(&s, failures, random).as_millis() as u64;
                assert!(
                    d >= full - full / 2 && d <= full,
                    "failures {failures}, random {random}: {d} not in [{}, {full}]",
                    full - full / 2
                );
            }
        }
        // The bounds are reached: no jitter at random 0 is the lower half, the top the cap.
        assert_eq!(backoff(&s, 0, 0), Duration::from_millis(50));
        assert_eq!(backoff(&s, 0, 50), Duration::from_millis(100));
        assert_eq!(backoff(&s, 9, 500), Duration::from_millis(1_000));
        // A zero base still waits.
        assert!(backoff(&settings(0, 0), 3, 0) >= Duration::from_millis(1));
    }

    /// The body is the event stream's payload in an envelope with the id, type and hotel,
    /// and signing it gives a header the payment-callback verifier accepts.
    #[test]
    fn the_envelope_carries_the_streams_payload_and_verifies() {
        let e = FeedEvent {
            seq: 42,
            event: Arc::new(innkeep_engine::Event::HousekeepingSet {
                room: RoomKey {
                    hotel_id: HotelId::parse("H1").unwrap(),
                    number: RoomNumber::parse("101").unwrap(),
                },
                status: innkeep_engine::Housekeeping::Dirty,
                at: jiff::Timestamp::UNIX_EPOCH,
            }),
        };
        let (event_type, hotel, body) = envelope(&e);
        assert_eq!((event_type, hotel.as_str()), ("room.status", "H1"));
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"id": 42, "type": "room.status", "hotel_id": "H1",
                   "data": describe(&e.event).1})
        );
        let secret = b"whsec-0123456789abcdef";
        let now = 1_767_000_000;
        let header = innkeep_actors::signature::header(secret, now, &body);
        let config = crate::PaymentConfig::new(secret.to_vec());
        let value = axum::http::HeaderValue::from_str(&header).unwrap();
        assert!(
            crate::routes::payments::verify_signature(&config, Some(&value), &body, now).is_ok()
        );
        let mut tampered = body.clone();
        tampered[0] = b' ';
        assert!(
            crate::routes::payments::verify_signature(&config, Some(&value), &tampered, now)
                .is_err()
        );
    }
}
