//! Crash-only supervision, tested the way sled tests crashes: this test binary runs itself
//! again as a child process, whose engine has a room that panics when asked to book. The
//! child must die of SIGABRT on its own, and everything it acknowledged must be there after
//! the restart.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use innkeep_engine::{HotelId, Reservation, ReservationId, RoomKey, RoomNumber, RoomTypeCode};

use crate::tests_support::{input, setup, Stopper};
use crate::{recover_state, BookInput, Engine, EngineConfig, Faults};

/// Set in the child's environment to the data dir it runs on.
const CHILD_DATA_DIR: &str = "INNKEEP_CRASH_TEST_CHILD_DATA_DIR";
/// The child's name among this module's tests.
const CHILD: &str = "child_books_then_its_room_panics";
/// The child's line for each acknowledged booking: this, the id, the reservation (Debug).
const ACKED: &str = "acked";
/// Bookings the child makes before the faulty one.
const BOOKINGS: i64 = 12;
/// How long the child may take, from start to its end; it needs a few seconds.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);
/// SIGABRT, what `std::process::abort` raises.
const SIGABRT: i32 = 6;

/// The room that panics: the only room of type `SUI`.
fn faulty_room(h: &HotelId) -> RoomKey {
    RoomKey {
        hotel_id: h.clone(),
        number: RoomNumber::parse("9").unwrap(),
    }
}

/// The hotel of `setup` (rooms 1 and 2 of type `STD`) plus room 9, the only `SUI`.
async fn setup_with_suite(engine: &Engine) -> HotelId {
    let h = setup(engine, 2).await;
    let suite = RoomTypeCode::parse("SUI").unwrap();
    engine
        .put_room_type(&h, suite.clone(), "Suite", 2, 30_000)
        .await
        .unwrap();
    engine
        .put_room(&h, faulty_room(&h).number, suite)
        .await
        .unwrap();
    h
}

fn suite_input(engine: &Engine, h: &HotelId) -> BookInput {
    BookInput {
        room_type: RoomTypeCode::parse("SUI").unwrap(),
        ..input(engine, h, 1)
    }
}

/// The child's half; returns at once in an ordinary test run. Books `BOOKINGS` stays in
/// the `STD` rooms, printing each as soon as it is acknowledged, then books the suite,
/// whose room panics.
#[test]
fn child_books_then_its_room_panics() {
    let Some(dir) = std::env::var_os(CHILD_DATA_DIR) else {
        return;
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let h = HotelId::parse("H").unwrap();
    let config = EngineConfig {
        faults: Faults {
            panic_in_room: Some(faulty_room(&h)),
            ..Faults::default()
        },
        ..EngineConfig::new(dir)
    };
    let engine = Engine::start(config).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt.block_on(async {
        let h = setup_with_suite(&engine).await;
        for i in 0..BOOKINGS {
            let r = engine
                .book(input(&engine, &h, 1 + 2 * i), None)
                .await
                .unwrap();
            let mut out = std::io::stdout().lock();
            writeln!(out, "{ACKED} {} {r:?}", r.id).unwrap();
            out.flush().unwrap();
        }
        engine.book(suite_input(&engine, &h), None).await
    });
    // Only reached if the panic did not end the process; the parent fails on the exit.
    eprintln!("the faulty booking returned {outcome:?} and the process lives on");
}

/// The name libtest knows the child by.
fn child_test_name() -> String {
    let module = module_path!().split_once("::").unwrap().1;
    format!("{module}::{CHILD}")
}

/// A room handler panics: the process aborts by itself (SIGABRT, logged), instead of
/// living on with that room's arbiter dead; every booking acknowledged before it is
/// recovered intact, the half-made one is not, and the restarted engine books again,
/// the faulty room included.
#[test]
fn a_panicking_room_aborts_the_process_and_a_restart_recovers_everything_acked() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([&child_test_name(), "--exact", "--nocapture"])
        .env(CHILD_DATA_DIR, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // Lines as they come; the channel disconnects when the child's stdout closes.
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut acked: Vec<(ReservationId, String)> = Vec::new();
    loop {
        match lines.recv_timeout(CHILD_DEADLINE.saturating_sub(started.elapsed())) {
            Ok(line) => {
                let Some(rest) = line.strip_prefix(ACKED) else {
                    continue;
                };
                let (id, debug) = rest.trim_start().split_once(' ').unwrap();
                acked.push((ReservationId::parse(id).unwrap(), debug.to_owned()));
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the child still runs after {CHILD_DEADLINE:?} (half-dead?); stderr:\n{}",
                    stderr.join().unwrap()
                );
            }
        }
    }
    // Its stdout closed: the child is gone (or going).
    let status = child.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(
        status.signal(),
        Some(SIGABRT),
        "the child must abort, not {status:?}; stderr:\n{stderr}"
    );
    assert_eq!(acked.len(), BOOKINGS as usize, "stderr:\n{stderr}");
    // Logged: message, location and thread (an arbiter of the engine).
    let logged = stderr
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("panic on an engine thread"))
        .unwrap_or_else(|| panic!("no error logged; stderr:\n{stderr}"));
    for part in ["injected fault: room 9", "room.rs", "actix-rt|system:"] {
        assert!(logged.contains(part), "{part:?} not in {logged:?}");
    }

    // Recovery has every acknowledged booking as it was acknowledged, and not the
    // half-made one.
    let recovered = recover_state(dir.path()).unwrap();
    assert_eq!(recovered.state.check_invariants(), Vec::<String>::new());
    for (id, debug) in &acked {
        let r: &Reservation = &recovered.state.reservation(id).unwrap();
        assert_eq!(&format!("{r:?}"), debug);
    }
    assert_eq!(recovered.state.locator.len(), acked.len(), "nothing else");
    drop(recovered);

    // A fresh engine on the data dir serves them and books again.
    let engine = Stopper(Engine::start(EngineConfig::new(dir.path())).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = &engine.0;
        for (id, debug) in &acked {
            let r = e.reservation(*id).await.unwrap();
            assert_eq!(&format!("{r:?}"), debug);
        }
        let h = HotelId::parse("H").unwrap();
        let suite = e.book(suite_input(e, &h), None).await.unwrap();
        assert_eq!(
            suite.room,
            faulty_room(&h).number,
            "the suite's nights are free"
        );
        e.book(input(e, &h, 1), None).await.unwrap();
    });
}
