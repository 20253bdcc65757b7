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

pub mod offsets;
pub mod produce;
pub mod tracker;
pub mod workers;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::Producer as _;

use crate::config::{Config, Delivery, Framing, StartPosition};
use crate::decode::{Decoder, SchemaSource};
use crate::kafka::{Role, client_config};
use crate::metrics::Metrics;
use crate::runner::Runner;
use crate::sandbox::{Limits, LoadedFilter, Sandbox};
use offsets::{Rebalances, TXN_INTERVAL};
use produce::{Acks, Producer};
use tracker::{Source, Tracker};
pub use workers::Deployment;
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
    /// An error raised in a callback, for the consuming thread to return.
    failure: Mutex<Option<String>>,
    /// What `/metrics` and `/readyz` report.
    pub metrics: Arc<Metrics>,
    /// The filters every worker runs; replaced whole when the set
    /// changes, and read by each worker between two messages.
    filters: Mutex<Arc<FilterSet>>,
    /// The generation of `filters`, checked by workers without the lock.
    generation: AtomicU64,
    /// Where wire-format schemas come from, for each set's decoder.
    schemas: SchemaSource,
}

/// One version of the set of deployed filters, with a decoder made for
/// exactly their fields.
pub struct FilterSet {
    pub generation: u64,
    pub deployments: Vec<Deployment>,
    pub decoder: Arc<Decoder>,
}

impl FilterSet {
    fn new(generation: u64, deployments: Vec<Deployment>, schemas: SchemaSource) -> FilterSet {
        let decoder = Runner::decoder_for(&FilterSet::loaded(&deployments), schemas);
        FilterSet {
            generation,
            deployments,
            decoder,
        }
    }

    fn loaded(deployments: &[Deployment]) -> Vec<Arc<LoadedFilter>> {
        deployments.iter().map(|d| d.filter.clone()).collect()
    }

    /// The loaded filters, in deployment order.
    pub fn filters(&self) -> Vec<Arc<LoadedFilter>> {
        FilterSet::loaded(&self.deployments)
    }
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
    pub fn publish(&self, deployments: Vec<Deployment>) {
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
        ));
        self.generation.store(generation, Ordering::Release);
        tracing::info!(generation, filters = %names.join(", "), "filter set replaced");
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.abandon.load(Ordering::Relaxed)
    }

    /// Records an error raised where it cannot be returned; the
    /// consuming thread stops with it.
    pub fn fail(&self, message: String) {
        tracing::error!("{message}");
        self.failure.lock().unwrap().get_or_insert(message);
    }
}

/// Loads the filters a config names (paths relative to the config file).
/// A filter of `running` with the same component bytes, parameters and
/// limits is reused as it is (its live instances and health carry on),
/// unless it is quarantined: reloading is how an operator gives a
/// quarantined filter another chance. The others are loaded anew.
pub fn load_filters(
    config: &Config,
    config_dir: &Path,
    sandbox: &Sandbox,
    running: &[Deployment],
) -> anyhow::Result<Vec<Deployment>> {
    let mut out = Vec::new();
    for (i, f) in config
        .filters
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.disabled)
    {
        let path = config_dir.join(&f.path);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read filter {}", path.display()))?;
        let limits = f.limits.unwrap_or(config.engine.limits).to_limits();
        let params: Vec<(String, String)> = f.params.clone().into_iter().collect();
        let key = deployment_key(&crate::sandbox::sha256_hex(&bytes), &params, &limits);
        // Each running filter serves one deployment at most: two entries
        // with the same component and parameters keep separate health.
        let reusable = running.iter().find(|d| {
            d.key == key
                && d.filter.health.quarantined().is_none()
                && !out
                    .iter()
                    .any(|o: &Deployment| Arc::ptr_eq(&o.filter, &d.filter))
        });
        let filter = match reusable {
            Some(d) => d.filter.clone(),
            None => sandbox
                .load(&bytes, params, limits)
                .with_context(|| format!("filter {} refused", path.display()))?,
        };
        let name = f.name.clone().unwrap_or_else(|| filter.name.clone());
        if out.iter().any(|d| d.name == name) {
            anyhow::bail!(
                "filter[{i}] ({}) is named '{name}' like an earlier filter: give one of them \
                 its own `name = \"...\"` (headers and metrics tell deployments apart by name)",
                path.display()
            );
        }
        out.push(Deployment {
            filter,
            name,
            output_topic: f.output_topic.clone(),
            key,
        });
    }
    Ok(out)
}

/// What makes two deployments able to share one loaded filter: the
/// component's sha256, its parameters and its limits.
pub fn deployment_key(sha256: &str, params: &[(String, String)], limits: &Limits) -> String {
    format!("{sha256} {params:?} {limits:?}")
}

/// Where the running filter set comes from: the config file's filters
/// (replaced on SIGHUP) and the uploaded ones (replaced when the fleet
/// registry changes). Either change hands the whole set to the pipeline,
/// numbered, and the pipeline counts the sets it has published, so that
/// a change can wait until it runs.
pub struct Sources {
    pub config: Vec<Deployment>,
    pub uploaded: Vec<Deployment>,
    sets: Sender<(u64, Vec<Deployment>)>,
    sent: u64,
    published: Arc<AtomicU64>,
}

