//! probes.yaml as lookout loads it: parsed, validated, every module prepared. Any input must
//! end in a configuration or a located error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout::config::{ProbesFile, Source};
use lookout::probe::PreparedModule;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(source) = Source::from_text(Path::new("fuzz.yaml"), text) else { return };
    let Ok(file) = ProbesFile::load(&source) else { return };
    for (name, module) in file.modules {
        let _ = PreparedModule::prepare(&name, module, &source);
    }
});
