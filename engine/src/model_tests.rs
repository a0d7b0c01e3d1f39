//! Model-based test of the engine's pure parts, driven the way the actors drive them.
//!
//! Random command sequences (book, pay, cancel, expire, check-in/out, no-show, housekeeping,
//! clock advances, catalog upserts, room retypes and reboots) run against [`State`]: each
//! decision is taken by the piece production asks — the catalog for setup and prices,
//! `Stay::parse` against the hotel's today, the availability index for candidates, and the
//! room's own `RoomState::decide_*` (`decide_stay` on every room of the hotel,
//! `decide_change`, `decide_move_out` then `decide_move_in`, `price_modification` then
//! `decide_modify` (then `decide_modify_in` on the other rooms), `due_no_shows` and
//! `decide_no_show`, `decide_housekeeping`, `decide_out_of_order`, `decide_retype`) — and
//! only `Ok` events are applied, with `State::apply` as recovery does.
//! After every step the engine is compared with a deliberately naive model written here
//! without reusing engine logic: reservations in a `Vec`, each with the set of nights it
//! holds, and a plain scan of them.
//!
//! What the actors add around these decisions (the booking saga's validation, picking a
//! room among the candidates, idempotency in flight, the move saga, timers, the journal,
//! crash recovery) is tested through the running shards by `innkeep-actors`'s model test.
//!
//! Checked after every step:
//! - no room-night is held by two reservations (model), and each room's calendar is exactly
//!   the model's map of held nights, each pointing at a reservation that may hold nights;
//! - a refused command leaves the state unchanged (normalised snapshot before == after);
//! - every room takes a stay exactly when the model has it of the type and free on every
//!   night, and refuses it `sold_out` otherwise; the index's `candidates_from` (rotating
//!   start, limit, skipped rooms) is exactly the model's free rooms in that order;
//! - the state machine accepts exactly the transitions of DESIGN.md's diagram, with their
//!   guards (hold elapsed for expire; within the stay, room vacant and clean for check-in);
//! - the availability index (`candidates`, `free_count`, `free_on`, `room_is_free`) agrees
//!   with a recount from the model, and quotes agree with the model's prices;
//! - a reboot (snapshot → bincode → `from_snapshot`) gives an equal snapshot, replaying all
//!   applied events from an empty state gives an equal snapshot, and from then on the
//!   rebooted state decides every command exactly as the original one (run in lockstep).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestRunner};

use crate::state::{check_idempotency, new_reservation};
use crate::{
    Action, BookRequest, DomainError, Event, Guest, HotelId, Housekeeping, IdempotencyKey,
    IdempotencyRecord, PaymentStatus, ReservationId, RoomKey, RoomNumber, RoomTypeCode, Snapshot,
    State, Status, Stay, StayLimits, Upsert,
};

const ZONES: [&str; 3] = ["Pacific/Kiritimati", "Pacific/Niue", "Asia/Shanghai"];
/// Room numbers a hotel may use: "8", "9", …, "17" (so string order differs from numeric).
const ROOM_SLOTS: usize = 10;
const HOLD: SignedDuration = SignedDuration::from_mins(15);
const CURRENCY: &str = "CNY";
const IDEMPOTENCY_WINDOW: SignedDuration = SignedDuration::from_hours(24);

// ---------------------------------------------------------------------------------------
// Generated input

#[derive(Clone, Debug)]
struct TypeSpec {
    capacity: u16,
    base_rate: i64,
    rooms: usize,
}

#[derive(Clone, Debug)]
struct HotelSpec {
    zone: usize,
    types: Vec<TypeSpec>,
}

#[derive(Clone, Copy, Debug)]
enum Act {
    Pay,
    Cancel,
    CheckIn,
    CheckOut,
    NoShow,
}

#[derive(Clone, Copy, Debug)]
enum VersionSel {
    Unconditional,
    Current,
    Stale,
}

#[derive(Clone, Debug)]
enum Cmd {
    Book {
        hotel: usize,
        rtype: usize,
        arrival_offset: i64,
        nights: i64,
        room: Option<usize>,
        guests: u16,
        key: Option<u8>,
    },
    Change {
        res: usize,
        act: Act,
        version: VersionSel,
        unknown: bool,
        /// Pick among reservations whose status allows the action (else any).
        targeted: bool,
        /// For check-in: first move the clock to the afternoon of the arrival day.
        to_arrival: bool,
    },
    Expire {
        res: usize,
        advance: bool,
    },
    Advance {
        minutes: i64,
    },
    Housekeeping {
        hotel: usize,
        room: usize,
        to: Housekeeping,
    },
    PutRate {
        hotel: usize,
        rtype: usize,
        from_offset: i64,
        nights: i64,
        amount: i64,
    },
    PutRoomType {
        hotel: usize,
        rtype: usize,
        capacity: u16,
        base_rate: i64,
    },
    PutHotel {
        hotel: usize,
        zone: usize,
        other_currency: bool,
    },
    PutRoom {
        hotel: usize,
        slot: usize,
        rtype: usize,
    },
    /// Take a room out of order for `[today + from_offset, + nights)`.
    OutOfOrder {
        hotel: usize,
        room: usize,
        from_offset: i64,
        nights: i64,
        /// Pick a room with a live reservation (to exercise the conflict list).
        busy: bool,
    },
    /// Lift one of a room's out-of-order ranges.
    BackInOrder {
        hotel: usize,
        room: usize,
        which: usize,
    },
    /// Move a reservation to another room of its hotel.
    Move {
        res: usize,
        room: usize,
        /// Pick among confirmed or checked-in reservations (else any).
        targeted: bool,
    },
    /// Modify a reservation: shift its arrival and departure, maybe to another type.
    Modify {
        res: usize,
        arrival_delta: i64,
        departure_delta: i64,
        /// Another type of the hotel (by index), or the same.
        rtype: Option<usize>,
        /// Pick among pending, confirmed or checked-in reservations (else any).
        targeted: bool,
    },
    /// Run the night audit of a hotel at the current instant.
    NightAudit {
        hotel: usize,
    },
    Reboot,
}

/// The night audit's hotel-local time in the model test.
const AUDIT_HOUR: i8 = 4;

fn setup_strategy() -> impl Strategy<Value = Vec<HotelSpec>> {
    let type_spec =
        (1..=4u16, 1_000..50_000i64, 1..=4usize).prop_map(|(capacity, base_rate, rooms)| {
            TypeSpec {
                capacity,
                base_rate,
                rooms,
            }
        });
    let hotel = (0..ZONES.len(), prop::collection::vec(type_spec, 1..=2))
        .prop_map(|(zone, types)| HotelSpec { zone, types });
    prop::collection::vec(hotel, 1..=2)
}

fn housekeeping_strategy() -> impl Strategy<Value = Housekeeping> {
    prop_oneof![
        Just(Housekeeping::Clean),
        Just(Housekeeping::Dirty),
        Just(Housekeeping::Cleaning),
        Just(Housekeeping::Inspected),
        Just(Housekeeping::OutOfOrder),
    ]
}

