//! Names from `/etc/hosts`, answered on the runtime's own thread.
//!
//! `getaddrinfo` blocks, so tokio runs every lookup on a blocking thread and wakes a worker
//! when it is done: under load that hand-off (thread switches and futex wake-ups) costs more
//! than the probe's own work. Most probes of a name on the same host (`localhost`, names an
//! operator pinned) are answered by the hosts file, which glibc reads first when
//! `/etc/nsswitch.conf` says `hosts: files …`. As Go's resolver (and so blackbox_exporter)
//! does, lookout then reads the file itself, keeps it parsed, and looks at its modification
//! time again at most every [`RECHECK`]; a name it does not list still goes to `getaddrinfo`,
//! which then consults DNS and every other source the system is configured with.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Instant, SystemTime};

/// How long a parsed hosts file is trusted before its modification time is looked at again
/// (Go's resolver waits the same).
const RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Hosts files larger than this (ad-blocking lists reach a few MiB) are left to `getaddrinfo`.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Name (lower case) → its addresses, in file order.
pub type HostTable = HashMap<String, Vec<IpAddr>>;

/// Parses a hosts file: `address name [aliases…]`, `#` comments; lines whose address does not
/// parse (scoped IPv6 addresses such as `fe80::1%eth0` among them) are skipped, as they cannot
/// be dialled without their scope.
pub fn parse(text: &str) -> HostTable {
    let mut table = HostTable::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_ascii_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else { continue };
        for name in words {
            let addresses = table.entry(name.to_ascii_lowercase()).or_default();
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
    }
    table
}

/// Whether an nsswitch.conf makes glibc read the hosts file before any other source.
pub fn files_first(nsswitch: &str) -> bool {
    nsswitch
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .find_map(|line| line.strip_prefix("hosts:"))
        .and_then(|sources| sources.split_ascii_whitespace().next())
        == Some("files")
}

/// A hosts file kept parsed, re-read when its modification time or length changes.
pub struct HostsFile {
    path: &'static Path,
    state: Mutex<Option<Loaded>>,
}

struct Loaded {
    checked: Instant,
    stamp: Option<(SystemTime, u64)>,
    table: Arc<HostTable>,
}

impl HostsFile {
    pub fn new(path: &'static Path) -> Self {
        Self { path, state: Mutex::new(None) }
    }

    /// The addresses the file gives `name`, or `None` when it does not list it (or cannot be
    /// read).
    pub fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        let table = self.table();
        table.get(&name.trim_end_matches('.').to_ascii_lowercase()).cloned()
    }

    fn table(&self) -> Arc<HostTable> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(loaded) = state.as_ref().filter(|l| now.duration_since(l.checked) < RECHECK) {
            return loaded.table.clone();
        }
        let stamp = std::fs::metadata(self.path)
            .ok()
            .filter(|m| m.len() <= MAX_FILE_BYTES)
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let table = match state.as_ref() {
            Some(loaded) if loaded.stamp == stamp => loaded.table.clone(),
            _ => Arc::new(match stamp {
                Some(_) => {
                    std::fs::read_to_string(self.path).map(|t| parse(&t)).unwrap_or_default()
                }
                None => HostTable::new(),
            }),
        };
        *state = Some(Loaded { checked: now, stamp, table: table.clone() });
        table
    }
}

/// The system's hosts file, when nsswitch.conf puts it first; `None` leaves every name to
/// `getaddrinfo`.
pub fn system() -> Option<&'static HostsFile> {
    static SYSTEM: LazyLock<Option<HostsFile>> = LazyLock::new(|| {
        let conf = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
        files_first(&conf).then(|| HostsFile::new(Path::new("/etc/hosts")))
    });
    SYSTEM.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_aliases_and_comments() {
        let table = parse(
            "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost # loopback\n# 10.0.0.1 gone\n\
             fe80::1%eth0 scoped\n192.0.2.7 Web.Example web\nnot-an-address name\n",
        );
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(table["localhost"], vec![v4, v6]);
        assert_eq!(table["ip6-localhost"], vec![v6]);
        assert_eq!(table["web.example"], vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert!(!table.contains_key("gone") && !table.contains_key("scoped"));
        assert!(!table.contains_key("name"));
    }

    #[test]
    fn only_files_first_counts() {
        assert!(files_first("passwd: files\nhosts:          files mdns4_minimal dns\n"));
        assert!(!files_first("hosts: dns files\n"));
        assert!(!files_first("# hosts: files\n"));
        assert!(!files_first(""));
    }

    #[test]
    fn a_changed_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path: &'static Path = Box::leak(dir.path().join("hosts").into_boxed_path());
        std::fs::write(path, "192.0.2.1 a\n").unwrap();
        let hosts = HostsFile::new(path);
        assert_eq!(hosts.lookup("A."), Some(vec!["192.0.2.1".parse().unwrap()]));
        std::fs::write(path, "192.0.2.2 a b\n").unwrap();
        // Trusted until the recheck is due.
        hosts.state.lock().unwrap().as_mut().unwrap().checked -= RECHECK;
        assert_eq!(hosts.lookup("b"), Some(vec!["192.0.2.2".parse().unwrap()]));
        std::fs::remove_file(path).unwrap();
        hosts.state.lock().unwrap().as_mut().unwrap().checked -= RECHECK;
        assert_eq!(hosts.lookup("a"), None);
    }
}
