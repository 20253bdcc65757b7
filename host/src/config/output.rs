//! `[output]`: how serve creates the topics it produces to (each
//! filter's output topic and the dead-letter topic) where they do not
//! exist, since many production brokers do not create topics on first
//! use.

use std::time::Duration;

use serde::Deserialize;

use super::{Invalid, human};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Create a missing output or dead-letter topic (at start, at
    /// SIGHUP, and when an upload's record is applied). Off: the broker
    /// must have them, or create them on first use.
    #[serde(default = "default_create_topics")]
    pub create_topics: bool,
    /// Partitions of a topic serve creates; default: the broker's
    /// (`num.partitions`).
    #[serde(default)]
    pub partitions: Option<i32>,
    /// Replicas of a topic serve creates; default: the broker's
    /// (`default.replication.factor`).
    #[serde(default)]
    pub replication_factor: Option<i32>,
    /// `retention.ms` of a topic serve creates (`"7d"`, `"12h"`);
    /// default: the broker's.
    #[serde(default, with = "human::optional_age")]
    pub retention: Option<Duration>,
}

impl Default for OutputConfig {
    fn default() -> OutputConfig {
        OutputConfig {
            create_topics: default_create_topics(),
            partitions: None,
            replication_factor: None,
            retention: None,
        }
    }
}

fn default_create_topics() -> bool {
    true
}

impl OutputConfig {
    pub(super) fn check(&self) -> Result<(), Invalid> {
        if self.partitions.is_some_and(|p| !(1..=10_000).contains(&p)) {
            return Err(Invalid::new(
                "output.partitions",
                "must be 1 to 10000".into(),
            ));
        }
        if self
            .replication_factor
            .is_some_and(|r| !(1..=32).contains(&r))
        {
            return Err(Invalid::new(
                "output.replication_factor",
                "must be 1 to 32 (and at most the number of brokers)".into(),
            ));
        }
        Ok(())
    }
}
