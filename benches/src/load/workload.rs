//! The workload: which operation comes next, and which hotel, room type and stay a
//! request is about, with the hot-spot skew applied. Deterministic for a given seed.

use jiff::civil::Date;
use jiff::ToSpan;

use super::options::{LoadOptions, Mix, Op, StayNights};

/// A small, fast, seedable generator (SplitMix64): reproducible runs without a crate.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`; different seeds give unrelated sequences.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6a09_e667_f3bc_c908)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for load generation, and no division.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A room type as the workload sees it (learnt from `GET /v1/hotels/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// The type's code.
    pub code: String,
    /// Most guests, so bookings ask for a valid number.
    pub capacity: u16,
    /// Rooms of the type, for the "counts consistent" check.
    pub rooms: usize,
}

/// A hotel as the workload sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotelInfo {
    /// The hotel id.
    pub id: String,
    /// Its IANA time zone: dates are hotel-local.
    pub time_zone: String,
    /// The first night stays may use: hotel-local tomorrow at the start of the run, so a
    /// run that crosses midnight never books a night that became "past".
    pub first_night: Date,
    /// Its room types; the workload only uses types that sleep at least one guest.
    pub types: Vec<TypeInfo>,
}

/// One request's subject: hotel, room type and stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StayChoice {
    /// Index into the workload's hotels.
    pub hotel: usize,
    /// Index into that hotel's types.
    pub room_type: usize,
    /// First night.
    pub arrival: Date,
    /// Leaving day (exclusive).
    pub departure: Date,
    /// Guests, 1 to the type's capacity (at most 2).
    pub guests: u16,
    /// Whether the draw went to the hot spot.
    pub hot: bool,
}

/// Draws operations and stays for a run.
#[derive(Debug, Clone)]
pub struct Workload {
    hotels: Vec<HotelInfo>,
    horizon_days: u32,
    stay_nights: StayNights,
    hot_share: f64,
    /// Offsets (days after `first_night`) of the hot nights.
    hot_offsets: Vec<u32>,
    hot_room_type: bool,
    mix: Mix,
}

impl Workload {
    /// A workload over `hotels` (non-empty, each with at least one type) shaped by `opts`.
    /// The hot nights are drawn from the horizon with `opts.seed`.
    pub fn new(hotels: Vec<HotelInfo>, opts: &LoadOptions) -> Workload {
        let mut rng = Rng::new(opts.seed.wrapping_add(0x5eed));
        let horizon = opts.horizon_days.max(1);
        let want = opts.hot_dates.clamp(1, horizon as usize);
        let mut hot_offsets: Vec<u32> = Vec::with_capacity(want);
        // Bounded: at most `horizon` draws per wanted date, then take the first free ones.
        for _ in 0..want.saturating_mul(horizon as usize) {
            if hot_offsets.len() == want {
                break;
            }
            let d = rng.below(u64::from(horizon)) as u32;
            if !hot_offsets.contains(&d) {
                hot_offsets.push(d);
            }
        }
        for d in 0..horizon {
            if hot_offsets.len() >= want {
                break;
            }
            if !hot_offsets.contains(&d) {
                hot_offsets.push(d);
            }
        }
        hot_offsets.sort_unstable();
        Workload {
            hotels,
            horizon_days: horizon,
            stay_nights: opts.stay_nights.clone(),
            hot_share: opts.hot_share,
            hot_offsets,
            hot_room_type: opts.hot_room_type,
            mix: opts.mix.clone(),
        }
    }

    /// The hotels.
    pub fn hotels(&self) -> &[HotelInfo] {
        &self.hotels
    }

    /// The hot nights of hotel `hotel` (empty when the hot spot is a room type).
    pub fn hot_dates(&self, hotel: usize) -> Vec<Date> {
        if self.hot_room_type || self.hot_share <= 0.0 {
            return Vec::new();
        }
        self.hot_offsets
            .iter()
            .filter_map(|d| plus_days(self.hotels[hotel].first_night, *d))
            .collect()
    }

