//! The Kafka pipeline behind `bandpass serve`: consume the alert topics
//! in a consumer group, decode each message once, run every filter on
//! it, and produce each accepted alert's original bytes to that filter's
//! output topic; undecodable messages go to the dead-letter topic.
//!
//! At-least-once: auto offset storing is off. A message's offset is
//! stored (and then committed by librdkafka's periodic auto-commit) only
//! when every produce it caused, and every produce caused by every
//! earlier message of its partition, has been acknowledged by the
//! broker. A crash therefore re-delivers work (duplicates are possible)
//! but never skips an accepted alert. Producer retries are unbounded
//! (`message.timeout.ms = 0`), so a broker outage stalls the stream
//! instead of dropping messages.
//!
//! Must never: store an offset ahead of an unacknowledged produce, stop
//! or loop on one bad message, or let a filter's failure stop the loop.
//!
//! This first version runs filters on the consuming thread; the worker
//! pool, rebalance draining, exactly-once and the registry client are
//! the next steps of issue 3.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::config::{Config, Framing, StartPosition};
use crate::decode::SchemaSource;
use crate::runner::Runner;
use crate::sandbox::{Evaluation, LoadedFilter, Outcome, Sandbox, Verdict};

/// Which message a produce belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Source {
    topic: String,
    partition: i32,
    offset: i64,
}

/// Outstanding produces per consumed message, per partition.
#[derive(Debug, Default)]
struct Tracker {
    partitions: HashMap<(String, i32), Partition>,
    /// Produces the broker refused for good (counted, logged).
    failed: u64,
}

#[derive(Debug, Default)]
struct Partition {
    /// Offset of a consumed message -> produces not yet acknowledged.
    pending: BTreeMap<i64, u32>,
    /// The highest offset consumed so far.
    highest: Option<i64>,
    /// The last offset stored.
    stored: Option<i64>,
}

impl Tracker {
    /// Records a consumed message and how many produces it caused.
    fn begin(&mut self, source: &Source, produces: u32) {
        let p = self
            .partitions
            .entry((source.topic.clone(), source.partition))
            .or_default();
        p.highest = Some(p.highest.map_or(source.offset, |h| h.max(source.offset)));
        if produces > 0 {
            p.pending.insert(source.offset, produces);
        }
    }

    /// Records one acknowledged produce.
    fn ack(&mut self, source: &Source) {
        if let Some(p) = self
            .partitions
            .get_mut(&(source.topic.clone(), source.partition))
            && let Some(n) = p.pending.get_mut(&source.offset)
        {
            *n -= 1;
            if *n == 0 {
                p.pending.remove(&source.offset);
            }
        }
    }

    /// Offsets that may be stored now: per partition, the highest
    /// offset with no unacknowledged produce at or before it.
    fn storable(&mut self) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for ((topic, partition), p) in &mut self.partitions {
            let Some(highest) = p.highest else { continue };
            let safe = match p.pending.keys().next() {
                Some(&first) => first - 1,
                None => highest,
            };
            if safe >= 0 && p.stored.is_none_or(|s| safe > s) {
                p.stored = Some(safe);
                out.push((topic.clone(), *partition, safe));
            }
        }
        out
    }

    fn outstanding(&self) -> usize {
        self.partitions.values().map(|p| p.pending.len()).sum()
    }
}

/// The producer's context: acknowledgements update the tracker.
struct Acks {
    tracker: Arc<Mutex<Tracker>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<Source>;

    fn delivery(&self, result: &DeliveryResult<'_>, source: Box<Source>) {
        let mut tracker = self.tracker.lock().unwrap();
        if let Err((err, message)) = result {
            // Unbounded retries make this a permanent refusal (e.g. a
            // message over the topic's size limit): counted and logged.
            tracker.failed += 1;
            tracing::error!(
                topic = message.topic(),
                error = %err,
                source_topic = %source.topic,
                source_partition = source.partition,
                source_offset = source.offset,
                "the broker refused a produce for good"
            );
        }
        tracker.ack(&source);
    }
}

/// The consumer's context: logs each rebalance (operators and tests read
/// which partitions an instance owns).
struct Rebalances;

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let list = |tpl: &TopicPartitionList| {
            tpl.elements()
                .iter()
                .map(|e| format!("{}/{}", e.topic(), e.partition()))
                .collect::<Vec<_>>()
                .join(",")
        };
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = %list(tpl), "partitions assigned")
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(partitions = %list(tpl), "partitions revoked")
            }
            Rebalance::Error(err) => tracing::warn!(error = %err, "rebalance failed"),
        }
    }
}

/// One filter as deployed: its instance settings and output topic.
pub struct Deployment {
    pub filter: Arc<LoadedFilter>,
    pub output_topic: String,
}

