//! The payment supervisor through the facade: refunds owed survive a restart, and
//! reconciliation applies what a lost callback would have said.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use innkeep_engine::{Action, PaymentOutcome, PaymentReport, PaymentStatus, Reservation, Status};

use crate::gateway::{ChargeIntent, GatewayError, GatewayFuture, GatewayStatus, RefundRequest};
use crate::tests_support::{input, setup, Stopper};
use crate::{Engine, EngineConfig, PaymentGateway, RetryPolicy};

/// A scripted provider.
#[derive(Debug, Default)]
struct FakeGateway {
    /// Refuse every refund (a provider outage).
    refuse_refunds: bool,
    /// What `query` answers per `out_trade_no` (default: pending).
    answers: Mutex<HashMap<String, GatewayStatus>>,
    /// Charges created.
    created: Mutex<Vec<String>>,
    /// Refunds issued.
    refunds: Mutex<Vec<String>>,
    /// Each refund's own reference and amount.
    refund_nos: Mutex<Vec<(String, i64)>>,
}

impl PaymentGateway for FakeGateway {
    fn create(&self, intent: ChargeIntent) -> GatewayFuture<()> {
        self.created.lock().unwrap().push(intent.out_trade_no);
        Box::pin(async { Ok(()) })
    }
    fn query(&self, out_trade_no: String) -> GatewayFuture<GatewayStatus> {
        let answer = self
            .answers
            .lock()
            .unwrap()
            .get(&out_trade_no)
            .cloned()
            .unwrap_or(GatewayStatus::Pending);
        Box::pin(async move { Ok(answer) })
    }
    fn refund(&self, refund: RefundRequest) -> GatewayFuture<()> {
        if self.refuse_refunds {
            return Box::pin(async { Err(GatewayError::Unavailable("down".into())) });
        }
        self.refund_nos
            .lock()
            .unwrap()
            .push((refund.out_refund_no, refund.amount.amount_minor));
        self.refunds.lock().unwrap().push(refund.out_trade_no);
        Box::pin(async { Ok(()) })
    }
}

fn config(dir: &std::path::Path, gateway: Arc<FakeGateway>) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.payment.gateway = Some(gateway);
    c.payment.reconcile_every = Duration::from_millis(100);
    c.payment.pending_threshold = Duration::ZERO;
    c.payment.retry = RetryPolicy {
        call_timeout: Duration::from_millis(200),
        max_attempts: 2,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
    };
    c
}

