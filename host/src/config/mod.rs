//! The service's configuration file (TOML), for `bandpass serve`.
//!
//! Owns: parsing, defaults, `${ENV}` substitution for secrets, and the
//! rules between keys, each section's in its own file (`check`). Every field is documented where it is
//! declared; unknown keys are refused with the key named. Must never:
//! start anything: a config that loads is only a value.
//!
//! Durations are written `"250ms"`, `"5s"`, `"2m"`; sizes `"64MiB"`,
//! `"512KiB"`, or a plain number of bytes.

//!
//! Sections, each in its file with its defaults and its rules: [`kafka`],
//! [`input`], [`schemas`], [`engine`] (with the per-filter limits),
//! [`filter`], [`admin`], [`memory`] and [`sky`]; durations and sizes are read by
//! [`crate::units`].

pub mod admin;
pub mod engine;
pub mod filter;
pub mod input;
pub mod kafka;
pub mod memory;
pub mod output;
pub mod schemas;
pub mod sky;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::units as human;
pub use admin::{AdminConfig, GroupConfig, UploadsConfig};
pub use engine::EngineConfig;
pub use filter::FilterConfig;
pub use input::{Framing, InputConfig, KeyedBy, StartPosition};
pub use kafka::KafkaConfig;
pub use memory::MemoryConfig;
pub use schemas::SchemasConfig;
pub use sky::SkyConfig;

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
    #[serde(default, rename = "filter", deserialize_with = "filter::expand")]
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
    /// Where serve keeps objects' histories and filters' states, when
    /// `input.keyed_by = "object"` or `input.rekey` (see
    /// [`Config::memory`]).
    #[serde(default, rename = "memory")]
    pub memory_section: Option<MemoryConfig>,
    /// The catalogues filters cross-match with, and the caps on a
    /// cross-match.
    #[serde(default)]
    pub sky: SkyConfig,
    /// How serve creates the topics it produces to.
    #[serde(default)]
    pub output: output::OutputConfig,
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

/// A broken rule: the key, and what to do about it.
#[derive(Debug)]
pub(crate) struct Invalid {
    pub key: String,
    pub reason: String,
}

/// Why `topic` is refused, for a name [`is_topic`] refuses.
pub(super) fn not_a_topic(topic: &str) -> String {
    format!(
        "'{}' is not a Kafka topic name: use letters, digits, '.', '_' and '-' (at most 249)",
        crate::text::shown(topic, 200)
    )
}

