//! Integration tests: real probes against loopback servers, and the lookout binary as a
//! user runs it. No outside network.

mod cert_files;
mod cli;
mod common;
mod config;
mod containers;
mod deploy;
mod dns_prober;
mod edges;
mod every_prober;
mod faults;
mod fleet;
mod grpc_prober;
mod http_prober;
mod http_schema;
mod icmp_prober;
mod logs;
mod nginx_formats;
mod nginx_real;
mod parity;
mod peers;
mod status_page;
mod tailing;
mod tcp_prober;
mod tls;
mod unix_prober;
mod upstream_configs;
mod web_security;
mod websocket_prober;
