//! `[admin]`: the admin HTTP port, the groups that may upload filters,
//! and how uploads are checked and shared.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{EngineConfig, Invalid, human};
use crate::sandbox::Budget;
use crate::text::is_name;

/// The admin HTTP port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address and port to listen on, e.g. `"127.0.0.1:9464"` (loopback:
    /// put a reverse proxy in front to expose it), or `"0.0.0.0:9464"`.
    pub listen: std::net::SocketAddr,
    /// SHA-256 (64 lowercase hex digits) of the operator's token, which
    /// manages every group's filters: `bandpass token` makes one.
    #[serde(default)]
    pub operator_token_sha256: Option<String>,
    /// The groups that may upload filters, each with its token's hash.
    /// Uploads (`/v1/...`) are on when a group or the operator token is
    /// configured.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupConfig>,
    /// How uploads are checked and shared across instances.
    #[serde(default)]
    pub uploads: UploadsConfig,
    /// Most connections open at once. At the bound a new connection
    /// closes the oldest one that has no request in progress.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection must send a request's headers within this time of
    /// opening (or of its last answer); else it is closed.
    #[serde(default = "default_header_timeout", with = "human::duration")]
    pub header_timeout: Duration,
    /// An upload's body must arrive within this time.
    #[serde(default = "default_body_timeout", with = "human::duration")]
    pub body_timeout: Duration,
    /// Requests a second each token may make to the filter API (a burst
    /// of three seconds' worth is allowed); past it, 429.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: u32,
}

fn default_max_connections() -> usize {
    256
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_body_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_requests_per_second() -> u32 {
    10
}

impl AdminConfig {
    /// The rules of `[admin]`, against the inputs, the dead-letter topic
    /// and the engine's maximum limits.
    pub(super) fn check(
        &self,
        input_topics: &[String],
        dead_letter_topic: &str,
        engine_max: &Budget,
    ) -> Result<(), Invalid> {
        let hash_reason = "is not a SHA-256 in lowercase hex (64 digits): write what `bandpass token` prints (or `printf %s TOKEN | sha256sum`), not the token";
        if let Some(h) = &self.operator_token_sha256
            && !is_sha256_hex(h)
        {
            return Err(Invalid::new(
                "admin.operator_token_sha256",
                hash_reason.into(),
            ));
        }
        for (i, g) in self.groups.iter().enumerate() {
            let key = format!("admin.group[{i}]");
            if !is_name(&g.name, 32) {
                return Err(Invalid::new(
                    format!("{key}.name"),
                    format!(
                        "'{}' is not a group name: use lowercase letters, digits and dashes (at most 32)",
                        g.name
                    ),
                ));
            }
            if self.groups[..i].iter().any(|o| o.name == g.name) {
                return Err(Invalid::new(
                    format!("{key}.name"),
                    format!("group '{}' is defined twice", g.name),
                ));
            }
            if !is_sha256_hex(&g.token_sha256) {
                return Err(Invalid::new(
                    format!("{key}.token_sha256"),
                    hash_reason.into(),
                ));
            }
            let shared = self.operator_token_sha256.as_ref() == Some(&g.token_sha256)
                || self.groups[..i]
                    .iter()
                    .any(|o| o.token_sha256 == g.token_sha256);
            if shared {
                return Err(Invalid::new(
                    format!("{key}.token_sha256"),
                    "is another group's or the operator's token: give each its own".into(),
                ));
            }
            if g.max_sky_size.is_some_and(|m| m > self.uploads.max_size) {
                return Err(Invalid::new(
                    format!("{key}.max_sky_size"),
                    format!(
                        "is over admin.uploads.max_size ({} bytes), the largest record the \
                         registry topic takes: lower it, or raise that",
                        self.uploads.max_size
                    ),
                ));
            }
            if let Some(m) = &g.max_limits
                && !m.within(engine_max)
            {
                return Err(Invalid::new(
                    format!("{key}.max_limits"),
                    format!("over engine.max_limits ({})", engine_max.describe()),
                ));
            }
        }
        if !(1..=65_536).contains(&self.max_connections) {
            return Err(Invalid::new(
                "admin.max_connections",
                "must be 1 to 65536".into(),
            ));
        }
        if self.header_timeout.is_zero() || self.body_timeout.is_zero() {
            return Err(Invalid::new(
                "admin.header_timeout / admin.body_timeout",
                "must be above 0".into(),
            ));
        }
        if self.requests_per_second == 0 {
            return Err(Invalid::new(
                "admin.requests_per_second",
                "must be at least 1".into(),
            ));
        }
        let u = &self.uploads;
        if self.uploads_enabled() {
            if u.canary_alerts.is_empty() {
                return Err(Invalid::new(
                    "admin.uploads.canary_alerts",
                    "name real alert files or directories: every upload is tried on them before it runs".into(),
                ));
            }
            if u.registry_topic.is_empty()
                || input_topics.contains(&u.registry_topic)
                || u.registry_topic == dead_letter_topic
            {
                return Err(Invalid::new(
                    "admin.uploads.registry_topic",
                    format!(
                        "'{}' must be a topic of its own, not empty, an input or the dead-letter topic",
                        u.registry_topic
                    ),
                ));
            }
        }
        for (key, fraction) in [
            ("max_accept_fraction", u.max_accept_fraction),
            ("max_time_fraction", u.max_time_fraction),
        ] {
            if !(fraction > 0.0 && fraction <= 1.0) {
                return Err(Invalid::new(
                    format!("admin.uploads.{key}"),
                    "must be above 0 and at most 1".into(),
                ));
            }
        }
        if u.max_size == 0 {
            return Err(Invalid::new(
                "admin.uploads.max_size",
                "must be above 0".into(),
            ));
        }
        if u.compile_memory < 64 << 20 {
            return Err(Invalid::new(
                "admin.uploads.compile_memory",
                "must be at least 64MiB (the compiler itself needs that much)".into(),
            ));
        }
        Ok(())
    }

    /// Whether the upload API (and the fleet registry) is on.
    pub fn uploads_enabled(&self) -> bool {
        self.operator_token_sha256.is_some() || !self.groups.is_empty()
    }
}

/// A community group allowed to upload filters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// `[a-z0-9-]`, at most 32: part of every output topic of the group,
    /// `bandpass.<group>.<filter>`.
    pub name: String,
    /// SHA-256 (64 lowercase hex digits) of the group's bearer token.
    pub token_sha256: String,
    /// Most filters the group may have uploaded (enabled or not).
    #[serde(default = "default_max_filters")]
    pub max_filters: usize,
    /// The most one of its filters may ask for; defaults to (and must be
    /// within) `engine.max_limits`.
    #[serde(default)]
    pub max_limits: Option<Budget>,
    /// The group's share of the workers: the most its filters' `mean_time`
    /// limits may add up to. As each filter is quarantined past its own
    /// mean time, the group's filters together never take more of a
    /// worker than this per alert. Default: `max_filters` times
    /// `engine.limits.mean_time`.
    #[serde(default, with = "human::optional_duration")]
    pub time_budget: Option<Duration>,
    /// Most watchlists and sky maps the group may have uploaded,
    /// together.
    #[serde(default = "default_max_sky_files")]
    pub max_sky_files: usize,
    /// Largest watchlist or sky map file the group may upload; at most
    /// `admin.uploads.max_size`. Default: 16 MiB, or that if smaller.
    #[serde(default, with = "human::optional_size")]
    pub max_sky_size: Option<usize>,
}

