//! The command line: flags in Prometheus' style, one module per subcommand (serve, once, check,
//! healthcheck, replay, test-rules), one error printer and one exit-code policy:
//! 0 all well, 1 a check failed (a probe, a rule test, a health check) or lookout could not
//! serve, 2 bad configuration or usage.

mod check;
mod healthcheck;
mod once;
mod pow;
mod replay;
mod serve;
mod test_rules;

use crate::app::ConfigPaths;
use crate::config::values::ByteSize;
use crate::config::ConfigError;
use crate::probe::shard::Shard;
use clap::{Parser, Subcommand};
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

pub use once::Output;

/// One Prometheus exporter for endpoint probes, certificate expiry and log-derived metrics.
#[derive(Parser)]
#[command(name = "lookout", version)]
struct Cli {
    /// probes.yaml: modules (blackbox_exporter's schema), scheduled probes, /probe rules.
    #[arg(long = "config.probes", default_value = "probes.yaml", global = true)]
    probes: PathBuf,
    /// log_rules.yaml: log sources and rules [default: log_rules.yaml, if present].
    #[arg(long = "config.log-rules", global = true)]
    log_rules: Option<PathBuf>,
    /// Address to listen on; ":9925" means every interface.
    #[arg(
        long = "web.listen-address",
        default_value = ":9925",
        env = "LOOKOUT_WEB_LISTEN_ADDRESS",
        global = true
    )]
    listen: String,
    /// TLS and basic auth for lookout's own endpoint, in Prometheus' exporter-toolkit format.
    #[arg(long = "web.config.file", env = "LOOKOUT_WEB_CONFIG_FILE", global = true)]
    web_config: Option<PathBuf>,
    /// Connections open at once; at the cap a new one replaces the longest idle one.
    #[arg(
        long = "web.max-connections",
        default_value_t = crate::web::connections::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    max_connections: usize,
    /// Response bodies all probes together may hold in memory at once (for regexes and
    /// decompression); a probe that would need more fails with body_too_large.
    #[arg(long = "probe.body-memory-limit", default_value = "256MiB")]
    body_memory_limit: ByteSize,
    /// Scheduled probe runs in flight at once; a run due while all are taken waits, and is
    /// counted in lookout_probe_starts_waited_total.
    #[arg(
        long = "probe.max-concurrency",
        default_value_t = crate::probe::scheduler::DEFAULT_MAX_CONCURRENCY,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    max_concurrency: usize,
    /// Run only this replica's share of the scheduled probes: INDEX/COUNT, INDEX from 0.
    #[arg(long = "shard", env = "LOOKOUT_SHARD", global = true)]
    shard: Option<String>,
    /// With this and no --shard, INDEX is the number ending the host name (a StatefulSet pod's
    /// ordinal, as in lookout-2).
    #[arg(long = "shard.count", env = "LOOKOUT_SHARD_COUNT", global = true)]
    shard_count: Option<u32>,
    /// Reload when the content of probes.yaml or the log rules changes, read this often (as
    /// Prometheus' flag of the same name); 0s: only on SIGHUP or POST /-/reload.
    #[arg(
        long = "config.auto-reload-interval",
        env = "LOOKOUT_CONFIG_AUTO_RELOAD_INTERVAL",
        default_value = "0s",
        value_parser = duration
    )]
    auto_reload_interval: std::time::Duration,
    /// Where log sources save how far they have read, so a restart resumes there.
    #[arg(long = "positions.file", default_value = "lookout-positions.json")]
    positions: PathBuf,
    /// How long positions of files whose directory is missing or unreadable are kept.
    #[arg(long = "positions.retention", default_value = "24h", value_parser = duration)]
    positions_retention: std::time::Duration,
    /// Seconds subtracted from Prometheus' scrape timeout for /probe.
    #[arg(long = "timeout-offset", default_value_t = 0.5)]
    timeout_offset: f64,
    /// Run every scheduled probe once, print a report and exit: 0 all ok, 1 a failure, 2 bad config.
    #[arg(long)]
    once: bool,
    /// Report format of --once.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log.level", default_value = "info", global = true)]
    log_level: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration files (and --web.config.file when given) and exit: 0 valid,
    /// 2 invalid.
    Check,
    /// Check that the lookout serving at --web.listen-address is alive, over the scheme
    /// --web.config.file sets (a 401 counts as alive); exit 0 alive, 1 not. For HEALTHCHECK.
    Healthcheck {
        /// Client certificate to present when the endpoint requires one.
        #[arg(long = "healthcheck.cert-file", requires = "key_file")]
        cert_file: Option<PathBuf>,
        /// The client certificate's key.
        #[arg(long = "healthcheck.key-file", requires = "cert_file")]
        key_file: Option<PathBuf>,
    },
    /// Read log files from start to end through a source's parser and rules, print the metrics.
    Replay {
        /// The source whose parser and rules to use [default: the first].
        #[arg(long)]
        source: Option<String>,
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Run log rule unit tests (input lines and the series they must give); exit 0 all pass, 1 not.
    TestRules { tests: PathBuf },
}

