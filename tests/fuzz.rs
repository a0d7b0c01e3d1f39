//! The schema-driven fuzzer (issue #17, "OpenAPI that tells the truth"): Schemathesis
//! generates requests from the server's own `/openapi.json` and runs every one of its
//! checks (`--checks all`) against the real binary with an admin key: no 5xx, every status
//! and body as documented, every schema-valid request accepted, every schema-invalid one
//! refused, missing auth refused, and stateful sequences along the document's links. Any
//! failure fails the test, with Schemathesis's report.
//!
//! Schemathesis (`st`) comes from PyPI: README's test command, `scripts/test.sh`, installs
//! it into a virtualenv under `target/` when it is missing and points
//! `INNKEEP_SCHEMATHESIS` at it. Without it this test fails; it is never skipped.
//!
//! `tests/schemathesis.toml` holds the run's configuration: the statuses the routes
//! document for schema-valid requests refused by rules no schema can state (checked here
//! against the document), and the event stream's read time. The test adds dictionaries of
//! the ids and dates it set up, so that part of the generated requests reach real hotels,
//! rooms and reservations.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{client, plus, send, today, Server};

/// Requests per operation and phase. With the seed, the run takes about 80 s on the
/// 2-core development machine.
const MAX_EXAMPLES: &str = "100";
/// Fixed, so that a run is reproducible.
const SEED: &str = "17";

/// Both hotels keep this zone, so one "today" serves both.
const TZ: &str = "Asia/Shanghai";

/// The statuses `positive_data_acceptance` allows by default; `tests/schemathesis.toml` adds
/// others per route, each of which the route must document.
const DEFAULT_ACCEPTANCE: &[&str] = &["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"];

