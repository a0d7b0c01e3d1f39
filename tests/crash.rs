//! `kill -9` at random instants — under booking load and during start-up — loses nothing
//! that was acknowledged and never leaves a half-applied change.
//!
//! Seeded: the seed is printed; `INNKEEP_CRASH_SEED=<n>` replays a run's choices (the kill
//! instants themselves still race with the server, which is the point: every outcome a kill
//! can produce is checked). `INNKEEP_CRASH_CYCLES=<n>` sets the number of cycles (default
//! 20).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use innkeep_engine::jiff::civil::Date;
use innkeep_engine::jiff::Timestamp;
use innkeep_engine::{HotelId, IdempotencyKey, Reservation};
use innkeep_http::wire::ReservationView;
use serde_json::Value;

use crate::harness::{booking, client, hotel, plus, send, today, try_send, Rng, Server, Starting};

const TZ: &str = "Asia/Shanghai";
const HOTEL: &str = "CRASH";
const ROOMS: usize = 6;
/// Concurrent clients during each cycle's load.
const TASKS: u64 = 8;
/// Stays fall in a window of `[first, first + WINDOW_DAYS)`...
const WINDOW_DAYS: u64 = 12;
/// ...which moves on by `WINDOW_DAYS` every this many cycles, so that bookings which
/// reached the disk unanswered and without a key (the test never learns their ids, so
/// never cancels them) cannot fill the hotel for good in a long run.
const CYCLES_PER_WINDOW: usize = 10;
/// The kill comes 0..=this many ms after the load starts.
const MAX_KILL_DELAY_MS: u64 = 300;
const DEFAULT_CYCLES: usize = 20;

/// Settings for every start: holds never lapse during the test (an expiry would change
/// reservations behind its back), and snapshots are frequent, so kills also land while a
/// snapshot is written and recovery replays on top of a snapshot.
const ENV: &[(&str, &str)] = &[
    ("INNKEEP_HOLD_SECONDS", "604800"),
    ("INNKEEP_SNAPSHOT_EVERY_EVENTS", "40"),
];

/// What became of one booking request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Sent; no answer yet.
    InFlight,
    /// 201 with this reservation id.
    Booked(String),
    /// 409 `sold_out`: it must not exist.
    Refused,
    /// No answer (the server was killed): it may exist — whole — or not at all.
    Lost,
}

/// One booking request, by its tag (which is also in the guest's name).
#[derive(Debug)]
struct Request {
    body: Value,
    key: Option<String>,
    outcome: Outcome,
    /// A lost keyed request already retried after a restart.
    retried: bool,
}

/// An acknowledged reservation.
#[derive(Debug)]
struct Known {
    /// The latest body the API showed: its 201, a 200 cancel, or a GET after a restart.
    latest: Value,
    /// A cancel was sent for it whose answer has not come.
    cancel_unanswered: bool,
}

/// Everything the test sent and heard, shared by the load tasks.
#[derive(Debug, Default)]
struct Ledger {
    requests: BTreeMap<String, Request>,
    reservations: BTreeMap<String, Known>,
    /// Acknowledged `pending_payment` reservations no cancel was sent for.
    cancellable: Vec<String>,
    cancels_acked: usize,
    /// Unanswered cancels found applied / not applied after the restart.
    lost_cancels: (usize, usize),
    /// Unanswered keyed bookings retried after a restart, and how many of those retries
    /// replayed an original that had reached the disk.
    retries: (usize, usize),
}

fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ledger {
    /// Records a 201 for `tag`.
    fn booked(&mut self, tag: &str, body: Value) {
        let id = body["id"].as_str().expect("id").to_owned();
        let req = self.requests.get_mut(tag).expect("sent");
        assert_eq!(
            body["guest"], req.body["guest"],
            "{tag}: the answer is this request's reservation"
        );
        req.outcome = Outcome::Booked(id.clone());
        if body["status"] == "pending_payment" {
            self.cancellable.push(id.clone());
        }
        let before = self.reservations.insert(
            id.clone(),
            Known {
                latest: body,
                cancel_unanswered: false,
            },
        );
        assert!(
            before.is_none(),
            "{tag}: {id} was already another request's"
        );
    }
}

