//! Committing what is done, in either delivery mode, and doing it before
//! partitions leave this instance.
//!
//! At-least-once: offsets the [`Tracker`](super::tracker::Tracker) calls
//! safe are stored every few hundred milliseconds and committed by
//! librdkafka's auto-commit. Exactly-once: every [`TXN_INTERVAL`] the
//! consuming thread lets the workers finish what they hold, adds the
//! consumed offsets to the open transaction and commits it; outputs and
//! offsets become visible together or not at all.
//!
//! On revocation (a rebalance), in-flight work for the instance's
//! partitions is finished first (bounded by [`REVOKE_GRACE`]) and what is
//! done is committed, so the next owner starts where this one stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::Flow;
use crate::config::StartPosition;

/// How often an exactly-once instance commits its transaction: the
/// latency floor of read_committed consumers of the outputs.
pub const TXN_INTERVAL: Duration = Duration::from_millis(100);
/// How long a transaction operation may take before it is retried or
/// given up.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a revocation waits for in-flight work.
const REVOKE_GRACE: Duration = Duration::from_secs(30);

/// The consumer's context: rebalances commit what is done before
/// partitions leave, and apply a timestamp start to new partitions.
pub struct Rebalances {
    pub flow: Arc<Flow>,
}

impl ClientContext for Rebalances {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        crate::kafka::forward_log(level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        crate::kafka::forward_error(&error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.flow.metrics.observe(&statistics);
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

impl ConsumerContext for Rebalances {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let StartPosition::TimestampMs(ms) = self.flow.start {
                    start_at_timestamp(consumer, tpl, ms);
                }
                // Object memory: no alert of a partition runs before its
                // objects are restored; a restore that fails leaves the
                // partitions unassigned and stops serve.
                if let Some(changelog) = &self.flow.changelog {
                    let assigned = partitions(tpl);
                    // Work still queued for a partition lost earlier must
                    // not write over what is restored.
                    self.flow.drain(Instant::now() + REVOKE_GRACE);
                    if let Err(e) =
                        changelog.restore_all(&assigned, &self.flow.metrics, &self.flow.stop)
                    {
                        self.flow.fail(format!(
                            "restoring the object memory of {}: {e:#}",
                            describe(tpl)
                        ));
                        return;
                    }
                }
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                match assigned {
                    Ok(()) => tracing::info!(partitions = %describe(tpl), "partitions assigned"),
                    Err(e) => {
                        self.flow
                            .fail(format!("assigning partitions {}: {e}", describe(tpl)));
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                let revoked = partitions(tpl);
                // Stopping with an error (the partitions leave as the
                // consumer closes): nothing more is committed, and the
                // error is said once. Nor are they clean.
                if !lost && !self.flow.failed() {
                    match self.flow.finish_and_commit(consumer, REVOKE_GRACE) {
                        Err(e) => self
                            .flow
                            .fail(format!("committing before a revocation: {e:#}")),
                        // Eager: every partition is revoked, and those
                        // assigned back in this same rebalance were owned
                        // by no one meanwhile: their objects need no
                        // restore.
                        Ok(()) if !cooperative => {
                            if let Some(changelog) = &self.flow.changelog {
                                changelog.revoked_clean(&revoked);
                            }
                        }
                        Ok(()) => {}
                    }
                }
                self.flow.tracker.lock().unwrap().forget(&revoked);
                let _ = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                tracing::info!(partitions = %describe(tpl), lost, "partitions revoked");
            }
            other => {
                tracing::warn!(error = ?other, "rebalance failed");
                let _ = consumer.unassign();
            }
        }
    }
}

/// Sets each partition with no committed offset to start at the first
/// message at or after `ms`.
fn start_at_timestamp(consumer: &BaseConsumer<Rebalances>, tpl: &mut TopicPartitionList, ms: i64) {
    let committed = match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read committed offsets; a timestamp start is not applied");
            return;
        }
    };
    let mut fresh = TopicPartitionList::new();
    for e in committed.elements() {
        if e.offset() == Offset::Invalid {
            let _ = fresh.add_partition_offset(e.topic(), e.partition(), Offset::Offset(ms));
        }
    }
    if fresh.count() == 0 {
        return;
    }
    match consumer.offsets_for_times(fresh, Duration::from_secs(10)) {
        Ok(found) => {
            for e in found.elements() {
                let _ = tpl.set_partition_offset(e.topic(), e.partition(), e.offset());
                tracing::info!(topic = e.topic(), partition = e.partition(), offset = ?e.offset(), ms, "starting at a timestamp");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, ms, "cannot look offsets up by time; starting per auto.offset.reset")
        }
    }
}

