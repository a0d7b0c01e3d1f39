//! Retention: deleting old segments once a snapshot covers them (the writer's side of
//! [`Journal::truncate_through`](super::Journal::truncate_through)), keeping the newest
//! [`JournalOptions::retain_records`](super::JournalOptions::retain_records) records.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::writer::Writer;
use super::SyncMode;

impl<E: Serialize> Writer<E> {
    /// Delete whole old segments at or below the truncation target that hold none of the
    /// newest `retain_records` records.
    pub(super) fn apply_truncation(&mut self) {
        let covered = self.shared.truncate_target.load(Ordering::SeqCst);
        // Records through this seq are older than the retained window (next_seq >= 1).
        let outside_window = (self.next_seq - 1).saturating_sub(self.retain_records);
        let mut target = covered.min(outside_window);
        let floor = self.shared.retain_floor.load(Ordering::SeqCst);
        if floor > 0 {
            // Records from the floor on are still needed by a reader that is behind.
            target = target.min(floor - 1);
        }
        if target == 0 {
            return;
        }
        let mut removed = 0usize;
        while let Some((_, path)) = self.older_segments.front() {
            let next_first = self
                .older_segments
                .get(1)
                .map(|(first, _)| *first)
                .unwrap_or(self.active.first_seq);
            // The segment's last record is next_first - 1 (next_first >= 1 always).
            if next_first - 1 > target {
                break;
            }
            if let Err(e) = self.storage.remove(path) {
                tracing::warn!(file = %path.display(), error = %e, "journal: could not delete old segment");
                break;
            }
            tracing::debug!(file = %path.display(), through_seq = target, "journal: deleted old segment");
            self.older_segments.pop_front();
            removed += 1;
        }
        if removed > 0 && self.sync == SyncMode::Fdatasync {
            if let Err(e) = self.storage.sync_dir(&self.dir) {
                // Only deletions are at stake: at worst a deleted file reappears after a
                // crash, and recovery skips its records as covered by the snapshot.
                tracing::warn!(dir = %self.dir.display(), error = %e, "journal: directory fsync after deleting segments failed");
            }
        }
    }
}