/// splitmix64, to spread a seed over generators (xorshift must not start at 0).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// A booking body for `tag`: the tag is in the guest's name, so the reservation can be
/// found in the recovered state even when its 201 never arrived.
fn tagged(tag: &str, arrival: Date, departure: Date) -> Value {
    let mut body = booking(arrival, departure);
    body["guest"]["name"] = Value::from(format!("Crash {tag}"));
    body
}

/// `before` brought up to date with the room moves `after` shows beyond it: another
/// booking moved this one to make room for itself (issue #16), which changes its room and
/// adds one version, one history entry and one move per move — nothing else. `before`
/// itself when `after` shows no further moves. A moved reservation is never pinned.
fn caught_up(before: &Value, after: &Value) -> Value {
    let (Some(mb), Some(ma)) = (before["moves"].as_array(), after["moves"].as_array()) else {
        return before.clone();
    };
    if ma.len() <= mb.len() || ma[..mb.len()] != mb[..] || after["pinned"] != false {
        return before.clone();
    }
    let moves = (ma.len() - mb.len()) as u64;
    let from = before["version"].as_u64().unwrap_or(0);
    let mut v = before.clone();
    v["moves"] = after["moves"].clone();
    v["room"] = ma[ma.len() - 1]["to_room"].clone();
    v["version"] = Value::from(from + moves);
    let mut history = before["history"].as_array().cloned().unwrap_or_default();
    history.extend(
        after["history"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| {
                let version = h["version"].as_u64().unwrap_or(0);
                from < version && version <= from + moves && h["from"] == h["to"]
            })
            .cloned(),
    );
    v["history"] = Value::from(history);
    v
}

/// Whether `after` is `before` plus one cancel and nothing else.
fn is_cancel_of(before: &Value, after: &Value) -> bool {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return false;
    };
    let same_rest = b.keys().chain(a.keys()).all(|k| {
        ["status", "version", "history", "cancellation_fee"].contains(&k.as_str())
            || b.get(k) == a.get(k)
    });
    let version = before["version"].as_u64().unwrap_or(0);
    let (Some(hb), Some(ha)) = (before["history"].as_array(), after["history"].as_array()) else {
        return false;
    };
    // These stays are never paid: cancelling them is free.
    let fee_free = before["cancellation_fee"].is_null() && after["cancellation_fee"]["amount"] == 0;
    same_rest
        && fee_free
        && after["status"] == "cancelled"
        && after["version"] == version + 1
        && ha.len() == hb.len() + 1
        && ha[..hb.len()] == hb[..]
        && ha[hb.len()]["from"] == before["status"]
        && ha[hb.len()]["to"] == "cancelled"
        && ha[hb.len()]["version"] == version + 1
}