fn cmd_strategy() -> impl Strategy<Value = Cmd> {
    let idx = || 0..16usize;
    let book = (
        idx(),
        idx(),
        prop_oneof![1 => Just(-1i64), 4 => 0..=1i64, 8 => 0..=9i64],
        1..=4i64,
        prop::option::weighted(0.25, idx()),
        prop_oneof![1 => Just(0u16), 12 => 1..=2u16, 2 => 3..=5u16],
        prop::option::weighted(0.2, 0..3u8),
    )
        .prop_map(
            |(hotel, rtype, arrival_offset, nights, room, guests, key)| Cmd::Book {
                hotel,
                rtype,
                arrival_offset,
                nights,
                room,
                guests,
                key,
            },
        );
    let act = prop_oneof![
        4 => Just(Act::Pay),
        2 => Just(Act::Cancel),
        4 => Just(Act::CheckIn),
        3 => Just(Act::CheckOut),
        1 => Just(Act::NoShow),
    ];
    let version = prop_oneof![
        6 => Just(VersionSel::Unconditional),
        3 => Just(VersionSel::Current),
        1 => Just(VersionSel::Stale),
    ];
    let change = (
        0..64usize,
        act,
        version,
        prop::bool::weighted(0.03),
        prop::bool::weighted(0.7),
        prop::bool::weighted(0.5),
    )
        .prop_map(
            |(res, act, version, unknown, targeted, to_arrival)| Cmd::Change {
                res,
                act,
                version,
                unknown,
                targeted,
                to_arrival,
            },
        );
    let expire =
        (0..64usize, any::<bool>()).prop_map(|(res, advance)| Cmd::Expire { res, advance });
    let advance = prop_oneof![
        1..=120i64,
        (1..=48i64).prop_map(|h| h * 60),
        (1..=3i64).prop_map(|d| d * 24 * 60),
    ]
    .prop_map(|minutes| Cmd::Advance { minutes });
    let housekeeping = (idx(), idx(), housekeeping_strategy())
        .prop_map(|(hotel, room, to)| Cmd::Housekeeping { hotel, room, to });
    let put_rate = (idx(), idx(), 0..=9i64, 1..=4i64, 0..90_000i64).prop_map(
        |(hotel, rtype, from_offset, nights, amount)| Cmd::PutRate {
            hotel,
            rtype,
            from_offset,
            nights,
            amount,
        },
    );
    let put_room_type = (idx(), idx(), 1..=4u16, 1_000..50_000i64).prop_map(
        |(hotel, rtype, capacity, base_rate)| Cmd::PutRoomType {
            hotel,
            rtype,
            capacity,
            base_rate,
        },
    );
    let put_hotel = (idx(), 0..ZONES.len(), prop::bool::weighted(0.2)).prop_map(
        |(hotel, zone, other_currency)| Cmd::PutHotel {
            hotel,
            zone,
            other_currency,
        },
    );
    let put_room = (idx(), 0..ROOM_SLOTS, idx()).prop_map(|(hotel, slot, rtype)| Cmd::PutRoom {
        hotel,
        slot,
        rtype,
    });
    let out_of_order = (
        idx(),
        idx(),
        prop_oneof![1 => Just(-1i64), 6 => 0..=9i64],
        1..=4i64,
        any::<bool>(),
    )
        .prop_map(|(hotel, room, from_offset, nights, busy)| Cmd::OutOfOrder {
            hotel,
            room,
            from_offset,
            nights,
            busy,
        });
    let back_in_order = (idx(), idx(), idx()).prop_map(|(hotel, room, which)| Cmd::BackInOrder {
        hotel,
        room,
        which,
    });
    let move_cmd =
        (0..64usize, idx(), prop::bool::weighted(0.8)).prop_map(|(res, room, targeted)| {
            Cmd::Move {
                res,
                room,
                targeted,
            }
        });
    let modify = (
        0..64usize,
        prop_oneof![3 => Just(0i64), 1 => -2..=2i64],
        -2..=3i64,
        prop::option::weighted(0.25, idx()),
        prop::bool::weighted(0.85),
    )
        .prop_map(
            |(res, arrival_delta, departure_delta, rtype, targeted)| Cmd::Modify {
                res,
                arrival_delta,
                departure_delta,
                rtype,
                targeted,
            },
        );
    let audit = idx().prop_map(|hotel| Cmd::NightAudit { hotel });
    prop_oneof![
        5 => out_of_order,
        2 => back_in_order,
        8 => move_cmd,
        4 => modify,
        3 => audit,
        30 => book,
        28 => change,
        6 => expire,
        14 => advance,
        10 => housekeeping,
        3 => put_rate,
        2 => put_room_type,
        2 => put_hotel,
        3 => put_room,
        3 => Just(Cmd::Reboot),
    ]
}

// ---------------------------------------------------------------------------------------
// The naive model

#[derive(Clone, Debug)]
struct MType {
    code: RoomTypeCode,
    capacity: u16,
    base_rate: i64,
    overrides: BTreeMap<Date, i64>,
}

#[derive(Clone, Debug)]
struct MRoom {
    number: RoomNumber,
    rtype: usize,
    housekeeping: Housekeeping,
    /// Out-of-order ranges: from → to.
    blocks: BTreeMap<Date, Date>,
}

#[derive(Clone, Debug)]
struct MHotel {
    id: HotelId,
    zone: &'static str,
    types: Vec<MType>,
    /// By slot.
    rooms: BTreeMap<usize, MRoom>,
}

#[derive(Clone, Debug)]
struct MRes {
    id: ReservationId,
    hotel: usize,
    rtype: usize,
    room: RoomNumber,
    arrival: Date,
    departure: Date,
    guests: u16,
    status: Status,
    version: u64,
    created_at: Timestamp,
    hold_expires_at: Timestamp,
    total: i64,
    trade_no: Option<String>,
    /// The nights this reservation holds right now.
    held: BTreeSet<Date>,
    /// Room moves so far.
    moves: usize,
    /// The first night its current room holds.
    first_night: Date,
    /// What its first charge asks: the total at booking.
    charged: i64,
    /// Money captured and kept (0 until paid).
    paid: i64,
    /// A difference charge due after a re-pricing.
    due: i64,
    /// A difference owed back after a re-pricing (never confirmed in this model).
    owed_back: i64,
}

#[derive(Clone, Debug, Default)]
struct Model {
    hotels: Vec<MHotel>,
    res: Vec<MRes>,
    /// (hotel, key) → (fingerprint, reservation, created_at)
    idem: HashMap<(usize, u8), (u64, ReservationId, Timestamp)>,
}

fn day(d: Date, n: i64) -> Date {
    d.checked_add(n.days()).expect("date in range")
}

fn nights_of(arrival: Date, departure: Date) -> Vec<Date> {
    let mut out = Vec::new();
    let mut d = arrival;
    while d < departure {
        out.push(d);
        d = day(d, 1);
    }
    out
}

/// The diagram in DESIGN.md, written out by hand.
fn legal_next(act: &Action, from: Status) -> Option<Status> {
    match act {
        Action::Pay { .. } if from == Status::PendingPayment => Some(Status::Confirmed),
        Action::Cancel if from == Status::PendingPayment || from == Status::Confirmed => {
            Some(Status::Cancelled)
        }
        Action::Expire if from == Status::PendingPayment => Some(Status::Expired),
        Action::CheckIn if from == Status::Confirmed => Some(Status::CheckedIn),
        Action::CheckOut if from == Status::CheckedIn => Some(Status::CheckedOut),
        Action::NoShow if from == Status::Confirmed => Some(Status::NoShow),
        _ => None,
    }
}

impl Model {
    fn today(&self, hotel: usize, now: Timestamp) -> Date {
        let tz = TimeZone::get(self.hotels[hotel].zone).expect("known zone");
        now.to_zoned(tz).date()
    }

    /// Room-night → reservation, built by a plain scan; panics on a double sale.
    fn held_map(&self) -> BTreeMap<(usize, RoomNumber), BTreeMap<Date, ReservationId>> {
        let mut map: BTreeMap<(usize, RoomNumber), BTreeMap<Date, ReservationId>> = BTreeMap::new();
        for r in &self.res {
            for night in &r.held {
                let per_room = map.entry((r.hotel, r.room.clone())).or_default();
                if let Some(other) = per_room.insert(*night, r.id) {
                    panic!(
                        "room-night sold twice: hotel {} room {} night {night} held by {other} and {}",
                        r.hotel, r.room, r.id
                    );
                }
            }
        }
        map
    }

    fn room_free(
        &self,
        held: &BTreeMap<(usize, RoomNumber), BTreeMap<Date, ReservationId>>,
        hotel: usize,
        room: &RoomNumber,
        nights: &[Date],
    ) -> bool {
        let sold = held
            .get(&(hotel, room.clone()))
            .is_some_and(|m| nights.iter().any(|n| m.contains_key(n)));
        let blocked = self.hotels[hotel]
            .rooms
            .values()
            .find(|r| r.number == *room)
            .is_some_and(|r| {
                nights
                    .iter()
                    .any(|n| r.blocks.iter().any(|(f, t)| f <= n && n < t))
            });
        !sold && !blocked
    }

    /// Free rooms of the type for every night, in room-number (string) order.
    fn free_rooms(
        &self,
        held: &BTreeMap<(usize, RoomNumber), BTreeMap<Date, ReservationId>>,
        hotel: usize,
        rtype: usize,
        nights: &[Date],
    ) -> Vec<RoomNumber> {
        let mut out: Vec<RoomNumber> = self.hotels[hotel]
            .rooms
            .values()
            .filter(|r| r.rtype == rtype && self.room_free(held, hotel, &r.number, nights))
            .map(|r| r.number.clone())
            .collect();
        out.sort();
        out
    }

    fn price(&self, hotel: usize, rtype: usize, nights: &[Date]) -> i64 {
        let t = &self.hotels[hotel].types[rtype];
        nights
            .iter()
            .map(|n| t.overrides.get(n).copied().unwrap_or(t.base_rate))
            .sum()
    }

    fn room_slot(&self, hotel: usize, number: &RoomNumber) -> usize {
        self.hotels[hotel]
            .rooms
            .iter()
            .find(|(_, r)| r.number == *number)
            .map(|(s, _)| *s)
            .expect("model room")
    }

    fn occupant(&self, hotel: usize, room: &RoomNumber) -> Option<ReservationId> {
        let mut inside = self
            .res
            .iter()
            .filter(|r| r.hotel == hotel && r.room == *room && r.status == Status::CheckedIn);
        let first = inside.next().map(|r| r.id);
        assert!(
            inside.next().is_none(),
            "two guests checked in to room {room}"
        );
        first
    }
}

// ---------------------------------------------------------------------------------------
// The harness

fn slot_number(slot: usize) -> RoomNumber {
    RoomNumber::parse(&(8 + slot).to_string()).expect("valid room number")
}

fn normalized(state: &State) -> Snapshot {
    let mut snap = state.to_snapshot();
    snap.idempotency.sort_by(|a, b| a.0.cmp(&b.0));
    snap
}

struct Harness {
    state: State,
    /// After the first reboot: the never-rebooted state, run in lockstep with `state`.
    twin: Option<State>,
    events: Vec<Event>,
    now: Timestamp,
    next_id: u128,
    next_trade: u64,
    model: Model,
    limits: StayLimits,
    stats: BTreeMap<&'static str, u64>,
}

