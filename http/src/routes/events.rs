//! `GET /v1/hotels/{hotel_id}/events`: the hotel's durable events as Server-Sent Events.
//!
//! Each event's `id` is its journal sequence number. A client that reconnects with
//! `Last-Event-ID: <n>` first gets the events after `n` from the engine's resume window,
//! then live ones, with no gap and no duplicate in between. The window is the newest
//! `resume_window_events` events of the whole server (default 65,536, all hotels); it is
//! kept in memory and, after a restart — clean or `kill -9` — refilled from the journal,
//! which retains those records on disk, so resuming works across restarts too. An id
//! older than the window, or one this server's journal never issued, cannot be replayed:
//! the stream then starts with a `resync` event naming the first id it can show, so the
//! client reloads its state instead of silently missing changes. A client too slow for the
//! live channel gets a final `resync` and the stream ends; it resumes with its last id.
//! Every stream ends when the server shuts down.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use innkeep_actors::feed::FeedEvent;
use innkeep_engine::{Action, Event, HotelId, PaymentChange};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::error::{ApiError, Problem};
use crate::extract::ApiPath;
use crate::AppState;

/// The stream of a hotel's events.
#[utoipa::path(
    get,
    path = "/v1/hotels/{hotel_id}/events",
    tag = "rooms",
    params(
        ("hotel_id" = String, Path, description = "Hotel code"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (a journal sequence number)"),
    ),
    responses(
        (status = 200, description = "text/event-stream: events named reservation.created, reservation.confirmed, reservation.cancelled, reservation.expired, reservation.checked_in, reservation.checked_out, reservation.no_show, payment.updated, room.status, setup.updated; and resync", content_type = "text/event-stream"),
        (status = 400, description = "invalid_request: bad hotel code or Last-Event-ID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    ApiPath(hotel_id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let hotel = HotelId::parse(&hotel_id)?;
    state.engine.hotel(&hotel)?;
    let after = last_event_id(&headers)?;
    let sub = state.engine.events(after);

    let notice = sub.missed_before.map(|first| {
        SseEvent::default().event("resync").data(
            json!({
                "reason": "the events after Last-Event-ID cannot all be replayed (older than the resume window, or not an id of this server); reload state",
                "first_available": first,
            })
            .to_string(),
        )
    });
    let backlog: Vec<SseEvent> = sub
        .backlog
        .iter()
        .filter(|e| e.event.hotel_id() == &hotel)
        .map(to_sse)
        .collect();
    let live = stream::unfold(Some((sub.live, hotel)), |open| async move {
        let (mut rx, hotel) = open?;
        loop {
            match rx.recv().await {
                Ok(e) if e.event.hotel_id() == &hotel => {
                    return Some((to_sse(&e), Some((rx, hotel))))
                }
                Ok(_) => continue,
                // Too slow: say where to resume from, then end.
                Err(RecvError::Lagged(skipped)) => {
                    let resync = SseEvent::default().event("resync").data(
                        json!({"reason": "client too slow; reconnect with Last-Event-ID", "skipped": skipped})
                            .to_string(),
                    );
                    return Some((resync, None));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stream = stream::iter(notice.into_iter().chain(backlog))
        .chain(live)
        .take_until(state.streams.clone().cancelled_owned())
        .map(Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(raw) = headers.get("last-event-id") else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::from(innkeep_engine::ValidationError::new(
                "Last-Event-ID",
                "must be an event id (a whole number)",
            ))
        })
}

/// The SSE form of one event: its name and a small JSON payload.
fn to_sse(e: &FeedEvent) -> SseEvent {
    let (name, data) = describe(&e.event);
    SseEvent::default()
        .id(e.seq.to_string())
        .event(name)
        .data(data.to_string())
}

fn describe(event: &Event) -> (&'static str, Value) {
    match event {
        Event::ReservationCreated { reservation: r, .. } => (
            "reservation.created",
            json!({
                "reservation_id": r.id.to_string(),
                "room": r.room.as_str(),
                "room_type": r.room_type.as_str(),
                "arrival": r.stay.arrival().to_string(),
                "departure": r.stay.departure().to_string(),
                "status": r.status.as_str(),
            }),
        ),
        Event::ReservationChanged { room, id, change } => {
            let name = match change.action {
                Action::Pay { .. } => "reservation.confirmed",
                Action::Cancel => "reservation.cancelled",
                Action::Expire => "reservation.expired",
                Action::CheckIn => "reservation.checked_in",
                Action::CheckOut => "reservation.checked_out",
                Action::NoShow => "reservation.no_show",
            };
            (
                name,
                json!({
                    "reservation_id": id.to_string(),
                    "room": room.number.as_str(),
                    "at": change.at.to_string(),
                    "nights_released_from": change.release_from.map(|d| d.to_string()),
                }),
            )
        }
        Event::PaymentChanged {
            room,
            id,
            change,
            at,
        } => (
            "payment.updated",
            json!({
                "reservation_id": id.to_string(),
                "room": room.number.as_str(),
                "change": match change {
                    PaymentChange::Failed { .. } => "failed",
                    PaymentChange::RefundOwed { .. } => "refund_owed",
                    PaymentChange::Refunded => "refunded",
                },
                "at": at.to_string(),
            }),
        ),
        Event::HousekeepingSet { room, status, at } => (
            "room.status",
            json!({"room": room.number.as_str(), "housekeeping": status.as_str(), "at": at.to_string()}),
        ),
        Event::HotelPut { .. }
        | Event::RoomTypePut { .. }
        | Event::RoomPut { .. }
        | Event::RatePut { .. } => ("setup.updated", json!({})),
    }
}
