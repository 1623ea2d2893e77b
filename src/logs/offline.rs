//! Sources read once, start to end, outside the runtime: files (`lookout replay`, `--once`) and
//! text as if it were a file (rule unit tests).

use super::framing::{self, Framer, LineSplitter};
use super::plan::SourcePlan;
use super::state::SourceState;
use std::time::Instant;

/// Reads `paths` from start to end through the plan into `state`.
pub fn read_files(plan: &SourcePlan, state: &mut SourceState, paths: Vec<String>) {
    let mut tailer = plan.tailer_of(paths, None);
    let now = Instant::now();
    tailer.read_to_end(&mut |record: &str| state.process(plan, record, now));
    state.add_tail(tailer.take_progress(), now);
}

/// Runs text through the plan's framing and rules, as if it were a file read to its end.
pub fn feed(plan: &SourcePlan, state: &mut SourceState, text: &str) {
    let mut splitter = LineSplitter::new(plan.max_line_bytes);
    let mut framer = Framer::new(plan.framing.clone());
    let now = Instant::now();
    let emit = &mut |record: &str| state.process(plan, record, now);
    splitter
        .push(text.as_bytes(), &mut |line, raw| framer.push(&framing::line_text(line), raw, emit));
    framing::finish(&mut splitter, &mut framer, emit);
}
