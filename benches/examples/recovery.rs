//! Recovery time of a data dir whose journal holds N `ReservationCreated` events (plus the
//! hotel's setup), with no snapshot: the worst-case start-up replay.
//!
//! `cargo run --release -p innkeep-benches --example recovery -- [events] [dir] [snapshot]`
//! (defaults: 1000000 events, a temporary dir). Writing the fixture is not timed; an
//! existing journal in `dir` is reused. With `snapshot`, a snapshot covering the whole
//! journal is written into `dir` first (untimed; use a dir of its own), so recovery
//! replays nothing, as after a clean shutdown; with `engine`, only `Engine::start` is timed,
//! with `replay` only the plain recovery (`recover_state`). Prints the replay time and events per second, then
//! the time of the same recovery that also hands back the event feed's resume window and
//! the window's memory per event, then the time `Engine::start` takes on the dir (what a
//! restart costs until the engine answers).

use std::io::Write;
use std::time::Instant;

use innkeep_engine::state::new_reservation;
use innkeep_engine::{
    BookRequest, Catalog, Currency, Event, Guest, HotelId, Money, ReservationId, RoomNumber,
    RoomTypeCode, Stay,
};
use innkeep_persistence::{Journal, JournalOptions, SyncMode};
use jiff::{SignedDuration, Timestamp, ToSpan};

/// Rooms in the fixture hotel; events cycle over rooms, then nights.
const ROOMS: u64 = 20_000;

fn event(k: u64, hotel: &HotelId, guest: &Guest, cny: Currency) -> Event {
    let room = k % ROOMS;
    let night = (k / ROOMS) as i64;
    let arrival = jiff::civil::date(2026, 11, 23)
        .checked_add(night.days())
        .expect("date");
    let req = BookRequest {
        hotel_id: hotel.clone(),
        room_type: RoomTypeCode::parse("STD").expect("type"),
        stay: Stay::between(arrival, arrival.tomorrow().expect("date")).expect("stay"),
        guests: 2,
        guest: guest.clone(),
        room: None,
        rate_plan: innkeep_engine::RatePlanCode::bar(),
    };
    Event::ReservationCreated {
        reservation: new_reservation(
            &req,
            RoomNumber::parse(&room.to_string()).expect("room"),
            Money {
                amount_minor: 68_000,
                currency: cny,
            },
            ReservationId(uuid::Uuid::from_u128(u128::from(k) + 1)),
            Timestamp::from_second(1_795_000_000).expect("instant"),
            SignedDuration::from_mins(15),
        )
        .into(),
        idempotency: None,
    }
}

