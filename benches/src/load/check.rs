//! The invariant check after a run, through the API only: every reservation the
//! generator saw acknowledged is read back, no room-night is held by two live
//! reservations, each status is what was last acknowledged, and (for hotels this run
//! created) availability equals rooms minus live reservations on every touched night.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use innkeep_http::wire::{AvailabilityView, ReservationStatus, ReservationView};
use jiff::civil::Date;
use jiff::Timestamp;
use tokio::task::JoinSet;

use super::client::{retrying, Conn, Reply};
use super::stats::CheckReport;
use super::worker::{LostBooking, Owned};
use super::workload::{plus_days, HotelInfo};

/// Most problems listed one by one; the rest are counted.
const MAX_PROBLEMS: usize = 100;

/// Statuses that hold room-nights.
fn is_live(s: ReservationStatus) -> bool {
    matches!(
        s,
        ReservationStatus::PendingPayment
            | ReservationStatus::Confirmed
            | ReservationStatus::CheckedIn
    )
}

fn status_name(s: ReservationStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{s:?}"))
}

/// Whether `actual` is a status the server may report for `o`: the last acknowledged
/// one, a change whose answer was lost, or `expired` for a hold that had lapsed (before
/// now, or before its payment arrived — a late payment is refunded, not applied).
pub(crate) fn status_allowed(o: &Owned, actual: ReservationStatus, now: Timestamp) -> bool {
    if actual == o.acked || Some(actual) == o.unsure {
        return true;
    }
    if actual != ReservationStatus::Expired {
        return false;
    }
    match o.acked {
        ReservationStatus::PendingPayment => o.hold_expires_at <= now,
        ReservationStatus::Confirmed => o.paid_at.is_some_and(|p| o.hold_expires_at <= p),
        _ => false,
    }
}

/// Collects problems, keeping the first [`MAX_PROBLEMS`].
#[derive(Default)]
struct Problems {
    list: Vec<String>,
    more: usize,
}

impl Problems {
    fn push(&mut self, p: String) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(p);
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn into_vec(mut self) -> Vec<String> {
        if self.more > 0 {
            self.list.push(format!("… and {} more problems", self.more));
        }
        self.list
    }
}

/// A request of the check.
#[derive(Debug, Clone)]
enum Req {
    /// `GET path`.
    Get(String),
    /// A booking replayed with its `Idempotency-Key`: `(path, body, key)`.
    Replay(String, String, String),
}

/// Sends every request, spread over the connections (each retried while the server
/// turns it away); answers come back in order.
async fn send_all(conns: &[Conn], reqs: Vec<Req>) -> Vec<Result<Reply, String>> {
    if reqs.is_empty() {
        return Vec::new();
    }
    let total = reqs.len();
    let n = conns.len().max(1);
    let chunk = total.div_ceil(n).max(1);
    let mut set = JoinSet::new();
    for (i, part) in reqs.chunks(chunk).enumerate() {
        let conn = conns[i % n].clone();
        let part = part.to_vec();
        set.spawn(async move {
            let mut out = Vec::with_capacity(part.len());
            for req in part {
                out.push(match &req {
                    Req::Get(path) => retrying(|| conn.get(path)).await,
                    Req::Replay(path, body, key) => {
                        let headers = [("idempotency-key", key.as_str())];
                        retrying(|| conn.post(path, body.clone(), &headers)).await
                    }
                });
            }
            (i, out)
        });
    }
    let mut parts: Vec<(usize, Vec<Result<Reply, String>>)> = Vec::new();
    while let Some(done) = set.join_next().await {
        if let Ok(part) = done {
            parts.push(part);
        }
    }
    parts.sort_by_key(|(i, _)| *i);
    let mut out: Vec<Result<Reply, String>> = parts.into_iter().flat_map(|(_, v)| v).collect();
    // A task that panicked leaves a gap; report its requests as failed, not missing.
    out.resize_with(total, || Err("check task failed".to_owned()));
    out
}

/// GETs every path; answers come back in order.
async fn get_all(conns: &[Conn], paths: Vec<String>) -> Vec<Result<Reply, String>> {
    send_all(conns, paths.into_iter().map(Req::Get).collect()).await
}

/// Reads back reservations; `None` where the read failed (the problem is recorded).
async fn read_back(
    conns: &[Conn],
    owned: &[Owned],
    problems: &mut Problems,
) -> Vec<Option<ReservationView>> {
    let paths = owned
        .iter()
        .map(|o| format!("/v1/reservations/{}", o.id))
        .collect();
    let replies = get_all(conns, paths).await;
    owned
        .iter()
        .zip(replies)
        .map(|(o, reply)| match reply {
            Ok(r) if r.status == 200 => match r.json::<ReservationView>() {
                Ok(v) => Some(v),
                Err(e) => {
                    problems.push(format!("GET /v1/reservations/{}: {e}", o.id));
                    None
                }
            },
            Ok(r) => {
                problems.push(format!(
                    "GET /v1/reservations/{} → {} (the booking was acknowledged)",
                    o.id,
                    r.key()
                ));
                None
            }
            Err(e) => {
                problems.push(format!("GET /v1/reservations/{} → {e}", o.id));
                None
            }
        })
        .collect()
}

