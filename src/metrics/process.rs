//! The standard `process_*` metrics, read from /proc as Prometheus' client libraries do.

use super::exposition::Family;
use super::families::{
    PROCESS_CPU_SECONDS, PROCESS_MAX_FDS, PROCESS_OPEN_FDS, PROCESS_RESIDENT_MEMORY_BYTES,
    PROCESS_START_TIME_SECONDS, PROCESS_VIRTUAL_MEMORY_BYTES,
};

pub fn collect() -> Vec<Family> {
    let mut families = Vec::new();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name, which may itself hold spaces.
        let fields: Vec<&str> =
            stat.rsplit_once(") ").map(|(_, rest)| rest.split(' ').collect()).unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            families.push(Family::of(&PROCESS_CPU_SECONDS).with(vec![], (utime + stime) / ticks));
        }
        if let Some(vsize) = field(23) {
            families.push(Family::of(&PROCESS_VIRTUAL_MEMORY_BYTES).with(vec![], vsize));
        }
        if let Some(rss) = field(24) {
            families.push(Family::of(&PROCESS_RESIDENT_MEMORY_BYTES).with(vec![], rss * page));
        }
        if let (Some(start), Some(boot)) = (field(22), boot_time()) {
            families
                .push(Family::of(&PROCESS_START_TIME_SECONDS).with(vec![], boot + start / ticks));
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        families.push(Family::of(&PROCESS_OPEN_FDS).with(vec![], dir.count() as f64));
    }
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        families.push(Family::of(&PROCESS_MAX_FDS).with(vec![], limit.rlim_cur as f64));
    }
    families
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// Open file descriptors of this process (for leak checks).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}
