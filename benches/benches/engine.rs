//! Criterion benchmarks of the pure engine (`innkeep-engine`), no actors or IO.
//!
//! One hotel in Asia/Shanghai with 200 rooms (100 `KING`, 100 `TWIN`), pre-filled so that
//! about 60% of room-nights over the next 60 days are sold, as a busy hotel would be.
//!
//! - `book/decide+apply`: `State::book` then `State::apply` of the event, for a 3-night stay
//!   that succeeds. Each booking is undone untimed (cancel, then the reservation dropped), so
//!   the state stays the same and never sells out.
//! - `book/decide`: `State::book` alone (no apply).
//! - `book/decide_sold_out`: `State::book` for a type that is full on those nights.
//! - `apply/reservation_created`: `State::apply` of a `ReservationCreated` event alone.
//! - `availability/3_nights`: what `GET …/availability` computes for a 3-night stay:
//!   `index.free_count` and `catalog.quote` for every room type.
//!
//! Run: `cargo bench -p innkeep-benches --bench engine` (each bench measures for 3 s).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use innkeep_engine::{
    Action, BookRequest, Guest, HotelId, ReservationId, RoomNumber, RoomTypeCode, State, Stay,
    StayLimits,
};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};

const ROOMS_PER_TYPE: usize = 100;
const PREFILL_DAYS: i64 = 60;
const HOLD: SignedDuration = SignedDuration::from_mins(15);

struct Fixture {
    state: State,
    hotel: HotelId,
    types: Vec<RoomTypeCode>,
    now: Timestamp,
    today: Date,
    guest: Guest,
    next_id: u128,
}

impl Fixture {
    fn new() -> Self {
        let mut state = State::default();
        let hotel = HotelId::parse("SHA-BUND").expect("hotel id");
        let (e, _) = state
            .catalog
            .put_hotel(hotel.clone(), "The Bund", "Asia/Shanghai", "CNY")
            .expect("hotel");
        state.apply(&e);
        let mut types = Vec::new();
        for (t, (code, rate)) in [("KING", 68_000), ("TWIN", 52_000)].into_iter().enumerate() {
            let code = RoomTypeCode::parse(code).expect("type code");
            let (e, _) = state
                .catalog
                .put_room_type(&hotel, code.clone(), code.as_str(), 2, rate)
                .expect("room type");
            state.apply(&e);
            for r in 0..ROOMS_PER_TYPE {
                let number = RoomNumber::parse(&format!("{}{:03}", t + 1, r)).expect("number");
                let (e, _) = state
                    .catalog
                    .put_room(&hotel, number, code.clone())
                    .expect("room");
                state.apply(&e);
            }
            types.push(code);
        }
        // A 30-night peak rate on KING, so quotes mix base rates and overrides.
        let now: Timestamp = "2026-11-23T02:00:00Z".parse().expect("instant");
        let today = state.today(&hotel, now).expect("today");
        let e = state
            .catalog
            .put_rate(&hotel, &types[0], today, today + 30.days(), 88_000)
            .expect("rate");
        state.apply(&e);
        let mut f = Fixture {
            state,
            hotel,
            types,
            now,
            today,
            guest: Guest::parse("Li Lei", "+86 138-0000-0000", "li@example.com").expect("guest"),
            next_id: 1,
        };
        // Pre-fill: every day, 30 stays of 1–3 nights per type (≈ 60% of room-nights sold).
        for d in 0..PREFILL_DAYS {
            for k in 0..60usize {
                let t = k % 2;
                let nights = 1 + (k / 2 % 3) as i64;
                let req = f.request(t, d, nights);
                let id = f.fresh_id();
                if let Ok(e) = f.state.book(&req, id, f.now, HOLD) {
                    f.state.apply(&e);
                }
            }
        }
        f
    }

    fn fresh_id(&mut self) -> ReservationId {
        self.next_id += 1;
        ReservationId(uuid::Uuid::from_u128(self.next_id))
    }

    fn request(&self, t: usize, arrival_offset: i64, nights: i64) -> BookRequest {
        let arrival = self.today + arrival_offset.days();
        let stay = self
            .state
            .stay(
                &self.hotel,
                arrival,
                arrival + nights.days(),
                self.now,
                StayLimits::default(),
            )
            .expect("stay");
        BookRequest {
            hotel_id: self.hotel.clone(),
            room_type: self.types[t].clone(),
            stay,
            guests: 2,
            guest: self.guest.clone(),
            room: None,
        }
    }

    /// Takes a booking back out (cancel, then forget it), so the state does not grow.
    fn undo(&mut self, id: ReservationId) {
        let e = self
            .state
            .change(&id, Action::Cancel, None, self.now)
            .expect("cancel");
        self.state.apply(&e);
        if let Some(key) = self.state.locator.remove(&id) {
            if let Some(room) = self.state.rooms.get_mut(&key) {
                room.reservations.remove(&id);
            }
        }
    }
}

fn bench_book(c: &mut Criterion) {
    let mut f = Fixture::new();
    let mut g = c.benchmark_group("book");

    g.bench_function("decide+apply", |b| {
        let mut i: i64 = 0;
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                i += 1;
                let req = f.request((i % 2) as usize, 5 + i % 50, 3);
                let id = f.fresh_id();
                let start = Instant::now();
                let e = f.state.book(&req, id, f.now, HOLD).expect("booked");
                f.state.apply(&e);
                timed += start.elapsed();
                black_box(&e);
                f.undo(id);
            }
            timed
        });
    });

    let req = f.request(0, 10, 3);
    let id = f.fresh_id();
    g.bench_function("decide", |b| {
        b.iter(|| black_box(f.state.book(black_box(&req), id, f.now, HOLD)).is_ok());
    });

    // Fill every TWIN room for one stay, then ask for one more.
    let mut full = Fixture::new();
    let full_req = full.request(1, 70, 3);
    loop {
        let id = full.fresh_id();
        match full.state.book(&full_req, id, full.now, HOLD) {
            Ok(e) => full.state.apply(&e),
            Err(_) => break,
        }
    }
    let id = full.fresh_id();
    g.bench_function("decide_sold_out", |b| {
        b.iter(|| black_box(full.state.book(black_box(&full_req), id, full.now, HOLD)).is_err());
    });
    g.finish();
}

fn bench_apply(c: &mut Criterion) {
    let mut f = Fixture::new();
    let mut g = c.benchmark_group("apply");
    g.bench_function("reservation_created", |b| {
        let mut i: i64 = 0;
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                i += 1;
                let req = f.request((i % 2) as usize, 5 + i % 50, 3);
                let id = f.fresh_id();
                let e = f.state.book(&req, id, f.now, HOLD).expect("booked");
                let start = Instant::now();
                f.state.apply(black_box(&e));
                timed += start.elapsed();
                f.undo(id);
            }
            timed
        });
    });
    g.finish();
}

fn bench_availability(c: &mut Criterion) {
    let f = Fixture::new();
    let arrival = f.today + 10.days();
    let stay = Stay::between(arrival, arrival + 3.days()).expect("stay");
    let mut g = c.benchmark_group("availability");
    g.bench_function("3_nights", |b| {
        b.iter(|| {
            let mut sum = 0usize;
            for t in &f.types {
                let free = f.state.index.free_count(&f.hotel, t, black_box(&stay));
                let quote = f.state.catalog.quote(&f.hotel, t, &stay).expect("quote");
                sum += free + quote.nightly.len();
                black_box(quote);
            }
            sum
        });
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_book, bench_apply, bench_availability
}
criterion_main!(benches);
