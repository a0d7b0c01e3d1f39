//! The journal and recovery.
//!
//! - `journal/serial_ack`: one append at a time, waiting for its ack (the latency of a
//!   lone durable write: one write + one `fdatasync`).
//! - `journal/batch_max/{1,16,256,4096}`: 4096 appends outstanding, the writer allowed at
//!   most N records per batch; time per record. Shows what group commit buys.
//! - `recovery/1M_events`: `recover_state` of a data dir whose journal holds 1,000,000
//!   `ReservationCreated` events (2,000 rooms × 500 nights), no snapshot: the worst case
//!   start-up replay.
//!
//! Run: `cargo bench -p innkeep-benches --bench persistence`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use innkeep_engine::state::new_reservation;
use innkeep_engine::{
    BookRequest, Event, Guest, HotelId, Money, ReservationId, RoomNumber, RoomTypeCode, Stay,
};
use innkeep_persistence::{Journal, JournalOptions, SyncMode};
use jiff::{SignedDuration, Timestamp, ToSpan};

const RECOVERY_ROOMS: usize = 2_000;
const RECOVERY_NIGHTS: usize = 500;

fn sample_event(k: u64, hotel: &HotelId, room: usize, night: usize) -> Event {
    let today = jiff::civil::date(2026, 11, 23);
    let arrival = today.checked_add((night as i64).days()).expect("date");
    let req = BookRequest {
        hotel_id: hotel.clone(),
        room_type: RoomTypeCode::parse("STD").expect("type"),
        stay: Stay::between(arrival, arrival.tomorrow().expect("date")).expect("stay"),
        guests: 2,
        guest: Guest::parse("Li Lei", "+86 138 0000 0000", "li.lei@example.com").expect("guest"),
        room: None,
        rate_plan: innkeep_engine::RatePlanCode::bar(),
    };
    let total = Money {
        amount_minor: 68_000,
        currency: innkeep_engine::Currency::parse("CNY").expect("currency"),
    };
    Event::ReservationCreated {
        reservation: new_reservation(
            &req,
            RoomNumber::parse(&room.to_string()).expect("room"),
            total,
            ReservationId(uuid::Uuid::from_u128(u128::from(k) + 1)),
            Timestamp::from_second(1_795_000_000).expect("ts"),
            SignedDuration::from_mins(15),
        )
        .into(),
        idempotency: None,
    }
}

fn journal(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let hotel = HotelId::parse("H").expect("hotel");
    let event = sample_event(0, &hotel, 1, 1);
    let mut group = c.benchmark_group("journal");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));

    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::<Event>::start(
        JournalOptions {
            dir: dir.path().to_owned(),
            ..JournalOptions::default()
        },
        1,
        Box::new(|_| {}),
    )
    .expect("journal");
    group.bench_function("serial_ack", |b| {
        b.iter(|| {
            let ack = j.append(event.clone()).expect("append");
            rt.block_on(ack).expect("ack").expect("durable")
        })
    });
    j.shutdown();

    for max_batch in [1usize, 16, 256, 4096] {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::<Event>::start(
            JournalOptions {
                dir: dir.path().to_owned(),
                max_batch_records: max_batch,
                ..JournalOptions::default()
            },
            1,
            Box::new(|_| {}),
        )
        .expect("journal");
        group.bench_function(format!("batch_max/{max_batch}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut left = iters;
                while left > 0 {
                    let n = left.min(4096);
                    let acks: Vec<_> = (0..n)
                        .map(|_| j.append(event.clone()).expect("append"))
                        .collect();
                    for ack in acks {
                        rt.block_on(ack).expect("ack").expect("durable");
                    }
                    left -= n;
                }
                start.elapsed()
            })
        });
        j.shutdown();
    }
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let hotel = HotelId::parse("H").expect("hotel");
    let started = Instant::now();
    {
        let j = Journal::<Event>::start(
            JournalOptions {
                dir: dir.path().join("journal"),
                sync: SyncMode::None,
                ..JournalOptions::default()
            },
            1,
            Box::new(|_| {}),
        )
        .expect("journal");
        let mut setup = innkeep_engine::Catalog::default();
        let (e, _) = setup
            .put_hotel(hotel.clone(), "Recovery", "Asia/Shanghai", "CNY")
            .expect("hotel");
        setup.apply(&e);
        let mut events = vec![e];
        let (e, _) = setup
            .put_room_type(
                &hotel,
                RoomTypeCode::parse("STD").expect("t"),
                "Std",
                2,
                68_000,
            )
            .expect("type");
        events.push(e);
        for room in 0..RECOVERY_ROOMS {
            events.push(Event::RoomPut {
                hotel_id: hotel.clone(),
                number: RoomNumber::parse(&room.to_string()).expect("room"),
                room_type: RoomTypeCode::parse("STD").expect("t"),
            });
        }
        let mut last = None;
        for ev in events {
            last = Some(j.append(ev).expect("append"));
        }
        let mut k = 0u64;
        for night in 0..RECOVERY_NIGHTS {
            for room in 0..RECOVERY_ROOMS {
                last = Some(
                    j.append(sample_event(k, &hotel, room, night))
                        .expect("append"),
                );
                k += 1;
                if k.is_multiple_of(50_000) {
                    // Bound the queue: wait for this ack before appending more.
                    if let Some(ack) = last.take() {
                        let _ = ack.blocking_recv();
                    }
                }
            }
        }
        if let Some(ack) = last {
            let _ = ack.blocking_recv();
        }
        j.shutdown();
    }
    eprintln!(
        "recovery fixture: {} events written in {:?}",
        RECOVERY_ROOMS * RECOVERY_NIGHTS,
        started.elapsed()
    );
    let mut group = c.benchmark_group("recovery");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_millis(100));
    group.bench_function("1M_events", |b| {
        b.iter_with_large_drop(|| {
            let r = innkeep_actors::recover_state(dir.path()).expect("recover");
            assert_eq!(r.state.locator.len(), RECOVERY_ROOMS * RECOVERY_NIGHTS);
            r
        })
    });
    group.finish();
}

criterion_group!(benches, journal, recovery);
criterion_main!(benches);