/// The nights `[arrival, departure)`.
fn nights(arrival: Date, departure: Date) -> Vec<Date> {
    let days = (departure - arrival).get_days().max(0) as u32;
    (0..days).filter_map(|d| plus_days(arrival, d)).collect()
}

/// Every (hotel, room, night) held by more than one live reservation, one line each.
fn double_sold<'a>(views: impl Iterator<Item = &'a ReservationView>) -> Vec<String> {
    let mut out = Vec::new();
    let mut holders: HashMap<(String, String, Date), String> = HashMap::new();
    for v in views.filter(|v| is_live(v.status)) {
        let (Ok(a), Ok(d)) = (v.arrival.parse::<Date>(), v.departure.parse::<Date>()) else {
            out.push(format!("reservation {}: unreadable stay", v.id));
            continue;
        };
        for night in nights(a, d) {
            let slot = (v.hotel_id.clone(), v.room.clone(), night);
            if let Some(other) = holders.get(&slot) {
                out.push(format!(
                    "DOUBLE-SOLD: {} room {} night {night} held by live reservations {other} and {}",
                    v.hotel_id, v.room, v.id
                ));
            } else {
                holders.insert(slot, v.id.clone());
            }
        }
    }
    out
}

/// Live reservations per (hotel, room type, night), from read-back views.
fn live_counts(views: &[Option<ReservationView>]) -> HashMap<(String, String, Date), usize> {
    let mut counts = HashMap::new();
    for v in views.iter().flatten() {
        if !is_live(v.status) {
            continue;
        }
        let (Ok(a), Ok(d)) = (v.arrival.parse::<Date>(), v.departure.parse::<Date>()) else {
            continue;
        };
        for night in nights(a, d) {
            *counts
                .entry((v.hotel_id.clone(), v.room_type.clone(), night))
                .or_default() += 1;
        }
    }
    counts
}

/// Compares availability with rooms − live reservations on each (hotel, night); returns
/// the mismatches as (hotel, night, message).
async fn count_mismatches(
    conns: &[Conn],
    hotels: &[HotelInfo],
    nights_to_check: &[(usize, Date)],
    live: &HashMap<(String, String, Date), usize>,
    notes: &mut Vec<String>,
) -> Vec<(usize, Date, String)> {
    let paths = nights_to_check
        .iter()
        .map(|(h, night)| {
            let next = plus_days(*night, 1).unwrap_or(*night);
            format!(
                "/v1/hotels/{}/availability?arrival={night}&departure={next}&guests=1",
                hotels[*h].id
            )
        })
        .collect();
    let replies = get_all(conns, paths).await;
    let mut out = Vec::new();
    for ((h, night), reply) in nights_to_check.iter().zip(replies) {
        let hotel = &hotels[*h];
        let view = match reply {
            Ok(r) if r.status == 200 => r.json::<AvailabilityView>(),
            Ok(r) => Err(r.key()),
            Err(e) => Err(e),
        };
        let view = match view {
            Ok(v) => v,
            Err(e) => {
                notes.push(format!(
                    "availability of {} on {night} not readable ({e}); night not counted",
                    hotel.id
                ));
                continue;
            }
        };
        for t in &hotel.types {
            let held = live
                .get(&(hotel.id.clone(), t.code.clone(), *night))
                .copied()
                .unwrap_or(0);
            let expected = t.rooms as i64 - held as i64;
            let available = view
                .room_types
                .iter()
                .find(|a| a.room_type == t.code)
                .map(|a| a.available as i64)
                .unwrap_or(0);
            if available != expected {
                out.push((
                    *h,
                    *night,
                    format!(
                        "{} {} on {night}: availability says {available} free, but {} rooms − {held} live reservations = {expected}",
                        hotel.id, t.code, t.rooms
                    ),
                ));
            }
        }
    }
    out
}

