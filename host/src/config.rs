//! The service's configuration file (TOML), for `bandpass serve`.
//!
//! Owns: parsing, defaults, `${ENV}` substitution for secrets, and the
//! cross-field rules (`validate`). Every field is documented where it is
//! declared; unknown keys are refused with the key named. Must never:
//! start anything: a config that loads is only a value.
//!
//! Durations are written `"250ms"`, `"5s"`, `"2m"`; sizes `"64MiB"`,
//! `"512KiB"`, or a plain number of bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::decode::{Registry, SchemaSource};
use crate::sandbox::Limits;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How to reach the brokers.
    pub kafka: KafkaConfig,
    /// What to consume.
    pub input: InputConfig,
    /// Where wire-format schemas come from.
    #[serde(default)]
    pub schemas: SchemasConfig,
    /// Engine-wide settings and the default per-filter limits.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The filters to run, each with its output topic.
    #[serde(default, rename = "filter")]
    pub filters: Vec<FilterConfig>,
    /// Where undecodable messages go, with the error in a header.
    #[serde(default = "default_dead_letter_topic")]
    pub dead_letter_topic: String,
    /// At-least-once (default) or exactly-once (Kafka transactions).
    #[serde(default)]
    pub delivery: Delivery,
    /// The admin HTTP port: `/healthz`, `/readyz`, `/metrics`. Off unless
    /// this section is present.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
}

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
    pub max_limits: Option<LimitsConfig>,
    /// The group's share of the workers: the most its filters' `mean_time`
    /// limits may add up to. As each filter is quarantined past its own
    /// mean time, the group's filters together never take more of a
    /// worker than this per alert. Default: `max_filters` times
    /// `engine.limits.mean_time`.
    #[serde(default, with = "human::optional_duration")]
    pub time_budget: Option<Duration>,
}

impl GroupConfig {
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

/// Whether `name` is a deployment name: `[a-z0-9-]`, 1 to `max` long.
pub fn is_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Whether `hash` is written as a SHA-256 in lowercase hex.
fn is_sha256_hex(hash: &str) -> bool {
    hash.len() == 64 && hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

/// Connection to the Kafka cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// `security.protocol`: `plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`.
    #[serde(default = "default_security_protocol")]
    pub security_protocol: String,
    /// `sasl.mechanism`, e.g. `PLAIN`, `SCRAM-SHA-512`.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// SASL password; write `"${ENV_VAR}"` to keep it out of the file.
    #[serde(default)]
    pub sasl_password: Option<String>,
    /// CA certificate file for SSL.
    #[serde(default)]
    pub ssl_ca_location: Option<PathBuf>,
    /// Exactly-once only: the producer's `transactional.id`. Defaults to
    /// `bandpass-<group>-<hostname>`, stable across restarts so that a
    /// restarted instance fences its predecessor and aborts its open
    /// transaction at once. Two exactly-once instances on one host must
    /// each set their own.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// Any librdkafka property, applied last (overrides the above).
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

/// The alert topics and how to read them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Topic names; a name starting with `^` is a regular expression.
    pub topics: Vec<String>,
    /// Consumer group: instances with the same group share partitions.
    pub group: String,
    /// Where a group with no committed offset starts.
    #[serde(default)]
    pub start: StartPosition,
    /// How messages are framed.
    #[serde(default)]
    pub framing: Framing,
    /// How long the group waits for an instance that stopped answering
    /// (killed, its machine gone) before its partitions go to the others.
    /// librdkafka's default is 45 s, which stalls those partitions as
    /// long after every crash; shorter means faster takeover, and an
    /// instance whose heartbeats stall that long (a frozen VM) loses its
    /// partitions.
    #[serde(default = "default_session_timeout", with = "human::duration")]
    pub session_timeout: Duration,
    /// This instance's stable name in the group (Kafka static
    /// membership): restarted under the same name, it gets its partitions
    /// back at once instead of after `session_timeout`. Defaults to
    /// `<hostname>-<admin port>` when `[admin]` is set (each instance of a
    /// host has its own port), else none; `""` turns it off. Two running
    /// instances must never share one: the later fences the earlier out.
    #[serde(default)]
    pub instance_id: Option<String>,
}

fn default_session_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Where to start reading.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest message kept.
    Earliest,
    /// Only messages produced from now on.
    #[default]
    Latest,
    /// The first message at or after this time, in milliseconds since
    /// the Unix epoch (to rewind a night).
    TimestampMs(i64),
}

