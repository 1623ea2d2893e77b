//! Securing lookout's own endpoint from `--web.config.file`: a TLS acceptor and basic auth.
//!
//! Passwords are checked with bcrypt (constant-time) on threads of their own, as many as the
//! machine has cores, fed in arrival order from one bounded queue ([`Checker`]): the threads
//! that serve requests never run bcrypt, a flood of wrong passwords waits its turn instead of
//! taking every thread, a right password waits behind at most the queue, and shutdown never
//! waits for a check. A successful check is remembered (by a SHA-256 of user and password) and
//! the memory is consulted before queueing, so a scraper pays bcrypt once. An unknown user is
//! checked against a dummy hash of the cost most configured hashes use, so its answer takes as
//! long as a wrong password's.

use crate::config::web::{ClientAuth, WebConfigFile};
use crate::config::{ConfigError, Source};
use crate::pem::{read_certificates, read_private_key};
use crate::probe::tls::protocol_versions;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

pub struct Security {
    pub tls: Option<TlsAcceptor>,
    users: BTreeMap<String, String>,
    /// Checked for unknown users.
    dummy_hash: String,
    verified: Mutex<HashSet<[u8; 32]>>,
    checker: Checker,
}

/// The answer to a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Granted,
    Denied,
    /// The queue of password checks is full: answered 429.
    Busy,
}

/// The salt and hash of a bcrypt hash of a random string; the cost is put in front of it.
const DUMMY_SALT_AND_HASH: &str = "QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DSmS9Ej2X1sMk1aZfAb3y";
/// Password checks waiting beyond this many are answered 429. Long enough that 400
/// connections sending wrong passwords never meet it, short enough to bound the wait of a
/// right password (about this many × one check's time ÷ cores).
pub const CHECK_QUEUE: usize = 1024;
/// bcrypt reads only the first 72 bytes of a password; a longer one is refused, not cut.
const MAX_PASSWORD_BYTES: usize = 72;

impl Security {
    pub fn load(path: &Path) -> Result<Security, ConfigError> {
        let source = Source::read(path)?;
        let file = WebConfigFile::load(&source)?;
        let tls = match &file.tls_server_config {
            None => None,
            Some(t) => {
                let chain = read_certificates(&t.cert_file.value)
                    .map_err(|e| source.error_at_span(&t.cert_file, e))?;
                let key = read_private_key(&t.key_file.value)
                    .map_err(|e| source.error_at_span(&t.key_file, e))?;
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let versions = protocol_versions(
                    t.min_version.as_ref().map(|v| v.value),
                    t.max_version.as_ref().map(|v| v.value),
                );
                let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(&versions)
                    .map_err(|e| {
                        source.error_at_span(&t.cert_file, format!("tls_server_config: {e}"))
                    })?;
                let auth =
                    t.client_auth_type.as_ref().map_or(ClientAuth::NoClientCert, |a| a.value);
                let builder = match (&t.client_ca_file, auth) {
                    (
                        Some(ca),
                        ClientAuth::VerifyClientCertIfGiven
                        | ClientAuth::RequireAndVerifyClientCert,
                    ) => {
                        let mut roots = rustls::RootCertStore::empty();
                        let certs = read_certificates(&ca.value)
                            .map_err(|e| source.error_at_span(ca, e))?;
                        roots.add_parsable_certificates(certs);
                        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                            Arc::new(roots),
                            provider,
                        );
                        let verifier = if auth == ClientAuth::VerifyClientCertIfGiven {
                            verifier.allow_unauthenticated()
                        } else {
                            verifier
                        };
                        builder.with_client_cert_verifier(verifier.build().map_err(|e| {
                            source.error_at_span(ca, format!("client_ca_file: {e}"))
                        })?)
                    }
                    _ => builder.with_no_client_auth(),
                };
                let mut config = builder.with_single_cert(chain, key).map_err(|e| {
                    source
                        .error_at_span(&t.key_file, format!("certificate and key do not fit: {e}"))
                })?;
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(TlsAcceptor::from(Arc::new(config)))
            }
        };
        let users: BTreeMap<String, String> =
            file.basic_auth_users.into_iter().map(|(u, h)| (u, h.value)).collect();
        let dummy_hash = dummy_hash(users.values());
        let checker = Checker::start(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            CHECK_QUEUE,
        );
        Ok(Security { tls, users, dummy_hash, verified: Mutex::new(HashSet::new()), checker })
    }

    pub fn needs_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether an `Authorization` header value carries a known user with the right password.
    pub async fn authorize(&self, header: Option<&str>) -> Access {
        let Some((user, password)) = header.and_then(parse_basic) else { return Access::Denied };
        if password.len() > MAX_PASSWORD_BYTES {
            return Access::Denied;
        }
        let key = cache_key(&user, &password);
        if self.verified.lock().expect("auth cache lock").contains(&key) {
            return Access::Granted;
        }
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.clone(), true),
            None => (self.dummy_hash.clone(), false),
        };
        match self.checker.check(password, hash).await {
            Some(true) if known => {
                self.verified.lock().expect("auth cache lock").insert(key);
                Access::Granted
            }
            Some(_) => Access::Denied,
            None => Access::Busy,
        }
    }
}

