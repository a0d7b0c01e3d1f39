//! The gRPC API (`proto/innkeep/v1/`) through the real binary, with the generated tonic
//! client: setup, availability, idempotent booking, the reservation's life, moves, keys,
//! roles and hotel scoping, problem codes in the status details, rate limits, and
//! `WatchEvents` live, resumed from a sequence number, and ended by shutdown.

use std::time::Duration;

use innkeep_grpc::pb::innkeep_client::InnkeepClient;
use innkeep_grpc::pb::{self, Event};
use innkeep_grpc::problem_code;
use innkeep_grpc::tonic::transport::Channel;
use innkeep_grpc::tonic::{Code, Request, Status, Streaming};
use serde_json::{json, Value};

use crate::harness::{client, message, pay, plus, today, Server};
use crate::security::keygen;

/// Most time a stream may take to deliver an event that is already due (a guard against a
/// hang, not a wait for anything).
const STREAM_GUARD: Duration = Duration::from_secs(30);

/// The address the server's gRPC API listens on, from its start-up log.
fn grpc_url(s: &Server) -> String {
    let line = s
        .startup
        .iter()
        .find(|l| message(l) == "gRPC listening")
        .expect("the server logged its gRPC address");
    format!(
        "http://{}",
        line["fields"]["local"].as_str().expect("local")
    )
}

async fn connect(s: &Server) -> InnkeepClient<Channel> {
    let channel = Channel::from_shared(grpc_url(s))
        .expect("url")
        .connect()
        .await
        .expect("connect to gRPC");
    InnkeepClient::new(channel)
}

/// `message` with `authorization: Bearer <key>` metadata.
fn with_key<T>(key: &str, message: T) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("metadata"),
    );
    req
}

/// The status's gRPC code and problem code.
fn refusal(status: &Status) -> (Code, Option<String>) {
    (status.code(), problem_code(status))
}

fn refused(code: Code, problem: &str) -> (Code, Option<String>) {
    (code, Some(problem.to_owned()))
}

/// A config file with these keys (`name`, sha256, role, hotels).
fn config(dir: &std::path::Path, keys: &[(&str, &str, &str, &str)], extra: &str) -> String {
    let mut text = String::new();
    for (name, hash, role, hotels) in keys {
        text.push_str(&format!(
            "[[api_keys]]\nname = \"{name}\"\nkey_sha256 = \"{hash}\"\nrole = \"{role}\"\nhotels = {hotels}\n"
        ));
    }
    text.push_str(extra);
    let path = dir.join("innkeep.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn book_request(hotel: &str, arrival: &str, departure: &str, key: Option<&str>) -> pb::BookRequest {
    pb::BookRequest {
        hotel_id: hotel.to_owned(),
        room_type: "STD".to_owned(),
        arrival: arrival.to_owned(),
        departure: departure.to_owned(),
        guests: 2,
        guest: Some(pb::Guest {
            name: "Grpc Guest".to_owned(),
            phone: "+86 138 0000 0000".to_owned(),
            email: "grpc@example.com".to_owned(),
        }),
        room: None,
        rate_plan: None,
        idempotency_key: key.map(str::to_owned),
    }
}

/// What the harness's `pay` needs of a reservation, in the HTTP API's JSON shape.
fn payment_json(r: &pb::Reservation) -> Value {
    let total = r.total.as_ref().expect("total");
    let payment = r.payment.as_ref().expect("payment");
    let amount = payment.amount.as_ref().expect("amount");
    json!({
        "payment": {
            "out_trade_no": payment.out_trade_no,
            "amount": {"amount": amount.amount_minor, "currency": amount.currency},
        },
        "total": {"amount": total.amount_minor, "currency": total.currency},
    })
}

/// The next event of a stream, which must come.
async fn next(stream: &mut Streaming<Event>) -> Event {
    tokio::time::timeout(STREAM_GUARD, stream.message())
        .await
        .expect("an event within the guard time")
        .expect("stream ok")
        .expect("stream still open")
}

/// Reads a stream until an event of type `until` and returns everything read.
async fn read_until(stream: &mut Streaming<Event>, until: &str) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let e = next(stream).await;
        let done = e.r#type == until;
        out.push(e);
        if done {
            return out;
        }
    }
}

