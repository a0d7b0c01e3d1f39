//! `innkeep-load` against a real server: short closed- and open-loop runs with `--setup`,
//! a mix of every operation, hot-spot skew, and the invariant check through the API.

use std::time::Duration;

use innkeep_benches::load::{self, LoadOptions, LoadReport, Mode, StopAt};

use crate::harness::{client, send, Server, SECRET};

/// Options every run here shares: a small hotel so bookings sell out, every operation in
/// the mix, half the traffic on three hot nights.
fn options(s: &Server, prefix: &str) -> LoadOptions {
    LoadOptions {
        target: s.base.clone(),
        connections: 16,
        hotels: 2,
        hotel_prefix: prefix.to_owned(),
        rooms_per_hotel: 12,
        room_types: 2,
        horizon_days: 20,
        stay_nights: "1:50,2:30,3:20".parse().unwrap(),
        hot_share: 0.5,
        hot_dates: 3,
        mix: "availability=40,book=35,pay=15,cancel=10".parse().unwrap(),
        payment_secret: Some(SECRET.to_owned()),
        setup: true,
        seed: 42,
        check: true,
        ..LoadOptions::default()
    }
}

/// What every run must show: traffic, bookings, no unexpected answers, and a check
/// that read reservations back and found nothing wrong.
fn assert_clean(r: &LoadReport) {
    let summary = r.render_text();
    assert!(r.requests > 0, "{summary}");
    assert!(r.bookings.made > 0, "{summary}");
    assert_eq!(r.errors, 0, "{summary}");
    assert_eq!(r.transport_errors, 0, "{summary}");
    assert!(
        r.statuses.keys().all(|s| !s.starts_with('5')),
        "no 5xx: {summary}"
    );
    let check = r.check.as_ref().expect("the check ran");
    assert!(
        check.ok && check.problems.is_empty(),
        "check failed: {summary}"
    );
    assert!(check.reservations_checked > 0, "{summary}");
    assert!(check.nights_checked > 0, "counts were compared: {summary}");
    assert!(r.check_passed());
    // The JSON form carries the same numbers.
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["requests"], r.requests);
    assert_eq!(json["check"]["ok"], true);
    assert!(json["operations"]["book"]["latency"]["p999_us"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_and_open_loop_runs_keep_the_invariants() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);

    // Closed loop, for a request count: 12 rooms per hotel and hot nights sell out.
    let closed = load::run(LoadOptions {
        stop: StopAt::Requests(2_000),
        ..options(&s, "LC")
    })
    .await
    .expect("closed-loop run");
    assert_clean(&closed);
    assert_eq!(closed.requests, 2_000);
    assert_eq!(closed.mode, "closed");
    // The generator's own CPU over the run (this test process's, here) is in the report:
    // 2 000 requests take more than /proc's 10 ms tick.
    assert!(
        closed.own_cpu_us_per_request.is_some_and(|us| us > 0.0),
        "{}",
        closed.render_text()
    );
    assert!(closed.render_text().contains("own CPU"));
    assert!(closed.open_loop.is_none());
    for op in ["availability", "book", "pay", "cancel"] {
        assert!(
            closed.operations[op].requests > 0,
            "{op} ran: {}",
            closed.render_text()
        );
    }
    assert!(closed.bookings.paid > 0 && closed.bookings.cancelled > 0);
    assert!(
        closed.bookings.sold_out > 0,
        "the hot nights sold out: {}",
        closed.render_text()
    );
    assert_eq!(
        closed.codes.get("sold_out"),
        Some(&closed.bookings.sold_out)
    );
    let p = &closed.overall.latency;
    assert!(p.p50_us <= p.p90_us && p.p90_us <= p.p99_us && p.p99_us <= p.p999_us);
    assert!(p.p999_us <= p.max_us && p.max_us > 0);

    // Open loop for a duration, on fresh hotels: ~500 requests due in 1 s.
    let open = load::run(LoadOptions {
        stop: StopAt::Duration(Duration::from_secs(1)),
        mode: Mode::Open {
            rate_per_sec: 500.0,
        },
        ..options(&s, "LO")
    })
    .await
    .expect("open-loop run");
    assert_clean(&open);
    assert_eq!(open.mode, "open");
    let pacing = open.open_loop.as_ref().expect("open-loop pacing");
    assert_eq!(pacing.target_rate_per_sec, 500.0);
    // 500 requests were due within the second: each was sent, or counted as never sent.
    assert_eq!(open.requests + pacing.unsent, 500, "{}", open.render_text());

    // Running again on existing hotels works; their counts are then not compared.
    let again = load::run(LoadOptions {
        stop: StopAt::Requests(300),
        connections: 4,
        ..options(&s, "LC")
    })
    .await
    .expect("second run on the same hotels");
    let check = again.check.as_ref().unwrap();
    assert!(check.ok, "{}", again.render_text());
    assert_eq!(check.nights_checked, 0);
    assert!(check.notes.iter().any(|n| n.contains("existed before")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_and_missing_hotels_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let no_secret = LoadOptions {
        payment_secret: None,
        ..options(&s, "LX")
    };
    let e = load::run(no_secret).await.unwrap_err();
    assert!(e.to_string().contains("--payment-secret"), "{e}");
    let no_setup = LoadOptions {
        setup: false,
        stop: StopAt::Requests(10),
        ..options(&s, "NOPE")
    };
    let e = load::run(no_setup).await.unwrap_err();
    assert!(e.to_string().contains("NOPE-0 does not exist"), "{e}");
}

/// A timeout shorter than a booking takes loses answers: bookings, payments and
/// cancellations whose outcome the generator never saw. The check resolves lost bookings
/// by replaying their `Idempotency-Key` and accepts either state for lost changes, so
/// it still passes — and a real double-sale would still fail it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_are_resolved_by_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let r = load::run(LoadOptions {
        stop: StopAt::Requests(400),
        connections: 8,
        mix: "book=60,pay=20,cancel=20".parse().unwrap(),
        request_timeout: Duration::from_millis(2),
        ..options(&s, "LT")
    })
    .await
    .expect("run with a tight timeout");
    let summary = r.render_text();
    let check = r.check.as_ref().expect("the check ran");
    assert!(check.ok, "{summary}");
    assert!(check.reservations_checked > 0, "{summary}");
    let lost_books = r
        .errors_by_kind
        .keys()
        .any(|k| k.starts_with("book: transport"));
    if lost_books {
        assert!(check.uncertain_resolved > 0, "{summary}");
    }
    // Every error is a lost answer, nothing else.
    assert_eq!(r.errors, r.transport_errors, "{summary}");
}