/// A hash no password matches, as costly to check as the configured ones: of the cost most of
/// them use (the higher one on a tie).
fn dummy_hash<'a>(hashes: impl Iterator<Item = &'a String>) -> String {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for hash in hashes {
        if let Ok(parts) = hash.parse::<bcrypt::HashParts>() {
            *counts.entry(parts.get_cost()).or_default() += 1;
        }
    }
    let cost = counts.iter().max_by_key(|(cost, n)| (**n, **cost)).map_or(10, |(cost, _)| *cost);
    format!("$2y${cost:02}${DUMMY_SALT_AND_HASH}")
}

/// One password check waiting for a thread.
struct Check {
    password: String,
    hash: String,
    answer: oneshot::Sender<bool>,
}

/// The threads that run bcrypt and their bounded FIFO queue. The threads are never joined:
/// a check in progress does not hold up shutdown.
struct Checker {
    queue: SyncSender<Check>,
}

impl Checker {
    fn start(threads: usize, queue: usize) -> Checker {
        let (sender, receiver) = sync_channel::<Check>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..threads.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name("password-check".into())
                .spawn(move || Checker::work(&receiver))
                .expect("spawning a password check thread");
        }
        Checker { queue: sender }
    }

    fn work(receiver: &Mutex<Receiver<Check>>) {
        loop {
            let next = receiver.lock().expect("password queue lock").recv();
            let Ok(check) = next else { return };
            // The client went away while it waited: its check would be wasted work.
            if check.answer.is_closed() {
                continue;
            }
            let ok = bcrypt::verify(check.password.as_bytes(), &check.hash).unwrap_or(false);
            let _ = check.answer.send(ok);
        }
    }

    /// The check's result, or `None` when the queue is full.
    async fn check(&self, password: String, hash: String) -> Option<bool> {
        let (answer, result) = oneshot::channel();
        match self.queue.try_send(Check { password, hash, answer }) {
            Ok(()) => result.await.ok(),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => None,
        }
    }
}

fn parse_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn cache_key(user: &str, password: &str) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(user.as_bytes());
    context.update(&[0]);
    context.update(password.as_bytes());
    context.finish().as_ref().try_into().expect("SHA-256 is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header() {
        assert_eq!(parse_basic("Basic dXNlcjpwYTpzcw=="), Some(("user".into(), "pa:ss".into())));
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn dummy_hash_has_the_cost_most_hashes_use() {
        let hash = |cost: u32| format!("$2y${cost:02}${DUMMY_SALT_AND_HASH}");
        let cost = |hashes: &[String]| {
            dummy_hash(hashes.iter()).parse::<bcrypt::HashParts>().unwrap().get_cost()
        };
        assert_eq!(cost(&[hash(5)]), 5);
        assert_eq!(cost(&[hash(5), hash(12), hash(5)]), 5);
        assert_eq!(cost(&[hash(4), hash(12)]), 12, "the higher one on a tie");
    }

    #[tokio::test]
    async fn checks_beyond_the_queue_are_refused_not_queued() {
        // One thread busy with the first check, two waiting: the others are refused.
        let checker = Arc::new(Checker::start(1, 2));
        let slow = format!("$2y$10${DUMMY_SALT_AND_HASH}");
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (checker, hash) = (checker.clone(), slow.clone());
                tokio::spawn(async move { checker.check("x".into(), hash).await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        // The thread may not have taken the first one yet when the others arrive: then four.
        let refused = results.iter().filter(|r| r.is_none()).count();
        assert!((3..=4).contains(&refused), "{results:?}");
        assert!(results.iter().all(|r| r.is_none() || *r == Some(false)), "{results:?}");
    }
}
