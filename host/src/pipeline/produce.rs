//! Producing: the producer's context (acknowledgements release tracker
//! tokens), the headers of accepted alerts and dead letters, and a send
//! that waits while the producer's queue is full (backpressure instead of
//! an unbounded queue).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::tracker::{Consumed, Tracker};
use crate::sandbox::{Evaluation, LoadedFilter, Outcome, Verdict};

/// The producer's context: acknowledgements update the tracker.
pub struct Acks {
    pub tracker: Arc<Mutex<Tracker>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The changelog topic, when serve keeps object memory.
    pub changelog: Option<String>,
    /// Where a refusal that must stop serve is raised (the flow's).
    pub failure: Arc<Mutex<Option<String>>>,
}

impl ClientContext for Acks {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        crate::kafka::forward_log(level, facility, message);
    }

    /// A refusal for want of an ACL (the cluster's, when an idempotent
    /// producer's principal may write nowhere) leaves the producer unable
    /// to send anything, for good: serve stops, saying what to grant,
    /// instead of retrying every produce for ever.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if !crate::kafka::is_refusal(&error) {
            crate::kafka::forward_error(&error, reason);
            return;
        }
        let why = format!(
            "the brokers refused serve's producer ({}): the principal serve writes as \
             (output.kafka.sasl_username, else kafka.sasl_username) needs Write and Describe \
             on the output and dead-letter topics (an ACL); serve stops",
            crate::text::shown(reason, 400)
        );
        let mut failure = self.failure.lock().unwrap();
        if failure.is_none() {
            tracing::error!("{why}");
            *failure = Some(why);
        }
    }
}

/// What a produce's acknowledgement releases: the consumed message's
/// token, and the waiter of a worker that waits for it.
pub struct Sent {
    pub source: Consumed,
    pub waiter: Option<Arc<Waiter>>,
}

/// A count of produces a worker waits to see acknowledged (delivered or
/// refused for good).
pub struct Waiter {
    left: Mutex<usize>,
    acked: Condvar,
}

impl Waiter {
    pub fn new(produces: usize) -> Arc<Waiter> {
        Arc::new(Waiter {
            left: Mutex::new(produces),
            acked: Condvar::new(),
        })
    }

    fn acknowledged(&self) {
        let mut left = self.left.lock().unwrap();
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.acked.notify_all();
        }
    }

    /// Waits until every produce given this waiter is acknowledged;
    /// false if `abandon` is set first.
    pub fn wait(&self, abandon: &AtomicBool) -> bool {
        let mut left = self.left.lock().unwrap();
        while *left > 0 {
            if abandon.load(Ordering::Relaxed) {
                return false;
            }
            left = self
                .acked
                .wait_timeout(left, Duration::from_millis(50))
                .unwrap()
                .0;
        }
        true
    }
}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<Sent>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        let Sent { source, waiter } = *sent;
        // A changelog record the broker refuses for good (one over the
        // topic's max.message.bytes): its object's memory would be lost
        // while the offset moved on. Its token is kept (the offset is
        // never stored) and serve stops, saying why.
        if let Err((err, message)) = result
            && self.changelog.as_deref() == Some(message.topic())
        {
            self.metrics.produce_error();
            self.metrics.memory_failures(1);
            let why = format!(
                "the broker refused a changelog record for good ({err}) on {}: serve stops, \
                 committing nothing past it; if the error is a size, raise the topic's \
                 max.message.bytes to at least {} (an object's record may reach that)",
                message.topic(),
                crate::memory::MAX_RECORD_BYTES
            );
            let mut failure = self.failure.lock().unwrap();
            if failure.is_none() {
                tracing::error!("{why}");
                *failure = Some(why);
            }
            return;
        }
        // Refused for want of an ACL: every later produce to the topic
        // would be too, and its alerts lost while offsets move on.
        if let Err((err, message)) = result
            && crate::kafka::is_refusal(err)
        {
            self.metrics.produce_error();
            let why = format!(
                "the brokers refused to take alerts on topic {} ({err}): the principal serve \
                 writes as (output.kafka.sasl_username, else kafka.sasl_username) needs Write \
                 and Describe on it (an ACL); serve stops, committing nothing past it",
                message.topic()
            );
            let mut failure = self.failure.lock().unwrap();
            if failure.is_none() {
                tracing::error!("{why}");
                *failure = Some(why);
            }
            return;
        }
        let mut tracker = self.tracker.lock().unwrap();
        if let Err((err, message)) = result {
            // At-least-once retries without bound, so this is a permanent
            // refusal (e.g. a message over the topic's size limit); in a
            // transaction it also makes the commit fail and the batch run
            // again.
            tracker.failed += 1;
            self.metrics.produce_error();
            tracing::error!(
                topic = message.topic(),
                error = %err,
                source_topic = %source.topic,
                source_partition = source.partition,
                source_offset = source.offset,
                "the broker refused a produce"
            );
        } else {
            self.metrics.produced();
        }
        tracker.release(&source);
        drop(tracker);
        if let Some(waiter) = waiter {
            waiter.acknowledged();
        }
    }
}

