//! `--web.config.file` (exporter-toolkit format) as lookout validates it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout::config::web::WebConfigFile;
use lookout::config::Source;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(source) = Source::from_text(Path::new("web.yml"), text) else { return };
    let _ = WebConfigFile::load(&source);
});