fn data(e: &Event) -> Value {
    serde_json::from_str(&e.data_json).expect("event data is JSON")
}

/// Setup, availability, idempotent booking, get, cancel, pay, move, check-in and -out,
/// keys, roles, scoping and problem codes over gRPC; then WatchEvents from the start,
/// resumed from a sequence number, live, and ended by a graceful shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_api_end_to_end() {
    let (admin, admin_hash) = keygen();
    let (channel, channel_hash) = keygen();
    let (desk, desk_hash) = keygen();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &[
            ("ops", &admin_hash, "admin", "[\"*\"]"),
            ("ota", &channel_hash, "channel", "[\"G1\"]"),
            ("desk", &desk_hash, "front_desk", "[\"G1\"]"),
        ],
        "",
    );
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("INNKEEP_CONFIG", config.as_str()),
            ("INNKEEP_GRPC_LISTEN", "127.0.0.1:0"),
        ],
    );
    let mut g = connect(&s).await;
    let http = client();

    // Keys: none, unknown, and a role that may not do setup.
    let hotel = pb::PutHotelRequest {
        hotel_id: "G1".to_owned(),
        name: "Grpc One".to_owned(),
        time_zone: "UTC".to_owned(),
        currency: "CNY".to_owned(),
    };
    let e = g.put_hotel(Request::new(hotel.clone())).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::Unauthenticated, "unauthorized"),
        "{e:?}"
    );
    let e = g
        .put_hotel(with_key("wrong", hotel.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::Unauthenticated, "unauthorized"),
        "{e:?}"
    );
    let e = g
        .put_hotel(with_key(&channel, hotel.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::PermissionDenied, "forbidden"),
        "{e:?}"
    );

    // Setup by the admin.
    let put = g
        .put_hotel(with_key(&admin, hotel.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(put.created);
    assert_eq!(put.hotel.as_ref().unwrap().time_zone, "UTC");
    let put = g
        .put_hotel(with_key(&admin, hotel.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(!put.created, "a second put updates");
    let g2 = pb::PutHotelRequest {
        hotel_id: "G2".to_owned(),
        ..hotel.clone()
    };
    g.put_hotel(with_key(&admin, g2)).await.unwrap();
    let rt = g
        .put_room_type(with_key(
            &admin,
            pb::PutRoomTypeRequest {
                hotel_id: "G1".to_owned(),
                code: "STD".to_owned(),
                name: "Standard".to_owned(),
                capacity: 2,
                base_rate: Some(pb::Money {
                    amount_minor: 10_000,
                    currency: String::new(),
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(rt.created);
    assert_eq!(rt.room_type.unwrap().base_rate.unwrap().currency, "CNY");
    // Money in another currency than the hotel's is refused, as in HTTP.
    let e = g
        .put_room_type(with_key(
            &admin,
            pb::PutRoomTypeRequest {
                hotel_id: "G1".to_owned(),
                code: "EUR".to_owned(),
                name: "Euro".to_owned(),
                capacity: 2,
                base_rate: Some(pb::Money {
                    amount_minor: 100,
                    currency: "EUR".to_owned(),
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::InvalidArgument, "invalid_request"),
        "{e:?}"
    );
    for number in ["101", "102"] {
        let room = g
            .put_room(with_key(
                &admin,
                pb::PutRoomRequest {
                    hotel_id: "G1".to_owned(),
                    number: number.to_owned(),
                    room_type: "STD".to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(room.created, "{number}");
    }
    let day0 = today("UTC");
    let (d0, d1, d2) = (
        day0.to_string(),
        plus(day0, 1).to_string(),
        plus(day0, 2).to_string(),
    );
    g.put_rate(with_key(
        &admin,
        pb::PutRateRequest {
            hotel_id: "G1".to_owned(),
            room_type: "STD".to_owned(),
            from: d1.clone(),
            to: d2.clone(),
            amount: Some(pb::Money {
                amount_minor: 12_000,
                currency: "CNY".to_owned(),
            }),
        },
    ))
    .await
    .unwrap();
    let fee = |rule| Some(pb::FeeRule { rule: Some(rule) });
    let nrf = pb::PutRatePlanRequest {
        hotel_id: "G1".to_owned(),
        code: "NRF".to_owned(),
        name: "Non-refundable".to_owned(),
        room_types: vec!["STD".to_owned()],
        adjust_percent: -10,
        cancellation: Some(pb::Cancellation {
            free_until_hours: 0,
            fee: fee(pb::fee_rule::Rule::Percent(100)),
        }),
        no_show_fee: fee(pb::fee_rule::Rule::Nights(1)),
        min_advance_days: None,
        max_advance_days: None,
    };
    let put = g
        .put_rate_plan(with_key(&admin, nrf.clone()))
        .await
        .unwrap();
    assert!(put.into_inner().created);
    let e = g
        .put_rate_plan(with_key(
            &admin,
            pb::PutRatePlanRequest {
                adjust_percent: 150,
                ..nrf
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::InvalidArgument, "invalid_request"),
        "{e:?}"
    );
    // Restrictions: NRF closed to arrival on d2 (one cell); a channel may not set them, a
    // bad weekday is invalid_request; a booking under NRF arriving on d2 is restricted.
    let restrict = pb::SetRestrictionsRequest {
        hotel_id: "G1".to_owned(),
        from: d2.clone(),
        to: plus(day0, 3).to_string(),
        room_types: vec![],
        rate_plans: vec!["NRF".to_owned()],
        weekdays: vec![],
        set: Some(pb::RestrictionSet {
            closed_to_arrival: Some(true),
            min_stay_arrival: Some(pb::LengthOfStay { nights: Some(2) }),
            ..pb::RestrictionSet::default()
        }),
    };
    let set = g
        .set_restrictions(with_key(&admin, restrict.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set.cells, 1);
    let e = g
        .set_restrictions(with_key(&channel, restrict.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::PermissionDenied, "forbidden"),
        "{e:?}"
    );
    let e = g
        .set_restrictions(with_key(
            &admin,
            pb::SetRestrictionsRequest {
                weekdays: vec!["someday".to_owned()],
                ..restrict.clone()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::InvalidArgument, "invalid_request"),
        "{e:?}"
    );
    let mut under_nrf = book_request("G1", &d2, &plus(day0, 3).to_string(), None);
    under_nrf.rate_plan = Some("NRF".to_owned());
    let e = g.book(with_key(&channel, under_nrf)).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::FailedPrecondition, "restricted"),
        "{e:?}"
    );
    // Cleared again (min stay cleared too), so the rest of the test books freely.
    let cleared = g
        .set_restrictions(with_key(
            &admin,
            pb::SetRestrictionsRequest {
                set: Some(pb::RestrictionSet {
                    closed_to_arrival: Some(false),
                    min_stay_arrival: Some(pb::LengthOfStay { nights: None }),
                    ..pb::RestrictionSet::default()
                }),
                ..restrict
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.cells, 0);

    let h = g
        .get_hotel(with_key(
            &admin,
            pb::GetHotelRequest {
                hotel_id: "G1".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.room_types.len(), 1);
    assert_eq!(h.room_types[0].rooms, 2);

    // Availability, as the channel: the override priced in; another hotel is invisible.
    let avail = pb::GetAvailabilityRequest {
        hotel_id: "G1".to_owned(),
        arrival: d0.clone(),
        departure: d2.clone(),
        guests: Some(2),
    };
    let a = g
        .get_availability(with_key(&channel, avail.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.nights, 2);
    let std = &a.room_types[0];
    assert_eq!((std.room_type.as_str(), std.available), ("STD", 2));
    let rates: Vec<i64> = std.nightly_rates.iter().map(|n| n.amount_minor).collect();
    assert_eq!(rates, [10_000, 12_000]);
    assert_eq!(std.total.as_ref().unwrap().amount_minor, 22_000);
    let e = g
        .get_availability(with_key(
            &channel,
            pb::GetAvailabilityRequest {
                hotel_id: "G2".to_owned(),
                ..avail.clone()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refusal(&e), refused(Code::NotFound, "not_found"), "{e:?}");
    let e = g
        .get_availability(with_key(
            &channel,
            pb::GetAvailabilityRequest {
                guests: Some(0),
                ..avail.clone()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::InvalidArgument, "invalid_request"),
        "{e:?}"
    );

    // A message over HTTP's body limit (1 MiB) is refused before the service sees it.
    let mut huge = book_request("G1", &d1, &d2, None);
    huge.guest.as_mut().unwrap().name = "x".repeat(innkeep_http::BODY_LIMIT_BYTES + 1);
    let e = g.book(with_key(&channel, huge)).await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");

    // Bad input gets the HTTP API's codes.
    let e = g
        .book(with_key(
            &channel,
            book_request("G1", "2026-13-01", &d1, None),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::InvalidArgument, "invalid_request"),
        "{e:?}"
    );
    let e = g
        .book(with_key(&channel, book_request("G1", &d1, &d1, None)))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::InvalidArgument, "invalid_stay"),
        "{e:?}"
    );

    // Booking with an idempotency key: a retry is the same reservation, another request
    // under the key is refused.
    let first = g
        .book(with_key(
            &channel,
            book_request("G1", &d1, &d2, Some("grpc-k1")),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.status, "pending_payment");
    assert_eq!(first.total.as_ref().unwrap().amount_minor, 12_000);
    let again = g
        .book(with_key(
            &channel,
            book_request("G1", &d1, &d2, Some("grpc-k1")),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, first.id);
    let mut other = book_request("G1", &d1, &d2, Some("grpc-k1"));
    other.guests = 1;
    let e = g.book(with_key(&channel, other)).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::FailedPrecondition, "idempotency_key_reused"),
        "{e:?}"
    );

    // Get: the channel that booked it and the hotel's front desk see it.
    let get = |id: &str| pb::GetReservationRequest {
        reservation_id: id.to_owned(),
    };
    let seen = g
        .get_reservation(with_key(&channel, get(&first.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (seen.id.as_str(), seen.version),
        (first.id.as_str(), first.version)
    );
    assert_eq!(seen.history.len(), 1);
    let seen = g
        .get_reservation(with_key(&desk, get(&first.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.guest.unwrap().name, "Grpc Guest");
    let e = g
        .get_reservation(with_key(&admin, get("not-a-uuid")))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::InvalidArgument, "invalid_request"),
        "{e:?}"
    );

    // Modify: the channel that booked it changes its guests (same price, one version
    // more), then its stay to a day earlier (re-priced as one night from d0); a stay that
    // ends before it begins is invalid_stay, with the problem code.
    let modify =
        |guests: Option<u32>, arrival: Option<&str>, departure: Option<&str>| pb::ModifyRequest {
            reservation_id: first.id.clone(),
            guests,
            arrival: arrival.map(str::to_owned),
            departure: departure.map(str::to_owned),
            ..pb::ModifyRequest::default()
        };
    let modified = g
        .modify(with_key(&channel, modify(Some(1), None, None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (modified.guests, modified.version, modified.total.clone()),
        (1, first.version + 1, first.total.clone())
    );
    let moved_earlier = g
        .modify(with_key(&channel, modify(None, Some(&d0), Some(&d1))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            moved_earlier.arrival.as_str(),
            moved_earlier.departure.as_str()
        ),
        (d0.as_str(), d1.as_str())
    );
    assert_eq!(moved_earlier.version, first.version + 2);
    let e = g
        .modify(with_key(&channel, modify(None, Some(&d1), Some(&d0))))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::InvalidArgument, "invalid_stay"),
        "{e:?}"
    );
    let first = moved_earlier;

    // Cancel, then cancelling again is an illegal transition, with its problem code.
    let action = |id: &str, version: Option<u64>| pb::ReservationActionRequest {
        reservation_id: id.to_owned(),
        expected_version: version,
    };
    let cancelled = g
        .cancel(with_key(&channel, action(&first.id, None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, "cancelled");
    let e = g
        .cancel(with_key(&channel, action(&first.id, None)))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::FailedPrecondition, "invalid_transition"),
        "{e:?}"
    );

    // A stay from today, paid (through the HTTP payment callback), moved, checked in
    // and out.
    let stay = g
        .book(with_key(&channel, book_request("G1", &d0, &d1, None)))
        .await
        .unwrap()
        .into_inner();
    pay(&http, &s, &payment_json(&stay)).await;
    let paid = g
        .get_reservation(with_key(&desk, get(&stay.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paid.status, "confirmed");
    let target = if stay.room == "101" { "102" } else { "101" };
    let mv = |version: Option<u64>| pb::MoveRequest {
        reservation_id: stay.id.clone(),
        room: target.to_owned(),
        expected_version: version,
    };
    let e = g
        .r#move(with_key(&desk, mv(Some(paid.version + 5))))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::Aborted, "version_mismatch"),
        "{e:?}"
    );
    let e = g.r#move(with_key(&channel, mv(None))).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::PermissionDenied, "forbidden"),
        "{e:?}"
    );
    let moved = g
        .r#move(with_key(&desk, mv(Some(paid.version))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.room, target);
    let e = g
        .check_in(with_key(&channel, action(&stay.id, None)))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::PermissionDenied, "forbidden"),
        "{e:?}"
    );
    let inside = g
        .check_in(with_key(&desk, action(&stay.id, Some(moved.version))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inside.status, "checked_in");
    let out = g
        .check_out(with_key(&desk, action(&stay.id, None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.status, "checked_out");
    assert_eq!(
        out.history
            .iter()
            .map(|h| h.to.as_str())
            .collect::<Vec<_>>(),
        // The move is an entry of its own (confirmed to confirmed).
        [
            "pending_payment",
            "confirmed",
            "confirmed",
            "checked_in",
            "checked_out"
        ]
    );

    // WatchEvents: the front desk of G1 only; a channel may not watch.
    let watch = |hotel: &str, after: Option<u64>| pb::WatchEventsRequest {
        hotel_id: hotel.to_owned(),
        after_seq: after,
    };
    let e = g
        .watch_events(with_key(&desk, watch("G2", Some(0))))
        .await
        .unwrap_err();
    assert_eq!(refusal(&e), refused(Code::NotFound, "not_found"), "{e:?}");
    let e = g
        .watch_events(with_key(&channel, watch("G1", Some(0))))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::PermissionDenied, "forbidden"),
        "{e:?}"
    );

    // From the start: G1's whole history, in journal order.
    let mut all = g
        .watch_events(with_key(&desk, watch("G1", Some(0))))
        .await
        .unwrap()
        .into_inner();
    let history = read_until(&mut all, "reservation.checked_out").await;
    let types: Vec<&str> = history
        .iter()
        .filter(|e| e.seq.is_some())
        .map(|e| e.r#type.as_str())
        .collect();
    let order = [
        "reservation.created",
        "reservation.modified",
        "reservation.modified",
        "reservation.cancelled",
        "reservation.created",
        "reservation.confirmed",
        "reservation.moved",
        "reservation.checked_in",
        "reservation.checked_out",
    ];
    let reservations: Vec<&str> = types
        .iter()
        .copied()
        .filter(|t| t.starts_with("reservation."))
        .collect();
    assert_eq!(reservations, order, "{types:?}");
    assert!(types.contains(&"setup.updated"), "{types:?}");
    let seqs: Vec<u64> = history.iter().filter_map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        history
            .iter()
            .any(|e| e.r#type == "availability.changed" && e.seq.is_none()),
        "implied events come without a sequence number"
    );
    let moved_event = history
        .iter()
        .find(|e| e.r#type == "reservation.moved")
        .unwrap();
    assert_eq!(data(moved_event)["room"], target);

    // Resumed after the confirmation: exactly the events after it, nothing before.
    let confirmed = history
        .iter()
        .find(|e| e.r#type == "reservation.confirmed")
        .unwrap();
    let from = confirmed.seq.unwrap();
    let mut resumed = g
        .watch_events(with_key(&desk, watch("G1", Some(from))))
        .await
        .unwrap()
        .into_inner();
    let tail = read_until(&mut resumed, "reservation.checked_out").await;
    let tail_seqs: Vec<u64> = tail.iter().filter_map(|e| e.seq).collect();
    let expected: Vec<u64> = seqs.iter().copied().filter(|s| *s > from).collect();
    assert_eq!(tail_seqs, expected);

    // Live: a booking made now (under the plan set up above: 10 % off the night's 12 000)
    // arrives on both open streams.
    let mut under_plan = book_request("G1", &d1, &d2, None);
    under_plan.rate_plan = Some("NRF".to_owned());
    let live = g
        .book(with_key(&channel, under_plan))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(live.rate_plan, "NRF");
    assert_eq!(live.total.as_ref().unwrap().amount_minor, 10_800);
    for stream in [&mut all, &mut resumed] {
        let created = read_until(stream, "reservation.created").await;
        let last = created.last().unwrap();
        assert_eq!(data(last)["reservation_id"], live.id.as_str());
        assert!(last.seq.unwrap() > *seqs.last().unwrap());
    }

    // Shutdown ends the open streams and the process exits cleanly.
    s.signal_term();
    for stream in [&mut all, &mut resumed] {
        let end = tokio::time::timeout(STREAM_GUARD, stream.message())
            .await
            .expect("the stream ends on shutdown");
        assert!(matches!(end, Ok(None)), "{end:?}");
    }
    let status = tokio::task::spawn_blocking(move || s.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// The HTTP API's rate limit applies to gRPC calls too: per key, with the retry delay in
/// the status details.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_spend_the_keys_rate_limit() {
    let (admin, admin_hash) = keygen();
    let (scraper, scraper_hash) = keygen();
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &[
            ("ops", &admin_hash, "admin", "[\"*\"]"),
            ("scraper", &scraper_hash, "admin", "[\"*\"]"),
        ],
        "[limits]\nrate_per_second = 1\nburst = 2\n",
    );
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("INNKEEP_CONFIG", config.as_str()),
            ("INNKEEP_GRPC_LISTEN", "127.0.0.1:0"),
        ],
    );
    let mut g = connect(&s).await;
    let get = || pb::GetHotelRequest {
        hotel_id: "NONE".to_owned(),
    };
    for _ in 0..2 {
        let e = g.get_hotel(with_key(&admin, get())).await.unwrap_err();
        assert_eq!(refusal(&e), refused(Code::NotFound, "not_found"), "{e:?}");
    }
    let e = g.get_hotel(with_key(&admin, get())).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        refused(Code::ResourceExhausted, "rate_limited"),
        "{e:?}"
    );
    use innkeep_grpc::tonic_types::StatusExt;
    let retry = e.get_details_retry_info().expect("retry info");
    assert!(retry
        .retry_delay
        .is_some_and(|d| d >= Duration::from_secs(1)));

    // Counted by method and outcome, next to HTTP's metrics (read with an admin key, as
    // /metrics may ask for once keys are configured; another key, whose bucket is full).
    let text = client()
        .get(s.url("/metrics"))
        .bearer_auth(&scraper)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let calls = |outcome: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("innkeep_grpc_calls_total{")
                    && l.contains("method=\"GetHotel\"")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(calls("not_found").as_deref(), Some("2"), "{text}");
    assert_eq!(calls("rate_limited").as_deref(), Some("1"), "{text}");
    assert!(
        text.contains("innkeep_grpc_call_duration_seconds_bucket{method=\"GetHotel\""),
        "{text}"
    );
}
