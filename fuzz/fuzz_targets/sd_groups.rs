//! Service discovery target groups (file_sd files and http_sd answers), JSON and YAML, as
//! lookout reads and normalises them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for json in [true, false] {
        if let Ok(groups) = lookout::discovery::parse_groups(text, json) {
            for group in &groups {
                // What is kept is a label name, and no meta label.
                assert!(group.labels.keys().all(|name| !name.starts_with("__")));
            }
        }
    }
});