/// Replays lost bookings by their `Idempotency-Key`: the same answer comes back if the
/// first attempt created the reservation (or it is created now). Returns the
/// reservations learnt and the hotels where some booking stayed unresolved.
async fn resolve_lost(
    conns: &[Conn],
    lost: &[LostBooking],
    notes: &mut Vec<String>,
) -> (Vec<Owned>, BTreeSet<String>, usize) {
    let mut found = Vec::new();
    let mut unresolved = BTreeSet::new();
    let mut resolved = 0;
    let reqs = lost
        .iter()
        .map(|l| {
            Req::Replay(
                format!("/v1/hotels/{}/reservations", l.hotel_id),
                l.body.clone(),
                l.key.clone(),
            )
        })
        .collect();
    let replies = send_all(conns, reqs).await;
    for (l, reply) in lost.iter().zip(replies) {
        match reply {
            Ok(r) if r.status == 201 => match r
                .json::<ReservationView>()
                .and_then(|v| Owned::from_view(&v))
            {
                Ok(o) => {
                    found.push(o);
                    resolved += 1;
                }
                Err(e) => {
                    notes.push(format!("replay of booking {}: {e}", l.key));
                    unresolved.insert(l.hotel_id.clone());
                }
            },
            Ok(r) if r.is(409, "sold_out") => resolved += 1,
            Ok(r) => {
                notes.push(format!("replay of booking {} → {}", l.key, r.key()));
                unresolved.insert(l.hotel_id.clone());
            }
            Err(e) => {
                notes.push(format!("replay of booking {} → {e}", l.key));
                unresolved.insert(l.hotel_id.clone());
            }
        }
    }
    (found, unresolved, resolved)
}

