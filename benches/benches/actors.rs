//! Booking round trips through the actors and the journal, via the `innkeep::Engine`
//! facade's crate (`innkeep-actors`), durable (`fdatasync` per batch) and not.
//!
//! - `book/serial/{durable,no_fsync}`: one booking at a time (latency: facade → booking task
//!   → room actor → journal batch → ack).
//! - `book/concurrent_256/{durable,no_fsync}`: 256 bookings in flight at once; the time per
//!   iteration is per booking, so 1/time is throughput.
//! - `book/batch_256/{durable,no_fsync}`: the same 256 at a time through one
//!   `Engine::book_many` call each (one hop per shard instead of one per booking). Group commit shares each
//!   `fdatasync` among the bookings of a batch, which is what makes durable close to
//!   non-durable here.
//!
//! Fixture: [`innkeep_benches::inprocess::Fixture`] (one hotel, 4 room types × 1 000
//! rooms, nothing sells out within a run). For a longer run with the CPU of each thread,
//! see the example `inprocess`.
//!
//! Run: `cargo bench -p innkeep-benches --bench actors`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use innkeep_actors::SyncMode;
use innkeep_benches::inprocess::Fixture;

const IN_FLIGHT: u64 = 256;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("book");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (name, sync) in [
        ("durable", SyncMode::Fdatasync),
        ("no_fsync", SyncMode::None),
    ] {
        // A fresh fixture per function: one function's run can sell a good part of the
        // hotel's 2.8 million room-nights.
        let f = Fixture::new(&rt, sync);
        group.bench_function(format!("serial/{name}"), |b| {
            b.iter(|| {
                rt.block_on(f.engine.book(f.input(), None))
                    .expect("booking")
            })
        });
        f.engine.shutdown();
        let f = Fixture::new(&rt, sync);
        group.bench_function(format!("concurrent_256/{name}"), |b| {
            b.iter_custom(|iters| {
                let f = f.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(IN_FLIGHT);
                        f.book_concurrently(n as usize).await;
                        left -= n;
                    }
                    start.elapsed()
                })
            })
        });
        f.engine.shutdown();
        let f = Fixture::new(&rt, sync);
        group.bench_function(format!("batch_256/{name}"), |b| {
            b.iter_custom(|iters| {
                let f = f.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(IN_FLIGHT);
                        f.book_batch(n as usize).await;
                        left -= n;
                    }
                    start.elapsed()
                })
            })
        });
        f.engine.shutdown();
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
