//! The worker pool: filters are CPU-bound, so they run on a fixed number
//! of threads, each with its own [`Runner`] (one wasm Store per filter)
//! and all sharing one decoder and its schema cache.
//!
//! Messages go to a worker chosen by their partition, so one partition's
//! messages are processed, and their accepted alerts produced, in order.
//! Each worker's queue is bounded: when it is full the consuming thread
//! waits, and the consumer stops fetching (backpressure, not memory).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::message::OwnedHeaders;

use super::Flow;
use super::produce::{Outgoing, Waiter, accepted_headers, dead_letter_headers, send};
use super::tracker::Consumed;
use crate::config::Framing;
use crate::decode::DecodedAlert;
use crate::deploy::FilterSet;
use crate::metrics::FilterMetrics;
use crate::runner::{AlertResult, Runner};

/// Messages waiting per worker.
const QUEUE: usize = 64;

/// Most messages a worker takes at once: what is already waiting in its
/// queue, never waited for, so a batch adds no latency at low rates. The
/// filters run over a batch filter by filter (see
/// [`Runner::evaluate_batch`]).
const BATCH: usize = 32;

/// How long an idle worker waits for a message before it switches to a
/// new filter set anyway: a removed filter's instances (for Python, an
/// interpreter per worker) go within this even when no alert comes.
const IDLE_SWITCH: Duration = Duration::from_secs(1);

/// One consumed message.
pub struct Job {
    pub source: Consumed,
    pub key: Option<Bytes>,
    pub payload: Bytes,
    /// The message's headers, kept only by the re-keying stage.
    pub headers: Option<OwnedHeaders>,
}

