//! What `bandpass serve` counts, and whether it is ready: the numbers
//! behind the admin port's `/metrics` (Prometheus text format) and
//! `/readyz`.
//!
//! Per filter: alerts evaluated, accepted, rejected, skipped, failures by
//! kind, fuel, time per alert (histogram) and quarantine state. Per input
//! partition: consumer lag (from librdkafka's statistics, once a second).
//! For the instance: messages consumed, messages produced (accepted
//! alerts and dead letters, acknowledged), produces the broker refused
//! for good, dead letters.
//!
//! Labels are bounded: filter names, failure kinds, topics and partition
//! numbers; never an alert id. Recording is a few atomic adds: it runs on
//! the workers, once per filter per alert.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use std::sync::{Arc, Mutex};

use crate::sandbox::{Evaluation, LoadedFilter, Outcome, Verdict};

/// Statistics older than this make the instance not ready: the consuming
/// thread has stopped polling (librdkafka delivers them from `poll`).
const STALE_STATISTICS: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FilterLabels {
    filter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    filter: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

/// Time per alert, seconds: 1 µs to about 4 s in steps of 4x.
fn time_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1e-6, 4.0, 12))
}

/// The instance's metrics and readiness. One per `serve`, shared by the
/// consuming thread, the workers, the producer's callbacks and the admin
/// server.
pub struct Metrics {
    registry: Registry,
    alerts: Family<FilterLabels, Counter>,
    accepted: Family<FilterLabels, Counter>,
    rejected: Family<FilterLabels, Counter>,
    skipped: Family<FilterLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    fuel: Family<FilterLabels, Counter>,
    seconds: Family<FilterLabels, Histogram, fn() -> Histogram>,
    quarantined: Family<FilterLabels, Gauge>,
    consumed: Counter,
    produced: Counter,
    produce_errors: Counter,
    dead_letters: Counter,
    uploads: Counter,
    refused: Family<StatusLabels, Counter>,
    lag: Family<PartitionLabels, Gauge>,
    /// The last stable offset minus the group's committed offset, per
    /// assigned partition: what a restart would read again.
    committed_lag: Family<PartitionLabels, Gauge>,
    /// The offsets this instance committed in its transactions
    /// (exactly-once), by topic and partition: librdkafka's statistics
    /// show only the consumer's own commits.
    committed: Mutex<HashMap<(String, i32), i64>>,
    assigned: Gauge,
    /// Registry records written and not yet applied here.
    registry_behind: Gauge,
    /// Brokers the consumer is connected to, by its last statistics.
    brokers_up: Gauge,
    /// Seconds since the consumer's last statistics (set when scraped).
    statistics_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Object memory (serve with `input.keyed_by = "object"`).
    memory: MemoryMetrics,
    /// Per filter, not exported (the status page's totals): failures of
    /// every kind, and wall time in nanoseconds.
    failed: Family<FilterLabels, Counter>,
    nanos: Family<FilterLabels, Counter>,
    /// The lag summed over the assigned partitions.
    lag_total: AtomicI64,
    /// The filters deployed now: the status page's rows, and whose
    /// quarantine state the gauge reports (read when scraped, so that it
    /// follows reloads and names only deployed filters).
    deployed: Mutex<Vec<(FilterInfo, Arc<LoadedFilter>)>>,
    /// What `/readyz` answers, from the last statistics.
    readiness: Mutex<Readiness>,
    /// Nanoseconds since `epoch` at the last statistics.
    last_statistics: AtomicU64,
    epoch: Instant,
}

/// Object memory's series: what the store holds, what it wrote to the
/// changelog, and restores.
#[derive(Default)]
struct MemoryMetrics {
    /// Set when serve keeps object memory: the status page shows it.
    on: std::sync::atomic::AtomicBool,
    restoring: Gauge,
    restore_remaining: Gauge,
    restored: Counter,
    changes: Counter,
    store_bytes: Gauge,
    objects: Gauge,
    failures: Counter,
    misrouted: Counter,
    out_of_order: Counter,
}

/// One filter's counters, shared with the registry's (clones of the
/// same atomics).
#[derive(Clone)]
pub struct FilterMetrics {
    name: String,
    alerts: Counter,
    accepted: Counter,
    rejected: Counter,
    skipped: Counter,
    failed: Counter,
    fuel: Counter,
    nanos: Counter,
    seconds: Histogram,
}

