//! The last runs of each scheduled probe, for the status page: a few bytes a run, at most
//! `status_page.history` runs a probe, kept across reloads for the probes that still exist.

use super::{FailureReason, Outcome};
use crate::metrics::families::PROBE_HTTP_STATUS_CODE;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

/// One finished run, as small as the page needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// Seconds since the Unix epoch when it finished (u32 lasts until 2106).
    pub at: u32,
    /// How long it took, in seconds.
    pub seconds: f32,
    /// The HTTP status code, 0 when there was none.
    pub status: u16,
    /// `None` when it succeeded.
    pub failure: Option<FailureReason>,
}

impl Run {
    pub fn of(outcome: &Outcome, finished_at: SystemTime) -> Run {
        Run {
            at: finished_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
            seconds: outcome.duration.as_secs_f32(),
            status: outcome.value(&PROBE_HTTP_STATUS_CODE).map_or(0, |s| s as u16),
            failure: outcome.failure.as_ref().map(|f| f.reason),
        }
    }

    pub fn success(&self) -> bool {
        self.failure.is_none()
    }

    pub fn finished_at(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.at.into())
    }
}

/// Every probe's runs, oldest first, at most `capacity` each, by probe name and target (a
/// probe with discovered targets has runs of each).
#[derive(Debug)]
pub struct History {
    capacity: usize,
    by_probe: BTreeMap<(String, String), VecDeque<Run>>,
}

impl Default for History {
    fn default() -> Self {
        History::new(crate::config::probes::DEFAULT_HISTORY)
    }
}

impl History {
    pub fn new(capacity: usize) -> History {
        History { capacity: capacity.max(1), by_probe: BTreeMap::new() }
    }

    pub fn push(&mut self, probe: &str, target: &str, run: Run) {
        let capacity = self.capacity;
        let key = (probe.to_string(), target.to_string());
        // Exactly the runs kept: a doubling buffer would hold up to twice as many.
        let runs = self.by_probe.entry(key).or_insert_with(|| VecDeque::with_capacity(capacity));
        while runs.len() >= capacity {
            runs.pop_front();
        }
        runs.push_back(run);
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn runs(&self, probe: &str, target: &str) -> impl Iterator<Item = &Run> {
        self.by_probe.get(&(probe.to_string(), target.to_string())).into_iter().flatten()
    }

    /// Keeps the runs of the probes for which `keep(name, target)` holds, the newest
    /// `capacity` of each.
    pub fn retain(&mut self, keep: impl Fn(&str, &str) -> bool, capacity: usize) {
        self.capacity = capacity.max(1);
        let capacity = self.capacity;
        self.by_probe.retain(|(name, target), runs| {
            let keep = keep(name, target);
            if keep {
                runs.drain(..runs.len().saturating_sub(capacity));
                runs.shrink_to(capacity);
                runs.reserve_exact(capacity - runs.len());
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(at: u32, failure: Option<FailureReason>) -> Run {
        Run { at, seconds: 0.1, status: 200, failure }
    }

    #[test]
    fn keeps_the_newest_runs_up_to_its_capacity() {
        let mut history = History::new(3);
        for at in 0..5 {
            history.push("a", "t", run(at, None));
        }
        let kept: Vec<u32> = history.runs("a", "t").map(|r| r.at).collect();
        assert_eq!(kept, [2, 3, 4]);
        assert_eq!(history.runs("a", "other").count(), 0);
    }

    #[test]
    fn retain_keeps_existing_probes_and_applies_a_new_capacity() {
        let mut history = History::new(5);
        for at in 0..5 {
            history.push("stays", "t", run(at, Some(FailureReason::Timeout)));
            history.push("goes", "t", run(at, None));
        }
        history.retain(|name, _| ["stays", "new"].contains(&name), 2);
        let kept: Vec<u32> = history.runs("stays", "t").map(|r| r.at).collect();
        assert_eq!(kept, [3, 4]);
        assert_eq!(history.runs("goes", "t").count(), 0);
        history.push("stays", "t", run(5, None));
        assert_eq!(history.runs("stays", "t").map(|r| r.at).collect::<Vec<_>>(), [4, 5]);
    }

    #[test]
    fn a_run_takes_a_few_bytes() {
        assert_eq!(std::mem::size_of::<Run>(), 12);
    }
}
