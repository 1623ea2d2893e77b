//! The container wrapper reader (Docker json-file, CRI, either) between the line splitter and a
//! multiline framer, as a container source reads a Spring log: the first byte picks the
//! wrapper and the line limit, the rest is the file. Whatever the bytes, every record carries
//! its stream, and once the file is finished nothing is held.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout::config::log_rules::Container;
use lookout::logs::framing::{Framing, Pipeline};
use lookout::logs::parse::spring::RECORD_START;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, file)) = data.split_first() else { return };
    let container = [Container::Docker, Container::Cri, Container::Auto][usize::from(pick % 3)];
    let max = 64 + usize::from(pick / 3) * 16;
    let start = regex::Regex::new(RECORD_START).expect("static regex");
    let mut pipeline = Pipeline::new(max, Some(container), Framing::multiline(Some(start)));
    let emit = &mut |_: &str, meta: lookout::logs::container::Meta| {
        assert!(meta.stream.is_some());
    };
    for chunk in file.chunks(37) {
        pipeline.push(chunk, emit);
        assert!(pipeline.pending() <= file.len() as u64);
    }
    pipeline.finish(emit);
    assert_eq!(pipeline.pending(), 0);
});
