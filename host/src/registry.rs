//! The fleet registry of uploaded filters: a compacted Kafka topic that
//! every `bandpass serve` instance of a fleet follows from its start, so
//! that an upload, a change or a deletion made through any instance's
//! admin API reaches every instance, and a restarted instance finds the
//! filters again, with no new infrastructure.
//!
//! One record per filter, keyed `<group>/<filter>`; its value is the
//! filter's [`Record`] (JSON) followed by the component's bytes, and a
//! deletion is a tombstone (no value). Compaction keeps the latest record
//! of each key. The topic is created with one partition (one order for
//! every change) and a `max.message.bytes` fitting the largest upload.
//!
//! Owns: the record format, the topic, the follower thread, and turning
//! records into [`Deployment`]s (loading components, reusing what runs).
//! Must never: run a record whose group is not configured here, whose
//! names are not names, whose component is not the one its sha256 says,
//! or whose limits are over its group's maximum (the admin API checks
//! all of that and the canary before it writes; a record written to the
//! topic some other way is checked again); or let one record that does
//! not load take the others down. Anyone who can write to the topic can
//! register code: restrict it with Kafka ACLs to the instances.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{Config, GroupConfig, LimitsConfig, is_name};
use crate::deploy::{Deployment, Sources, deployment_key};
use crate::kafka::{Logged, Role, client_config};
use crate::sandbox::{Limits, LoadedFilter, Sandbox};

/// What the registry holds of one uploaded filter, besides its bytes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub group: String,
    pub name: String,
    /// Disabled filters stay registered but do not run.
    pub enabled: bool,
    pub params: BTreeMap<String, String>,
    pub limits: Limits,
    /// From the component's own manifest.
    pub version: String,
    pub survey: String,
    pub description: String,
    pub sha256: String,
    /// `operator` or the group that uploaded it.
    pub uploaded_by: String,
    pub uploaded_at_ms: u64,
}

impl Record {
    /// The registry key, `<group>/<filter>`.
    pub fn key(&self) -> String {
        key(&self.group, &self.name)
    }

    /// The deployment's name in headers, metrics and logs.
    pub fn deployment_name(&self) -> String {
        deployment_name(&self.group, &self.name)
    }

    /// Where its accepted alerts go: derived, never chosen.
    pub fn output_topic(&self) -> String {
        output_topic(&self.group, &self.name)
    }

    /// Equal keys mean one loaded filter can serve both.
    pub fn load_key(&self) -> String {
        let params: Vec<(String, String)> = self.params.clone().into_iter().collect();
        deployment_key(&self.sha256, &params, &self.limits)
    }
}

pub fn key(group: &str, name: &str) -> String {
    format!("{group}/{name}")
}

pub fn deployment_name(group: &str, name: &str) -> String {
    format!("{group}.{name}")
}

pub fn output_topic(group: &str, name: &str) -> String {
    format!("bandpass.{group}.{name}")
}

/// The first bytes of every record value (format version 1).
const MAGIC: &[u8; 4] = b"BPR1";

