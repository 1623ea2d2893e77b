//! The positions file as lookout opens it at start, or a slot file beside it (the first byte
//! chooses): whatever they hold, lookout starts, and what it saves opens again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout::logs::positions::{Positions, DEFAULT_RETENTION};
use std::sync::OnceLock;

fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("lookout-fuzz-positions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, data)) = data.split_first() else { return };
    let path = dir().join("positions.json");
    for beside in ["json.dormant", "json.live-0", "json.live-1"] {
        let _ = std::fs::remove_file(path.with_extension(beside));
    }
    if choice % 2 == 0 {
        std::fs::write(&path, data).unwrap();
    } else {
        // A slot that follows this main file, as a save between syncs leaves it.
        std::fs::write(&path, "{\"version\":2,\"seq\":1,\"files\":[]}").unwrap();
        std::fs::write(path.with_extension("json.live-0"), data).unwrap();
    }
    let positions = Positions::open(&path, DEFAULT_RETENTION);
    if positions.load_problem().is_none() {
        positions.save().unwrap();
        let again = Positions::open(&path, DEFAULT_RETENTION);
        assert!(again.load_problem().is_none(), "what was saved opens again");
    }
    // A corrupt file is moved aside: keep the directory from filling up.
    for entry in std::fs::read_dir(dir()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().contains("corrupt-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
});
