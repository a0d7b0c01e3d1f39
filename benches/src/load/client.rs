//! One keep-alive HTTP/1.1 connection to the target, and reading its answers.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::LoadError;

/// A client that keeps one connection to the target open (one per worker, so
/// `--connections N` means N sockets).
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    client: reqwest::Client,
    base: String,
}

/// A status and the raw body of an answer.
#[derive(Debug)]
pub(crate) struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as received.
    pub body: Vec<u8>,
    /// The `Retry-After` header in seconds, if the server sent one.
    pub retry_after_secs: Option<u64>,
}

impl Reply {
    /// The problem `code` of an error answer, if the body is problem+json.
    pub fn code(&self) -> Option<String> {
        if self.status < 400 {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Problem {
            code: String,
        }
        serde_json::from_slice::<Problem>(&self.body)
            .ok()
            .map(|p| p.code)
    }

    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("unreadable body: {e}"))
    }

    /// `"<status> <code>"` (or just the status), how errors are keyed in the report.
    pub fn key(&self) -> String {
        match self.code() {
            Some(c) => format!("{} {c}", self.status),
            None => self.status.to_string(),
        }
    }

    /// True when the answer is a problem with this code.
    pub fn is(&self, status: u16, code: &str) -> bool {
        self.status == status && self.code().as_deref() == Some(code)
    }

    /// True for a 429 (`rate_limited`, `too_many_holds`): the server's policy turned
    /// the request away; nothing changed.
    pub fn throttled(&self) -> bool {
        self.status == 429
    }

    /// True for a 503 that says the request was refused before it reached the engine
    /// (`overloaded`, `not_ready`, `shutting_down`): nothing changed. See [`refused`].
    pub fn refused(&self) -> bool {
        refused(self.status, self.code().as_deref())
    }
}

/// True for an answer with this status and problem code that says the request was
/// refused before it reached the engine: a 503 `overloaded`, `not_ready` or
/// `shutting_down`. Everything else (including a 503 `timeout`, which the engine had
/// admitted) reached the engine, or may have.
pub(crate) fn refused(status: u16, code: Option<&str>) -> bool {
    status == 503 && matches!(code, Some("overloaded" | "not_ready" | "shutting_down"))
}

/// Most attempts of a setup or check request that the server turns away.
const MAX_ATTEMPTS: u32 = 6;

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Runs `attempt` until the server stops turning it away (429, 503 `overloaded`), at
/// most [`MAX_ATTEMPTS`] times, waiting as `Retry-After` says (capped) or backing off
/// exponentially. For setup and the check, which must get through; the load phase
/// never retries (a refusal is a measurement there).
pub(crate) async fn retrying<F, Fut>(mut attempt: F) -> Result<Reply, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Reply, String>>,
{
    let mut backoff = Duration::from_millis(50);
    let mut last = attempt().await;
    for _ in 1..MAX_ATTEMPTS {
        let wait = match &last {
            Ok(r) if r.throttled() || r.is(503, "overloaded") => r
                .retry_after_secs
                .map(Duration::from_secs)
                .unwrap_or(backoff)
                .min(MAX_BACKOFF),
            _ => return last,
        };
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        last = attempt().await;
    }
    last
}

/// Short name of a transport error, for the report.
fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_owned()
    } else if e.is_connect() {
        "connect".to_owned()
    } else if e.is_body() || e.is_decode() {
        "body".to_owned()
    } else {
        "io".to_owned()
    }
}

impl Conn {
    /// A client for `base` (`http://host:port`) with a per-request `timeout`, sending
    /// `headers` with every request.
    pub fn new(
        base: &str,
        timeout: Duration,
        headers: &[(String, String)],
    ) -> Result<Conn, LoadError> {
        let mut defaults = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| LoadError::InvalidOption(format!("--header {name:?}: {e}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| LoadError::InvalidOption(format!("--header {name}: {e}")))?;
            defaults.append(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(defaults)
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(None)
            .tcp_nodelay(true)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .no_proxy()
            .build()
            .map_err(|e| LoadError::Http(format!("cannot build an HTTP client: {e}")))?;
        Ok(Conn {
            client,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Reply, String> {
        let res = req.send().await.map_err(|e| transport(&e))?;
        let status = res.status().as_u16();
        let retry_after_secs = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        // Read the whole body so the connection can be reused.
        let body = res.bytes().await.map_err(|e| transport(&e))?.to_vec();
        Ok(Reply {
            status,
            body,
            retry_after_secs,
        })
    }

    /// `GET base + path`.
    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    /// `PUT base + path` with a JSON body.
    pub async fn put_json(&self, path: &str, body: &serde_json::Value) -> Result<Reply, String> {
        self.send(
            self.client
                .put(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// `POST base + path` with a raw body (JSON when not empty) and extra headers.
    pub async fn post(
        &self,
        path: &str,
        body: String,
        headers: &[(&'static str, &str)],
    ) -> Result<Reply, String> {
        let mut req = self.client.post(format!("{}{path}", self.base));
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req.body(body)).await
    }
}
