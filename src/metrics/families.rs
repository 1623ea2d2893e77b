//! Every metric family lookout emits for probes, `/probe`, itself, its log sources and its
//! process, declared once: name, help, type and label names. (The families of log rules are the
//! user's, named in log_rules.yaml.) Probers, the self-metrics, the log runtime and the process
//! collector build their samples from these, `--once` and the status page read results through them, and
//! the labels a scheduled probe may not use are derived from them.

use super::exposition::{Kind, Labels, Name};

/// A metric family's fixed description. `labels` lists every label its samples may carry,
/// in the order they carry them.
#[derive(Debug, PartialEq, Eq)]
pub struct FamilyDef {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

impl FamilyDef {
    /// Pairs each declared label name with its value.
    pub fn labels<const N: usize>(&self, values: [String; N]) -> Labels {
        assert_eq!(N, self.labels.len(), "label values of {}", self.name);
        self.labels.iter().zip(values).map(|(name, value)| (Name::Borrowed(name), value)).collect()
    }
}

/// Label values for a declared family: one per declared label in order (`[String; N]`), or
/// name–value pairs for a family whose samples carry only some of its labels (certificates).
pub trait LabelValues {
    fn into_labels(self, family: &FamilyDef) -> Labels;
}

impl<const N: usize> LabelValues for [String; N] {
    fn into_labels(self, family: &FamilyDef) -> Labels {
        family.labels(self)
    }
}

impl LabelValues for Labels {
    fn into_labels(self, family: &FamilyDef) -> Labels {
        debug_assert!(
            self.iter().all(|(name, _)| family.labels.contains(&name.as_ref())),
            "undeclared label on {}",
            family.name
        );
        self
    }
}

const fn gauge(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
) -> FamilyDef {
    FamilyDef { name, help, kind: Kind::Gauge, labels }
}

const fn counter(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
) -> FamilyDef {
    FamilyDef { name, help, kind: Kind::Counter, labels }
}

// ---------------------------------------------------------------- every probe

pub const PROBE_SUCCESS: FamilyDef =
    gauge("probe_success", "Displays whether or not the probe was a success", &[]);
pub const PROBE_DURATION_SECONDS: FamilyDef =
    gauge("probe_duration_seconds", "Returns how long the probe took to complete in seconds", &[]);
pub const PROBE_FAILURE_REASON: FamilyDef = gauge(
    "lookout_probe_failure_reason",
    "Why the probe failed: 1 for the reason of the last failure, absent when it succeeded",
    &["reason"],
);
pub const PROBE_FAILED_DUE_TO_REGEX: FamilyDef =
    gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex", &[]);
pub const PROBE_FAILED_DUE_TO_BYTES: FamilyDef =
    gauge("probe_failed_due_to_bytes", "Indicates if probe failed due to bytes", &[]);
/// Its labels are named by the module (`query_response` steps' `labels`), so none are declared.
pub const PROBE_EXPECT_INFO: FamilyDef =
    gauge("probe_expect_info", "Explicit content matched", &[]);
pub const PROBE_FAILED_DUE_TO_CEL: FamilyDef = gauge(
    "probe_failed_due_to_cel",
    "Indicates if probe failed due to CEL expression not matching",
    &[],
);
pub const PROBE_DNS_LOOKUP_TIME_SECONDS: FamilyDef = gauge(
    "probe_dns_lookup_time_seconds",
    "Returns the time taken for probe dns lookup in seconds",
    &[],
);
pub const PROBE_IP_PROTOCOL: FamilyDef =
    gauge("probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6", &[]);
pub const PROBE_IP_ADDR_HASH: FamilyDef = gauge(
    "probe_ip_addr_hash",
    "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
    &[],
);

// ---------------------------------------------------------------- http

pub const PROBE_HTTP_DURATION_SECONDS: FamilyDef = gauge(
    "probe_http_duration_seconds",
    "Duration of http request by phase, summed over all redirects",
    &["phase"],
);
pub const PROBE_HTTP_REDIRECTS: FamilyDef =
    gauge("probe_http_redirects", "The number of redirects", &[]);
pub const PROBE_HTTP_SSL: FamilyDef =
    gauge("probe_http_ssl", "Indicates if SSL was used for the final redirect", &[]);
pub const PROBE_HTTP_STATUS_CODE: FamilyDef =
    gauge("probe_http_status_code", "Response HTTP status code", &[]);
pub const PROBE_HTTP_CONTENT_LENGTH: FamilyDef =
    gauge("probe_http_content_length", "Length of http content response", &[]);
pub const PROBE_HTTP_UNCOMPRESSED_BODY_LENGTH: FamilyDef =
    gauge("probe_http_uncompressed_body_length", "Length of uncompressed response body", &[]);
pub const PROBE_HTTP_VERSION: FamilyDef =
    gauge("probe_http_version", "Returns the version of HTTP of the probe response", &[]);
pub const PROBE_HTTP_LAST_MODIFIED_TIMESTAMP_SECONDS: FamilyDef = gauge(
    "probe_http_last_modified_timestamp_seconds",
    "Returns the Last-Modified HTTP response header in unixtime",
    &[],
);

// ---------------------------------------------------------------- icmp

pub const PROBE_ICMP_DURATION_SECONDS: FamilyDef =
    gauge("probe_icmp_duration_seconds", "Duration of icmp request by phase", &["phase"]);
pub const PROBE_ICMP_REPLY_HOP_LIMIT: FamilyDef =
    gauge("probe_icmp_reply_hop_limit", "Replied packet hop limit (TTL for ipv4)", &[]);
pub const ICMP_PACKETS_SENT: FamilyDef = gauge(
    "lookout_icmp_packets_sent",
    "Echo requests sent by the probe (modules with `packets:`)",
    &[],
);
pub const ICMP_PACKETS_RECEIVED: FamilyDef = gauge(
    "lookout_icmp_packets_received",
    "Matching echo replies received by the probe (modules with `packets:`)",
    &[],
);
pub const ICMP_RTT_SECONDS: FamilyDef = gauge(
    "lookout_icmp_rtt_seconds",
    "Round-trip times of the probe's echoes: min, avg, max and their standard deviation (jitter)",
    &["stat"],
);

// ---------------------------------------------------------------- dns

pub const PROBE_DNS_DURATION_SECONDS: FamilyDef =
    gauge("probe_dns_duration_seconds", "Duration of DNS request by phase", &["phase"]);
pub const PROBE_DNS_ANSWER_RRS: FamilyDef = gauge(
    "probe_dns_answer_rrs",
    "Returns number of entries in the answer resource record list",
    &[],
);
pub const PROBE_DNS_AUTHORITY_RRS: FamilyDef = gauge(
    "probe_dns_authority_rrs",
    "Returns number of entries in the authority resource record list",
    &[],
);
pub const PROBE_DNS_ADDITIONAL_RRS: FamilyDef = gauge(
    "probe_dns_additional_rrs",
    "Returns number of entries in the additional resource record list",
    &[],
);
pub const PROBE_DNS_QUERY_SUCCEEDED: FamilyDef = gauge(
    "probe_dns_query_succeeded",
    "Displays whether or not the query was executed successfully",
    &[],
);
pub const PROBE_DNS_SERIAL: FamilyDef =
    gauge("probe_dns_serial", "Returns the serial number of the zone", &[]);

// ---------------------------------------------------------------- websocket

pub const PROBE_WEBSOCKET_STATUS_CODE: FamilyDef =
    gauge("probe_websocket_status_code", "Response HTTP status code", &[]);
pub const PROBE_WEBSOCKET_CONNECTION_UPGRADED: FamilyDef = gauge(
    "probe_websocket_connection_upgraded",
    "Indicates if the websocket connection was successfully upgraded",
    &[],
);
pub const PROBE_WEBSOCKET_FAILED_DUE_TO_REGEX: FamilyDef =
    gauge("probe_websocket_failed_due_to_regex", "Indicates if probe failed due to regex", &[]);
pub const PROBE_WEBSOCKET_DURATION_SECONDS: FamilyDef =
    gauge("probe_websocket_duration_seconds", "Duration of websocket request by phase", &["phase"]);

// ---------------------------------------------------------------- grpc

pub const PROBE_GRPC_DURATION_SECONDS: FamilyDef =
    gauge("probe_grpc_duration_seconds", "Duration of gRPC request by phase", &["phase"]);
pub const PROBE_GRPC_SSL: FamilyDef =
    gauge("probe_grpc_ssl", "Indicates if SSL was used for the connection", &[]);
pub const PROBE_GRPC_STATUS_CODE: FamilyDef =
    gauge("probe_grpc_status_code", "Response gRPC status code", &[]);
pub const PROBE_GRPC_HEALTHCHECK_RESPONSE: FamilyDef =
    gauge("probe_grpc_healthcheck_response", "Response HealthCheck response", &["serving_status"]);

// ---------------------------------------------------------------- TLS and certificates

pub const PROBE_TLS_VERSION_INFO: FamilyDef = gauge(
    "probe_tls_version_info",
    "Returns the TLS version used or NaN when unknown",
    &["version"],
);
pub const PROBE_TLS_CIPHER_INFO: FamilyDef = gauge(
    "probe_tls_cipher_info",
    "Returns the TLS cipher negotiated during handshake",
    &["cipher"],
);
pub const PROBE_SSL_EARLIEST_CERT_EXPIRY: FamilyDef =
    gauge("probe_ssl_earliest_cert_expiry", "Returns last SSL chain expiry in unixtime", &[]);
pub const PROBE_SSL_LAST_CHAIN_EXPIRY_TIMESTAMP_SECONDS: FamilyDef = gauge(
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "Returns last SSL chain expiry in timestamp",
    &[],
);
pub const PROBE_SSL_LAST_CHAIN_INFO: FamilyDef = gauge(
    "probe_ssl_last_chain_info",
    "Contains SSL leaf certificate information",
    &["fingerprint_sha256", "issuer", "serialnumber", "subject", "subjectalternative"],
);
pub const TLS_VERIFY_RESULT: FamilyDef = gauge(
    "lookout_tls_verify_result",
    "Result of verifying the served certificate chain: ok, expired, not_yet_valid, unknown_issuer, name_mismatch, bad_signature, revoked, invalid",
    &["result"],
);
/// Label names of the certificate series; `chain_position` and `path` only where they apply
/// (see `probe::certs::Origin`).
const CERT_LABELS: &[&str] = &[
    "source",
    "chain_position",
    "path",
    "subject_cn",
    "issuer_cn",
    "serial",
    "fingerprint_sha256",
];
pub const CERT_NOT_AFTER: FamilyDef = gauge(
    "lookout_cert_not_after_timestamp_seconds",
    "NotAfter of each certificate, as a Unix timestamp; present even when the certificate is expired or untrusted",
    CERT_LABELS,
);
pub const CERT_NOT_BEFORE: FamilyDef = gauge(
    "lookout_cert_not_before_timestamp_seconds",
    "NotBefore of each certificate, as a Unix timestamp",
    CERT_LABELS,
);
pub const CERT_FILE_ERROR: FamilyDef = gauge(
    "lookout_cert_file_error",
    "1 for a certificate file that could not be used, with why: unreadable, too_large, not_a_certificate",
    &["path", "reason"],
);

/// Every family a probe result can hold.
pub const PROBE_FAMILIES: &[&FamilyDef] = &[
    &PROBE_SUCCESS,
    &PROBE_DURATION_SECONDS,
    &PROBE_FAILED_DUE_TO_REGEX,
    &PROBE_FAILED_DUE_TO_BYTES,
    &PROBE_EXPECT_INFO,
    &PROBE_FAILED_DUE_TO_CEL,
    &PROBE_DNS_LOOKUP_TIME_SECONDS,
    &PROBE_IP_PROTOCOL,
    &PROBE_IP_ADDR_HASH,
    &PROBE_HTTP_DURATION_SECONDS,
    &PROBE_HTTP_REDIRECTS,
    &PROBE_HTTP_SSL,
    &PROBE_HTTP_STATUS_CODE,
    &PROBE_HTTP_CONTENT_LENGTH,
    &PROBE_HTTP_UNCOMPRESSED_BODY_LENGTH,
    &PROBE_HTTP_VERSION,
    &PROBE_HTTP_LAST_MODIFIED_TIMESTAMP_SECONDS,
    &PROBE_ICMP_DURATION_SECONDS,
    &PROBE_ICMP_REPLY_HOP_LIMIT,
    &ICMP_PACKETS_SENT,
    &ICMP_PACKETS_RECEIVED,
    &ICMP_RTT_SECONDS,
    &PROBE_DNS_DURATION_SECONDS,
    &PROBE_DNS_ANSWER_RRS,
    &PROBE_DNS_AUTHORITY_RRS,
    &PROBE_DNS_ADDITIONAL_RRS,
    &PROBE_DNS_QUERY_SUCCEEDED,
    &PROBE_DNS_SERIAL,
    &PROBE_GRPC_DURATION_SECONDS,
    &PROBE_GRPC_SSL,
    &PROBE_WEBSOCKET_STATUS_CODE,
    &PROBE_WEBSOCKET_CONNECTION_UPGRADED,
    &PROBE_WEBSOCKET_FAILED_DUE_TO_REGEX,
    &PROBE_WEBSOCKET_DURATION_SECONDS,
    &PROBE_GRPC_STATUS_CODE,
    &PROBE_GRPC_HEALTHCHECK_RESPONSE,
    &PROBE_TLS_VERSION_INFO,
    &PROBE_TLS_CIPHER_INFO,
    &PROBE_SSL_EARLIEST_CERT_EXPIRY,
    &PROBE_SSL_LAST_CHAIN_EXPIRY_TIMESTAMP_SECONDS,
    &PROBE_SSL_LAST_CHAIN_INFO,
    &PROBE_FAILURE_REASON,
    &TLS_VERIFY_RESULT,
    &CERT_NOT_AFTER,
    &CERT_NOT_BEFORE,
    &CERT_FILE_ERROR,
];

// ---------------------------------------------------------------- lookout itself

pub const BUILD_INFO: FamilyDef = gauge(
    "lookout_build_info",
    "A metric with a constant '1' value labeled by version and the Rust version lookout was built with",
    &["version"],
);
pub const PROBE_RUNS: FamilyDef = counter(
    "lookout_probe_runs",
    "Scheduled probe runs, by probe and result",
    &["probe", "result"],
);
pub const PROBE_RUN_SECONDS: FamilyDef = counter(
    "lookout_probe_run_seconds",
    "Time spent in scheduled probe runs, by probe",
    &["probe"],
);
pub const PROBE_START_LATENESS_SECONDS: FamilyDef = FamilyDef {
    name: "lookout_probe_start_lateness_seconds",
    help: "How long after its slot a scheduled probe run started",
    kind: Kind::Histogram,
    labels: &[],
};
pub const PROBE_STARTS_WAITED: FamilyDef = counter(
    "lookout_probe_starts_waited",
    "Scheduled probe runs that waited for a free slot under --probe.max-concurrency",
    &[],
);
pub const SHARD_INFO: FamilyDef = gauge(
    "lookout_shard_info",
    "This replica's share of the scheduled probes (--shard): its index from 0, of count",
    &["index", "count"],
);
pub const SHARD_PROBES: FamilyDef =
    gauge("lookout_shard_probes", "Scheduled probes this replica runs, its share of them", &[]);
pub const SD_REFRESH_FAILURES: FamilyDef = counter(
    "lookout_sd_refresh_failures",
    "Service discovery reads that failed (the last good targets stay), by probe and mechanism",
    &["probe", "mechanism"],
);
pub const SD_TARGETS: FamilyDef = gauge(
    "lookout_sd_targets",
    "Discovered targets a probe runs, after relabelling, on every shard together",
    &["probe"],
);
pub const SD_DROPPED_TARGETS: FamilyDef = gauge(
    "lookout_sd_dropped_targets",
    "Discovered targets left out: dropped by relabel_configs, without an address, naming no module, named twice, or not one the prober can run",
    &["probe"],
);
pub const PROBE_REQUESTS: FamilyDef = counter(
    "lookout_probe_requests",
    "Probes run through /probe, by module and result",
    &["module", "result"],
);
pub const PROBE_REQUEST_ERRORS: FamilyDef = counter(
    "lookout_probe_request_errors",
    "/probe requests refused before probing, by reason",
    &["reason"],
);
pub const HTTP_REQUESTS: FamilyDef = counter(
    "lookout_http_requests",
    "HTTP requests served, by handler and status code",
    &["handler", "code"],
);
pub const CONFIG_RELOADS: FamilyDef =
    counter("lookout_config_reloads", "Configuration reloads, by result", &["result"]);
pub const CONFIG_LAST_RELOAD_SUCCESSFUL: FamilyDef = gauge(
    "lookout_config_last_reload_successful",
    "Whether the last configuration reload attempt was successful",
    &[],
);
pub const CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS: FamilyDef = gauge(
    "lookout_config_last_reload_success_timestamp_seconds",
    "Timestamp of the last successful configuration load",
    &[],
);

/// lookout's self-metrics.
pub const SELF_FAMILIES: &[&FamilyDef] = &[
    &BUILD_INFO,
    &PROBE_RUNS,
    &PROBE_RUN_SECONDS,
    &PROBE_START_LATENESS_SECONDS,
    &PROBE_STARTS_WAITED,
    &SHARD_INFO,
    &SHARD_PROBES,
    &SD_REFRESH_FAILURES,
    &SD_TARGETS,
    &SD_DROPPED_TARGETS,
    &PROBE_REQUESTS,
    &PROBE_REQUEST_ERRORS,
    &HTTP_REQUESTS,
    &CONFIG_RELOADS,
    &CONFIG_LAST_RELOAD_SUCCESSFUL,
    &CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS,
];

// ---------------------------------------------------------------- log sources

pub const LOG_LINES: FamilyDef = counter("lookout_log_lines", "Lines read, by source", &["source"]);
pub const LOG_BYTES: FamilyDef = counter("lookout_log_bytes", "Bytes read, by source", &["source"]);
pub const LOG_RECORDS: FamilyDef = counter(
    "lookout_log_records",
    "Records by source and result: matched (parsed), unmatched (not of the format), error (broken)",
    &["source", "result"],
);
pub const LOG_ROTATIONS: FamilyDef = counter(
    "lookout_log_rotations",
    "Files replaced at their path (rename or delete and create)",
    &["source"],
);
pub const LOG_TRUNCATIONS: FamilyDef = counter(
    "lookout_log_truncations",
    "Files truncated or rewritten in place (copytruncate)",
    &["source"],
);
pub const LOG_LINES_CUT: FamilyDef =
    counter("lookout_log_lines_cut", "Lines longer than max_line_bytes, cut to it", &["source"]);
pub const LOG_CONTINUATION_LINES_DROPPED: FamilyDef = counter(
    "lookout_log_continuation_lines_dropped",
    "Continuation lines dropped from records over 1 MiB",
    &["source"],
);
pub const LOG_READ_ERRORS: FamilyDef =
    counter("lookout_log_read_errors", "Errors reading files", &["source"]);
pub const LOG_LAG_BYTES: FamilyDef = gauge(
    "lookout_log_lag_bytes",
    "Bytes written to the source's files and not read yet",
    &["source"],
);
pub const LOG_FILES: FamilyDef = gauge("lookout_log_files", "Files being read", &["source"]);
pub const LOG_LAST_RECORD_TIMESTAMP_SECONDS: FamilyDef = gauge(
    "lookout_log_last_record_timestamp_seconds",
    "When the source last produced a record",
    &["source"],
);
pub const LOG_RULE_MATCHES: FamilyDef =
    counter("lookout_log_rule_matches", "Records a rule counted, by metric", &["source", "metric"]);
pub const LOG_SERIES: FamilyDef =
    gauge("lookout_log_series", "Series a rule holds, by metric", &["source", "metric"]);
pub const LOG_SERIES_DROPPED: FamilyDef = counter(
    "lookout_log_series_dropped",
    "Updates refused because the metric reached max_series, by metric",
    &["source", "metric"],
);
pub const LOG_QUERIES_INDEXED: FamilyDef = gauge(
    "lookout_log_queries_indexed",
    "Query hashes with their SQL kept for /queries",
    &["source"],
);
pub const LOG_QUERIES_DROPPED: FamilyDef = counter(
    "lookout_log_queries_dropped",
    "Query hashes not kept because the index was full",
    &["source"],
);
pub const LOG_POSITION_SAVE_ERRORS: FamilyDef =
    counter("lookout_log_position_save_errors", "Failures to write the positions file", &[]);

pub const LOG_POSITIONS_LOAD_ERRORS: FamilyDef = counter(
    "lookout_log_positions_load_errors",
    "Positions files that could not be read or parsed at start (a corrupt one is moved aside)",
    &[],
);
pub const LOG_UNREADABLE_FILES: FamilyDef = gauge(
    "lookout_log_unreadable_files",
    "Paths of a source that cannot be read, by reason: permission_denied, not_a_file, symlink_loop, not_found, too_many_open_files, io",
    &["source", "reason"],
);

/// The self-metrics of log sources and their rules.
pub const LOG_FAMILIES: &[&FamilyDef] = &[
    &LOG_LINES,
    &LOG_BYTES,
    &LOG_RECORDS,
    &LOG_ROTATIONS,
    &LOG_TRUNCATIONS,
    &LOG_LINES_CUT,
    &LOG_CONTINUATION_LINES_DROPPED,
    &LOG_READ_ERRORS,
    &LOG_LAG_BYTES,
    &LOG_FILES,
    &LOG_LAST_RECORD_TIMESTAMP_SECONDS,
    &LOG_RULE_MATCHES,
    &LOG_SERIES,
    &LOG_SERIES_DROPPED,
    &LOG_QUERIES_INDEXED,
    &LOG_QUERIES_DROPPED,
    &LOG_POSITION_SAVE_ERRORS,
    &LOG_POSITIONS_LOAD_ERRORS,
    &LOG_UNREADABLE_FILES,
];

// ---------------------------------------------------------------- the process

pub const PROCESS_CPU_SECONDS: FamilyDef =
    counter("process_cpu_seconds", "Total user and system CPU time spent in seconds.", &[]);
pub const PROCESS_VIRTUAL_MEMORY_BYTES: FamilyDef =
    gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", &[]);
pub const PROCESS_RESIDENT_MEMORY_BYTES: FamilyDef =
    gauge("process_resident_memory_bytes", "Resident memory size in bytes.", &[]);
pub const PROCESS_START_TIME_SECONDS: FamilyDef = gauge(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
    &[],
);
pub const PROCESS_OPEN_FDS: FamilyDef =
    gauge("process_open_fds", "Number of open file descriptors.", &[]);
pub const PROCESS_MAX_FDS: FamilyDef =
    gauge("process_max_fds", "Maximum number of open file descriptors.", &[]);

/// The standard process metrics.
pub const PROCESS_FAMILIES: &[&FamilyDef] = &[
    &PROCESS_CPU_SECONDS,
    &PROCESS_VIRTUAL_MEMORY_BYTES,
    &PROCESS_RESIDENT_MEMORY_BYTES,
    &PROCESS_START_TIME_SECONDS,
    &PROCESS_OPEN_FDS,
    &PROCESS_MAX_FDS,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }

    /// A family named anywhere else under src/ would be a second, drifting declaration.
    #[test]
    fn every_family_name_is_written_once() {
        let mut files = Vec::new();
        sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
        let all =
            PROBE_FAMILIES.iter().chain(SELF_FAMILIES).chain(LOG_FAMILIES).chain(PROCESS_FAMILIES);
        for family in all {
            let quoted = format!("\"{}\"", family.name);
            let found: Vec<&str> = files
                .iter()
                .flat_map(|(path, text)| text.matches(&quoted).map(move |_| path.as_str()))
                .collect();
            assert_eq!(found.len(), 1, "{quoted} is written in {found:?}");
        }
    }
}
