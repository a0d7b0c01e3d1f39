//! The room board in a real headless Chromium: the page loads the rooms and the front
//! desk's day, follows the event stream while the desk books, checks in and out and
//! housekeeping works, reconnects after a server restart, asks for an API key when keys
//! are configured, and parses Server-Sent Events by the spec.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{booking, client, hotel, pay, plus, send, today, Server};
use crate::webdriver::{free_port, Browser};

const TZ: &str = "Asia/Shanghai";

/// How long the board gets to show a change (it refreshes ~150 ms after an event).
const SEEN_WITHIN: Duration = Duration::from_secs(20);

/// One browser test at a time: two Chromiums on a 2-core machine shared with the other
/// end-to-end tests make everything slow enough to miss deadlines.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the board shows: its state, each room cell, and the ids and statuses on each list.
const READ_BOARD: &str = r#"
const list = (id) => [...document.querySelectorAll('#' + id + ' [data-reservation-id]')]
  .map((li) => ({id: li.dataset.reservationId, status: li.dataset.status,
    plan: li.dataset.ratePlan || null}));
const rooms = {};
for (const c of document.querySelectorAll('#rooms [data-room]')) {
  rooms[c.dataset.room] = {occupancy: c.dataset.occupancy, housekeeping: c.dataset.housekeeping,
    reservation: c.dataset.reservationId || null, blocked: c.dataset.blocked === 'true'};
}
return {state: document.body.dataset.state, date: document.body.dataset.date || null, rooms,
  arrivals: list('arrivals'), departures: list('departures'), in_house: list('in-house')};
"#;

