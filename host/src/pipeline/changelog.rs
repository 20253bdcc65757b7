//! Object memory in serve (docs/design/object-memory.md): one local store,
//! split by input partition (each key starts with its partition's scope),
//! and a compacted changelog topic that every change is also produced to,
//! keyed by the same key. The changelog, not the local disk, is what
//! survives: a partition given to this instance is restored from it
//! before any of its alerts is taken, whoever held it before.
//!
//! Exactly-once: changes are produced in the transaction of the alerts
//! that made them, and the changelog is read `read_committed`, so a
//! restored partition holds exactly what its committed input implies; an
//! aborted transaction's partitions are restored again. At-least-once: a
//! restore may hold changes of alerts after the last committed offset,
//! which are then processed again on top of them (the docs say what that
//! repeats).
//!
//! Must never: let a partition's alerts run before it is restored, or
//! skip a restore it cannot prove unneeded.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::Config;
use crate::kafka::{Internal, Logged, Role, client_config};
use crate::memory::{Memory, partition_scope};
use crate::metrics::Metrics;

/// How often a long restore says how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The store and its changelog.
pub struct Changelog {
    pub topic: String,
    /// The changelog's partitions: input partition `p` writes to
    /// `p % partitions` (several input topics, or more input partitions
    /// than the changelog has, share one; the key's scope tells them
    /// apart).
    pub partitions: i32,
    /// The handle restores write through; workers get their own.
    memory: Memory,
    reader: ClientConfig,
    /// Partitions whose local objects equal the changelog: committed at a
    /// revocation of this same rebalance (see [`Changelog::revoked_clean`]).
    clean: Mutex<HashSet<Vec<u8>>>,
}

impl Changelog {
    /// Creates (or checks) the changelog topic and an empty local store
    /// under `memory.dir`.
    pub fn start(config: &Config) -> anyhow::Result<Changelog> {
        // Stores of earlier starts that were killed (a clean stop removes
        // its own).
        let settings = config.memory();
        let (removed, bytes) = Memory::remove_abandoned(settings.dir.as_deref());
        if removed > 0 {
            tracing::info!(
                removed,
                megabytes = bytes / 1_000_000,
                "removed object stores left by processes that were killed"
            );
        }
        let mut memory = Memory::temporary_in(settings.dir.as_deref())
            .context("opening serve's object store (memory.dir)")?;
        settings.apply(&mut memory);
        memory.keep_changes();
        let topic = settings.changelog_topic(&config.input.group);
        let wanted = input_partitions(config).max(1);
        let partitions = crate::kafka::ensure_topic(
            config,
            &Internal {
                compacted: true,
                topic: &topic,
                partitions: wanted,
                // A record is one object's: the largest the store keeps.
                max_message: Some(crate::memory::MAX_RECORD_BYTES),
                what: "changelog topic",
                lost: "objects' histories and filters' states would be lost with old segments",
                key: "memory.changelog_topic",
            },
        )?;
        let reader = client_config(config, Role::ChangelogReader);
        // A reader that cannot be made fails the start, not a rebalance.
        let _: BaseConsumer<Logged> = reader
            .create_with_context(Logged)
            .context("creating the changelog reader")?;
        tracing::info!(
            %topic,
            partitions,
            store = %memory.dir().display(),
            "object memory on: a changelog topic and a local store"
        );
        Ok(Changelog {
            topic,
            partitions,
            memory,
            reader,
            clean: Mutex::new(HashSet::new()),
        })
    }

    /// A handle on the store for a worker, keeping its changes.
    pub fn handle(&self) -> Memory {
        self.memory.handle()
    }

    /// The changelog partition of input partition `partition`.
    pub fn partition_of(&self, partition: i32) -> i32 {
        partition.rem_euclid(self.partitions)
    }

    /// The store's bytes (see [`Memory::disk_bytes`]).
    pub fn disk_bytes(&self) -> u64 {
        self.memory.disk_bytes()
    }

