//! The registry topic: created (compacted, one partition) or checked at
//! start, and read by every instance from its beginning.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::follower::CATCH_UP;
use crate::config::Config;
use crate::kafka::{Logged, Role, client_config};

/// Creates the registry topic (compacted, one partition) if it is
/// missing; an existing one must be compacted (a deleting topic would
/// lose filters).
pub(super) fn ensure_topic(config: &Config, topic: &str, max_message: usize) -> anyhow::Result<()> {
    crate::kafka::ensure_topic(
        config,
        &crate::kafka::Internal {
            compacted: true,
            topic,
            partitions: 1,
            max_message: Some(max_message),
            what: "registry topic",
            lost: "filters would be deleted with old segments",
            key: "admin.uploads.registry_topic",
        },
    )
    .map(|_| ())
}

/// A consumer assigned every partition of the topic from its beginning
/// (no group membership, no commits: every instance reads it all).
pub(super) fn reader(
    config: &Config,
    topic: &str,
    max_message: usize,
) -> anyhow::Result<BaseConsumer<Logged>> {
    let consumer: BaseConsumer<Logged> =
        client_config(config, Role::RegistryReader { max_message })
            .create_with_context(Logged)
            .context("creating the registry's Kafka consumer")?;
    let deadline = Instant::now() + CATCH_UP;
    let partitions = loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("reading the metadata of registry topic {topic}"))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if !partitions.is_empty() {
            break partitions;
        }
        if Instant::now() > deadline {
            anyhow::bail!("registry topic {topic} has no partitions after {CATCH_UP:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}
