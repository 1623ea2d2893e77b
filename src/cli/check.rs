//! `lookout check`: loads and validates both configuration files (and the web configuration
//! when `--web.config.file` is given) as a start would, and says what they hold.

use super::{Error, Verdict};
use crate::app::{Config, ConfigPaths};
use crate::probe::Prober;
use std::path::Path;

pub fn run(paths: &ConfigPaths, web_config: Option<&Path>) -> Result<Verdict, Error> {
    let config = Config::load(paths)?;
    if let Some(path) = web_config {
        super::load_security(path)?;
        println!("{}: OK", path.display());
    }
    let icmp: Vec<&str> = config
        .modules
        .values()
        .filter(|m| matches!(m.prober, Prober::Icmp(_)))
        .map(|m| m.name.as_str())
        .collect();
    // Discovered targets are known only once lookout runs: their probes are counted apart.
    let discovering = match config.discoveries.len() {
        0 => String::new(),
        n => format!(" (and {n} with targets from service discovery)"),
    };
    // With a shard, the count is this replica's share.
    let share = match config.shard.count {
        1 => String::new(),
        _ => format!(" of shard {}", config.shard),
    };
    println!(
        "{}: {} modules, {} scheduled probes{share}{discovering}, {} log sources: OK",
        paths.probes.display(),
        config.modules.len(),
        config.jobs.len(),
        config.log_plans.len()
    );
    if !icmp.is_empty() {
        // The configuration is valid either way; whether its pings can run is the machine's.
        match crate::probe::icmp::socket_access() {
            Ok(kind) => println!("icmp modules ({}): {kind} sockets", icmp.join(", ")),
            Err(failure) => {
                println!(
                    "warning: icmp modules ({}) will fail: {}",
                    icmp.join(", "),
                    failure.message
                )
            }
        }
    }
    Ok(Verdict::Pass)
}
