//! Metric handles resolved once per thread. `metrics::counter!` with a label builds the
//! metric's key (an allocation) and looks it up in the recorder's registry on every call:
//! for the bookings counter that was about 400 instructions per booking, a hundred times
//! the increment itself (callgrind, `inprocess 100000 2048 durable 4`). Kept per thread,
//! by the label's value, a handle is found in a short list; it is resolved again when the
//! process's recorder changed (an embedder may install one after the engine started).

/// One metric's handles on this thread, by one label's value (`""` for a metric without
/// labels), with the recorder they came from.
#[derive(Debug)]
pub(crate) struct ByLabel<H> {
    /// The recorder the handles came from (its address). The global recorder lives as
    /// long as the process; a local one (tests) dropped and another made at its address
    /// would find the old handles.
    recorder: usize,
    /// The handles: a few values per metric (outcomes, error codes), so a list.
    handles: Vec<(&'static str, H)>,
}

impl<H> ByLabel<H> {
    /// None resolved yet.
    pub(crate) const fn new() -> Self {
        Self {
            recorder: 0,
            handles: Vec::new(),
        }
    }

    /// The handle for `value`, from `resolve` the first time it is asked for on this thread
    /// under the current recorder.
    pub(crate) fn get(&mut self, value: &'static str, resolve: impl FnOnce() -> H) -> &H {
        let recorder = current_recorder();
        if recorder != self.recorder {
            self.handles.clear();
            self.recorder = recorder;
        }
        // By address: a label's values are literals, each at one place in the binary (the
        // same text at two places gets two entries, counted into one series). Comparing
        // the text called `memcmp`, 2 % of a shard's time in-process.
        let at = match self
            .handles
            .iter()
            .position(|(v, _)| std::ptr::eq(*v, value))
        {
            Some(at) => at,
            None => {
                self.handles.push((value, resolve()));
                self.handles.len() - 1
            }
        };
        &self.handles[at].1
    }
}

/// The address of the recorder `metrics` records into from this thread now.
fn current_recorder() -> usize {
    metrics::with_recorder(|r| std::ptr::from_ref(r).cast::<()>().addr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// Counts every counter's increments together, and lists the keys it was asked for.
    #[derive(Default)]
    struct Counting {
        count: Arc<AtomicU64>,
        keys: Mutex<Vec<Key>>,
    }

    impl Recorder for Counting {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            self.keys.lock().unwrap().push(key.clone());
            Counter::from_arc(self.count.clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    fn count(cache: &mut ByLabel<Counter>, outcome: &'static str) {
        cache
            .get(
                outcome,
                || metrics::counter!("test_total", "outcome" => outcome),
            )
            .increment(1);
    }

    /// Label values at one address each, as the engine's outcomes are.
    static CREATED: &str = "created";
    static SOLD_OUT: &str = "sold_out";

    /// Each label value is resolved once per recorder, and counts go to the recorder in use
    /// when they are made, one installed after the first count included.
    #[test]
    fn handles_are_resolved_once_and_again_for_a_new_recorder() {
        let mut cache = ByLabel::new();
        let (first, second) = (Counting::default(), Counting::default());
        metrics::with_local_recorder(&first, || {
            count(&mut cache, CREATED);
            count(&mut cache, CREATED);
            count(&mut cache, SOLD_OUT);
            count(&mut cache, CREATED);
        });
        assert_eq!(first.count.load(Ordering::Relaxed), 4);
        let keys = first.keys.lock().unwrap().clone();
        let labels: Vec<String> = keys
            .iter()
            .map(|k| {
                k.labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect()
            })
            .collect();
        assert_eq!(
            labels,
            ["outcome=created", "outcome=sold_out"],
            "each resolved once"
        );
        metrics::with_local_recorder(&second, || count(&mut cache, CREATED));
        assert_eq!(
            second.count.load(Ordering::Relaxed),
            1,
            "the new recorder counts"
        );
        assert_eq!(
            first.count.load(Ordering::Relaxed),
            4,
            "the old one no more"
        );
    }
}