/// Whether `topic` is a name Kafka takes (its own rule: 1 to 249 of
/// A-Z, a-z, 0-9, '.', '_' and '-', and not `.` or `..`).
pub(super) fn is_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Invalid {
    pub fn new(key: impl Into<String>, reason: String) -> Invalid {
        Invalid {
            key: key.into(),
            reason,
        }
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

    /// Cross-field rules, section by section in the file's order; the
    /// first broken is reported.
    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.check()
            .map_err(|Invalid { key, reason }| ConfigError::Invalid {
                path: path.to_path_buf(),
                key,
                reason,
            })
    }

    fn check(&self) -> Result<(), Invalid> {
        self.kafka.check("kafka")?;
        self.input.check()?;
        for (i, topic) in self.input.topics.iter().enumerate() {
            let wrong = if topic.starts_with('^') {
                regex_lite::Regex::new(topic)
                    .err()
                    .map(|e| format!("'{}' is not a pattern: {e}", crate::text::shown(topic, 200)))
            } else {
                (!is_topic(topic))
                    .then(|| format!("{}, or a pattern starting with ^", not_a_topic(topic)))
            };
            if let Some(reason) = wrong {
                return Err(Invalid::new(format!("input.topics[{i}]"), reason));
            }
        }
        if !is_topic(&self.dead_letter_topic) {
            return Err(Invalid::new(
                "dead_letter_topic",
                not_a_topic(&self.dead_letter_topic),
            ));
        }
        self.schemas.check()?;
        self.engine.check()?;
        self.sky.check()?;
        self.output.check(&self.kafka, self.delivery)?;
        if let Some(memory) = &self.memory_section {
            memory.check()?;
            if !self.remembers_objects() {
                return Err(Invalid::new(
                    "memory",
                    "serve keeps object memory only for an input keyed by object: set \
                     input.keyed_by = \"object\" (the producer keys by object id) or \
                     input.rekey = true, or remove [memory]"
                        .into(),
                ));
            }
        }
        self.check_internal_topics()?;
        filter::check(
            &self.filters,
            &self.input,
            &self.dead_letter_topic,
            &self.engine,
        )?;
        if let Some(admin) = &self.admin {
            admin.check(
                &self.input.topics,
                &self.dead_letter_topic,
                &self.engine.max_limits,
            )?;
        }
        Ok(())
    }

    /// Whether serve keeps object memory: the input is keyed by object,
    /// or serve re-keys it.
    pub fn remembers_objects(&self) -> bool {
        self.input.keyed_by == Some(KeyedBy::Object) || self.input.rekey
    }

    /// `[memory]`, or its defaults.
    pub fn memory(&self) -> MemoryConfig {
        self.memory_section.clone().unwrap_or_default()
    }

    /// The history columns serve keeps per survey (`memory.history`).
    pub fn kept_history(&self) -> std::sync::Arc<crate::memory::history::Kept> {
        std::sync::Arc::new(
            self.memory()
                .kept()
                .expect("memory.history is checked when the config is read"),
        )
    }

    /// The topics serve writes its own records to (the changelog, the
    /// re-key topic) are no topic the config names for anything else:
    /// another's records there would be read as its own.
    fn check_internal_topics(&self) -> Result<(), Invalid> {
        if !self.remembers_objects() {
            return Ok(());
        }
        let mut others: Vec<(&str, String)> = self
            .input
            .topics
            .iter()
            .map(|t| ("an input topic", t.clone()))
            .collect();
        others.push(("the dead-letter topic", self.dead_letter_topic.clone()));
        others.extend(
            self.filters
                .iter()
                .map(|f| ("a filter's output topic", f.output_topic.clone())),
        );
        if let Some(admin) = &self.admin {
            others.push((
                "the registry topic (admin.uploads.registry_topic)",
                admin.uploads.registry_topic.clone(),
            ));
        }
        let changelog = self.memory().changelog_topic(&self.input.group);
        let mut ours = vec![("memory.changelog_topic", changelog)];
        if self.input.rekey {
            ours.push(("input.group (its re-key topic)", self.rekey_topic()));
        }
        for (key, topic) in &ours {
            if let Some((what, _)) = others.iter().find(|(_, t)| t == topic) {
                return Err(Invalid::new(
                    key.to_string(),
                    format!(
                        "'{topic}' is {what}: serve writes its own records there; name another"
                    ),
                ));
            }
        }
        if ours.len() == 2 && ours[0].1 == ours[1].1 {
            return Err(Invalid::new(
                "memory.changelog_topic",
                format!("'{}' is the re-key topic: name another", ours[0].1),
            ));
        }
        Ok(())
    }

    /// The topic serve re-keys the input to (`input.rekey`).
    pub fn rekey_topic(&self) -> String {
        format!("{}.bandpass-rekey", self.input.group)
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
    use std::time::Duration;

    use super::*;
    use crate::decode::SchemaSource;
    use crate::sandbox::Limits;

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
    fn object_memory_is_on_for_an_input_keyed_or_re_keyed_by_object_and_its_keys_are_checked() {
        assert!(!parse(MINIMAL).unwrap().remembers_objects());
        let keyed = MINIMAL.replace("group = ", "keyed_by = \"object\"\ngroup = ");
        let config = parse(&keyed).unwrap();
        assert!(config.remembers_objects());
        assert_eq!(
            config.memory().changelog_topic(&config.input.group),
            "bandpass.bandpass-changelog"
        );
        let rekeyed = MINIMAL.replace("group = ", "rekey = true\ngroup = ");
        let config = parse(&rekeyed).unwrap();
        assert!(config.remembers_objects());
        assert_eq!(config.rekey_topic(), "bandpass.bandpass-rekey");
        let both = keyed.replace("group = ", "rekey = true\ngroup = ");
        let text = parse(&both).unwrap_err().to_string();
        assert!(
            text.contains("input.rekey") && text.contains("already keyed"),
            "{text}"
        );
        for (bad, says) in [
            ("keyed_by = \"candidate\"", "keyed_by"),
            ("[memory]\nstate_tll = \"1d\"", "state_tll"),
            ("[memory]\nstate_ttl = \"0d\"", "keeps nothing"),
            (
                "[memory]\nchangelog_topic = \"a b\"",
                "memory.changelog_topic",
            ),
            (
                "[memory]\nhistory_max_points = 0",
                "memory.history_max_points",
            ),
            ("[memory]\nhistory_max_age = \"1y\"", "not an age"),
        ] {
            let text = if bad.starts_with('[') {
                parse(&format!("{MINIMAL}\n{bad}\n"))
            } else {
                parse(&MINIMAL.replace("group = ", &format!("{bad}\ngroup = ")))
            }
            .unwrap_err()
            .to_string();
            assert!(text.contains(says), "{bad}: {text}");
        }
        // [memory] where serve keeps none.
        let text = parse(&format!("{MINIMAL}\n[memory]\nstate_ttl = \"30d\"\n"))
            .unwrap_err()
            .to_string();
        assert!(text.contains("remove [memory]"), "{text}");
        // Serve's own topics are no topic named for anything else.
        let text = parse(&format!(
            "{keyed}\n[memory]\nchangelog_topic = \"bright\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            text.contains("memory.changelog_topic") && text.contains("a filter's output topic"),
            "{text}"
        );
        let clash = rekeyed.replace(
            "output_topic = \"bright\"",
            "output_topic = \"bandpass.bandpass-rekey\"",
        );
        let text = parse(&clash).unwrap_err().to_string();
        assert!(text.contains("re-key topic"), "{text}");
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
    fn params_take_toml_numbers_and_booleans_as_the_upload_api_takes_json_ones() {
        let text = MINIMAL.to_string()
            + "params = { max_mag = 18.5, min_ndet = 3, rising = true, band = \"g\", tiny = 1e-300 }\n";
        let c = parse(&text).unwrap();
        let params: Vec<(&str, &str)> = c.filters[0]
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            params,
            [
                ("band", "g"),
                ("max_mag", "18.5"),
                ("min_ndet", "3"),
                ("rising", "true"),
                ("tiny", "1e-300")
            ]
        );
        // The text each gives is the text the upload API gives the same
        // value in JSON.
        for (toml_value, json_value) in [("18.5", "18.5"), ("1e-300", "1e-300"), ("3", "3")] {
            let json: serde_json::Value = serde_json::from_str(json_value).unwrap();
            let c = parse(&(MINIMAL.to_string() + &format!("params = {{ x = {toml_value} }}\n")))
                .unwrap();
            assert_eq!(c.filters[0].params["x"], json.to_string());
        }
        let text = parse(&(MINIMAL.to_string() + "params = { x = nan }\n"))
            .unwrap_err()
            .to_string();
        assert!(text.contains("params.x: NaN is not a number"), "{text}");
        let text = parse(&(MINIMAL.to_string() + "params = { x = [1, 2] }\n"))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("params.x: give a string, a number or true/false, not array"),
            "{text}"
        );
    }

    #[test]
    fn topic_names_and_patterns_are_checked_when_the_config_is_read() {
        for (from, to, wrong) in [
            (
                "topics = [\"ztf_alerts\"]",
                "topics = [\"^([a-\"]",
                "input.topics[0]: '^([a-' is not a pattern",
            ),
            (
                "topics = [\"ztf_alerts\"]",
                "topics = [\"ztf alerts\"]",
                "'ztf alerts' is not a Kafka topic name",
            ),
            (
                "[kafka]",
                "dead_letter_topic = \"bad topic\"\n[kafka]",
                "dead_letter_topic: 'bad topic' is not a Kafka topic name",
            ),
        ] {
            let err = parse(&MINIMAL.replace(from, to)).unwrap_err().to_string();
            assert!(err.contains(wrong), "{wrong}: {err}");
        }
        assert!(
            parse(&MINIMAL.replace("topics = [\"ztf_alerts\"]", "topics = [\"^ztf_.*\"]")).is_ok()
        );
    }

    #[test]
    fn a_filter_with_parameter_sets_is_one_deployment_a_set() {
        let text = MINIMAL.replace(
            "output_topic = \"bright\"",
            "output_topic = \"bright.{name}\"",
        ) + "params = { max_mag = 18.5, min_real = 0.6 }\n\
               limits = { fuel = 2000000 }\n\
               sets = [\n\
                 { name = \"faint\", params = { max_mag = 20 } },\n\
                 { name = \"own\", output_topic = \"elsewhere.{name}\", disabled = true },\n\
                 { name = \"tight\", params = { min_real = 0.9 }, limits = { fuel = 1000000 } },\n\
               ]\n";
        let c = parse(&text).unwrap();
        let got: Vec<_> = c
            .filters
            .iter()
            .map(|f| {
                (
                    f.key.as_str(),
                    f.name.as_deref().unwrap(),
                    f.output_topic.as_str(),
                    f.params
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    f.limits.unwrap().fuel,
                    f.disabled,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "filter[0].sets[0]",
                    "faint",
                    "bright.faint",
                    "max_mag=20,min_real=0.6".to_string(),
                    2_000_000,
                    false
                ),
                (
                    "filter[0].sets[1]",
                    "own",
                    "elsewhere.own",
                    "max_mag=18.5,min_real=0.6".to_string(),
                    2_000_000,
                    true
                ),
                (
                    "filter[0].sets[2]",
                    "tight",
                    "bright.tight",
                    "max_mag=18.5,min_real=0.9".to_string(),
                    1_000_000,
                    false
                ),
            ]
        );
        // What is wrong, named where it is written.
        for (sets, wrong) in [
            (
                "sets = []",
                "filter[0].sets: give between 1 and 2000 parameter sets (it has 0)",
            ),
            (
                "sets = [{ name = \"a\", colour = \"red\" }]",
                "unknown field `colour`",
            ),
            ("sets = [{ params = {} }]", "missing field `name`"),
            (
                "sets = [{ name = \"a\" }, { name = \"Bad Name\" }]",
                "filter[0].sets[1].name",
            ),
            (
                "sets = [{ name = \"a\", params = { x = [1] } }]",
                "params.x: give a string",
            ),
            (
                "name = \"one\"\nsets = [{ name = \"a\" }]",
                "takes no `name`: each set names its deployment",
            ),
        ] {
            let text = MINIMAL.to_string() + sets + "\n";
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(wrong), "{wrong}: {err}");
        }
        // `{name}` outside sets is not a topic.
        let err =
            parse(&MINIMAL.replace("output_topic = \"bright\"", "output_topic = \"b.{name}\""))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("filter[0].output_topic") && err.contains("only in a filter with `sets`"),
            "{err}"
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
        // A group's sky files: 16 MiB by default, or the registry's
        // largest record if smaller; never over it.
        let group = |keys: &str| {
            uploads(&format!(
                "max_size = \"4MiB\"\n[[admin.group]]\nname = \"hosts\"\n\
                 token_sha256 = \"{}\"\n{keys}",
                "cd".repeat(32)
            ))
        };
        let c = parse(&group("")).unwrap();
        let a = c.admin.unwrap();
        assert_eq!(a.groups[0].max_sky_size(&a.uploads), 4 << 20);
        assert_eq!(a.groups[0].max_sky_files, 8);
        let c = parse(&group("max_sky_size = \"1MiB\"")).unwrap();
        let a = c.admin.unwrap();
        assert_eq!(a.groups[0].max_sky_size(&a.uploads), 1 << 20);
        let text = parse(&group("max_sky_size = \"8MiB\""))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("admin.group[0].max_sky_size") && text.contains("admin.uploads.max_size"),
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