/// Waits until the board, read with [`READ_BOARD`], satisfies `ok`; returns it.
async fn board_until(b: &Browser, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + SEEN_WITHIN;
    loop {
        let board = b.execute(READ_BOARD, json!([])).await;
        if ok(&board) {
            return board;
        }
        if std::time::Instant::now() >= deadline {
            panic!(
                "board: {what} not seen within {SEEN_WITHIN:?}; it shows {board:#}\n{}",
                b.diagnostics().await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn room<'a>(board: &'a Value, number: &str) -> &'a Value {
    &board["rooms"][number]
}

/// Whether `list` of the board holds reservation `id` with `status`.
fn listed(board: &Value, list: &str, id: &str, status: &str) -> bool {
    board[list]
        .as_array()
        .is_some_and(|l| l.iter().any(|e| e["id"] == id && e["status"] == status))
}

fn absent(board: &Value, list: &str, id: &str) -> bool {
    board[list]
        .as_array()
        .is_some_and(|l| l.iter().all(|e| e["id"] != id))
}

/// The front desk works a stay through the API; the board follows every step live, and
/// comes back by itself after the server restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_follows_the_front_desk_live() {
    let _one = ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // A fixed port, so the page's origin still reaches the server after a restart.
    let listen = format!("127.0.0.1:{}", free_port());
    let s = Server::start(dir.path(), &[("INNKEEP_LISTEN", &listen)]);
    let c = client();
    hotel(&c, &s, "BRD", TZ, 4).await;

    let b = Browser::start().await;
    b.goto(&s.url("/board/BRD")).await;
    let board = board_until(&b, "four rooms and a live stream", |v| {
        v["state"] == "live" && v["rooms"].as_object().is_some_and(|r| r.len() == 4)
    })
    .await;
    let today = today(TZ);
    assert_eq!(board["date"], today.to_string(), "hotel-local today");
    for n in ["1", "2", "3", "4"] {
        assert_eq!(
            room(&board, n),
            &json!({"occupancy": "vacant", "housekeeping": "clean", "reservation": null,
                    "blocked": false}),
            "room {n}"
        );
    }
    assert_eq!(board["arrivals"], json!([]));

    // Booked for tonight in room 3 under a rate plan: an arrival, still unpaid, showing
    // its plan.
    let plan = json!({"name": "Flexible", "room_types": ["STD"], "adjust_percent": 0,
        "cancellation": {"free_until_hours": 24, "fee": {"nights": 1}},
        "no_show_fee": {"nights": 1}});
    let (status, p, _) = send(c.put(s.url("/v1/hotels/BRD/rate-plans/FLEX")).json(&plan)).await;
    assert_eq!(status, 201, "{p}");
    let mut body = booking(today, plus(today, 1));
    body["room"] = json!("3");
    body["rate_plan"] = json!("FLEX");
    let (status, r, _) = send(c.post(s.url("/v1/hotels/BRD/reservations")).json(&body)).await;
    assert_eq!(status, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    let board = board_until(&b, "the booking among today's arrivals", |v| {
        listed(v, "arrivals", &id, "pending_payment")
    })
    .await;
    assert_eq!(board["arrivals"][0]["plan"], "FLEX", "{board:#}");

    // Paid: confirmed.
    pay(&c, &s, &r).await;
    board_until(&b, "the arrival confirmed", |v| {
        listed(v, "arrivals", &id, "confirmed")
    })
    .await;

    // Checked in: room 3 occupied by it, in the house, still among today's arrivals.
    let (status, body, _) = send(c.post(s.url(&format!("/v1/reservations/{id}/check-in")))).await;
    assert_eq!(status, 200, "{body}");
    let board = board_until(&b, "room 3 occupied", |v| {
        room(v, "3")["occupancy"] == "occupied"
    })
    .await;
    assert_eq!(room(&board, "3")["reservation"], id.as_str());
    assert_eq!(room(&board, "3")["housekeeping"], "clean");
    assert!(listed(&board, "arrivals", &id, "checked_in"), "{board:#}");
    assert!(listed(&board, "in_house", &id, "checked_in"), "{board:#}");
    for n in ["1", "2", "4"] {
        assert_eq!(room(&board, n)["occupancy"], "vacant", "room {n}");
    }

    // Checked out: room 3 vacant and dirty, a departure today, nobody in the house.
    let (status, body, _) = send(c.post(s.url(&format!("/v1/reservations/{id}/check-out")))).await;
    assert_eq!(status, 200, "{body}");
    let board = board_until(&b, "room 3 vacant and dirty", |v| {
        room(v, "3")["occupancy"] == "vacant" && room(v, "3")["housekeeping"] == "dirty"
    })
    .await;
    assert_eq!(room(&board, "3")["reservation"], Value::Null);
    assert!(
        listed(&board, "departures", &id, "checked_out"),
        "{board:#}"
    );
    assert!(absent(&board, "in_house", &id), "{board:#}");
    assert!(absent(&board, "arrivals", &id), "{board:#}");

    // Housekeeping starts on it.
    let hk = s.url("/v1/hotels/BRD/rooms/3/housekeeping");
    let (status, body, _) = send(c.put(&hk).json(&json!({"status": "cleaning"}))).await;
    assert_eq!(status, 200, "{body}");
    board_until(&b, "room 3 being cleaned", |v| {
        room(v, "3")["housekeeping"] == "cleaning"
    })
    .await;
    // Room 4 taken off sale from today: the board marks it, and unmarks it when lifted.
    let ooo = s.url("/v1/hotels/BRD/rooms/4/out-of-order");
    let range =
        json!({"from": today.to_string(), "to": plus(today, 2).to_string(), "reason": "leak"});
    let (status, body, _) = send(c.post(&ooo).json(&range)).await;
    assert_eq!(status, 200, "{body}");
    board_until(&b, "room 4 out of order", |v| {
        room(v, "4")["blocked"] == true
    })
    .await;
    let (status, body, _) = send(c.delete(format!("{ooo}/{today}"))).await;
    assert_eq!(status, 200, "{body}");
    board_until(&b, "room 4 back in order", |v| {
        room(v, "4")["blocked"] == false
    })
    .await;
    let last_id = b
        .execute("return window.InnkeepBoard.lastEventId();", json!([]))
        .await;
    assert!(
        last_id.as_str().is_some_and(|id| id.parse::<u64>().is_ok()),
        "the board remembers the last event id: {last_id}"
    );

    // The server stops: the stream ends and the board tries to reconnect.
    let data_dir = s.data_dir.clone();
    assert!(s.terminate().success());
    board_until(&b, "the board reconnecting", |v| v["state"] == "connecting").await;
    // Back on the same address: live again, and changes after the restart show up.
    let s = Server::start(&data_dir, &[("INNKEEP_LISTEN", &listen)]);
    board_until(&b, "live again after the restart", |v| v["state"] == "live").await;
    let (status, body, _) = send(c.put(&hk).json(&json!({"status": "clean"}))).await;
    assert_eq!(status, 200, "{body}");
    board_until(&b, "room 3 clean after the restart", |v| {
        room(v, "3")["housekeeping"] == "clean"
    })
    .await;
    b.quit().await;
    drop(s);
}

/// With API keys configured the board asks for one: a wrong key is refused, a channel key
/// may not see the board, a front-desk key of the hotel works (sent as a Bearer header on
/// every call, the stream included) and stays for the tab's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_asks_for_an_api_key_when_keys_are_configured() {
    let _one = ONE_BROWSER.lock().await;
    const ADMIN: &str = "board-test-admin-key";
    const DESK: &str = "board-test-front-desk-key";
    const CHANNEL: &str = "board-test-channel-key";
    let hash = |k: &str| hex::encode(innkeep_http::auth::hash_key(k));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("innkeep.toml");
    std::fs::write(
        &config,
        format!(
            "[[api_keys]]\nkey_sha256 = \"{}\"\nrole = \"admin\"\nhotels = [\"*\"]\n\
             [[api_keys]]\nkey_sha256 = \"{}\"\nrole = \"front_desk\"\nhotels = [\"KEYD\"]\n\
             [[api_keys]]\nkey_sha256 = \"{}\"\nrole = \"channel\"\nhotels = [\"KEYD\"]\n",
            hash(ADMIN),
            hash(DESK),
            hash(CHANNEL)
        ),
    )
    .unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &[("INNKEEP_CONFIG", config.to_str().unwrap())],
    );
    let c = client();
    let put = |path: &str, body: Value| {
        let req = c.put(s.url(path)).bearer_auth(ADMIN).json(&body);
        async move {
            let (status, body, _) = send(req).await;
            assert!((200..300).contains(&status), "{status} {body}");
        }
    };
    put(
        "/v1/hotels/KEYD",
        json!({"name": "Keyed", "time_zone": TZ, "currency": "CNY"}),
    )
    .await;
    put(
        "/v1/hotels/KEYD/room-types/STD",
        json!({"name": "Standard", "capacity": 2, "base_rate": 10000}),
    )
    .await;
    for n in ["11", "12"] {
        put(
            &format!("/v1/hotels/KEYD/rooms/{n}"),
            json!({"room_type": "STD"}),
        )
        .await;
    }

    let b = Browser::start().await;
    b.goto(&s.url("/board/KEYD")).await;
    const FORM: &str = "const f = document.getElementById('key-form'); \
        const e = document.getElementById('key-error'); \
        return document.body.dataset.state === 'auth' && !f.hidden \
          && {error: e.hidden ? null : e.textContent, rooms: document.querySelectorAll('#rooms [data-room]').length};";
    let asked = b
        .wait_until("the key form", SEEN_WITHIN, FORM, json!([]))
        .await;
    assert_eq!(asked, json!({"error": null, "rooms": 0}));

    const ENTER: &str = "document.getElementById('api-key').value = arguments[0]; \
        document.getElementById('key-form').requestSubmit(); return true;";
    // A key the server does not know: asked again, saying why.
    b.execute(ENTER, json!(["not-a-key"])).await;
    let asked = b
        .wait_until(
            "the key form with an error",
            SEEN_WITHIN,
            &FORM.replace("return ", "return e.hidden === false && "),
            json!([]),
        )
        .await;
    assert!(
        asked["error"].as_str().unwrap().contains("refused"),
        "{asked}"
    );

    // A channel key: the hotel's, but not a role that may see the board.
    b.execute(ENTER, json!([CHANNEL])).await;
    let message = b
        .wait_until(
            "the board refusing a channel key",
            SEEN_WITHIN,
            "return document.body.dataset.state === 'error' \
               && document.getElementById('message').textContent;",
            json!([]),
        )
        .await;
    assert!(
        message.as_str().unwrap().contains("front_desk"),
        "{message}"
    );
    // "Forget key" brings the form back.
    b.execute(
        "document.getElementById('forget-key').click(); return true;",
        json!([]),
    )
    .await;
    b.wait_until("the key form again", SEEN_WITHIN, FORM, json!([]))
        .await;

    // The front desk's key works.
    b.execute(ENTER, json!([DESK])).await;
    board_until(&b, "both rooms and a live stream with the key", |v| {
        v["state"] == "live" && v["rooms"].as_object().is_some_and(|r| r.len() == 2)
    })
    .await;
    let kept = b
        .execute(
            "return sessionStorage.getItem('innkeep.board.key');",
            json!([]),
        )
        .await;
    assert_eq!(kept, DESK);
    // Live with the key: a change made now comes through the stream.
    let req = c
        .put(s.url("/v1/hotels/KEYD/rooms/12/housekeeping"))
        .bearer_auth(DESK)
        .json(&json!({"status": "dirty"}));
    let (status, body, _) = send(req).await;
    assert_eq!(status, 200, "{body}");
    board_until(&b, "room 12 dirty", |v| {
        room(v, "12")["housekeeping"] == "dirty"
    })
    .await;
    // Reloading the tab keeps the key: no form, straight to live.
    b.goto(&s.url("/board/KEYD")).await;
    let board = board_until(&b, "live again after a reload", |v| {
        v["state"] == "live" && v["rooms"].as_object().is_some_and(|r| r.len() == 2)
    })
    .await;
    assert_eq!(room(&board, "12")["housekeeping"], "dirty");
    b.quit().await;
}