impl Harness {
    fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    /// Runs a decision on the state (and on its twin, which must decide the same).
    fn decide<T: PartialEq + std::fmt::Debug>(&self, f: impl Fn(&State) -> T) -> T {
        let out = f(&self.state);
        if let Some(twin) = &self.twin {
            assert_eq!(
                f(twin),
                out,
                "rebooted state decided differently from the original"
            );
        }
        out
    }

    fn apply(&mut self, event: Event) {
        self.state.apply(&event);
        if let Some(twin) = &mut self.twin {
            twin.apply(&event);
        }
        self.events.push(event);
    }

    fn new(setup: &[HotelSpec]) -> Self {
        let mut h = Harness {
            state: State::default(),
            twin: None,
            events: Vec::new(),
            now: "2026-11-23T09:30:00Z".parse().expect("instant"),
            next_id: 1,
            next_trade: 1,
            model: Model::default(),
            limits: StayLimits::default(),
            stats: BTreeMap::new(),
        };
        for (hi, spec) in setup.iter().enumerate() {
            let id = HotelId::parse(&format!("H{hi}")).expect("hotel id");
            let zone = ZONES[spec.zone];
            let (ev, up) = h
                .state
                .catalog
                .put_hotel(id.clone(), "Hotel", zone, CURRENCY)
                .expect("put hotel");
            assert_eq!(up, Upsert::Created);
            h.apply(ev);
            let mut hotel = MHotel {
                id: id.clone(),
                zone,
                types: Vec::new(),
                rooms: BTreeMap::new(),
            };
            let mut slot = 0;
            for (ti, t) in spec.types.iter().enumerate() {
                let code = RoomTypeCode::parse(&format!("T{ti}")).expect("type code");
                let (ev, up) = h
                    .state
                    .catalog
                    .put_room_type(&id, code.clone(), "Type", t.capacity, t.base_rate)
                    .expect("put room type");
                assert_eq!(up, Upsert::Created);
                h.apply(ev);
                hotel.types.push(MType {
                    code: code.clone(),
                    capacity: t.capacity,
                    base_rate: t.base_rate,
                    overrides: BTreeMap::new(),
                });
                for _ in 0..t.rooms {
                    let number = slot_number(slot);
                    let (ev, up) = h
                        .state
                        .catalog
                        .put_room(&id, number.clone(), code.clone())
                        .expect("put room");
                    assert_eq!(up, Upsert::Created);
                    h.apply(ev);
                    hotel.rooms.insert(
                        slot,
                        MRoom {
                            number,
                            rtype: ti,
                            housekeeping: Housekeeping::Clean,
                            blocks: BTreeMap::new(),
                        },
                    );
                    slot += 1;
                }
            }
            h.model.hotels.push(hotel);
        }
        h.check();
        h
    }

    fn step(&mut self, cmd: &Cmd) {
        let before = normalized(&self.state);
        let accepted = match cmd {
            Cmd::Book {
                hotel,
                rtype,
                arrival_offset,
                nights,
                room,
                guests,
                key,
            } => self.book(
                *hotel,
                *rtype,
                *arrival_offset,
                *nights,
                *room,
                *guests,
                *key,
            ),
            Cmd::Change {
                res,
                act,
                version,
                unknown,
                targeted,
                to_arrival,
            } => self.change(*res, *act, *version, *unknown, *targeted, *to_arrival),
            Cmd::Expire { res, advance } => self.expire(*res, *advance),
            Cmd::Advance { minutes } => {
                self.now = self
                    .now
                    .checked_add(SignedDuration::from_mins(*minutes))
                    .expect("instant");
                true
            }
            Cmd::Housekeeping { hotel, room, to } => self.housekeeping(*hotel, *room, *to),
            Cmd::PutRate {
                hotel,
                rtype,
                from_offset,
                nights,
                amount,
            } => self.put_rate(*hotel, *rtype, *from_offset, *nights, *amount),
            Cmd::PutRoomType {
                hotel,
                rtype,
                capacity,
                base_rate,
            } => self.put_room_type(*hotel, *rtype, *capacity, *base_rate),
            Cmd::PutHotel {
                hotel,
                zone,
                other_currency,
            } => self.put_hotel(*hotel, *zone, *other_currency),
            Cmd::PutRoom { hotel, slot, rtype } => self.put_room(*hotel, *slot, *rtype),
            Cmd::OutOfOrder {
                hotel,
                room,
                from_offset,
                nights,
                busy,
            } => self.out_of_order(*hotel, *room, *from_offset, *nights, *busy),
            Cmd::BackInOrder { hotel, room, which } => self.back_in_order(*hotel, *room, *which),
            Cmd::Move {
                res,
                room,
                targeted,
            } => self.move_res(*res, *room, *targeted),
            Cmd::Modify {
                res,
                arrival_delta,
                departure_delta,
                rtype,
                targeted,
            } => self.modify_res(*res, *arrival_delta, *departure_delta, *rtype, *targeted),
            Cmd::NightAudit { hotel } => self.night_audit(*hotel),
            Cmd::Reboot => {
                self.reboot();
                true
            }
        };
        if !accepted {
            assert_eq!(
                normalized(&self.state),
                before,
                "a refused command changed the state: {cmd:?}"
            );
        }
        self.check();
    }

