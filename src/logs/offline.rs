//! Sources read once, start to end, outside the runtime: files (`lookout replay`, `--once`) and
//! text as if it were a file (rule unit tests).

use super::container::Meta;
use super::plan::SourcePlan;
use super::state::SourceState;
use super::tailer::Records;
use std::time::Instant;

/// Counts records into a state.
struct Counting<'a> {
    plan: &'a SourcePlan,
    state: &'a mut SourceState,
    now: Instant,
}

impl Records for Counting<'_> {
    fn record(&mut self, record: &str, meta: Meta) {
        self.state.process(self.plan, record, meta, self.now);
    }
}

/// Reads `paths` from start to end through the plan into `state`; compressed files are read
/// through their decoder, rotations of a log oldest first.
pub fn read_files(plan: &SourcePlan, state: &mut SourceState, paths: Vec<String>) {
    let mut tailer = plan.tailer_of(paths, None);
    let now = Instant::now();
    tailer.read_to_end(&mut Counting { plan, state, now });
    state.add_tail(tailer.take_progress(), now);
}

/// Runs text through the plan's framing and rules, as if it were a file read to its end.
pub fn feed(plan: &SourcePlan, state: &mut SourceState, text: &str) {
    let mut pipeline = plan.pipeline();
    let mut counting = Counting { plan, state, now: Instant::now() };
    let emit = &mut |record: &str, meta: Meta| counting.record(record, meta);
    pipeline.push(text.as_bytes(), emit);
    pipeline.finish(emit);
}
