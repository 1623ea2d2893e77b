//! Spring Boot records: the default layouts' scanner on the whole input, and a logback pattern
//! (the first line) compiled and run on the rest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout::logs::parse::spring::{SpringFormat, FIELDS};
use lookout::logs::record::Values;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static AUTO: OnceLock<SpringFormat> = OnceLock::new();
    let text = String::from_utf8_lossy(data);
    let mut values: Values = vec![None; FIELDS.len()];
    let _ = AUTO.get_or_init(SpringFormat::auto).parse(&text, &mut values);
    let (pattern, record) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(format) = SpringFormat::logback(pattern) {
        let mut values: Values = vec![None; FIELDS.len()];
        let _ = format.parse(record, &mut values);
    }
});
