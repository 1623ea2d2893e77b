//! log_rules.yaml: log sources and the metrics derived from them.
//!
//! This build parses the file strictly so a deployment can ship it, but implements no log
//! source yet: any configured source or metric is refused with a clear error rather than
//! silently ignored.

use super::{ConfigError, Source};
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogRulesFile {
    #[serde(default)]
    pub sources: Vec<serde_saphyr::Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    pub metrics: Vec<serde_saphyr::Spanned<serde::de::IgnoredAny>>,
}

impl LogRulesFile {
    pub fn load(source: &Source) -> Result<LogRulesFile, ConfigError> {
        let file: LogRulesFile = source.parse()?;
        if let Some(first) = file.sources.first().or(file.metrics.first()) {
            return Err(source.error_at_span(first, "log sources and log metrics are not implemented in this version of lookout"));
        }
        Ok(file)
    }
}
