//! `[memory]`: where serve keeps what filters remember of each object,
//! and for how long (docs/design/object-memory.md).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Invalid, human};

/// Object memory in serve: on when `input.keyed_by = "object"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// The folder on local disk under which each start makes its store
    /// (rebuilt from the changelog topic, which is what survives a
    /// crash or a move to another machine). Default: `$TMPDIR`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// How long a filter's state for an object lives without an alert of
    /// that object (alert time, not the clock).
    #[serde(default = "default_state_ttl", with = "human::age")]
    pub state_ttl: Duration,
    /// The compacted topic every change is written to, keyed by object;
    /// default `<input.group>.bandpass-changelog`.
    #[serde(default)]
    pub changelog_topic: Option<String>,
    /// Points of an object's light curve older than this before its
    /// latest are dropped.
    #[serde(default = "default_history_max_age", with = "human::age")]
    pub history_max_age: Duration,
    /// At most this many points of an object's light curve are kept (the
    /// latest).
    #[serde(default = "default_history_max_points")]
    pub history_max_points: usize,
    /// Per survey (`[memory.history.ztf]`), the light-curve columns kept
    /// instead of the defaults (`memory::history`).
    #[serde(default)]
    pub history: BTreeMap<String, HistoryColumns>,
}

/// `[memory.history.<survey>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryColumns {
    /// Each column: `magpsf`, or `fwhm:real` where the host does not know
    /// its type (`real`, `integer`, `text`).
    pub columns: Vec<String>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            dir: None,
            state_ttl: default_state_ttl(),
            changelog_topic: None,
            history_max_age: default_history_max_age(),
            history_max_points: default_history_max_points(),
            history: BTreeMap::new(),
        }
    }
}

fn default_history_max_age() -> Duration {
    Duration::from_secs((crate::memory::history::DEFAULT_MAX_AGE_DAYS * 86_400.0) as u64)
}

fn default_history_max_points() -> usize {
    crate::memory::history::DEFAULT_MAX_POINTS
}

fn default_state_ttl() -> Duration {
    crate::memory::DEFAULT_STATE_TTL
}

impl MemoryConfig {
    /// The changelog topic for consumer group `group`.
    pub fn changelog_topic(&self, group: &str) -> String {
        self.changelog_topic
            .clone()
            .unwrap_or_else(|| format!("{group}.bandpass-changelog"))
    }

    /// Sets `memory`'s expiry and light-curve caps from these.
    pub fn apply(&self, memory: &mut crate::memory::Memory) {
        memory.state_ttl = self.state_ttl;
        memory.history_max_age_days = self.history_max_age.as_secs_f64() / 86_400.0;
        memory.history_max_points = self.history_max_points;
    }

    /// The history columns kept per survey: the defaults, with each
    /// survey in `[memory.history]` keeping its own list.
    pub fn kept(&self) -> Result<crate::memory::history::Kept, String> {
        crate::memory::history::Kept::with_columns(
            self.history
                .iter()
                .map(|(survey, h)| (survey.as_str(), h.columns.as_slice())),
            crate::memory::history::CONFIG_SETTING,
        )
    }

    pub(super) fn check(&self) -> Result<(), Invalid> {
        if let Err(why) = self.kept() {
            // The sentence starts with the key it is about.
            let (key, reason) = why.split_once(": ").unwrap_or(("memory.history", &why));
            return Err(Invalid::new(key, reason.to_string()));
        }
        if !(1..=crate::memory::history::MAX_POINTS).contains(&self.history_max_points) {
            return Err(Invalid::new(
                "memory.history_max_points",
                format!(
                    "must be 1 to {} (each point of each object is kept on disk and read with \
                     every alert of its object)",
                    crate::memory::history::MAX_POINTS
                ),
            ));
        }
        if let Some(topic) = &self.changelog_topic
            && !super::is_topic(topic)
        {
            return Err(Invalid::new(
                "memory.changelog_topic",
                "a Kafka topic name: 1 to 249 of A-Z, a-z, 0-9, '.', '_' and '-'".into(),
            ));
        }
        Ok(())
    }
}
