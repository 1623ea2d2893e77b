# Multi-stage build: compile in the Rust image, run from a small Debian base as a non-root user.
# The compiler link-order.txt was made with (its second line): symbol names carry its version.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs link-order.txt ./
COPY src ./src
# Cargo.toml declares the benchmark target: cargo refuses a manifest whose targets are missing.
COPY benches ./benches
RUN cargo build --release --locked && strip target/release/lookout

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /etc/lookout --shell /usr/sbin/nologin lookout \
 && install -d -o lookout -g lookout /var/lib/lookout
COPY --from=build /src/target/release/lookout /usr/local/bin/lookout
COPY probes.yaml log_rules.yaml /etc/lookout/
WORKDIR /etc/lookout
# icmp modules ping with unprivileged ICMP sockets, which the kernel allows to the groups in
# the sysctl net.ipv4.ping_group_range: Docker sets it to every group in containers (20.10 and
# later; `--sysctl net.ipv4.ping_group_range="0 2147483647"` otherwise), so the non-root user
# needs no CAP_NET_RAW.
USER lookout
# Where log sources save how far they have read; keep it across container restarts.
VOLUME /var/lib/lookout
EXPOSE 9925
# TLS and basic auth: set LOOKOUT_WEB_CONFIG_FILE (read by the server and by `healthcheck`), so the
# health check asks over the same scheme; a 401 counts as alive. With client certificates, add
# --healthcheck.cert-file and --healthcheck.key-file to this command.
ENV LOOKOUT_WEB_LISTEN_ADDRESS=:9925
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/lookout", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/lookout"]
CMD ["--config.probes=/etc/lookout/probes.yaml", "--config.log-rules=/etc/lookout/log_rules.yaml", "--positions.file=/var/lib/lookout/positions.json"]