/// Message framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// Decide per message (container magic, or 0x00 + schema id).
    #[default]
    Auto,
    /// Avro Object Container Files, as ZTF publishes.
    Container,
    /// Confluent wire format, as Rubin publishes.
    Confluent,
}

/// Schemas for Confluent wire-format messages: a directory or a
/// registry, not both. With neither, wire-format messages are refused.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemasConfig {
    /// A directory of `<id>.avsc` files or Rubin's `vM_m/` layout.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// A Confluent-API schema registry (`GET /schemas/ids/{id}`), as
    /// `http://host:port` or `https://host/prefix`. Each schema is fetched
    /// once per process; it must be Avro and self-contained.
    #[serde(default)]
    pub registry_url: Option<String>,
    /// User name for the registry's HTTP basic auth.
    #[serde(default)]
    pub registry_username: Option<String>,
    /// Password for the registry's basic auth; write `"${ENV_VAR}"` to
    /// keep it out of the file.
    #[serde(default)]
    pub registry_password: Option<String>,
}

impl std::fmt::Debug for SchemasConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemasConfig")
            .field("dir", &self.dir)
            .field("registry_url", &self.registry_url)
            .field("registry_username", &self.registry_username)
            .field(
                "registry_password",
                &self.registry_password.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl SchemasConfig {
    /// Where wire-format schema ids are looked up (the config is
    /// validated: at most one of `dir` and `registry_url` is set).
    pub fn source(&self) -> SchemaSource {
        if let Some(url) = &self.registry_url {
            let mut registry = Registry::new(url);
            if let Some(user) = &self.registry_username {
                registry =
                    registry.with_basic_auth(user, self.registry_password.as_deref().unwrap_or(""));
            }
            SchemaSource::Registry(registry)
        } else if let Some(dir) = &self.dir {
            SchemaSource::Dir(dir.clone())
        } else {
            SchemaSource::None
        }
    }

    /// The rules between these keys; `(key, reason)` of the first broken.
    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.dir.is_some() && self.registry_url.is_some() {
            return Err((
                "schemas.dir",
                "set together with schemas.registry_url; keep one of them".into(),
            ));
        }
        if let Some(url) = &self.registry_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err((
                "schemas.registry_url",
                format!("'{url}' is not an http:// or https:// URL"),
            ));
        }
        if self.registry_url.is_none()
            && (self.registry_username.is_some() || self.registry_password.is_some())
        {
            return Err((
                "schemas.registry_username",
                "registry credentials are set but schemas.registry_url is not: set it, or remove them".into(),
            ));
        }
        if self.registry_password.is_some() && self.registry_username.is_none() {
            return Err((
                "schemas.registry_username",
                "schemas.registry_password is set without a user name: set schemas.registry_username too".into(),
            ));
        }
        Ok(())
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Threads running filters (they are CPU-bound); defaults to the
    /// number of cores. One partition's alerts always run on the same
    /// worker, so more workers than input partitions leaves some idle.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Consecutive failed alerts after which a filter is quarantined.
    #[serde(default = "default_quarantine_after")]
    pub quarantine_after: u32,
    /// Where compiled components are cached. With uploads on, defaults to
    /// `$BANDPASS_CACHE_DIR`, else `~/.cache/bandpass` (a restart then
    /// reads the registry without compiling every upload again).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Most the compiled components in the cache may take together; past
    /// it the least recently used are removed.
    #[serde(default = "default_cache_max_size", with = "human::size")]
    pub cache_max_size: usize,
    /// Default limits of every filter.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The most any filter may ask for in its own `limits`.
    #[serde(default = "default_max_limits")]
    pub max_limits: LimitsConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: default_workers(),
            quarantine_after: default_quarantine_after(),
            cache_dir: None,
            cache_max_size: default_cache_max_size(),
            limits: LimitsConfig::default(),
            max_limits: default_max_limits(),
        }
    }
}