    #[allow(clippy::too_many_arguments)]
    fn book(
        &mut self,
        hotel: usize,
        rtype: usize,
        arrival_offset: i64,
        nights: i64,
        room: Option<usize>,
        guests: u16,
        key: Option<u8>,
    ) -> bool {
        let h = hotel % self.model.hotels.len();
        let t = rtype % self.model.hotels[h].types.len();
        let hotel_id = self.model.hotels[h].id.clone();
        let code = self.model.hotels[h].types[t].code.clone();
        let today = self.model.today(h, self.now);
        let arrival = day(today, arrival_offset);
        let departure = day(arrival, nights);
        let now = self.now;
        let limits = self.limits;
        // Validated against the hotel's today, as the booking saga does before anything else.
        let stay = self.decide(|s| {
            let today = s.catalog.hotel(&hotel_id)?.time_zone.today(now);
            Stay::parse(arrival, departure, today, limits)
        });
        let stay = if arrival_offset < 0 {
            assert!(
                matches!(stay, Err(DomainError::InvalidStay(_))),
                "arrival before the hotel's today {today} accepted: {stay:?}"
            );
            self.count("book_refused_past_arrival");
            return false;
        } else {
            let stay = stay.unwrap_or_else(|e| {
                panic!("valid stay {arrival}..{departure} (today {today}) refused: {e}")
            });
            assert_eq!((stay.arrival(), stay.departure()), (arrival, departure));
            stay
        };
        let wanted_room = room.map(|r| {
            let rooms = &self.model.hotels[h].rooms;
            rooms
                .values()
                .nth(r % rooms.len())
                .expect("a room")
                .number
                .clone()
        });
        // Guest counts the type cannot sleep are refused before the rooms are asked (by the
        // saga's validation in the actors, which the shard model test covers), so the rooms
        // only ever see valid ones.
        let guests = guests.clamp(1, self.model.hotels[h].types[t].capacity);
        let req = BookRequest {
            hotel_id: hotel_id.clone(),
            room_type: code.clone(),
            stay,
            guests,
            guest: Guest::parse("Ada Lovelace", "+86 138-0000-0000", "ada@example.com")
                .expect("guest"),
            room: wanted_room.clone(),
            rate_plan: crate::ids::RatePlanCode::bar(),
        };

        // Idempotency keys: a live key replays or refuses before anything is decided.
        let idem = key.map(|k| {
            let ik = IdempotencyKey::parse(&format!("key-{k}")).expect("key");
            (k, ik, req.fingerprint())
        });
        if let Some((k, ik, fp)) = &idem {
            let got = self.decide(|s| check_idempotency(&s.idempotency, &hotel_id, ik, *fp, now));
            let expected = match self.model.idem.get(&(h, *k)) {
                Some((mfp, id, at)) if now.duration_since(*at) < IDEMPOTENCY_WINDOW => {
                    if mfp == fp {
                        Ok(Some(*id))
                    } else {
                        Err(DomainError::IdempotencyKeyReused)
                    }
                }
                _ => Ok(None),
            };
            assert_eq!(got, expected, "idempotency lookup");
            match got {
                Ok(Some(_)) => {
                    self.count("idempotent_replay");
                    return false;
                }
                Err(_) => {
                    self.count("idempotency_key_reused");
                    return false;
                }
                Ok(None) => {}
            }
        }

        let id = ReservationId(uuid::Uuid::from_u128(self.next_id));
        self.next_id += 1;
        // What the shards do, step by step: price the stay from the catalog, ask the
        // availability index for candidates, and let each room decide (`decide_stay`).
        let night_list = nights_of(arrival, departure);
        let price = self.model.price(h, t, &night_list);
        let total = self.decide(|s| {
            let (hotel, rt) = s.catalog.room_type(&hotel_id, &code).expect("room type");
            crate::catalog::price(hotel, rt, &stay).total
        });
        assert_eq!(total.amount_minor, price, "price of {arrival}..{departure}");
        assert_eq!(total.currency.as_str(), CURRENCY);
        let held = self.model.held_map();
        // Every room of the hotel answers as the model says: it takes the stay exactly when
        // it is of the type and free on every night; otherwise `sold_out`.
        let mut takers: Vec<RoomNumber> = Vec::new();
        let rooms: Vec<MRoom> = self.model.hotels[h].rooms.values().cloned().collect();
        for mroom in &rooms {
            let key = self.room_key(h, &mroom.number);
            let got = self.decide(|s| s.rooms[&key].decide_stay(&id, &req.room_type, &req.stay));
            let free =
                mroom.rtype == t && self.model.room_free(&held, h, &mroom.number, &night_list);
            match got {
                Ok(()) => assert!(
                    free,
                    "room {} took a stay it cannot: {arrival}..{departure}",
                    mroom.number
                ),
                Err(e) => {
                    assert!(
                        !free,
                        "room {} refused a stay it can take: {e}",
                        mroom.number
                    );
                    assert_eq!(e, DomainError::SoldOut);
                }
            }
            if free {
                takers.push(mroom.number.clone());
            }
        }
        takers.sort();
        assert_eq!(takers, self.model.free_rooms(&held, h, t, &night_list));
        // The index's candidates, from a rotating start, at most `limit`, skipping rooms
        // already tried, as concurrent sagas ask it.
        let start = (id.0.as_u128() % 11) as usize;
        let limit = 1 + (id.0.as_u128() % 3) as usize;
        let tried = takers
            .first()
            .cloned()
            .filter(|_| id.0.as_u128().is_multiple_of(4));
        let candidates = self.decide(|s| {
            s.availability_index()
                .candidates_from(&hotel_id, &code, &stay, start, limit, |n| {
                    Some(n) == tried.as_ref()
                })
        });
        let mut of_type: Vec<RoomNumber> = rooms
            .iter()
            .filter(|r| r.rtype == t)
            .map(|r| r.number.clone())
            .collect();
        of_type.sort();
        let turn = start % of_type.len().max(1);
        of_type.rotate_left(turn);
        let expected: Vec<RoomNumber> = of_type
            .into_iter()
            .filter(|n| takers.contains(n) && Some(n) != tried.as_ref())
            .take(limit)
            .collect();
        assert_eq!(candidates, expected, "candidates_from({start}, {limit})");

        // The saga books the requested room, or the first room that takes the stay.
        let chosen = match &wanted_room {
            Some(n) => takers.contains(n).then(|| n.clone()),
            None => takers.first().cloned(),
        };
        let Some(room) = chosen else {
            self.count(match &wanted_room {
                Some(n) if self.model.hotels[h].rooms[&self.model.room_slot(h, n)].rtype != t => {
                    "book_room_of_other_type_refused"
                }
                _ => "book_sold_out",
            });
            return false;
        };
        let ev = Event::ReservationCreated {
            reservation: new_reservation(&req, room.clone(), total, id, now, HOLD).into(),
            idempotency: None,
        };
        let Event::ReservationCreated { reservation: r, .. } = &ev else {
            unreachable!()
        };
        assert_eq!(r.id, id);
        assert_eq!(r.hotel_id, hotel_id);
        assert_eq!(r.room_type, code);
        assert_eq!(r.room, room);
        assert_eq!(r.stay, stay);
        assert_eq!(r.guests, guests);
        assert_eq!(r.guest, req.guest);
        assert_eq!(r.status, Status::PendingPayment);
        assert_eq!(r.version, 1);
        assert_eq!(r.created_at, now);
        assert_eq!(r.hold_expires_at, now.checked_add(HOLD).expect("instant"));
        assert_eq!(r.total.amount_minor, price, "total");
        assert_eq!(r.payment.amount, r.total);
        assert_eq!(r.payment.status, PaymentStatus::Pending);
        assert_eq!(r.payment.out_trade_no, id.out_trade_no());
        assert_eq!(r.payment.trade_no, None);
        assert_eq!(r.history.len(), 1);
        self.model.res.push(MRes {
            id,
            hotel: h,
            rtype: t,
            room: room.clone(),
            arrival,
            departure,
            guests,
            status: Status::PendingPayment,
            version: 1,
            created_at: now,
            hold_expires_at: r.hold_expires_at,
            total: price,
            trade_no: None,
            held: night_list.iter().copied().collect(),
            moves: 0,
            first_night: arrival,
            charged: price,
            paid: 0,
            due: 0,
            owed_back: 0,
        });
        self.count(if wanted_room.is_some() {
            "book_ok_chosen_room"
        } else {
            "book_ok"
        });
        let event = ev;
        let event = match (event, idem) {
            (
                Event::ReservationCreated {
                    reservation,
                    idempotency: None,
                },
                Some((k, key, fingerprint)),
            ) => {
                self.model.idem.insert((h, k), (fingerprint, id, now));
                self.count("book_ok_with_key");
                Event::ReservationCreated {
                    reservation,
                    idempotency: Some(IdempotencyRecord { key, fingerprint }),
                }
            }
            (event, _) => event,
        };
        self.apply(event);
        true
    }

    fn change(
        &mut self,
        res: usize,
        act: Act,
        version: VersionSel,
        unknown: bool,
        targeted: bool,
        to_arrival: bool,
    ) -> bool {
        let action = match act {
            Act::Pay => {
                self.next_trade += 1;
                Action::Pay {
                    trade_no: format!("T{}", self.next_trade),
                }
            }
            Act::Cancel => Action::Cancel,
            Act::CheckIn => Action::CheckIn,
            Act::CheckOut => Action::CheckOut,
            Act::NoShow => Action::NoShow,
        };
        if unknown || self.model.res.is_empty() {
            let id = ReservationId(uuid::Uuid::from_u128(u128::MAX));
            let now = self.now;
            // Not in the locator, and no room has it.
            let today = self.model.today(0, now);
            let got = self.decide(|s| {
                assert_eq!(s.locator.get(&id), None);
                let room = s.rooms.values().next().expect("a room");
                room.decide_change(&id, action.clone(), None, now, today)
            });
            assert_eq!(got, Err(DomainError::NotFound("reservation")));
            self.count("change_unknown_reservation");
            return false;
        }
        let eligible: Vec<usize> = (0..self.model.res.len())
            .filter(|i| legal_next(&action, self.model.res[*i].status).is_some())
            .collect();
        let i = if targeted && !eligible.is_empty() {
            eligible[res % eligible.len()]
        } else {
            res % self.model.res.len()
        };
        if to_arrival && matches!(action, Action::CheckIn) {
            let r = &self.model.res[i];
            let tz = TimeZone::get(self.model.hotels[r.hotel].zone).expect("known zone");
            let afternoon = r
                .arrival
                .at(14, 0, 0, 0)
                .to_zoned(tz)
                .expect("local time")
                .timestamp();
            if afternoon > self.now {
                self.now = afternoon;
            }
        }
        let expected_version = match version {
            VersionSel::Unconditional => None,
            VersionSel::Current => Some(self.model.res[i].version),
            VersionSel::Stale => Some(self.model.res[i].version + 1),
        };
        self.transition(i, action, expected_version)
    }

    fn expire(&mut self, res: usize, advance: bool) -> bool {
        if self.model.res.is_empty() {
            return false;
        }
        let i = res % self.model.res.len();
        if advance && self.model.res[i].hold_expires_at > self.now {
            // Exactly at the deadline: the hold has run out.
            self.now = self.model.res[i].hold_expires_at;
        }
        self.transition(i, Action::Expire, None)
    }