/// A record's value: magic, the JSON length (4 bytes, big-endian), the
/// JSON, the component.
pub fn encode(record: &Record, component: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(record).expect("a record serializes");
    let mut out = Vec::with_capacity(8 + json.len() + component.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(component);
    out
}

/// The inverse of [`encode`].
pub fn decode(value: &[u8]) -> Result<(Record, Bytes), String> {
    let rest = value
        .strip_prefix(MAGIC)
        .ok_or("not a bandpass registry record (no BPR1 prefix)")?;
    if rest.len() < 4 {
        return Err("truncated record".into());
    }
    let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
    let rest = &rest[4..];
    if rest.len() < len {
        return Err("truncated record".into());
    }
    let record: Record = serde_json::from_slice(&rest[..len]).map_err(|e| e.to_string())?;
    Ok((record, Bytes::copy_from_slice(&rest[len..])))
}

/// One registered filter.
#[derive(Clone)]
pub struct Entry {
    pub record: Record,
    pub component: Bytes,
    /// Where the record is in the topic: a new record, a new offset.
    pub offset: (i32, i64),
}

/// What an instance runs of an entry.
#[derive(Clone)]
pub enum Running {
    /// Deployed in this instance's filter set.
    Deployed(Deployment),
    /// Registered but disabled.
    Disabled,
    /// It did not load here (the error says why); the others run.
    Failed(String),
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    running: BTreeMap<String, ((i32, i64), Running)>,
    /// Per partition, the offset below which every record is taken in.
    read: HashMap<i32, i64>,
    /// Per partition, the offset below which every record is applied
    /// (its deployments handed to the pipeline).
    applied: HashMap<i32, i64>,
    /// The [`Sources`] sequence number of the set that applied them.
    applied_seq: u64,
}

/// The registry as one instance follows it.
pub struct Registry {
    topic: String,
    producer: FutureProducer<Logged>,
    sandbox: Arc<Sandbox>,
    state: Mutex<State>,
    /// Filters the admin API has just validated, by registry key (with
    /// their load key), so that applying their record does not compile
    /// them a second time.
    preloaded: Mutex<HashMap<String, (String, Arc<LoadedFilter>)>>,
    sources: Arc<Mutex<Sources>>,
    /// How many filter sets the pipeline has published (see [`Sources`]).
    published: Arc<AtomicU64>,
    /// The groups this instance knows, to check records against
    /// (replaced on SIGHUP).
    groups: std::sync::RwLock<Vec<GroupConfig>>,
    /// Held while a change is applied (by the follower, or a SIGHUP).
    applying: Mutex<()>,
    max_limits: LimitsConfig,
    /// Topics the service uses otherwise (replaced on SIGHUP).
    reserved: std::sync::RwLock<Vec<String>>,
    /// The follower's last consumer error, until a record reads again.
    trouble: Mutex<Option<String>>,
    /// `admin.uploads.compile_timeout` and `compile_memory`: the bounds
    /// of compiling a record here too, as for an upload.
    compile_timeout: Duration,
    compile_memory: usize,
}

/// How long a start may take to read the registry to its end.
const CATCH_UP: Duration = Duration::from_secs(60);
/// How long an upload waits for its record to run here.
const APPLY_WAIT: Duration = Duration::from_secs(60);

/// How a write to the registry ended.
#[derive(Debug)]
pub enum WriteError {
    /// Not written (or not known to be): nothing changed, try again.
    NotWritten(String),
    /// Written, but this instance did not run it within [`APPLY_WAIT`]
    /// (a stalled pipeline): it will.
    Pending(String),
}

impl Registry {
    /// Creates the topic if it is missing (checking it if not), reads it
    /// to its end, loads every enabled filter into `sources`, and starts
    /// following it on a thread of its own until `stop`.
    pub fn start(
        config: &Config,
        sandbox: Arc<Sandbox>,
        sources: Arc<Mutex<Sources>>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Arc<Registry>> {
        let admin = config.admin.as_ref().expect("uploads need [admin]");
        let topic = admin.uploads.registry_topic.clone();
        // Room for the largest component, its record and batch overhead.
        let max_message = admin.uploads.max_size + (1 << 20);
        ensure_topic(config, &topic, max_message)?;
        let producer: FutureProducer<Logged> =
            client_config(config, Role::RegistryProducer { max_message })
                .create_with_context(Logged)
                .context("creating the registry's Kafka producer")?;
        let consumer = follower(config, &topic, max_message)?;
        let published = sources.lock().unwrap().published();
        let registry = Arc::new(Registry {
            topic: topic.clone(),
            producer,
            sandbox,
            state: Mutex::new(State::default()),
            preloaded: Mutex::new(HashMap::new()),
            sources,
            published,
            groups: std::sync::RwLock::new(admin.groups.clone()),
            applying: Mutex::new(()),
            reserved: std::sync::RwLock::new(reserved_topics(config)),
            trouble: Mutex::new(None),
            max_limits: config.engine.max_limits,
            compile_timeout: admin.uploads.compile_timeout,
            compile_memory: admin.uploads.compile_memory,
        });
        registry.catch_up(&consumer)?;
        let (initial, read) = registry.apply_with(false);
        tracing::info!(
            topic = %topic,
            filters = registry.state.lock().unwrap().entries.len(),
            running = initial.len(),
            "registry of uploaded filters read"
        );
        // In place before the follower can change it; the pipeline starts
        // with it, so it counts as published.
        registry.sources.lock().unwrap().uploaded = initial;
        registry.mark_applied(0, read);
        let follow = registry.clone();
        std::thread::Builder::new()
            .name("bandpass-registry".into())
            .spawn(move || follow.follow(&consumer, &stop))
            .context("starting the registry thread")?;
        Ok(registry)
    }

    /// Reads the topic up to the end it had when this was called.
    fn catch_up(&self, consumer: &BaseConsumer<Logged>) -> anyhow::Result<()> {
        let deadline = Instant::now() + CATCH_UP;
        let assignment = consumer.assignment()?;
        let mut ends = HashMap::new();
        for p in assignment.elements() {
            // A topic created a moment ago may not have a leader yet.
            let high = loop {
                match consumer.fetch_watermarks(&self.topic, p.partition(), Duration::from_secs(5))
                {
                    Ok((_, high)) => break high,
                    Err(e) if Instant::now() > deadline => {
                        return Err(e).with_context(|| {
                            format!("reading the end of registry topic {}", self.topic)
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            };
            ends.insert(p.partition(), high);
        }
        // Done with a partition at its end: its position reaches the end
        // seen above, or the consumer reports the partition's end (after
        // compaction emptied its last offsets, the position stays short).
        let mut at_end: Vec<i32> = ends
            .iter()
            .filter(|(_, end)| **end <= 0)
            .map(|(p, _)| *p)
            .collect();
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => self.take(&m),
                Some(Err(KafkaError::PartitionEOF(p))) => at_end.push(p),
                Some(Err(e)) => tracing::warn!(error = %e, "registry topic: consumer error"),
                None => {
                    let position = consumer.position()?;
                    let done = ends.iter().all(|(&p, &end)| {
                        at_end.contains(&p)
                            || matches!(
                                position.find_partition(&self.topic, p).map(|e| e.offset()),
                                Some(Offset::Offset(o)) if o >= end
                            )
                    });
                    if done {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "could not read registry topic {} to its end (offsets {ends:?}) within {CATCH_UP:?}; check the brokers' logs for that topic",
                    self.topic
                );
            }
        }
    }

    /// Follows the topic: applies each batch of changes once caught up.
    fn follow(&self, consumer: &BaseConsumer<Logged>, stop: &AtomicBool) {
        let mut dirty = false;
        while !stop.load(Ordering::Relaxed) {
            // Once a change came, apply as soon as nothing more is queued.
            let wait = if dirty {
                Duration::ZERO
            } else {
                Duration::from_millis(100)
            };
            match consumer.poll(wait) {
                Some(Ok(m)) => {
                    self.take(&m);
                    *self.trouble.lock().unwrap() = None;
                    dirty = true;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "registry topic: consumer error");
                    *self.trouble.lock().unwrap() = Some(e.to_string());
                }
                None if dirty => {
                    self.apply_and_publish(false);
                    dirty = false;
                }
                None => {}
            }
        }
    }

    /// Applies the entries taken in and hands the set to the pipeline.
    /// `recheck`: look at unchanged entries again (the groups changed).
    fn apply_and_publish(&self, recheck: bool) {
        let _one = self.applying.lock().unwrap();
        let (uploaded, read) = self.apply_with(recheck);
        let seq = self.sources.lock().unwrap().set_uploaded(uploaded);
        self.mark_applied(seq, read);
    }

    /// Takes a reloaded config's groups and topics (SIGHUP): a removed
    /// group's filters stop, and a filter refused for want of its group
    /// runs.
    pub fn reconfigure(&self, config: &Config) {
        *self.groups.write().unwrap() = config
            .admin
            .as_ref()
            .map(|a| a.groups.clone())
            .unwrap_or_default();
        *self.reserved.write().unwrap() = reserved_topics(config);
        self.apply_and_publish(true);
    }

    /// Takes one record into the entries (not yet applied).
    fn take(&self, m: &rdkafka::message::BorrowedMessage<'_>) {
        let at = (m.partition(), m.offset());
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        let value = m.payload().map(decode);
        let mut state = self.state.lock().unwrap();
        match value {
            None => {
                state.entries.remove(&key);
            }
            Some(Ok((record, component))) if record.key() == key => {
                state.entries.insert(
                    key,
                    Entry {
                        record,
                        component,
                        offset: at,
                    },
                );
            }
            Some(Ok((record, _))) => tracing::error!(
                %key,
                claims = %record.key(),
                offset = at.1,
                "registry record under another filter's key; ignored"
            ),
            Some(Err(why)) => {
                tracing::error!(%key, offset = at.1, %why, "unreadable registry record; ignored")
            }
        }
        state.read.insert(at.0, at.1 + 1);
    }

    /// Marks the records `read` covers as applied by the set with
    /// sequence number `seq` (see [`Sources`]).
    fn mark_applied(&self, seq: u64, read: HashMap<i32, i64>) {
        let mut state = self.state.lock().unwrap();
        state.applied = read;
        state.applied_seq = seq;
    }

    /// Why this instance must not run `entry`, if it must not.
    fn refusal(&self, entry: &Entry) -> Option<String> {
        let topic = entry.record.output_topic();
        if self.reserved.read().unwrap().contains(&topic) {
            return Some(format!(
                "its output topic {topic} is one the service uses otherwise"
            ));
        }
        refusal(entry, &self.groups.read().unwrap(), &self.max_limits)
    }

    /// Turns the entries into deployments, reusing the loaded filter of
    /// every entry that did not change (`recheck`: unless the groups or
    /// topics changed and it is now refused, or it had failed). Returns
    /// them with how far the records were read when the entries were.
    fn apply_with(&self, recheck: bool) -> (Vec<Deployment>, HashMap<i32, i64>) {
        let (entries, previous, read) = {
            let state = self.state.lock().unwrap();
            (
                state.entries.clone(),
                state.running.clone(),
                state.read.clone(),
            )
        };
        let mut running = BTreeMap::new();
        let mut out = Vec::new();
        for (key, entry) in &entries {
            let r = &entry.record;
            let unchanged = previous
                .get(key)
                .filter(|(at, _)| *at == entry.offset)
                .map(|(_, running)| running.clone())
                .filter(|running| match running {
                    Running::Failed(_) => !recheck,
                    Running::Deployed(_) => !recheck || self.refusal(entry).is_none(),
                    Running::Disabled => true,
                });
            let now = if !r.enabled {
                Running::Disabled
            } else if let Some(running) = unchanged {
                running
            } else if let Some(why) = self.refusal(entry) {
                tracing::error!(filter = %key, %why, "a registry record refused here");
                Running::Failed(why)
            } else {
                match self.load(entry) {
                    Ok(filter) => Running::Deployed(Deployment {
                        filter,
                        name: r.deployment_name(),
                        output_topic: r.output_topic(),
                        key: r.load_key(),
                    }),
                    Err(why) => {
                        tracing::error!(filter = %key, %why, "an uploaded filter did not load here; the others run");
                        Running::Failed(why)
                    }
                }
            };
            if let Running::Deployed(d) = &now {
                out.push(d.clone());
            }
            running.insert(key.clone(), (entry.offset, now));
        }
        let mut state = self.state.lock().unwrap();
        state.running = running;
        (out, read)
    }

    /// The validated filter the admin API left, else a fresh load.
    fn load(&self, entry: &Entry) -> Result<Arc<LoadedFilter>, String> {
        let preloaded = self.preloaded.lock().unwrap().remove(&entry.record.key());
        if let Some((load_key, f)) = preloaded
            && load_key == entry.record.load_key()
        {
            return Ok(f);
        }
        // Compiled in a child process within the upload's bounds (another
        // instance took the upload: this one has not compiled it yet).
        crate::sandbox::compile::compile_bounded(
            &self.sandbox,
            &entry.component,
            &entry.record.sha256,
            self.compile_timeout,
            self.compile_memory,
        )
        .map_err(|failure| failure.to_string())?;
        let params = entry.record.params.clone().into_iter().collect();
        self.sandbox
            .load(&entry.component, params, entry.record.limits)
            .map_err(|e| e.to_string())
    }

    /// Writes a filter's record and waits until this instance runs it
    /// (or has dropped it, for a disabled one). `validated` is the
    /// loaded filter the admin API checked, to be deployed as it is.
    pub async fn put(
        &self,
        record: &Record,
        component: &[u8],
        validated: Option<Arc<LoadedFilter>>,
    ) -> Result<(), WriteError> {
        let key = record.key();
        if let Some(f) = validated {
            self.preloaded
                .lock()
                .unwrap()
                .insert(key.clone(), (record.load_key(), f));
        }
        let value = encode(record, component);
        let written = self.write(&key, Some(&value)).await;
        // Used by now if it was going to be (or the record was refused,
        // superseded, or not written): never kept.
        self.preloaded.lock().unwrap().remove(&key);
        written
    }

    /// Deletes a filter (a tombstone) and waits until it is gone here.
    pub async fn delete(&self, group: &str, name: &str) -> Result<(), WriteError> {
        self.write(&key(group, name), None).await
    }

    async fn write(&self, key: &str, value: Option<&[u8]>) -> Result<(), WriteError> {
        let mut record = FutureRecord::<str, [u8]>::to(&self.topic).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        let delivered = self
            .producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| {
                WriteError::NotWritten(format!(
                    "writing {key} to registry topic {} failed or timed out ({e}); nothing changed that is known: try again",
                    self.topic
                ))
            })?;
        let pending = || {
            let why = match self.trouble.lock().unwrap().clone() {
                Some(error) => format!("reading the registry topic fails here: {error}"),
                None => "its stream may be stalled".to_string(),
            };
            WriteError::Pending(format!(
                "{key} is written to registry topic {} but this instance did not run it within {APPLY_WAIT:?} ({why}); it will run once that clears",
                self.topic
            ))
        };
        let deadline = Instant::now() + APPLY_WAIT;
        // First this instance applies the record, then its pipeline
        // publishes the set that holds it.
        let seq = loop {
            {
                let state = self.state.lock().unwrap();
                let applied = state
                    .applied
                    .get(&delivered.partition)
                    .copied()
                    .unwrap_or(0);
                if applied > delivered.offset {
                    break state.applied_seq;
                }
            }
            if Instant::now() > deadline {
                return Err(pending());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        while self.published.load(Ordering::Acquire) < seq {
            if Instant::now() > deadline {
                return Err(pending());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Every registered filter, by key.
    pub fn entries(&self) -> BTreeMap<String, Entry> {
        self.state.lock().unwrap().entries.clone()
    }

    /// One registered filter.
    pub fn entry(&self, group: &str, name: &str) -> Option<Entry> {
        self.state
            .lock()
            .unwrap()
            .entries
            .get(&key(group, name))
            .cloned()
    }

    /// What this instance runs of a registered filter, and whether that
    /// is its latest record, in a set the pipeline has published (if not,
    /// the latest change is still on its way here).
    pub fn running(&self, group: &str, name: &str) -> Option<(Running, bool)> {
        let state = self.state.lock().unwrap();
        let key = key(group, name);
        let (at, running) = state.running.get(&key)?;
        let latest = state.entries.get(&key).is_some_and(|e| e.offset == *at)
            && self.published.load(Ordering::Acquire) >= state.applied_seq;
        Some((running.clone(), latest))
    }
}

/// The topics no upload may produce to: the inputs, the dead-letter and
/// registry topics, and the config's output topics.
pub fn reserved_topics(config: &Config) -> Vec<String> {
    let mut out = config.input.topics.clone();
    out.push(config.dead_letter_topic.clone());
    if let Some(admin) = &config.admin {
        out.push(admin.uploads.registry_topic.clone());
    }
    out.extend(config.filters.iter().map(|f| f.output_topic.clone()));
    out
}

/// Why an instance with these groups must not run `entry`, if it must
/// not: its group is not configured, a name is not a name, the component
/// is not the one its sha256 names, or its limits are over the group's
/// maximum (`engine_max` where the group sets none).
fn refusal(entry: &Entry, groups: &[GroupConfig], engine_max: &LimitsConfig) -> Option<String> {
    let r = &entry.record;
    let Some(group) = groups.iter().find(|g| g.name == r.group) else {
        return Some(format!(
            "group '{}' is not configured here ([[admin.group]])",
            r.group
        ));
    };
    if !is_name(&r.name, 64) {
        return Some(format!("'{}' is not a filter name", r.name));
    }
    if crate::sandbox::sha256_hex(&entry.component) != r.sha256 {
        return Some("the component is not the one its sha256 names".into());
    }
    let max = group.max_limits.unwrap_or(*engine_max);
    let asked = LimitsConfig::of(&r.limits);
    (!asked.within(&max)).then(|| {
        format!(
            "its limits ({}) are over group '{}''s maximum ({})",
            asked.describe(),
            group.name,
            max.describe()
        )
    })
}

/// Creates the registry topic (compacted, one partition) if it is
/// missing; an existing one must be compacted (a deleting topic would
/// lose filters), and one whose `max.message.bytes` is too small for
/// `admin.uploads.max_size` is warned about.
fn ensure_topic(config: &Config, topic: &str, max_message: usize) -> anyhow::Result<()> {
    let admin: AdminClient<Logged> = client_config(config, Role::RegistryAdmin)
        .create_with_context(Logged)
        .context("creating a Kafka admin client for the registry topic")?;
    let max = max_message.to_string();
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact")
        .set("max.message.bytes", &max);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = runtime
        .block_on(admin.create_topics([&new], &options))
        .with_context(|| format!("creating registry topic {topic}"))?;
    // Not created (say, no permission to create topics): fine if it exists.
    let mut refused = None;
    for result in created {
        match result {
            Ok(_) => {
                tracing::info!(%topic, "registry topic created (compacted)");
                return Ok(());
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => refused = Some(code),
        }
    }
    let described = runtime
        .block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options))
        .ok()
        .and_then(|mut r| r.pop())
        .and_then(Result::ok);
    let Some(described) = described else {
        anyhow::bail!(
            "cannot create registry topic {topic} ({}) nor read its configuration: create it (cleanup.policy=compact, max.message.bytes={max}) and let this instance describe it, or name another in admin.uploads.registry_topic",
            refused.map_or("it exists".to_string(), |c| c.to_string())
        );
    };
    let value = |name: &str| described.get(name).and_then(|e| e.value.clone());
    let policy = value("cleanup.policy").unwrap_or_default();
    if !policy.split(',').any(|p| p.trim() == "compact") {
        anyhow::bail!(
            "registry topic {topic} has cleanup.policy={policy}: it must be compact, or filters would be deleted with old segments; set it, or name another topic in admin.uploads.registry_topic"
        );
    }
    let limit: usize = value("max.message.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if limit < max_message {
        tracing::warn!(
            %topic,
            limit,
            needed = max_message,
            "the registry topic's max.message.bytes is below admin.uploads.max_size plus room for the record: large uploads will be refused when written; raise it"
        );
    }
    Ok(())
}

/// A consumer assigned every partition of the topic from its beginning
/// (no group membership, no commits: every instance reads it all).
fn follower(
    config: &Config,
    topic: &str,
    max_message: usize,
) -> anyhow::Result<BaseConsumer<Logged>> {
    let consumer: BaseConsumer<Logged> =
        client_config(config, Role::RegistryReader { max_message })
            .create_with_context(Logged)
            .context("creating the registry's Kafka consumer")?;
    let deadline = Instant::now() + CATCH_UP;
    let partitions = loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("reading the metadata of registry topic {topic}"))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if !partitions.is_empty() {
            break partitions;
        }
        if Instant::now() > deadline {
            anyhow::bail!("registry topic {topic} has no partitions after {CATCH_UP:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            group: "hosts".into(),
            name: "bright".into(),
            enabled: true,
            params: [("max_mag".to_string(), "18".to_string())].into(),
            limits: Limits::default(),
            version: "0.1.0".into(),
            survey: "ztf".into(),
            description: "d".into(),
            sha256: "ab".into(),
            uploaded_by: "hosts".into(),
            uploaded_at_ms: 1,
        }
    }

    #[test]
    fn a_record_reads_back_as_written_with_its_component() {
        let r = record();
        let (back, component) = decode(&encode(&r, b"\0asm...")).unwrap();
        assert_eq!(back, r);
        assert_eq!(&component[..], b"\0asm...");
    }

    #[test]
    fn a_value_that_is_not_a_record_is_refused() {
        assert!(decode(b"{}").unwrap_err().contains("BPR1"));
        let mut v = encode(&record(), b"x");
        v.truncate(10);
        assert!(decode(&v).unwrap_err().contains("truncated"));
    }

    #[test]
    fn a_record_is_refused_unless_its_group_names_component_and_limits_check_out() {
        let group = GroupConfig {
            name: "hosts".into(),
            token_sha256: "0".repeat(64),
            max_filters: 10,
            max_limits: None,
            time_budget: None,
        };
        let max = LimitsConfig::default();
        let component = Bytes::from_static(b"\0asm component");
        let entry = |change: &dyn Fn(&mut Record)| {
            let mut r = record();
            r.sha256 = crate::sandbox::sha256_hex(&component);
            change(&mut r);
            Entry {
                record: r,
                component: component.clone(),
                offset: (0, 0),
            }
        };
        let groups = std::slice::from_ref(&group);
        assert_eq!(refusal(&entry(&|_| {}), groups, &max), None);
        let why = |change: &dyn Fn(&mut Record)| refusal(&entry(change), groups, &max).unwrap();
        assert!(why(&|r| r.group = "rivals".into()).contains("group 'rivals' is not configured"));
        assert!(why(&|r| r.name = "a/b".into()).contains("not a filter name"));
        assert!(why(&|r| r.sha256 = "ab".into()).contains("sha256"));
        assert!(
            why(&|r| r.limits.fuel_per_alert = max.fuel + 1)
                .contains("over group 'hosts''s maximum")
        );
    }

    #[test]
    fn names_and_topics_are_derived_from_group_and_filter() {
        let r = record();
        assert_eq!(r.key(), "hosts/bright");
        assert_eq!(r.deployment_name(), "hosts.bright");
        assert_eq!(r.output_topic(), "bandpass.hosts.bright");
    }
}
