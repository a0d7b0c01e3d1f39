//! Where the actors read "now". The engine takes every instant as a parameter; this is the
//! one place above it that reads a clock, so an embedder can drive time itself — a
//! simulation, a replay, or a test of the night audit that cannot wait for 04:00.

use std::sync::{Arc, Mutex, PoisonError};

use innkeep_engine::jiff::{SignedDuration, Timestamp};

/// The engine's source of the current instant. [`Clock::system`] by default.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// `None` reads the system clock; `Some` is a manual clock shared with its
    /// [`ManualTime`] handle.
    manual: Option<Arc<Mutex<Timestamp>>>,
}

/// The handle that moves a manual [`Clock`] forward.
#[derive(Clone, Debug)]
pub struct ManualTime(Arc<Mutex<Timestamp>>);

impl Clock {
    /// The system clock (UTC).
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stands at `start` until its handle moves it.
    pub fn manual(start: Timestamp) -> (Self, ManualTime) {
        let shared = Arc::new(Mutex::new(start));
        (
            Self {
                manual: Some(shared.clone()),
            },
            ManualTime(shared),
        )
    }

    /// The current instant.
    pub fn now(&self) -> Timestamp {
        match &self.manual {
            None => Timestamp::now(),
            Some(t) => *t.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

impl ManualTime {
    /// Moves the clock forward by `by` (never backwards: a negative `by` is ignored, since
    /// the engine's timers assume time does not run back).
    pub fn advance(&self, by: SignedDuration) {
        if by.is_negative() {
            return;
        }
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *t = t.checked_add(by).unwrap_or(Timestamp::MAX);
    }
}
