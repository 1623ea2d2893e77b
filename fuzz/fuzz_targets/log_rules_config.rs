//! log_rules.yaml as lookout loads it: parsed, validated and compiled into source plans.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout::config::{LogRulesFile, Source};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(source) = Source::from_text(Path::new("fuzz.yaml"), text) else { return };
    let Ok(file) = LogRulesFile::load(&source) else { return };
    let _ = lookout::logs::compile(&file, &source);
});