/// The check is not vacuous: a second client booking in the same hotels during the run
/// holds nights the first generator knows nothing about, so its "counts consistent"
/// comparison fails, names the night, and the run reports the check as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_notices_bookings_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let first = tokio::spawn(load::run(LoadOptions {
        stop: StopAt::Duration(Duration::from_secs(3)),
        connections: 4,
        mix: "availability=50,book=50".parse().unwrap(),
        ..options(&s, "LS")
    }));
    // Wait (bounded) until the first run's setup has created every room.
    let c = client();
    let mut ready = false;
    for _ in 0..500 {
        let (status, body, _) = send(c.get(s.url("/v1/hotels/LS-1"))).await;
        if status == 200 && body["rooms"] == 12 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "setup finished");
    let intruder = load::run(LoadOptions {
        setup: false,
        check: false,
        stop: StopAt::Requests(60),
        connections: 2,
        mix: "book=1".parse().unwrap(),
        hot_share: 0.0,
        seed: 7,
        ..options(&s, "LS")
    })
    .await
    .expect("second client");
    assert!(intruder.bookings.made > 0, "{}", intruder.render_text());
    let report = first.await.unwrap().expect("first run");
    let check = report.check.as_ref().unwrap();
    assert!(!check.ok, "{}", report.render_text());
    assert!(!report.check_passed());
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.contains("availability says")),
        "{}",
        report.render_text()
    );
    // Its own reservations are all as it left them: only the counts disagree.
    assert!(check
        .problems
        .iter()
        .all(|p| !p.contains("DOUBLE-SOLD") && !p.starts_with("reservation ")));
}

/// A server that admits one engine call at a time sheds the rest of 32 connections'
/// bookings with 503 `overloaded`: the report keeps them out of the admitted latency and
/// the goodput, and `honor_retry_after` makes each refused worker wait at least half the
/// `Retry-After` (1 s) before its next request instead of hammering the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shed_requests_are_not_admitted_and_retry_after_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &[("INNKEEP_SHARDS", "1"), ("INNKEEP_MAX_IN_FLIGHT", "1")],
    );
    // Set up over one connection: one call at a time, nothing is shed.
    let base = LoadOptions {
        mix: "book=1".parse().unwrap(),
        check: false,
        ..options(&s, "LV")
    };
    load::run(LoadOptions {
        connections: 1,
        stop: StopAt::Requests(1),
        ..base.clone()
    })
    .await
    .expect("setup run");
    let shed = |r: &LoadReport| {
        let summary = r.render_text();
        assert!(r.overloaded > 0, "some bookings were shed: {summary}");
        assert_eq!(r.errors, 0, "{summary}");
        // Every answer is admitted or shed; goodput is every booking's definite answer.
        assert_eq!(r.overall.admitted.requests + r.overloaded, r.requests);
        let book = &r.operations["book"];
        assert_eq!(book.admitted.requests, r.overall.admitted.requests);
        assert_eq!(
            r.goodput,
            r.bookings.made + r.bookings.sold_out,
            "{summary}"
        );
        assert_eq!(book.admitted.goodput, r.goodput);
        assert!(r.goodput > 0 && r.goodput <= r.overall.admitted.requests);
        assert!(r.overall.admitted.latency.max_us <= r.overall.latency.max_us);
        assert!(summary.contains("admitted µs"), "{summary}");
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["goodput"], r.goodput);
        assert!(json["goodput_rps"].as_f64().unwrap() > 0.0);
        assert_eq!(
            json["operations"]["book"]["admitted"]["requests"],
            book.admitted.requests
        );
        assert!(json["overall"]["admitted"]["latency"]["p99_us"].is_u64());
    };

    // Default: a refused worker sends its next request at once.
    let eager = load::run(LoadOptions {
        connections: 32,
        setup: false,
        stop: StopAt::Duration(Duration::from_secs(1)),
        ..base.clone()
    })
    .await
    .expect("run without Retry-After");
    shed(&eager);

    // Honouring Retry-After: after each refusal a worker waits >= 0.5 s, so in 2 s it is
    // refused at most 4 times; the waits end at the deadline, not after it.
    let polite = load::run(LoadOptions {
        connections: 32,
        setup: false,
        stop: StopAt::Duration(Duration::from_secs(2)),
        honor_retry_after: true,
        seed: 43,
        ..base
    })
    .await
    .expect("run honouring Retry-After");
    shed(&polite);
    assert!(
        polite.overloaded <= 32 * 4,
        "{} refusals: {}",
        polite.overloaded,
        polite.render_text()
    );
    assert!(polite.duration_secs < 3.0, "{}", polite.render_text());
}
