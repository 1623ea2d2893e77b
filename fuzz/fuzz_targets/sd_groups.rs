//! Service discovery target groups (file_sd files and http_sd answers), JSON and YAML, as
//! lookout reads and normalises them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for json in [true, false] {
        if let Ok((groups, _)) = lookout::discovery::parse_groups(text, json) {
            for group in &groups {
                // What is kept fits a series: no meta label, none lookout sets itself.
                assert!(group.labels.keys().all(|name| !name.starts_with("__")));
                assert!(!group.labels.contains_key("probe"));
            }
        }
    }
});