pub struct Pool {
    queues: Vec<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    pub fn start(workers: usize, flow: Arc<Flow>) -> std::io::Result<Pool> {
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for i in 0..workers {
            let (tx, rx) = sync_channel::<Job>(QUEUE);
            let flow = flow.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("bandpass-worker-{i}"))
                    .spawn(move || work(rx, &flow, i, workers))?,
            );
            queues.push(tx);
        }
        Ok(Pool { queues, threads })
    }

    /// Hands a message to its partition's worker, waiting while that
    /// worker's queue is full. Fails only if the worker is gone.
    pub fn dispatch(&self, job: Job) -> anyhow::Result<()> {
        let worker = job.source.partition.unsigned_abs() as usize % self.queues.len();
        self.queues[worker]
            .send(job)
            .map_err(|_| anyhow::anyhow!("worker {worker} stopped unexpectedly"))
    }

    /// Closes the queues and waits until every worker has finished what
    /// it was given.
    pub fn finish(self) {
        drop(self.queues);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// A worker (`worker` of `workers`): runs the current filter set on each
/// message it is given, switching to a new set between two messages
/// (never within one), or after [`IDLE_SWITCH`] without one.
fn work(jobs: Receiver<Job>, flow: &Flow, worker: usize, workers: usize) {
    let counters = |set: &FilterSet| -> Vec<FilterMetrics> {
        set.deployments
            .iter()
            .map(|d| flow.metrics.filter(&d.name))
            .collect()
    };
    // States are kept by deployment name: one component deployed twice
    // keeps two.
    let name = |runner: &mut Runner, set: &FilterSet| {
        runner.name_deployments(set.deployments.iter().map(|d| d.name.clone()).collect());
    };
    let mut set = flow.filter_set();
    let mut runner = Runner::with_decoder(&set.filters(), set.decoder.clone(), set.host.clone());
    runner.spread(worker, workers);
    name(&mut runner, &set);
    if let Some(changelog) = &flow.changelog {
        runner.remember(changelog.handle());
    }
    let mut metrics = counters(&set);
    loop {
        let job = match jobs.recv_timeout(IDLE_SWITCH) {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if flow.filters_changed(set.generation) {
            set = flow.filter_set();
            runner.retarget(&set.filters(), set.decoder.clone(), set.host.clone());
            name(&mut runner, &set);
            metrics = counters(&set);
        }
        let Some(job) = job else { continue };
        // Object memory flows alert by alert, and the re-keying stage
        // runs no filter: one message at a time.
        if runner.remembers() || flow.rekey.is_some() {
            process(&mut runner, &set, &metrics, flow, job);
            continue;
        }
        let mut batch = vec![job];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        process_batch(&mut runner, &set, &metrics, flow, batch);
    }
}

/// [`process`] for several messages of one worker, their alerts run
/// filter by filter; each message's outputs, dead letter and offset are
/// then handled in the messages' order, as one at a time would.
fn process_batch(
    runner: &mut Runner,
    set: &FilterSet,
    metrics: &[FilterMetrics],
    flow: &Flow,
    batch: Vec<Job>,
) {
    // Every message's alerts in one list, and per message how many of
    // them are its own, or what became of it instead.
    let mut alerts: Vec<DecodedAlert> = Vec::new();
    let mut outcomes: Vec<Result<usize, Processed>> = Vec::with_capacity(batch.len());
    for job in &batch {
        outcomes.push(decode(runner, flow, &job.payload).map(|mut a| {
            let n = a.len();
            alerts.append(&mut a);
            n
        }));
    }
    let mut results = runner.evaluate_batch(alerts).into_iter();
    for (job, outcome) in batch.into_iter().zip(outcomes) {
        let processed = match outcome {
            Ok(n) => Processed::Alerts(results.by_ref().take(n).collect()),
            Err(processed) => processed,
        };
        // No object memory here: no store counts to take a difference of.
        deliver(runner, set, metrics, flow, job, processed, (0, 0));
    }
}

/// Decodes and filters one message, queues what it caused, and releases
/// the message's processing token.
fn process(runner: &mut Runner, set: &FilterSet, metrics: &[FilterMetrics], flow: &Flow, job: Job) {
    let before = runner
        .memory()
        .map_or((0, 0), |m| (m.failures().0, m.out_of_order));
    if let Some(memory) = runner.memory_mut() {
        memory.scope_to(&crate::memory::partition_scope(
            &job.source.topic,
            job.source.partition,
        ));
        // At-least-once: records remember the offset applied to them, so
        // that a replay after a crash is not applied twice (under
        // exactly-once a restore holds only committed changes).
        memory.position = (!flow.exactly_once).then_some(job.source.offset);
    }
    let processed = decode_and_filter(runner, flow, &job.payload);
    deliver(runner, set, metrics, flow, job, processed, before);
}

/// Sends what a message's alerts caused (outputs, changelog records, or
/// its dead letter) and releases its processing token.
fn deliver(
    runner: &mut Runner,
    set: &FilterSet,
    metrics: &[FilterMetrics],
    flow: &Flow,
    job: Job,
    processed: Processed,
    (failures_before, late_before): (u64, u64),
) {
    let Job {
        source,
        key,
        payload,
        headers,
    } = job;
    match processed {
        Processed::GaveUp => {
            flow.tracker.lock().unwrap().give_up(&source);
            return;
        }
        Processed::Alerts(results) if flow.rekey.is_some() => {
            rekey(flow, &source, key.as_deref(), &payload, headers, &results);
        }
        Processed::Alerts(_) if runner.memory().and_then(|m| m.broken()).is_some() => {
            // Decided on a store that no longer follows the alerts: not
            // sent, not committed; serve stops, and the next start
            // rebuilds the store from the changelog.
            let why = runner.memory().and_then(|m| m.broken()).unwrap_or_default();
            flow.fail(format!(
                "the object store refused a read or write: {why}. Serve stops so that nothing \
                 decided without the object memory is committed: free or repair the disk of \
                 memory.dir and start serve again (the store is rebuilt from the changelog)"
            ));
        }
        Processed::Alerts(results) => {
            let mut outputs = Vec::new();
            for result in &results {
                for (((deployment, evaluation), counters), sky) in set
                    .deployments
                    .iter()
                    .zip(&result.evaluations)
                    .zip(metrics)
                    .zip(&set.sky_read)
                {
                    flow.metrics.record(counters, evaluation);
                    if let Some(headers) = accepted_headers(
                        &deployment.name,
                        &deployment.filter,
                        evaluation,
                        sky.as_deref(),
                    ) {
                        outputs.push(Outgoing {
                            topic: &deployment.output_topic,
                            partition: None,
                            key: key.as_deref(),
                            payload: Some(&result.alert.raw),
                            headers,
                        });
                    }
                }
            }
            // Object memory: each change goes to the changelog, keyed by
            // its partition's scope and object.
            let changes = runner
                .memory_mut()
                .map(|m| m.take_changes())
                .unwrap_or_default();
            let mut records = Vec::new();
            if let Some(changelog) = &flow.changelog {
                let (failures, late) = runner
                    .memory()
                    .map_or((0, 0), |m| (m.failures().0, m.out_of_order));
                flow.metrics
                    .memory_failures(failures.saturating_sub(failures_before));
                flow.metrics
                    .memory_out_of_order(late.saturating_sub(late_before));
                flow.metrics.memory_changes(changes.len() as u64);
                misrouted(flow, key.as_deref(), &results);
                for change in &changes {
                    records.push(Outgoing {
                        topic: &changelog.topic,
                        partition: Some(changelog.partition_of(source.partition)),
                        key: Some(&change.key),
                        payload: change.value.as_deref(),
                        headers: OwnedHeaders::new(),
                    });
                }
            }
            flow.tracker
                .lock()
                .unwrap()
                .add(&source, (outputs.len() + records.len()) as u32);
            // Exactly-once: one transaction holds them all. At-least-once:
            // the changes wait until the accepted outputs are acknowledged,
            // or a crash between the two could leave a state that says
            // "accepted" for an alert whose output never reached the
            // broker, and its replay would reject it.
            let waiter = (!flow.exactly_once && !outputs.is_empty() && !records.is_empty())
                .then(|| Waiter::new(outputs.len()));
            for out in outputs {
                // Abandoned: every later send would give up too.
                if !send(&flow.producer, out, &source, waiter.as_ref(), &flow.abandon) {
                    break;
                }
            }
            if waiter.is_none_or(|w| w.wait(&flow.abandon)) {
                for out in records {
                    if !send(&flow.producer, out, &source, None, &flow.abandon) {
                        break;
                    }
                }
            }
        }
        Processed::Undecodable(error) => {
            tracing::debug!(topic = %source.topic, partition = source.partition, offset = source.offset, %error, "undecodable message to the dead-letter topic");
            flow.metrics.dead_letter();
            flow.tracker.lock().unwrap().add(&source, 1);
            send(
                &flow.producer,
                Outgoing {
                    topic: &flow.dead_letter_topic,
                    partition: None,
                    key: key.as_deref(),
                    payload: Some(&payload),
                    headers: dead_letter_headers(&error, &source),
                },
                &source,
                None,
                &flow.abandon,
            );
        }
    }
    flow.tracker.lock().unwrap().release(&source);
}

/// The re-keying stage: the message, bytes and headers unchanged, to the
/// re-key topic keyed by its (first) alert's object id; a message whose
/// alert names none keeps its own key. Its offset is stored once the
/// broker has it.
fn rekey(
    flow: &Flow,
    source: &Consumed,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: Option<OwnedHeaders>,
    results: &[AlertResult],
) {
    let Some(topic) = &flow.rekey else { return };
    let object = results.iter().find_map(|r| r.id.object_id.as_deref());
    flow.tracker.lock().unwrap().add(source, 1);
    send(
        &flow.producer,
        Outgoing {
            topic,
            partition: None,
            key: object.map(str::as_bytes).or(key),
            payload: Some(payload),
            headers: headers.unwrap_or_default(),
        },
        source,
        None,
        &flow.abandon,
    );
}

/// Counts (and says once) an alert whose message key is not its object
/// id: `input.keyed_by = "object"` is then untrue, and the object's alerts
/// may reach several partitions, each with its own memory of it.
fn misrouted(flow: &Flow, key: Option<&[u8]>, results: &[AlertResult]) {
    static SAID: std::sync::Once = std::sync::Once::new();
    for result in results {
        let Some(object) = &result.id.object_id else {
            continue;
        };
        if key != Some(object.as_bytes()) {
            flow.metrics.memory_misrouted();
            SAID.call_once(|| {
                tracing::warn!(
                    object = %crate::text::shown(object, 64),
                    key = %crate::text::shown(&String::from_utf8_lossy(key.unwrap_or_default()), 64),
                    "input.keyed_by = \"object\", but a message's key is not its object id: \
                     an object's alerts may then reach several partitions, each remembering \
                     its own part (bandpass_memory_misrouted counts them); key the input by \
                     object id"
                );
            });
        }
    }
}

enum Processed {
    Alerts(Vec<AlertResult>),
    /// To the dead-letter topic, with this error.
    Undecodable(String),
    /// Shutting down while the schema source does not answer.
    GaveUp,
}

fn decode_and_filter(runner: &mut Runner, flow: &Flow, payload: &Bytes) -> Processed {
    match decode(runner, flow, payload) {
        Ok(alerts) => Processed::Alerts(alerts.into_iter().map(|a| runner.evaluate(a)).collect()),
        Err(processed) => processed,
    }
}

/// A message's alerts, or what becomes of a message that gives none.
fn decode(runner: &Runner, flow: &Flow, payload: &Bytes) -> Result<Vec<DecodedAlert>, Processed> {
    let misframed = match flow.framing {
        Framing::Container if !payload.starts_with(b"Obj\x01") => {
            "input.framing is \"container\" but the message is not an Avro container file"
        }
        Framing::Confluent if payload.first() != Some(&0) => {
            "input.framing is \"confluent\" but the message does not start with 0x00"
        }
        _ => "",
    };
    if !misframed.is_empty() {
        return Err(Processed::Undecodable(misframed.into()));
    }
    let mut wait = Duration::from_millis(500);
    loop {
        match runner.decoder().decode(payload) {
            Ok(alerts) => return Ok(alerts),
            // A schema registry that does not answer: the message is
            // fine, so wait for the registry rather than dead-letter it.
            Err(e) if e.is_transient() => {
                if flow.stopping() {
                    return Err(Processed::GaveUp);
                }
                tracing::warn!(error = %e, retry_in = ?wait, "waiting for the schema source");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(Processed::Undecodable(e.to_string())),
        }
    }
}