/// Why a command could not do its work.
pub enum Error {
    /// A configuration file is invalid: exit 2.
    Config(ConfigError),
    /// Another file or flag given is unusable: exit 2.
    Usage(String),
    /// lookout could not run as asked (e.g. cannot listen): exit 1.
    Runtime(String),
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "configuration error: {e}"),
            Error::Usage(message) | Error::Runtime(message) => f.write_str(message),
        }
    }
}

/// What a command that ran found.
pub enum Verdict {
    /// All well: exit 0.
    Pass,
    /// A probe or a rule test failed: exit 1.
    Fail,
}

impl Verdict {
    fn from_ok(ok: bool) -> Verdict {
        if ok {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }
}

/// Parses the command line, runs the command, prints its error if any, and says how to exit.
pub fn main() -> ExitCode {
    // One malloc arena for every thread: glibc would give each thread its own (DNS lookups run
    // on tokio's blocking threads), and each arena keeps its own free memory. The per-thread
    // caches in front of it take most small allocations without its lock; with two arenas,
    // sixteen `/probe`s in flight peaked 0.5 MiB higher at the same probes/s (README).
    // SAFETY: called before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log_level)
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(Verdict::Pass) => ExitCode::SUCCESS,
        Ok(Verdict::Fail) => ExitCode::from(1),
        Err(e) => {
            eprintln!("lookout: {e}");
            ExitCode::from(match e {
                Error::Config(_) | Error::Usage(_) => 2,
                Error::Runtime(_) => 1,
            })
        }
    }
}

fn run(cli: Cli) -> Result<Verdict, Error> {
    // Only the commands that run scheduled probes take a share of them: a stray LOOKOUT_SHARD
    // in a pod's environment must not fail `healthcheck` or `test-rules`.
    let runs_probes = matches!(cli.command, None | Some(Command::Check));
    let paths = ConfigPaths {
        probes: cli.probes.clone(),
        log_rules: cli.log_rules.clone(),
        shard: match runs_probes {
            true => shard(cli.shard.as_deref(), cli.shard_count)?,
            false => Shard::ALL,
        },
    };
    crate::probe::http::limit_body_memory(cli.body_memory_limit.0);
    crate::probe::scheduler::limit_concurrency(cli.max_concurrency);
    match cli.command {
        Some(Command::Check) => check::run(&paths, cli.web_config.as_deref()),
        Some(Command::Healthcheck { cert_file, key_file }) => healthcheck::run(
            &cli.listen,
            cli.web_config.as_deref(),
            cert_file.zip(key_file).as_ref(),
        ),
        Some(Command::Replay { source, files }) => replay::run(&paths, source.as_deref(), files),
        Some(Command::TestRules { tests }) => test_rules::run(&tests, cli.log_rules.as_deref()),
        None if cli.once => once::main(&paths, cli.output),
        None => serve::run(serve::Options {
            paths,
            listen: cli.listen,
            web_config: cli.web_config,
            max_connections: cli.max_connections,
            positions: cli.positions,
            positions_retention: cli.positions_retention,
            timeout_offset: cli.timeout_offset,
            auto_reload: Some(cli.auto_reload_interval).filter(|d| !d.is_zero()),
        }),
    }
}

/// This replica's share from `--shard`, or from the host name with `--shard.count`.
fn shard(shard: Option<&str>, count: Option<u32>) -> Result<Shard, Error> {
    let usage = |e: String| Error::Usage(format!("--shard: {e}"));
    match (shard, count) {
        // Whichever came from a flag and which from the environment, one of them is a mistake.
        (Some(_), Some(_)) => Err(Error::Usage(
            "give --shard (LOOKOUT_SHARD) or --shard.count (LOOKOUT_SHARD_COUNT), not both".into(),
        )),
        (Some(shard), None) => Shard::parse(shard).map_err(usage),
        (None, Some(count)) => {
            let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().into())
            });
            Shard::of_pod(&host.unwrap_or_default(), count).map_err(usage)
        }
        (None, None) => Ok(Shard::ALL),
    }
}

/// A duration flag in Prometheus' syntax (`30s`, `24h`, `7d`).
fn duration(text: &str) -> Result<std::time::Duration, String> {
    crate::config::values::PromDuration::parse(text).map(|d| d.0)
}

/// The web configuration file, or why it cannot be used (a usage error: exit 2).
fn load_security(path: &std::path::Path) -> Result<crate::web::security::Security, Error> {
    crate::web::security::Security::load(path)
        .map_err(|e| Error::Usage(format!("web configuration error: {e}")))
}

/// A multi-threaded tokio runtime for the commands that probe or serve.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}
