//! /etc/hosts and nsswitch.conf as lookout reads them to answer names without getaddrinfo.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for (name, addresses) in lookout::probe::hosts::parse(&text) {
        assert!(!name.is_empty() && !addresses.is_empty());
        assert_eq!(name, name.to_ascii_lowercase());
    }
    let _ = lookout::probe::hosts::files_first(&text);
});
