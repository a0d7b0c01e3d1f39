//! Booking round trips through the actors and the journal, via the `innkeep::Engine`
//! facade's crate (`innkeep-actors`), durable (`fdatasync` per batch) and not.
//!
//! - `book/serial/{durable,no_fsync}`: one booking at a time (latency: facade → booking task
//!   → room actor → journal batch → ack).
//! - `book/concurrent_256/{durable,no_fsync}`: 256 bookings in flight at once; the time per
//!   iteration is per booking, so 1/time is throughput.
//! - `book/batch_256/{durable,no_fsync}`: the same 256 at a time through one
//!   `Engine::book_many` call each (one hop per shard instead of one per booking). Group commit shares each
//!   `fdatasync` among the bookings of a batch, which is what makes durable close to
//!   non-durable here.
//!
//! Fixture: one hotel, 4 room types × 1 000 rooms (2.8 million room-nights: a fast run
//! books more than 700 000); booking k takes one night on
//! `today + 1 + (k / 1000) % 700` of some room of type `k % 4`, so nothing sells out
//! within a run.
//!
//! Run: `cargo bench -p innkeep-benches --bench actors`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use innkeep_actors::{BookInput, Engine, EngineConfig, SyncMode};
use innkeep_engine::{Guest, HotelId, RoomNumber, RoomTypeCode};
use jiff::civil::Date;
use jiff::ToSpan;

const TYPES: usize = 4;
const ROOMS_PER_TYPE: usize = 1000;
const IN_FLIGHT: u64 = 256;

struct Fixture {
    engine: Engine,
    hotel: HotelId,
    types: Vec<RoomTypeCode>,
    today: Date,
    guest: Guest,
    next: AtomicU64,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new(rt: &tokio::runtime::Runtime, sync: SyncMode) -> Arc<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EngineConfig {
            sync,
            ..EngineConfig::new(dir.path())
        };
        let engine = Engine::start(config).expect("engine");
        let hotel = HotelId::parse("BENCH").expect("hotel");
        let types: Vec<RoomTypeCode> = (0..TYPES)
            .map(|t| RoomTypeCode::parse(&format!("T{t}")).expect("type"))
            .collect();
        rt.block_on(async {
            engine
                .put_hotel(hotel.clone(), "Bench", "Asia/Shanghai", "CNY")
                .await
                .expect("put hotel");
            for (t, code) in types.iter().enumerate() {
                engine
                    .put_room_type(&hotel, code.clone(), "Room", 2, 50_000)
                    .await
                    .expect("put type");
                for n in 0..ROOMS_PER_TYPE {
                    let number = RoomNumber::parse(&format!("{t}-{n}")).expect("number");
                    engine
                        .put_room(&hotel, number, code.clone())
                        .await
                        .expect("put room");
                }
            }
        });
        let today = engine.today(&hotel).expect("today");
        Arc::new(Self {
            engine,
            hotel,
            types,
            today,
            guest: Guest::parse("Bench Guest", "+86 138 0000 0000", "b@example.com")
                .expect("guest"),
            next: AtomicU64::new(0),
            _dir: dir,
        })
    }

    fn input(&self) -> BookInput {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let day = 1 + ((k / (TYPES * ROOMS_PER_TYPE) as u64) % 700) as i64;
        let arrival = self.today.checked_add(day.days()).expect("date");
        BookInput {
            hotel_id: self.hotel.clone(),
            room_type: self.types[(k % TYPES as u64) as usize].clone(),
            arrival,
            departure: arrival.tomorrow().expect("date"),
            guests: 1,
            guest: self.guest.clone(),
            room: None,
            created_by: None,
            rate_plan: None,
        }
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("book");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (name, sync) in [
        ("durable", SyncMode::Fdatasync),
        ("no_fsync", SyncMode::None),
    ] {
        // A fresh fixture per function: one function's run can sell a good part of the
        // hotel's 2.8 million room-nights.
        let f = Fixture::new(&rt, sync);
        group.bench_function(format!("serial/{name}"), |b| {
            b.iter(|| {
                rt.block_on(f.engine.book(f.input(), None))
                    .expect("booking")
            })
        });
        f.engine.shutdown();
        let f = Fixture::new(&rt, sync);
        group.bench_function(format!("concurrent_256/{name}"), |b| {
            b.iter_custom(|iters| {
                let f = f.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(IN_FLIGHT);
                        let tasks: Vec<_> = (0..n)
                            .map(|_| {
                                let f = f.clone();
                                tokio::spawn(async move { f.engine.book(f.input(), None).await })
                            })
                            .collect();
                        for t in tasks {
                            t.await.expect("task").expect("booking");
                        }
                        left -= n;
                    }
                    start.elapsed()
                })
            })
        });
        f.engine.shutdown();
        let f = Fixture::new(&rt, sync);
        group.bench_function(format!("batch_256/{name}"), |b| {
            b.iter_custom(|iters| {
                let f = f.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(IN_FLIGHT);
                        let batch = (0..n).map(|_| (f.input(), None)).collect();
                        for r in f.engine.book_many(batch).await {
                            r.expect("booking");
                        }
                        left -= n;
                    }
                    start.elapsed()
                })
            })
        });
        f.engine.shutdown();
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