/// Per-filter budgets, as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Fuel per alert (deterministic CPU budget).
    pub fuel: u64,
    /// Wall-clock deadline per alert.
    #[serde(with = "human::duration")]
    pub deadline: Duration,
    /// Mean wall time per alert over each 64 alerts a worker runs the
    /// filter on; over it the filter is quarantined (a slow filter holds
    /// the worker from every other filter).
    #[serde(with = "human::duration")]
    pub mean_time: Duration,
    /// Linear memory per instance.
    #[serde(with = "human::size")]
    pub memory: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig::of(&Limits::default())
    }
}

impl LimitsConfig {
    /// The budgets of `limits`, as the file writes them.
    pub fn of(limits: &Limits) -> LimitsConfig {
        LimitsConfig {
            fuel: limits.fuel_per_alert,
            deadline: Duration::from_millis(limits.deadline_ms),
            mean_time: Duration::from_millis(limits.mean_ms),
            memory: limits.memory_bytes,
        }
    }

    /// Whether every budget is at most `max`'s.
    pub fn within(&self, max: &LimitsConfig) -> bool {
        self.fuel <= max.fuel
            && self.deadline <= max.deadline
            && self.mean_time <= max.mean_time
            && self.memory <= max.memory
    }

    /// `fuel N, deadline D, mean time T, memory N bytes`, for errors.
    pub fn describe(&self) -> String {
        format!(
            "fuel {}, deadline {:?}, mean time {:?}, memory {} bytes",
            self.fuel, self.deadline, self.mean_time, self.memory
        )
    }

    /// The engine's limits with these budgets.
    pub fn to_limits(self) -> Limits {
        Limits {
            fuel_per_alert: self.fuel,
            deadline_ms: self.deadline.as_millis() as u64,
            mean_ms: self.mean_time.as_millis() as u64,
            memory_bytes: self.memory,
            ..Limits::default()
        }
    }
}

/// One deployed filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The component file.
    pub path: PathBuf,
    /// Where its accepted alerts go.
    pub output_topic: String,
    /// Deployment name, `[a-z0-9-]`: in the `bandpass-filter` header, the
    /// metrics and the logs. Defaults to the manifest's name; needed when
    /// one component is deployed twice (say, with two parameter sets).
    #[serde(default)]
    pub name: Option<String>,
    /// Parameters passed to `init`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Overrides of the engine's default limits, within `max_limits`.
    #[serde(default)]
    pub limits: Option<LimitsConfig>,
    /// Loaded but not run.
    #[serde(default)]
    pub disabled: bool,
}

/// Delivery guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Offsets stored after every produce of a message (and of every
    /// earlier message of its partition) is acknowledged; duplicates are
    /// possible after a crash, losses are not.
    #[default]
    AtLeastOnce,
    /// Kafka transactions: consumers reading `read_committed` see each
    /// accepted alert once.
    ExactlyOnce,
}

fn default_dead_letter_topic() -> String {
    "bandpass-dead-letter".into()
}

fn default_security_protocol() -> String {
    "plaintext".into()
}

/// One per core.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn default_quarantine_after() -> u32 {
    5
}

fn default_cache_max_size() -> usize {
    crate::sandbox::DEFAULT_CACHE_BYTES as usize
}

fn default_max_limits() -> LimitsConfig {
    LimitsConfig {
        fuel: 10_000_000_000,
        deadline: Duration::from_secs(1),
        mean_time: Duration::from_secs(1),
        memory: 512 << 20,
    }
}

/// Why a configuration was refused. Each names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {key} uses ${{{var}}}, but the environment has no {var}: set it")]
    MissingEnv {
        path: PathBuf,
        key: String,
        var: String,
    },
    #[error("config file {path}: {key}: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