    /// How many objects the store holds.
    pub fn objects(&self) -> i64 {
        self.memory.objects_kept()
    }

    /// Marks partitions committed at a revocation (not lost): their local
    /// objects equal the changelog until another instance may write it,
    /// so an assignment in the same rebalance need not restore them.
    pub fn revoked_clean(&self, partitions: &[(String, i32)]) {
        let mut clean = self.clean.lock().unwrap();
        clean.extend(partitions.iter().map(|(t, p)| partition_scope(t, *p)));
    }

    /// Restores every partition of `assigned` that is not known clean
    /// (together: one reader for all); the rest of the clean set is
    /// forgotten (another instance may own those partitions next).
    pub fn restore_all(
        &self,
        assigned: &[(String, i32)],
        metrics: &Metrics,
        stop: &AtomicBool,
    ) -> anyhow::Result<()> {
        let clean = std::mem::take(&mut *self.clean.lock().unwrap());
        let pending: Vec<(String, i32)> = assigned
            .iter()
            .filter(|(t, p)| !clean.contains(&partition_scope(t, *p)))
            .cloned()
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        metrics.memory_restoring(pending.len() as i64);
        let result = self.restore(&pending, metrics, stop);
        metrics.memory_restoring(0);
        result.map(|_| ())
    }

    /// Rebuilds input partitions `partitions` (topic, partition) from the
    /// changelog: drops their local objects, then applies every record of
    /// their scopes up to the changelog's end (under exactly-once, its
    /// last committed transaction). Returns the records applied.
    pub fn restore(
        &self,
        partitions: &[(String, i32)],
        metrics: &Metrics,
        stop: &AtomicBool,
    ) -> anyhow::Result<u64> {
        let started = Instant::now();
        let mut scopes = HashSet::new();
        let mut dropped = 0;
        for (topic, partition) in partitions {
            let scope = partition_scope(topic, *partition);
            dropped += self.memory.clear_scope(&scope)?;
            scopes.insert(scope);
        }
        let reader: BaseConsumer<Logged> = self
            .reader
            .create_with_context(Logged)
            .context("creating the changelog reader")?;
        // The changelog partitions to read, each to its end.
        let mut ends = HashMap::new();
        // Where each one's read is: the restore's progress, shown.
        let mut next: HashMap<i32, i64> = HashMap::new();
        for (_, partition) in partitions {
            let from = self.partition_of(*partition);
            if ends.contains_key(&from) {
                continue;
            }
            let (low, high) = watermarks(&reader, &self.topic, from, stop)?;
            if high > low {
                ends.insert(from, high);
                next.insert(from, low);
            }
        }
        let remaining = |next: &HashMap<i32, i64>, ends: &HashMap<i32, i64>| -> i64 {
            ends.iter()
                .map(|(p, end)| (end - next.get(p).copied().unwrap_or(0)).max(0))
                .sum()
        };
        metrics.memory_restore_remaining(remaining(&next, &ends));
        let (mut applied, mut read) = (0u64, 0u64);
        if !ends.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for from in ends.keys() {
                tpl.add_partition_offset(&self.topic, *from, Offset::Beginning)?;
            }
            reader.assign(&tpl)?;
            let mut said = Instant::now();
            while !ends.is_empty() {
                if stop.load(Ordering::Relaxed) {
                    anyhow::bail!("stopping during a restore of the object memory");
                }
                match reader.poll(Duration::from_millis(200)) {
                    None => {}
                    // The end (under exactly-once, the last committed
                    // transaction's: its markers are never delivered).
                    Some(Err(KafkaError::PartitionEOF(from))) => {
                        ends.remove(&from);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, changelog = %self.topic, "reading the changelog; retrying");
                    }
                    Some(Ok(m)) => {
                        if let Some(key) = m.key()
                            && scopes.contains(scope_of(key))
                        {
                            self.memory.apply(key, m.payload())?;
                            applied += 1;
                            metrics.memory_restored();
                        }
                        next.insert(m.partition(), m.offset() + 1);
                        // Every 1024 records read (a compacted topic's
                        // offsets have gaps: not by offset).
                        read += 1;
                        if read % 1024 == 0 {
                            metrics.memory_restore_remaining(remaining(&next, &ends));
                        }
                        // The last offset: no need to wait for the end's
                        // answer from the broker.
                        if ends
                            .get(&m.partition())
                            .is_some_and(|end| m.offset() + 1 >= *end)
                        {
                            ends.remove(&m.partition());
                        }
                    }
                }
                if said.elapsed() >= PROGRESS_EVERY {
                    said = Instant::now();
                    let remaining = remaining(&next, &ends);
                    metrics.memory_restore_remaining(remaining);
                    tracing::info!(
                        applied,
                        remaining,
                        partitions = partitions.len(),
                        "restoring object memory"
                    );
                }
            }
        }
        metrics.memory_restore_remaining(0);
        for scope in &scopes {
            self.memory.count_scope(scope)?;
        }
        tracing::info!(
            partitions = partitions.len(),
            dropped,
            applied,
            seconds = started.elapsed().as_secs_f64(),
            "object memory restored"
        );
        Ok(applied)
    }
}