    /// The next operation, by the mix.
    pub fn op(&self, rng: &mut Rng) -> Op {
        self.mix.pick(rng.below(self.mix.total()))
    }

    fn nights(&self, rng: &mut Rng) -> u32 {
        let n = match &self.stay_nights {
            StayNights::Uniform { min, max } => *min + rng.below(u64::from(max - min + 1)) as u32,
            StayNights::Weighted(pairs) => {
                let total: u64 = pairs.iter().map(|(_, w)| u64::from(*w)).sum();
                let mut r = rng.below(total);
                let mut pick = pairs.first().map(|(n, _)| *n).unwrap_or(1);
                for (n, w) in pairs {
                    if r < u64::from(*w) {
                        pick = *n;
                        break;
                    }
                    r -= u64::from(*w);
                }
                pick
            }
        };
        n.clamp(1, self.horizon_days)
    }

    /// The next stay: a hotel uniformly; with probability `hot_share` the hot spot (a
    /// stay covering one of the hot nights, or the first room type), otherwise a uniform
    /// type and a uniform arrival within the horizon.
    pub fn stay(&self, rng: &mut Rng) -> StayChoice {
        let hotel = rng.below(self.hotels.len() as u64) as usize;
        let info = &self.hotels[hotel];
        let nights = self.nights(rng);
        let last_arrival = self.horizon_days - nights;
        let hot = self.hot_share > 0.0 && rng.unit() < self.hot_share;
        let types = info.types.len().max(1) as u64;
        let (room_type, offset) = if hot && self.hot_room_type {
            (0, rng.below(u64::from(last_arrival) + 1) as u32)
        } else if hot {
            let h = self.hot_offsets[rng.below(self.hot_offsets.len() as u64) as usize];
            // Arrive up to nights-1 days before the hot night, so the stay covers it.
            let back = rng.below(u64::from(nights)) as u32;
            let offset = h.saturating_sub(back).min(last_arrival);
            (rng.below(types) as usize, offset)
        } else {
            (
                rng.below(types) as usize,
                rng.below(u64::from(last_arrival) + 1) as u32,
            )
        };
        let capacity = info
            .types
            .get(room_type)
            .map(|t| t.capacity)
            .unwrap_or(1)
            .clamp(1, 2);
        let guests = 1 + rng.below(u64::from(capacity)) as u16;
        let arrival = plus_days(info.first_night, offset).unwrap_or(info.first_night);
        let departure = plus_days(arrival, nights).unwrap_or(arrival);
        StayChoice {
            hotel,
            room_type,
            arrival,
            departure,
            guests,
            hot,
        }
    }
}

