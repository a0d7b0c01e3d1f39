//! Traces over OTLP: the real binary exports its spans to a local OTLP/HTTP receiver, with
//! the request id on the request's span and the journal sequence on its room's span.

use std::time::Duration;

use axum::routing::post;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::harness::{booking, client, hotel, plus, send, today, Server};

/// An attribute's value as text (`stringValue`, or `intValue`, which OTLP/JSON writes as a
/// string).
fn attribute(span: &Value, key: &str) -> Option<String> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| {
            let v = &a["value"];
            v["stringValue"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| v["intValue"].as_str().map(str::to_owned))
                .or_else(|| v["intValue"].as_i64().map(|n| n.to_string()))
        })
}

/// Every span of an OTLP/JSON export request.
fn spans(body: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for rs in body["resourceSpans"].as_array().into_iter().flatten() {
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            out.extend(ss["spans"].as_array().into_iter().flatten().cloned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver_with_request_id_and_seq() {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let receiver = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = tx.send(body);
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{collector}");
    let s = Server::start(
        dir.path(),
        &[
            ("INNKEEP_TELEMETRY_OTLP_ENDPOINT", endpoint.as_str()),
            ("INNKEEP_TELEMETRY_SERVICE_NAME", "innkeep-e2e"),
            // The SDK's batch delay (default 5 s), so spans arrive while the test waits.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let c = client();
    hotel(&c, &s, "OT1", "UTC", 2).await;
    let arrival = plus(today("UTC"), 1);
    let (status, body, _) = send(
        c.post(s.url("/v1/hotels/OT1/reservations"))
            .header("x-request-id", "otlp-e2e-1")
            .json(&booking(arrival, plus(arrival, 1))),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The request's span and, in the same trace, the room's span with the seq its event
    // got (spans may come in several exports).
    let mut seen = Vec::new();
    let mut service = None;
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let body = rx.recv().await.expect("the receiver runs");
            for rs in body["resourceSpans"].as_array().into_iter().flatten() {
                for a in rs["resource"]["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if a["key"] == "service.name" {
                        service = a["value"]["stringValue"].as_str().map(str::to_owned);
                    }
                }
            }
            seen.extend(spans(&body));
            let request = seen.iter().find(|s| {
                s["name"] == "request"
                    && attribute(s, "request_id").as_deref() == Some("otlp-e2e-1")
            });
            if let Some(request) = request {
                let trace = request["traceId"].clone();
                let seq = seen
                    .iter()
                    .filter(|s| s["traceId"] == trace)
                    .find_map(|s| attribute(s, "seq"));
                if let Some(seq) = seq {
                    return seq;
                }
            }
        }
    })
    .await;
    let seq = found.unwrap_or_else(|_| panic!("no request span with its room's seq in {seen:#?}"));
    assert!(seq.parse::<u64>().unwrap() > 0, "{seq}");
    assert_eq!(service.as_deref(), Some("innkeep-e2e"));
    s.terminate();
}