/// The ends of changelog partition `from`, asking again for up to a
/// minute: a topic just created, or a broker just back, may not know it
/// yet.
fn watermarks(
    reader: &BaseConsumer<Logged>,
    topic: &str,
    from: i32,
    stop: &AtomicBool,
) -> anyhow::Result<(i64, i64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match reader.fetch_watermarks(topic, from, Duration::from_secs(10)) {
            Ok(ends) => return Ok(ends),
            Err(e) if Instant::now() < deadline && !stop.load(Ordering::Relaxed) => {
                tracing::warn!(error = %e, %topic, partition = from, "reading a changelog partition's ends; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading the ends of changelog {topic}/{from}"));
            }
        }
    }
}

/// The scope a changelog key starts with: the topic, its zero byte and
/// the partition's four bytes (see [`partition_scope`]); the whole key if
/// it has no zero byte (then it matches no scope).
fn scope_of(key: &[u8]) -> &[u8] {
    match key.iter().position(|b| *b == 0) {
        Some(zero) if key.len() >= zero + 5 => &key[..zero + 5],
        _ => key,
    }
}

/// The most partitions any existing input topic named exactly has; 1
/// when none exists yet, or the topics are patterns (correct still: the
/// keys' scopes tell partitions apart; a restore then reads more).
pub(super) fn input_partitions(config: &Config) -> i32 {
    let client: Result<BaseConsumer<Logged>, _> =
        client_config(config, Role::InputClient).create_with_context(Logged);
    let metadata = match client.and_then(|c| c.fetch_metadata(None, Duration::from_secs(10))) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the input topics' partition counts: a new changelog or re-key topic gets one partition (correct, but restores read more)");
            return 1;
        }
    };
    metadata
        .topics()
        .iter()
        .filter(|t| config.input.topics.iter().any(|name| name == t.name()))
        .map(|t| t.partitions().len() as i32)
        .max()
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::object_key;

    #[test]
    fn a_changelog_key_names_its_partition_s_scope_and_nothing_else() {
        let scope = partition_scope("ztf.alerts", 3);
        let mut key = scope.clone();
        key.extend(object_key("ztf", "ZTF18abudxnw"));
        assert_eq!(scope_of(&key), scope.as_slice());
        assert_ne!(scope_of(&key), partition_scope("ztf.alerts", 30).as_slice());
        // Another topic whose name starts the same.
        let mut other = partition_scope("ztf.alerts2", 3);
        other.extend(object_key("ztf", "ZTF18abudxnw"));
        assert_ne!(scope_of(&other), scope.as_slice());
        // Bytes no store wrote: no scope.
        assert_eq!(scope_of(b"no-zero-byte"), b"no-zero-byte");
        assert_eq!(scope_of(b"t\0\x01"), b"t\0\x01");
    }
}