fn default_max_sky_files() -> usize {
    8
}

/// A 100,000-target watchlist is about 4 MB of CSV; the shared
/// multi-order gravitational-wave map is 0.8 MB.
fn default_max_sky_size() -> usize {
    16 << 20
}

impl GroupConfig {
    /// [`max_sky_size`](Self::max_sky_size), or its default under
    /// `uploads`.
    pub fn max_sky_size(&self, uploads: &UploadsConfig) -> usize {
        self.max_sky_size
            .unwrap_or_else(|| default_max_sky_size().min(uploads.max_size))
    }

    /// [`time_budget`](Self::time_budget), or its default under `engine`.
    pub fn time_budget(&self, engine: &EngineConfig) -> Duration {
        self.time_budget
            .unwrap_or(engine.limits.mean_time * self.max_filters as u32)
    }
}

/// `[admin.uploads]`: checks on an upload, and the fleet registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadsConfig {
    /// The compacted topic holding every uploaded filter (manifest and
    /// component), followed by every instance: an upload to one instance
    /// reaches all that name the same topic. Created if missing.
    #[serde(default = "default_registry_topic")]
    pub registry_topic: String,
    /// Largest component accepted.
    #[serde(default = "default_max_upload", with = "human::size")]
    pub max_size: usize,
    /// Longest a component may take to compile before it is refused.
    #[serde(default = "default_compile_timeout", with = "human::duration")]
    pub compile_timeout: Duration,
    /// Most memory a component's compile may take (its child process's
    /// data limit); past it the upload is refused.
    #[serde(default = "default_compile_memory", with = "human::size")]
    pub compile_memory: usize,
    /// Real alerts every upload is run on before it is accepted (files,
    /// directories or .tar.gz, relative to this file). A filter must have
    /// alerts of its survey here; every declared field must exist in
    /// their schemas.
    #[serde(default)]
    pub canary_alerts: Vec<PathBuf>,
    /// Folders of the surveys' alert schemas, every version (relative to
    /// this file): each declared field of an upload must exist in some
    /// version of its survey (here or in the canary alerts' schemas), and
    /// a misspelt one is refused with the nearest real paths.
    #[serde(default)]
    pub schema_dirs: Vec<PathBuf>,
    /// An upload accepting more than this fraction of the canary alerts
    /// of its survey is refused (a firehose is not a selection).
    #[serde(default = "default_max_accept_fraction")]
    pub max_accept_fraction: f64,
    /// An upload whose median time per canary alert is over this
    /// fraction of its deadline (or over its mean time) is refused: it
    /// would hold the workers from every other filter.
    #[serde(default = "default_max_time_fraction")]
    pub max_time_fraction: f64,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        UploadsConfig {
            registry_topic: default_registry_topic(),
            max_size: default_max_upload(),
            compile_timeout: default_compile_timeout(),
            compile_memory: default_compile_memory(),
            canary_alerts: Vec::new(),
            schema_dirs: Vec::new(),
            max_accept_fraction: default_max_accept_fraction(),
            max_time_fraction: default_max_time_fraction(),
        }
    }
}

fn default_max_filters() -> usize {
    10
}

fn default_registry_topic() -> String {
    "bandpass.registry".into()
}

fn default_max_upload() -> usize {
    32 << 20
}

/// 4 GiB: ten times what the 19 MB Python sample takes to compile.
fn default_compile_memory() -> usize {
    4 << 30
}

fn default_compile_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_max_time_fraction() -> f64 {
    0.25
}

fn default_max_accept_fraction() -> f64 {
    0.5
}

/// Whether `hash` is written as a SHA-256 in lowercase hex.
fn is_sha256_hex(hash: &str) -> bool {
    hash.len() == 64 && hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}
