//! The nginx `log_format` compiler (the first line: a directive, quoted pieces or bare text) and
//! the matcher it builds, fed the rest as a log file framed by the format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout::logs::framing::{self, Framer, LineSplitter};
use lookout::logs::parse::nginx::NginxFormat;
use lookout::logs::record::Values;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (format, log) = text.split_once('\n').unwrap_or((&text, ""));
    let Ok(format) = NginxFormat::compile(format) else { return };
    let mut splitter = LineSplitter::new(4096);
    let mut framer = Framer::new(format.framing());
    let emit = &mut |record: &str| {
        let mut values: Values = vec![None; format.fields().len()];
        let _ = format.parse(record, &mut values);
    };
    splitter.push(log.as_bytes(), &mut |line, raw| {
        framer.push(&String::from_utf8_lossy(line), raw, emit)
    });
    framing::finish(&mut splitter, &mut framer, emit);
});
