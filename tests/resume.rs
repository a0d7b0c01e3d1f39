//! Resuming the event stream across restarts: a client that reconnects with
//! `Last-Event-ID` gets exactly the events it missed — the ones from before the restart
//! (read back from the journal) and after it — with consecutive ids, no duplicate and no
//! `resync`, whether the server was stopped with SIGTERM or killed with SIGKILL; and an id
//! older than the resume window still gets `resync`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{booking, client, hotel, plus, send, today, Server};

/// The hotel every test here uses; the servers hold no other, so every journal event is
/// one of its events and their ids must be consecutive integers.
const HOTEL: &str = "RSM";
const TZ: &str = "Asia/Shanghai";

/// Longest wait for the next event of a stream; far above the time an event takes to
/// arrive, so only a missing event trips it.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// One server-sent event.
#[derive(Clone, Debug, PartialEq)]
struct Sse {
    /// Its id (absent on `resync`).
    id: Option<u64>,
    /// Its name.
    name: String,
    /// Its JSON payload.
    data: Value,
}

impl Sse {
    /// What the test's changes produce: the event name and the reservation it is about.
    fn change(&self) -> (String, String) {
        (
            self.name.clone(),
            self.data["reservation_id"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        )
    }
}

/// An open `GET /v1/hotels/{HOTEL}/events`.
struct Stream {
    res: reqwest::Response,
    buf: String,
}

impl Stream {
    /// Opens the stream, resuming after `last` if given.
    async fn open(s: &Server, last: Option<u64>) -> Stream {
        // No overall timeout: a stream stays open; each read has its own deadline.
        let c = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let mut req = c.get(s.url(&format!("/v1/hotels/{HOTEL}/events")));
        if let Some(id) = last {
            req = req.header("last-event-id", id.to_string());
        }
        let res = req.send().await.expect("stream opens");
        assert_eq!(res.status(), 200);
        Stream {
            res,
            buf: String::new(),
        }
    }

