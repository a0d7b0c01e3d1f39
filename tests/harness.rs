//! Starting and talking to a real server.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

/// Payment secret every test server uses.
pub const SECRET: &str = "e2e-test-secret-0123456789";

/// Most time a server gets to become ready (a debug build replaying a big journal).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `innkeep serve` child process. Killed when dropped.
pub struct Server {
    /// The child.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The data dir it was started with.
    pub data_dir: PathBuf,
    /// Lines the server logs after ready (JSON), for tests that look at the log.
    pub log: mpsc::Receiver<Value>,
}

/// What happened to a start attempt.
pub enum Started {
    /// Listening and recovered.
    Ready(Server),
    /// The process exited before it was ready (its log lines).
    Exited(Vec<Value>),
}

impl Server {
    /// Starts a server on a fresh port over `data_dir` and waits until it logged "ready".
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        match Server::try_start(data_dir, env) {
            Started::Ready(s) => s,
            Started::Exited(lines) => panic!("server exited before ready: {lines:#?}"),
        }
    }

    /// Starts a server; reports an early exit instead of panicking.
    pub fn try_start(data_dir: &Path, env: &[(&str, &str)]) -> Started {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_innkeep"));
        cmd.args(["serve", "--log-format", "json"])
            .env_clear()
            .env("INNKEEP_LISTEN", "127.0.0.1:0")
            .env("INNKEEP_DATA_DIR", data_dir)
            .env("INNKEEP_PAYMENT_SECRET", SECRET)
            .env("INNKEEP_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn innkeep");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel::<Value>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(value).is_err() {
                    // Nobody listens any more; keep draining so the child never blocks.
                    continue;
                }
            }
        });
        let mut local = None;
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                return Started::Exited(seen);
            };
            let message = line["fields"]["message"].as_str().unwrap_or("");
            if message.starts_with("listening") {
                local = line["fields"]["local"].as_str().map(str::to_owned);
            }
            let ready = message == "ready";
            seen.push(line);
            if ready {
                break;
            }
        }
        let local = local.expect("server logged its address");
        Started::Ready(Server {
            child,
            base: format!("http://{local}"),
            data_dir: data_dir.to_owned(),
            log: rx,
        })
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY-free: `kill` from the command line avoids unsafe libc calls.
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client with a sane timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .expect("client")
}

/// Status and JSON body.
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value, HashMap<String, String>) {
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let text = res.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body, headers)
}

/// PUTs the JSON and asserts a 2xx.
pub async fn put_ok(c: &reqwest::Client, url: String, body: Value) {
    let (status, body, _) = send(c.put(&url).json(&body)).await;
    assert!((200..300).contains(&status), "PUT {url} → {status} {body}");
}

/// Creates a hotel with one room type `STD` (capacity 2, 10000/night) and `rooms` rooms
/// numbered 1..=rooms.
pub async fn hotel(c: &reqwest::Client, s: &Server, id: &str, tz: &str, rooms: usize) {
    put_ok(
        c,
        s.url(&format!("/v1/hotels/{id}")),
        json!({"name": format!("Hotel {id}"), "time_zone": tz, "currency": "CNY"}),
    )
    .await;
    put_ok(
        c,
        s.url(&format!("/v1/hotels/{id}/room-types/STD")),
        json!({"name": "Standard", "capacity": 2, "base_rate": 10000}),
    )
    .await;
    for n in 1..=rooms {
        put_ok(
            c,
            s.url(&format!("/v1/hotels/{id}/rooms/{n}")),
            json!({"room_type": "STD"}),
        )
        .await;
    }
}

/// The hotel-local today in `tz`.
pub fn today(tz: &str) -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get(tz).expect("tz"))
        .date()
}

/// `date + days`.
pub fn plus(date: jiff::civil::Date, days: i64) -> jiff::civil::Date {
    date.checked_add(jiff::Span::new().days(days))
        .expect("date")
}

/// A booking body.
pub fn booking(arrival: jiff::civil::Date, departure: jiff::civil::Date) -> Value {
    json!({
        "room_type": "STD",
        "arrival": arrival.to_string(),
        "departure": departure.to_string(),
        "guests": 2,
        "guest": {"name": "Test Guest", "phone": "+86 138 0000 0000", "email": "guest@example.com"},
    })
}

/// A tiny deterministic generator (xorshift), so runs are reproducible without a crate.
pub struct Rng(pub u64);

impl Rng {
    /// Next value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Signs and posts a payment callback.
pub async fn notify(c: &reqwest::Client, s: &Server, body: &Value) -> (u16, Value) {
    let raw = body.to_string();
    let t = jiff::Timestamp::now().as_second();
    let sig =
        innkeep_http::routes::payments::signature_header(SECRET.as_bytes(), t, raw.as_bytes());
    let (status, body, _) = send(
        c.post(s.url("/v1/payments/notify"))
            .header("content-type", "application/json")
            .header("x-signature", sig)
            .body(raw),
    )
    .await;
    (status, body)
}

/// Pays a reservation in full.
pub async fn pay(c: &reqwest::Client, s: &Server, reservation: &Value) {
    let (status, body) = notify(
        c,
        s,
        &json!({
            "out_trade_no": reservation["payment"]["out_trade_no"],
            "trade_no": "T-1",
            "status": "succeeded",
            "amount": reservation["total"]["amount"],
            "currency": reservation["total"]["currency"],
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
