//! The Kafka pipeline behind `bandpass serve`: consume the alert topics
//! in a consumer group, decode each message once, run every filter on
//! it, and produce each accepted alert's original bytes to that filter's
//! output topic; undecodable messages go to the dead-letter topic.
//!
//! Threads: the consuming thread polls and hands each message to a
//! worker ([`workers`]: a bounded pool, one wasm Store per filter per
//! worker, one partition always on the same worker). Workers decode,
//! filter and queue produces on the shared producer; the producer's
//! delivery reports release [`tracker`] tokens. The consuming thread
//! commits what is done ([`offsets`]).
//!
//! Delivery: at-least-once by default (the rule is in [`tracker`]: an
//! offset is stored only when every produce of its message and of every
//! earlier message of its partition is acknowledged; producer retries
//! are unbounded, so a broker outage stalls the stream instead of
//! dropping alerts). Exactly-once on request: Kafka transactions that
//! carry the outputs and the consumed offsets together.
//!
//! Must never: store an offset ahead of unfinished work, stop or loop on
//! one bad message, or let a filter's failure stop the stream.

pub mod changelog;
pub mod offsets;
pub mod produce;
pub mod tracker;
pub mod workers;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::Producer as _;

use crate::config::{Config, Delivery, Framing, StartPosition};
use crate::decode::SchemaSource;
use crate::deploy::{Deployment, FilterSet, Updates, describe};
use crate::kafka::{Role, client_config};
use crate::metrics::Metrics;
use changelog::Changelog;
use offsets::{Rebalances, TXN_INTERVAL};
use produce::{Acks, Producer};
use tracker::{Consumed, Tracker};
use workers::{Job, Pool};

/// How long a shutdown waits for in-flight work before giving it up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long closing the Kafka clients may take at exit.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// How often safe offsets are stored (at-least-once).
const STORE_INTERVAL: Duration = Duration::from_millis(200);

/// What the consuming thread, the workers and the Kafka callbacks share.
pub struct Flow {
    pub tracker: Arc<Mutex<Tracker>>,
    pub producer: Producer,
    pub dead_letter_topic: String,
    pub framing: Framing,
    pub start: StartPosition,
    pub exactly_once: bool,
    /// Set by SIGINT/SIGTERM.
    pub stop: Arc<AtomicBool>,
    /// Set when a shutdown's grace has passed: workers stop queueing.
    pub abandon: AtomicBool,
    /// An error raised in a callback, for the consuming thread to return
    /// (shared with the producer's acknowledgements).
    failure: Arc<Mutex<Option<String>>>,
    /// What `/metrics` and `/readyz` report.
    pub metrics: Arc<Metrics>,
    /// The filters every worker runs; replaced whole when the set
    /// changes, and read by each worker between two messages.
    filters: Mutex<Arc<FilterSet>>,
    /// The generation of `filters`, checked by workers without the lock.
    generation: AtomicU64,
    /// Where wire-format schemas come from, for each set's decoder.
    schemas: SchemaSource,
    /// Object memory: the store and its changelog, when the input is
    /// keyed by object.
    pub changelog: Option<Changelog>,
    /// The re-keying stage (`input.rekey`): the topic each message goes
    /// to, keyed by its object id, instead of being filtered.
    pub rekey: Option<String>,
}

impl Flow {
    /// The current filter set.
    pub fn filter_set(&self) -> Arc<FilterSet> {
        self.filters.lock().unwrap().clone()
    }

    /// Whether the filter set changed since `generation`.
    pub fn filters_changed(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Acquire) != generation
    }

    /// Makes `deployments` the filter set. Each worker switches between
    /// two messages: every alert is decided by one whole set, old or new,
    /// and the output headers name the version that decided.
    pub fn publish(&self, deployments: Vec<Deployment>, sky: Arc<crate::sky::Sky>) {
        let mut current = self.filters.lock().unwrap();
        let generation = current.generation + 1;
        let names: Vec<String> = deployments
            .iter()
            .map(|d| format!("{} {}", d.name, d.filter.manifest.version))
            .collect();
        self.metrics.describe_filters(describe(&deployments));
        *current = Arc::new(FilterSet::new(
            generation,
            deployments,
            self.schemas.clone(),
            crate::runner::HostFields {
                kept: current.host.kept.clone(),
                sky,
            },
        ));
        self.generation.store(generation, Ordering::Release);
        tracing::info!(generation, filters = %names.join(", "), "filter set replaced");
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.abandon.load(Ordering::Relaxed)
    }

    /// Whether an error was recorded: serve is stopping with it, and
    /// commits nothing more.
    pub fn failed(&self) -> bool {
        self.failure.lock().unwrap().is_some()
    }

    /// Records an error raised where it cannot be returned; the
    /// consuming thread stops with it.
    pub fn fail(&self, message: String) {
        tracing::error!("{message}");
        self.failure.lock().unwrap().get_or_insert(message);
    }
}

