//! `lookout` (no subcommand): serve `/metrics`, `/probe` and the status page, run the scheduled
//! probes, follow the log sources; reload on `SIGHUP` (and, with
//! `--config.auto-reload-interval`, when the files change), save positions and stop on `SIGTERM`.

use super::{Error, Verdict};
use crate::app::{App, Config, ConfigPaths};
use crate::config::probes::ProbeEndpoint;
use crate::logs::positions::Positions;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

pub struct Options {
    pub paths: ConfigPaths,
    pub listen: String,
    pub web_config: Option<PathBuf>,
    pub max_connections: usize,
    pub positions: PathBuf,
    pub positions_retention: std::time::Duration,
    pub timeout_offset: f64,
    /// How often the configuration files are read for a change that reloads them; `None`: never.
    pub auto_reload: Option<std::time::Duration>,
}

pub fn run(options: Options) -> Result<Verdict, Error> {
    if !(options.timeout_offset.is_finite() && options.timeout_offset >= 0.0) {
        return Err(Error::Usage("--timeout-offset must be a number of seconds, 0 or more".into()));
    }
    let digest = options.paths.digest();
    let config = Config::load(&options.paths)?;
    let positions = Positions::open(&options.positions, options.positions_retention);
    if let Some(problem) = positions.load_problem() {
        // The log side starts as on a first run; the probes do not depend on it.
        tracing::error!("positions file: {problem}; log sources start as `start_at` says");
    }
    let security = match &options.web_config {
        Some(path) => Some(Arc::new(super::load_security(path)?)),
        None => None,
    };
    let address = match options.listen.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => options.listen.clone(),
    };
    super::runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|e| Error::Runtime(format!("cannot listen on {address}: {e}")))?;
        warn_if_open_relay(&config.probe_endpoint, &listener);
        let app =
            App::new(options.paths, config, options.timeout_offset, Some(Arc::new(positions)));
        app.set_loaded_digest(digest);
        app.start();
        tracing::info!("listening on {address}");
        let reload_app = app.clone();
        tokio::spawn(async move {
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                return;
            };
            while hangups.recv().await.is_some() {
                let _ = tokio::task::block_in_place(|| reload_app.reload());
            }
        });
        if let Some(every) = options.auto_reload {
            tokio::spawn(reload_on_change(app.clone(), every));
        }
        let shutdown = async {
            let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = terminate.recv() => {},
            }
            tracing::info!("shutting down");
        };
        crate::web::serve(listener, app.clone(), security, options.max_connections, shutdown).await;
        // Saves where each log source stopped, so the next start resumes there.
        tokio::task::spawn_blocking(move || app.stop_logs()).await.ok();
        Ok(Verdict::Pass)
    })
}

/// Reloads when what the configuration files hold changes, as Prometheus'
/// `--config.auto-reload-interval`: read every `every`, compared by digest with what was last
/// loaded (a reload by SIGHUP or `/-/reload` included). A change is reloaded once: a file that
/// does not load is reported (and counted as a failed reload) at the change, not again at every
/// look, and the running configuration stays.
async fn reload_on_change(app: Arc<App>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let looked = app.clone();
        if tokio::task::spawn_blocking(move || looked.config_changed()).await.unwrap_or(false) {
            tracing::info!("configuration files changed: reloading");
            let _ = tokio::task::block_in_place(|| app.reload());
        }
    }
}

/// `/probe` open to every target on an address other machines reach makes lookout a relay
/// into whatever this machine can reach: said once, at start.
fn warn_if_open_relay(endpoint: &ProbeEndpoint, listener: &tokio::net::TcpListener) {
    let Ok(local) = listener.local_addr() else { return };
    if endpoint.enabled && endpoint.allowed_targets.is_empty() && !local.ip().is_loopback() {
        tracing::warn!(
            "/probe is enabled on {local} without probe_endpoint.allowed_targets: anyone who can reach this address can make lookout connect to any host the machine can reach; set allowed_targets or listen on loopback"
        );
    }
}