fn write_fixture(dir: &std::path::Path, events: u64) {
    let journal = Journal::<Event>::start(
        JournalOptions {
            dir: dir.join("journal"),
            sync: SyncMode::None,
            ..JournalOptions::default()
        },
        1,
        Box::new(|_| {}),
    )
    .expect("journal");
    let hotel = HotelId::parse("H").expect("hotel");
    let mut catalog = Catalog::default();
    let (e, _) = catalog
        .put_hotel(hotel.clone(), "Recovery", "Asia/Shanghai", "CNY")
        .expect("hotel");
    catalog.apply(&e);
    let mut setup = vec![e];
    let (e, _) = catalog
        .put_room_type(
            &hotel,
            RoomTypeCode::parse("STD").expect("type"),
            "Std",
            2,
            68_000,
        )
        .expect("type");
    setup.push(e);
    for room in 0..ROOMS {
        setup.push(Event::RoomPut {
            hotel_id: hotel.clone(),
            number: RoomNumber::parse(&room.to_string()).expect("room"),
            room_type: RoomTypeCode::parse("STD").expect("type"),
        });
    }
    for e in setup {
        // Acks are awaited in bulk below; the journal keeps order.
        drop(journal.append(e).expect("append"));
    }
    let guest = Guest::parse("Li Lei", "+86 138 0000 0000", "li.lei@example.com").expect("guest");
    let cny = Currency::parse("CNY").expect("currency");
    for k in 0..events {
        let ack = journal
            .append(event(k, &hotel, &guest, cny))
            .expect("append");
        // Keep the bounded queue from filling: wait for every 50,000th ack.
        if (k + 1).is_multiple_of(50_000) || k + 1 == events {
            let _ = ack.blocking_recv();
        }
    }
    journal.shutdown();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_owned());
    if !dir.join("journal").exists() {
        let started = Instant::now();
        write_fixture(&dir, events);
        let _ = writeln!(
            std::io::stderr(),
            "fixture: {events} events written in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let mode = args.next();
    if mode.as_deref() == Some("engine") {
        start_engine(&dir);
    }
    if mode.as_deref() == Some("snapshot") {
        let recovered = innkeep_actors::recover_state(&dir).expect("recover");
        innkeep_actors::write_snapshot(&recovered.store, recovered.last_seq, &recovered.state)
            .expect("snapshot");
        drop(recovered.store);
        std::mem::forget(recovered.state);
    }
    let started = Instant::now();
    let recovered = innkeep_actors::recover_state(&dir).expect("recover");
    let secs = started.elapsed().as_secs_f64();
    let _ = writeln!(
        std::io::stdout().lock(),
        "recovered {} reservations (last seq {}) in {secs:.2} s: {:.0} events/s",
        recovered.state.locator.len(),
        recovered.last_seq,
        recovered.last_seq as f64 / secs
    );
    // The snapshot store is locked while open; the state is left for the process exit
    // (freeing millions of allocations is not part of recovery).
    let last_seq = recovered.last_seq;
    drop(recovered.store);
    std::mem::forget(recovered.state);
    if mode.as_deref() == Some("replay") {
        std::process::exit(0);
    }
    // The same recovery, also handing back the event feed's resume window (the newest
    // 65,536 events, decoded again, not applied) in the same pass over the journal, as
    // engine start-up does. The difference is the window's cost.
    let started = Instant::now();
    let with_history =
        innkeep_actors::recover_state_with_history(&dir, innkeep_actors::feed::FEED_WINDOW_EVENTS)
            .expect("recover with history");
    let secs_with = started.elapsed().as_secs_f64();
    // Memory of the window: a copy of its events, measured as resident growth.
    let resident_before = resident_bytes();
    let copy: Vec<innkeep_engine::Event> = with_history
        .history
        .iter()
        .map(|e| (*e.event).clone())
        .collect();
    let grown = resident_bytes().saturating_sub(resident_before);
    let _ = writeln!(
        std::io::stdout().lock(),
        "with the event feed's window of {} events: {secs_with:.2} s ({:+.0} ms); \
         resident memory ≈ {} B per event",
        with_history.history.len(),
        (secs_with - secs) * 1e3,
        grown / copy.len().max(1) as u64
    );
    assert_eq!(with_history.last_seq, last_seq);
    drop(with_history.store);
    std::mem::forget(with_history.state);
    std::mem::forget(copy);
    start_engine(&dir);
}

/// Times `Engine::start` on `dir`, prints it and exits the process.
fn start_engine(dir: &std::path::Path) -> ! {
    // What a restart costs until the engine answers: the same recovery, then the directory
    // (the locator by room number) and every room started on its actor.
    let config = innkeep_actors::EngineConfig {
        sync: innkeep_actors::SyncMode::None,
        snapshot_every_events: u64::MAX,
        snapshot_every: std::time::Duration::from_secs(86_400),
        ..innkeep_actors::EngineConfig::new(dir)
    };
    // Start-up's own log says how long its recovery took ("recovered ... elapsed_ms").
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "innkeep_actors::startup=info",
        ))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let started = Instant::now();
    let engine = innkeep_actors::Engine::start(config).expect("engine start");
    let secs_engine = started.elapsed().as_secs_f64();
    let _ = writeln!(
        std::io::stdout().lock(),
        "engine started (recovery, directory, rooms on their actors) in {secs_engine:.2} s"
    );
    // Left running: the process exits here, and shutting millions of reservations down is
    // not part of a start.
    std::mem::forget(engine);
    std::process::exit(0);
}

/// Resident set size from `/proc/self/statm` (0 where there is none); pages of 4 KiB.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