    /// Decides `action` on model reservation `i` and checks it against the model's rules.
    fn transition(&mut self, i: usize, action: Action, expected_version: Option<u64>) -> bool {
        let now = self.now;
        let r = self.model.res[i].clone();
        let today = self.model.today(r.hotel, now);
        let slot = self.model.room_slot(r.hotel, &r.room);
        let housekeeping = self.model.hotels[r.hotel].rooms[&slot].housekeeping;
        let occupant = self.model.occupant(r.hotel, &r.room);

        // Every reason the model has to refuse; the engine must name one of them.
        let mut reasons: Vec<&str> = Vec::new();
        if expected_version.is_some_and(|v| v != r.version) {
            reasons.push("version_mismatch");
        }
        let next = legal_next(&action, r.status);
        if next.is_none() {
            reasons.push("invalid_transition");
        }
        match &action {
            Action::Expire if now < r.hold_expires_at => reasons.push("invalid_transition"),
            // A no-show only from the day after arrival (`today` stands for the audit date).
            Action::NoShow if today <= r.arrival => reasons.push("invalid_transition"),
            // A lapsed hold takes no payment, even before the expiry timer has run.
            Action::Pay { .. } if now >= r.hold_expires_at => reasons.push("invalid_transition"),
            // A difference owed back is refunded before anything else is.
            Action::Cancel | Action::NoShow if r.owed_back > 0 => {
                reasons.push("payment_in_progress")
            }
            Action::CheckIn => {
                if !(r.arrival <= today && today < r.departure) {
                    reasons.push("not_within_stay");
                }
                if occupant.is_some()
                    || !matches!(housekeeping, Housekeeping::Clean | Housekeeping::Inspected)
                {
                    reasons.push("room_not_ready");
                }
            }
            _ => {}
        }

        // As a room actor decides it: the locator names the room, the room decides with the
        // hotel-local today at `now`.
        let key = self.room_key(r.hotel, &r.room);
        let result = self.decide(|s| {
            assert_eq!(s.locator.get(&r.id), Some(&key), "locator of {}", r.id);
            let today = s
                .catalog
                .hotel(&key.hotel_id)
                .expect("hotel")
                .time_zone
                .today(now);
            s.rooms[&key].decide_change(&r.id, action.clone(), expected_version, now, today)
        });
        let event = match result {
            Err(e) => {
                assert!(
                    reasons.contains(&e.code()),
                    "engine refused {} on {:?} ({}) with {e}, model reasons {reasons:?}",
                    action.name(),
                    r.status,
                    r.id
                );
                self.count(match e.code() {
                    "version_mismatch" => "change_version_mismatch",
                    "invalid_transition" if matches!(action, Action::Expire) => "expire_refused",
                    "invalid_transition" => "change_invalid_transition",
                    "not_within_stay" => "check_in_not_within_stay",
                    "payment_in_progress" => "change_payment_in_progress",
                    _ => "check_in_room_not_ready",
                });
                return false;
            }
            Ok(event) => {
                assert!(
                    reasons.is_empty(),
                    "engine accepted {} on {:?} ({}), model refuses: {reasons:?}",
                    action.name(),
                    r.status,
                    r.id
                );
                event
            }
        };
        let Event::ReservationChanged { room, id, change } = &event else {
            panic!("change decided {event:?}");
        };
        assert_eq!(room.hotel_id, self.model.hotels[r.hotel].id);
        assert_eq!(room.number, r.room);
        assert_eq!(*id, r.id);
        assert_eq!(change.action, action);
        assert_eq!(change.at, now);

        let next = next.expect("legal transition");
        let m = &mut self.model.res[i];
        m.status = next;
        m.version += 1;
        let what = match &action {
            Action::Pay { trade_no } => {
                m.trade_no = Some(trade_no.clone());
                // The first charge pays; a re-priced hold's difference is settled now.
                m.paid = m.charged;
                if m.total > m.paid {
                    m.due = m.total - m.paid;
                } else if m.total < m.paid {
                    m.owed_back = m.paid - m.total;
                    m.paid = m.total;
                }
                "pay"
            }
            Action::Cancel => {
                m.held.clear();
                m.due = 0;
                "cancel"
            }
            Action::Expire => {
                m.held.clear();
                "expire"
            }
            Action::NoShow => {
                m.held.clear();
                m.due = 0;
                "no_show"
            }
            Action::CheckIn => "check_in",
            Action::CheckOut => {
                // The nights already slept stay sold; tonight and later are given back.
                m.held.retain(|d| *d < today);
                self.model.hotels[r.hotel]
                    .rooms
                    .get_mut(&slot)
                    .expect("room")
                    .housekeeping = Housekeeping::Dirty;
                if today < r.departure {
                    "check_out_early"
                } else {
                    "check_out"
                }
            }
        };
        self.count(what);
        self.apply(event);
        true
    }

    fn room_key(&self, h: usize, number: &RoomNumber) -> RoomKey {
        RoomKey {
            hotel_id: self.model.hotels[h].id.clone(),
            number: number.clone(),
        }
    }

    fn housekeeping(&mut self, hotel: usize, room: usize, to: Housekeeping) -> bool {
        let h = hotel % self.model.hotels.len();
        let rooms = &self.model.hotels[h].rooms;
        let (slot, mroom) = rooms.iter().nth(room % rooms.len()).expect("a room");
        let (slot, from) = (*slot, mroom.housekeeping);
        let key = self.room_key(h, &mroom.number);
        let now = self.now;
        let got = self.decide(|s| s.rooms[&key].decide_housekeeping(to, now));
        use Housekeeping::*;
        let allowed = matches!(
            (from, to),
            (_, Dirty | OutOfOrder) | (Dirty, Cleaning) | (Cleaning, Clean) | (Clean, Inspected)
        );
        match got {
            Ok(None) => {
                assert_eq!(
                    from, to,
                    "no-op housekeeping change from {from:?} to {to:?}"
                );
                self.count("housekeeping_noop");
                false
            }
            Ok(Some(event)) => {
                assert!(
                    from != to && allowed,
                    "housekeeping {from:?} -> {to:?} accepted"
                );
                assert_eq!(
                    event,
                    Event::HousekeepingSet {
                        room: key,
                        status: to,
                        at: now
                    }
                );
                self.model.hotels[h]
                    .rooms
                    .get_mut(&slot)
                    .expect("room")
                    .housekeeping = to;
                self.count("housekeeping_set");
                self.apply(event);
                true
            }
            Err(e) => {
                assert!(
                    from != to && !allowed,
                    "housekeeping {from:?} -> {to:?} refused: {e}"
                );
                assert_eq!(e.code(), "invalid_request");
                self.count("housekeeping_refused");
                false
            }
        }
    }

    fn put_rate(
        &mut self,
        hotel: usize,
        rtype: usize,
        from_offset: i64,
        nights: i64,
        amount: i64,
    ) -> bool {
        let h = hotel % self.model.hotels.len();
        let t = rtype % self.model.hotels[h].types.len();
        let from = day(self.model.today(h, self.now), from_offset);
        let to = day(from, nights);
        let hotel_id = self.model.hotels[h].id.clone();
        let code = self.model.hotels[h].types[t].code.clone();
        let event = self
            .decide(|s| s.catalog.put_rate(&hotel_id, &code, from, to, amount))
            .expect("put rate");
        for night in nights_of(from, to) {
            self.model.hotels[h].types[t]
                .overrides
                .insert(night, amount);
        }
        self.count("put_rate");
        self.apply(event);
        true
    }

    fn put_room_type(&mut self, hotel: usize, rtype: usize, capacity: u16, base_rate: i64) -> bool {
        let h = hotel % self.model.hotels.len();
        let t = rtype % self.model.hotels[h].types.len();
        let hotel_id = self.model.hotels[h].id.clone();
        let code = self.model.hotels[h].types[t].code.clone();
        let (event, up) = self
            .decide(|s| {
                s.catalog
                    .put_room_type(&hotel_id, code.clone(), "Type", capacity, base_rate)
            })
            .expect("put room type");
        assert_eq!(up, Upsert::Updated);
        let mt = &mut self.model.hotels[h].types[t];
        mt.capacity = capacity;
        mt.base_rate = base_rate;
        self.count("put_room_type");
        self.apply(event);
        true
    }

    fn put_hotel(&mut self, hotel: usize, zone: usize, other_currency: bool) -> bool {
        let h = hotel % self.model.hotels.len();
        let hotel_id = self.model.hotels[h].id.clone();
        let currency = if other_currency { "USD" } else { CURRENCY };
        let got = self.decide(|s| {
            s.catalog
                .put_hotel(hotel_id.clone(), "Hotel", ZONES[zone], currency)
        });
        if other_currency {
            assert_eq!(got, Err(DomainError::CurrencyLocked));
            self.count("put_hotel_currency_locked");
            return false;
        }
        let (event, up) = got.expect("put hotel");
        assert_eq!(up, Upsert::Updated);
        self.model.hotels[h].zone = ZONES[zone];
        self.count("put_hotel");
        self.apply(event);
        true
    }

    /// Creates a room, or retypes one (allowed only while none of its reservations holds nights).
    fn put_room(&mut self, hotel: usize, slot: usize, rtype: usize) -> bool {
        let h = hotel % self.model.hotels.len();
        let t = rtype % self.model.hotels[h].types.len();
        let number = slot_number(slot);
        let key = self.room_key(h, &number);
        let hotel_id = self.model.hotels[h].id.clone();
        let code = self.model.hotels[h].types[t].code.clone();
        let got = self.decide(|s| {
            let (event, up) = s
                .catalog
                .put_room(&hotel_id, number.clone(), code.clone())?;
            if let Some(room) = s.rooms.get(&key) {
                room.decide_retype(&code)?;
            }
            Ok::<_, DomainError>((event, up))
        });
        let existing = self.model.hotels[h].rooms.get(&slot).cloned();
        let mut live: Vec<ReservationId> = self
            .model
            .res
            .iter()
            .filter(|r| {
                r.hotel == h
                    && r.room == number
                    && matches!(
                        r.status,
                        Status::PendingPayment | Status::Confirmed | Status::CheckedIn
                    )
            })
            .map(|r| r.id)
            .collect();
        live.sort();
        match (got, existing) {
            (Err(DomainError::RoomInUse(mut ids)), Some(old)) => {
                ids.sort();
                assert_ne!(old.rtype, t);
                assert_eq!(ids, live, "room_in_use names the live reservations");
                self.count("retype_room_in_use");
                false
            }
            (Err(e), _) => panic!("put room {number} refused: {e}"),
            (Ok((event, up)), existing) => {
                match &existing {
                    Some(old) => {
                        assert_eq!(up, Upsert::Updated);
                        assert!(old.rtype == t || live.is_empty(), "retyped a room in use");
                        self.count(if old.rtype == t {
                            "put_room_same_type"
                        } else {
                            "retype"
                        });
                    }
                    None => {
                        assert_eq!(up, Upsert::Created);
                        self.count("put_room_new");
                    }
                }
                let (housekeeping, blocks) = existing
                    .map_or((Housekeeping::Clean, BTreeMap::new()), |r| {
                        (r.housekeeping, r.blocks)
                    });
                self.model.hotels[h].rooms.insert(
                    slot,
                    MRoom {
                        number,
                        rtype: t,
                        housekeeping,
                        blocks,
                    },
                );
                self.apply(event);
                true
            }
        }
    }