/// `date + days`, `None` past the calendar's end.
pub fn plus_days(date: Date, days: u32) -> Option<Date> {
    date.checked_add(i64::from(days).days()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hotels(types: usize) -> Vec<HotelInfo> {
        vec![HotelInfo {
            id: "LOAD-0".to_owned(),
            time_zone: "UTC".to_owned(),
            first_night: jiff::civil::date(2030, 1, 1),
            types: (0..types)
                .map(|i| TypeInfo {
                    code: format!("T{i}"),
                    capacity: 2,
                    rooms: 10,
                })
                .collect(),
        }]
    }

    fn draw(w: &Workload, seed: u64, n: usize) -> Vec<StayChoice> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| w.stay(&mut rng)).collect()
    }

    #[test]
    fn same_seed_same_requests() {
        let opts = LoadOptions {
            hot_share: 0.5,
            ..LoadOptions::default()
        };
        let w = Workload::new(hotels(3), &opts);
        assert_eq!(draw(&w, 7, 500), draw(&w, 7, 500));
        assert_ne!(draw(&w, 7, 500), draw(&w, 8, 500));
        let again = Workload::new(hotels(3), &opts);
        assert_eq!(w.hot_dates(0), again.hot_dates(0));
        assert_eq!(w.hot_dates(0).len(), 3);
    }

    #[test]
    fn stays_stay_inside_the_horizon() {
        let opts = LoadOptions {
            horizon_days: 10,
            stay_nights: "1:1,4:1,10:1".parse().unwrap(),
            hot_share: 0.7,
            hot_dates: 2,
            ..LoadOptions::default()
        };
        let w = Workload::new(hotels(2), &opts);
        let first = jiff::civil::date(2030, 1, 1);
        let end = plus_days(first, 10).unwrap();
        for s in draw(&w, 3, 2000) {
            assert!(s.arrival >= first && s.departure <= end && s.arrival < s.departure);
            let nights = (s.departure - s.arrival).get_days();
            assert!([1, 4, 10].contains(&nights), "{nights}");
            assert!((1..=2).contains(&s.guests));
        }
    }

    #[test]
    fn hot_dates_get_their_share() {
        let opts = LoadOptions {
            horizon_days: 60,
            stay_nights: "1".parse().unwrap(),
            hot_share: 0.5,
            hot_dates: 3,
            ..LoadOptions::default()
        };
        let w = Workload::new(hotels(2), &opts);
        let hot = w.hot_dates(0);
        let stays = draw(&w, 11, 20_000);
        let on_hot = stays.iter().filter(|s| hot.contains(&s.arrival)).count();
        // 50 % aimed at 3 nights, plus the uniform half's 3/60 of the rest.
        let share = on_hot as f64 / stays.len() as f64;
        assert!((0.50..0.56).contains(&share), "hot share {share}");
        let flagged = stays.iter().filter(|s| s.hot).count() as f64 / stays.len() as f64;
        assert!((0.48..0.52).contains(&flagged), "flagged {flagged}");
        // Every hot draw covers a hot night, also for longer stays.
        let long = LoadOptions {
            stay_nights: "1-5".parse().unwrap(),
            ..opts
        };
        let w = Workload::new(hotels(2), &long);
        for s in draw(&w, 12, 5000).iter().filter(|s| s.hot) {
            assert!(
                hot.iter().any(|d| s.arrival <= *d && *d < s.departure),
                "{s:?} misses {hot:?}"
            );
        }
    }

    #[test]
    fn hot_room_type_gets_its_share() {
        let opts = LoadOptions {
            hot_share: 0.6,
            hot_room_type: true,
            ..LoadOptions::default()
        };
        let w = Workload::new(hotels(4), &opts);
        assert!(w.hot_dates(0).is_empty());
        let stays = draw(&w, 5, 20_000);
        let t0 = stays.iter().filter(|s| s.room_type == 0).count() as f64 / stays.len() as f64;
        // 60 % to T0, plus a quarter of the other 40 %.
        assert!((0.68..0.72).contains(&t0), "T0 share {t0}");
    }

    #[test]
    fn no_skew_is_uniform() {
        let w = Workload::new(hotels(2), &LoadOptions::default());
        let stays = draw(&w, 9, 20_000);
        assert!(stays.iter().all(|s| !s.hot));
        let t0 = stays.iter().filter(|s| s.room_type == 0).count() as f64 / stays.len() as f64;
        assert!((0.48..0.52).contains(&t0), "T0 share {t0}");
    }

    #[test]
    fn ops_follow_the_mix() {
        let opts = LoadOptions {
            mix: "availability=1,book=3".parse().unwrap(),
            ..LoadOptions::default()
        };
        let w = Workload::new(hotels(1), &opts);
        let mut rng = Rng::new(1);
        let ops: Vec<Op> = (0..10_000).map(|_| w.op(&mut rng)).collect();
        let book = ops.iter().filter(|o| **o == Op::Book).count() as f64 / 10_000.0;
        assert!((0.73..0.77).contains(&book), "book share {book}");
        assert!(!ops.contains(&Op::Pay) && !ops.contains(&Op::Cancel));
    }
}