/// What the status page says of a deployed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterInfo {
    pub name: String,
    pub version: String,
    pub survey: String,
    pub output_topic: String,
    /// The group that uploaded it; `None` for the config file's filters
    /// (the operator's).
    pub group: Option<String>,
}

/// The counters of one filter at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterCounts {
    pub alerts: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub failed: u64,
    pub skipped: u64,
    pub fuel: u64,
    pub nanos: u64,
    pub quarantined: bool,
}

/// Every counter the status page shows, at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Instant,
    pub filters: Vec<(FilterInfo, FilterCounts)>,
    pub consumed: u64,
    pub produced: u64,
    pub produce_errors: u64,
    pub dead_letters: u64,
    /// Sum of the lag over the assigned partitions.
    pub lag: i64,
    pub assigned: i64,
    pub ready: Result<(), String>,
    /// Object memory's figures, when serve keeps it.
    pub memory: Option<MemorySnapshot>,
}

/// Object memory at one moment (see [`Metrics::memory_on`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemorySnapshot {
    pub store_bytes: i64,
    pub objects: i64,
    pub restoring: i64,
    pub restore_remaining: i64,
    pub restored: u64,
    pub changes: u64,
    pub failures: u64,
    pub misrouted: u64,
    pub out_of_order: u64,
}