    fn out_of_order(
        &mut self,
        hotel: usize,
        room: usize,
        from_offset: i64,
        nights: i64,
        busy: bool,
    ) -> bool {
        let h = hotel % self.model.hotels.len();
        let today = self.model.today(h, self.now);
        // A busy pick: a room and range overlapping a live reservation.
        let live: Vec<&MRes> = self
            .model
            .res
            .iter()
            .filter(|r| r.hotel == h && !r.held.is_empty() && r.status.holds_nights())
            .collect();
        let (number, from) = if busy && !live.is_empty() {
            let r = live[room % live.len()];
            let first = *r.held.iter().next().expect("held");
            (r.room.clone(), first.max(today))
        } else {
            let rooms = &self.model.hotels[h].rooms;
            let number = rooms
                .values()
                .nth(room % rooms.len())
                .expect("a room")
                .number
                .clone();
            (number, day(today, from_offset))
        };
        let to = day(from, nights);
        let slot = self.model.room_slot(h, &number);
        let key = self.room_key(h, &number);
        let now = self.now;
        let got =
            self.decide(|s| s.rooms[&key].decide_out_of_order(from, to, "repairs", today, now));
        let mroom = &self.model.hotels[h].rooms[&slot];
        let mut conflicts: Vec<String> = self
            .model
            .res
            .iter()
            .filter(|r| r.hotel == h && r.room == number && r.status.holds_nights())
            .filter(|r| r.held.iter().any(|n| from <= *n && *n < to))
            .map(|r| format!("res {}", r.id))
            .collect();
        conflicts.extend(
            mroom
                .blocks
                .iter()
                .filter(|(f, t)| **f < to && **t > from)
                .map(|(f, t)| format!("ooo {f}..{t}")),
        );
        conflicts.sort();
        let same = mroom.blocks.get(&from) == Some(&to);
        match got {
            Err(e) if from < today => {
                assert_eq!(e.code(), "invalid_request", "{e}");
                self.count("out_of_order_past");
                false
            }
            Ok(None) => {
                assert!(same, "no-op out of order for a new range");
                self.count("out_of_order_noop");
                false
            }
            Err(DomainError::NightsSold(listed)) => {
                assert!(!same && from >= today);
                let mut listed: Vec<String> = listed
                    .iter()
                    .map(|c| match c {
                        crate::NightConflict::Reservation { id, .. } => format!("res {id}"),
                        crate::NightConflict::OutOfOrder { from, to } => {
                            format!("ooo {from}..{to}")
                        }
                    })
                    .collect();
                listed.sort();
                assert_eq!(listed, conflicts, "conflict list");
                self.count("out_of_order_conflict");
                false
            }
            Err(e) => panic!("out of order {from}..{to} refused: {e}"),
            Ok(Some(event)) => {
                assert!(
                    from >= today && conflicts.is_empty(),
                    "accepted over {conflicts:?}"
                );
                let mroom = self.model.hotels[h].rooms.get_mut(&slot).expect("room");
                mroom.blocks.retain(|_, t| *t > today);
                mroom.blocks.insert(from, to);
                self.count("out_of_order");
                self.apply(event);
                true
            }
        }
    }

    fn back_in_order(&mut self, hotel: usize, room: usize, which: usize) -> bool {
        let h = hotel % self.model.hotels.len();
        let rooms = &self.model.hotels[h].rooms;
        let (slot, mroom) = rooms.iter().nth(room % rooms.len()).expect("a room");
        let slot = *slot;
        let from = if mroom.blocks.is_empty() {
            day(self.model.today(h, self.now), 3)
        } else {
            *mroom
                .blocks
                .keys()
                .nth(which % mroom.blocks.len())
                .expect("a block")
        };
        let key = self.room_key(h, &mroom.number);
        let now = self.now;
        let got = self.decide(|s| s.rooms[&key].decide_back_in_order(from, now));
        let exists = self.model.hotels[h].rooms[&slot].blocks.contains_key(&from);
        match got {
            Ok(event) => {
                assert!(exists);
                self.model.hotels[h]
                    .rooms
                    .get_mut(&slot)
                    .expect("room")
                    .blocks
                    .remove(&from);
                self.count("back_in_order");
                self.apply(event);
                true
            }
            Err(e) => {
                assert!(!exists, "lifting an existing range refused: {e}");
                assert_eq!(e.code(), "not_found");
                false
            }
        }
    }

    fn move_res(&mut self, res: usize, room: usize, targeted: bool) -> bool {
        if self.model.res.is_empty() {
            return false;
        }
        let eligible: Vec<usize> = (0..self.model.res.len())
            .filter(|i| {
                matches!(
                    self.model.res[*i].status,
                    Status::Confirmed | Status::CheckedIn
                )
            })
            .collect();
        let i = if targeted && !eligible.is_empty() {
            eligible[res % eligible.len()]
        } else {
            res % self.model.res.len()
        };
        let r = self.model.res[i].clone();
        let h = r.hotel;
        let rooms = &self.model.hotels[h].rooms;
        let (to_slot, to_room) = rooms.iter().nth(room % rooms.len()).expect("a room");
        let (to_slot, to_number, to_type) = (*to_slot, to_room.number.clone(), to_room.rtype);
        let now = self.now;
        let today = self.model.today(h, now);
        // A move to the room it is in is answered by the supervisor without asking a room,
        // and a room too small for the guests is refused by the actors before
        // `decide_move_in`; the shard model test covers both.
        if to_number == r.room {
            self.count("move_same_room");
            return false;
        }
        if self.model.hotels[h].types[to_type].capacity < r.guests {
            self.count("move_too_small");
            return false;
        }
        // The two halves as the rooms decide them: the room it leaves (`decide_move_out`,
        // with the hotel-local today), then the room it goes to (`decide_move_in`), whose
        // actor builds the one event both rooms apply.
        let from_key = self.room_key(h, &r.room);
        let to_key = self.room_key(h, &to_number);
        let got = self.decide(|s| {
            let source = &s.rooms[&from_key];
            let first_night = source.decide_move_out(&r.id, &to_key, None, today)?;
            let target = &s.rooms[&to_key];
            target.decide_move_in(&source.reservation(&r.id)?, first_night)?;
            Ok::<_, DomainError>(Event::ReservationMoved {
                id: r.id,
                from: from_key.clone(),
                to: to_key.clone(),
                room_type: target.room_type.clone(),
                first_night,
                at: now,
                pins: true,
            })
        });
        let first_night = match r.status {
            Status::Confirmed => Some(r.first_night),
            Status::CheckedIn if today < r.departure => Some(today.max(r.first_night)),
            _ => None,
        };
        let mut reasons: Vec<&str> = Vec::new();
        match first_night {
            None => reasons.push("invalid_transition"),
            Some(first) => {
                let nights = nights_of(first, r.departure);
                let held = self.model.held_map();
                let others_free = held
                    .get(&(h, to_number.clone()))
                    .is_none_or(|m| nights.iter().all(|n| !m.contains_key(n)));
                let blocks = &self.model.hotels[h].rooms[&to_slot].blocks;
                let blocked = nights
                    .iter()
                    .any(|n| blocks.iter().any(|(f, t)| f <= n && n < t));
                if !others_free || blocked {
                    reasons.push("nights_sold");
                }
                if r.status == Status::CheckedIn
                    && (self.model.occupant(h, &to_number).is_some()
                        || !matches!(
                            self.model.hotels[h].rooms[&to_slot].housekeeping,
                            Housekeeping::Clean | Housekeeping::Inspected
                        ))
                {
                    reasons.push("room_not_ready");
                }
            }
        }
        let event = match got {
            Err(e) => {
                assert!(
                    reasons.contains(&e.code()),
                    "move of {:?} {} to {to_number} refused with {e}, model reasons {reasons:?}",
                    r.status,
                    r.id
                );
                self.count("move_refused");
                return false;
            }
            Ok(event) => {
                assert!(
                    reasons.is_empty(),
                    "move accepted, model refuses: {reasons:?}"
                );
                event
            }
        };
        let first = first_night.expect("movable");
        let from_slot = self.model.room_slot(h, &r.room);
        if r.status == Status::CheckedIn {
            self.model.hotels[h]
                .rooms
                .get_mut(&from_slot)
                .expect("room")
                .housekeeping = Housekeeping::Dirty;
        }
        let m = &mut self.model.res[i];
        m.room = to_number;
        m.rtype = to_type;
        m.version += 1;
        m.moves += 1;
        m.first_night = first;
        m.held = nights_of(first, m.departure).into_iter().collect();
        self.count(if r.status == Status::CheckedIn {
            "move_checked_in"
        } else {
            "move"
        });
        self.apply(event);
        true
    }

