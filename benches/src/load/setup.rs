//! Before the run: create the hotels (`--setup`) and learn what the target has.

use innkeep_http::wire::HotelView;
use serde_json::json;
use tokio::task::JoinSet;

use super::client::{retrying, Conn};
use super::options::LoadOptions;
use super::workload::{plus_days, HotelInfo, TypeInfo};
use super::LoadError;

/// Time zone of the hotels `--setup` creates.
pub const SETUP_TIME_ZONE: &str = "Asia/Shanghai";

/// Currency of the hotels `--setup` creates.
pub const SETUP_CURRENCY: &str = "CNY";

/// Code of the `i`-th room type `--setup` creates.
pub fn type_code(i: usize) -> String {
    format!("T{i}")
}

fn setup_error(what: &str, outcome: Result<super::client::Reply, String>) -> LoadError {
    match outcome {
        Ok(r) => LoadError::Setup(format!(
            "{what} → {}: {}",
            r.key(),
            String::from_utf8_lossy(&r.body)
        )),
        Err(e) => LoadError::Setup(format!("{what} → transport error ({e})")),
    }
}

/// Fails unless the target answers `GET /readyz` with 200.
pub(crate) async fn preflight(conn: &Conn, target: &str) -> Result<(), LoadError> {
    match retrying(|| conn.get("/readyz")).await {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(LoadError::Http(format!(
            "{target} is not ready: GET /readyz → {}",
            r.key()
        ))),
        Err(e) => Err(LoadError::Http(format!("cannot reach {target}: {e}"))),
    }
}

/// Creates (or updates) the hotels, their room types and rooms with `PUT`. Returns, per
/// hotel, whether this run created it (201): only then does it know every reservation
/// in it, which the "counts consistent" check needs.
pub(crate) async fn setup(opts: &LoadOptions, conns: &[Conn]) -> Result<Vec<bool>, LoadError> {
    let conn = &conns[0];
    let mut fresh = Vec::with_capacity(opts.hotels);
    for id in opts.hotel_ids() {
        let what = format!("PUT /v1/hotels/{id}");
        let body = json!({
            "name": format!("Load test hotel {id}"),
            "time_zone": SETUP_TIME_ZONE,
            "currency": SETUP_CURRENCY,
        });
        let path = format!("/v1/hotels/{id}");
        match retrying(|| conn.put_json(&path, &body)).await {
            Ok(r) if r.status == 201 => fresh.push(true),
            Ok(r) if r.status == 200 => fresh.push(false),
            other => return Err(setup_error(&what, other)),
        }
        for t in 0..opts.room_types {
            let code = type_code(t);
            let what = format!("PUT /v1/hotels/{id}/room-types/{code}");
            let body = json!({
                "name": format!("Load type {t}"),
                "capacity": 2,
                "base_rate": 10_000 + 5_000 * t as i64,
            });
            let path = format!("/v1/hotels/{id}/room-types/{code}");
            match retrying(|| conn.put_json(&path, &body)).await {
                Ok(r) if r.status == 200 || r.status == 201 => {}
                other => return Err(setup_error(&what, other)),
            }
        }
    }
    // Rooms, spread over the connections: a big hotel is thousands of PUTs.
    let rooms: Vec<(String, usize)> = opts
        .hotel_ids()
        .into_iter()
        .flat_map(|id| (1..=opts.rooms_per_hotel).map(move |n| (id.clone(), n)))
        .collect();
    let chunk = rooms.len().div_ceil(conns.len()).max(1);
    let mut set = JoinSet::new();
    for (i, part) in rooms.chunks(chunk).enumerate() {
        let conn = conns[i % conns.len()].clone();
        let part = part.to_vec();
        let types = opts.room_types;
        set.spawn(async move {
            for (id, n) in part {
                let code = type_code((n - 1) % types);
                let path = format!("/v1/hotels/{id}/rooms/{n}");
                let body = json!({ "room_type": code });
                match retrying(|| conn.put_json(&path, &body)).await {
                    Ok(r) if r.status == 200 || r.status == 201 => {}
                    other => {
                        let mut e = setup_error(&format!("PUT {path}"), other);
                        if let LoadError::Setup(m) = &mut e {
                            m.push_str(
                                " (a hotel from an earlier run? try another --hotel-prefix)",
                            );
                        }
                        return Err(e);
                    }
                }
            }
            Ok(())
        });
    }
    while let Some(done) = set.join_next().await {
        done.map_err(|e| LoadError::Setup(format!("setup task failed: {e}")))??;
    }
    Ok(fresh)
}

/// The hotel-local today in `time_zone`.
pub(crate) fn today_in(time_zone: &str) -> Result<jiff::civil::Date, LoadError> {
    let tz = jiff::tz::TimeZone::get(time_zone)
        .map_err(|e| LoadError::Http(format!("unknown time zone {time_zone:?}: {e}")))?;
    Ok(jiff::Timestamp::now().to_zoned(tz).date())
}

/// Reads each hotel with `GET /v1/hotels/{id}`: its time zone and the room types that
/// have rooms. Fails if a hotel is missing or has no rooms.
pub(crate) async fn discover(opts: &LoadOptions, conn: &Conn) -> Result<Vec<HotelInfo>, LoadError> {
    let mut hotels = Vec::with_capacity(opts.hotels);
    for id in opts.hotel_ids() {
        let path = format!("/v1/hotels/{id}");
        let view: HotelView = match retrying(|| conn.get(&path)).await {
            Ok(r) if r.status == 200 => r.json().map_err(|e| {
                LoadError::Http(format!("GET /v1/hotels/{id}: {e}"))
            })?,
            Ok(r) if r.status == 404 => {
                return Err(LoadError::Setup(format!(
                    "hotel {id} does not exist on {}: run with --setup (or pick --hotel-prefix/--hotels of existing hotels)",
                    opts.target
                )))
            }
            other => return Err(setup_error(&format!("GET /v1/hotels/{id}"), other)),
        };
        let types: Vec<TypeInfo> = view
            .room_types
            .iter()
            .filter(|t| t.rooms > 0 && t.capacity > 0)
            .map(|t| TypeInfo {
                code: t.code.clone(),
                capacity: t.capacity,
                rooms: t.rooms,
            })
            .collect();
        if types.is_empty() {
            return Err(LoadError::Setup(format!(
                "hotel {id} has no room type with rooms: nothing to book"
            )));
        }
        let today = today_in(&view.time_zone)?;
        hotels.push(HotelInfo {
            id: view.hotel_id,
            first_night: plus_days(today, 1).unwrap_or(today),
            time_zone: view.time_zone,
            types,
        });
    }
    Ok(hotels)
}
