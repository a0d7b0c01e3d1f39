//! One keep-alive HTTP/1.1 connection to the target, and reading its answers.
//!
//! The connection is hyper's HTTP/1.1 client on a plain `TcpStream`, with nothing between:
//! the generator shares the machine's cores with the server it measures, so what it spends
//! per request is taken from the server. Through reqwest (a pooled client with redirect
//! and retry layers, and a URL parsed per request) it spent 63–67 µs of CPU per booking in
//! open loop at 10 000/s, more than the server (BENCHMARKS.md, twenty-fourth session).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use super::LoadError;

/// A client that keeps one connection to the target open (one per worker, so
/// `--connections N` means N sockets). Clones share the connection; their requests take
/// turns on it.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    inner: Arc<Inner>,
}

/// What every request of a [`Conn`] shares.
#[derive(Debug)]
struct Inner {
    /// `host:port` to connect to (port 80 when the target names none).
    authority: String,
    /// The target's path prefix (usually empty), put before every request's path.
    prefix: String,
    /// Sent with every request (`--header`, `--api-key`).
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The `Host` header's value: the target's authority as given.
    host: HeaderValue,
    /// Longest a request may take, connecting included; past it the connection is dropped.
    timeout: Duration,
    /// The open connection, if any: opened by the first request, dropped after a
    /// transport error (the next request opens another), so a connection is never reused
    /// half-way through an answer.
    sender: tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
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

/// Why a request got no answer, by the report's names: `timeout`, `connect`, `body` (the
/// answer broke off) or `io`.
#[derive(Debug)]
enum Transport {
    /// No whole answer within the request's timeout.
    Timeout,
    /// The connection could not be opened.
    Connect,
    /// The answer's head came, its body broke off.
    Body,
    /// The connection failed while sending or waiting for the head.
    Io,
}

impl Transport {
    fn name(&self) -> String {
        match self {
            Transport::Timeout => "timeout",
            Transport::Connect => "connect",
            Transport::Body => "body",
            Transport::Io => "io",
        }
        .to_owned()
    }
}

impl Conn {
    /// A client for `base` (`http://host:port`, checked by the options) with a per-request
    /// `timeout`, sending `headers` with every request.
    pub fn new(
        base: &str,
        timeout: Duration,
        headers: &[(String, String)],
    ) -> Result<Conn, LoadError> {
        let rest = base
            .trim_end_matches('/')
            .strip_prefix("http://")
            .ok_or_else(|| {
                LoadError::InvalidOption(format!("--target {base:?}: expected http://host:port"))
            })?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(LoadError::InvalidOption(format!(
                "--target {base:?}: expected http://host:port"
            )));
        }
        let host = HeaderValue::from_str(authority)
            .map_err(|e| LoadError::InvalidOption(format!("--target {base:?}: {e}")))?;
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let headers = headers
            .iter()
            .map(|(name, value)| {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| LoadError::InvalidOption(format!("--header {name:?}: {e}")))?;
                let value = HeaderValue::from_str(value)
                    .map_err(|e| LoadError::InvalidOption(format!("--header {name}: {e}")))?;
                Ok((name, value))
            })
            .collect::<Result<_, LoadError>>()?;
        Ok(Conn {
            inner: Arc::new(Inner {
                authority,
                prefix: prefix.to_owned(),
                headers,
                host,
                timeout,
                sender: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// Sends one request on the connection (opening it first if needed) and reads the whole
    /// answer, all within the timeout. `json`: a JSON body, or none.
    async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
        extra: &[(&'static str, &str)],
    ) -> Result<Reply, String> {
        let inner = &*self.inner;
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", inner.prefix))
            .header(HOST, inner.host.clone());
        if json.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in &inner.headers {
            builder = builder.header(name, value);
        }
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        let req = builder
            .body(Full::new(json.unwrap_or_default()))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let mut sender = inner.sender.lock().await;
        let outcome =
            tokio::time::timeout(inner.timeout, exchange(&mut sender, &inner.authority, req))
                .await
                .unwrap_or(Err(Transport::Timeout));
        if outcome.is_err() {
            // Whatever the connection was doing is unknown now: the next request opens
            // another.
            *sender = None;
        }
        outcome.map_err(|e| e.name())
    }

    /// `GET base + path`.
    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        self.send(Method::GET, path, None, &[]).await
    }

    /// `PUT base + path` with a JSON body.
    pub async fn put_json(&self, path: &str, body: &serde_json::Value) -> Result<Reply, String> {
        self.send(Method::PUT, path, Some(Bytes::from(body.to_string())), &[])
            .await
    }

    /// `POST base + path` with a raw body (JSON when not empty) and extra headers.
    pub async fn post(
        &self,
        path: &str,
        body: String,
        headers: &[(&'static str, &str)],
    ) -> Result<Reply, String> {
        let json = (!body.is_empty()).then(|| Bytes::from(body));
        self.send(Method::POST, path, json, headers).await
    }
}

/// One request and its whole answer on `sender`'s connection, opened to `authority` first
/// if there is none.
async fn exchange(
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    authority: &str,
    req: Request<Full<Bytes>>,
) -> Result<Reply, Transport> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = Some(connect(authority).await?);
    }
    let Some(s) = sender.as_mut() else {
        return Err(Transport::Connect);
    };
    s.ready().await.map_err(|_| Transport::Io)?;
    let res = s.send_request(req).await.map_err(|_| Transport::Io)?;
    let status = res.status().as_u16();
    let retry_after_secs = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    // Read the whole body so the connection can be reused.
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|_| Transport::Body)?
        .to_bytes()
        .to_vec();
    Ok(Reply {
        status,
        body,
        retry_after_secs,
    })
}

/// Opens a connection to `authority` (no Nagle: requests are small and waited on) and
/// drives it on a task of its own, which ends when the connection closes or its sender is
/// dropped.
async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, Transport> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|_| Transport::Connect)?;
    stream.set_nodelay(true).map_err(|_| Transport::Connect)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Transport::Connect)?;
    tokio::spawn(async move {
        // Its errors reach the request waiting on it, if any.
        let _ = connection.await;
    });
    Ok(sender)
}
