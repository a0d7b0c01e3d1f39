//! The live event feed: every durable event, in journal order, for the SSE stream.
//!
//! The journal writer publishes each committed record here, from its `on_commit` hook
//! (after the batch's fdatasync and before its acks, so nothing unacknowledged is ever
//! shown, and every acknowledged event is shown by the time its caller hears of it). Subscribers get the recent events they missed
//! from a bounded in-memory window, then the live ones from a bounded broadcast channel;
//! a subscriber that falls behind the channel is told so and must resume.
//!
//! The window survives restarts: the journal keeps at least the newest
//! `resume_window_events` records on disk even when a snapshot covers them
//! ([`innkeep_persistence::JournalOptions::retain_records`]), and start-up reads them back
//! in its recovery pass ([`crate::recover_state_with_history`]: decoded, not applied) into
//! [`EventFeed::new`]. So a `Last-Event-ID` within the window resumes exactly, whether the
//! server stopped cleanly or was killed: the feed only ever showed durable events, and
//! recovery cuts only a torn tail of records that were never acknowledged, hence never
//! shown. An id older than the window, or newer than anything this journal holds, gets
//! `missed_before` instead.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use innkeep_engine::Event;
use tokio::sync::{broadcast, watch};

/// Default number of recent events kept for resuming (`Last-Event-ID`), in memory and in
/// the journal ([`crate::EngineConfig::resume_window_events`]). A client disconnected
/// for a while (a phone losing signal, a deploy) reconnects inside it at normal booking
/// rates; the window keeps each event encoded (≈ 150 B for a booking, ≈ 60 B for other
/// changes, plus 24 B of slot), decodes it again only for a subscriber that resumes, and
/// is read back from the journal at start-up (≈ 40 ms for a full default window).
pub const FEED_WINDOW_EVENTS: usize = 65_536;

/// Largest accepted window: up to ≈ 1 GiB of events in memory, and this many journal
/// records kept on disk and decoded at every start-up.
pub const MAX_FEED_WINDOW_EVENTS: usize = 1 << 20;

/// Live events buffered per subscriber before it counts as lagging.
pub const FEED_CHANNEL_EVENTS: usize = 4_096;

/// One durable event with its journal sequence number (the SSE event id).
#[derive(Clone, Debug)]
pub struct FeedEvent {
    /// Its journal sequence number.
    pub seq: u64,
    /// The event.
    pub event: Arc<Event>,
}

/// What a new subscriber gets.
#[derive(Debug)]
pub struct FeedSubscription {
    /// Events after the requested id that are still in the window, oldest first.
    pub backlog: Vec<FeedEvent>,
    /// Events published from now on.
    pub live: broadcast::Receiver<FeedEvent>,
    /// Set when the feed cannot give every event after the requested id, to the first
    /// sequence number the window holds (or will hold): the id is older than the window
    /// (those events are gone from memory and from the journal), or newer than any event
    /// this journal has (not one of its ids, e.g. a data dir restored from a backup).
    /// The subscriber must reload its state.
    pub missed_before: Option<u64>,
}

/// An event in the window: encoded, because the window is resident all the time and read
/// only by resuming subscribers. A decoded booking is ~600 bytes in five allocations
/// (the reservation as the API shows it); its encoding is a quarter of that in one.
#[derive(Debug)]
struct Kept {
    /// Its journal sequence number.
    seq: u64,
    /// The event, as [`innkeep_persistence::encode_part`] encodes it.
    bytes: Box<[u8]>,
}

impl Kept {
    /// Encodes an event read back at start-up (published ones come encoded).
    fn encode(seq: u64, event: &Event) -> Option<Self> {
        match innkeep_persistence::encode_part(event) {
            Ok(bytes) => Some(Self {
                seq,
                bytes: bytes.into_boxed_slice(),
            }),
            Err(e) => {
                // Every event was decoded from the journal; this cannot fail.
                tracing::error!(seq, error = %e, "event feed could not encode an event");
                None
            }
        }
    }

    fn decode(&self) -> Result<FeedEvent, String> {
        innkeep_persistence::decode_part(&self.bytes).map(|event| FeedEvent {
            seq: self.seq,
            event: Arc::new(event),
        })
    }
}