    /// A modification as the actors run it: the catalog prices it from the reservation,
    /// its room decides (`decide_modify`), and when that room cannot keep it the other
    /// rooms of the hotel are asked in number order (`decide_modify_in`). The model predicts
    /// which refusals are possible and, when it is accepted, that the new nights were free
    /// where the engine put them.
    fn modify_res(
        &mut self,
        res: usize,
        arrival_delta: i64,
        departure_delta: i64,
        rtype: Option<usize>,
        targeted: bool,
    ) -> bool {
        if self.model.res.is_empty() {
            return false;
        }
        let eligible: Vec<usize> = (0..self.model.res.len())
            .filter(|i| {
                matches!(
                    self.model.res[*i].status,
                    Status::PendingPayment | Status::Confirmed | Status::CheckedIn
                )
            })
            .collect();
        let i = if targeted && !eligible.is_empty() {
            eligible[res % eligible.len()]
        } else {
            res % self.model.res.len()
        };
        let r = self.model.res[i].clone();
        let h = r.hotel;
        let t = rtype.map_or(r.rtype, |t| t % self.model.hotels[h].types.len());
        let now = self.now;
        let today = self.model.today(h, now);
        let arrival = day(r.arrival, arrival_delta);
        let departure = day(r.departure, departure_delta);
        let input = crate::ModifyInput {
            arrival: (arrival_delta != 0).then_some(arrival),
            departure: (departure_delta != 0).then_some(departure),
            room_type: (t != r.rtype).then(|| self.model.hotels[h].types[t].code.clone()),
            ..crate::ModifyInput::default()
        };
        let limits = self.limits;
        let from_key = self.room_key(h, &r.room);
        let got = self.decide(|s| {
            let current = s.reservation(&r.id)?;
            let m = s
                .catalog
                .price_modification(&current, &input, now, limits)?;
            let source = &s.rooms[&from_key];
            match source.decide_modify(&r.id, &m, current.version, None, now)? {
                crate::ModifyPlan::Unchanged => Ok(None),
                crate::ModifyPlan::Here(event) => Ok(Some(event)),
                crate::ModifyPlan::Elsewhere => {
                    let mut keys: Vec<&RoomKey> = s
                        .rooms
                        .keys()
                        .filter(|k| k.hotel_id == from_key.hotel_id && **k != from_key)
                        .collect();
                    keys.sort();
                    keys.into_iter()
                        .find_map(|k| {
                            s.rooms[k]
                                .decide_modify_in(&current, &from_key, &m, now)
                                .ok()
                        })
                        .map(Some)
                        .ok_or(DomainError::SoldOut)
                }
            }
        });
        // What the model allows, and the refusals it expects otherwise.
        let checked_in = r.status == Status::CheckedIn;
        let mut reasons: Vec<&str> = Vec::new();
        let lapsed = r.status == Status::PendingPayment && now >= r.hold_expires_at;
        let stay_changed = arrival_delta != 0 || departure_delta != 0;
        let repriced = stay_changed || t != r.rtype;
        match r.status {
            Status::PendingPayment | Status::Confirmed => {}
            Status::CheckedIn if arrival_delta == 0 && t == r.rtype => {}
            _ => reasons.push("invalid_transition"),
        }
        if lapsed {
            reasons.push("invalid_transition");
        }
        if stay_changed {
            let nights = (departure - arrival).get_days();
            let horizon = day(today, i64::from(limits.horizon_days));
            let bad = departure <= arrival
                || (checked_in && departure <= today)
                || (!checked_in && arrival < today)
                || i64::from(nights) > i64::from(limits.max_nights)
                || departure > horizon;
            if bad {
                reasons.push("invalid_stay");
            }
        }
        if r.guests > self.model.hotels[h].types[t].capacity {
            reasons.push("invalid_request");
        }
        let new_nights = if departure > arrival {
            nights_of(arrival, departure)
        } else {
            Vec::new()
        };
        let new_total = if repriced {
            self.model.price(h, t, &new_nights)
        } else {
            r.total
        };
        let paid =
            r.trade_no.is_some() && matches!(r.status, Status::Confirmed | Status::CheckedIn);
        if paid && new_total != r.total && (r.due > 0 || r.owed_back > 0) {
            reasons.push("payment_in_progress");
        }
        // Where the new nights fit, the reservation's own nights counting as free.
        let mut held = self.model.held_map();
        if let Some(m) = held.get_mut(&(h, r.room.clone())) {
            m.retain(|_, id| *id != r.id);
        }
        let asked: Vec<Date> = if checked_in {
            new_nights
                .iter()
                .copied()
                .filter(|n| *n >= r.first_night)
                .collect()
        } else {
            new_nights.clone()
        };
        let own_type_fits = t == r.rtype
            || self.model.hotels[h].rooms[&self.model.room_slot(h, &r.room)].rtype == t;
        let here = own_type_fits && self.model.room_free(&held, h, &r.room, &asked);
        let elsewhere = self.model.free_rooms(&held, h, t, &new_nights);
        if reasons.is_empty() && !here && (checked_in || elsewhere.iter().all(|n| *n == r.room)) {
            reasons.push("sold_out");
        }
        let event = match got {
            Err(e) => {
                assert!(
                    reasons.contains(&e.code()),
                    "modification of {:?} {} ({arrival}..{departure}, type {t}) refused with {e}, model reasons {reasons:?}",
                    r.status,
                    r.id
                );
                self.count("modify_refused");
                return false;
            }
            Ok(None) => {
                assert!(
                    reasons.is_empty() && !repriced,
                    "unchanged, model: {reasons:?}"
                );
                self.count("modify_unchanged");
                return false;
            }
            Ok(Some(event)) => {
                assert!(
                    reasons.is_empty(),
                    "modification accepted, model refuses: {reasons:?}"
                );
                event
            }
        };
        let Event::ReservationModified {
            to, modification, ..
        } = &event
        else {
            panic!("a modification decided {event:?}");
        };
        assert_eq!(modification.total_minor, new_total);
        let to_room = to.clone().unwrap_or(r.room.clone());
        if to.is_some() {
            assert!(!here, "moved though its own room could keep it");
            assert!(
                elsewhere.contains(&to_room),
                "moved to {to_room}, not free in the model"
            );
        } else {
            assert!(here, "kept in a room the model has taken");
        }
        let m = &mut self.model.res[i];
        if to.is_some() {
            m.moves += 1;
        }
        m.room = to_room;
        m.rtype = t;
        m.arrival = arrival;
        m.departure = departure;
        m.version += 1;
        let money = if paid && new_total != m.total {
            // Paid: the difference is charged, or owed back.
            if new_total > m.paid {
                m.due = new_total - m.paid;
                Some("modify_paid_charged")
            } else {
                m.owed_back = m.paid - new_total;
                m.paid = new_total;
                Some("modify_paid_refunded")
            }
        } else {
            None
        };
        m.total = new_total;
        if !checked_in {
            m.first_night = arrival;
        }
        m.held = nights_of(m.first_night, departure).into_iter().collect();
        if let Some(what) = money {
            self.count(what);
        }
        self.count(match (to.is_some(), checked_in) {
            (true, _) => "modify_moved",
            (false, true) => "modify_checked_in",
            (false, false) => "modify_in_place",
        });
        self.apply(event);
        true
    }

    fn night_audit(&mut self, hotel: usize) -> bool {
        let h = hotel % self.model.hotels.len();
        let tz = TimeZone::get(self.model.hotels[h].zone).expect("known zone");
        let local = self.now.to_zoned(tz);
        let audit_date = if local.hour() >= AUDIT_HOUR {
            local.date()
        } else {
            day(local.date(), -1)
        };
        let hotel_id = self.model.hotels[h].id.clone();
        let now = self.now;
        let audit_time = jiff::civil::time(AUDIT_HOUR, 0, 0, 0);
        let engine_date = self.decide(|s| {
            s.catalog
                .hotel(&hotel_id)
                .expect("hotel")
                .time_zone
                .audit_date(now, audit_time)
        });
        assert_eq!(engine_date, audit_date, "audit date");
        // As the supervisor's audit runs it: every room of the hotel marks its due no-shows.
        let events = self.decide(|s| {
            let mut keys: Vec<&RoomKey> =
                s.rooms.keys().filter(|k| k.hotel_id == hotel_id).collect();
            keys.sort();
            let mut events = Vec::new();
            for key in keys {
                let room = &s.rooms[key];
                for id in room.due_no_shows(audit_date) {
                    events.push(
                        room.decide_no_show(&id, audit_date, now)
                            .expect("a due no-show"),
                    );
                }
            }
            events
        });
        let mut due: Vec<ReservationId> = self
            .model
            .res
            .iter()
            .filter(|r| {
                r.hotel == h
                    && r.status == Status::Confirmed
                    && r.arrival < audit_date
                    && r.owed_back == 0
            })
            .map(|r| r.id)
            .collect();
        due.sort();
        let mut decided: Vec<ReservationId> = events
            .iter()
            .map(|e| match e {
                Event::ReservationChanged { id, change, .. } => {
                    assert_eq!(change.action, Action::NoShow);
                    *id
                }
                other => panic!("night audit decided {other:?}"),
            })
            .collect();
        decided.sort();
        assert_eq!(decided, due, "no-shows on {audit_date}");
        for e in events {
            let Event::ReservationChanged { id, .. } = &e else {
                unreachable!()
            };
            let m = self
                .model
                .res
                .iter_mut()
                .find(|r| r.id == *id)
                .expect("model reservation");
            m.status = Status::NoShow;
            m.version += 1;
            m.held.clear();
            m.due = 0;
            self.count("audit_no_show");
            self.apply(e);
        }
        true
    }