/// Runs the pipeline until `stop` is set, then drains, commits and
/// returns. Each filter set received from [`crate::deploy::Desired`] replaces the
/// running one without a pause (see [`Flow::publish`]).
///
/// With `input.rekey`, two stages run: a first one (a thread of its own,
/// its own consumer group, producer and transactions) copies each input
/// message, keyed by its object id, to the re-key topic; the filters read
/// that topic as if it were the input.
pub fn serve(
    config: &Config,
    deployments: Vec<Deployment>,
    stop: Arc<AtomicBool>,
    updates: Updates,
    metrics: Arc<Metrics>,
    sky: Arc<crate::sky::Sky>,
) -> anyhow::Result<()> {
    if !config.input.rekey {
        return run_stage(config, deployments, stop, updates, metrics, sky, None);
    }
    let (first, second) = rekey_stages(config)?;
    let (done, rekeyed) = std::sync::mpsc::channel();
    {
        let stop = stop.clone();
        let topic = config.rekey_topic();
        // The first stage counts into the same metrics (consumed, dead
        // letters, produced); its consumer's statistics are off, so that
        // readiness and lag are the filtering stage's.
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name("bandpass-rekey".into())
            .spawn(move || {
                let (_, updates) = crate::deploy::Desired::new(Vec::new(), Default::default());
                let result = run_stage(
                    &first,
                    Vec::new(),
                    stop.clone(),
                    updates,
                    metrics,
                    Default::default(),
                    Some(topic),
                );
                // Without its first stage the second would wait for ever.
                stop.store(true, Ordering::Relaxed);
                let _ = done.send(result);
            })
            .context("starting the re-keying thread")?;
    }
    let filtered = run_stage(
        &second,
        deployments,
        stop.clone(),
        updates,
        metrics,
        sky,
        None,
    );
    stop.store(true, Ordering::Relaxed);
    // Bounded: a stage stuck in a client call (a broker gone mid-commit)
    // must not keep the process from exiting; it resumes from its last
    // commit at the next start.
    let wait = SHUTDOWN_GRACE + CLOSE_GRACE * 2;
    match rekeyed.recv_timeout(wait) {
        Ok(result) => result.context("re-keying the input by object id (input.rekey)")?,
        Err(_) => anyhow::bail!(
            "the re-keying stage did not stop within {wait:?} (a broker call that does not \
             return?); exiting anyway: it resumes from its last commit"
        ),
    }
    filtered
}

/// The configs of the two stages of `input.rekey`: the first reads the
/// input in `<group>.bandpass-rekey` with its own transactional id and
/// runs no filter; the second reads the re-key topic (created with the
/// input's partition count) from its start, keyed by object.
fn rekey_stages(config: &Config) -> anyhow::Result<(Config, Config)> {
    let topic = config.rekey_topic();
    let partitions = changelog::input_partitions(config).max(1);
    crate::kafka::ensure_topic(
        config,
        &crate::kafka::Internal {
            topic: &topic,
            compacted: false,
            partitions,
            max_message: None,
            what: "re-key topic",
            lost: "",
            key: "input.group",
        },
    )?;
    let mut first = config.clone();
    first.input.group = format!("{}.bandpass-rekey", config.input.group);
    first.input.rekey = false;
    first.filters.clear();
    first.kafka.transactional_id =
        Some(format!("{}-rekey", crate::kafka::transactional_id(config)));
    let mut second = config.clone();
    // The re-key topic is written, so it is on the output cluster, where
    // the second stage reads it.
    second.kafka = crate::kafka::Cluster::Output.settings(config).clone();
    second.kafka.transactional_id = config.kafka.transactional_id.clone();
    second.output.kafka = None;
    second.input.topics = vec![topic];
    second.input.start = StartPosition::Earliest;
    second.input.rekey = false;
    second.input.keyed_by = Some(crate::config::KeyedBy::Object);
    Ok((first, second))
}