/// One load client: books short overlapping stays (most with an `Idempotency-Key`) and
/// now and then cancels an acknowledged reservation (half of the time with `If-Match`),
/// until the server dies under it.
async fn load(
    task: u64,
    cycle: usize,
    seed: u64,
    c: reqwest::Client,
    base: String,
    first: Date,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut rng = Rng(mix(seed ^ ((cycle as u64) << 16) ^ (task << 40)));
    let first = plus(
        first,
        (WINDOW_DAYS * (cycle / CYCLES_PER_WINDOW) as u64) as i64,
    );
    for n in 0u32.. {
        let cancel = if rng.below(3) == 0 {
            let mut l = lock(&ledger);
            if l.cancellable.is_empty() {
                None
            } else {
                let i = rng.below(l.cancellable.len() as u64) as usize;
                let id = l.cancellable.swap_remove(i);
                let known = l.reservations.get_mut(&id).expect("known");
                known.cancel_unanswered = true;
                Some((id, known.latest["version"].clone()))
            }
        } else {
            None
        };
        if let Some((id, version)) = cancel {
            let mut req = c.post(format!("{base}/v1/reservations/{id}/cancel"));
            if rng.below(2) == 0 {
                req = req.header("If-Match", format!("\"{version}\""));
            }
            let answer = try_send(req).await;
            let mut l = lock(&ledger);
            match answer {
                Ok((200, body, _)) => {
                    let known = l.reservations.get_mut(&id).expect("known");
                    assert!(
                        is_cancel_of(&caught_up(&known.latest, &body), &body),
                        "cancel {id}: {} → {body}",
                        known.latest
                    );
                    known.latest = body;
                    known.cancel_unanswered = false;
                    l.cancels_acked += 1;
                }
                // Moved meanwhile by another booking: read it again (only its room moved),
                // and it may be cancelled later.
                Ok((412, body, _)) if body["code"] == "version_mismatch" => {
                    drop(l);
                    let Ok((200, now, _)) =
                        try_send(c.get(format!("{base}/v1/reservations/{id}"))).await
                    else {
                        return;
                    };
                    let mut l = lock(&ledger);
                    let known = l.reservations.get_mut(&id).expect("known");
                    assert_eq!(
                        caught_up(&known.latest, &now),
                        now,
                        "{id} changed behind the client's back other than by moves"
                    );
                    assert_ne!(now, known.latest, "412, yet unchanged");
                    known.latest = now;
                    known.cancel_unanswered = false;
                    l.cancellable.push(id);
                }
                Ok((status, body, _)) => panic!("cancel {id}: unexpected {status}: {body}"),
                // Killed: whether it was applied is checked after the restart.
                Err(_) => return,
            }
            continue;
        }

        let tag = format!("c{cycle:02}-t{task}-r{n:04}");
        let arrival = plus(first, rng.below(WINDOW_DAYS - 1) as i64);
        let nights = (1 + rng.below(3)).min(WINDOW_DAYS - (arrival - first).get_days() as u64);
        let body = tagged(&tag, arrival, plus(arrival, nights as i64));
        let key = (rng.below(4) != 0).then(|| tag.clone());
        lock(&ledger).requests.insert(
            tag.clone(),
            Request {
                body: body.clone(),
                key: key.clone(),
                outcome: Outcome::InFlight,
                retried: false,
            },
        );
        let mut req = c
            .post(format!("{base}/v1/hotels/{HOTEL}/reservations"))
            .json(&body);
        if let Some(key) = &key {
            req = req.header("Idempotency-Key", key);
        }
        let answer = try_send(req).await;
        let mut l = lock(&ledger);
        match answer {
            Ok((201, body, _)) => l.booked(&tag, body),
            Ok((409, body, _)) if body["code"] == "sold_out" => {
                l.requests.get_mut(&tag).expect("sent").outcome = Outcome::Refused;
            }
            Ok((status, body, _)) => panic!("{tag}: unexpected {status}: {body}"),
            Err(_) => {
                l.requests.get_mut(&tag).expect("sent").outcome = Outcome::Lost;
                return;
            }
        }
    }
}