    fn reboot(&mut self) {
        let snap = self.state.to_snapshot();
        let bytes = bincode::serde::encode_to_vec(&snap, bincode::config::standard())
            .expect("encode snapshot");
        let (decoded, read): (Snapshot, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                .expect("decode snapshot");
        assert_eq!(read, bytes.len());
        let rebooted = State::from_snapshot(decoded);
        assert_eq!(
            normalized(&rebooted),
            normalized(&self.state),
            "reboot changed the state"
        );
        self.check_replay();
        let original = std::mem::replace(&mut self.state, rebooted);
        if self.twin.is_none() {
            self.twin = Some(original);
        }
        self.count("reboot");
    }

    /// Replaying every applied event from an empty state reproduces the state.
    fn check_replay(&self) {
        let mut replayed = State::default();
        for e in &self.events {
            replayed.apply(e);
        }
        assert_eq!(
            normalized(&replayed),
            normalized(&self.state),
            "replay differs"
        );
    }

    /// Every invariant, engine against model.
    fn check(&self) {
        let state = &self.state;
        let held = self.model.held_map(); // panics on a double sale
        assert_eq!(
            state.check_invariants(),
            Vec::<String>::new(),
            "State::check_invariants"
        );

        // Rooms: type, housekeeping, occupant, and the calendar night by night.
        let model_rooms: usize = self.model.hotels.iter().map(|h| h.rooms.len()).sum();
        assert_eq!(state.rooms.len(), model_rooms, "room count");
        for (h, hotel) in self.model.hotels.iter().enumerate() {
            let catalog_hotel = state.catalog.hotel(&hotel.id).expect("hotel");
            assert_eq!(catalog_hotel.time_zone.name(), hotel.zone);
            assert_eq!(catalog_hotel.rooms.len(), hotel.rooms.len());
            for room in hotel.rooms.values() {
                let key = self.room_key(h, &room.number);
                let er = state.rooms.get(&key).expect("engine room");
                let code = &hotel.types[room.rtype].code;
                assert_eq!(&er.room_type, code);
                assert_eq!(catalog_hotel.rooms.get(&room.number), Some(code));
                assert_eq!(
                    er.housekeeping, room.housekeeping,
                    "housekeeping of {key:?}"
                );
                assert_eq!(
                    er.occupant,
                    self.model.occupant(h, &room.number),
                    "occupant"
                );
                let expected = held
                    .get(&(h, room.number.clone()))
                    .cloned()
                    .unwrap_or_default();
                let calendar = er.calendar();
                assert_eq!(calendar, expected, "calendar of room {key:?}");
                for (night, id) in &calendar {
                    let r = er.kept(id).expect("calendar names a known reservation");
                    assert!(
                        r.status().holds_nights() || r.status() == Status::CheckedOut,
                        "night {night} of {key:?} held by a {} reservation",
                        r.status()
                    );
                    assert!(r.stay().contains(*night));
                }
            }
        }

        // Reservations: where they are and what they say.
        assert_eq!(state.locator.len(), self.model.res.len(), "locator size");
        for m in &self.model.res {
            let er = state.reservation(&m.id).expect("reservation");
            let hotel = &self.model.hotels[m.hotel];
            assert_eq!(state.locator[&m.id], self.room_key(m.hotel, &m.room));
            assert_eq!(er.hotel_id, hotel.id);
            assert_eq!(er.room_type, hotel.types[m.rtype].code);
            assert_eq!(er.room, m.room);
            assert_eq!(
                (er.stay.arrival(), er.stay.departure()),
                (m.arrival, m.departure)
            );
            assert_eq!(er.guests, m.guests);
            assert_eq!(er.status, m.status, "status of {}", m.id);
            assert_eq!(er.version, m.version, "version of {}", m.id);
            assert_eq!(er.created_at, m.created_at);
            assert_eq!(er.hold_expires_at, m.hold_expires_at);
            assert_eq!(er.total.amount_minor, m.total);
            // One history entry per version, up to the cap.
            let kept = m.version.min(crate::reservation::MAX_HISTORY as u64);
            assert_eq!(er.history.len() as u64, kept, "history of {}", m.id);
            let last = er.history.last().expect("history");
            assert_eq!(last.to, m.status);
            if m.version <= kept {
                assert_eq!(last.version, m.version);
            }
            assert_eq!(
                er.moves.len(),
                m.moves.min(crate::reservation::MAX_MOVES),
                "moves kept"
            );
            assert_eq!(er.payment.trade_no, m.trade_no);
            let paid = if m.trade_no.is_some() {
                PaymentStatus::Succeeded
            } else {
                PaymentStatus::Pending
            };
            assert_eq!(er.payment.status, paid);
            // What a re-pricing left to settle.
            assert_eq!(er.balance_due_minor(), m.due, "balance due of {}", m.id);
            assert_eq!(
                er.owes_difference(),
                m.owed_back > 0,
                "owed back of {}",
                m.id
            );
            if m.owed_back > 0 {
                assert_eq!(er.payment.refund_minor, m.owed_back);
            }
            if m.trade_no.is_none() {
                assert_eq!(er.payment.amount.amount_minor, m.charged);
            }
        }

        // Idempotency keys.
        assert_eq!(state.idempotency.len(), self.model.idem.len());

        // The availability index (built from the rooms, as the actors' are fed by them)
        // against a recount, and quotes against the model's prices.
        let index = state.availability_index();
        for (h, hotel) in self.model.hotels.iter().enumerate() {
            let today = self.model.today(h, self.now);
            for (t, mt) in hotel.types.iter().enumerate() {
                for offset in -1..=11 {
                    let arrival = day(today, offset);
                    let night = [arrival];
                    let free_tonight = self.model.free_rooms(&held, h, t, &night).len();
                    assert_eq!(
                        index.free_on(&hotel.id, &mt.code, arrival),
                        free_tonight,
                        "free_on {arrival}"
                    );
                    for n in 1..=3 {
                        let departure = day(arrival, n);
                        let stay = Stay::between(arrival, departure).expect("stay");
                        let nights = nights_of(arrival, departure);
                        let free = self.model.free_rooms(&held, h, t, &nights);
                        assert_eq!(
                            index.candidates(&hotel.id, &mt.code, &stay),
                            free,
                            "candidates {arrival}..{departure}"
                        );
                        assert_eq!(index.free_count(&hotel.id, &mt.code, &stay), free.len());
                        if offset == 0 {
                            for room in hotel.rooms.values() {
                                let key = self.room_key(h, &room.number);
                                assert_eq!(
                                    index.room_is_free(&key, &mt.code, &stay),
                                    room.rtype == t
                                        && self.model.room_free(&held, h, &room.number, &nights)
                                );
                            }
                            let quote = state
                                .catalog
                                .quote(&hotel.id, &mt.code, &stay)
                                .expect("quote");
                            assert_eq!(quote.total.amount_minor, self.model.price(h, t, &nights));
                            assert_eq!(quote.nightly.len(), nights.len());
                        }
                    }
                }
            }
        }
    }
}

fn run_case(setup: &[HotelSpec], cmds: &[Cmd]) -> BTreeMap<&'static str, u64> {
    let mut h = Harness::new(setup);
    for cmd in cmds {
        h.step(cmd);
    }
    h.check_replay();
    h.stats
}

/// The seed of the default run.
const DEFAULT_SEED: u64 = 0x1A4B_2026_1205;

#[test]
fn engine_agrees_with_a_naive_model() {
    // 256 cases unless PROPTEST_CASES says otherwise, on a fixed seed unless
    // PROPTEST_RNG_SEED names one: the default run is the same every time, so the coverage
    // check below cannot flake (a random seed once missed a path in one run of many).
    let base = ProptestConfig::default();
    let default_run = base.rng_seed == RngSeed::Random && base.cases == 256;
    let rng_seed = match base.rng_seed {
        RngSeed::Random => RngSeed::Fixed(DEFAULT_SEED),
        fixed => fixed,
    };
    let config = ProptestConfig {
        rng_seed,
        source_file: Some(file!()),
        ..base
    };
    let mut runner = TestRunner::new(config);
    let totals: RefCell<BTreeMap<&'static str, u64>> = RefCell::new(BTreeMap::new());
    let strategy = (
        setup_strategy(),
        prop::collection::vec(cmd_strategy(), 1..80),
    );
    let result = runner.run(&strategy, |(setup, cmds)| {
        let stats = run_case(&setup, &cmds);
        let mut totals = totals.borrow_mut();
        for (k, v) in stats {
            *totals.entry(k).or_default() += v;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let totals = totals.into_inner();
    eprintln!("model test coverage: {totals:?}");
    if !default_run {
        return;
    }
    // Guard against a vacuous run: every interesting path was taken at least once (on the
    // default run; another seed or case count may need more cases for it).
    for path in [
        "book_ok",
        "book_ok_chosen_room",
        "book_sold_out",
        "pay",
        "cancel",
        "expire",
        "expire_refused",
        "check_in",
        "check_out",
        "check_out_early",
        "no_show",
        "audit_no_show",
        "out_of_order",
        "out_of_order_conflict",
        "back_in_order",
        "move",
        "move_checked_in",
        "move_refused",
        "modify_in_place",
        "modify_moved",
        "modify_paid_charged",
        "modify_paid_refunded",
        "modify_refused",
        "change_invalid_transition",
        "reboot",
    ] {
        assert!(
            totals.get(path).copied().unwrap_or(0) > 0,
            "never exercised: {path}"
        );
    }
}
