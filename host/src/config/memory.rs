//! `[memory]`: where serve keeps what filters remember of each object,
//! and for how long (docs/design/object-memory.md).

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
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            dir: None,
            state_ttl: default_state_ttl(),
            changelog_topic: None,
        }
    }
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

    pub(super) fn check(&self) -> Result<(), Invalid> {
        if let Some(topic) = &self.changelog_topic
            && !valid_topic(topic)
        {
            return Err(Invalid::new(
                "memory.changelog_topic",
                "a Kafka topic name: 1 to 249 of A-Z, a-z, 0-9, '.', '_' and '-'".into(),
            ));
        }
        Ok(())
    }
}

/// Kafka's own rule for a topic name.
fn valid_topic(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