/// One stage of the pipeline (see [`serve`]).
fn run_stage(
    config: &Config,
    deployments: Vec<Deployment>,
    stop: Arc<AtomicBool>,
    updates: Updates,
    metrics: Arc<Metrics>,
    sky: Arc<crate::sky::Sky>,
    rekey: Option<String>,
) -> anyhow::Result<()> {
    let exactly_once = config.delivery == Delivery::ExactlyOnce;
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let mut consumer_config = client_config(config, Role::Consumer);
    if rekey.is_some() {
        consumer_config.set("statistics.interval.ms", "0");
    }
    if let Some(id) = consumer_config.get("group.instance.id") {
        tracing::info!(group_instance_id = %id, "static group membership");
    }
    let producer_config = client_config(config, Role::Producer);
    if let Some(id) = producer_config.get("transactional.id") {
        tracing::info!(transactional_id = %id, "exactly-once delivery");
    }
    metrics.describe_filters(describe(&deployments));
    let changelog = if config.remembers_objects() {
        metrics.memory_on();
        Some(Changelog::start(config)?)
    } else {
        None
    };
    let failure = Arc::new(Mutex::new(None));
    let producer: Producer = producer_config
        .create_with_context(Acks {
            tracker: tracker.clone(),
            metrics: metrics.clone(),
            changelog: changelog.as_ref().map(|c| c.topic.clone()),
            failure: failure.clone(),
        })
        .context("creating the Kafka producer")?;
    if exactly_once {
        producer
            .init_transactions(Duration::from_secs(60))
            .context("initialising Kafka transactions (delivery = \"exactly-once\")")?;
        producer
            .begin_transaction()
            .context("opening the first transaction")?;
    }
    let flow = Arc::new(Flow {
        tracker,
        producer,
        dead_letter_topic: config.dead_letter_topic.clone(),
        framing: config.input.framing,
        start: config.input.start.clone(),
        exactly_once,
        stop: stop.clone(),
        abandon: AtomicBool::new(false),
        failure,
        metrics,
        filters: Mutex::new(Arc::new(FilterSet::new(
            0,
            deployments,
            config.schemas.source(),
            crate::runner::HostFields {
                kept: config.kept_history(),
                sky,
            },
        ))),
        generation: AtomicU64::new(0),
        schemas: config.schemas.source(),
        changelog,
        rekey,
    });
    let consumer: BaseConsumer<Rebalances> = consumer_config
        .create_with_context(Rebalances { flow: flow.clone() })
        .context("creating the Kafka consumer")?;
    let topics: Vec<&str> = config.input.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .with_context(|| format!("subscribing to {}", topics.join(", ")))?;

    let pool =
        Pool::start(config.engine.workers, flow.clone()).context("starting the worker threads")?;
    tracing::info!(
        topics = %topics.join(","),
        filters = flow.filter_set().deployments.len(),
        workers = config.engine.workers,
        "serving"
    );

    let result = consume(&consumer, &flow, &pool, &updates);
    // Shutdown: stop fetching, let the workers finish (bounded), commit.
    // After a failure nothing more is committed, so nothing is waited for.
    tracing::info!("stopping: finishing in-flight alerts and committing");
    let grace = if result.is_ok() {
        SHUTDOWN_GRACE
    } else {
        Duration::ZERO
    };
    let deadline = Instant::now() + grace;
    let watchdog = {
        let flow = flow.clone();
        std::thread::spawn(move || {
            flow.drain(deadline);
            flow.abandon.store(true, Ordering::Relaxed);
        })
    };
    pool.finish();
    let committed = match &result {
        // After a failure nothing more is committed: the next start
        // resumes from the last commit.
        Err(_) => Ok(()),
        Ok(()) => flow.finish_and_commit(
            &consumer,
            deadline.saturating_duration_since(Instant::now()),
        ),
    };
    let _ = watchdog.join();
    let outstanding = flow.tracker.lock().unwrap().outstanding();
    close(consumer, flow);
    result?;
    committed?;
    if outstanding > 0 {
        anyhow::bail!(
            "{outstanding} messages still had unfinished work after {SHUTDOWN_GRACE:?}; their offsets were not committed"
        );
    }
    Ok(())
}