/// Loads the filters a config names (paths relative to the config file).
pub fn load_filters(
    config: &Config,
    config_dir: &Path,
    sandbox: &Sandbox,
) -> anyhow::Result<Vec<Deployment>> {
    let mut out = Vec::new();
    for f in config.filters.iter().filter(|f| !f.disabled) {
        let path = config_dir.join(&f.path);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read filter {}", path.display()))?;
        let limits = f.limits.unwrap_or(config.engine.limits).to_limits();
        let params = f.params.clone().into_iter().collect();
        let filter = sandbox
            .load(&bytes, params, limits)
            .with_context(|| format!("filter {} refused", path.display()))?;
        out.push(Deployment {
            filter,
            output_topic: f.output_topic.clone(),
        });
    }
    Ok(out)
}

fn client_config(config: &Config) -> ClientConfig {
    let k = &config.kafka;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", k.brokers.join(","));
    c.set("security.protocol", &k.security_protocol);
    if let Some(m) = &k.sasl_mechanism {
        c.set("sasl.mechanism", m);
    }
    if let Some(u) = &k.sasl_username {
        c.set("sasl.username", u);
    }
    if let Some(p) = &k.sasl_password {
        c.set("sasl.password", p);
    }
    if let Some(ca) = &k.ssl_ca_location {
        c.set("ssl.ca.location", ca.display().to_string());
    }
    c
}

/// Runs the pipeline until `stop` is set, then drains, commits and
/// returns.
pub fn serve(
    config: &Config,
    deployments: Vec<Deployment>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let mut consumer_config = client_config(config);
    consumer_config
        .set("group.id", &config.input.group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set(
            "auto.offset.reset",
            match config.input.start {
                StartPosition::Earliest | StartPosition::TimestampMs(_) => "earliest",
                StartPosition::Latest => "latest",
            },
        );
    let mut producer_config = client_config(config);
    producer_config
        .set("message.timeout.ms", "0")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    for (k, v) in &config.kafka.librdkafka {
        consumer_config.set(k, v);
        producer_config.set(k, v);
    }
    let consumer: BaseConsumer<Rebalances> = consumer_config
        .create_with_context(Rebalances)
        .context("creating the Kafka consumer")?;
    let producer: ThreadedProducer<Acks> = producer_config
        .create_with_context(Acks {
            tracker: tracker.clone(),
        })
        .context("creating the Kafka producer")?;
    let topics: Vec<&str> = config.input.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .with_context(|| format!("subscribing to {}", topics.join(", ")))?;
    if let StartPosition::TimestampMs(ms) = config.input.start {
        tracing::info!(
            ms,
            "rewinding by timestamp happens on assignment (next step); reading from earliest"
        );
    }

    let filters: Vec<Arc<LoadedFilter>> = deployments.iter().map(|d| d.filter.clone()).collect();
    let schemas = config
        .schemas
        .dir
        .clone()
        .map(SchemaSource::Dir)
        .unwrap_or_default();
    let mut runner = Runner::new(&filters, schemas);
    let mut last_store = Instant::now();
    tracing::info!(topics = %topics.join(","), filters = filters.len(), "serving");

    while !stop.load(Ordering::Relaxed) {
        if let Some(result) = consumer.poll(Duration::from_millis(100)) {
            let message = match result {
                Ok(m) => m,
                Err(err) => {
                    tracing::warn!(error = %err, "consumer error; continuing");
                    continue;
                }
            };
            let source = Source {
                topic: message.topic().to_string(),
                partition: message.partition(),
                offset: message.offset(),
            };
            let payload = Bytes::copy_from_slice(message.payload().unwrap_or(&[]));
            let produces = route(
                &mut runner,
                &deployments,
                config,
                &producer,
                &source,
                payload,
            );
            tracker.lock().unwrap().begin(&source, produces);
        }
        if last_store.elapsed() > Duration::from_millis(200) {
            store(&consumer, &tracker);
            last_store = Instant::now();
        }
    }

    // Drain: every produce acknowledged, offsets stored and committed.
    tracing::info!("stopping: draining produces and committing");
    let _ = producer.flush(Duration::from_secs(30));
    store(&consumer, &tracker);
    match consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last automatic commit.
        Err(err)
            if err.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::NoOffset) => {}
        Err(err) => {
            tracing::warn!(error = %err, "final commit failed; the next start re-reads from the last commit")
        }
        Ok(()) => {}
    }
    let outstanding = tracker.lock().unwrap().outstanding();
    if outstanding > 0 {
        anyhow::bail!(
            "{outstanding} messages still had unacknowledged produces after 30 s; their offsets were not committed"
        );
    }
    Ok(())
}

/// Stores every offset the tracker says is safe.
fn store(consumer: &BaseConsumer<Rebalances>, tracker: &Mutex<Tracker>) {
    let storable = tracker.lock().unwrap().storable();
    if storable.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in &storable {
        // The next offset to read is the one after the last finished.
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1));
    }
    if let Err(err) = consumer.store_offsets(&tpl) {
        // A partition revoked meanwhile: its new owner re-reads from the
        // last commit (at-least-once).
        tracing::debug!(error = %err, "storing offsets");
    }
}

