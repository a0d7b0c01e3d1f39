//! In-process durable bookings per second (issue #13's target (d)), with the CPU each of
//! the process's threads spent, so a run shows which thread bounds it.
//!
//! `cargo run --release -p innkeep-benches --example inprocess -- [bookings] [batch] [mode] [callers]`
//! (defaults: 1000000 bookings, `Engine::book_many` calls of 256, `durable`; mode
//! `no-fsync` runs the journal without `fdatasync`; batch `1` calls `Engine::book` with
//! 256 in flight instead). A call is dealt over the shards, each admitting up to
//! [`innkeep_benches::inprocess::MAX_IN_FLIGHT`]: batches up to 8 192 run whole on two
//! shards (`inprocess 1000000 4096`). `callers` (default 1) splits the bookings over that
//! many callers, each making its `book_many` calls one after another, all at once
//! (`inprocess 1000000 2048 durable 2`). The fixture is the criterion bench's
//! ([`innkeep_benches::inprocess::Fixture`]); the caller's runtime has two worker threads,
//! as an embedder's would on a two-core machine.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use innkeep_actors::SyncMode;
use innkeep_benches::inprocess::Fixture;
use innkeep_benches::proc_stat;

/// Bookings in flight when calling `Engine::book` one at a time.
const IN_FLIGHT: usize = 256;

/// CPU seconds (user + system) of each thread of this process, summed by thread name.
fn cpu_by_thread() -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        if let Some((name, secs)) = proc_stat::name_and_cpu_secs(&stat) {
            *out.entry(name.to_owned()).or_insert(0.0) += secs;
        }
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let bookings: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let batch: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let sync = match args.next().as_deref() {
        Some("no-fsync") => SyncMode::None,
        _ => SyncMode::Fdatasync,
    };
    // Callers each with its own `book_many` calls, one after another: while one caller's
    // bookings wait for their sync, another's are decided.
    let callers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let f = Fixture::new(&rt, sync);
    let before = cpu_by_thread();
    let start = Instant::now();
    let booked = rt.block_on(async {
        let mut left = bookings;
        while left > 0 {
            if batch <= 1 {
                let n = left.min(IN_FLIGHT);
                f.book_concurrently(n).await;
                left -= n;
            } else {
                let per_caller = left.div_ceil(callers);
                let running: Vec<_> = (0..callers)
                    .map(|c| {
                        let f = std::sync::Arc::clone(&f);
                        let mut mine = left.saturating_sub(c * per_caller).min(per_caller);
                        tokio::spawn(async move {
                            while mine > 0 {
                                let n = mine.min(batch);
                                f.book_batch(n).await;
                                mine -= n;
                            }
                        })
                    })
                    .collect();
                for caller in running {
                    caller.await.expect("caller");
                }
                left = 0;
            }
        }
        bookings
    });
    let elapsed = start.elapsed().as_secs_f64();
    let after = cpu_by_thread();
    let mut total_cpu = 0.0;
    let mut threads = Vec::new();
    for (name, cpu) in &after {
        let spent = cpu - before.get(name).copied().unwrap_or(0.0);
        total_cpu += spent;
        if spent > 0.0 {
            threads.push(format!(
                "\"{name}\": {:.2}",
                spent * 1e6 / booked.max(1) as f64
            ));
        }
    }
    let _ = writeln!(
        std::io::stdout().lock(),
        "{{\"bookings\": {booked}, \"batch\": {batch}, \"durable\": {}, \"elapsed_s\": {elapsed:.3}, \
         \"bookings_per_s\": {:.0}, \"cpu_us_per_booking\": {:.2}, \"cpu_us_per_booking_by_thread\": {{{}}}}}",
        matches!(sync, SyncMode::Fdatasync),
        booked as f64 / elapsed,
        total_cpu * 1e6 / booked.max(1) as f64,
        threads.join(", ")
    );
    f.engine.shutdown();
}
