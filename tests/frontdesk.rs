//! Front desk through the real server: the night audit configured by `night_audit_time`,
//! and room moves that stay whole across `kill -9`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{booking, client, hotel, pay, plus, send, today, try_send, Rng, Server};

/// The night audit runs inside the server at the configured hotel-local time. The test
/// cannot wait for tomorrow, so the hotel moves its clock instead: it books in
/// Pacific/Niue (UTC−11) and then corrects its time zone to Pacific/Kiritimati (UTC+14),
/// where it is already at least the day after arrival; with `night_audit_time = 00:00` the
/// confirmed guest who never came is a no-show at the next tick, the checked-in one is
/// not, and both survive a restart.
#[tokio::test(flavor = "multi_thread")]
async fn night_audit_marks_no_shows_in_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("INNKEEP_NIGHT_AUDIT_TIME", "00:00")];
    let s = Server::start(dir.path(), &env);
    let c = client();
    hotel(&c, &s, "AUDIT", "Pacific/Niue", 2).await;
    let arrival = today("Pacific/Niue");
    let mut ids = Vec::new();
    for room in ["1", "2"] {
        let mut body = booking(arrival, plus(arrival, 2));
        body["room"] = json!(room);
        let (status, r, _) = send(c.post(s.url("/v1/hotels/AUDIT/reservations")).json(&body)).await;
        assert_eq!(status, 201, "{r}");
        pay(&c, &s, &r).await;
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    let (status, r, _) =
        send(c.post(s.url(&format!("/v1/reservations/{}/check-in", ids[1])))).await;
    assert_eq!(status, 200, "{r}");

    let (status, r, _) = send(c.put(s.url("/v1/hotels/AUDIT")).json(&json!({
        "name": "Hotel AUDIT", "time_zone": "Pacific/Kiritimati", "currency": "CNY"
    })))
    .await;
    assert_eq!(status, 200, "{r}");
    let status_of = |id: String| {
        let c = c.clone();
        let url = s.url(&format!("/v1/reservations/{id}"));
        async move { send(c.get(url)).await.1["status"].clone() }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while status_of(ids[0].clone()).await != "no_show" {
        assert!(
            std::time::Instant::now() < deadline,
            "no no-show within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status_of(ids[1].clone()).await, "checked_in");

    assert!(s.terminate().success());
    let s = Server::start(dir.path(), &env);
    let (_, r, _) = send(c.get(s.url(&format!("/v1/reservations/{}", ids[0])))).await;
    assert_eq!(r["status"], "no_show");
    assert_eq!(
        r["history"].as_array().unwrap().last().unwrap()["to"],
        "no_show"
    );
    let (_, r, _) = send(c.get(s.url(&format!("/v1/reservations/{}", ids[1])))).await;
    assert_eq!(r["status"], "checked_in");
}

const MOVE_ROOMS: usize = 6;
const MOVERS: usize = 4;
const MOVE_CYCLES: usize = 6;

/// What one mover knows of its reservation: the room of its last acknowledged move, and
/// the room a move still unanswered was heading for.
#[derive(Clone, Debug)]
struct Mover {
    id: String,
    acked_room: String,
    in_flight_to: Option<String>,
}

/// Four confirmed reservations for the same nights in a six-room hotel, each moved around
/// by its own client while the server is killed at a random instant, six times. After each
/// restart every reservation is wholly in one room — the room of its last acknowledged
/// move, or the one an unanswered move was heading for — no two share a room, the
/// availability shows exactly two free rooms, and every room's calendar agrees.
#[tokio::test(flavor = "multi_thread")]
async fn room_moves_stay_whole_across_kill_dash_nine() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("INNKEEP_SNAPSHOT_EVERY_EVENTS", "25")];
    let c = client();
    let mut s = Server::start(dir.path(), &env);
    hotel(&c, &s, "MOVES", "Asia/Shanghai", MOVE_ROOMS).await;
    let arrival = plus(today("Asia/Shanghai"), 3);
    let departure = plus(arrival, 2);
    let mut movers = Vec::new();
    for n in 1..=MOVERS {
        let mut body = booking(arrival, departure);
        body["room"] = json!(n.to_string());
        let (status, r, _) = send(c.post(s.url("/v1/hotels/MOVES/reservations")).json(&body)).await;
        assert_eq!(status, 201, "{r}");
        pay(&c, &s, &r).await;
        movers.push(Mover {
            id: r["id"].as_str().unwrap().to_owned(),
            acked_room: n.to_string(),
            in_flight_to: None,
        });
    }
    let seed = std::env::var("INNKEEP_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| innkeep_engine::jiff::Timestamp::now().as_nanosecond() as u64 | 1);
    eprintln!("room move crash test seed {seed}");
    let mut rng = Rng(seed);
    let mut acked_total = 0usize;
    for cycle in 0..MOVE_CYCLES {
        let ledger = Arc::new(Mutex::new(movers.clone()));
        let mut tasks = Vec::new();
        for i in 0..MOVERS {
            let (c, ledger) = (c.clone(), ledger.clone());
            let base = s.url("");
            let mut rng = Rng(seed ^ (((cycle * MOVERS + i) as u64 + 1) * 0x9E37_79B9));
            tasks.push(tokio::spawn(async move {
                let mut acked = 0;
                loop {
                    let to = (1 + rng.below(MOVE_ROOMS as u64)).to_string();
                    let id = {
                        let mut l = ledger.lock().unwrap();
                        l[i].in_flight_to = Some(to.clone());
                        l[i].id.clone()
                    };
                    let req = c
                        .post(format!("{base}/v1/reservations/{id}/move"))
                        .json(&json!({"room": to}));
                    match try_send(req).await {
                        Ok((200, body, _)) => {
                            assert_eq!(body["room"], to.as_str());
                            let mut l = ledger.lock().unwrap();
                            l[i].acked_room = to;
                            l[i].in_flight_to = None;
                            acked += 1;
                        }
                        Ok((409, body, _)) => {
                            assert!(
                                matches!(
                                    body["code"].as_str(),
                                    Some("nights_sold" | "move_in_progress")
                                ),
                                "{body}"
                            );
                            ledger.lock().unwrap()[i].in_flight_to = None;
                        }
                        // Killed: the move may or may not have happened.
                        Err(_) => return acked,
                        Ok((503, _, _)) => return acked,
                        Ok(other) => panic!("move answered {other:?}"),
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(50 + rng.below(250))).await;
        s.kill();
        for t in tasks {
            acked_total += t.await.unwrap();
        }
        s = Server::start(dir.path(), &env);
        let known = ledger.lock().unwrap().clone();
        let mut rooms_taken = BTreeSet::new();
        for m in &known {
            let (status, r, _) = send(c.get(s.url(&format!("/v1/reservations/{}", m.id)))).await;
            assert_eq!(status, 200);
            let room = r["room"].as_str().unwrap().to_owned();
            let allowed: Vec<&str> = std::iter::once(m.acked_room.as_str())
                .chain(m.in_flight_to.as_deref())
                .collect();
            assert!(
                allowed.contains(&room.as_str()),
                "cycle {cycle}: {} is in room {room}, expected one of {allowed:?}",
                m.id
            );
            assert_eq!(r["status"], "confirmed");
            assert!(
                rooms_taken.insert(room.clone()),
                "room {room} holds two stays"
            );
        }
        let (_, avail, _) = send(c.get(s.url(&format!(
            "/v1/hotels/MOVES/availability?arrival={arrival}&departure={departure}&guests=1"
        ))))
        .await;
        assert_eq!(
            avail["room_types"][0]["available"],
            MOVE_ROOMS - MOVERS,
            "cycle {cycle}: {avail}"
        );
        // Each free room really is bookable for those nights, and each taken one is not.
        let per_room: BTreeMap<String, bool> = (1..=MOVE_ROOMS)
            .map(|n| (n.to_string(), rooms_taken.contains(&n.to_string())))
            .collect();
        for (room, taken) in per_room {
            let mut probe = booking(arrival, plus(arrival, 1));
            probe["room"] = json!(room);
            probe["guest"]["name"] = json!("Probe");
            let (status, r, _) =
                send(c.post(s.url("/v1/hotels/MOVES/reservations")).json(&probe)).await;
            if taken {
                assert_eq!(status, 409, "room {room}: {r}");
            } else {
                assert_eq!(status, 201, "room {room}: {r}");
                let (status, _, _) = send(c.post(s.url(&format!(
                    "/v1/reservations/{}/cancel",
                    r["id"].as_str().unwrap()
                ))))
                .await;
                assert_eq!(status, 200);
            }
        }
        // Where each one is now is where the next cycle starts from.
        movers = known;
        for m in &mut movers {
            m.acked_room = room_now(&c, &s, &m.id).await;
            m.in_flight_to = None;
        }
    }
    eprintln!("room moves acknowledged over {MOVE_CYCLES} kills: {acked_total}");
    assert!(acked_total > 0, "no move was acknowledged");
}

async fn room_now(c: &reqwest::Client, s: &Server, id: &str) -> String {
    let (_, r, _): (u16, Value, _) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
    r["room"].as_str().unwrap().to_owned()
}
