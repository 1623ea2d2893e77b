//! Log-derived metrics: tailer → framing (lines, multiline records) → parsers → rules.
//!
//! Each source is compiled once into an immutable [`SourcePlan`]; what it counts lives in a
//! [`SourceState`]. The [`LogRuntime`] follows sources on their own threads (file reads block)
//! and keeps their states across reloads; `offline` reads files or text to their end for the
//! one-shot commands.

pub mod container;
pub mod framing;
pub mod offline;
pub mod parse;
pub mod plan;
pub mod positions;
pub mod record;
pub mod rules;
pub mod runtime;
pub mod sql;
pub mod state;
pub mod tailer;
pub mod wake;

pub use plan::{compile, SourcePlan};
pub use runtime::LogRuntime;
pub use state::{SourceState, SourceSummary};