#[derive(Debug)]
struct Window {
    /// Recent events, oldest first, consecutive, at most `capacity`.
    events: VecDeque<Kept>,
    /// Most events kept.
    capacity: usize,
    /// Sequence number of the first event this process could show: events at or after it
    /// are in `events` or still to come.
    first_seq: u64,
    /// Sequence number the next published event will have.
    next_seq: u64,
}

/// The feed. Publishing and subscribing take one short lock, so a subscriber never misses
/// an event between its backlog and its live channel.
#[derive(Debug)]
pub struct EventFeed {
    window: Mutex<Window>,
    live: broadcast::Sender<FeedEvent>,
    /// The sequence number the next published event will have, for readers that page
    /// through the window at their own pace ([`EventFeed::page_after`]) and only need to
    /// wake when there is more.
    next_seq: watch::Sender<u64>,
}

/// A page of events read at the reader's pace ([`EventFeed::page_after`]).
#[derive(Debug)]
pub struct FeedPage {
    /// Events after the requested id, oldest first, consecutive.
    pub events: Vec<FeedEvent>,
    /// Set when the window no longer (or never) held the event right after the requested
    /// id: the first sequence number it holds. The reader must fetch what lies before it
    /// elsewhere (the journal on disk).
    pub missed_before: Option<u64>,
}

impl EventFeed {
    /// A feed keeping the newest `window_events` events (clamped to
    /// 1..=[`MAX_FEED_WINDOW_EVENTS`]), whose next event will have sequence number
    /// `next_seq`, starting with `history`: the journal's newest events before `next_seq`,
    /// oldest first (see [`crate::recover_state_with_history`]). Only the consecutive run
    /// of `history` that ends at `next_seq - 1` is kept, so the window never holds an event
    /// the journal does not have right before the live ones.
    pub fn new(window_events: usize, next_seq: u64, history: Vec<FeedEvent>) -> Self {
        let capacity = window_events.clamp(1, MAX_FEED_WINDOW_EVENTS);
        let mut expected = next_seq;
        let run = history
            .iter()
            .rev()
            .take(capacity)
            .take_while(|e| {
                let fits = e.seq.checked_add(1) == Some(expected);
                expected = e.seq;
                fits
            })
            .count();
        if run < history.len().min(capacity) {
            tracing::warn!(
                kept = run,
                given = history.len(),
                next_seq,
                "event feed history is not consecutive up to the next seq; keeping its consecutive end"
            );
        }
        let mut events: VecDeque<Kept> = VecDeque::with_capacity(run);
        for e in history.iter().skip(history.len() - run) {
            match Kept::encode(e.seq, &e.event) {
                Some(kept) => events.push_back(kept),
                // Consecutive or nothing: only what follows the gap is kept.
                None => events.clear(),
            }
        }
        let first_seq = events.front().map_or(next_seq, |e| e.seq);
        Self {
            window: Mutex::new(Window {
                events,
                capacity,
                first_seq,
                next_seq,
            }),
            live: broadcast::channel(FEED_CHANNEL_EVENTS).0,
            next_seq: watch::channel(next_seq).0,
        }
    }

    /// The next sequence number to be published, changing with every publication: await
    /// `changed()` to learn that events after those read so far exist.
    pub fn watch_next_seq(&self) -> watch::Receiver<u64> {
        self.next_seq.subscribe()
    }

    /// At most `max_events` events after `after`, decoded from the window: for a reader
    /// that is not live (a webhook delivering one event at a time), which decodes only
    /// what it is about to use. An `after` newer than anything published answers an
    /// empty page without `missed_before`, like the newest id does; the reader waits.
    pub fn page_after(&self, after: u64, max_events: usize) -> FeedPage {
        let w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let first = w.events.partition_point(|e| e.seq <= after);
        let mut events = Vec::with_capacity((w.events.len() - first).min(max_events));
        if after.saturating_add(1) < w.first_seq {
            return FeedPage {
                events,
                missed_before: Some(w.first_seq),
            };
        }
        for kept in w.events.range(first..).take(max_events) {
            match kept.decode() {
                Ok(event) => events.push(event),
                Err(e) => {
                    // Bytes this process encoded: unreachable. The reader goes to disk.
                    tracing::error!(seq = kept.seq, error = %e, "event feed could not decode an event");
                    return FeedPage {
                        events: Vec::new(),
                        missed_before: Some(w.next_seq),
                    };
                }
            }
        }
        FeedPage {
            events,
            missed_before: None,
        }
    }

