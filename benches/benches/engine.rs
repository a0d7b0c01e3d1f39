//! Criterion benchmarks of the pure engine (`innkeep-engine`), no actors or IO.
//!
//! One hotel in Asia/Shanghai with 200 rooms (100 `KING`, 100 `TWIN`), pre-filled so that
//! about 60% of room-nights over the next 60 days are sold, as a busy hotel would be.
//!
//! A booking's engine work is what the shards do for it (`booking::run_many` and the room's
//! `Reserve` in `innkeep-actors`): price the stay, take candidates from the availability
//! index (one round of 16), and ask each room's `RoomState::decide_stay` until one takes
//! it — `decide_booking` below, without the messages, the desk and the journal.
//!
//! - `book/decide+apply`: `decide_booking` then `State::apply` of the event, for a 3-night
//!   stay that succeeds. Each booking is undone untimed (cancel, then the reservation
//!   dropped), so the state stays the same and never sells out.
//! - `book/decide`: `decide_booking` alone (no apply).
//! - `book/decide_sold_out`: `decide_booking` for a type that is full on those nights.
//! - `apply/reservation_created`: `State::apply` of a `ReservationCreated` event alone.
//! - `availability/3_nights`: what `GET …/availability` computes for a 3-night stay:
//!   `index.free_count` and `catalog.quote` for every room type.
//!
//! Run: `cargo bench -p innkeep-benches --bench engine` (each bench measures for 3 s).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use innkeep_engine::state::new_reservation;
use innkeep_engine::{
    Action, AvailabilityIndex, BookRequest, DomainError, Event, Guest, HotelId, ReservationId,
    RoomKey, RoomNumber, RoomTypeCode, State, Stay, StayLimits,
};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};

const ROOMS_PER_TYPE: usize = 100;
const PREFILL_DAYS: i64 = 60;
const HOLD: SignedDuration = SignedDuration::from_mins(15);
/// Candidates the booking saga takes from the index per round.
const CANDIDATES_PER_ROUND: usize = 16;

/// The engine's part of a booking, as the shards run it: price, candidates from the index,
/// each room's decision. (One round of candidates: the index shows them free, so the first
/// one takes the stay; the saga asks again only after losing a race.)
fn decide_booking(
    state: &State,
    index: &AvailabilityIndex,
    req: &BookRequest,
    id: ReservationId,
    now: Timestamp,
) -> Result<Event, DomainError> {
    let (hotel, rt) = state.catalog.room_type(&req.hotel_id, &req.room_type)?;
    let total = innkeep_engine::catalog::price(hotel, rt, &req.stay).total;
    let candidates = index.candidates_from(
        &req.hotel_id,
        &req.room_type,
        &req.stay,
        0,
        CANDIDATES_PER_ROUND,
        |_| false,
    );
    for number in candidates {
        let key = RoomKey {
            hotel_id: req.hotel_id.clone(),
            number: number.clone(),
        };
        let Some(room) = state.rooms.get(&key) else {
            continue;
        };
        if room.decide_stay(&id, &req.room_type, &req.stay).is_ok() {
            return Ok(Event::ReservationCreated {
                reservation: new_reservation(req, number, total, id, now, HOLD).into(),
                idempotency: None,
            });
        }
    }
    Err(DomainError::SoldOut)
}

struct Fixture {
    state: State,
    /// The availability index of `state`'s rooms (the actors keep one per shard).
    index: AvailabilityIndex,
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
        let today = state
            .catalog
            .hotel(&hotel)
            .expect("hotel")
            .time_zone
            .today(now);
        let e = state
            .catalog
            .put_rate(&hotel, &types[0], today, today + 30.days(), 88_000)
            .expect("rate");
        state.apply(&e);
        let mut f = Fixture {
            index: state.availability_index(),
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
                if let Ok(e) = decide_booking(&f.state, &f.index, &req, id, f.now) {
                    f.state.apply(&e);
                    f.index = f.state.availability_index();
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
        let stay = Stay::parse(
            arrival,
            arrival + nights.days(),
            self.today,
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
            rate_plan: innkeep_engine::RatePlanCode::bar(),
        }
    }

    /// Takes a booking back out (cancel, then forget it), so the state does not grow.
    fn undo(&mut self, id: ReservationId) {
        let key = self.state.locator[&id].clone();
        let e = self.state.rooms[&key]
            .decide_change(&id, Action::Cancel, None, self.now, self.today)
            .expect("cancel");
        self.state.apply(&e);
        if let Some(key) = self.state.locator.remove(&id) {
            if let Some(room) = self.state.rooms.get_mut(&key) {
                room.revert_created(&id);
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
                let e = decide_booking(&f.state, &f.index, &req, id, f.now).expect("booked");
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
        b.iter(|| {
            black_box(decide_booking(
                &f.state,
                &f.index,
                black_box(&req),
                id,
                f.now,
            ))
            .is_ok()
        });
    });

    // Fill every TWIN room for one stay, then ask for one more.
    let mut full = Fixture::new();
    let full_req = full.request(1, 70, 3);
    loop {
        let id = full.fresh_id();
        match decide_booking(&full.state, &full.index, &full_req, id, full.now) {
            Ok(e) => {
                full.state.apply(&e);
                full.index = full.state.availability_index();
            }
            Err(_) => break,
        }
    }
    let id = full.fresh_id();
    g.bench_function("decide_sold_out", |b| {
        b.iter(|| {
            black_box(decide_booking(
                &full.state,
                &full.index,
                black_box(&full_req),
                id,
                full.now,
            ))
            .is_err()
        });
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
                let e = decide_booking(&f.state, &f.index, &req, id, f.now).expect("booked");
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
                let free = f.index.free_count(&f.hotel, t, black_box(&stay));
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
