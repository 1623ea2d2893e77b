//! Real servers the icmp, dns and grpc probers are tested against, all on loopback: Knot DNS
//! serving an authoritative zone with an SOA, dnsmasq recursing to it (and nowhere else), a
//! gRPC health server built with tonic-health, and network namespaces for ICMP permissions.

use crate::common::*;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tonic::codegen::Service;
use tonic_health::ServingStatus;

const KNOTD: &str = "/usr/sbin/knotd";
const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// The zone Knot serves: an SOA, names with every record type the tests validate, and a name
/// with more TXT data than a 512-byte UDP answer holds (the server truncates it).
pub const ZONE: &str = "$ORIGIN example.test.
$TTL 300
@       SOA   ns1.example.test. hostmaster.example.test. 2024010101 3600 900 604800 300
@       NS    ns1
ns1     A     127.0.0.1
www     A     192.0.2.10
www     AAAA  2001:db8::10
@       MX    10 mail
mail    A     192.0.2.25
@       TXT   \"v=spf1 -all\"
alias   CNAME www
_sip._tcp SRV 0 5 5060 sip
sip     A     192.0.2.50
big     TXT   \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-01\"
big     TXT   \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-02\"
big     TXT   \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-03\"
big     TXT   \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-04\"
big     TXT   \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-05\"
big     TXT   \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-06\"
big     TXT   \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-07\"
big     TXT   \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-08\"
big     TXT   \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-09\"
big     TXT   \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-10\"
big     TXT   \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-11\"
big     TXT   \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-12\"
";

/// A process stopped with SIGTERM when dropped (nginx's master then stops its workers too).
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling the child this value owns.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Knot and dnsmasq for one test, stopped when dropped.
pub struct Dns {
    /// Knot, authoritative for example.test (UDP and TCP).
    pub authoritative: SocketAddr,
    /// dnsmasq, recursing to Knot only.
    pub recursive: SocketAddr,
    _daemons: Vec<Daemon>,
    _dir: tempfile::TempDir,
}

/// Starts Knot (with [`ZONE`]) and dnsmasq in front of it.
pub fn dns() -> Dns {
    start_dns()
}

/// A port free for both UDP and TCP.
fn free_port() -> u16 {
    loop {
        let port = closed_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start_dns() -> Dns {
    for binary in [KNOTD, DNSMASQ] {
        assert!(
            Path::new(binary).exists(),
            "{binary} is needed (Debian packages knot and dnsmasq-base); .ci/run installs them"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let knot_port = free_port();
    write_file(dir.path(), "example.test.zone", ZONE);
    std::fs::create_dir_all(dir.path().join("db")).unwrap();
    let conf = format!(
        "server:\n  rundir: \"{d}\"\n  listen: 127.0.0.1@{knot_port}\n  listen: ::1@{knot_port}\n\
         database:\n  storage: \"{d}/db\"\n\
         log:\n  - target: stderr\n    any: error\n\
         zone:\n  - domain: example.test\n    storage: \"{d}\"\n    file: example.test.zone\n    \
         semantic-checks: off\n"
    );
    let conf_path = write_file(dir.path(), "knot.conf", conf);
    let knot = Command::new(KNOTD)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let authoritative: SocketAddr = format!("127.0.0.1:{knot_port}").parse().unwrap();
    wait_tcp(authoritative, "knotd");
    let recursive_port = free_port();
    let dnsmasq = Command::new(DNSMASQ)
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--user=root",
            "--cache-size=0",
            &format!("--port={recursive_port}"),
            &format!("--server=127.0.0.1#{knot_port}"),
            &format!("--pid-file={d}/dnsmasq.pid"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let recursive: SocketAddr = format!("127.0.0.1:{recursive_port}").parse().unwrap();
    wait_tcp(recursive, "dnsmasq");
    Dns { authoritative, recursive, _daemons: vec![Daemon(knot), Daemon(dnsmasq)], _dir: dir }
}

fn wait_tcp(addr: SocketAddr, what: &str) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not start on {addr}");
}

/// What the gRPC test server answers.
#[derive(Clone, Copy)]
pub enum Health {
    /// tonic-health: "" and "shop" SERVING, "billing" NOT_SERVING, others SERVICE_UNKNOWN (as
    /// a NOT_FOUND status, what tonic-health answers for an unknown service).
    Reporter,
    /// No health service at all: every call is UNIMPLEMENTED.
    Unimplemented,
}

/// A gRPC server on loopback, over TLS when `tls` holds a chain and key, in a background thread.
pub fn grpc_server(
    health: Health,
    tls: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> SocketAddr {
    in_background(move || async move {
        let routes = match health {
            Health::Reporter => {
                let (mut reporter, service) = tonic_health::server::health_reporter();
                reporter.set_service_status("shop", ServingStatus::Serving).await;
                reporter.set_service_status("billing", ServingStatus::NotServing).await;
                tonic::service::Routes::new(service)
            }
            Health::Unimplemented => tonic::service::Routes::default(),
        };
        let acceptor = tls.map(|(chain, key)| tls_acceptor(chain, key, &[b"h2"]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let routes = routes.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let service = GrpcService(routes);
                    let server = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = server.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                        None => {
                            let _ = server.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        addr
    })
}

/// A TLS server side presenting `chain`, offering `alpn`.
pub fn tls_acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// TLS in front of `backend`'s TCP port (DNS over TLS in front of Knot).
pub async fn tls_proxy(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    backend: SocketAddr,
) -> SocketAddr {
    let acceptor = tls_acceptor(chain, key, &[]);
    raw_server(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(mut tls) = acceptor.accept(stream).await {
                let mut upstream = tokio::net::TcpStream::connect(backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            }
        }
    })
    .await
}

/// tonic's routes as a hyper service.
#[derive(Clone)]
struct GrpcService(tonic::service::Routes);

type Answer = hyper::Response<tonic::body::BoxBody>;

impl hyper::service::Service<hyper::Request<Incoming>> for GrpcService {
    type Response = Answer;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Self::Error>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let mut routes = self.0.clone();
        Box::pin(async move { routes.call(request.map(tonic::body::boxed)).await })
    }
}

/// Runs `shell` (a /bin/sh script) in a new network namespace with only loopback up.
pub fn in_namespace(shell: &str) -> std::process::Output {
    Command::new("unshare")
        .args(["--net", "sh", "-c"])
        .arg(format!("ip link set lo up && {shell}"))
        .output()
        .unwrap()
}
