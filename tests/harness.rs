//! Starting and talking to a real server.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
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
    /// Lines it logged up to and including "ready" (recovery warnings land here).
    pub startup: Vec<Value>,
}

/// What happened to a start attempt.
pub enum Started {
    /// Listening and recovered.
    Ready(Server),
    /// The process exited before it was ready (its log lines).
    Exited(Vec<Value>),
}

/// A start attempt that ended before "ready".
#[derive(Debug)]
pub struct EarlyExit {
    /// How the process ended.
    pub status: ExitStatus,
    /// Every line it wrote to stderr (JSON log lines as objects, anything else as strings).
    pub lines: Vec<Value>,
    /// True if it was killed for not becoming ready in time rather than exiting by itself.
    pub timed_out: bool,
}

impl EarlyExit {
    /// The plain-text lines of stderr, e.g. `innkeep: cannot start …` — what an operator
    /// reads when the process refuses to start.
    pub fn plain_stderr(&self) -> Vec<&str> {
        self.lines.iter().filter_map(Value::as_str).collect()
    }
}

/// The message of a JSON log line (`""` for other lines).
pub fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or("")
}

/// How far [`Starting::read_until`] got.
#[derive(Debug, PartialEq, Eq)]
enum Reached {
    /// The line it waited for came.
    Yes,
    /// stderr closed first: the process is exiting.
    Exited,
    /// [`READY_TIMEOUT`] passed first.
    TimedOut,
}

/// A spawned server on its way to ready: lets a test act between spawn, "listening" and
/// "ready" (kill it mid-start, or look at it while it recovers). Killed when dropped.
pub struct Starting {
    child: Option<Child>,
    rx: mpsc::Receiver<Value>,
    seen: Vec<Value>,
    local: Option<String>,
    data_dir: PathBuf,
}

impl Starting {
    /// Spawns `innkeep serve` on a fresh port over `data_dir`; returns at once.
    pub fn spawn(data_dir: &Path, env: &[(&str, &str)]) -> Starting {
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
        Starting {
            child: Some(child),
            rx,
            seen: Vec::new(),
            local: None,
            data_dir: data_dir.to_owned(),
        }
    }

    /// Reads log lines until one satisfies `stop`.
    fn read_until(&mut self, stop: impl Fn(&str) -> bool) -> Reached {
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match self.rx.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => return Reached::TimedOut,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Reached::Exited,
            };
            let msg = message(&line);
            if msg.starts_with("listening") {
                self.local = line["fields"]["local"].as_str().map(str::to_owned);
            }
            let done = stop(msg);
            self.seen.push(line);
            if done {
                return Reached::Yes;
            }
        }
    }

    /// Waits until the server logged "listening" (it answers HTTP from then on, `503
    /// not_ready` until recovered) and returns its base URL; `None` if it exited first.
    pub fn wait_listening(&mut self) -> Option<String> {
        if self.local.is_none() && self.read_until(|m| m.starts_with("listening")) != Reached::Yes {
            return None;
        }
        self.local.as_ref().map(|local| format!("http://{local}"))
    }

    /// Waits until the server logged a line starting with `prefix`; whether it did (not
    /// if it exited or timed out first).
    pub fn wait_logged(&mut self, prefix: &str) -> bool {
        self.seen.iter().any(|l| message(l).starts_with(prefix))
            || self.read_until(|m| m.starts_with(prefix)) == Reached::Yes
    }

    /// Waits for "ready"; on an early exit reports its status and stderr.
    pub fn wait_ready(mut self) -> Result<Server, EarlyExit> {
        let reached = self.read_until(|m| m == "ready");
        let mut child = self.child.take().expect("child");
        if reached != Reached::Yes {
            let timed_out = reached == Reached::TimedOut;
            if timed_out {
                let _ = child.kill();
            }
            let status = child.wait().expect("wait");
            let mut lines = std::mem::take(&mut self.seen);
            lines.extend(self.rx.try_iter());
            return Err(EarlyExit {
                status,
                lines,
                timed_out,
            });
        }
        let local = self.local.take().expect("server logged its address");
        let (_, dead) = mpsc::channel();
        Ok(Server {
            child,
            base: format!("http://{local}"),
            data_dir: self.data_dir.clone(),
            log: std::mem::replace(&mut self.rx, dead),
            startup: std::mem::take(&mut self.seen),
        })
    }

    /// SIGKILLs the child wherever it is in its start-up and reaps it; returns the lines
    /// it logged so far.
    pub fn kill(mut self) -> Vec<Value> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut lines = std::mem::take(&mut self.seen);
        lines.extend(self.rx.try_iter());
        lines
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Server {
    /// Starts a server on a fresh port over `data_dir` and waits until it logged "ready".
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        match Server::launch(data_dir, env) {
            Ok(s) => s,
            Err(e) => panic!("server exited before ready: {e:#?}"),
        }
    }

    /// Starts a server; reports an early exit instead of panicking.
    pub fn try_start(data_dir: &Path, env: &[(&str, &str)]) -> Started {
        match Server::launch(data_dir, env) {
            Ok(s) => Started::Ready(s),
            Err(e) => Started::Exited(e.lines),
        }
    }

    /// Starts a server; an early exit comes back with its exit status and stderr.
    pub fn launch(data_dir: &Path, env: &[(&str, &str)]) -> Result<Server, EarlyExit> {
        Starting::spawn(data_dir, env).wait_ready()
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

    /// Sends SIGTERM and returns at once (the process starts its graceful shutdown).
    pub fn signal_term(&self) {
        // `kill` from the command line avoids unsafe libc calls (the crate forbids unsafe).
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.child.id());
    }

    /// SIGTERM and wait for the process to exit; returns the exit status.
    pub fn terminate(self) -> ExitStatus {
        self.stop().0
    }

    /// SIGTERM, wait for the process to exit, and return its exit status with every line
    /// it logged after "ready".
    pub fn stop(mut self) -> (ExitStatus, Vec<Value>) {
        self.signal_term();
        let status = self.child.wait().expect("wait");
        // The child is gone, so its stderr is closed and the reader thread ends.
        let lines = self.log.iter().collect();
        (status, lines)
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
    try_send(req).await.expect("request")
}

/// [`send`] that reports a transport error (connection refused or reset, e.g. because the
/// server was killed) instead of panicking.
pub async fn try_send(
    req: reqwest::RequestBuilder,
) -> Result<(u16, Value, HashMap<String, String>), reqwest::Error> {
    let res = req.send().await?;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let text = res.text().await?;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, body, headers))
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

/// Pays a reservation's charge: what its payment asks (the total at booking).
pub async fn pay(c: &reqwest::Client, s: &Server, reservation: &Value) {
    let (status, body) = notify(
        c,
        s,
        &json!({
            "out_trade_no": reservation["payment"]["out_trade_no"],
            "trade_no": "T-1",
            "status": "succeeded",
            "amount": reservation["payment"]["amount"]["amount"],
            "currency": reservation["payment"]["amount"]["currency"],
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
