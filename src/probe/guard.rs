//! What a `/probe` request may reach. Scheduled probes are the operator's own configuration and
//! run unguarded; a scraper's request is held to `probe_endpoint` at every hop — the target and
//! each redirect — before anything is sent there: the URL must match `allowed_targets` and may
//! not hide its host behind userinfo, and the address connected to may not be one of lookout's
//! own listening sockets unless `allow_self` is set (else `POST /-/reload` or a redirect loop
//! through `/probe` are a scrape away). A Unix socket must match `allowed_unix_sockets`,
//! which is empty by default: a scraper must not reach the Docker socket.

use super::dial::is_local_ip;
use super::{Failure, FailureReason};
use crate::config::probes::ProbeEndpoint;
use hyper::Uri;
use std::net::SocketAddr;

pub struct Guard<'a> {
    endpoint: &'a ProbeEndpoint,
    /// lookout's listening ports; none when `allow_self` is set.
    own_ports: &'a [u16],
}

impl<'a> Guard<'a> {
    /// `listening`: the ports lookout serves on.
    pub fn new(endpoint: &'a ProbeEndpoint, listening: &'a [u16]) -> Guard<'a> {
        Guard { endpoint, own_ports: if endpoint.allow_self { &[] } else { listening } }
    }

    /// Checks a hop's URL. The target as written was matched by the endpoint already, so that
    /// allowlists of bare `host:port` targets keep working; a redirect is matched as the
    /// absolute URL it leads to.
    pub fn check_url(&self, uri: &Uri, redirect: bool) -> Result<(), Failure> {
        if self.endpoint.allowed_targets.is_empty() {
            return Ok(());
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(refused(format!(
                "{uri}: userinfo (user@) in a URL is refused while allowed_targets is set, as it can disguise the host"
            )));
        }
        if redirect && !self.endpoint.allows(&uri.to_string()) {
            return Err(refused(format!(
                "redirect to {uri} is not allowed by probe_endpoint.allowed_targets"
            )));
        }
        Ok(())
    }

    /// Checks the socket path of a `prober: unix` target.
    pub fn check_unix_socket(&self, path: &str) -> Result<(), Failure> {
        if self.endpoint.allowed_unix_sockets.iter().any(|p| p.0.is_match(path)) {
            return Ok(());
        }
        Err(refused(format!(
            "unix socket {path:?} is not allowed by probe_endpoint.allowed_unix_sockets"
        )))
    }

    /// Checks the address a hop is about to connect to.
    pub fn check_address(&self, addr: SocketAddr) -> Result<(), Failure> {
        if self.own_ports.contains(&addr.port()) && is_local_ip(addr.ip()) {
            return Err(refused(format!(
                "{addr} is lookout's own listening socket (probe_endpoint.allow_self is off)"
            )));
        }
        Ok(())
    }
}

fn refused(message: String) -> Failure {
    Failure::new(FailureReason::TargetNotAllowed, message)
}
