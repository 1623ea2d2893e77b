//! Which scheduled probes this replica runs when several share them (`--shard=INDEX/COUNT`):
//! rendezvous (highest-random-weight) hashing of probe name and target. Every replica computes
//! the same owner for a probe without talking to the others, COUNT replicas together run each
//! probe exactly once, and going from COUNT to COUNT+1 replicas moves only the probes the new
//! replica wins, about 1/(COUNT+1) of them.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// From 0.
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// One replica running everything.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// The most replicas one set of probes is shared between: each replica weighs every probe
    /// once per replica, so a COUNT far beyond any fleet would only cost CPU at each start.
    pub const MAX_COUNT: u32 = 1000;

    fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: INDEX must be from 0 to COUNT-1"));
        }
        if count > Shard::MAX_COUNT {
            return Err(format!(
                "shard {index}/{count}: COUNT must be at most {}",
                Shard::MAX_COUNT
            ));
        }
        Ok(Shard { index, count })
    }

    /// `INDEX/COUNT`, as `--shard` and `LOOKOUT_SHARD` take it.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let numbers =
            text.split_once('/').and_then(|(i, c)| Some((i.parse().ok()?, c.parse().ok()?)));
        let Some((index, count)) = numbers else {
            return Err(format!("shard {text:?}: expected INDEX/COUNT, e.g. 0/3"));
        };
        Shard::new(index, count)
    }

    /// The ordinal at the end of a StatefulSet pod's name (`lookout-2` → 2) out of `count`.
    pub fn of_pod(name: &str, count: u32) -> Result<Shard, String> {
        let index = name.rsplit_once('-').and_then(|(_, n)| n.parse().ok());
        let Some(index) = index else {
            return Err(format!("host name {name:?} does not end in -N, the pod ordinal"));
        };
        Shard::new(index, count)
    }

    /// Whether this replica runs the probe `name` of `target`.
    pub fn owns(&self, name: &str, target: &str) -> bool {
        self.count <= 1 || owner(name, target, self.count) == self.index
    }
}

/// The replica (of `count`) whose weight for this probe is highest.
pub fn owner(name: &str, target: &str, count: u32) -> u32 {
    let key = fnv1a(name.as_bytes(), fnv1a(&[0], fnv1a(target.as_bytes(), FNV_OFFSET)));
    (0..count).max_by_key(|replica| splitmix64(key ^ splitmix64(u64::from(*replica)))).unwrap_or(0)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: spelled out here so every version of lookout hashes alike (std's hasher may change).
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A strong 64-bit mixer, so weights of neighbouring replicas are unrelated.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probes() -> Vec<(String, String)> {
        (0..20_000)
            .map(|i| (format!("web-{}", i % 7), format!("https://host{i}.example/")))
            .collect()
    }

    #[test]
    fn every_probe_runs_exactly_once_across_the_replicas() {
        for count in [1, 2, 3, 5, 8] {
            for (name, target) in probes().iter().take(3000) {
                let owners = (0..count).filter(|i| Shard { index: *i, count }.owns(name, target));
                assert_eq!(owners.count(), 1, "{name} {target} with {count} replicas");
            }
        }
    }

    #[test]
    fn replicas_get_even_shares() {
        let count = 4;
        let mut shares = [0usize; 4];
        for (name, target) in probes() {
            shares[owner(&name, &target, count) as usize] += 1;
        }
        for share in shares {
            assert!((4500..=5500).contains(&share), "{shares:?} of 20000");
        }
    }

    #[test]
    fn adding_a_replica_moves_about_one_in_count_plus_one() {
        for count in [1u32, 3, 9] {
            let all = probes();
            let moved =
                all.iter().filter(|(n, t)| owner(n, t, count) != owner(n, t, count + 1)).count();
            let expected = all.len() as f64 / f64::from(count + 1);
            assert!(
                (moved as f64 - expected).abs() < expected * 0.1,
                "{count}→{}: {moved} moved, about {expected} expected",
                count + 1
            );
            // Only to the new replica: the others keep what they had.
            assert!(all.iter().all(|(n, t)| {
                let (before, after) = (owner(n, t, count), owner(n, t, count + 1));
                before == after || after == count
            }));
        }
    }

    #[test]
    fn parses_the_forms_users_write() {
        assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, count: 3 }));
        assert!(Shard::parse("3/3").unwrap_err().contains("0 to COUNT-1"));
        assert!(Shard::parse("1").is_err());
        assert!(Shard::parse("0/0").is_err());
        assert_eq!(Shard::of_pod("lookout-probes-4", 5), Ok(Shard { index: 4, count: 5 }));
        assert!(Shard::of_pod("lookout-probes-5", 5).is_err());
        assert!(Shard::of_pod("lookout", 2).unwrap_err().contains("-N"));
    }
}