async fn wait_for(
    engine: &Engine,
    r: &Reservation,
    done: impl Fn(&Reservation) -> bool,
) -> std::sync::Arc<Reservation> {
    for _ in 0..100 {
        let now = engine.reservation(r.id).await.unwrap();
        if done(&now) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} never got there: {:?}",
        r.id,
        engine.reservation(r.id).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_owed_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let down = Arc::new(FakeGateway {
        refuse_refunds: true,
        ..FakeGateway::default()
    });
    let engine = Stopper(Engine::start(config(dir.path(), down.clone())).unwrap());
    let h = setup(&engine.0, 1).await;
    let r = engine.0.book(input(&engine.0, &h, 1), None).await.unwrap();
    let paid = PaymentReport::Succeeded {
        trade_no: "T1".into(),
    };
    let (_, outcome) = engine.0.apply_payment(r.id, paid).await.unwrap();
    assert_eq!(outcome, PaymentOutcome::Confirmed);
    let cancelled = engine.0.change(r.id, Action::Cancel, None).await.unwrap();
    assert!(cancelled.payment.refund_owed);
    // The provider is down: the refund stays owed through several retries.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let still = engine.0.reservation(r.id).await.unwrap();
    assert!(still.payment.refund_owed);
    assert_eq!(still.payment.status, PaymentStatus::Succeeded);
    assert!(engine.0.payment_stats().await.unwrap().gateway_failures > 0);
    assert!(down
        .created
        .lock()
        .unwrap()
        .contains(&r.payment.out_trade_no.to_string()));
    drop(engine);

    // After a restart with the provider back, the owed refund goes out on its own.
    let up = Arc::new(FakeGateway::default());
    let engine = Stopper(Engine::start(config(dir.path(), up.clone())).unwrap());
    let done = wait_for(&engine.0, &r, |r| {
        r.payment.status == PaymentStatus::Refunded
    })
    .await;
    assert!(!done.payment.refund_owed);
    assert_eq!(done.status, Status::Cancelled);
    assert_eq!(
        *up.refunds.lock().unwrap(),
        vec![r.payment.out_trade_no.to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_applies_a_lost_callback() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Arc::new(FakeGateway::default());
    let engine = Stopper(Engine::start(config(dir.path(), gateway.clone())).unwrap());
    let h = setup(&engine.0, 2).await;
    let paid = engine.0.book(input(&engine.0, &h, 1), None).await.unwrap();
    let failed = engine.0.book(input(&engine.0, &h, 1), None).await.unwrap();
    let given_back = engine.0.book(input(&engine.0, &h, 4), None).await.unwrap();
    {
        let mut answers = gateway.answers.lock().unwrap();
        answers.insert(
            paid.payment.out_trade_no.to_string(),
            GatewayStatus::Succeeded {
                trade_no: "T9".into(),
                amount: paid.payment.amount,
            },
        );
        answers.insert(
            failed.payment.out_trade_no.to_string(),
            GatewayStatus::Failed {
                trade_no: "F9".into(),
            },
        );
        // Captured and refunded at the provider: no money is held, so no confirmation.
        answers.insert(
            given_back.payment.out_trade_no.to_string(),
            GatewayStatus::Refunded {
                trade_no: "R9".into(),
                amount: given_back.payment.amount,
            },
        );
    }
    let now = wait_for(&engine.0, &paid, |r| r.status == Status::Confirmed).await;
    assert_eq!(now.payment.trade_no.as_deref(), Some("T9"));
    let now = wait_for(&engine.0, &failed, |r| {
        r.payment.status == PaymentStatus::Failed
    })
    .await;
    assert_eq!(
        now.status,
        Status::PendingPayment,
        "a failure leaves the hold running"
    );
    let now = wait_for(&engine.0, &given_back, |r| {
        r.payment.status == PaymentStatus::Failed
    })
    .await;
    assert_eq!(
        now.status,
        Status::PendingPayment,
        "no money held, no confirmation"
    );
    // The counter moves just after the room answered the supervisor.
    let mut fixes = 0;
    for _ in 0..50 {
        fixes = engine.0.payment_stats().await.unwrap().reconciliation_fixes;
        if fixes >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fixes >= 2, "{fixes}");
}

/// A multi-room booking has one charge with the provider, for the sum of its reservations'
/// shares; reconciliation applies a lost callback for it to every reservation at once; and
/// a reservation of it cancelled alone is refunded its share against that charge, under a
/// refund reference of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bookings_one_charge_is_reconciled_and_refunded_by_reservation() {
    use innkeep_engine::group::{GroupInput, GroupRoom};
    use innkeep_engine::jiff::ToSpan;
    let dir = tempfile::tempdir().unwrap();
    let gateway = Arc::new(FakeGateway::default());
    let engine = Stopper(Engine::start(config(dir.path(), gateway.clone())).unwrap());
    let h = setup(&engine.0, 2).await;
    let arrival = engine.0.today(&h).unwrap().checked_add(1.days()).unwrap();
    let line = GroupRoom {
        room_type: innkeep_engine::RoomTypeCode::parse("STD").unwrap(),
        guests: 1,
        guest: None,
    };
    let input = GroupInput {
        hotel_id: h.clone(),
        arrival,
        departure: arrival.checked_add(2.days()).unwrap(),
        guest: innkeep_engine::Guest::parse("Lead", "+86 138 0000 0000", "l@example.com").unwrap(),
        rooms: vec![line.clone(), line],
        rate_plan: None,
        created_by: None,
    };
    let booking = engine.0.book_group(input, None).await.unwrap();
    let reference = booking.summary.out_trade_no.to_string();
    for _ in 0..100 {
        if !gateway.created.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        *gateway.created.lock().unwrap(),
        vec![reference.clone()],
        "one charge"
    );
    gateway.answers.lock().unwrap().insert(
        reference.clone(),
        GatewayStatus::Succeeded {
            trade_no: "TG".into(),
            amount: booking.summary.amount,
        },
    );
    let (a, b) = (&booking.reservations[0], &booking.reservations[1]);
    wait_for(&engine.0, a, |r| r.status == Status::Confirmed).await;
    let b_now = engine.0.reservation(b.id).await.unwrap();
    assert_eq!(b_now.status, Status::Confirmed, "confirmed together");
    assert_eq!(b_now.payment.trade_no.as_deref(), Some("TG"));

    engine.0.change(b.id, Action::Cancel, None).await.unwrap();
    let refunded = wait_for(&engine.0, b, |r| {
        r.payment.status == PaymentStatus::Refunded
    })
    .await;
    assert!(!refunded.payment.refund_owed);
    assert_eq!(*gateway.refunds.lock().unwrap(), vec![reference]);
    assert_eq!(
        *gateway.refund_nos.lock().unwrap(),
        vec![(b.id.out_trade_no().to_string(), b.total.amount_minor)]
    );
    let a_now = engine.0.reservation(a.id).await.unwrap();
    assert_eq!(a_now.status, Status::Confirmed, "the other stays");
}