/// Leaves the group and closes the clients, giving up after
/// [`CLOSE_GRACE`]: librdkafka's close waits for the group coordinator
/// without bound, and an unreachable broker must not keep the process
/// from exiting (seen in the end-to-end benchmark).
fn close(consumer: BaseConsumer<Rebalances>, flow: Arc<Flow>) {
    let (done, closed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(consumer);
        drop(flow);
        let _ = done.send(());
    });
    if closed.recv_timeout(CLOSE_GRACE).is_err() {
        tracing::warn!(
            "the Kafka clients did not close within {CLOSE_GRACE:?} (a broker unreachable, or messages still queued for it); exiting anyway: the group notices this instance is gone after session.timeout.ms"
        );
    }
}

/// The consuming loop: poll, dispatch, commit what is done; until stop.
fn consume(
    consumer: &BaseConsumer<Rebalances>,
    flow: &Flow,
    pool: &Pool,
    updates: &Updates,
) -> anyhow::Result<()> {
    let mut last_commit = Instant::now();
    let mut last_gauge = Instant::now();
    while !flow.stop.load(Ordering::Relaxed) {
        updates.apply(|deployments, sky| flow.publish(deployments, sky));
        // Kept, not taken: after a failure nothing more is committed
        // (see `Flow::failed`).
        if let Some(failure) = flow.failure.lock().unwrap().clone() {
            anyhow::bail!(failure);
        }
        if let Some(result) = consumer.poll(Duration::from_millis(50)) {
            match result {
                Ok(message) => {
                    let source = Consumed {
                        topic: message.topic().to_string(),
                        partition: message.partition(),
                        offset: message.offset(),
                    };
                    let payload = Bytes::copy_from_slice(message.payload().unwrap_or(&[]));
                    let key = message.key().map(Bytes::copy_from_slice);
                    // Re-keying keeps the headers; filtering reads none.
                    let headers = flow
                        .rekey
                        .as_ref()
                        .and_then(|_| message.headers().map(|h| h.detach()));
                    flow.metrics.consumed();
                    flow.tracker.lock().unwrap().begin(&source);
                    pool.dispatch(Job {
                        source,
                        key,
                        payload,
                        headers,
                    })?;
                }
                // A fatal error leaves the consumer unusable (librdkafka
                // says so). Seen in the soak: a static member whose
                // session expired while the broker was down for longer
                // than the session is fenced by its own earlier
                // registration when it rejoins (librdkafka issue 3437).
                // Polling on would hold the group's partitions for good:
                // stop instead, so that the supervisor starts serve
                // again, which resumes from the last commit.
                Err(KafkaError::MessageConsumptionFatal(code)) => anyhow::bail!(
                    "the Kafka consumer hit a fatal error and cannot go on: {code}; \
                     stopping so that serve is started again (it resumes from the last \
                     committed offset; nothing is lost). Either the broker was unreachable \
                     for longer than input.session_timeout, or another instance uses the \
                     same input.instance_id (give each its own)"
                ),
                // Refused for want of an ACL: polling on would stall.
                Err(err) if crate::kafka::is_refusal(&err) => anyhow::bail!(
                    "the input cluster refused serve its alerts ({err}): the principal in \
                     kafka.sasl_username needs Read and Describe on the input topics and Read \
                     on the consumer group input.group (ACLs); stopping"
                ),
                Err(err) => tracing::warn!(error = %err, "consumer error; continuing"),
            }
        }
        if flow.exactly_once {
            if last_commit.elapsed() >= TXN_INTERVAL
                && flow.tracker.lock().unwrap().has_uncommitted()
            {
                flow.commit_transaction(consumer)?;
                last_commit = Instant::now();
            }
        } else if last_commit.elapsed() >= STORE_INTERVAL {
            flow.store(consumer);
            last_commit = Instant::now();
        }
        if let Some(changelog) = &flow.changelog
            && last_gauge.elapsed() >= STORE_INTERVAL
        {
            flow.metrics
                .memory_store(changelog.disk_bytes(), changelog.objects());
            last_gauge = Instant::now();
        }
    }
    Ok(())
}
