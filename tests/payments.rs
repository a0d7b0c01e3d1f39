//! Payments end to end with the sandbox provider: money and rooms must always agree.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{booking, client, hotel, plus, send, today, Rng, Server};

const TZ: &str = "Asia/Shanghai";

/// A few hundred bookings with short holds and random cancellations while the sandbox
/// drops 30% of its callbacks, duplicates 30%, holds some back so later ones overtake
/// them, fails some charges and answers some queries and refunds with errors. When the
/// dust settles every reservation is exactly one of confirmed-and-paid, or
/// cancelled/expired and never charged, failed or refunded — and the money the sandbox
/// kept equals the sum of the confirmed totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sandbox_soak_money_and_rooms_agree() {
    const WORKERS: u64 = 12;
    const BOOKINGS_PER_WORKER: u64 = 25;
    const ROOMS: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &[
            ("INNKEEP_HOLD_SECONDS", "2"),
            ("INNKEEP_PAYMENT_PROVIDER", "sandbox"),
            ("INNKEEP_PAYMENT_RECONCILE_EVERY_SECONDS", "1"),
            ("INNKEEP_PAYMENT_PENDING_THRESHOLD_SECONDS", "1"),
            ("INNKEEP_PAYMENT_CALL_TIMEOUT_MS", "2000"),
            ("INNKEEP_PAYMENT_MAX_ATTEMPTS", "3"),
            ("INNKEEP_PAYMENT_BACKOFF_BASE_MS", "50"),
            ("INNKEEP_PAYMENT_SANDBOX_CHARGE_DELAY_MS", "500"),
            ("INNKEEP_PAYMENT_SANDBOX_DELAY_MS", "800"),
            ("INNKEEP_PAYMENT_SANDBOX_DROP_RATE", "0.3"),
            ("INNKEEP_PAYMENT_SANDBOX_DUPLICATE_RATE", "0.3"),
            ("INNKEEP_PAYMENT_SANDBOX_REORDER_RATE", "0.2"),
            ("INNKEEP_PAYMENT_SANDBOX_FAIL_RATE", "0.05"),
            ("INNKEEP_PAYMENT_SANDBOX_QUERY_ERROR_RATE", "0.2"),
            ("INNKEEP_PAYMENT_SANDBOX_REFUND_ERROR_RATE", "0.2"),
            ("INNKEEP_PAYMENT_SANDBOX_SEED", "20261123"),
        ],
    );
    let c = client();
    hotel(&c, &s, "PAY", TZ, ROOMS).await;
    let first = plus(today(TZ), 1);

    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let c = c.clone();
        let book_url = s.url("/v1/hotels/PAY/reservations");
        let base = s.url("");
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x5EED_0000_0000_0001 ^ ((worker + 1) * 0x0100_0000_01B3));
            let mut made = Vec::new();
            let mut sold_out = 0u64;
            let mut cancels = Vec::new();
            for _ in 0..BOOKINGS_PER_WORKER {
                let arrival = plus(first, rng.below(40) as i64);
                let departure = plus(arrival, 1 + rng.below(3) as i64);
                let (status, body, _) =
                    send(c.post(&book_url).json(&booking(arrival, departure))).await;
                match status {
                    201 => {
                        // A quarter are cancelled after a random while: before or after
                        // payment, before or after the hold lapses.
                        if rng.below(4) == 0 {
                            let id = body["id"].as_str().unwrap().to_owned();
                            let wait = Duration::from_millis(rng.below(3_000));
                            let (c, base) = (c.clone(), base.clone());
                            cancels.push(tokio::spawn(async move {
                                tokio::time::sleep(wait).await;
                                let url = format!("{base}/v1/reservations/{id}/cancel");
                                let (status, body, _) = send(c.post(&url)).await;
                                assert!(
                                    status == 200
                                        || (status == 409 && body["code"] == "invalid_transition"),
                                    "cancel → {status} {body}"
                                );
                                status == 200
                            }));
                        }
                        made.push(body);
                    }
                    409 => {
                        assert_eq!(body["code"], "sold_out", "{body}");
                        sold_out += 1;
                    }
                    other => panic!("booking → {other} {body}"),
                }
                tokio::time::sleep(Duration::from_millis(rng.below(60))).await;
            }
            let mut cancelled = 0u64;
            for t in cancels {
                cancelled += u64::from(t.await.unwrap());
            }
            (made, sold_out, cancelled)
        }));
    }
    let mut reservations: Vec<Value> = Vec::new();
    let (mut sold_out, mut cancelled) = (0, 0);
    for t in tasks {
        let (made, so, ca) = t.await.unwrap();
        reservations.extend(made);
        sold_out += so;
        cancelled += ca;
    }
    assert!(reservations.len() >= 200, "{} bookings", reservations.len());

    // Wait (bounded) until the sandbox has nothing in flight, no refund is owed, and the
    // books agree.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (ledger, problems) = loop {
        let (ledger, problems) = check(&c, &s, &reservations).await;
        if problems.is_empty() || Instant::now() > deadline {
            break (ledger, problems);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        problems.is_empty(),
        "{} problems, e.g. {:#?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );

    let mut confirmed_total = 0i64;
    let mut by_status: HashMap<String, u64> = HashMap::new();
    for r in &reservations {
        let id = r["id"].as_str().unwrap();
        let (_, now, _) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
        *by_status
            .entry(now["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
        if now["status"] == "confirmed" {
            confirmed_total += now["total"]["amount"].as_i64().unwrap();
        }
    }
    let l = &ledger["ledger"];
    let sup = &ledger["supervisor"];
    assert_eq!(
        l["net_captured_minor"].as_i64().unwrap(),
        confirmed_total,
        "money kept by the provider equals the confirmed totals"
    );
    assert!(l["callbacks_dropped"].as_u64().unwrap() > 0);
    assert!(l["callbacks_duplicated"].as_u64().unwrap() > 0);
    assert!(sup["reconciliation_fixes"].as_u64().unwrap() > 0);
    assert!(l["refunds"].as_u64().unwrap() > 0);
    eprintln!(
        "soak: {} bookings ({} sold out), {} cancelled by clients, final statuses {:?}; \
         sandbox: {} charges, captured {} refunded {} net {} minor units (= confirmed \
         totals {}); callbacks sent {} dropped {} duplicated {} reordered {}; {} refunds; \
         injected errors: {} query, {} refund; supervisor: {} reconciliation fixes, {} \
         refunds recorded, {} gateway failures",
        reservations.len(),
        sold_out,
        cancelled,
        by_status,
        l["charges"].as_array().unwrap().len(),
        l["captured_minor"],
        l["refunded_minor"],
        l["net_captured_minor"],
        confirmed_total,
        l["callbacks_sent"],
        l["callbacks_dropped"],
        l["callbacks_duplicated"],
        l["callbacks_reordered"],
        l["refunds"],
        l["query_errors"],
        l["refund_errors"],
        sup["reconciliation_fixes"],
        sup["refunds_recorded"],
        sup["gateway_failures"],
    );
}

/// Every reservation against the sandbox's ledger; answers the ledger and what disagrees.
async fn check(c: &reqwest::Client, s: &Server, reservations: &[Value]) -> (Value, Vec<String>) {
    let (status, ledger, _) = send(c.get(s.url("/v1/payments/sandbox/ledger"))).await;
    assert_eq!(status, 200, "{ledger}");
    let mut problems = Vec::new();
    if ledger["ledger"]["in_flight"] != 0 {
        problems.push(format!(
            "sandbox in flight: {}",
            ledger["ledger"]["in_flight"]
        ));
    }
    if ledger["supervisor"]["refunds_owed"] != 0 {
        problems.push(format!(
            "refunds owed: {}",
            ledger["supervisor"]["refunds_owed"]
        ));
    }
    let charges: HashMap<&str, &Value> = ledger["ledger"]["charges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ch| (ch["out_trade_no"].as_str().unwrap(), ch))
        .collect();
    for r in reservations {
        let id = r["id"].as_str().unwrap();
        let otn = r["payment"]["out_trade_no"].as_str().unwrap();
        let (_, now, _) = send(c.get(s.url(&format!("/v1/reservations/{id}")))).await;
        let (_, pay, _) = send(c.get(s.url(&format!("/v1/payments/{otn}")))).await;
        let status = now["status"].as_str().unwrap();
        let paid = pay["status"].as_str().unwrap();
        assert_eq!(now["payment"]["status"], pay["status"]);
        let charge = charges.get(otn).map(|ch| ch["state"].as_str().unwrap());
        let ok = match (status, paid, charge) {
            _ if pay["refund_owed"] == true => false,
            ("confirmed", "succeeded", Some("captured")) => true,
            ("cancelled" | "expired", "pending" | "failed", Some("failed")) => true,
            ("cancelled" | "expired", "refunded", Some("refunded")) => true,
            _ => false,
        };
        if !ok {
            problems.push(format!(
                "{id}: reservation {status}, payment {paid} (owed {}), sandbox {charge:?}",
                pay["refund_owed"]
            ));
        }
    }
    (ledger, problems)
}
