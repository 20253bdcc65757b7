//! `[input]`: the alert topics, and how to read them.

use std::time::Duration;

use serde::Deserialize;

use super::{Invalid, human};

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
    /// What the producer keys the input's messages by. `"object"` says
    /// every alert of an object is keyed by its object id (so all of them
    /// reach one partition, in order): then serve keeps each object's
    /// history and filters' states ([`super::MemoryConfig`]). Unset: the
    /// key means nothing to bandpass, and filters that remember are
    /// refused.
    #[serde(default)]
    pub keyed_by: Option<KeyedBy>,
    /// Re-key the input by object id inside serve: a first stage reads
    /// the input topics (in group `<group>.bandpass-rekey`) and produces
    /// each message, bytes and headers unchanged, keyed by its alert's
    /// object id, to `<group>.bandpass-rekey`, which the filters read.
    /// For survey topics not keyed by object, so that serve can keep
    /// histories and states; it costs a second produce and consume per
    /// alert.
    #[serde(default)]
    pub rekey: bool,
}

/// What the input's message keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyedBy {
    /// The alert's object id (ZTF `objectId`, Rubin `diaObject.diaObjectId`).
    Object,
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

impl InputConfig {
    pub(super) fn check(&self) -> Result<(), Invalid> {
        if self.topics.is_empty() {
            return Err(Invalid::new(
                "input.topics",
                "name at least one topic".into(),
            ));
        }
        // Kafka's own bounds on a session (the broker's defaults allow
        // 6 s to 30 min).
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.session_timeout) {
            return Err(Invalid::new(
                "input.session_timeout",
                "must be 1s to 1h (and within the broker's group.min/max.session.timeout.ms)"
                    .into(),
            ));
        }
        if self.rekey && self.keyed_by == Some(KeyedBy::Object) {
            return Err(Invalid::new(
                "input.rekey",
                "the input is already keyed by object (input.keyed_by = \"object\"): \
                 drop one of the two"
                    .into(),
            ));
        }
        if let Some(id) = &self.instance_id
            && (id.len() > 200
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
        {
            return Err(Invalid::new(
                "input.instance_id",
                "at most 200 of A-Z, a-z, 0-9, '.', '_' and '-' (or \"\" for none)".into(),
            ));
        }
        Ok(())
    }
}
