//! The form a scheduled probe's last result is kept in until the next run replaces it: numbers,
//! a family index and an interned label set per sample, so ten thousand probes cost a few
//! hundred kilobytes instead of a copy of every family with its strings.
//!
//! Label sets repeat across probes (`phase="connect"`, a certificate served to many targets), so
//! each distinct set is kept once and shared; sets no result uses any more are dropped as the
//! table grows.

use super::certs::CertificateView;
use super::{Failure, Outcome};
use crate::metrics::exposition::{Family, Labels, Sample};
use crate::metrics::families::PROBE_FAMILIES;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// One sample: which of [`PROBE_FAMILIES`], its labels (shared), its value.
#[derive(Debug, Clone)]
pub struct CompactSample {
    pub family: u8,
    pub labels: Option<Arc<Labels>>,
    pub value: f64,
}

/// A finished run without its debug log, its samples in [`PROBE_FAMILIES`] order.
#[derive(Debug, Clone)]
pub struct CompactOutcome {
    pub success: bool,
    pub duration: Duration,
    pub failure: Option<Box<Failure>>,
    pub samples: Box<[CompactSample]>,
}

impl CompactOutcome {
    pub fn of(outcome: Outcome) -> CompactOutcome {
        let mut samples = Vec::new();
        for family in outcome.families {
            let Some(index) = PROBE_FAMILIES.iter().position(|d| d.name == family.name) else {
                debug_assert!(false, "{} is not a probe family", family.name);
                continue;
            };
            for sample in family.samples {
                let labels = (!sample.labels.is_empty()).then(|| intern(sample.labels));
                samples.push(CompactSample { family: index as u8, labels, value: sample.value });
            }
        }
        samples.sort_by_key(|s| s.family);
        CompactOutcome {
            success: outcome.success,
            duration: outcome.duration,
            failure: outcome.failure.map(Box::new),
            samples: samples.into_boxed_slice(),
        }
    }

    /// The samples of `PROBE_FAMILIES[family]`.
    pub fn samples_of(&self, family: usize) -> impl Iterator<Item = &CompactSample> {
        let start = self.samples.partition_point(|s| (s.family as usize) < family);
        self.samples[start..].iter().take_while(move |s| s.family as usize == family)
    }

    /// The outcome as the prober gave it, without its log: for `--once` and the status page.
    pub fn expand(&self) -> Outcome {
        let mut families: Vec<Family> = Vec::new();
        for sample in self.samples.iter() {
            let def = PROBE_FAMILIES[sample.family as usize];
            if families.last().is_none_or(|f| f.name != def.name) {
                families.push(Family::of(def));
            }
            let labels = sample.labels.as_deref().cloned().unwrap_or_default();
            families.last_mut().expect("pushed").samples.push(Sample::new(labels, sample.value));
        }
        families.sort_by(|a, b| a.name.cmp(&b.name));
        Outcome {
            success: self.success,
            duration: self.duration,
            failure: self.failure.as_deref().cloned(),
            families,
            log: Vec::new(),
        }
    }
}

/// What the status page and `--once` ask of a result, answered from its expanded form.
impl CompactOutcome {
    pub fn status(&self) -> Option<String> {
        self.expand().status()
    }

    pub fn certificates(&self, now: SystemTime) -> Vec<CertificateView> {
        self.expand().certificates(now)
    }

    pub fn soonest_certificate(&self, now: SystemTime) -> Option<CertificateView> {
        self.expand().soonest_certificate(now)
    }
}

struct Interner {
    sets: HashSet<Arc<Labels>>,
    /// Size after the last sweep; the next sweep comes when the table has doubled.
    swept_at: usize,
}

static INTERNER: Mutex<Option<Interner>> = Mutex::new(None);

/// The shared copy of `labels`.
fn intern(labels: Labels) -> Arc<Labels> {
    let mut guard = INTERNER.lock().expect("interner lock");
    let table = guard.get_or_insert_with(|| Interner { sets: HashSet::new(), swept_at: 64 });
    if let Some(shared) = table.sets.get(&labels) {
        return shared.clone();
    }
    if table.sets.len() >= 2 * table.swept_at {
        // Only the table holds these: no kept result has them any more.
        table.sets.retain(|set| Arc::strong_count(set) > 1);
        table.sets.shrink_to_fit();
        table.swept_at = table.sets.len().max(64);
    }
    let shared = Arc::new(labels);
    table.sets.insert(shared.clone());
    shared
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::families::{PROBE_HTTP_DURATION_SECONDS, PROBE_SUCCESS};
    use crate::probe::Report;

    #[test]
    fn keeps_values_and_shares_label_sets() {
        let outcome = |connect: f64| {
            let mut report = Report::new(std::time::Instant::now());
            report.log("dropped");
            report.set_labeled(&PROBE_HTTP_DURATION_SECONDS, ["connect".to_string()], connect);
            report.finish(Ok(()), Duration::from_millis(3))
        };
        let (a, b) = (CompactOutcome::of(outcome(0.5)), CompactOutcome::of(outcome(0.25)));
        let labels = |c: &CompactOutcome| {
            let i = PROBE_FAMILIES.iter().position(|d| d.name == PROBE_HTTP_DURATION_SECONDS.name);
            c.samples_of(i.unwrap()).next().unwrap().labels.clone().unwrap()
        };
        assert!(Arc::ptr_eq(&labels(&a), &labels(&b)), "one copy of phase=\"connect\"");
        let expanded = b.expand();
        assert_eq!(expanded.value(&PROBE_SUCCESS), Some(1.0));
        assert_eq!(expanded.value(&PROBE_HTTP_DURATION_SECONDS), Some(0.25));
        assert!(expanded.log.is_empty());
        assert_eq!(std::mem::size_of::<CompactSample>(), 24);
    }
}
