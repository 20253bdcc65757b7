//! The registry topic: created (compacted, one partition) or checked at
//! start, and read by every instance from its beginning.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::follower::CATCH_UP;
use crate::config::Config;
use crate::kafka::{Logged, Role, client_config};

/// Creates the registry topic (compacted, one partition) if it is
/// missing; an existing one must be compacted (a deleting topic would
/// lose filters), and one whose `max.message.bytes` is too small for
/// `admin.uploads.max_size` is warned about.
pub(super) fn ensure_topic(config: &Config, topic: &str, max_message: usize) -> anyhow::Result<()> {
    let admin: AdminClient<Logged> = client_config(config, Role::RegistryAdmin)
        .create_with_context(Logged)
        .context("creating a Kafka admin client for the registry topic")?;
    let max = max_message.to_string();
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact")
        .set("max.message.bytes", &max);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = runtime
        .block_on(admin.create_topics([&new], &options))
        .with_context(|| format!("creating registry topic {topic}"))?;
    // Not created (say, no permission to create topics): fine if it exists.
    let mut refused = None;
    for result in created {
        match result {
            Ok(_) => {
                tracing::info!(%topic, "registry topic created (compacted)");
                return Ok(());
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => refused = Some(code),
        }
    }
    let described = runtime
        .block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options))
        .ok()
        .and_then(|mut r| r.pop())
        .and_then(Result::ok);
    let Some(described) = described else {
        anyhow::bail!(
            "cannot create registry topic {topic} ({}) nor read its configuration: create it (cleanup.policy=compact, max.message.bytes={max}) and let this instance describe it, or name another in admin.uploads.registry_topic",
            refused.map_or("it exists".to_string(), |c| c.to_string())
        );
    };
    let value = |name: &str| described.get(name).and_then(|e| e.value.clone());
    let policy = value("cleanup.policy").unwrap_or_default();
    if !policy.split(',').any(|p| p.trim() == "compact") {
        anyhow::bail!(
            "registry topic {topic} has cleanup.policy={policy}: it must be compact, or filters would be deleted with old segments; set it, or name another topic in admin.uploads.registry_topic"
        );
    }
    let limit: usize = value("max.message.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if limit < max_message {
        tracing::warn!(
            %topic,
            limit,
            needed = max_message,
            "the registry topic's max.message.bytes is below admin.uploads.max_size plus room for the record: large uploads will be refused when written; raise it"
        );
    }
    Ok(())
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
