//! `[output]`: how serve creates the topics it produces to (each
//! filter's output topic and the dead-letter topic) where they do not
//! exist, since many production brokers do not create topics on first
//! use; and `[output.kafka]`, the cluster it writes to when that is not
//! the one it reads from (a survey's stream in, the operator's cluster
//! out).

use std::time::Duration;

use serde::Deserialize;

use super::{Delivery, Invalid, KafkaConfig, human};

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
    /// The cluster serve writes to (accepted alerts, dead letters, the
    /// upload registry, the changelog and re-key topics), with the keys
    /// of `[kafka]`; default: `[kafka]`'s. Its `librdkafka` map goes to
    /// its clients only. Exactly-once delivery needs one cluster (a
    /// Kafka transaction cannot commit the input's offsets on one
    /// cluster with the outputs on another), so it is refused with
    /// brokers of their own here.
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
}

impl Default for OutputConfig {
    fn default() -> OutputConfig {
        OutputConfig {
            create_topics: default_create_topics(),
            partitions: None,
            replication_factor: None,
            retention: None,
            kafka: None,
        }
    }
}

fn default_create_topics() -> bool {
    true
}

impl OutputConfig {
    /// Its own rules, and those between `[output.kafka]`, the input's
    /// `[kafka]` and `delivery`.
    pub(super) fn check(&self, input: &KafkaConfig, delivery: Delivery) -> Result<(), Invalid> {
        if let Some(kafka) = &self.kafka {
            kafka.check("output.kafka")?;
            if kafka.transactional_id.is_some() {
                return Err(Invalid::new(
                    "output.kafka.transactional_id",
                    "serve's transactional id is kafka.transactional_id (exactly-once \
                     runs on one cluster): move it there, or remove it"
                        .into(),
                ));
            }
            let mut theirs = kafka.brokers.clone();
            let mut ours = input.brokers.clone();
            theirs.sort();
            ours.sort();
            if delivery == Delivery::ExactlyOnce && theirs != ours {
                return Err(Invalid::new(
                    "output.kafka",
                    "delivery = \"exactly-once\" needs the outputs on the cluster the alerts \
                     are read from: a Kafka transaction commits the consumed offsets and the \
                     outputs together only within one cluster. Use delivery = \
                     \"at-least-once\" with two clusters (docs/reliability.md), or remove \
                     [output.kafka]"
                        .into(),
                ));
            }
        }
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
