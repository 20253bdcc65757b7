//! A Confluent-API schema registry as a source of writer schemas:
//! `GET {url}/schemas/ids/{id}` answers `{"schema": "<schema JSON as a
//! string>", "schemaType": ..., "references": [...]}`.
//!
//! Owns: asking the registry for one schema id (timeouts, a few retries
//! with backoff inside a bounded budget, optional basic auth), turning the
//! answer or its absence into a [`DecodeError`], and remembering each
//! schema text it fetched, so that a process asks for an id once however
//! many decoders share the [`SchemaRegistry`]. Must never: block one lookup for
//! longer than its budget, ask the registry for the same id from several
//! threads at once, remember "did not answer" past the lookup that got it
//! (the next message asks again), or show the password (not in `Debug`,
//! logs or errors).
//!
//! Lookups are serialised per registry: a thread that missed waits for
//! the lookup in flight and then takes its result from the memory (the
//! text, or the failure of the lookup it waited for) instead of asking
//! again. A definitive answer other than the schema (not found, refused,
//! unusable) is remembered for [`FAILURE_MEMORY`], so that a stream of
//! messages naming an unknown id asks about once per interval rather than
//! once per message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{DecodeError, MAX_CACHED_SCHEMAS};

/// How long one lookup may take in all: every attempt and pause.
pub const LOOKUP_BUDGET: Duration = Duration::from_secs(10);

/// How long one attempt may wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pauses between attempts; their count bounds the retries.
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

/// How long a definitive failure (not found, refused, unusable) is
/// remembered before the registry is asked again.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(30);

/// The largest answer read (a schema with all its types inlined is a few
/// hundred KiB at most).
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// A Confluent-API schema registry client. Cheap to clone; clones share
/// the fetched schemas and the one-lookup-at-a-time turn.
#[derive(Clone)]
pub struct SchemaRegistry {
    /// The base URL, without a trailing `/`.
    base: String,
    /// `base` with any password in it hidden, for errors and logs.
    shown: String,
    username: Option<String>,
    /// The `Authorization` header value, when basic auth is configured.
    authorization: Option<String>,
    budget: Duration,
    agent: ureq::Agent,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Held while asking the registry.
    turn: Mutex<()>,
    memory: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    texts: HashMap<u32, Arc<[u8]>>,
    failures: HashMap<u32, (Instant, DecodeError)>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("url", &self.shown)
            .field("username", &self.username)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// The registry's answer for one id.
#[derive(Deserialize)]
struct Answer {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
}

#[derive(Deserialize)]
struct Reference {
    #[serde(default)]
    name: Option<String>,
}

/// How one attempt failed.
enum Attempt {
    /// Worth another try: no connection, a timeout, a 5xx.
    Retry(String),
    /// The registry answered; asking again will not change it.
    Final(DecodeError),
}

impl SchemaRegistry {
    /// A client for the registry at `url` (`http://` or `https://`; a path
    /// prefix is kept). TLS uses the system's trusted roots.
    pub fn new(url: &str) -> SchemaRegistry {
        let base = url.trim_end_matches('/').to_string();
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(LOOKUP_BUDGET))
            .user_agent(concat!("bandpass/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build()
            .new_agent();
        SchemaRegistry {
            shown: hide_password(&base),
            base,
            username: None,
            authorization: None,
            budget: LOOKUP_BUDGET,
            agent,
            shared: Arc::default(),
        }
    }

    /// Sends HTTP basic auth with every request.
    pub fn with_basic_auth(mut self, username: &str, password: &str) -> SchemaRegistry {
        self.authorization = Some(format!(
            "Basic {}",
            base64(format!("{username}:{password}").as_bytes())
        ));
        self.username = Some(username.to_string());
        self
    }

    /// Bounds the time one lookup may take, retries included (default
    /// [`LOOKUP_BUDGET`]).
    pub fn with_lookup_budget(mut self, budget: Duration) -> SchemaRegistry {
        self.budget = budget;
        self
    }

    /// The registry's URL as errors and logs show it (any password in it
    /// hidden).
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// The text of schema `id`: remembered, or asked for (see the module
    /// docs for who asks and when).
    pub(crate) fn schema_text(&self, id: u32) -> Result<Arc<[u8]>, DecodeError> {
        let arrived = Instant::now();
        if let Some(known) = self.remembered(id, arrived) {
            return known;
        }
        let _turn = lock(&self.shared.turn);
        // Whoever held the turn may have just fetched it, or failed.
        if let Some(known) = self.remembered(id, arrived) {
            return known;
        }
        let result = self.fetch(id);
        let mut memory = lock(&self.shared.memory);
        match &result {
            Ok(text) => {
                if memory.texts.len() >= MAX_CACHED_SCHEMAS {
                    memory.texts.clear();
                }
                memory.texts.insert(id, text.clone());
                memory.failures.remove(&id);
            }
            Err(e) => {
                if memory.failures.len() >= MAX_CACHED_SCHEMAS {
                    memory.failures.clear();
                }
                memory.failures.insert(id, (Instant::now(), e.clone()));
            }
        }
        result
    }

    /// What is known of `id` for a thread that arrived at `arrived`: the
    /// text; a definitive failure younger than [`FAILURE_MEMORY`]; or a
    /// transient failure of a lookup that ended after it arrived (the one
    /// it waited for).
    fn remembered(&self, id: u32, arrived: Instant) -> Option<Result<Arc<[u8]>, DecodeError>> {
        let memory = lock(&self.shared.memory);
        if let Some(text) = memory.texts.get(&id) {
            return Some(Ok(text.clone()));
        }
        let (at, error) = memory.failures.get(&id)?;
        let fresh = if error.is_transient() {
            *at >= arrived
        } else {
            at.elapsed() < FAILURE_MEMORY
        };
        fresh.then(|| Err(error.clone()))
    }

    /// Asks the registry, retrying what may pass within the budget.
    fn fetch(&self, id: u32) -> Result<Arc<[u8]>, DecodeError> {
        let url = format!("{}/schemas/ids/{id}", self.base);
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let left = self.budget.saturating_sub(started.elapsed());
            let reason = match self.attempt(id, &url, left) {
                Ok(text) => {
                    tracing::info!(
                        id,
                        registry = %self.shown,
                        bytes = text.len(),
                        "fetched a schema from the registry"
                    );
                    return Ok(text);
                }
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retry(reason)) => reason,
            };
            let pause = BACKOFF.get(attempts - 1).copied();
            let out_of_time = pause.is_none_or(|p| started.elapsed() + p >= self.budget);
            if out_of_time {
                return Err(DecodeError::RegistryUnreachable {
                    id,
                    url: self.shown.clone(),
                    reason: format!(
                        "{attempts} attempt{} over {:.1} s, the last failed with {reason}",
                        if attempts == 1 { "" } else { "s" },
                        started.elapsed().as_secs_f64()
                    ),
                });
            }
            tracing::debug!(
                id,
                registry = %self.shown,
                attempts,
                %reason,
                "schema registry did not answer; retrying"
            );
            std::thread::sleep(pause.unwrap_or_default());
        }
    }

