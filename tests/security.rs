//! API keys, limits and metrics through the real binary: `innkeep keygen`, a keyed server,
//! and the refusal to serve an open API on a non-loopback address.

use std::process::Command;

use serde_json::json;

use crate::harness::{client, send, EarlyExit, Server};

/// The value of a `name = "..."` line of `innkeep keygen`'s output.
fn value<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .trim_start()
                .strip_prefix('=')?
                .trim()
                .strip_prefix('"')?
                .strip_suffix('"')
        })
        .unwrap_or_else(|| panic!("no {name} line in:\n{text}"))
}

pub(crate) fn keygen() -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_innkeep"))
        .arg("keygen")
        .output()
        .expect("run innkeep keygen");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let key = value(&text, "key").to_owned();
    let hash = value(&text, "key_sha256").to_owned();
    assert_eq!(key.len(), 64, "{text}");
    assert_eq!(hash.len(), 64, "{text}");
    (key, hash)
}

/// Keys from `innkeep keygen` work as configured: no key → 401, a channel key → 403 on
/// setup, the admin key → 201; probes need no key, `/metrics` an admin key (or the
/// separate metrics address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_server_with_keygen_keys() {
    let (admin, admin_hash) = keygen();
    let (channel, channel_hash) = keygen();
    assert_ne!(admin, channel);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("innkeep.toml");
    std::fs::write(
        &config,
        format!(
            "[[api_keys]]\nname = \"ops\"\nkey_sha256 = \"{admin_hash}\"\nrole = \"admin\"\nhotels = [\"*\"]\n\
             [[api_keys]]\nname = \"ota\"\nkey_sha256 = \"{channel_hash}\"\nrole = \"channel\"\nhotels = [\"K1\"]\n\
             [limits]\nmax_connections = 64\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let s = Server::start(
        &data,
        &[
            ("INNKEEP_CONFIG", config.to_str().unwrap()),
            ("INNKEEP_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    );
    let metrics_addr = s
        .startup
        .iter()
        .find(|l| crate::harness::message(l) == "serving /metrics without a key")
        .and_then(|l| l["fields"]["addr"].as_str())
        .expect("the metrics address in the start-up log")
        .to_owned();
    let c = client();
    let hotel = json!({"name": "Keyed", "time_zone": "UTC", "currency": "EUR"});

    let (status, body, headers) = send(c.put(s.url("/v1/hotels/K1")).json(&hotel)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    assert!(headers["www-authenticate"].starts_with("Bearer"));
    let (status, body, _) = send(
        c.put(s.url("/v1/hotels/K1"))
            .bearer_auth(&channel)
            .json(&hotel),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, body, _) = send(
        c.put(s.url("/v1/hotels/K1"))
            .bearer_auth(&admin)
            .json(&hotel),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _, _) = send(c.get(s.url("/v1/hotels/K1")).bearer_auth("wrong")).await;
    assert_eq!(status, 401);

    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let (status, _, _) = send(c.get(s.url(path))).await;
        assert_eq!(status, 200, "{path}");
    }
    // Every hotel's counters: not without a key, not for a channel, only for an admin of
    // every hotel; a scraper without a key reads them on `metrics_listen`, which serves
    // nothing else.
    let (status, _, _) = send(c.get(s.url("/metrics"))).await;
    assert_eq!(status, 401);
    let (status, _, _) = send(c.get(s.url("/metrics")).bearer_auth(&channel)).await;
    assert_eq!(status, 403);
    let scraped = c
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped
        .text()
        .await
        .unwrap()
        .contains("innkeep_http_requests_total"));
    let other = c
        .get(format!("http://{metrics_addr}/v1/hotels/K1"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let text = c
        .get(s.url("/metrics"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("innkeep_http_requests_total"), "{text}");
    assert!(text.contains("status=\"401\""), "{text}");
    assert!(
        text.contains("innkeep_journal_fsync_duration_seconds"),
        "{text}"
    );
    assert!(text.contains("key=\"ops\""), "{text}");
}

/// Without keys the server refuses to listen anywhere but loopback, naming the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_api_on_a_public_address_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let attempt: Result<Server, EarlyExit> =
        Server::launch(dir.path(), &[("INNKEEP_LISTEN", "0.0.0.0:0")]);
    let early = match attempt {
        Ok(_) => panic!("an open API started on 0.0.0.0"),
        Err(e) => e,
    };
    assert!(!early.timed_out && !early.status.success(), "{early:#?}");
    let text = early.plain_stderr().join("\n");
    assert!(
        text.contains("api_keys") && text.contains("listen"),
        "{text}"
    );
}
