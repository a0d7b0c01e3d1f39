//! The in-process booking fixture shared by the criterion bench `actors` and the example
//! `inprocess` (issue #13's target (d)): one hotel, 4 room types × 1 000 rooms (2.8
//! million room-nights over 700 days: a fast run books more than 700 000); booking k takes
//! one night on `today + 1 + k % 700` of some room of type `(k / 700) % 4`, so each
//! type's nights fill evenly and nothing sells out within a run (a million bookings take
//! 358 of a night's 1 000 rooms of a type). Consecutive bookings are of different nights,
//! as a bulk import's are; until the twenty-second session the fixture filled one night
//! of every room before the next (`today + 1 + (k / 4000) % 700`, type `k % 4`), which
//! made the last bookings of each night race for its last free rooms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use innkeep_actors::{BookInput, Engine, EngineConfig, SyncMode};
use innkeep_engine::{Guest, HotelId, RoomNumber, RoomTypeCode};
use jiff::civil::Date;
use jiff::ToSpan;

const TYPES: usize = 4;
const ROOMS_PER_TYPE: usize = 1000;
/// Bookings each shard admits at once: room for the example's largest batches.
pub const MAX_IN_FLIGHT: usize = 4096;
/// Nights the bookings are spread over, from tomorrow.
const DAYS: u64 = 700;
/// A started engine with the hotel set up, and the next booking's number.
#[derive(Debug)]
pub struct Fixture {
    /// The engine under test.
    pub engine: Engine,
    /// The one hotel.
    hotel: HotelId,
    /// Its room types.
    types: Vec<RoomTypeCode>,
    /// The hotel's today at start: stays begin the day after.
    today: Date,
    /// Every booking's guest.
    guest: Guest,
    /// The next booking's number k.
    next: AtomicU64,
    /// The data dir, deleted with the fixture.
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Starts an engine in a temporary data dir and sets the hotel up on `rt`.
    pub fn new(rt: &tokio::runtime::Runtime, sync: SyncMode) -> Arc<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EngineConfig {
            sync,
            // An embedder booking in bulk admits its batches whole: the default (64 per
            // shard) is sized for HTTP requests, whose latency it bounds.
            max_in_flight: MAX_IN_FLIGHT,
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

    /// The next booking's input.
    pub fn input(&self) -> BookInput {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let day = 1 + (k % DAYS) as i64;
        let arrival = self.today.checked_add(day.days()).expect("date");
        BookInput {
            hotel_id: self.hotel.clone(),
            room_type: self.types[((k / DAYS) % TYPES as u64) as usize].clone(),
            arrival,
            departure: arrival.tomorrow().expect("date"),
            guests: 1,
            guest: self.guest.clone(),
            room: None,
            created_by: None,
            rate_plan: None,
        }
    }

    /// Books `n` rooms through `n` concurrent `Engine::book` calls, each a task of the
    /// caller's runtime. Panics if one fails (nothing sells out in a run).
    pub async fn book_concurrently(self: &Arc<Self>, n: usize) {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let f = Arc::clone(self);
                tokio::spawn(async move { f.engine.book(f.input(), None).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("booking");
        }
    }

    /// Books `n` rooms through one `Engine::book_many` call. Panics if one fails.
    pub async fn book_batch(&self, n: usize) {
        let requests = (0..n).map(|_| (self.input(), None)).collect();
        for r in self.engine.book_many(requests).await {
            r.expect("booking");
        }
    }
}