impl Flow {
    /// Waits until no message has work outstanding, or `until`, or a
    /// failure is recorded (work that will never finish: nothing more is
    /// committed after one).
    pub fn drain(&self, until: Instant) -> bool {
        loop {
            if self.tracker.lock().unwrap().outstanding() == 0 {
                return true;
            }
            if Instant::now() >= until || self.failed() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Finishes in-flight work (within `grace`) and commits it: used
    /// before a revocation and at shutdown.
    pub fn finish_and_commit(
        &self,
        consumer: &BaseConsumer<Rebalances>,
        grace: Duration,
    ) -> anyhow::Result<()> {
        if self.exactly_once {
            return self.commit_transaction(consumer);
        }
        if !self.drain(Instant::now() + grace) {
            tracing::warn!(
                "in-flight work did not finish in {grace:?}; committing what is done (the rest is processed again)"
            );
        }
        self.store(consumer);
        match consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing stored since the last automatic commit.
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => Ok(()),
            other => other.context("committing offsets"),
        }
    }

    /// Stores every offset the tracker says is safe (at-least-once).
    pub fn store(&self, consumer: &BaseConsumer<Rebalances>) {
        let storable = self.tracker.lock().unwrap().storable();
        if storable.is_empty() {
            return;
        }
        if let Err(e) = consumer.store_offsets(&next_offsets(&storable)) {
            // A partition revoked meanwhile: its new owner re-reads from
            // the last commit (at-least-once).
            tracing::debug!(error = %e, "storing offsets");
        }
    }

    /// Exactly-once: lets the workers finish, adds the consumed offsets to
    /// the transaction, commits it and opens the next. An abortable
    /// failure aborts and rewinds the partitions to the last commit, so
    /// the work is done again in the next transaction; a fatal one (this
    /// instance fenced by another with the same transactional id) is an
    /// error.
    pub fn commit_transaction(&self, consumer: &BaseConsumer<Rebalances>) -> anyhow::Result<()> {
        if !self.drain(Instant::now() + TXN_TIMEOUT) {
            if let Some(failure) = self.failure.lock().unwrap().clone() {
                anyhow::bail!(failure);
            }
            // Late produces would land in the next transaction: stop, and
            // let a restart resume from the last commit.
            anyhow::bail!(
                "exactly-once: in-flight work did not finish within {TXN_TIMEOUT:?}; stopping so that a restart resumes from the last committed transaction"
            );
        }
        let done = self.tracker.lock().unwrap().storable();
        let offsets = next_offsets(&done);
        let group = consumer
            .group_metadata()
            .context("the consumer has no group metadata for the transaction")?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.try_commit(&group, &offsets);
            let Err(err) = result else {
                let next: Vec<_> = done
                    .iter()
                    .map(|(t, p, o)| (t.clone(), *p, o + 1))
                    .collect();
                self.metrics.committed(&next);
                break;
            };
            let txn = match &err {
                KafkaError::Transaction(e) => Some(e),
                _ => None,
            };
            if txn.is_some_and(|e| e.is_retriable()) && attempt < 5 {
                tracing::warn!(error = %err, attempt, "committing the transaction; retrying");
                continue;
            }
            if txn.is_some_and(|e| e.txn_requires_abort()) {
                tracing::warn!(error = %err, "transaction aborted; its alerts are processed again");
                self.producer
                    .abort_transaction(TXN_TIMEOUT)
                    .context("aborting the transaction")?;
                self.rewind(consumer);
                break;
            }
            return Err(err).context(
                "exactly-once: the transaction cannot commit (another instance with the same kafka.transactional_id fenced this one?)",
            );
        }
        self.tracker.lock().unwrap().committed();
        self.producer
            .begin_transaction()
            .context("opening the next transaction")
    }

    fn try_commit(
        &self,
        group: &ConsumerGroupMetadata,
        offsets: &TopicPartitionList,
    ) -> Result<(), KafkaError> {
        if offsets.count() > 0 {
            self.producer
                .send_offsets_to_transaction(offsets, group, TXN_TIMEOUT)?;
        }
        self.producer.commit_transaction(TXN_TIMEOUT)
    }

    /// After an abort: read every partition again from its last commit.
    fn rewind(&self, consumer: &BaseConsumer<Rebalances>) {
        let points = self.tracker.lock().unwrap().rewind();
        // The aborted transaction's changes are in the local store: the
        // partitions' objects come back from the changelog.
        if let Some(changelog) = &self.changelog {
            let partitions: Vec<(String, i32)> =
                points.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
            if let Err(e) = changelog.restore(&partitions, &self.metrics, &self.stop) {
                self.fail(format!("restoring the object memory after an abort: {e:#}"));
            }
        }
        for (topic, partition, offset) in points {
            if let Err(e) = consumer.seek(
                &topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(10),
            ) {
                // Cannot seek: stop rather than skip the aborted alerts.
                self.fail(format!(
                    "rewinding {topic}/{partition} to {offset} after an abort: {e}"
                ));
            }
        }
    }
}

/// The offsets to commit: the one after each last finished message.
fn next_offsets(done: &[(String, i32, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in done {
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1));
    }
    tpl
}