impl Config {
    /// Reads, substitutes `${ENV}` values, parses and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path, |var| std::env::var(var).ok())
    }

    /// Parses `text` (named `path` in errors), looking `${VAR}` up with
    /// `env`.
    pub fn parse(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut value: toml::Value = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        substitute(&mut value, "", path, &env)?;
        let config: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        config.validate(path)?;
        Ok(config)
    }

    /// This instance's `group.instance.id`: `input.instance_id`, else
    /// `<hostname>-<admin port>` with `[admin]`, else none (see
    /// [`InputConfig::instance_id`]).
    pub fn group_instance_id(&self) -> Option<String> {
        match &self.input.instance_id {
            Some(id) if id.is_empty() => None,
            Some(id) => Some(id.clone()),
            None => self
                .admin
                .as_ref()
                .map(|a| format!("{}-{}", hostname(), a.listen.port())),
        }
    }

    /// Cross-field rules.
    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            reason,
        };
        if self.kafka.brokers.is_empty() {
            return Err(invalid(
                "kafka.brokers",
                "name at least one broker (host:port)".into(),
            ));
        }
        if self.input.topics.is_empty() {
            return Err(invalid("input.topics", "name at least one topic".into()));
        }
        self.schemas
            .check()
            .map_err(|(key, reason)| invalid(key, reason))?;
        if self.engine.workers == 0 {
            return Err(invalid("engine.workers", "must be at least 1".into()));
        }
        // Kafka's own bounds on a session (the broker's defaults allow
        // 6 s to 30 min).
        if !(Duration::from_secs(1)..=Duration::from_secs(3600))
            .contains(&self.input.session_timeout)
        {
            return Err(invalid(
                "input.session_timeout",
                "must be 1s to 1h (and within the broker's group.min/max.session.timeout.ms)"
                    .into(),
            ));
        }
        if let Some(id) = &self.input.instance_id
            && (id.len() > 200
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
        {
            return Err(invalid(
                "input.instance_id",
                "at most 200 of A-Z, a-z, 0-9, '.', '_' and '-' (or \"\" for none)".into(),
            ));
        }
        let max = self.engine.max_limits;
        for (i, f) in self.filters.iter().enumerate() {
            let key = format!("filter[{i}]");
            if let Some(name) = &f.name
                && !is_name(name, 64)
            {
                return Err(invalid(
                    &format!("{key}.name"),
                    format!(
                        "'{name}' is not a name: use lowercase letters, digits and dashes (at most 64)"
                    ),
                ));
            }
            if f.output_topic.is_empty() {
                return Err(invalid(
                    &format!("{key}.output_topic"),
                    "must not be empty".into(),
                ));
            }
            if self.input.topics.contains(&f.output_topic)
                || f.output_topic == self.dead_letter_topic
            {
                return Err(invalid(
                    &format!("{key}.output_topic"),
                    format!(
                        "'{}' is an input or the dead-letter topic: it would loop",
                        f.output_topic
                    ),
                ));
            }
            let limits = f.limits.unwrap_or(self.engine.limits);
            if !limits.within(&max) {
                return Err(invalid(
                    &format!("{key}.limits"),
                    format!("over engine.max_limits ({})", max.describe()),
                ));
            }
        }
        if let Some(admin) = &self.admin {
            self.validate_admin(admin, path)?;
        }
        Ok(())
    }

    fn validate_admin(&self, admin: &AdminConfig, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            reason,
        };
        let hash_reason = "is not a SHA-256 in lowercase hex (64 digits): write what `bandpass token` prints (or `printf %s TOKEN | sha256sum`), not the token";
        if let Some(h) = &admin.operator_token_sha256
            && !is_sha256_hex(h)
        {
            return Err(invalid(
                "admin.operator_token_sha256".into(),
                hash_reason.into(),
            ));
        }
        for (i, g) in admin.groups.iter().enumerate() {
            let key = format!("admin.group[{i}]");
            if !is_name(&g.name, 32) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!(
                        "'{}' is not a group name: use lowercase letters, digits and dashes (at most 32)",
                        g.name
                    ),
                ));
            }
            if admin.groups[..i].iter().any(|o| o.name == g.name) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("group '{}' is defined twice", g.name),
                ));
            }
            if !is_sha256_hex(&g.token_sha256) {
                return Err(invalid(format!("{key}.token_sha256"), hash_reason.into()));
            }
            let shared = admin.operator_token_sha256.as_ref() == Some(&g.token_sha256)
                || admin.groups[..i]
                    .iter()
                    .any(|o| o.token_sha256 == g.token_sha256);
            if shared {
                return Err(invalid(
                    format!("{key}.token_sha256"),
                    "is another group's or the operator's token: give each its own".into(),
                ));
            }
            if let Some(m) = &g.max_limits
                && !m.within(&self.engine.max_limits)
            {
                return Err(invalid(
                    format!("{key}.max_limits"),
                    format!(
                        "over engine.max_limits ({})",
                        self.engine.max_limits.describe()
                    ),
                ));
            }
        }
        if !(1..=65_536).contains(&admin.max_connections) {
            return Err(invalid(
                "admin.max_connections".into(),
                "must be 1 to 65536".into(),
            ));
        }
        if admin.header_timeout.is_zero() || admin.body_timeout.is_zero() {
            return Err(invalid(
                "admin.header_timeout / admin.body_timeout".into(),
                "must be above 0".into(),
            ));
        }
        if admin.requests_per_second == 0 {
            return Err(invalid(
                "admin.requests_per_second".into(),
                "must be at least 1".into(),
            ));
        }
        let u = &admin.uploads;
        if admin.uploads_enabled() {
            if u.canary_alerts.is_empty() {
                return Err(invalid(
                    "admin.uploads.canary_alerts".into(),
                    "name real alert files or directories: every upload is tried on them before it runs".into(),
                ));
            }
            if u.registry_topic.is_empty()
                || self.input.topics.contains(&u.registry_topic)
                || u.registry_topic == self.dead_letter_topic
            {
                return Err(invalid(
                    "admin.uploads.registry_topic".into(),
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
                return Err(invalid(
                    format!("admin.uploads.{key}"),
                    "must be above 0 and at most 1".into(),
                ));
            }
        }
        if u.max_size == 0 {
            return Err(invalid(
                "admin.uploads.max_size".into(),
                "must be above 0".into(),
            ));
        }
        if u.compile_memory < 64 << 20 {
            return Err(invalid(
                "admin.uploads.compile_memory".into(),
                "must be at least 64MiB (the compiler itself needs that much)".into(),
            ));
        }
        Ok(())
    }
}

