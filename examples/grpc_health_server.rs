//! A gRPC server whose `grpc.health.v1.Health/Check` answers SERVING, as the target of the
//! grpc kind of `bench/probe_kinds.py` (the tests serve their own, in
//! tests/integration/peers.rs, over clear text and TLS):
//!
//! cargo run --release --example grpc_health_server -- 127.0.0.1:50051

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:50051".to_string());
    let addr = addr.parse().expect("an address such as 127.0.0.1:50051");
    let (_reporter, service) = tonic_health::server::health_reporter();
    tonic::transport::Server::builder().add_service(service).serve(addr).await.expect("serving");
}