    /// One request, with at most `left` to spend.
    fn attempt(&self, id: u32, url: &str, left: Duration) -> Result<Arc<[u8]>, Attempt> {
        let mut request = self
            .agent
            .get(url)
            .header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json, application/json",
            )
            .config()
            .timeout_global(Some(left))
            .timeout_connect(Some(left.min(CONNECT_TIMEOUT)))
            .build();
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        let failed = |reason: String| {
            Attempt::Final(DecodeError::RegistryFailed {
                id,
                url: self.shown.clone(),
                reason,
            })
        };
        let mut response = match request.call() {
            Ok(r) => r,
            Err(e) if is_network_error(&e) => return Err(Attempt::Retry(e.to_string())),
            Err(e) => return Err(failed(format!("the request failed ({e})"))),
        };
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string();
        let body = match body {
            Ok(b) => b,
            Err(e) if is_network_error(&e) => {
                return Err(Attempt::Retry(format!("its answer was cut off ({e})")));
            }
            Err(e) => return Err(failed(format!("its answer could not be read ({e})"))),
        };
        match status {
            200 => self.parse_answer(id, &body).map_err(Attempt::Final),
            404 => Err(Attempt::Final(DecodeError::RegistrySchemaNotFound {
                id,
                url: self.shown.clone(),
            })),
            401 | 403 => Err(Attempt::Final(DecodeError::RegistryDenied {
                id,
                url: self.shown.clone(),
                status,
            })),
            408 | 429 | 500..=599 => Err(Attempt::Retry(format!(
                "it answered HTTP {status}{}",
                registry_message(&body)
            ))),
            _ => Err(failed(format!(
                "it answered HTTP {status}{}",
                registry_message(&body)
            ))),
        }
    }

    fn parse_answer(&self, id: u32, body: &str) -> Result<Arc<[u8]>, DecodeError> {
        let answer: Answer =
            serde_json::from_str(body).map_err(|e| DecodeError::RegistryFailed {
                id,
                url: self.shown.clone(),
                reason: format!(
                    "its answer is not a schema registry answer with a \"schema\" ({e})"
                ),
            })?;
        let unsupported = |reason: String| DecodeError::RegistryUnsupported {
            id,
            url: self.shown.clone(),
            reason,
        };
        if let Some(kind) = &answer.schema_type
            && !kind.eq_ignore_ascii_case("AVRO")
        {
            return Err(unsupported(format!("is a {kind} schema, not Avro")));
        }
        if !answer.references.is_empty() {
            let names: Vec<&str> = answer
                .references
                .iter()
                .map(|r| r.name.as_deref().unwrap_or("?"))
                .collect();
            return Err(unsupported(format!(
                "refers to other registered schemas ({})",
                names.join(", ")
            )));
        }
        Ok(Arc::from(answer.schema.into_bytes()))
    }
}

/// Errors where the registry was not reached or stopped answering:
/// worth another attempt.
fn is_network_error(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
    )
}

/// `: <message>` from a registry's error body (`{"error_code": 40403,
/// "message": "Schema not found"}`), or nothing.
fn registry_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => {
            let mut m: String = e.message.chars().take(200).collect();
            m.insert_str(0, " (");
            m.push(')');
            m
        }
        Err(_) => String::new(),
    }
}

/// `https://user:secret@host` → `https://user:***@host`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Standard base64 with padding (RFC 4648), for the basic auth header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("martin:secret", "bWFydGluOnNlY3JldA=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        assert_eq!(
            hide_password("https://alice:s3cret@registry.example/api/"),
            "https://alice:***@registry.example/api/"
        );
        assert_eq!(
            hide_password("http://registry.example:8081"),
            "http://registry.example:8081"
        );
        let r = SchemaRegistry::new("https://alice:s3cret@registry.example/")
            .with_basic_auth("bob", "pw");
        let shown = format!("{r:?} {}", r.url());
        assert!(shown.contains("bob"), "{shown}");
        // Neither the URL's password nor the header's encoding of bob:pw.
        assert!(
            !shown.contains("s3cret") && !shown.contains(&base64(b"bob:pw")),
            "{shown}"
        );
    }
}
