//! Memory per room and per reservation of a whole running engine (room actors, the
//! directory and its indexes, the event feed's window), measured as resident-set growth.
//! A room is measured twice: parked (as created, and as an idle room is: its state in the
//! registry, no actor) and awake (its actor started by a first message). Reservations are
//! measured with every room awake before and after, so their figure holds no actor.
//!
//! `cargo run --release -p innkeep-benches --example memory -- [rooms] [bookings] [paid %]`
//! (defaults: 100000 rooms, 1000000 bookings of 1–3 nights spread over a year, none paid;
//! with a percentage, that share of the bookings is then paid, as a provider's callback
//! would, so the figure covers confirmed reservations with their payment history). The journal
//! runs without fdatasync (the IO path does not change memory) and no snapshot is taken
//! during the run (a snapshot's encoding buffer is transient).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use innkeep_actors::{BookInput, Engine, EngineConfig, SyncMode};
use innkeep_engine::{Guest, HotelId, PaymentReport, RoomNumber, RoomTypeCode};
use jiff::ToSpan;

const TYPES: usize = 10;
const IN_FLIGHT: u64 = 256;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rooms: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let bookings: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let paid_percent: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig {
        sync: SyncMode::None,
        snapshot_every_events: u64::MAX,
        snapshot_every: Duration::from_secs(86_400),
        max_in_flight: 1 << 20,
        ..EngineConfig::new(dir.path())
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let engine = Engine::start(config).expect("engine");
    let hotel = HotelId::parse("MEM").expect("hotel");
    let types: Vec<RoomTypeCode> = (0..TYPES)
        .map(|t| RoomTypeCode::parse(&format!("T{t}")).expect("type"))
        .collect();
    let rss_start = rss_bytes();
    let started = Instant::now();
    rt.block_on(async {
        engine
            .put_hotel(hotel.clone(), "Memory", "Asia/Shanghai", "CNY")
            .await
            .expect("hotel");
        for t in &types {
            engine
                .put_room_type(&hotel, t.clone(), "Room", 2, 50_000)
                .await
                .expect("type");
        }
        for n in 0..rooms {
            let number = RoomNumber::parse(&n.to_string()).expect("number");
            engine
                .put_room(&hotel, number, types[n % TYPES].clone())
                .await
                .expect("room");
        }
    });
    let rss_parked = rss_bytes();
    let rooms_secs = started.elapsed().as_secs_f64();
    // Every room reached once: its actor starts.
    rt.block_on(engine.rooms(&hotel)).expect("rooms");
    let rss_rooms = rss_bytes();
    let awake_rooms = engine.rooms_awake();

    let today = engine.today(&hotel).expect("today");
    let guest = Guest::parse("Memory Guest", "+86 138 0000 0000", "m@example.com").expect("guest");
    let next = Arc::new(AtomicU64::new(0));
    let made = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    rt.block_on(async {
        let mut left = bookings;
        while left > 0 {
            let n = left.min(IN_FLIGHT);
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let (engine, hotel, types, guest) =
                        (engine.clone(), hotel.clone(), types.clone(), guest.clone());
                    let (next, made) = (next.clone(), made.clone());
                    tokio::spawn(async move {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let nights = 1 + (k % 3) as i64;
                        let day = 1 + ((k / 7) % 360) as i64;
                        let arrival = today.checked_add(day.days()).expect("date");
                        let input = BookInput {
                            hotel_id: hotel,
                            room_type: types[(k % TYPES as u64) as usize].clone(),
                            arrival,
                            departure: arrival.checked_add(nights.days()).expect("date"),
                            guests: 1,
                            guest,
                            room: None,
                            created_by: None,
                            rate_plan: None,
                        };
                        let Ok(booked) = engine.book(input, None).await else {
                            return;
                        };
                        made.fetch_add(1, Ordering::Relaxed);
                        if k % 100 < paid_percent {
                            let report = PaymentReport::Succeeded {
                                trade_no: format!("T{k:010}"),
                            };
                            engine.apply_payment(booked.id, report).await.expect("pay");
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
            left -= n;
        }
    });
    let booking_secs = started.elapsed().as_secs_f64();
    let rss_booked = rss_bytes();
    // Idle now: the rooms park, as the engine's own sweeps would after `room_idle` (two
    // sweeps: the first finds every room reached since the last). Freed memory stays with
    // the allocator, for what is allocated next.
    let parking = Instant::now();
    while engine.rooms_awake() > 0 && parking.elapsed() < Duration::from_secs(60) {
        engine.sweep_idle_rooms();
        std::thread::sleep(Duration::from_millis(10));
    }
    let made = made.load(Ordering::Relaxed);
    let per_parked = (rss_parked.saturating_sub(rss_start)) as f64 / rooms as f64;
    let per_room = (rss_rooms.saturating_sub(rss_start)) as f64 / rooms as f64;
    let per_reservation = (rss_booked.saturating_sub(rss_rooms)) as f64 / made.max(1) as f64;
    let _ = writeln!(
        std::io::stdout().lock(),
        "rooms {rooms} in {rooms_secs:.1} s: {per_parked:.0} B/room parked, {per_room:.0} B/room awake \
         ({awake_rooms} awake); reservations {made} of {bookings} ({paid_percent} % paid) in \
         {booking_secs:.1} s ({:.0}/s): {per_reservation:.0} B/reservation; rss {} MiB; \
         {} rooms awake after {:.1} s of sweeps",
        made as f64 / booking_secs,
        rss_booked >> 20,
        engine.rooms_awake(),
        parking.elapsed().as_secs_f64()
    );
    engine.shutdown();
}