/// What the tape chart shows: its state, the nights across, and per room row its bars and
/// out-of-order blocks, each with where it sits (its first night and how many it covers,
/// and whether its box lines up with those nights' column headers).
const READ_TAPE: &str = r#"
const head = {};
for (const d of document.querySelectorAll('#tape .tape-head .tape-day')) {
  head[d.dataset.date] = d.getBoundingClientRect();
}
const dates = Object.keys(head);
// Whether `node` spans exactly the header columns of its nights (a few pixels of margin).
const aligned = (node) => {
  const i = dates.indexOf(node.dataset.first);
  const last = dates[i + Number(node.dataset.nights) - 1];
  if (i < 0 || !last) return false;
  const box = node.getBoundingClientRect();
  return box.width > 0 && Math.abs(box.left - head[dates[i]].left) < 6
    && Math.abs(box.right - head[last].right) < 6;
};
const rows = {};
for (const row of document.querySelectorAll('#tape .tape-row[data-room]')) {
  const box = row.getBoundingClientRect();
  const inside = (node) => {
    const b = node.getBoundingClientRect();
    return b.top >= box.top - 1 && b.bottom <= box.bottom + 1;
  };
  rows[row.dataset.room] = {
    bars: [...row.querySelectorAll('.bar')].map((b) => ({
      id: b.dataset.reservationId, status: b.dataset.status,
      status_class: b.classList.contains('status-' + b.dataset.status),
      pinned: b.dataset.pinned === 'true', pinned_class: b.classList.contains('pinned'),
      pin_glyph: b.querySelector('.pin') !== null,
      first: b.dataset.first, nights: Number(b.dataset.nights),
      clipped_end: b.classList.contains('clipped-end'),
      guest: b.querySelector('.g').textContent,
      aligned: aligned(b), in_row: inside(b)})),
    ooo: [...row.querySelectorAll('.ooo-block')].map((o) => ({
      first: o.dataset.first, nights: Number(o.dataset.nights), text: o.textContent,
      aligned: aligned(o), in_row: inside(o)})),
  };
}
return {state: document.body.dataset.state, view: document.body.dataset.view,
  visible: document.getElementById('tape').offsetParent !== null,
  board_visible: document.getElementById('rooms').offsetParent !== null,
  days: dates, rows, marker: window.tapeMarker || null};
