//! The nginx `log_format` compiler (the first line) and the line parser it builds (the rest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout::logs::parse::nginx::NginxFormat;
use lookout::logs::record::Values;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (format, lines) = text.split_once('\n').unwrap_or((&text, ""));
    let Ok(format) = NginxFormat::compile(format) else { return };
    for line in lines.lines() {
        let mut values: Values = vec![None; format.fields().len()];
        let _ = format.parse(line, &mut values);
    }
});