/// The instance's connection state, as the last statistics showed it.
#[derive(Debug, Clone)]
struct Readiness {
    brokers_up: usize,
    brokers: usize,
    group_state: String,
    assigned: i64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            alerts: Family::default(),
            accepted: Family::default(),
            rejected: Family::default(),
            skipped: Family::default(),
            failures: Family::default(),
            fuel: Family::default(),
            seconds: Family::new_with_constructor(time_buckets),
            quarantined: Family::default(),
            consumed: Counter::default(),
            produced: Counter::default(),
            produce_errors: Counter::default(),
            dead_letters: Counter::default(),
            uploads: Counter::default(),
            refused: Family::default(),
            lag: Family::default(),
            committed_lag: Family::default(),
            committed: Mutex::new(HashMap::new()),
            assigned: Gauge::default(),
            registry_behind: Gauge::default(),
            brokers_up: Gauge::default(),
            statistics_age: Gauge::default(),
            memory: MemoryMetrics::default(),
            failed: Family::default(),
            nanos: Family::default(),
            lag_total: AtomicI64::new(0),
            deployed: Mutex::new(Vec::new()),
            readiness: Mutex::new(Readiness {
                brokers_up: 0,
                brokers: 0,
                group_state: "unknown".into(),
                assigned: 0,
            }),
            last_statistics: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        };
        let r = &mut m.registry;
        let b = "bandpass";
        r.register(
            format!("{b}_filter_alerts"),
            "Alerts a filter was asked to evaluate",
            m.alerts.clone(),
        );
        r.register(
            format!("{b}_filter_accepted"),
            "Alerts a filter accepted",
            m.accepted.clone(),
        );
        r.register(
            format!("{b}_filter_rejected"),
            "Alerts a filter rejected",
            m.rejected.clone(),
        );
        r.register(
            format!("{b}_filter_skipped"),
            "Alerts not given to a filter (another survey, or quarantined)",
            m.skipped.clone(),
        );
        r.register(
            format!("{b}_filter_failures"),
            "Alerts on which a filter failed, by kind (out-of-fuel, deadline, memory, panic, filter-error, ...)",
            m.failures.clone(),
        );
        r.register(
            format!("{b}_filter_fuel"),
            "Fuel (wasm instructions, roughly) a filter used",
            m.fuel.clone(),
        );
        r.register(
            format!("{b}_filter_seconds"),
            "Wall time of one filter on one alert",
            m.seconds.clone(),
        );
        r.register(
            format!("{b}_filter_quarantined"),
            "1 while a filter is quarantined after repeated failures",
            m.quarantined.clone(),
        );
        r.register(
            format!("{b}_messages_consumed"),
            "Messages read from the input topics",
            m.consumed.clone(),
        );
        r.register(
            format!("{b}_messages_produced"),
            "Messages the broker acknowledged: accepted alerts on output topics, and dead letters",
            m.produced.clone(),
        );
        r.register(
            format!("{b}_produce_errors"),
            "Produces the broker refused for good",
            m.produce_errors.clone(),
        );
        r.register(
            format!("{b}_dead_letters"),
            "Undecodable messages sent to the dead-letter topic",
            m.dead_letters.clone(),
        );
        r.register(
            format!("{b}_uploads_accepted"),
            "Filter uploads the admin API accepted (new versions included)",
            m.uploads.clone(),
        );
        r.register(
            format!("{b}_admin_refused"),
            "Admin API requests refused, by HTTP status (401 no or unknown token, 403 not allowed, 422 upload refused, ...)",
            m.refused.clone(),
        );
        r.register(
            format!("{b}_consumer_lag"),
            "Messages of an assigned input partition not yet consumed",
            m.lag.clone(),
        );
        r.register(
            format!("{b}_consumer_committed_lag"),
            "Messages of an assigned input partition after the group's committed offset (what a restart would read again); present once the group has committed on the partition",
            m.committed_lag.clone(),
        );
        r.register(
            format!("{b}_registry_behind_records"),
            "Records of the upload registry topic not yet applied by this instance (0 when caught up, and without uploads)",
            m.registry_behind.clone(),
        );
        r.register(
            format!("{b}_brokers_up"),
            "Brokers the input consumer is connected to (0: no broker answers, or none accepts its credentials)",
            m.brokers_up.clone(),
        );
        r.register(
            format!("{b}_statistics_age_seconds"),
            "Seconds since the input consumer's last statistics (every second while its thread runs; growing: the consuming thread is stuck or stopped)",
            m.statistics_age.clone(),
        );
        r.register(
            format!("{b}_assigned_partitions"),
            "Input partitions assigned to this instance",
            m.assigned.clone(),
        );
        let memory = &m.memory;
        r.register(
            format!("{b}_memory_restoring_partitions"),
            "Assigned input partitions whose object memory is being restored from the changelog (not ready while above 0)",
            memory.restoring.clone(),
        );
        r.register(
            format!("{b}_memory_restore_remaining_records"),
            "Changelog records still to read before the partitions being restored are ready (the restore's progress: 0 when none is restoring)",
            memory.restore_remaining.clone(),
        );
        r.register(
            format!("{b}_memory_restored_records"),
            "Changelog records applied by restores",
            memory.restored.clone(),
        );
        r.register(
            format!("{b}_memory_changelog_records"),
            "Changes to objects' records queued to the changelog topic",
            memory.changes.clone(),
        );
        r.register(
            format!("{b}_memory_store_bytes"),
            "Bytes of the object store's data: its segments on disk and its memtable (its journal's preallocation not counted)",
            memory.store_bytes.clone(),
        );
        r.register(
            format!("{b}_memory_objects"),
            "Objects the object store holds (each object of an assigned partition with a history or a state)",
            memory.objects.clone(),
        );
        r.register(
            format!("{b}_memory_failures"),
            "Object store reads or writes that failed (a full or read-only disk, a damaged record, a record over its bound)",
            memory.failures.clone(),
        );
        r.register(
            format!("{b}_memory_misrouted"),
            "Alerts whose message key is not their object id although input.keyed_by = \"object\" says it is",
            memory.misrouted.clone(),
        );
        r.register(
            format!("{b}_memory_out_of_order"),
            "Alerts older than their object's latest remembered alert (an object's alerts from several input partitions, or a replay of an earlier night): its state sees them in arrival order, not alert time",
            memory.out_of_order.clone(),
        );
        for status in Metrics::REFUSALS {
            let _ = m.refused.get_or_create(&StatusLabels {
                status: status.to_string(),
            });
        }
        m.registry.register(
            format!("{b}_build"),
            "The build serving: its version (always 1)",
            prometheus_client::metrics::info::Info::new(vec![(
                "version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )]),
        );
        m.registry.register_collector(Box::new(Process));
        m
    }

    /// Serve keeps object memory (the status page shows its line).
    pub fn memory_on(&self) {
        self.memory.on.store(true, Ordering::Relaxed);
    }

    pub fn memory_restoring(&self, partitions: i64) {
        self.memory.restoring.set(partitions);
    }

    /// Changelog records the running restore has still to read.
    pub fn memory_restore_remaining(&self, records: i64) {
        self.memory.restore_remaining.set(records);
    }

    pub fn memory_restored(&self) {
        self.memory.restored.inc();
    }

    pub fn memory_changes(&self, records: u64) {
        self.memory.changes.inc_by(records);
    }

    pub fn memory_store(&self, bytes: u64, objects: i64) {
        self.memory.store_bytes.set(bytes as i64);
        self.memory.objects.set(objects);
    }

    pub fn memory_failures(&self, failures: u64) {
        self.memory.failures.inc_by(failures);
    }

    pub fn memory_misrouted(&self) {
        self.memory.misrouted.inc();
    }

    pub fn memory_out_of_order(&self, alerts: u64) {
        self.memory.out_of_order.inc_by(alerts);
    }

    /// One filter's counters, to record its evaluations with
    /// [`Metrics::record`]. Resolve it once per filter set, not per alert.
    pub fn filter(&self, name: &str) -> FilterMetrics {
        let l = FilterLabels {
            filter: name.to_string(),
        };
        // Every kind at zero from the start, so that a rule or a panel
        // on one can be written before the first failure.
        for kind in crate::sandbox::FailureKind::ALL {
            let _ = self.failures.get_or_create(&FailureLabels {
                filter: name.to_string(),
                kind: kind.name().to_string(),
            });
        }
        FilterMetrics {
            name: name.to_string(),
            alerts: self.alerts.get_or_create(&l).clone(),
            accepted: self.accepted.get_or_create(&l).clone(),
            rejected: self.rejected.get_or_create(&l).clone(),
            skipped: self.skipped.get_or_create(&l).clone(),
            failed: self.failed.get_or_create(&l).clone(),
            fuel: self.fuel.get_or_create(&l).clone(),
            nanos: self.nanos.get_or_create(&l).clone(),
            seconds: self.seconds.get_or_create(&l).clone(),
        }
    }

    /// Records one filter's evaluation of one alert: a few atomic adds
    /// (a label lookup only for a failure, to count it by kind).
    pub fn record(&self, filter: &FilterMetrics, evaluation: &Evaluation) {
        match &evaluation.outcome {
            Outcome::Skipped { .. } => {
                filter.skipped.inc();
                return;
            }
            Outcome::Verdict(Verdict::Accept { .. }) => {
                filter.accepted.inc();
            }
            Outcome::Verdict(Verdict::Reject) => {
                filter.rejected.inc();
            }
            Outcome::Failed(failure) => {
                filter.failed.inc();
                self.failures
                    .get_or_create(&FailureLabels {
                        filter: filter.name.clone(),
                        kind: failure.kind.name().to_string(),
                    })
                    .inc();
            }
        }
        filter.alerts.inc();
        filter.fuel.inc_by(evaluation.fuel);
        filter.nanos.inc_by(evaluation.nanos);
        filter.seconds.observe(evaluation.nanos as f64 * 1e-9);
    }

    /// Records which filters are deployed now (each filter-set change).
    pub fn describe_filters(&self, filters: Vec<(FilterInfo, Arc<LoadedFilter>)>) {
        let mut deployed = self.deployed.lock().unwrap();
        for (gone, _) in deployed.iter() {
            if !filters.iter().any(|(info, _)| info.name == gone.name) {
                self.quarantined.remove(&FilterLabels {
                    filter: gone.name.clone(),
                });
            }
        }
        *deployed = filters;
    }

    /// Sets each deployed filter's quarantine gauge from its health now.
    fn refresh_quarantine(&self) -> Vec<(FilterInfo, bool)> {
        let deployed = self.deployed.lock().unwrap();
        deployed
            .iter()
            .map(|(info, filter)| {
                let quarantined = filter.health.quarantined().is_some();
                self.quarantined
                    .get_or_create(&FilterLabels {
                        filter: info.name.clone(),
                    })
                    .set(i64::from(quarantined));
                (info.clone(), quarantined)
            })
            .collect()
    }

    fn counts_of(&self, name: &str, quarantined: bool) -> FilterCounts {
        let m = self.filter(name);
        FilterCounts {
            alerts: m.alerts.get(),
            accepted: m.accepted.get(),
            rejected: m.rejected.get(),
            failed: m.failed.get(),
            skipped: m.skipped.get(),
            fuel: m.fuel.get(),
            nanos: m.nanos.get(),
            quarantined,
        }
    }

    /// One deployed filter's counters now; None if it is not deployed.
    pub fn counts(&self, name: &str) -> Option<FilterCounts> {
        let quarantined = {
            let deployed = self.deployed.lock().unwrap();
            let (_, filter) = deployed.iter().find(|(info, _)| info.name == name)?;
            filter.health.quarantined().is_some()
        };
        Some(self.counts_of(name, quarantined))
    }

    /// Every counter of the status page, now.
    pub fn snapshot(&self) -> Snapshot {
        let filters = self
            .refresh_quarantine()
            .into_iter()
            .map(|(info, quarantined)| {
                let counts = self.counts_of(&info.name, quarantined);
                (info, counts)
            })
            .collect();
        Snapshot {
            at: Instant::now(),
            filters,
            consumed: self.consumed.get(),
            produced: self.produced.get(),
            produce_errors: self.produce_errors.get(),
            dead_letters: self.dead_letters.get(),
            lag: self.lag_total.load(Ordering::Relaxed),
            assigned: self.assigned.get(),
            ready: self.ready(),
            memory: self
                .memory
                .on
                .load(Ordering::Relaxed)
                .then(|| MemorySnapshot {
                    store_bytes: self.memory.store_bytes.get(),
                    objects: self.memory.objects.get(),
                    restoring: self.memory.restoring.get(),
                    restore_remaining: self.memory.restore_remaining.get(),
                    restored: self.memory.restored.get(),
                    changes: self.memory.changes.get(),
                    failures: self.memory.failures.get(),
                    misrouted: self.memory.misrouted.get(),
                    out_of_order: self.memory.out_of_order.get(),
                }),
        }
    }

    pub fn consumed(&self) {
        self.consumed.inc();
    }

    pub fn produced(&self) {
        self.produced.inc();
    }

    pub fn produce_error(&self) {
        self.produce_errors.inc();
    }

    pub fn dead_letter(&self) {
        self.dead_letters.inc();
    }

    /// Offsets committed by a transaction (exactly-once): each the next
    /// offset a restart reads.
    pub fn committed(&self, offsets: &[(String, i32, i64)]) {
        let mut committed = self.committed.lock().unwrap();
        for (topic, partition, next) in offsets {
            committed.insert((topic.clone(), *partition), *next);
        }
    }

    /// Registry records not yet applied here (the follower's count).
    pub fn registry_behind(&self, records: i64) {
        self.registry_behind.set(records);
    }

    pub fn upload_accepted(&self) {
        self.uploads.inc();
    }

    pub fn admin_refused(&self, status: u16) {
        self.refused
            .get_or_create(&StatusLabels {
                status: status.to_string(),
            })
            .inc();
    }

    /// Takes in librdkafka's statistics (the consumer's, once a second):
    /// lag per assigned partition, and the connection state `/readyz`
    /// answers from.
    pub fn observe(&self, stats: &rdkafka::Statistics) {
        self.lag.clear();
        self.committed_lag.clear();
        let transactions = self.committed.lock().unwrap().clone();
        let mut total = 0;
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                // Only partitions this instance is fetching: librdkafka
                // keeps revoked partitions in its statistics with their
                // last offsets (and lists an internal partition -1).
                if *partition < 0 || p.fetch_state != "active" {
                    continue;
                }
                // The last stable offset (read_committed) minus this
                // instance's position: what is left to consume. Not
                // librdkafka's consumer_lag, which counts from the
                // committed offset, which transactions do not update.
                let position = if p.app_offset >= 0 {
                    p.app_offset
                } else {
                    p.committed_offset
                };
                if p.ls_offset < 0 || position < 0 {
                    continue;
                }
                let labels = PartitionLabels {
                    topic: topic.clone(),
                    partition: partition.to_string(),
                };
                let lag = (p.ls_offset - position).max(0);
                self.lag.get_or_create(&labels).set(lag);
                total += lag;
                // The consumer's own commits (at-least-once), or those
                // of this instance's transactions; none yet: absent.
                let committed = transactions
                    .get(&(topic.clone(), *partition))
                    .copied()
                    .unwrap_or(-1)
                    .max(p.committed_offset);
                if committed >= 0 {
                    self.committed_lag
                        .get_or_create(&labels)
                        .set((p.ls_offset - committed).max(0));
                }
            }
        }
        // Bootstrap entries (node id -1) are addresses, not brokers.
        let brokers: Vec<_> = stats.brokers.values().filter(|b| b.nodeid >= 0).collect();
        let group = stats.cgrp.as_ref();
        let readiness = Readiness {
            brokers_up: brokers.iter().filter(|b| b.state == "UP").count(),
            brokers: brokers.len(),
            group_state: group.map_or("none".into(), |g| g.join_state.clone()),
            assigned: group.map_or(0, |g| i64::from(g.assignment_size)),
        };
        self.assigned.set(readiness.assigned);
        self.brokers_up.set(readiness.brokers_up as i64);
        self.lag_total.store(total, Ordering::Relaxed);
        *self.readiness.lock().unwrap() = readiness;
        let now = self.epoch.elapsed().as_nanos() as u64;
        self.last_statistics.store(now, Ordering::Relaxed);
    }

    /// Ready: recent statistics show a broker up, the consumer group
    /// joined, and at least one partition assigned. Otherwise the reason.
    pub fn ready(&self) -> Result<(), String> {
        let restoring = self.memory.restoring.get();
        if restoring > 0 {
            return Err(format!(
                "restoring the object memory of {restoring} assigned partitions from the \
                 changelog ({} records to read)",
                self.memory.restore_remaining.get()
            ));
        }
        let last = self.last_statistics.load(Ordering::Relaxed);
        if last == u64::MAX {
            return Err("no statistics from the Kafka consumer yet (starting)".into());
        }
        let age = self
            .epoch
            .elapsed()
            .saturating_sub(Duration::from_nanos(last));
        if age > STALE_STATISTICS {
            return Err(format!(
                "no statistics from the Kafka consumer for {}s: the consuming thread is stuck or stopped",
                age.as_secs()
            ));
        }
        let r = self.readiness.lock().unwrap().clone();
        if r.brokers_up == 0 {
            return Err(format!("no broker connected (0 of {} up)", r.brokers));
        }
        if r.group_state != "steady" {
            return Err(format!(
                "consumer group not joined (join state {})",
                r.group_state
            ));
        }
        if r.assigned == 0 {
            return Err("no input partition assigned to this instance".into());
        }
        Ok(())
    }

    /// The statuses the admin API refuses with, at zero from the start.
    const REFUSALS: [u16; 11] = [400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 503];

    /// Everything, in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        self.refresh_quarantine();
        let last = self.last_statistics.load(Ordering::Relaxed);
        // Before the first statistics: the process's age.
        let since = if last == u64::MAX {
            self.epoch.elapsed()
        } else {
            self.epoch
                .elapsed()
                .saturating_sub(Duration::from_nanos(last))
        };
        self.statistics_age.set(since.as_secs_f64());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The process's own series, read from `/proc` at each scrape under the
