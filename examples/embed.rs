//! Embedding Innkeep in-process: no HTTP, the same engine the server runs.
//!
//! Starts an engine on a data dir, sets up a hotel, watches its events, books a room,
//! reads the reservation back, cancels it, then restarts the engine on the same data dir
//! and finds the reservation as it was left: every acknowledged change is durable.
//!
//! ```sh
//! cargo run --example embed            # prints what it did
//! cargo test --example embed           # the same, checked (run by scripts/test.sh)
//! ```

use std::path::Path;

use anyhow::Context;
use innkeep::domain::event::Event;
use innkeep::domain::reservation::{Action, Guest, Status};
use innkeep::domain::{HotelId, RoomNumber, RoomTypeCode};
use innkeep::{BookInput, Engine, EngineConfig};

/// What the walk-through saw.
#[derive(Debug)]
struct Walkthrough {
    /// The booked reservation's status after cancelling it.
    status: Status,
    /// Its version then (1 booked, 2 cancelled).
    version: u64,
    /// Its status read after the restart.
    status_after_restart: Status,
    /// The events the subscription delivered for the booking and the cancellation, in
    /// journal order: `(sequence, kind)`.
    events: Vec<(u64, &'static str)>,
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("a temporary data dir")?;
    let seen = walk_through(dir.path())?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "booked, then {:?} at version {}",
        seen.status, seen.version
    )?;
    writeln!(out, "after a restart: {:?}", seen.status_after_restart)?;
    for (seq, kind) in &seen.events {
        writeln!(out, "event {seq}: {kind}")?;
    }
    Ok(())
}

/// The walk-through, on `data_dir`.
fn walk_through(data_dir: &Path) -> anyhow::Result<Walkthrough> {
    let config = || {
        let mut config = EngineConfig::new(data_dir);
        // Two shards are plenty for an example; the default is one per core.
        config.shards = 2;
        config
    };
    // `Engine::start` recovers the data dir and starts the engine's own threads (its
    // shards). It blocks, so it runs here, before and outside any async runtime.
    let engine = Engine::start(config())?;
    // The embedder's own runtime: the engine's calls are futures it can await anywhere.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let hotel = HotelId::parse("EMBED")?;
    let (id, status, version, events) = runtime.block_on(async {
        let king = RoomTypeCode::parse("KING")?;
        engine
            .put_hotel(hotel.clone(), "Embedded Inn", "Europe/Paris", "EUR")
            .await?;
        engine
            .put_room_type(&hotel, king.clone(), "King", 2, 12_000)
            .await?;
        engine
            .put_room(&hotel, RoomNumber::parse("101")?, king.clone())
            .await?;

        // Every durable event from now on, all hotels (filter by `event.hotel_id()`).
        let mut feed = engine.events(None).live;
        let arrival = engine.today(&hotel)?.tomorrow()?;
        let booked = engine
            .book(
                BookInput {
                    hotel_id: hotel.clone(),
                    room_type: king,
                    arrival,
                    departure: arrival.tomorrow()?,
                    guests: 2,
                    guest: Guest::parse("Ada Lovelace", "+44 20 7946 0000", "ada@example.org")?,
                    room: None,
                    rate_plan: None,
                    created_by: None,
                },
                None,
            )
            .await?;
        let read = engine.reservation(booked.id).await?;
        anyhow::ensure!(read.id == booked.id && read.status == Status::PendingPayment);
        let cancelled = engine
            .change(booked.id, Action::Cancel, Some(read.version))
            .await?;

        let mut events = Vec::new();
        while events.len() < 2 {
            let delivered = feed.recv().await.context("the event feed closed")?;
            if delivered.event.hotel_id() != &hotel {
                continue;
            }
            let kind = match delivered.event.as_ref() {
                Event::ReservationCreated { .. } => "created",
                Event::ReservationChanged { .. } => "changed",
                _ => "other",
            };
            events.push((delivered.seq, kind));
        }
        anyhow::Ok((booked.id, cancelled.status, cancelled.version, events))
    })?;
    engine.shutdown();

    // A new engine on the same data dir recovers what the first acknowledged.
    let engine = Engine::start(config())?;
    let after = runtime.block_on(engine.reservation(id))?;
    engine.shutdown();
    Ok(Walkthrough {
        status,
        version,
        status_after_restart: after.status,
        events,
    })
}

#[cfg(test)]
mod tests {
    /// The example does what its doc says.
    #[test]
    fn books_watches_cancels_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let seen = super::walk_through(dir.path()).unwrap();
        assert_eq!(seen.status, super::Status::Cancelled);
        assert_eq!(seen.version, 2);
        assert_eq!(seen.status_after_restart, super::Status::Cancelled);
        assert_eq!(
            seen.events
                .iter()
                .map(|(_, kind)| *kind)
                .collect::<Vec<_>>(),
            ["created", "changed"]
        );
        assert!(seen.events[0].0 < seen.events[1].0, "{:?}", seen.events);
    }
}
