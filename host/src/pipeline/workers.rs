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

use super::Flow;
use super::produce::{accepted_headers, dead_letter_headers, send};
use super::tracker::Consumed;
use crate::config::Framing;
use crate::deploy::{Deployment, FilterSet};
use crate::metrics::FilterMetrics;
use crate::runner::{AlertResult, Runner};

/// Messages waiting per worker.
const QUEUE: usize = 64;

/// How long an idle worker waits for a message before it switches to a
/// new filter set anyway: a removed filter's instances (for Python, an
/// interpreter per worker) go within this even when no alert comes.
const IDLE_SWITCH: Duration = Duration::from_secs(1);

/// One consumed message.
pub struct Job {
    pub source: Consumed,
    pub key: Option<Bytes>,
    pub payload: Bytes,
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
                    .spawn(move || work(rx, &flow))?,
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

/// A worker: runs the current filter set on each message it is given,
/// switching to a new set between two messages (never within one), or
/// after [`IDLE_SWITCH`] without one.
fn work(jobs: Receiver<Job>, flow: &Flow) {
    let counters = |set: &FilterSet| -> Vec<FilterMetrics> {
        set.deployments
            .iter()
            .map(|d| flow.metrics.filter(&d.name))
            .collect()
    };
    let mut set = flow.filter_set();
    let mut runner = Runner::with_decoder(&set.filters(), set.decoder.clone());
    let mut metrics = counters(&set);
    loop {
        let job = match jobs.recv_timeout(IDLE_SWITCH) {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if flow.filters_changed(set.generation) {
            set = flow.filter_set();
            runner.retarget(&set.filters(), set.decoder.clone());
            metrics = counters(&set);
        }
        if let Some(job) = job {
            process(&mut runner, &set.deployments, &metrics, flow, job);
        }
    }
}

/// Decodes and filters one message, queues what it caused, and releases
/// the message's processing token.
fn process(
    runner: &mut Runner,
    deployments: &[Deployment],
    metrics: &[FilterMetrics],
    flow: &Flow,
    job: Job,
) {
    let Job {
        source,
        key,
        payload,
    } = job;
    match decode_and_filter(runner, flow, &payload) {
        Processed::GaveUp => {
            flow.tracker.lock().unwrap().give_up(&source);
            return;
        }
        Processed::Alerts(results) => {
            let mut produces = Vec::new();
            for result in &results {
                for ((deployment, evaluation), counters) in
                    deployments.iter().zip(&result.evaluations).zip(metrics)
                {
                    flow.metrics.record(counters, evaluation);
                    if let Some(headers) =
                        accepted_headers(&deployment.name, &deployment.filter, evaluation)
                    {
                        produces.push((&deployment.output_topic, &result.alert.raw, headers));
                    }
                }
            }
            flow.tracker
                .lock()
                .unwrap()
                .add(&source, produces.len() as u32);
            for (topic, raw, headers) in produces {
                // Abandoned: every later send would give up too.
                if !send(
                    &flow.producer,
                    topic,
                    key.as_deref(),
                    raw,
                    headers,
                    &source,
                    &flow.abandon,
                ) {
                    break;
                }
            }
        }
        Processed::Undecodable(error) => {
            tracing::debug!(topic = %source.topic, partition = source.partition, offset = source.offset, %error, "undecodable message to the dead-letter topic");
            flow.metrics.dead_letter();
            flow.tracker.lock().unwrap().add(&source, 1);
            send(
                &flow.producer,
                &flow.dead_letter_topic,
                key.as_deref(),
                &payload,
                dead_letter_headers(&error, &source),
                &source,
                &flow.abandon,
            );
        }
    }
    flow.tracker.lock().unwrap().release(&source);
}

enum Processed {
    Alerts(Vec<AlertResult>),
    /// To the dead-letter topic, with this error.
    Undecodable(String),
    /// Shutting down while the schema source does not answer.
    GaveUp,
}

fn decode_and_filter(runner: &mut Runner, flow: &Flow, payload: &Bytes) -> Processed {
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
        return Processed::Undecodable(misframed.into());
    }
    let mut wait = Duration::from_millis(500);
    loop {
        match runner.process(payload) {
            Ok(results) => return Processed::Alerts(results),
            // A schema registry that does not answer: the message is
            // fine, so wait for the registry rather than dead-letter it.
            Err(e) if e.is_transient() => {
                if flow.stopping() {
                    return Processed::GaveUp;
                }
                tracing::warn!(error = %e, retry_in = ?wait, "waiting for the schema source");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Processed::Undecodable(e.to_string()),
        }
    }
}