/// Runs the whole check. `fresh` is, per hotel, whether this run created it (`None`
/// without `--setup`): only those get the "counts consistent" comparison.
pub(crate) async fn check(
    conns: &[Conn],
    hotels: &[HotelInfo],
    fresh: Option<&[bool]>,
    mut owned: Vec<Owned>,
    lost: &[LostBooking],
) -> CheckReport {
    let mut problems = Problems::default();
    let mut notes = Vec::new();
    let (found, unresolved, uncertain_resolved) = resolve_lost(conns, lost, &mut notes).await;
    owned.extend(found);

    // 1. Read every reservation back; statuses and immutable fields.
    let views = read_back(conns, &owned, &mut problems).await;
    let now = Timestamp::now();
    for (o, v) in owned.iter().zip(&views) {
        let Some(v) = v else { continue };
        if !status_allowed(o, v.status, now) {
            let also = o
                .unsure
                .map(|u| format!(" or {}", status_name(u)))
                .unwrap_or_default();
            problems.push(format!(
                "reservation {}: status {} but the generator last saw {}{also} acknowledged (hold expires {})",
                o.id,
                status_name(v.status),
                status_name(o.acked),
                o.hold_expires_at
            ));
        }
        // Its room is the one it was booked in, or where other bookings moved it to make
        // room for themselves (the generator moves nothing itself): a chain of moves from
        // the booked room to the current one, and never a pinned reservation.
        let moved_here = v.moves.first().is_some_and(|m| m.from_room == o.room)
            && v.moves.last().is_some_and(|m| m.to_room == v.room)
            && v.moves.windows(2).all(|w| w[0].to_room == w[1].from_room)
            && !v.pinned;
        let same = v.hotel_id == o.hotel_id
            && v.room_type == o.room_type
            && (v.room == o.room || moved_here)
            && v.arrival == o.arrival.to_string()
            && v.departure == o.departure.to_string();
        if !same {
            problems.push(format!(
                "reservation {}: now {} {} room {} {}..{}, booked as {} {} room {} {}..{}",
                o.id,
                v.hotel_id,
                v.room_type,
                v.room,
                v.arrival,
                v.departure,
                o.hotel_id,
                o.room_type,
                o.room,
                o.arrival,
                o.departure
            ));
        }
    }

    // 2. No room-night held by two live reservations.
    for p in double_sold(views.iter().flatten()) {
        problems.push(p);
    }

    // 3. Counts consistent, for hotels this run created and knows every booking of.
    let mut nights_checked = 0;
    match fresh {
        None => notes.push(
            "counts not compared with availability: only with --setup (other clients' bookings are unknown)"
                .to_owned(),
        ),
        Some(fresh) => {
            let mut touched: BTreeMap<(usize, Date), ()> = BTreeMap::new();
            for (h, hotel) in hotels.iter().enumerate() {
                if !fresh.get(h).copied().unwrap_or(false) {
                    notes.push(format!(
                        "{} existed before --setup: its counts are not compared (use a fresh --hotel-prefix)",
                        hotel.id
                    ));
                    continue;
                }
                if unresolved.contains(&hotel.id) {
                    notes.push(format!(
                        "{}: a booking's outcome stayed unknown, so its counts are not compared",
                        hotel.id
                    ));
                    continue;
                }
                for o in owned.iter().filter(|o| o.hotel_id == hotel.id) {
                    for night in nights(o.arrival, o.departure) {
                        touched.insert((h, night), ());
                    }
                }
            }
            let touched: Vec<(usize, Date)> = touched.into_keys().collect();
            let live = live_counts(&views);
            let first = count_mismatches(conns, hotels, &touched, &live, &mut notes).await;
            if !first.is_empty() {
                // A hold may have lapsed between the read-back and the availability
                // query: read the affected reservations again and compare once more.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let again: BTreeSet<(usize, Date)> =
                    first.iter().map(|(h, d, _)| (*h, *d)).collect();
                let again: Vec<(usize, Date)> = again.into_iter().collect();
                let mut scratch = Problems::default();
                let views = read_back(conns, &owned, &mut scratch).await;
                let live = live_counts(&views);
                for (_, _, p) in count_mismatches(conns, hotels, &again, &live, &mut notes).await
                {
                    problems.push(p);
                }
            }
            nights_checked = touched.len();
        }
    }

    CheckReport {
        ok: problems.is_empty(),
        problems: problems.into_vec(),
        notes,
        reservations_checked: views.iter().flatten().count(),
        nights_checked,
        uncertain_resolved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(acked: ReservationStatus) -> Owned {
        Owned {
            id: "r".to_owned(),
            hotel_id: "H".to_owned(),
            room_type: "T0".to_owned(),
            room: "1".to_owned(),
            arrival: jiff::civil::date(2030, 1, 1),
            departure: jiff::civil::date(2030, 1, 2),
            out_trade_no: "ik".to_owned(),
            amount: 1,
            currency: "CNY".to_owned(),
            hold_expires_at: "2030-01-01T00:00:00Z".parse().unwrap(),
            acked,
            unsure: None,
            paid_at: None,
        }
    }

    fn view(id: &str, room: &str, arrival: &str, departure: &str, status: &str) -> ReservationView {
        serde_json::from_value(serde_json::json!({
            "id": id, "hotel_id": "H", "room_type": "T0", "room": room,
            "arrival": arrival, "departure": departure, "nights": 1, "guests": 1,
            "guest": {"name": "G", "phone": "+86 1380000", "email": "g@example.com"},
            "status": status, "hold_expires_at": "2030-01-01T00:00:00Z",
            "total": {"amount": 1, "currency": "CNY"}, "version": 1,
            "created_at": "2029-12-01T00:00:00Z",
            "payment": {"out_trade_no": "ik", "amount": {"amount": 1, "currency": "CNY"}, "status": "pending"},
            "history": [],
        }))
        .unwrap()
    }

    #[test]
    fn double_sales_are_found() {
        let views = [
            view("a", "1", "2030-01-01", "2030-01-04", "confirmed"),
            view("b", "1", "2030-01-03", "2030-01-05", "pending_payment"),
            view("c", "1", "2030-01-04", "2030-01-06", "cancelled"),
            view("d", "2", "2030-01-01", "2030-01-04", "confirmed"),
            view("e", "1", "2030-01-04", "2030-01-06", "checked_in"),
        ];
        let found = double_sold(views.iter());
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("night 2030-01-03") && found[0].contains("a and b"));
        assert!(found[1].contains("night 2030-01-04") && found[1].contains("b and e"));
        assert!(double_sold(views[2..4].iter()).is_empty());
        let live = live_counts(&views.iter().cloned().map(Some).collect::<Vec<_>>());
        let night = |d: &str| ("H".to_owned(), "T0".to_owned(), d.parse::<Date>().unwrap());
        assert_eq!(live[&night("2030-01-03")], 3);
        assert_eq!(live[&night("2030-01-04")], 2);
        assert_eq!(live[&night("2030-01-05")], 1);
        assert!(!live.contains_key(&night("2030-01-06")));
    }

    #[test]
    fn statuses_allowed() {
        use ReservationStatus::*;
        let before: Timestamp = "2029-12-31T23:00:00Z".parse().unwrap();
        let after: Timestamp = "2030-01-01T01:00:00Z".parse().unwrap();
        let p = owned(PendingPayment);
        assert!(status_allowed(&p, PendingPayment, before));
        assert!(!status_allowed(&p, Expired, before));
        assert!(status_allowed(&p, Expired, after));
        assert!(!status_allowed(&p, Confirmed, after));
        let mut c = owned(Confirmed);
        c.paid_at = Some(before);
        assert!(status_allowed(&c, Confirmed, after));
        assert!(!status_allowed(&c, Expired, after), "paid in time");
        c.paid_at = Some(after);
        assert!(
            status_allowed(&c, Expired, after),
            "paid too late: refunded"
        );
        let mut u = owned(PendingPayment);
        u.unsure = Some(Cancelled);
        assert!(status_allowed(&u, Cancelled, before));
        assert!(!status_allowed(&owned(Cancelled), PendingPayment, before));
    }
}