"#;

/// Waits until the tape chart, read with [`READ_TAPE`], satisfies `ok`; returns it.
async fn tape_until(b: &Browser, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + SEEN_WITHIN;
    loop {
        let tape = b.execute(READ_TAPE, json!([])).await;
        if ok(&tape) {
            return tape;
        }
        if std::time::Instant::now() >= deadline {
            panic!(
                "tape chart: {what} not seen within {SEEN_WITHIN:?}; it shows {tape:#}\n{}",
                b.diagnostics().await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The bars of room `number`'s row.
fn bars<'a>(tape: &'a Value, number: &str) -> &'a [Value] {
    tape["rows"][number]["bars"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// The bar of reservation `id` in room `number`'s row, if it is there.
fn bar<'a>(tape: &'a Value, number: &str, id: &str) -> Option<&'a Value> {
    bars(tape, number).iter().find(|b| b["id"] == id)
}

/// Which rows show reservation `id`.
fn rows_of(tape: &Value, id: &str) -> Vec<String> {
    tape["rows"]
        .as_object()
        .map(|rows| {
            rows.keys()
                .filter(|n| bar(tape, n, id).is_some())
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Books room `room` for `[arrival, departure)` under `guest`'s name; returns the answer.
async fn book_room(
    c: &reqwest::Client,
    s: &Server,
    room: &str,
    arrival: jiff::civil::Date,
    departure: jiff::civil::Date,
    guest: &str,
) -> Value {
    let mut body = booking(arrival, departure);
    body["room"] = json!(room);
    body["guest"]["name"] = json!(guest);
    let (status, r, _) = send(c.post(s.url("/v1/hotels/TAPE/reservations")).json(&body)).await;
    assert_eq!(status, 201, "{r}");
    r
}

/// The tape chart: rooms down the side, 14 hotel-local nights across, a bar per stay in its
/// room's row over its nights (clipped to the window), coloured by status; it follows the
/// desk live, without a reload: a payment recolours a bar, a move puts it in its new row
/// (marked pinned, as every stay booked in a chosen room is), an out-of-order range
/// appears as a block, a cancelled stay leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_tape_chart_follows_bookings_moves_and_out_of_order_live() {
    let _one = ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "TAPE", TZ, 4).await;
    let today = today(TZ);
    let night = |n: i64| plus(today, n).to_string();

    let b = Browser::start().await;
    // `#tape` opens the page on the tape chart.
    b.goto(&s.url("/board/TAPE#tape")).await;
    let tape = tape_until(&b, "four empty rows, live", |v| {
        v["state"] == "live" && v["rows"].as_object().is_some_and(|r| r.len() == 4)
    })
    .await;
    let days: Vec<String> = (0..14).map(night).collect();
    assert_eq!(
        tape["days"],
        json!(days),
        "14 hotel-local nights from today"
    );
    assert_eq!(tape["view"], "tape");
    assert_eq!(tape["visible"], true, "{tape:#}");
    assert_eq!(tape["board_visible"], false, "{tape:#}");
    for n in ["1", "2", "3", "4"] {
        assert_eq!(tape["rows"][n], json!({"bars": [], "ooo": []}), "room {n}");
    }
    // Set in this document: still there at the end proves nothing reloaded the page.
    b.execute("window.tapeMarker = 'same page'; return true;", json!([]))
        .await;

    // Three stays: room 1 for three nights from today, room 2 for 18 nights from the
    // day after tomorrow (past the window), room 3 for tomorrow night.
    let ann = book_room(&c, &s, "1", today, plus(today, 3), "Ann Tape").await;
    let bo = book_room(&c, &s, "2", plus(today, 2), plus(today, 20), "Bo Long").await;
    let cy = book_room(&c, &s, "3", plus(today, 1), plus(today, 2), "Cy Short").await;
    let id = |r: &Value| r["id"].as_str().unwrap().to_owned();
    let (ann_id, bo_id, cy_id) = (id(&ann), id(&bo), id(&cy));
    let tape = tape_until(&b, "three unpaid bars", |v| {
        bar(v, "1", &ann_id).is_some()
            && bar(v, "2", &bo_id).is_some()
            && bar(v, "3", &cy_id).is_some()
    })
    .await;
    let a = bar(&tape, "1", &ann_id).unwrap();
    assert_eq!(
        (&a["status"], &a["first"], &a["nights"], &a["guest"]),
        (
            &json!("pending_payment"),
            &json!(night(0)),
            &json!(3),
            &json!("Ann Tape")
        ),
        "{a:#}"
    );
    let long = bar(&tape, "2", &bo_id).unwrap();
    assert_eq!(long["first"], night(2), "{long:#}");
    assert_eq!(long["nights"], 12, "clipped to the window: {long:#}");
    assert_eq!(long["clipped_end"], true, "{long:#}");
    let short = bar(&tape, "3", &cy_id).unwrap();
    assert_eq!(
        (&short["first"], &short["nights"]),
        (&json!(night(1)), &json!(1))
    );
    for (n, r) in [("1", &ann_id), ("2", &bo_id), ("3", &cy_id)] {
        let x = bar(&tape, n, r).unwrap();
        assert_eq!(x["status_class"], true, "{x:#}");
        // Booked with a chosen room: pinned from the start.
        assert_eq!(x["pinned"], true, "booked in a chosen room: {x:#}");
        assert_eq!(x["pin_glyph"], true, "{x:#}");
        assert_eq!(x["aligned"], true, "the bar sits under its nights: {x:#}");
        assert_eq!(x["in_row"], true, "{x:#}");
        assert_eq!(rows_of(&tape, r), [n], "only in its own row");
    }
    assert!(bars(&tape, "4").is_empty());

    // Paid: Ann's bar turns confirmed.
    pay(&c, &s, &ann).await;
    tape_until(&b, "Ann's bar confirmed", |v| {
        bar(v, "1", &ann_id)
            .is_some_and(|x| x["status"] == "confirmed" && x["status_class"] == true)
    })
    .await;

    // Bo paid and moved by the desk to room 4: the bar leaves row 2 for row 4, pinned.
    pay(&c, &s, &bo).await;
    let (status, moved, _) = send(
        c.post(s.url(&format!("/v1/reservations/{bo_id}/move")))
            .json(&json!({"room": "4"})),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    let tape = tape_until(&b, "Bo's bar in room 4, pinned", |v| {
        bar(v, "4", &bo_id).is_some_and(|x| x["pinned"] == true) && bars(v, "2").is_empty()
    })
    .await;
    let pinned = bar(&tape, "4", &bo_id).unwrap();
    assert_eq!(pinned["status"], "confirmed", "{pinned:#}");
    assert_eq!(pinned["pinned_class"], true, "{pinned:#}");
    assert_eq!(pinned["pin_glyph"], true, "{pinned:#}");
    assert_eq!(
        (&pinned["first"], &pinned["nights"]),
        (&json!(night(2)), &json!(12))
    );
    assert_eq!(pinned["aligned"], true, "{pinned:#}");
    assert_eq!(pinned["in_row"], true, "{pinned:#}");
    assert_eq!(rows_of(&tape, &bo_id), ["4"]);

    // Room 2, now free, out of order tonight and tomorrow night: a block there.
    let range = json!({"from": night(0), "to": night(2), "reason": "paint"});
    let (status, body, _) = send(
        c.post(s.url("/v1/hotels/TAPE/rooms/2/out-of-order"))
            .json(&range),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let tape = tape_until(&b, "an out-of-order block in room 2", |v| {
        v["rows"]["2"]["ooo"]
            .as_array()
            .is_some_and(|o| o.len() == 1)
    })
    .await;
    let block = &tape["rows"]["2"]["ooo"][0];
    assert_eq!(
        (&block["first"], &block["nights"]),
        (&json!(night(0)), &json!(2))
    );
    assert!(
        block["text"].as_str().unwrap().contains("paint"),
        "{block:#}"
    );
    assert_eq!(block["aligned"], true, "{block:#}");
    assert_eq!(block["in_row"], true, "{block:#}");

    // Cy cancelled: the stay no longer holds the night, so its bar leaves the chart.
    let (status, body, _) = send(c.post(s.url(&format!("/v1/reservations/{cy_id}/cancel")))).await;
    assert_eq!(status, 200, "{body}");
    let tape = tape_until(&b, "Cy's bar gone", |v| rows_of(v, &cy_id).is_empty()).await;
    assert_eq!(rows_of(&tape, &ann_id), ["1"]);
    assert_eq!(rows_of(&tape, &bo_id), ["4"]);
    assert_eq!(tape["marker"], "same page", "followed live, never reloaded");

    // The other tab shows the rooms of today again.
    b.execute(
        "document.getElementById('tab-board').click(); return true;",
        json!([]),
    )
    .await;
    let tape = tape_until(&b, "the rooms tab", |v| v["view"] == "board").await;
    assert_eq!(tape["visible"], false, "{tape:#}");
    assert_eq!(tape["board_visible"], true, "{tape:#}");
    b.quit().await;
    drop(s);
}

/// A booking that no single room can take moves another reservation (issue #16): on the
/// tape chart, live, the moved stay's bar changes row (unpinned, no pin marker) and the new
/// stay fills the room it freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_tape_chart_shows_a_rearrangement_live() {
    let _one = ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let c = client();
    hotel(&c, &s, "REAR", TZ, 2).await;
    let today = today(TZ);
    let night = |n: i64| plus(today, n).to_string();
    // One night in the room that is not blocked, placed by the engine (so not pinned).
    let book_beside = |blocked: &'static str, n: i64, guest: &'static str| {
        let (c, s) = (c.clone(), &s);
        async move {
            let range = json!({"from": night(n), "to": night(n + 1), "reason": "paint"});
            let url = s.url(&format!("/v1/hotels/REAR/rooms/{blocked}/out-of-order"));
            let (status, body, _) = send(c.post(url).json(&range)).await;
            assert_eq!(status, 200, "{body}");
            let mut body = booking(plus(today, n), plus(today, n + 1));
            body["guest"]["name"] = json!(guest);
            let (status, r, _) =
                send(c.post(s.url("/v1/hotels/REAR/reservations")).json(&body)).await;
            assert_eq!(status, 201, "{r}");
            let url = s.url(&format!(
                "/v1/hotels/REAR/rooms/{blocked}/out-of-order/{}",
                night(n)
            ));
            let (status, body, _) = send(c.delete(url)).await;
            assert_eq!(status, 200, "{body}");
            r
        }
    };
    let first = book_beside("2", 1, "Fay First").await;
    let second = book_beside("1", 2, "Gus Second").await;
    let id = |r: &Value| r["id"].as_str().unwrap().to_owned();
    let (first_id, second_id) = (id(&first), id(&second));

    let b = Browser::start().await;
    b.goto(&s.url("/board/REAR#tape")).await;
    tape_until(&b, "one bar in each room", |v| {
        bar(v, "1", &first_id).is_some() && bar(v, "2", &second_id).is_some()
    })
    .await;
    b.execute("window.tapeMarker = 'same page'; return true;", json!([]))
        .await;

    // Two nights across both: one of them moves to the other's room.
    let mut body = booking(plus(today, 1), plus(today, 3));
    body["guest"]["name"] = json!("Hal Across");
    let (status, across, _) = send(c.post(s.url("/v1/hotels/REAR/reservations")).json(&body)).await;
    assert_eq!(status, 201, "{across}");
    let across_id = id(&across);
    let room = across["room"].as_str().unwrap().to_owned();
    let other = if room == "1" { "2" } else { "1" };
    let tape = tape_until(&b, "the rearranged chart", |v| {
        bar(v, &room, &across_id).is_some()
            && bar(v, other, &first_id).is_some()
            && bar(v, other, &second_id).is_some()
    })
    .await;
    let new_stay = bar(&tape, &room, &across_id).unwrap();
    assert_eq!(
        (&new_stay["first"], &new_stay["nights"]),
        (&json!(night(1)), &json!(2))
    );
    for r in [&first_id, &second_id] {
        assert_eq!(rows_of(&tape, r), [other], "{tape:#}");
        let moved = bar(&tape, other, r).unwrap();
        assert_eq!(moved["pinned"], false, "{moved:#}");
        assert_eq!(moved["pin_glyph"], false, "{moved:#}");
        assert_eq!(moved["aligned"], true, "{moved:#}");
    }
    assert_eq!(bars(&tape, &room).len(), 1, "{tape:#}");
    assert_eq!(tape["marker"], "same page", "followed live, never reloaded");
    b.quit().await;
    drop(s);
}

/// Feeds `chunks` to a fresh instance of the page's SSE parser; returns what it dispatched,
/// its last event id and its retry delay.
async fn parse(b: &Browser, chunks: &[&str]) -> Value {
    b.execute(
        "const out = []; const p = new window.InnkeepBoard.SseParser((e) => out.push(e)); \
         for (const c of arguments[0]) p.push(c); \
         return {events: out, last_id: p.lastId, retry: p.retry};",
        json!([chunks]),
    )
    .await
}

/// The page's Server-Sent Events parser, fed chunks the way a network delivers them:
/// line endings of every kind, split anywhere (a CRLF too), comments, multi-line data,
/// ids that persist, `retry`, fields without a value, unknown fields, a BOM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_parses_server_sent_events_by_the_spec() {
    let _one = ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let b = Browser::start().await;
    // Any hotel code gets the page; this one does not exist, which the page says.
    b.goto(&s.url("/board/NOWHERE")).await;
    let message = b
        .wait_until(
            "the page saying the hotel does not exist",
            SEEN_WITHIN,
            "return document.body.dataset.state === 'error' \
               && document.getElementById('message').textContent;",
            json!([]),
        )
        .await;
    assert!(message.as_str().unwrap().contains("NOWHERE"), "{message}");

    let ev = |t: &str, d: &str, id: Option<&str>| json!({"type": t, "data": d, "id": id});

    let got = parse(
        &b,
        &[
            "\u{feff}id: 7\r",
            "\nevent: room.status\ndata: {\"room\":",
            "\"3\"}\n\n",
        ],
    )
    .await;
    assert_eq!(
        got["events"],
        json!([ev("room.status", "{\"room\":\"3\"}", Some("7"))])
    );

    // Comments (the keep-alive) dispatch nothing; data lines join with "\n", and only one
    // space after the colon is dropped.
    let got = parse(
        &b,
        &[": keep-alive\n\n", "data: one\ndata:two\ndata:  three\n\n"],
    )
    .await;
    assert_eq!(
        got["events"],
        json!([ev("message", "one\ntwo\n three", None)])
    );

    // CR-only lines; a CRLF split between chunks is one line end, not two.
    let got = parse(&b, &["event: a\rdata: x\r\r", "data: y\r", "\n", "\r\n"]).await;
    assert_eq!(
        got["events"],
        json!([ev("a", "x", None), ev("message", "y", None)])
    );

    // An id persists to later events; an event without data dispatches nothing but still
    // sets the id; "data" without a colon is an empty data line.
    let got = parse(
        &b,
        &[
            "id: 9\n\n",
            "data: z\n\n",
            "data\n\n",
            "id: 10\nevent: b\ndata: w\n\n",
        ],
    )
    .await;
    assert_eq!(
        got["events"],
        json!([
            ev("message", "z", Some("9")),
            ev("message", "", Some("9")),
            ev("b", "w", Some("10")),
        ])
    );
    assert_eq!(got["last_id"], "10");

    // retry takes digits only; unknown fields are ignored; an unfinished event waits.
    let got = parse(
        &b,
        &[
            "retry: 2500\nretry: soon\nfoo: bar\ndata: done\n\n",
            "data: not yet",
        ],
    )
    .await;
    assert_eq!(got["events"], json!([ev("message", "done", None)]));
    assert_eq!(got["retry"], 2500);
    b.quit().await;
    drop(s);
}