pub type Producer = ThreadedProducer<Acks>;

/// The headers of an accepted alert: the deployment's `name`, the
/// version that decided, the versions of the sky maps and watchlists it
/// read (`sky`, see [`crate::sky::Sky::versions_read`]), and the
/// verdict's score, tags and notes; `None` when the alert was not
/// accepted.
pub fn accepted_headers(
    name: &str,
    filter: &LoadedFilter,
    evaluation: &Evaluation,
    sky: Option<&str>,
) -> Option<OwnedHeaders> {
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
            value: Some(name),
        })
        .insert(Header {
            key: "bandpass-filter-version",
            value: Some(&filter.manifest.version),
        });
    if let Some(sky) = sky {
        headers = headers.insert(Header {
            key: "bandpass-sky",
            value: Some(sky),
        });
    }
    if let Some(score) = score {
        headers = headers.insert(Header {
            key: "bandpass-score",
            value: Some(&score.to_string()),
        });
    }
    if !tags.is_empty() {
        headers = headers.insert(Header {
            key: "bandpass-tags",
            // Each tag percent-encoded, so that a tag holding a comma
            // splits back into itself.
            value: Some(&crate::text::joined_tags(tags)),
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

/// The headers of a dead letter: the error and where the message came
/// from.
pub fn dead_letter_headers(error: &str, source: &Consumed) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header {
            key: "bandpass-error",
            value: Some(error),
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
        })
}

/// Where one produce goes, and what it carries: an accepted alert (the
/// consumed message's key, so outputs keep the input's partitioning), a
/// dead letter, or a changelog record (its own partition; no payload is
/// a tombstone).
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub headers: OwnedHeaders,
}

/// Queues one produce, waiting while the producer's queue is full.
/// Returns false only when `abandon` is set meanwhile (a shutdown past
/// its deadline): the message's offset is then never stored and the next
/// owner of the partition processes it again.
/// `waiter`, if given, is told when the broker acknowledges it.
pub fn send(
    producer: &Producer,
    out: Outgoing<'_>,
    source: &Consumed,
    waiter: Option<&Arc<Waiter>>,
    abandon: &AtomicBool,
) -> bool {
    let topic = out.topic;
    let sent = Box::new(Sent {
        source: source.clone(),
        waiter: waiter.cloned(),
    });
    let mut record: BaseRecord<'_, [u8], [u8], Box<Sent>> =
        BaseRecord::with_opaque_to(topic, sent).headers(out.headers);
    if let Some(payload) = out.payload {
        record = record.payload(payload);
    }
    if let Some(key) = out.key {
        record = record.key(key);
    }
    if let Some(partition) = out.partition {
        record = record.partition(partition);
    }
    let mut said: Option<std::time::Instant> = None;
    loop {
        if abandon.load(Ordering::Relaxed) {
            return false;
        }
        match producer.send(record) {
            Ok(()) => return true,
            Err((err, back)) => {
                // Said once a minute, not at every retry.
                if err.rdkafka_error_code() != Some(RDKafkaErrorCode::QueueFull)
                    && said.is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                {
                    said = Some(std::time::Instant::now());
                    tracing::error!(%topic, error = %err, "a produce could not be queued; retrying");
                }
                record = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
