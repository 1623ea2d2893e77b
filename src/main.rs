//! Command line: parse flags, load the configuration, then serve, run once, or check.

use clap::{Parser, Subcommand};
use lookout::app::{App, Config, ConfigPaths};
use lookout::once::Output;
use std::path::PathBuf;
use std::process::ExitCode;

/// One Prometheus exporter for endpoint probes and certificate expiry.
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
    #[arg(long = "web.listen-address", default_value = ":9925")]
    listen: String,
    /// TLS and basic auth for lookout's own endpoint, in Prometheus' exporter-toolkit format.
    #[arg(long = "web.config.file")]
    web_config: Option<PathBuf>,
    /// Where log sources save how far they have read, so a restart resumes there.
    #[arg(long = "positions.file", default_value = "lookout-positions.json")]
    positions: PathBuf,
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
    /// Validate the configuration files and exit: 0 valid, 2 invalid.
    Check,
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

fn main() -> ExitCode {
    // DNS lookups run on tokio's blocking threads; without a cap glibc gives each thread its
    // own malloc arena, which costs resident memory for no gain in this workload.
    // SAFETY: called before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    let cli = Cli::parse();
    if !(cli.timeout_offset.is_finite() && cli.timeout_offset >= 0.0) {
        eprintln!("lookout: --timeout-offset must be a number of seconds, 0 or more");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log_level)
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rules_path =
        cli.log_rules.clone().unwrap_or_else(|| lookout::app::DEFAULT_LOG_RULES.into());
    match &cli.command {
        Some(Command::Replay { source, files }) => {
            return match lookout::logs::offline::replay(
                &rules_path,
                source.as_deref(),
                files.clone(),
            ) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("lookout: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Some(Command::TestRules { tests }) => {
            return match lookout::logs::offline::test_rules(tests, cli.log_rules.as_deref()) {
                Ok((report, ok)) => {
                    print!("{report}");
                    if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("lookout: {e}");
                    ExitCode::from(2)
                }
            };
        }
        _ => {}
    }
    let paths = ConfigPaths { probes: cli.probes.clone(), log_rules: cli.log_rules.clone() };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let config = match Config::load(&paths) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("lookout: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match (cli.command, cli.once) {
        (Some(Command::Check), _) => {
            let unsupported: Vec<&str> = config
                .modules
                .values()
                .filter(|m| matches!(m.prober, lookout::probe::Prober::Unsupported(_)))
                .map(|m| m.name.as_str())
                .collect();
            let sources = config.log_pipelines.lock().map(|p| p.len()).unwrap_or(0);
            println!(
                "{}: {} modules, {} scheduled probes, {} log sources: OK",
                paths.probes.display(),
                config.modules.len(),
                config.jobs.len(),
                sources
            );
            if !unsupported.is_empty() {
                println!(
                    "note: modules with probers lookout does not implement (answered with an error on /probe): {}",
                    unsupported.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        (None, true) => {
            let (report, ok) = runtime.block_on(lookout::once::run(&config, cli.output));
            print!("{report}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        (None, false) => {
            let positions = match lookout::logs::positions::Positions::load(&cli.positions) {
                Ok(p) => std::sync::Arc::new(p),
                Err(e) => {
                    eprintln!("lookout: positions file: {e}");
                    return ExitCode::from(2);
                }
            };
            let security = match &cli.web_config {
                Some(path) => match lookout::web::security::Security::load(path) {
                    Ok(s) => Some(std::sync::Arc::new(s)),
                    Err(e) => {
                        eprintln!("lookout: web configuration error: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => None,
            };
            runtime.block_on(serve(
                cli.listen,
                paths,
                config,
                cli.timeout_offset,
                positions,
                security,
            ))
        }
        (Some(Command::Replay { .. } | Command::TestRules { .. }), _) => {
            unreachable!("handled above")
        }
    }
}

async fn serve(
    listen: String,
    paths: ConfigPaths,
    config: Config,
    timeout_offset: f64,
    positions: std::sync::Arc<lookout::logs::positions::Positions>,
    security: Option<std::sync::Arc<lookout::web::security::Security>>,
) -> ExitCode {
    let address = if listen.starts_with(':') { format!("0.0.0.0{listen}") } else { listen };
    let listener = match tokio::net::TcpListener::bind(&address).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("lookout: cannot listen on {address}: {e}");
            return ExitCode::from(1);
        }
    };
    let app = App::new(paths, config, timeout_offset, Some(positions));
    app.start();
    tracing::info!("listening on {address}");
    let reload_app = app.clone();
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hangups.recv().await.is_some() {
            let _ = tokio::task::block_in_place(|| reload_app.reload());
        }
    });
    let shutdown = async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down");
    };
    lookout::web::serve(listener, app.clone(), security, shutdown).await;
    // Saves where each log source stopped, so the next start resumes there.
    tokio::task::spawn_blocking(move || app.stop_logs()).await.ok();
    ExitCode::SUCCESS
}