/// After a restart: the hotel is as set up, every acknowledged reservation reads back as
/// last acknowledged (or, if a cancel for it went unanswered, exactly cancelled), and a
/// lost keyed booking retried with its key is replayed or made once.
async fn verify(
    c: &reqwest::Client,
    s: &Server,
    started: Timestamp,
    hotel_view: &Value,
    ledger: &Mutex<Ledger>,
) {
    let (status, body, _) = send(c.get(s.url("/readyz"))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = send(c.get(s.url(&format!("/v1/hotels/{HOTEL}")))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(&body, hotel_view, "the hotel setup survived");

    let ids: Vec<String> = lock(ledger).reservations.keys().cloned().collect();
    let got: Vec<(String, u16, Value)> = futures_util::stream::iter(ids)
        .map(|id| async move {
            let (status, body, _) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
            (id, status, body)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let retry = {
        let mut l = lock(ledger);
        for (id, status, body) in got {
            assert_eq!(status, 200, "acknowledged {id} is gone: {body}");
            let known = l.reservations.get_mut(&id).expect("known");
            // Another booking may have moved it (acknowledged to that booking's client).
            let moved = caught_up(&known.latest, &body);
            let applied = body != moved;
            if applied {
                assert!(
                    known.cancel_unanswered && is_cancel_of(&moved, &body),
                    "acknowledged {id} changed across the crash:\n  acked: {}\n  now:   {body}",
                    known.latest
                );
            }
            let lost_cancel = known.cancel_unanswered;
            known.latest = body;
            known.cancel_unanswered = false;
            if lost_cancel && applied {
                l.lost_cancels.0 += 1;
            } else if lost_cancel {
                l.lost_cancels.1 += 1;
            }
        }
        l.cancellable = l
            .reservations
            .iter()
            .filter(|(_, k)| k.latest["status"] == "pending_payment")
            .map(|(id, _)| id.clone())
            .collect();

        // Lost keyed bookings, to retry with their key.
        l.requests
            .iter_mut()
            .filter(|(_, r)| r.outcome == Outcome::Lost && !r.retried)
            .filter_map(|(tag, r)| {
                r.retried = true;
                Some((tag.clone(), r.body.clone(), r.key.clone()?))
            })
            .collect::<Vec<(String, Value, String)>>()
    };
    for (tag, body, key) in retry {
        let (status, answer, _) = send(
            c.post(s.url(&format!("/v1/hotels/{HOTEL}/reservations")))
                .header("Idempotency-Key", &key)
                .json(&body),
        )
        .await;
        let mut l = lock(ledger);
        l.retries.0 += 1;
        match status {
            201 => {
                let created: Timestamp = answer["created_at"].as_str().unwrap().parse().unwrap();
                if created < started {
                    l.retries.1 += 1;
                }
                l.booked(&tag, answer);
            }
            409 if answer["code"] == "sold_out" => {
                // Had the lost original been on disk, the key would have replayed it.
                l.requests.get_mut(&tag).expect("sent").outcome = Outcome::Refused;
            }
            other => panic!("retry of {tag}: unexpected {other}: {answer}"),
        }
    }
}

/// The reservation as the API shows it.
fn view(r: &Reservation) -> Value {
    serde_json::to_value(ReservationView::from(r)).expect("view")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_dash_nine_loses_nothing_acknowledged() {
    let seed: u64 = env_or("INNKEEP_CRASH_SEED", {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock");
        t.as_secs() ^ u64::from(t.subsec_nanos())
    });
    let cycles: usize = env_or("INNKEEP_CRASH_CYCLES", DEFAULT_CYCLES);
    eprintln!("crash test: INNKEEP_CRASH_SEED={seed} INNKEEP_CRASH_CYCLES={cycles}");
    let mut rng = Rng(mix(seed));
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let first = plus(today(TZ), 1);
    let mut hotel_view = Value::Null;
    let (mut kills, mut startup_kills) = (0usize, 0usize);

    for cycle in 0..cycles {
        if cycle % 4 == 3 {
            // Kill during start-up: right after spawn, or once it listens and recovers.
            let mut starting = Starting::spawn(dir.path(), ENV);
            if cycle % 8 == 7 {
                assert!(
                    starting.wait_listening().is_some(),
                    "cycle {cycle}: listens"
                );
            }
            starting.kill();
            kills += 1;
            startup_kills += 1;
            continue;
        }
        let started = Timestamp::now();
        let s = Server::start(dir.path(), ENV);
        let c = client();
        if cycle == 0 {
            hotel(&c, &s, HOTEL, TZ, ROOMS).await;
            let (status, body, _) = send(c.get(s.url(&format!("/v1/hotels/{HOTEL}")))).await;
            assert_eq!(status, 200, "{body}");
            hotel_view = body;
        } else {
            verify(&c, &s, started, &hotel_view, &ledger).await;
        }
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                tokio::spawn(load(
                    task,
                    cycle,
                    seed,
                    c.clone(),
                    s.base.clone(),
                    first,
                    ledger.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.below(MAX_KILL_DELAY_MS + 1))).await;
        s.kill();
        kills += 1;
        for t in tasks {
            t.await.expect("load task");
        }
    }

    // The last restart: check, then stop cleanly.
    let started = Timestamp::now();
    let s = Server::start(dir.path(), ENV);
    let c = client();
    verify(&c, &s, started, &hotel_view, &ledger).await;
    let data_dir = s.data_dir.clone();
    let status = s.terminate();
    assert!(
        status.success(),
        "SIGTERM after the crashes → exit 0, got {status}"
    );

    // The data dir, loaded in-process.
    let recovered = innkeep_actors::recover_state(&data_dir).expect("recover the data dir");
    let state = recovered.state;
    let problems = state.check_invariants();
    assert!(problems.is_empty(), "invariants: {problems:#?}");
    let mut by_tag: HashMap<String, Vec<Reservation>> = HashMap::new();
    for room in state.rooms.values() {
        for r in room.ledger.iter() {
            let r = r.to_reservation(&room.key, &room.room_type);
            let tag = r
                .guest
                .name()
                .strip_prefix("Crash ")
                .unwrap_or_else(|| panic!("{} is not the test's: {:?}", r.id, r.guest));
            by_tag.entry(tag.to_owned()).or_default().push(r);
        }
    }
    let l = lock(&ledger);
    for tag in by_tag.keys() {
        assert!(
            l.requests.contains_key(tag),
            "{tag}: never sent, yet stored"
        );
    }
    let hotel_id = HotelId::parse(HOTEL).unwrap();
    let (mut booked, mut lost, mut lost_on_disk) = (0usize, 0usize, 0usize);
    // Each acknowledged reservation as stored (its room may have moved since the client
    // last saw it).
    let mut now: Vec<Value> = Vec::new();
    for (tag, req) in &l.requests {
        let found = by_tag.get(tag).map(Vec::as_slice).unwrap_or_default();
        assert!(found.len() <= 1, "{tag}: stored {} times", found.len());
        let stored = found.first();
        match (&req.outcome, stored) {
            (Outcome::Booked(id), Some(r)) => {
                booked += 1;
                assert_eq!(&r.id.to_string(), id, "{tag}");
                // As the API last showed it, or moved since by later bookings (and nothing
                // else changed).
                let stored = view(r);
                assert_eq!(
                    stored,
                    caught_up(&l.reservations[id].latest, &stored),
                    "{tag}: stored as the API last showed it"
                );
                now.push(stored);
            }
            (Outcome::Booked(id), None) => panic!("{tag}: acknowledged {id} is not stored"),
            (Outcome::Refused, None) => {}
            (Outcome::Refused, Some(r)) => panic!("{tag}: refused, yet stored as {}", r.id),
            (Outcome::Lost, None) => lost += 1,
            (Outcome::Lost, Some(r)) => {
                // Unanswered but on disk: whole, exactly as asked, untouched since (but
                // for moves other bookings made: one version and history entry each).
                lost += 1;
                lost_on_disk += 1;
                let v = view(r);
                for field in ["room_type", "arrival", "departure", "guests", "guest"] {
                    assert_eq!(v[field], req.body[field], "{tag}: {field}");
                }
                assert_eq!(v["hotel_id"], HOTEL, "{tag}");
                assert_eq!(v["status"], "pending_payment", "{tag}");
                let moves = v["moves"].as_array().map_or(0, Vec::len) as u64;
                assert_eq!(v["version"], 1 + moves, "{tag}");
                assert_eq!(
                    v["history"].as_array().map(|h| h.len() as u64),
                    Some(1 + moves),
                    "{tag}"
                );
            }
            (Outcome::InFlight, _) => panic!("{tag}: still in flight after the end"),
        }
        // A key and the reservation it made are stored together or not at all.
        if let Some(key) = &req.key {
            let entry = state
                .idempotency
                .get(&(hotel_id.clone(), IdempotencyKey::parse(key).unwrap()));
            assert_eq!(
                entry.map(|e| e.reservation_id),
                stored.map(|r| r.id),
                "{tag}: idempotency record and reservation"
            );
        }
    }
    // No room-night is held by two live reservations (also covered by check_invariants).
    let mut held: HashMap<(String, String), String> = HashMap::new();
    for r in &now {
        if r["status"] != "pending_payment" {
            continue;
        }
        let arrival: Date = r["arrival"].as_str().unwrap().parse().unwrap();
        let departure: Date = r["departure"].as_str().unwrap().parse().unwrap();
        let mut night = arrival;
        while night < departure {
            let key = (r["room"].as_str().unwrap().to_owned(), night.to_string());
            let id = r["id"].as_str().unwrap().to_owned();
            if let Some(other) = held.insert(key.clone(), id.clone()) {
                panic!("{key:?} held by {other} and {id}");
            }
            night = plus(night, 1);
        }
    }
    eprintln!(
        "crash test: seed {seed}: {cycles} cycles, {kills} kills ({startup_kills} during \
         start-up); {} requests: {booked} acknowledged bookings, {} acknowledged cancels; \
         unanswered: {} keyed bookings retried ({} replayed from disk), {lost} unkeyed \
         bookings ({lost_on_disk} on disk), {} cancels ({} applied)",
        l.requests.len(),
        l.cancels_acked,
        l.retries.0,
        l.retries.1,
        l.lost_cancels.0 + l.lost_cancels.1,
        l.lost_cancels.0,
    );
    assert!(booked > 0, "the load booked something");
}