    /// The next event; `None` once the stream ended.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut name, mut data) = (None, String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse().expect("numeric event id"));
                    } else if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if name.is_empty() && data.is_empty() {
                    continue; // a keep-alive comment
                }
                let data = serde_json::from_str(&data).expect("JSON data");
                return Some(Sse { id, name, data });
            }
            let chunk = tokio::time::timeout(EVENT_TIMEOUT, self.res.chunk())
                .await
                .expect("the next event in time");
            match chunk {
                Ok(Some(bytes)) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next journal event (or `resync`), skipping the implied events without an id
    /// that come just before a journal event.
    async fn next_journal(&mut self) -> Option<Sse> {
        loop {
            let e = self.next().await?;
            if e.id.is_none() && matches!(e.name.as_str(), "availability.changed" | "room.status") {
                continue;
            }
            return Some(e);
        }
    }

    /// Reads journal events up to and including the one for `change`; returns them all.
    /// The events a journal event implies (`availability.changed`, `room.status`) come just
    /// before it without an id; they are checked to be those and left out.
    async fn read_through(&mut self, change: &(String, String)) -> Vec<Sse> {
        let mut seen = Vec::new();
        loop {
            let e = self
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended before {change:?}; got {seen:#?}"));
            if e.id.is_none() {
                assert!(
                    matches!(e.name.as_str(), "availability.changed" | "room.status"),
                    "only implied events come without an id: {e:?}"
                );
                continue;
            }
            let done = &e.change() == change;
            seen.push(e);
            if done {
                return seen;
            }
        }
    }
}

/// Books a stay `offset` nights ahead (two nights); returns the change it journals.
async fn book(c: &reqwest::Client, s: &Server, offset: i64) -> (String, String) {
    let arrival = plus(today(TZ), offset);
    let (status, body, _) = send(
        c.post(s.url(&format!("/v1/hotels/{HOTEL}/reservations")))
            .json(&booking(arrival, plus(arrival, 2))),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    ("reservation.created".to_owned(), id)
}

/// Cancels the reservation a booking change is about; returns the change it journals.
async fn cancel(c: &reqwest::Client, s: &Server, booked: &(String, String)) -> (String, String) {
    let (status, body, _) =
        send(c.post(s.url(&format!("/v1/reservations/{}/cancel", booked.1)))).await;
    assert_eq!(status, 200, "{body}");
    ("reservation.cancelled".to_owned(), booked.1.clone())
}

/// A few changes: two bookings and the cancellation of the first, starting `offset`
/// nights ahead (4 rooms, so they always fit).
async fn changes(c: &reqwest::Client, s: &Server, offset: i64) -> Vec<(String, String)> {
    let a = book(c, s, offset).await;
    let b = book(c, s, offset + 1).await;
    let gone = cancel(c, s, &a).await;
    vec![a, b, gone]
}

/// Asserts `got` is exactly `changes`, with the ids right after `last`.
fn assert_resumed(got: &[Sse], last: u64, changes: &[(String, String)]) {
    let ids: Vec<Option<u64>> = got.iter().map(|e| e.id).collect();
    let expected_ids: Vec<Option<u64>> =
        (last + 1..=last + changes.len() as u64).map(Some).collect();
    assert_eq!(ids, expected_ids, "consecutive ids after {last}: {got:#?}");
    let got_changes: Vec<(String, String)> = got.iter().map(Sse::change).collect();
    assert_eq!(got_changes, changes, "the missed changes, in order");
}

/// Records every event by id, refusing a second, different event under an id seen before.
fn remember(all: &mut BTreeMap<u64, Sse>, events: &[Sse]) {
    for e in events {
        let id = e.id.unwrap_or_else(|| panic!("an event without id: {e:?}"));
        if let Some(before) = all.insert(id, e.clone()) {
            assert_eq!(&before, e, "id {id} means the same event every time");
        }
    }
}

/// Disconnect, changes, SIGTERM restart, changes, reconnect: exactly the missed events.
/// Then the same with SIGKILL. Then, with a resume window of 2 events, an older id gets
/// `resync` while one inside the window still resumes exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_resumes_across_sigterm_and_sigkill_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let s = Server::start(dir.path(), &[]);
    hotel(&c, &s, HOTEL, TZ, 4).await;
    let mut all = BTreeMap::new();

    // The whole history from the first id, setup included, then a few live changes.
    let mut stream = Stream::open(&s, Some(0)).await;
    let first = changes(&c, &s, 1).await;
    let seen = stream.read_through(first.last().unwrap()).await;
    let ids: Vec<Option<u64>> = seen.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=seen.len() as u64).map(Some).collect::<Vec<_>>(),
        "every event from id 1, in order: {seen:#?}"
    );
    assert!(seen[..seen.len() - 3]
        .iter()
        .all(|e| e.name == "setup.updated"));
    remember(&mut all, &seen);
    let last = seen.last().and_then(|e| e.id).unwrap();
    drop(stream);

    // --- SIGTERM: changes the client misses before and after a clean restart.
    let mut missed = changes(&c, &s, 10).await;
    assert!(s.terminate().success());
    let s = Server::start(dir.path(), &[]);
    missed.extend(changes(&c, &s, 20).await);
    let mut stream = Stream::open(&s, Some(last)).await;
    let got = stream.read_through(missed.last().unwrap()).await;
    assert_resumed(&got, last, &missed);
    remember(&mut all, &got);
    let last = got.last().and_then(|e| e.id).unwrap();
    drop(stream);

    // --- SIGKILL: the same across a crash. Acknowledged means durable, so the changes
    // made before the kill are in the journal, and resuming reads them back.
    let mut missed = changes(&c, &s, 30).await;
    s.kill();
    let s = Server::start(dir.path(), &[]);
    missed.extend(changes(&c, &s, 40).await);
    let mut stream = Stream::open(&s, Some(last)).await;
    let got = stream.read_through(missed.last().unwrap()).await;
    assert_resumed(&got, last, &missed);
    remember(&mut all, &got);
    let newest = got.last().and_then(|e| e.id).unwrap();
    drop(stream);

    // The whole history once more, from id 1: every id the client saw, across both
    // restarts, still names the same event, and none is missing.
    let mut stream = Stream::open(&s, Some(0)).await;
    let everything = stream.read_through(&all[&newest].change()).await;
    assert_eq!(
        everything.iter().map(|e| e.id).collect::<Vec<_>>(),
        (1..=newest).map(Some).collect::<Vec<_>>()
    );
    remember(&mut all, &everything);
    drop(stream);

    // --- A resume window of 2: an id older than it gets `resync`, naming the first id it
    // can show, before the events it still has; an id inside it resumes exactly.
    assert!(s.terminate().success());
    let s = Server::start(dir.path(), &[("INNKEEP_RESUME_WINDOW_EVENTS", "2")]);
    let mut stream = Stream::open(&s, Some(last)).await;
    let resync = stream.next_journal().await.expect("an event");
    assert_eq!(resync.name, "resync", "{resync:?}");
    assert_eq!(resync.id, None);
    assert_eq!(resync.data["first_available"], json!(newest - 1));
    let rest = vec![
        stream.next_journal().await.unwrap(),
        stream.next_journal().await.unwrap(),
    ];
    assert_eq!(rest, vec![all[&(newest - 1)].clone(), all[&newest].clone()]);
    drop(stream);
    let mut stream = Stream::open(&s, Some(newest - 2)).await;
    let got = vec![
        stream.next_journal().await.unwrap(),
        stream.next_journal().await.unwrap(),
    ];
    assert_eq!(got, vec![all[&(newest - 1)].clone(), all[&newest].clone()]);
    // Nothing more: the next thing on the stream is a live change made now.
    let after = book(&c, &s, 50).await;
    let live = stream.next_journal().await.unwrap();
    assert_eq!((live.id, live.change()), (Some(newest + 1), after));
}
