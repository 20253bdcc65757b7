//! Producing: the producer's context (acknowledgements release tracker
//! tokens), the headers of accepted alerts and dead letters, and a send
//! that waits while the producer's queue is full (backpressure instead of
//! an unbounded queue).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
}

impl ClientContext for Acks {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        crate::kafka::forward_log(level, facility, message);
    }
}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<Consumed>;

    fn delivery(&self, result: &DeliveryResult<'_>, source: Box<Consumed>) {
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
    }
}

pub type Producer = ThreadedProducer<Acks>;

/// The headers of an accepted alert: the deployment's `name`, the
/// version that decided, and the verdict's score, tags and notes; `None`
/// when the alert was not accepted.
pub fn accepted_headers(
    name: &str,
    filter: &LoadedFilter,
    evaluation: &Evaluation,
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

/// Queues one produce (with the consumed message's key, so outputs keep
/// the input's partitioning), waiting while the producer's queue is full.
/// Returns false only when `abandon` is set meanwhile (a shutdown past
/// its deadline): the message's offset is then never stored and the next
/// owner of the partition processes it again.
pub fn send(
    producer: &Producer,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: OwnedHeaders,
    source: &Consumed,
    abandon: &AtomicBool,
) -> bool {
    let mut record: BaseRecord<'_, [u8], [u8], Box<Consumed>> =
        BaseRecord::with_opaque_to(topic, Box::new(source.clone()))
            .payload(payload)
            .headers(headers);
    if let Some(key) = key {
        record = record.key(key);
    }
    loop {
        if abandon.load(Ordering::Relaxed) {
            return false;
        }
        match producer.send(record) {
            Ok(()) => return true,
            Err((err, back)) => {
                if err.rdkafka_error_code() != Some(RDKafkaErrorCode::QueueFull) {
                    tracing::error!(%topic, error = %err, "a produce could not be queued; retrying");
                }
                record = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