    /// Publishes a batch of durable events, in sequence: each `(seq, event, encoded)`,
    /// `encoded` being its journal payload ([`innkeep_persistence::Committed::payload`],
    /// the bytes [`innkeep_persistence::encode_part`] gives), kept as the window's copy so
    /// the journal's one encoding serves both. One lock of the window and one wake of the
    /// `next_seq` watchers per batch, not per event (the wake was a tenth of the journal
    /// writer's time when it was per event).
    pub fn publish(&self, batch: impl IntoIterator<Item = (u64, Arc<Event>, Vec<u8>)>) {
        let mut next = None;
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        for (seq, event, encoded) in batch {
            let kept = Kept {
                seq,
                bytes: encoded.into_boxed_slice(),
            };
            if w.events.len() >= w.capacity {
                if let Some(old) = w.events.pop_front() {
                    w.first_seq = old.seq + 1;
                }
            }
            w.events.push_back(kept);
            w.next_seq = seq + 1;
            // No subscriber is not an error.
            let _ = self.live.send(FeedEvent { seq, event });
            next = Some(seq + 1);
        }
        drop(w);
        if let Some(next) = next {
            self.next_seq.send_replace(next);
        }
    }

    /// Subscribes to events after `after` (a `Last-Event-ID`), or to new events only.
    pub fn subscribe(&self, after: Option<u64>) -> FeedSubscription {
        let w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let live = self.live.subscribe();
        let Some(after) = after else {
            return FeedSubscription {
                backlog: Vec::new(),
                live,
                missed_before: None,
            };
        };
        let first = w.events.partition_point(|e| e.seq <= after);
        let mut backlog = Vec::with_capacity(w.events.len() - first);
        for kept in w.events.range(first..) {
            match kept.decode() {
                Ok(event) => backlog.push(event),
                Err(e) => {
                    // Bytes this process encoded: unreachable. The subscriber reloads.
                    tracing::error!(seq = kept.seq, error = %e, "event feed could not decode an event");
                    return FeedSubscription {
                        backlog: Vec::new(),
                        live,
                        missed_before: Some(w.next_seq),
                    };
                }
            }
        }
        let too_old = after.saturating_add(1) < w.first_seq;
        let unknown = after >= w.next_seq;
        FeedSubscription {
            backlog,
            live,
            missed_before: (too_old || unknown).then_some(w.first_seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use innkeep_engine::{HotelId, RoomKey, RoomNumber};

    fn ev() -> Arc<Event> {
        Arc::new(Event::HousekeepingSet {
            room: RoomKey {
                hotel_id: HotelId::parse("H").unwrap(),
                number: RoomNumber::parse("1").unwrap(),
            },
            status: innkeep_engine::Housekeeping::Dirty,
            at: innkeep_engine::jiff::Timestamp::UNIX_EPOCH,
        })
    }

    /// Publishes `ev()` at `seq` as the journal's hook does: with its encoding.
    fn publish(feed: &EventFeed, seq: u64) {
        let event = ev();
        let encoded = innkeep_persistence::encode_part(&*event).expect("encodes");
        feed.publish([(seq, event, encoded)]);
    }

    fn history(seqs: impl IntoIterator<Item = u64>) -> Vec<FeedEvent> {
        seqs.into_iter()
            .map(|seq| FeedEvent { seq, event: ev() })
            .collect()
    }

    fn backlog(sub: &FeedSubscription) -> Vec<u64> {
        sub.backlog.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn resume_gets_exactly_the_missed_events_then_live_ones() {
        let feed = EventFeed::new(FEED_WINDOW_EVENTS, 10, Vec::new());
        for seq in 10..15 {
            publish(&feed, seq);
        }
        let mut sub = feed.subscribe(Some(12));
        assert_eq!(backlog(&sub), vec![13, 14]);
        // Kept encoded, given back decoded as published.
        assert!(sub.backlog.iter().all(|e| *e.event == *ev()));
        assert_eq!(sub.missed_before, None);
        publish(&feed, 15);
        assert_eq!(sub.live.try_recv().unwrap().seq, 15);
        // Asking for events older than the window is reported, not faked.
        let sub = feed.subscribe(Some(3));
        assert_eq!(sub.missed_before, Some(10));
        assert_eq!(sub.backlog.first().map(|e| e.seq), Some(10));
        // Just before the first event is not a gap.
        assert_eq!(feed.subscribe(Some(9)).missed_before, None);
        // The newest id: nothing missed, nothing to replay.
        let sub = feed.subscribe(Some(15));
        assert_eq!((backlog(&sub), sub.missed_before), (vec![], None));
        // An id this journal never issued cannot be resumed from.
        assert_eq!(feed.subscribe(Some(16)).missed_before, Some(10));
        // No id: live only.
        assert!(feed.subscribe(None).backlog.is_empty());
    }

    #[test]
    fn history_fills_the_window_and_the_window_slides() {
        // Events 1..=7 came from the journal; the window holds 5 of them.
        let feed = EventFeed::new(5, 8, history(1..=7));
        let sub = feed.subscribe(Some(3));
        assert_eq!((backlog(&sub), sub.missed_before), (vec![4, 5, 6, 7], None));
        assert_eq!(feed.subscribe(Some(1)).missed_before, Some(3));
        assert_eq!(feed.subscribe(Some(2)).missed_before, None);
        publish(&feed, 8);
        publish(&feed, 9);
        let sub = feed.subscribe(Some(4));
        assert_eq!(
            (backlog(&sub), sub.missed_before),
            (vec![5, 6, 7, 8, 9], None)
        );
        assert_eq!(feed.subscribe(Some(3)).missed_before, Some(5));
    }

    #[test]
    fn pages_are_bounded_and_say_when_the_window_misses_events() {
        let feed = EventFeed::new(4, 10, Vec::new());
        let mut next = feed.watch_next_seq();
        assert_eq!(*next.borrow_and_update(), 10);
        for seq in 10..16 {
            publish(&feed, seq);
        }
        assert!(next.has_changed().unwrap());
        assert_eq!(*next.borrow_and_update(), 16);
        // The window holds 12..=15.
        let seqs = |p: &FeedPage| p.events.iter().map(|e| e.seq).collect::<Vec<_>>();
        let page = feed.page_after(11, 2);
        assert_eq!((seqs(&page), page.missed_before), (vec![12, 13], None));
        let page = feed.page_after(13, 10);
        assert_eq!((seqs(&page), page.missed_before), (vec![14, 15], None));
        let page = feed.page_after(10, 10);
        assert_eq!((seqs(&page), page.missed_before), (vec![], Some(12)));
        // Caught up, or ahead: nothing yet, nothing missed.
        for after in [15, 40] {
            let page = feed.page_after(after, 10);
            assert_eq!((seqs(&page), page.missed_before), (vec![], None));
        }
    }

    #[test]
    fn history_keeps_only_its_consecutive_end_before_next_seq() {
        // A hole at 4: only 5..=6 can be shown without a gap.
        let feed = EventFeed::new(10, 7, history([1, 2, 3, 5, 6]));
        assert_eq!(feed.subscribe(Some(4)).missed_before, None);
        assert_eq!(feed.subscribe(Some(3)).missed_before, Some(5));
        // History that does not reach next_seq - 1 (e.g. events cut from the journal) is
        // not shown at all.
        let feed = EventFeed::new(10, 9, history(1..=6));
        let sub = feed.subscribe(Some(2));
        assert_eq!((backlog(&sub), sub.missed_before), (vec![], Some(9)));
        // A zero window still keeps one event.
        let feed = EventFeed::new(0, 4, history(1..=3));
        assert_eq!(backlog(&feed.subscribe(Some(0))), vec![3]);
    }
}
