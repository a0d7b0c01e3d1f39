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
//!
//! Payloads are JSON objects; amounts in them (`fee`, `refund` of a paid reservation's
//! `reservation.cancelled` or `reservation.no_show`, the `amount` of a `refunded`
//! `payment.updated`) are integers in minor units of the reservation's currency.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use innkeep_actors::feed::FeedEvent;
use innkeep_engine::jiff::civil::Date;
use innkeep_engine::{Action, Event, HotelId, PaymentChange, RoomKey};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::constraints::{Code, LastEventId};
use crate::error::{ApiError, Problem};
use crate::extract::ApiPath;
use crate::AppState;

/// The stream of a hotel's events.
#[utoipa::path(
    get,
    path = "/v1/hotels/{hotel_id}/events",
    tag = "rooms",
    params(
        ("hotel_id" = Code, Path, description = "Hotel code", example = "DEMO"),
        ("Last-Event-ID" = Option<LastEventId>, Header, nullable = false, description = "Resume after this event id (a journal sequence number)"),
    ),
    responses(
        (status = 200, description = "text/event-stream: events named reservation.created, reservation.confirmed, reservation.cancelled, reservation.expired, reservation.checked_in, reservation.checked_out, reservation.no_show, reservation.moved, reservation.modified, booking.created, booking.changed, payment.updated, room.status, room.out_of_order, room.back_in_order, setup.updated, rate_plan.updated, restrictions.updated, availability.changed; and resync. Each journal event is one event carrying its sequence number as `id`; the availability.changed and room.status events it implies come just before it without an `id`, so resuming never skips them (a multi-room booking's booking.created or booking.changed is preceded, likewise without an `id`, by each of its reservations' own events, each with `booking_id`)", content_type = "text/event-stream"),
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
        SseEvent::default()
            .event(RESYNC)
            .data(resync_missed(first).to_string())
    });
    let engine = state.engine.clone();
    let backlog: Vec<SseEvent> = sub
        .backlog
        .iter()
        .filter(|e| e.event.hotel_id() == &hotel)
        .flat_map(|e| to_sse(&engine, e))
        .collect();
    let live = stream::unfold(Some((sub.live, hotel, engine)), |open| async move {
        let (mut rx, hotel, engine) = open?;
        loop {
            match rx.recv().await {
                Ok(e) if e.event.hotel_id() == &hotel => {
                    let events = stream::iter(to_sse(&engine, &e));
                    return Some((events, Some((rx, hotel, engine))));
                }
                Ok(_) => continue,
                // Too slow: say where to resume from, then end.
                Err(RecvError::Lagged(skipped)) => {
                    let resync = SseEvent::default()
                        .event(RESYNC)
                        .data(resync_lagged(skipped).to_string());
                    return Some((stream::iter(vec![resync]), None));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stream = stream::iter(notice.into_iter().chain(backlog))
        .chain(live.flatten())
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
        .and_then(parse_last_event_id)
        .map(Some)
        .ok_or_else(|| {
            ApiError::from(innkeep_engine::ValidationError::new(
                "Last-Event-ID",
                "must be an event id (a whole number)",
            ))
        })
}

/// A `Last-Event-ID` value: a whole number, white space around it ignored.
pub(crate) fn parse_last_event_id(raw: &str) -> Option<u64> {
    raw.trim().parse::<u64>().ok()
}

/// The name of the event that tells a client to reload its state: it missed events.
pub const RESYNC: &str = "resync";

/// The `resync` payload of a stream that cannot replay everything after the client's
/// position: the first sequence number it can show.
pub fn resync_missed(first_available: u64) -> Value {
    json!({
        "reason": "the events after Last-Event-ID cannot all be replayed (older than the resume window, or not an id of this server); reload state",
        "first_available": first_available,
    })
}

/// The `resync` payload that ends the stream of a client too slow for the live channel.
pub fn resync_lagged(skipped: u64) -> Value {
    json!({"reason": "client too slow; reconnect with Last-Event-ID", "skipped": skipped})
}

/// One event of a hotel's stream, whatever the transport (SSE here, gRPC's
/// `WatchEvents`).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamItem {
    /// The journal sequence number to resume after; `None` on the events a journal event
    /// implies, so a client resuming from the previous one sees them again.
    pub seq: Option<u64>,
    /// The event's type (`reservation.created`, `availability.changed`, ...).
    pub name: &'static str,
    /// Its payload.
    pub data: Value,
}

/// The stream form of one journal event: the availability and room-status changes it
/// implies (without a sequence number, so a client resuming from the previous one sees
/// them again rather than missing them), then the event itself with its sequence number.
pub fn stream_items(engine: &innkeep_actors::Engine, e: &FeedEvent) -> Vec<StreamItem> {
    let mut out: Vec<StreamItem> = implied(engine, &e.event)
        .into_iter()
        .map(|(name, data)| StreamItem {
            seq: None,
            name,
            data,
        })
        .collect();
    let (name, data) = describe(&e.event);
    out.push(StreamItem {
        seq: Some(e.seq),
        name,
        data,
    });
    out
}

/// The SSE form of one journal event ([`stream_items`]), the sequence number as `id`.
fn to_sse(engine: &innkeep_actors::Engine, e: &FeedEvent) -> Vec<SseEvent> {
    stream_items(engine, e)
        .into_iter()
        .map(|item| {
            let event = match item.seq {
                Some(seq) => SseEvent::default().id(seq.to_string()),
                None => SseEvent::default(),
            };
            event.event(item.name).data(item.data.to_string())
        })
        .collect()
}

/// `availability.changed` for nights booked or released in a room (`to` null: through the
/// end of the reservation's stay), and `room.status` for occupancy changes.
fn implied(engine: &innkeep_actors::Engine, event: &Event) -> Vec<(&'static str, Value)> {
    let availability = |room: &RoomKey, change: &str, from: Date, to: Option<Date>| {
        availability_item(engine, room, change, from, to)
    };
    let occupancy = |room: &RoomKey, occupancy: &str| {
        (
            "room.status",
            json!({"room": room.number.as_str(), "occupancy": occupancy}),
        )
    };
    match event {
        Event::ReservationCreated { reservation: r, .. } => {
            let key = RoomKey {
                hotel_id: r.hotel_id.clone(),
                number: r.room.clone(),
            };
            vec![availability(
                &key,
                "booked",
                r.stay.arrival(),
                Some(r.stay.departure()),
            )]
        }
        Event::ReservationChanged { room, change, .. } => {
            let mut out = Vec::new();
            match change.action {
                Action::CheckIn => out.push(occupancy(room, "occupied")),
                Action::CheckOut => out.push(occupancy(room, "vacant")),
                _ => {}
            }
            if let Some(from) = change.release_from {
                out.push(availability(room, "released", from, None));
            }
            out
        }
        Event::ReservationMoved {
            from,
            to,
            first_night,
            ..
        } => vec![
            availability(from, "released", *first_night, None),
            availability(to, "booked", *first_night, None),
        ],
        Event::ReservationModified {
            room,
            to,
            modification,
            ..
        } => {
            // The old room gives back the old nights (from the old arrival on) and the
            // new one, the same room or another, holds the new stay.
            let stay = &modification.stay;
            let old_arrival = modification
                .changes
                .iter()
                .find_map(|c| match c {
                    innkeep_engine::FieldChange::Arrival { from, .. } => Some(*from),
                    _ => None,
                })
                .unwrap_or(stay.arrival());
            let to = RoomKey {
                hotel_id: room.hotel_id.clone(),
                number: to.clone().unwrap_or_else(|| room.number.clone()),
            };
            vec![
                availability(room, "released", old_arrival.min(stay.arrival()), None),
                availability(&to, "booked", stay.arrival(), Some(stay.departure())),
            ]
        }
        Event::Rearranged {
            moves, reservation, ..
        } => {
            // Each moved guest's own `reservation.moved` (their client follows its
            // reservation by these), the nights each move gave and took, then the new
            // reservation's nights; the record's own item is the creation.
            let key = |number: &innkeep_engine::RoomNumber| RoomKey {
                hotel_id: reservation.hotel_id.clone(),
                number: number.clone(),
            };
            let mut out = moved_items(engine, moves, MadeFor::reservation(reservation));
            out.push(availability(
                &key(&reservation.room),
                "booked",
                reservation.stay.arrival(),
                Some(reservation.stay.departure()),
            ));
            out
        }
        Event::OutOfOrderSet { room, from, to, .. } => {
            vec![availability(room, "blocked", *from, Some(*to))]
        }
        Event::OutOfOrderCleared { room, from, .. } => {
            vec![availability(room, "unblocked", *from, None)]
        }
        // A multi-room booking: the moves that made room (as for a rearrangement), then
        // each reservation's own `reservation.created` (a client following reservations
        // sees every one), with the nights it took; the record's own item is
        // `booking.created`.
        Event::BookingCreated {
            booking,
            moves,
            reservations,
            ..
        } => {
            let mut out = match reservations.first() {
                Some(lead) => moved_items(
                    engine,
                    moves,
                    MadeFor {
                        booking: Some(booking),
                        ..MadeFor::reservation(lead)
                    },
                ),
                None => Vec::new(),
            };
            for r in reservations {
                let one = Event::ReservationCreated {
                    reservation: r.clone(),
                    idempotency: None,
                };
                let (name, mut data) = describe(&one);
                data["booking_id"] = json!(booking.to_string());
                out.extend(implied(engine, &one));
                out.push((name, data));
            }
            out
        }
        // A modification made room for by moving others: the moves, then what the
        // modification implies; the record's own item is `reservation.modified`.
        Event::ModifyRearranged { moves, modified } => {
            let mut out = match &**modified {
                Event::ReservationModified {
                    room,
                    id,
                    modification,
                    at,
                    ..
                } => moved_items(
                    engine,
                    moves,
                    MadeFor {
                        hotel_id: &room.hotel_id,
                        room_type: &modification.room_type,
                        at: *at,
                        id: *id,
                        booking: None,
                    },
                ),
                _ => Vec::new(),
            };
            out.extend(implied(engine, modified));
            out
        }
        // Each reservation's own change event (`reservation.confirmed`, `…cancelled`,
        // `…expired`, `payment.updated`), with what it implies; the record's own item is
        // `booking.changed`.
        Event::BookingChanged { booking, parts, .. } => parts
            .iter()
            .flat_map(|part| {
                let (name, mut data) = describe(part);
                data["booking_id"] = json!(booking.to_string());
                let mut items = implied(engine, part);
                items.push((name, data));
                items
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `availability.changed` for nights of `room` from `from` (to `to`, or through the end of
/// the reservation's stay).
fn availability_item(
    engine: &innkeep_actors::Engine,
    room: &RoomKey,
    change: &str,
    from: Date,
    to: Option<Date>,
) -> (&'static str, Value) {
    (
        "availability.changed",
        json!({
            "room": room.number.as_str(),
            "room_type": engine.room_type_of(room).map(|t| t.as_str().to_owned()),
            "change": change,
            "from": from.to_string(),
            "to": to.map(|d| d.to_string()),
        }),
    )
}

/// What a rearrangement's moves were made for: a new reservation, a multi-room booking's
/// first one (and the booking), or a modified one.
struct MadeFor<'a> {
    hotel_id: &'a innkeep_engine::HotelId,
    /// The moved reservations' type (moves stay within it).
    room_type: &'a innkeep_engine::RoomTypeCode,
    at: innkeep_engine::jiff::Timestamp,
    id: innkeep_engine::ReservationId,
    booking: Option<&'a innkeep_engine::BookingId>,
}

impl<'a> MadeFor<'a> {
    fn reservation(r: &'a innkeep_engine::Reservation) -> Self {
        Self {
            hotel_id: &r.hotel_id,
            room_type: &r.room_type,
            at: r.created_at,
            id: r.id,
            booking: None,
        }
    }
}

/// For each move of a rearrangement: the nights the move gave and took, then the moved
/// guest's own `reservation.moved` (their client follows its reservation by these), with
/// `rearranged_for` naming the reservation it was made for.
fn moved_items(
    engine: &innkeep_actors::Engine,
    moves: &[innkeep_engine::Relocation],
    made: MadeFor<'_>,
) -> Vec<(&'static str, Value)> {
    let key = |number: &innkeep_engine::RoomNumber| RoomKey {
        hotel_id: made.hotel_id.clone(),
        number: number.clone(),
    };
    let mut out = Vec::new();
    for m in moves {
        let (from, to) = (key(&m.from), key(&m.to));
        let (arrival, departure) = (m.stay.arrival(), m.stay.departure());
        out.push(availability_item(
            engine,
            &from,
            "released",
            arrival,
            Some(departure),
        ));
        out.push(availability_item(
            engine,
            &to,
            "booked",
            arrival,
            Some(departure),
        ));
        let mut moved = json!({
            "reservation_id": m.id.to_string(),
            "from_room": m.from.as_str(),
            "room": m.to.as_str(),
            "room_type": made.room_type.as_str(),
            "first_night": arrival.to_string(),
            "at": made.at.to_string(),
            "rearranged_for": made.id.to_string(),
        });
        if let Some(b) = made.booking {
            moved["rearranged_for_booking"] = json!(b.to_string());
        }
        out.push(("reservation.moved", moved));
    }
    out
}

/// The types of the events that carry an id (one per journal record): what
/// [`describe`] names, and what a webhook may subscribe to. (`availability.changed` is
/// derived from these, without an id of its own.)
pub const EVENT_TYPES: &[&str] = &[
    "reservation.created",
    "reservation.confirmed",
    "reservation.cancelled",
    "reservation.expired",
    "reservation.checked_in",
    "reservation.checked_out",
    "reservation.no_show",
    "reservation.moved",
    "reservation.modified",
    "booking.created",
    "booking.changed",
    "payment.updated",
    "room.status",
    "room.out_of_order",
    "room.back_in_order",
    "setup.updated",
    "rate_plan.updated",
    "restrictions.updated",
];

/// The moves of a rearrangement, as `rearranged` lists them.
fn relocations(moves: &[innkeep_engine::Relocation]) -> Value {
    moves
        .iter()
        .map(|m| {
            json!({
                "reservation_id": m.id.to_string(),
                "from_room": m.from.as_str(),
                "room": m.to.as_str(),
                "arrival": m.stay.arrival().to_string(),
                "departure": m.stay.departure().to_string(),
            })
        })
        .collect()
}

/// An event's type and its JSON payload, as the event stream, webhooks and the partition
/// streams send them.
pub fn describe(event: &Event) -> (&'static str, Value) {
    let created = |r: &innkeep_engine::Reservation| {
        json!({
            "reservation_id": r.id.to_string(),
            "room": r.room.as_str(),
            "room_type": r.room_type.as_str(),
            "arrival": r.stay.arrival().to_string(),
            "departure": r.stay.departure().to_string(),
            "status": r.status.as_str(),
        })
    };
    match event {
        Event::ReservationCreated { reservation: r, .. } => ("reservation.created", created(r)),
        // A booking other reservations made room for: the creation, with the moves it
        // made (a webhook gets one delivery per journal record; the stream also sends a
        // `reservation.moved` per move, see `implied`).
        Event::Rearranged {
            moves,
            reservation: r,
            ..
        } => {
            let mut data = created(r);
            data["rearranged"] = relocations(moves);
            ("reservation.created", data)
        }
        // A multi-room booking made: its reservations (the stream sends each one's own
        // `reservation.created` too, see `implied`; a webhook gets this one delivery).
        Event::BookingCreated {
            booking,
            moves,
            reservations,
            ..
        } => (
            "booking.created",
            json!({
                "booking_id": booking.to_string(),
                "reservations": reservations.iter().map(|r| created(r)).collect::<Vec<_>>(),
                "rearranged": relocations(moves),
            }),
        ),
        // A modification other reservations made room for: the modification, with the
        // moves (the stream also sends a `reservation.moved` per move, see `implied`).
        Event::ModifyRearranged { moves, modified } => {
            let (name, mut data) = describe(modified);
            data["rearranged"] = relocations(moves);
            (name, data)
        }
        // Its reservations changed together: each change as its own event would be.
        Event::BookingChanged { booking, parts, .. } => (
            "booking.changed",
            json!({
                "booking_id": booking.to_string(),
                "changes": parts
                    .iter()
                    .map(|part| {
                        let (name, data) = describe(part);
                        json!({"type": name, "data": data})
                    })
                    .collect::<Vec<_>>(),
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
            let mut data = json!({
                "reservation_id": id.to_string(),
                "room": room.number.as_str(),
                "at": change.at.to_string(),
                "nights_released_from": change.release_from.map(|d| d.to_string()),
            });
            // A paid reservation cancelled or marked a no-show: what the hotel keeps and
            // what goes back, in minor units of the reservation's currency.
            if let Some(s) = &change.settlement {
                data["fee"] = json!(s.fee_minor);
                data["refund"] = json!(s.refund_minor);
            }
            (name, data)
        }
        Event::PaymentChanged {
            room,
            id,
            change,
            at,
        } => {
            let mut data = json!({
                "reservation_id": id.to_string(),
                "room": room.number.as_str(),
                "change": match change {
                    PaymentChange::Failed { .. } => "failed",
                    PaymentChange::RefundOwed { .. } => "refund_owed",
                    PaymentChange::Refunded { .. } => "refunded",
                    PaymentChange::BalancePaid { .. } => "balance_paid",
                },
                "at": at.to_string(),
            });
            if let PaymentChange::Refunded { amount_minor } = change {
                data["amount"] = json!(amount_minor);
            }
            ("payment.updated", data)
        }
        Event::HousekeepingSet { room, status, at } => (
            "room.status",
            json!({"room": room.number.as_str(), "housekeeping": status.as_str(), "at": at.to_string()}),
        ),
        Event::ReservationMoved {
            id,
            from,
            to,
            room_type,
            first_night,
            at,
            ..
        } => (
            "reservation.moved",
            json!({
                "reservation_id": id.to_string(),
                "from_room": from.number.as_str(),
                "room": to.number.as_str(),
                "room_type": room_type.as_str(),
                "first_night": first_night.to_string(),
                "at": at.to_string(),
            }),
        ),
        Event::ReservationModified {
            room,
            id,
            to,
            modification: m,
            at,
        } => (
            "reservation.modified",
            json!({
                "reservation_id": id.to_string(),
                "from_room": room.number.as_str(),
                "room": to.as_ref().unwrap_or(&room.number).as_str(),
                "room_type": m.room_type.as_str(),
                "arrival": m.stay.arrival().to_string(),
                "departure": m.stay.departure().to_string(),
                "guests": m.guests,
                "rate_plan": m.terms.rate_plan.as_str(),
                "total": m.total_minor,
                "changed": m.changes.iter().map(|c| c.field()).collect::<Vec<_>>(),
                "at": at.to_string(),
            }),
        ),
        Event::OutOfOrderSet {
            room,
            from,
            to,
            reason,
            at,
            ..
        } => (
            "room.out_of_order",
            json!({
                "room": room.number.as_str(),
                "from": from.to_string(),
                "to": to.to_string(),
                "reason": reason,
                "at": at.to_string(),
            }),
        ),
        Event::OutOfOrderCleared { room, from, at } => (
            "room.back_in_order",
            json!({"room": room.number.as_str(), "from": from.to_string(), "at": at.to_string()}),
        ),
        Event::RatePlanPut { hotel_id, code, .. } => (
            "rate_plan.updated",
            json!({"hotel_id": hotel_id.as_str(), "code": code.as_str()}),
        ),
        Event::RestrictionsSet {
            from,
            to,
            weekdays,
            room_types,
            rate_plans,
            ..
        } => (
            "restrictions.updated",
            json!({
                "from": from.to_string(),
                "to": to.to_string(),
                "weekdays": weekdays.names(),
                "room_types": room_types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                "rate_plans": rate_plans.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            }),
        ),
        Event::HotelPut { .. }
        | Event::RoomTypePut { .. }
        | Event::RoomPut { .. }
        | Event::RatePut { .. } => ("setup.updated", json!({})),
    }
}

#[cfg(test)]
mod tests {
    use innkeep_engine::event::Settlement;
    use innkeep_engine::selling::{RatePlan, RestrictionPatch, Weekdays};
    use innkeep_engine::{Change, HotelId, RatePlanCode, ReservationId, RoomNumber, RoomTypeCode};

    use super::*;

    fn room() -> RoomKey {
        RoomKey {
            hotel_id: HotelId::parse("H1").unwrap(),
            number: RoomNumber::parse("101").unwrap(),
        }
    }

    /// The selling-rule setup events have their own names and payloads, and belong to
    /// their hotel's stream (which shows the events whose `hotel_id` is the hotel's).
    #[test]
    fn selling_rule_events_are_named_and_belong_to_their_hotel() {
        let hotel = HotelId::parse("H1").unwrap();
        let put = Event::RatePlanPut {
            hotel_id: hotel.clone(),
            code: RatePlanCode::parse("FLEX").unwrap(),
            plan: RatePlan::bar(),
        };
        assert_eq!(put.hotel_id(), &hotel);
        assert_eq!(
            describe(&put),
            (
                "rate_plan.updated",
                json!({"hotel_id": "H1", "code": "FLEX"})
            )
        );
        let from = innkeep_engine::jiff::civil::date(2030, 3, 1);
        let set = Event::RestrictionsSet {
            hotel_id: hotel.clone(),
            from,
            to: innkeep_engine::jiff::civil::date(2030, 3, 8),
            weekdays: Weekdays::parse(&["sat", "fri"]).unwrap(),
            room_types: vec![RoomTypeCode::parse("KING").unwrap()],
            rate_plans: vec![RatePlanCode::bar(), RatePlanCode::parse("FLEX").unwrap()],
            patch: RestrictionPatch {
                closed: Some(true),
                ..Default::default()
            },
        };
        assert_eq!(set.hotel_id(), &hotel);
        assert_eq!(
            describe(&set),
            (
                "restrictions.updated",
                json!({"from": "2030-03-01", "to": "2030-03-08", "weekdays": ["fri", "sat"],
                       "room_types": ["KING"], "rate_plans": ["BAR", "FLEX"]})
            )
        );
    }

    /// A paid cancellation or no-show carries its fee and refund; an unpaid one neither;
    /// a refund carries its amount.
    #[test]
    fn settlements_and_refunds_carry_their_amounts() {
        let id = ReservationId(uuid::Uuid::from_u128(7));
        let at: innkeep_engine::jiff::Timestamp = "2030-03-01T10:00:00Z".parse().unwrap();
        let changed = |action: Action, settlement: Option<Settlement>| Event::ReservationChanged {
            room: room(),
            id,
            change: Change {
                action,
                at,
                release_from: None,
                settlement,
            },
        };
        let paid = Some(Settlement {
            fee_minor: 40_000,
            refund_minor: 60_000,
        });
        let (name, data) = describe(&changed(Action::Cancel, paid));
        assert_eq!(name, "reservation.cancelled");
        // Every name `describe` gives is one a webhook may subscribe to.
        for action in [
            Action::Cancel,
            Action::Expire,
            Action::CheckIn,
            Action::CheckOut,
            Action::NoShow,
        ] {
            let name = describe(&changed(action, None)).0;
            assert!(EVENT_TYPES.contains(&name), "{name}");
        }
        assert_eq!(
            (&data["fee"], &data["refund"]),
            (&json!(40_000), &json!(60_000))
        );
        let (name, data) = describe(&changed(Action::NoShow, paid));
        assert_eq!(name, "reservation.no_show");
        assert_eq!(
            (&data["fee"], &data["refund"]),
            (&json!(40_000), &json!(60_000))
        );
        let (_, data) = describe(&changed(Action::Cancel, None));
        assert!(data.get("fee").is_none() && data.get("refund").is_none());
        let refunded = Event::PaymentChanged {
            room: room(),
            id,
            change: PaymentChange::Refunded {
                amount_minor: 60_000,
            },
            at,
        };
        let (name, data) = describe(&refunded);
        assert_eq!(name, "payment.updated");
        assert_eq!(
            (&data["change"], &data["amount"]),
            (&json!("refunded"), &json!(60_000))
        );
        let owed = Event::PaymentChanged {
            room: room(),
            id,
            change: PaymentChange::RefundOwed {
                trade_no: "T-1".into(),
            },
            at,
        };
        assert!(describe(&owed).1.get("amount").is_none());
    }
}
