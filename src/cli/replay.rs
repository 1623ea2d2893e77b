//! `lookout replay`: files read from start to end through one source's parser and rules, the
//! resulting exposition printed, like mtail's one-shot mode.

use super::{Error, Verdict};
use crate::app::ConfigPaths;
use crate::config::{LogRulesFile, Source, DEFAULT_LOG_RULES};
use crate::logs::{offline, SourcePlan, SourceState};
use crate::metrics::exposition::{self, Format};
use std::path::Path;
use std::sync::Arc;

pub fn run(
    paths: &ConfigPaths,
    source: Option<&str>,
    files: Vec<String>,
) -> Result<Verdict, Error> {
    let rules = paths.log_rules.as_deref().unwrap_or(Path::new(DEFAULT_LOG_RULES));
    let plans = load(rules)?;
    let plan = pick(&plans, source)?;
    for file in &files {
        std::fs::metadata(file).map_err(|e| Error::Usage(format!("{file}: {e}")))?;
    }
    let mut state = SourceState::new(plan);
    offline::read_files(plan, &mut state, files);
    print!("{}", exposition::encode(&state.exposition(plan), Format::Text));
    Ok(Verdict::Pass)
}

/// The compiled sources of a log rules file.
pub fn load(path: &Path) -> Result<Vec<Arc<SourcePlan>>, Error> {
    let source = Source::read(path)?;
    Ok(crate::logs::compile(&LogRulesFile::load(&source)?, &source)?)
}

/// The source named `name`, or the first one.
pub fn pick<'p>(plans: &'p [Arc<SourcePlan>], name: Option<&str>) -> Result<&'p SourcePlan, Error> {
    let found = match name {
        Some(n) => plans.iter().find(|p| p.name == n),
        None => plans.first(),
    };
    found.map(|p| p.as_ref()).ok_or_else(|| {
        Error::Usage(match name {
            Some(n) => {
                let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
                format!("no source named {n:?} (sources: {})", names.join(", "))
            }
            None => "the log rules file has no source".to_string(),
        })
    })
}