/// Replaces every string that is exactly `${VAR}` with the variable.
fn substitute(
    value: &mut toml::Value,
    key: &str,
    path: &Path,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) => {
            if let Some(var) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                *s = env(var).ok_or_else(|| ConfigError::MissingEnv {
                    path: path.to_path_buf(),
                    key: key.to_string(),
                    var: var.to_string(),
                })?;
            }
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, &format!("{key}[{i}]"), path, env)?;
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                let child = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                substitute(v, &child, path, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Human-readable durations and sizes.
pub mod human {
    use std::time::Duration;

    /// Longest duration any setting takes: a week. Longer is a typo, and
    /// would overflow the clock arithmetic it feeds.
    pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

    /// Parses `"250ms"`, `"5s"`, `"2m"`, `"1h"`, at most [`MAX_DURATION`].
    pub fn parse_duration(s: &str) -> Result<Duration, String> {
        let shown = crate::text::shown(s.trim(), 40);
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let too_long = || format!("'{shown}' is longer than the week a duration may be");
        let n: u64 = number.parse().map_err(|e: std::num::ParseIntError| {
            if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
                too_long()
            } else {
                format!("'{shown}' is not a duration such as \"250ms\", \"5s\" or \"2m\"")
            }
        })?;
        let millis_per = match unit.trim() {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => {
                return Err(format!(
                    "unknown unit '{}' in '{shown}': use ms, s, m or h",
                    crate::text::shown(unit.trim(), 16)
                ));
            }
        };
        let millis = n.checked_mul(millis_per).ok_or_else(too_long)?;
        let duration = Duration::from_millis(millis);
        if duration > MAX_DURATION {
            return Err(too_long());
        }
        Ok(duration)
    }

    /// Parses `"64MiB"`, `"512KiB"`, `"1GiB"` or a number of bytes.
    pub fn parse_size(s: &str) -> Result<usize, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let shown = crate::text::shown(s, 40);
        let n: usize = number.parse().map_err(|e: std::num::ParseIntError| {
            if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
                format!("'{shown}' is too large")
            } else {
                format!("'{shown}' is not a size such as \"64MiB\"")
            }
        })?;
        let factor = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown unit '{}' in '{shown}': use B, KiB, MiB or GiB",
                    crate::text::shown(other, 16)
                ));
            }
        };
        n.checked_mul(factor)
            .ok_or_else(|| format!("'{shown}' is too large"))
    }

    /// `#[serde(with = "human::duration")]`.
    pub mod duration {
        use serde::{Deserialize, Deserializer};
        use std::time::Duration;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            let s = String::deserialize(d)?;
            super::parse_duration(&s).map_err(serde::de::Error::custom)
        }
    }

    /// `#[serde(default, with = "human::optional_duration")]`.
    pub mod optional_duration {
        use serde::{Deserialize, Deserializer};
        use std::time::Duration;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            let s = String::deserialize(d)?;
            super::parse_duration(&s)
                .map(Some)
                .map_err(serde::de::Error::custom)
        }
    }

    /// `#[serde(with = "human::size")]`: a string with a unit, or bytes.
    pub mod size {
        use serde::{Deserialize, Deserializer};

        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(usize),
            Text(String),
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
            match Raw::deserialize(d)? {
                Raw::Bytes(n) => Ok(n),
                Raw::Text(s) => super::parse_size(&s).map_err(serde::de::Error::custom),
            }
        }
    }
}