/// The `st` to run: `INNKEEP_SCHEMATHESIS`, else the virtualenv `scripts/test.sh` makes,
/// else `st` on the `PATH`. Missing is a failure, not a skip.
fn schemathesis() -> PathBuf {
    let candidates = std::env::var_os("INNKEEP_SCHEMATHESIS")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis/bin/st")])
        .chain(
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join("st"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
    for st in candidates {
        if st.is_file() {
            return st;
        }
    }
    panic!(
        "Schemathesis (`st`) is missing: the schema-driven fuzz test needs it. Run the README's \
         test command, `scripts/test.sh`, which installs it from PyPI into target/schemathesis \
         when it is missing, or set INNKEEP_SCHEMATHESIS to an `st` binary."
    );
}

/// What the setup made, for the fuzzer's dictionaries.
struct Fixture {
    /// Reservation ids, in several statuses.
    reservations: Vec<String>,
    /// Their payment references.
    payments: Vec<String>,
    /// Hotel-local today.
    today: jiff::civil::Date,
    /// First night of an out-of-order range.
    out_of_order_from: jiff::civil::Date,
}

/// PUTs `body` and asserts a 2xx.
async fn put(c: &reqwest::Client, s: &Server, key: &str, path: &str, body: Value) -> Value {
    let (status, body, _) = send(c.put(s.url(path)).bearer_auth(key).json(&body)).await;
    assert!((200..300).contains(&status), "PUT {path} → {status} {body}");
    body
}

/// POSTs `body` and asserts a 2xx.
async fn post(c: &reqwest::Client, s: &Server, key: &str, path: &str, body: Value) -> Value {
    let (status, body, _) = send(c.post(s.url(path)).bearer_auth(key).json(&body)).await;
    assert!(
        (200..300).contains(&status),
        "POST {path} → {status} {body}"
    );
    body
}

/// Waits until the sandbox provider has paid reservation `id`.
async fn confirmed(c: &reqwest::Client, s: &Server, key: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let path = format!("/v1/reservations/{id}");
        let (status, body, _) = send(c.get(s.url(&path)).bearer_auth(key)).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] == "confirmed" {
            return;
        }
        assert!(Instant::now() < deadline, "never paid: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two hotels like the demo's, with a rate plan, restrictions, an out-of-order range and
/// reservations in several states (paid, cancelled with a fee kept, checked in and out).
async fn set_up(c: &reqwest::Client, s: &Server, key: &str) -> Fixture {
    let today = today(TZ);
    put(
        c,
        s,
        key,
        "/v1/hotels/DEMO",
        json!({"name": "Innkeep Demo Hotel, The Bund", "time_zone": TZ, "currency": "CNY"}),
    )
    .await;
    let types: [(&str, &str, u16, i64, &[&str]); 3] = [
        (
            "KING",
            "King room",
            2,
            68_000,
            &["101", "102", "103", "104", "105", "106"],
        ),
        (
            "TWIN",
            "Twin room",
            3,
            58_000,
            &["201", "202", "203", "204"],
        ),
        ("SUITE", "Bund view suite", 4, 168_000, &["301", "302"]),
    ];
    for (code, name, capacity, rate, rooms) in types {
        put(
            c,
            s,
            key,
            &format!("/v1/hotels/DEMO/room-types/{code}"),
            json!({"name": name, "capacity": capacity, "base_rate": rate}),
        )
        .await;
        for room in rooms {
            put(
                c,
                s,
                key,
                &format!("/v1/hotels/DEMO/rooms/{room}"),
                json!({"room_type": code}),
            )
            .await;
        }
    }
    put(
        c,
        s,
        key,
        "/v1/hotels/DEMO/rate-plans/NONREF",
        json!({
            "name": "Non-refundable",
            "room_types": ["KING", "TWIN"],
            "adjust_percent": -15,
            "cancellation": {"free_until_hours": 0, "fee": {"percent": 100}},
            "no_show_fee": {"nights": 1},
            "max_advance_days": 365,
        }),
    )
    .await;
    put(
        c,
        s,
        key,
        "/v1/hotels/DEMO/restrictions",
        json!({
            "from": plus(today, 30).to_string(),
            "to": plus(today, 37).to_string(),
            "room_types": ["KING"],
            "weekdays": ["fri", "sat", "sun", "mon"],
            "set": {"min_stay_arrival": 2, "closed_to_departure": true},
        }),
    )
    .await;
    let out_of_order_from = plus(today, 20);
    post(
        c,
        s,
        key,
        "/v1/hotels/DEMO/rooms/106/out-of-order",
        json!({"from": out_of_order_from.to_string(), "to": plus(today, 23).to_string(), "reason": "boiler repair"}),
    )
    .await;
    put(
        c,
        s,
        key,
        "/v1/hotels/FZ",
        json!({"name": "Fuzz Inn", "time_zone": TZ, "currency": "EUR"}),
    )
    .await;
    put(
        c,
        s,
        key,
        "/v1/hotels/FZ/room-types/STD",
        json!({"name": "Standard", "capacity": 2, "base_rate": {"amount": 9_000, "currency": "EUR"}}),
    )
    .await;
    for room in ["A1", "A2", "A3"] {
        put(
            c,
            s,
            key,
            &format!("/v1/hotels/FZ/rooms/{room}"),
            json!({"room_type": "STD"}),
        )
        .await;
    }

    let guest = json!({"name": "Li Lei", "phone": "+86 138 0000 0000", "email": "li@example.com"});
    let book = |room_type: &str, plan: &str, arrival: i64, nights: i64| {
        json!({
            "room_type": room_type,
            "arrival": plus(today, arrival).to_string(),
            "departure": plus(today, arrival + nights).to_string(),
            "guests": 2,
            "guest": guest,
            "rate_plan": plan,
        })
    };
    let mut reservations = Vec::new();
    let mut payments = Vec::new();
    let bookings = [
        ("KING", "BAR", 0, 2),    // checked in, then out
        ("KING", "BAR", 0, 3),    // checked in
        ("TWIN", "NONREF", 5, 2), // paid, then cancelled: the fee is kept
        ("SUITE", "BAR", 7, 1),   // paid
    ];
    for (room_type, plan, arrival, nights) in bookings {
        let r = post(
            c,
            s,
            key,
            "/v1/hotels/DEMO/reservations",
            book(room_type, plan, arrival, nights),
        )
        .await;
        let id = r["id"].as_str().expect("id").to_owned();
        confirmed(c, s, key, &id).await;
        payments.push(
            r["payment"]["out_trade_no"]
                .as_str()
                .expect("ref")
                .to_owned(),
        );
        reservations.push(id);
    }
    for (i, action) in [
        (0, "check-in"),
        (0, "check-out"),
        (1, "check-in"),
        (2, "cancel"),
    ] {
        let id = &reservations[i];
        post(
            c,
            s,
            key,
            &format!("/v1/reservations/{id}/{action}"),
            json!({}),
        )
        .await;
    }
    // And one of the other hotel.
    let r = post(
        c,
        s,
        key,
        "/v1/hotels/FZ/reservations",
        book("STD", "BAR", 1, 2),
    )
    .await;
    reservations.push(r["id"].as_str().expect("id").to_owned());
    payments.push(
        r["payment"]["out_trade_no"]
            .as_str()
            .expect("ref")
            .to_owned(),
    );
    Fixture {
        reservations,
        payments,
        today,
        out_of_order_from,
    }
}

/// Every status `tests/schemathesis.toml` allows a schema-valid request beyond the
/// defaults is documented on its route, with its problem code; returns the file.
fn allowances_are_documented(doc: &Value) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let text = std::fs::read_to_string(&path).expect("tests/schemathesis.toml");
    let config: toml::Table = text.parse().expect("tests/schemathesis.toml is TOML");
    let operations = config["operations"].as_array().expect("[[operations]]");
    let mut allowed = 0;
    for entry in operations {
        let Some(statuses) = entry
            .get("checks")
            .and_then(|c| c.get("positive_data_acceptance"))
            .and_then(|c| c.get("expected-statuses"))
            .and_then(|s| s.as_array())
        else {
            continue;
        };
        let names = match &entry["include-name"] {
            toml::Value::String(name) => vec![name.clone()],
            toml::Value::Array(names) => names
                .iter()
                .map(|n| n.as_str().expect("a name").to_owned())
                .collect(),
            other => panic!("include-name {other}"),
        };
        for name in names {
            let (method, route) = name.split_once(' ').expect("METHOD /path");
            let op = &doc["paths"][route][method.to_ascii_lowercase()];
            assert!(op.is_object(), "{name} is not in /openapi.json");
            for status in statuses {
                let status = status.as_str().expect("a status");
                if DEFAULT_ACCEPTANCE.contains(&status) {
                    continue;
                }
                let described = op["responses"][status]["description"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} allows {status} but does not document it"));
                assert!(
                    described.contains("invalid_")
                        || described.contains("restricted")
                        || described.contains("version_mismatch"),
                    "{name}: {status} is documented without its problem code: {described}"
                );
                allowed += 1;
            }
        }
    }
    assert!(allowed > 0);
    text
}

/// A TOML array of strings.
fn strings(values: impl IntoIterator<Item = impl ToString>) -> String {
    let quoted: Vec<String> = values
        .into_iter()
        .map(|v| format!("{:?}", v.to_string()))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// The dictionaries of what the setup made, to add to `tests/schemathesis.toml`. A
/// dictionary-bound parameter takes one of the listed values half of the time and is
/// generated from the schema otherwise.
fn dictionaries(f: &Fixture) -> String {
    let day = |n: i64| plus(f.today, n).to_string();
    let arrivals = strings([day(0), day(1), day(2)]);
    let departures = strings([day(3), day(4)]);
    let mut froms: Vec<String> = [0, 1, 2].map(day).to_vec();
    froms.push(f.out_of_order_from.to_string());
    let dictionaries = [
        ("hotels", strings(["DEMO", "FZ"])),
        (
            "codes",
            strings(["KING", "TWIN", "SUITE", "STD", "BAR", "NONREF"]),
        ),
        (
            "rooms",
            strings([
                "101", "102", "103", "104", "105", "106", "201", "202", "301", "A1", "A2",
            ]),
        ),
        ("arrivals", arrivals),
        ("departures", departures),
        ("froms", strings(froms)),
        ("guests", "[1, 2]".to_owned()),
        ("reservations", strings(&f.reservations)),
        ("payments", strings(&f.payments)),
    ];
    let bindings = [
        ("path.hotel_id", "hotels"),
        ("path.code", "codes"),
        ("body.room_type", "codes"),
        ("body.rate_plan", "codes"),
        ("body.room_types[*]", "codes"),
        ("body.rate_plans[*]", "codes"),
        ("path.number", "rooms"),
        ("body.room", "rooms"),
        ("query.arrival", "arrivals"),
        ("body.arrival", "arrivals"),
        ("query.from", "arrivals"),
        ("body.from", "arrivals"),
        ("query.date", "arrivals"),
        ("path.from", "froms"),
        ("query.departure", "departures"),
        ("body.departure", "departures"),
        ("query.to", "departures"),
        ("body.to", "departures"),
        ("body.guests", "guests"),
        ("query.guests", "guests"),
        ("path.id", "reservations"),
        ("path.out_trade_no", "payments"),
    ];
    let mut text = "\n[dictionaries]\n".to_owned();
    for (name, values) in dictionaries {
        text.push_str(&format!("{name} = {{ values = {values} }}\n"));
    }
    text.push_str("\n[parameters]\n");
    for (key, dictionary) in bindings {
        text.push_str(&format!(
            "{key:?} = {{ dictionary = {dictionary:?}, probability = 0.5 }}\n"
        ));
    }
    text
}

/// Schemathesis, driven by `/openapi.json`, finds nothing the document does not say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_tells_the_truth() {
    let st = schemathesis();
    let (key, hash) = crate::security::keygen();
    let dir = tempfile::tempdir().unwrap();
    let server_config = dir.path().join("innkeep.toml");
    std::fs::write(
        &server_config,
        format!(
            "[[api_keys]]\nname = \"fuzz\"\nkey_sha256 = \"{hash}\"\nrole = \"admin\"\nhotels = [\"*\"]\n\
             [limits]\nrate_per_second = 100000\nburst = 100000\nmax_holds_per_key = 100000\n\
             [payment]\nprovider = \"sandbox\"\n[payment.sandbox]\ncharge_delay_ms = 0\n"
        ),
    )
    .unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &[("INNKEEP_CONFIG", server_config.to_str().unwrap())],
    );
    let c = client();
    let fixture = set_up(&c, &s, &key).await;
    let (status, doc, _) = send(c.get(s.url("/openapi.json"))).await;
    assert_eq!(status, 200);
    let mut st_config = allowances_are_documented(&doc);
    st_config.push_str(&dictionaries(&fixture));
    let config_path = dir.path().join("schemathesis.toml");
    std::fs::write(&config_path, &st_config).unwrap();

    let started = Instant::now();
    // Run in the temporary directory: Schemathesis keeps caches in the working directory.
    let out = Command::new(&st)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&config_path)
        .args(["run", &s.url("/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "all"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args([
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", st.display()));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "Schemathesis found requests the document does not describe truthfully ({}, {:?}):\n\
         {report}\nits configuration:\n{st_config}",
        out.status,
        started.elapsed()
    );
    // It ran what it should have: every operation, every phase.
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(
            report.contains(&format!("✅ {phase}")),
            "{phase}:\n{report}"
        );
    }
    // Every operation but the document's own route, which Schemathesis leaves out.
    let operations = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, _)| *path != "/openapi.json")
        .map(|(_, item)| item.as_object().map_or(0, |ops| ops.len()))
        .sum::<usize>();
    assert!(
        report.contains(&format!("Tested: {operations}")),
        "not all {operations} operations tested:\n{report}"
    );
    eprintln!("schemathesis: {:?}\n{report}", started.elapsed());
}