/// The pipeline's end of [`Sources`].
pub struct Updates {
    sets: Receiver<(u64, Vec<Deployment>)>,
    /// The number of the latest set published.
    published: Arc<AtomicU64>,
}

impl Sources {
    pub fn new(config: Vec<Deployment>) -> (Sources, Updates) {
        let (sets, receiver) = std::sync::mpsc::channel();
        let published = Arc::new(AtomicU64::new(0));
        let sources = Sources {
            config,
            uploaded: Vec::new(),
            sets,
            sent: 0,
            published: published.clone(),
        };
        (
            sources,
            Updates {
                sets: receiver,
                published,
            },
        )
    }

    /// The whole set: the config's filters, then the uploaded ones.
    pub fn all(&self) -> Vec<Deployment> {
        self.config.iter().chain(&self.uploaded).cloned().collect()
    }

    /// The set to start the pipeline with. Sets sent before it (queued
    /// already) are older: the pipeline counts them published, unused.
    pub fn initial(&self) -> Vec<Deployment> {
        self.published.store(self.sent, Ordering::Release);
        self.all()
    }

    /// Replaces the config's filters; returns the set's number.
    pub fn set_config(&mut self, deployments: Vec<Deployment>) -> u64 {
        self.config = deployments;
        self.send()
    }

    /// Replaces the uploaded filters; returns the set's number.
    pub fn set_uploaded(&mut self, deployments: Vec<Deployment>) -> u64 {
        self.uploaded = deployments;
        self.send()
    }

    /// The number of the latest set the pipeline has published: set `n`
    /// runs once this is at least `n`.
    pub fn published(&self) -> Arc<AtomicU64> {
        self.published.clone()
    }

    fn send(&mut self) -> u64 {
        self.sent += 1;
        let _ = self.sets.send((self.sent, self.all()));
        self.sent
    }
}

/// What the status page and the quarantine gauge follow of each
/// deployment.
pub fn describe(
    deployments: &[Deployment],
) -> Vec<(crate::metrics::FilterInfo, Arc<LoadedFilter>)> {
    deployments
        .iter()
        .map(|d| {
            let info = crate::metrics::FilterInfo {
                name: d.name.clone(),
                version: d.filter.manifest.version.clone(),
                survey: d.filter.manifest.survey.clone(),
                output_topic: d.output_topic.clone(),
            };
            (info, d.filter.clone())
        })
        .collect()
}

/// Runs the pipeline until `stop` is set, then drains, commits and
/// returns. Each filter set received from [`Sources`] replaces the
/// running one without a pause (see [`Flow::publish`]).
pub fn serve(
    config: &Config,
    deployments: Vec<Deployment>,
    stop: Arc<AtomicBool>,
    updates: Updates,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let exactly_once = config.delivery == Delivery::ExactlyOnce;
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let consumer_config = client_config(config, Role::Consumer);
    if let Some(id) = consumer_config.get("group.instance.id") {
        tracing::info!(group_instance_id = %id, "static group membership");
    }
    let producer_config = client_config(config, Role::Producer);
    if let Some(id) = producer_config.get("transactional.id") {
        tracing::info!(transactional_id = %id, "exactly-once delivery");
    }
    metrics.describe_filters(describe(&deployments));
    let producer: Producer = producer_config
        .create_with_context(Acks {
            tracker: tracker.clone(),
            metrics: metrics.clone(),
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
        failure: Mutex::new(None),
        metrics,
        filters: Mutex::new(Arc::new(FilterSet::new(
            0,
            deployments,
            config.schemas.source(),
        ))),
        generation: AtomicU64::new(0),
        schemas: config.schemas.source(),
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
    tracing::info!("stopping: finishing in-flight alerts and committing");
    let deadline = Instant::now() + SHUTDOWN_GRACE;
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
            "the Kafka clients did not close within {CLOSE_GRACE:?} (broker unreachable?); exiting anyway: the group notices this instance is gone after session.timeout.ms"
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
    while !flow.stop.load(Ordering::Relaxed) {
        if let Ok((seq, deployments)) = updates.sets.try_recv()
            && seq > updates.published.load(Ordering::Acquire)
        {
            flow.publish(deployments);
            updates.published.store(seq, Ordering::Release);
        }
        if let Some(failure) = flow.failure.lock().unwrap().take() {
            anyhow::bail!(failure);
        }
        if let Some(result) = consumer.poll(Duration::from_millis(50)) {
            match result {
                Ok(message) => {
                    let source = Source {
                        topic: message.topic().to_string(),
                        partition: message.partition(),
                        offset: message.offset(),
                    };
                    let payload = Bytes::copy_from_slice(message.payload().unwrap_or(&[]));
                    let key = message.key().map(Bytes::copy_from_slice);
                    flow.metrics.consumed();
                    flow.tracker.lock().unwrap().begin(&source);
                    pool.dispatch(Job {
                        source,
                        key,
                        payload,
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
    }
    Ok(())
}