/// This machine's name: what a default transactional id and group
/// instance id are made of.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [kafka]
        brokers = ["127.0.0.1:9092"]
        [input]
        topics = ["ztf_alerts"]
        group = "bandpass"
        [[filter]]
        path = "bright_transients.wasm"
        output_topic = "bright"
    "#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("bandpass.toml"), |var| {
            (var == "SASL_PASSWORD").then(|| "s3cret".to_string())
        })
    }

    #[test]
    fn a_minimal_file_gets_documented_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.input.start, StartPosition::Latest);
        assert_eq!(c.input.framing, Framing::Auto);
        assert_eq!(c.delivery, Delivery::AtLeastOnce);
        assert_eq!(c.dead_letter_topic, "bandpass-dead-letter");
        assert_eq!(c.filters[0].output_topic, "bright");
        assert_eq!(c.engine.limits.to_limits(), Limits::default());
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name() {
        let err = parse(&MINIMAL.replace("group = ", "gruop = \"x\"\ngroup = ")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("bandpass.toml") && text.contains("gruop"),
            "{text}"
        );
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let with_secret = MINIMAL.replace(
            "[input]",
            "sasl_username = \"alice\"\nsasl_password = \"${SASL_PASSWORD}\"\n[input]",
        );
        assert_eq!(
            parse(&with_secret).unwrap().kafka.sasl_password.as_deref(),
            Some("s3cret")
        );
        let missing = with_secret.replace("${SASL_PASSWORD}", "${NOPE}");
        let text = parse(&missing).unwrap_err().to_string();
        assert!(
            text.contains("kafka.sasl_password") && text.contains("NOPE"),
            "{text}"
        );
    }

    #[test]
    fn durations_sizes_and_start_positions_read_as_written() {
        let text = MINIMAL.replace(
            "group = \"bandpass\"",
            "group = \"bandpass\"\nstart = { timestamp_ms = 1700000000000 }",
        ) + "\n[engine.limits]\nfuel = 1000\ndeadline = \"250ms\"\nmemory = \"32MiB\"\n";
        let c = parse(&text).unwrap();
        assert_eq!(c.input.start, StartPosition::TimestampMs(1_700_000_000_000));
        assert_eq!(c.engine.limits.deadline, Duration::from_millis(250));
        assert_eq!(c.engine.limits.memory, 32 << 20);
        assert!(human::parse_duration("5 fortnights").is_err());
        assert_eq!(human::parse_size("4096").unwrap(), 4096);
    }

    #[test]
    fn durations_and_sizes_that_would_overflow_are_refused_not_wrapped() {
        for text in [
            "307445734561825861m",
            "99999999999999999999ms",
            "169h",
            "604801s",
        ] {
            let err = human::parse_duration(text).unwrap_err();
            assert!(err.contains("longer than the week"), "{text}: {err}");
        }
        assert_eq!(human::parse_duration("168h").unwrap(), human::MAX_DURATION);
        for text in ["99999999999999999999", "17179869184GiB"] {
            let err = human::parse_size(text).unwrap_err();
            assert!(err.contains("too large"), "{text}: {err}");
        }
        let escaped = human::parse_duration("5\x1b[2Jz").unwrap_err();
        assert!(escaped.contains("\\u{1b}"), "{escaped}");
    }

    #[test]
    fn cross_field_rules_name_the_key() {
        let looping = MINIMAL.replace("output_topic = \"bright\"", "output_topic = \"ztf_alerts\"");
        let text = parse(&looping).unwrap_err().to_string();
        assert!(
            text.contains("filter[0].output_topic") && text.contains("loop"),
            "{text}"
        );
        let greedy = MINIMAL.to_string() + "limits = { fuel = 99999999999999 }\n";
        let text = parse(&greedy).unwrap_err().to_string();
        assert!(
            text.contains("filter[0].limits") && text.contains("max_limits"),
            "{text}"
        );
    }

    #[test]
    fn upload_checks_default_and_are_bounded() {
        let uploads = |keys: &str| {
            format!(
                "{MINIMAL}[admin]\nlisten = \"127.0.0.1:9464\"\noperator_token_sha256 = \"{}\"\n\
                 [admin.uploads]\ncanary_alerts = [\"/srv/canary\"]\n{keys}",
                "ab".repeat(32)
            )
        };
        let c = parse(&uploads("")).unwrap();
        let u = c.admin.unwrap().uploads;
        assert_eq!(u.compile_memory, 4 << 30);
        assert_eq!(u.compile_timeout, Duration::from_secs(60));
        let text = parse(&uploads("compile_memory = \"16MiB\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("admin.uploads.compile_memory") && text.contains("at least 64MiB"),
            "{text}"
        );
    }

    #[test]
    fn a_schema_directory_and_a_registry_are_not_both_allowed() {
        let both = MINIMAL.to_string()
            + "[schemas]\ndir = \"/srv/schemas\"\nregistry_url = \"http://registry:8081\"\n";
        let text = parse(&both).unwrap_err().to_string();
        assert!(
            text.contains("bandpass.toml")
                && text.contains("schemas.dir")
                && text.contains("schemas.registry_url"),
            "{text}"
        );
        let not_http = MINIMAL.to_string() + "[schemas]\nregistry_url = \"registry:8081\"\n";
        let text = parse(&not_http).unwrap_err().to_string();
        assert!(
            text.contains("schemas.registry_url") && text.contains("http://"),
            "{text}"
        );
        let orphan_password = MINIMAL.to_string()
            + "[schemas]\nregistry_url = \"http://registry:8081\"\nregistry_password = \"x\"\n";
        let text = parse(&orphan_password).unwrap_err().to_string();
        assert!(text.contains("schemas.registry_username"), "{text}");
        let credentials_alone = MINIMAL.to_string() + "[schemas]\nregistry_username = \"alice\"\n";
        let text = parse(&credentials_alone).unwrap_err().to_string();
        assert!(text.contains("schemas.registry_url"), "{text}");
    }

    #[test]
    fn the_schema_source_follows_the_schemas_keys() {
        assert!(matches!(
            parse(MINIMAL).unwrap().schemas.source(),
            SchemaSource::None
        ));
        let dir = MINIMAL.to_string() + "[schemas]\ndir = \"/srv/schemas\"\n";
        assert!(matches!(
            parse(&dir).unwrap().schemas.source(),
            SchemaSource::Dir(d) if d == Path::new("/srv/schemas")
        ));
        let registry = MINIMAL.to_string()
            + "[schemas]\nregistry_url = \"https://registry.example/\"\n\
               registry_username = \"alice\"\nregistry_password = \"${SASL_PASSWORD}\"\n";
        let c = parse(&registry).unwrap();
        assert_eq!(c.schemas.registry_password.as_deref(), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        let SchemaSource::Registry(r) = c.schemas.source() else {
            panic!("expected a registry source");
        };
        assert_eq!(r.url(), "https://registry.example");
        let shown = format!("{r:?}");
        assert!(
            shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