/// Decodes and filters one message and produces what it caused; returns
/// how many produces were queued.
fn route(
    runner: &mut Runner,
    deployments: &[Deployment],
    config: &Config,
    producer: &ThreadedProducer<Acks>,
    source: &Source,
    payload: Bytes,
) -> u32 {
    let framed = match config.input.framing {
        Framing::Auto => Ok(()),
        Framing::Container if payload.starts_with(b"Obj\x01") => Ok(()),
        Framing::Confluent if payload.first() == Some(&0) => Ok(()),
        Framing::Container => {
            Err("input.framing is \"container\" but the message is not an Avro container file")
        }
        Framing::Confluent => {
            Err("input.framing is \"confluent\" but the message does not start with 0x00")
        }
    };
    let results = match framed
        .map_err(str::to_string)
        .and_then(|()| runner.process(&payload).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(error) => {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "bandpass-error",
                    value: Some(&error),
                })
                .insert(Header {
                    key: "bandpass-source-topic",
                    value: Some(&source.topic),
                })
                .insert(Header {
                    key: "bandpass-source-partition",
                    value: Some(&source.partition.to_string()),
                })
                .insert(Header {
                    key: "bandpass-source-offset",
                    value: Some(&source.offset.to_string()),
                });
            tracing::debug!(topic = %source.topic, partition = source.partition, offset = source.offset, %error, "undecodable message to the dead-letter topic");
            send(
                producer,
                &config.dead_letter_topic,
                &payload,
                headers,
                source,
            );
            return 1;
        }
    };
    let mut produces = 0;
    for result in results {
        for (deployment, evaluation) in deployments.iter().zip(&result.evaluations) {
            if let Some(headers) = accepted_headers(&deployment.filter, evaluation) {
                send(
                    producer,
                    &deployment.output_topic,
                    &result.alert.raw,
                    headers,
                    source,
                );
                produces += 1;
            }
        }
    }
    produces
}

/// The headers of an accepted alert, or `None` when not accepted.
fn accepted_headers(filter: &LoadedFilter, evaluation: &Evaluation) -> Option<OwnedHeaders> {
    let Outcome::Verdict(Verdict::Accept {
        score,
        tags,
        annotations,
    }) = &evaluation.outcome
    else {
        return None;
    };
    let mut headers = OwnedHeaders::new()
        .insert(Header {
            key: "bandpass-filter",
            value: Some(&filter.name),
        })
        .insert(Header {
            key: "bandpass-filter-version",
            value: Some(&filter.manifest.version),
        });
    if let Some(score) = score {
        headers = headers.insert(Header {
            key: "bandpass-score",
            value: Some(&score.to_string()),
        });
    }
    if !tags.is_empty() {
        headers = headers.insert(Header {
            key: "bandpass-tags",
            value: Some(&tags.join(",")),
        });
    }
    for (k, v) in annotations {
        headers = headers.insert(Header {
            key: &format!("bandpass-note-{k}"),
            value: Some(v),
        });
    }
    Some(headers)
}

/// Queues one produce, waiting while the producer's queue is full
/// (backpressure instead of an unbounded queue).
fn send(
    producer: &ThreadedProducer<Acks>,
    topic: &str,
    payload: &[u8],
    headers: OwnedHeaders,
    source: &Source,
) {
    let mut record: BaseRecord<'_, [u8], [u8], Box<Source>> =
        BaseRecord::with_opaque_to(topic, Box::new(source.clone()))
            .payload(payload)
            .headers(headers);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((err, back)) => {
                if !matches!(
                    err.rdkafka_error_code(),
                    Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                ) {
                    tracing::error!(%topic, error = %err, "a produce could not be queued; retrying");
                }
                record = back;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(offset: i64) -> Source {
        Source {
            topic: "alerts".into(),
            partition: 0,
            offset,
        }
    }

    #[test]
    fn an_offset_is_stored_only_when_it_and_every_earlier_message_are_acknowledged() {
        let mut t = Tracker::default();
        t.begin(&source(0), 2);
        t.begin(&source(1), 0);
        t.begin(&source(2), 1);
        assert!(
            t.storable().is_empty(),
            "offset 0 still has two produces out"
        );
        t.ack(&source(2));
        assert!(t.storable().is_empty(), "offset 2 is done but 0 is not");
        t.ack(&source(0));
        assert!(
            t.storable().is_empty(),
            "one of offset 0's produces is still out"
        );
        t.ack(&source(0));
        assert_eq!(t.storable(), [("alerts".to_string(), 0, 2)]);
        assert!(t.storable().is_empty(), "nothing new to store");
        t.begin(&source(3), 0);
        assert_eq!(t.storable(), [("alerts".to_string(), 0, 3)]);
    }
}
