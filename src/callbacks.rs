//! The sandbox provider's callbacks over HTTP: the [`CallbackTransport`] the binary gives
//! the sandbox. It lives here, not in `innkeep-actors`, so embedding the engine does not
//! pull an HTTP client.

use std::time::Duration;

use innkeep_actors::{CallbackTransport, DeliveryFuture, TransportError};

/// Longest a callback may take, connection included: a provider gives up on a server that
/// does not answer, then retries.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs the sandbox's callbacks with `reqwest`.
#[derive(Debug, Clone)]
pub struct HttpCallbacks {
    /// One client (its connection pool) for every callback.
    client: reqwest::Client,
}

impl HttpCallbacks {
    /// A transport with the callback timeout.
    pub fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(CALLBACK_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }
}

impl Default for HttpCallbacks {
    fn default() -> Self {
        Self::new()
    }
}

impl CallbackTransport for HttpCallbacks {
    fn post(&self, url: &str, signature: String, body: String) -> DeliveryFuture {
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-signature", signature)
            .body(body)
            .send();
        Box::pin(async move {
            match sent.await {
                Ok(res) => Ok(res.status().as_u16()),
                Err(e) => Err(TransportError {
                    reason: e.to_string(),
                }),
            }
        })
    }
}
