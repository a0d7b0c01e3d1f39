//! The live event feed: every durable event, in journal order, for the SSE stream.
//!
//! The snapshot thread publishes each committed event here (after its batch's fdatasync,
//! so nothing unacknowledged is ever shown). Subscribers get the recent events they missed
//! from a bounded in-memory window, then the live ones from a bounded broadcast channel;
//! a subscriber that falls behind the channel is told so and must resume.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use innkeep_engine::Event;
use tokio::sync::broadcast;

/// Most recent events kept for resuming (`Last-Event-ID`).
pub const FEED_WINDOW_EVENTS: usize = 65_536;

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
    /// The first sequence number the window could replay, when events the subscriber asked
    /// for are older than that (gone from memory: after a restart, or too far behind).
    pub missed_before: Option<u64>,
}

#[derive(Debug)]
struct Window {
    /// Recent events, oldest first.
    events: VecDeque<FeedEvent>,
    /// Sequence number of the first event this process could show: events at or after it
    /// are in `events` or still to come.
    first_seq: u64,
}

/// The feed. Publishing and subscribing take one short lock, so a subscriber never misses
/// an event between its backlog and its live channel.
#[derive(Debug)]
pub struct EventFeed {
    window: Mutex<Window>,
    live: broadcast::Sender<FeedEvent>,
}

impl EventFeed {
    /// A feed whose first event will have sequence number `next_seq`.
    pub fn new(next_seq: u64) -> Self {
        Self {
            window: Mutex::new(Window {
                events: VecDeque::new(),
                first_seq: next_seq,
            }),
            live: broadcast::channel(FEED_CHANNEL_EVENTS).0,
        }
    }

    /// Publishes a durable event.
    pub fn publish(&self, seq: u64, event: Arc<Event>) {
        let item = FeedEvent { seq, event };
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if w.events.len() == FEED_WINDOW_EVENTS {
            if let Some(old) = w.events.pop_front() {
                w.first_seq = old.seq + 1;
            }
        }
        w.events.push_back(item.clone());
        // No subscriber is not an error.
        let _ = self.live.send(item);
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
        let backlog = w.events.iter().filter(|e| e.seq > after).cloned().collect();
        FeedSubscription {
            backlog,
            live,
            missed_before: (after + 1 < w.first_seq).then_some(w.first_seq),
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

    #[test]
    fn resume_gets_exactly_the_missed_events_then_live_ones() {
        let feed = EventFeed::new(10);
        for seq in 10..15 {
            feed.publish(seq, ev());
        }
        let mut sub = feed.subscribe(Some(12));
        let seqs: Vec<u64> = sub.backlog.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![13, 14]);
        assert_eq!(sub.missed_before, None);
        feed.publish(15, ev());
        assert_eq!(sub.live.try_recv().unwrap().seq, 15);
        // Asking for events from before this process started is reported, not faked.
        let sub = feed.subscribe(Some(3));
        assert_eq!(sub.missed_before, Some(10));
        assert_eq!(sub.backlog.first().map(|e| e.seq), Some(10));
        // Just before the first event is not a gap.
        assert_eq!(feed.subscribe(Some(9)).missed_before, None);
        // No id: live only.
        assert!(feed.subscribe(None).backlog.is_empty());
    }
}