/// names Prometheus's process collector gives them (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
/// `process_open_fds`, `process_max_fds`, `process_start_time_seconds`),
/// so that the usual panels and rules work unchanged. Elsewhere than
/// Linux, or where `/proc` does not answer, none is given.
#[derive(Debug)]
struct Process;

/// What [`Process`] reads: (name, help, value, a counter).
fn process_series() -> Option<Vec<(&'static str, &'static str, f64, bool)>> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command's name, which may hold spaces and parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    // SAFETY: sysconf and getrlimit only read process-wide settings.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK) as f64,
            libc::sysconf(libc::_SC_PAGESIZE) as f64,
        )
    };
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as above; `limit` is a valid rlimit to write to.
    let max_fds = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 }
        .then_some(limit.rlim_cur as f64);
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    let mut out = vec![
        (
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            (field(14)? + field(15)?) / ticks,
            true,
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            field(24)? * page,
            false,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            field(23)?,
            false,
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            boot + field(22)? / ticks,
            false,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors",
            open_fds,
            false,
        ),
    ];
    if let Some(max) = max_fds {
        out.push((
            "process_max_fds",
            "Maximum number of open file descriptors",
            max,
            false,
        ));
    }
    Some(out)
}

impl prometheus_client::collector::Collector for Process {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        for (name, help, value, counter) in process_series().unwrap_or_default() {
            if counter {
                let c = ConstCounter::new(value);
                c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
            } else {
                let g = ConstGauge::new(value);
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{Failure, FailureKind};

    fn evaluation(outcome: Outcome) -> Evaluation {
        Evaluation {
            outcome,
            state: Default::default(),
            fuel: 1000,
            nanos: 2_000,
        }
    }

    #[test]
    fn counts_each_outcome_under_its_filter_and_failures_by_kind() {
        let m = Metrics::new();
        let bright = m.filter("bright");
        m.record(&bright, &evaluation(Outcome::Verdict(Verdict::Reject)));
        m.record(
            &bright,
            &evaluation(Outcome::Verdict(Verdict::Accept {
                score: None,
                tags: vec![],
                annotations: vec![],
            })),
        );
        m.record(
            &bright,
            &evaluation(Outcome::Failed(Failure {
                kind: FailureKind::OutOfFuel,
                message: "x".into(),
            })),
        );
        m.record(
            &bright,
            &evaluation(Outcome::Skipped {
                reason: "rubin".into(),
                quarantined: false,
            }),
        );
        m.dead_letter();
        let text = m.encode();
        for line in [
            "bandpass_filter_alerts_total{filter=\"bright\"} 3",
            "bandpass_filter_accepted_total{filter=\"bright\"} 1",
            "bandpass_filter_rejected_total{filter=\"bright\"} 1",
            "bandpass_filter_skipped_total{filter=\"bright\"} 1",
            "bandpass_filter_failures_total{filter=\"bright\",kind=\"out-of-fuel\"} 1",
            "bandpass_filter_fuel_total{filter=\"bright\"} 3000",
            "bandpass_filter_seconds_count{filter=\"bright\"} 3",
            "bandpass_dead_letters_total 1",
        ] {
            assert!(text.contains(line), "no {line} in\n{text}");
        }
    }

    #[test]
    fn every_family_is_there_from_the_start_with_the_build_and_the_process() {
        let m = Metrics::new();
        m.filter("bright");
        // At least 50 ms of CPU spent, as the kernel counts it otherwise.
        let spent = || {
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: `usage` is a valid rusage to write to.
            assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
            let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            seconds(usage.ru_utime) + seconds(usage.ru_stime)
        };
        let mut x = 1u64;
        while spent() < 0.05 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        let text = m.encode();
        for line in [
            "bandpass_filter_failures_total{filter=\"bright\",kind=\"deadline\"} 0",
            "bandpass_filter_failures_total{filter=\"bright\",kind=\"init\"} 0",
            "bandpass_admin_refused_total{status=\"401\"} 0",
            "bandpass_admin_refused_total{status=\"422\"} 0",
            concat!(
                "bandpass_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
            "bandpass_registry_behind_records 0",
            "bandpass_brokers_up 0",
            "# TYPE bandpass_statistics_age_seconds gauge",
            "# TYPE process_cpu_seconds counter",
            "# TYPE process_resident_memory_bytes gauge",
            "process_open_fds ",
            "process_max_fds ",
        ] {
            assert!(text.contains(line), "no {line} in\n{text}");
        }
        let value = |name: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        // This test process: resident, started within the last day,
        // some CPU spent.
        assert!(value("process_resident_memory_bytes") > 1e6);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = value("process_start_time_seconds");
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} vs {now}"
        );
        // Clock ticks of 10 ms: within a tick or two of the kernel's own.
        let cpu = value("process_cpu_seconds_total");
        assert!(cpu >= 0.03 && cpu <= spent() + 0.02, "{cpu}");
    }

    #[test]
    fn not_ready_before_any_statistics() {
        let err = Metrics::new().ready().unwrap_err();
        assert!(err.contains("no statistics"), "{err}");
    }
}
