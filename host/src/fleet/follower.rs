//! The registry as one instance follows it ([`Fleet`]): read to its end
//! at start, then followed on a thread of its own; each batch of changes
//! becomes the uploaded half of the filter set ([`crate::deploy::Desired`]).
//! Writes (an upload, a change, a deletion) go to the topic and wait
//! until this instance runs them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::admission::Admitted;
use super::policy::Policy;
use super::record::{
    Entry, Record, SkyEntry, SkyFile, SkyKind, SkyRecord, Stored, decode_any, encode, encode_sky,
    key, sky_key,
};
use super::topic::{ensure_topic, reader};
use crate::config::Config;
use crate::deploy::{Deployment, Desired};
use crate::kafka::{Logged, Role, client_config};
use crate::sandbox::{LoadedFilter, Sandbox};

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

/// A group's sky file as read here, or why it did not read.
type ReadFile = Result<SkyFile, String>;

#[derive(Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    running: BTreeMap<String, ((i32, i64), Running)>,
    /// Per partition, the offset below which every record is taken in.
    read: HashMap<i32, i64>,
    /// Per partition, the offset below which every record is applied
    /// (its deployments handed to the pipeline).
    applied: HashMap<i32, i64>,
    /// The [`Desired`] sequence number of the set that applied them.
    applied_seq: u64,
    /// The groups' watchlists and sky maps, by registry key.
    sky_entries: BTreeMap<String, SkyEntry>,
    /// Each sky entry read (at its offset), so that a change of another
    /// entry does not read it again; an error says why it is not used.
    read_files: HashMap<String, ((i32, i64), ReadFile)>,
    /// When the next sky entry expires (milliseconds since 1970).
    next_expiry: Option<u64>,
    /// Why a sky entry is not used here, by key (shown by the API).
    sky_problems: HashMap<String, String>,
}

/// The registry as one instance follows it.
pub struct Fleet {
    topic: String,
    producer: FutureProducer<Logged>,
    sandbox: Arc<Sandbox>,
    state: Mutex<State>,
    /// Filters admission has just checked, by registry key (with their
    /// load key), so that applying their record does not load them a
    /// second time.
    preloaded: Mutex<HashMap<String, (String, Arc<LoadedFilter>)>>,
    desired: Arc<Mutex<Desired>>,
    /// How many filter sets the pipeline has published (see [`Desired`]).
    published: Arc<AtomicU64>,
    /// The rules records are checked against (replaced on SIGHUP).
    policy: RwLock<Arc<Policy>>,
    /// Held while a change is applied (by the follower, or a SIGHUP).
    applying: Mutex<()>,
    /// The follower's last consumer error, until a record reads again.
    trouble: Mutex<Option<String>>,
    /// `admin.uploads.compile_timeout` and `compile_memory`: the bounds
    /// of compiling a record here too, as for an upload.
    compile_timeout: Duration,
    compile_memory: usize,
    /// The history columns this instance keeps (none without object
    /// memory) and its catalogues: a record whose filter asks for others
    /// is refused here, as its upload would have been.
    memory: Option<Arc<crate::memory::history::Kept>>,
    /// The config's catalogues, maps and watchlists; `sky` adds the
    /// groups' maps and watchlists to them.
    base_sky: Arc<crate::sky::Sky>,
    sky: RwLock<Arc<crate::sky::Sky>>,
    /// The config it started with: its Kafka settings and `[output]`,
    /// to create an uploaded filter's output topic.
    config: Config,
    /// Where the follower reports how far behind the topic it is.
    metrics: Arc<crate::metrics::Metrics>,
}

/// How long a start may take to read the registry to its end.
pub(super) const CATCH_UP: Duration = Duration::from_secs(60);
/// How often the follower reports how far behind it is.
const BEHIND_EVERY: Duration = Duration::from_secs(5);
/// How long the follower waits for the topic's end offsets.
const BEHIND_ASK: Duration = Duration::from_millis(500);
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

impl Fleet {
    /// Creates the topic if it is missing (checking it if not), reads it
    /// to its end, loads every enabled filter into `desired`, and starts
    /// following it on a thread of its own until `stop`.
    pub fn start(
        config: &Config,
        sandbox: Arc<Sandbox>,
        desired: Arc<Mutex<Desired>>,
        stop: Arc<AtomicBool>,
        sky: Arc<crate::sky::Sky>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Arc<Fleet>> {
        let admin = config.admin.as_ref().expect("uploads need [admin]");
        let topic = admin.uploads.registry_topic.clone();
        // Room for the largest component, its record and batch overhead.
        let max_message = admin.uploads.max_size + (1 << 20);
        ensure_topic(config, &topic, max_message)?;
        let producer: FutureProducer<Logged> =
            client_config(config, Role::RegistryProducer { max_message })
                .create_with_context(Logged)
                .context("creating the registry's Kafka producer")?;
        let consumer = reader(config, &topic, max_message)?;
        let published = desired.lock().unwrap().published();
        let registry = Arc::new(Fleet {
            topic: topic.clone(),
            producer,
            sandbox,
            state: Mutex::new(State::default()),
            preloaded: Mutex::new(HashMap::new()),
            desired,
            published,
            policy: RwLock::new(Arc::new(Policy::of(config))),
            applying: Mutex::new(()),
            trouble: Mutex::new(None),
            compile_timeout: admin.uploads.compile_timeout,
            compile_memory: admin.uploads.compile_memory,
            memory: config.remembers_objects().then(|| config.kept_history()),
            sky: RwLock::new(sky.clone()),
            base_sky: sky,
            config: config.clone(),
            metrics,
        });
        registry.catch_up(&consumer)?;
        let (initial, sky, read) = registry.apply_with(false);
        tracing::info!(
            topic = %topic,
            filters = registry.state.lock().unwrap().entries.len(),
            running = initial.len(),
            "registry of uploaded filters read"
        );
        // In place before the follower can change it; the pipeline starts
        // with it, so it counts as published.
        {
            let mut desired = registry.desired.lock().unwrap();
            desired.uploaded = initial;
            desired.sky = sky;
        }
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
        self.report_behind(consumer);
        let mut reported = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if reported.elapsed() >= BEHIND_EVERY {
                self.report_behind(consumer);
                reported = Instant::now();
            }
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
                None if dirty || self.expiring() => {
                    self.apply_and_publish(false);
                    dirty = false;
                }
                None => {}
            }
        }
    }

    /// Sets `bandpass_registry_behind_records`: the records past this
    /// consumer's position and those read but not yet applied. Asks the
    /// broker for the ends (briefly: a broker that does not answer
    /// leaves the last figure).
    fn report_behind(&self, consumer: &BaseConsumer<Logged>) {
        let Ok(position) = consumer.position() else {
            return;
        };
        let mut behind = 0;
        for e in position.elements() {
            let Offset::Offset(at) = e.offset() else {
                continue;
            };
            match consumer.fetch_watermarks(&self.topic, e.partition(), BEHIND_ASK) {
                Ok((_, high)) => behind += (high - at).max(0),
                Err(_) => return,
            }
            let state = self.state.lock().unwrap();
            let read = state.read.get(&e.partition()).copied().unwrap_or(0);
            let applied = state.applied.get(&e.partition()).copied().unwrap_or(0);
            behind += (read - applied).max(0);
        }
        self.metrics.registry_behind(behind);
    }

    /// Applies the entries taken in and hands the set to the pipeline.
    /// `recheck`: look at unchanged entries again (the groups changed).
    fn apply_and_publish(&self, recheck: bool) {
        let _one = self.applying.lock().unwrap();
        let (uploaded, sky, read) = self.apply_with(recheck);
        let seq = self.desired.lock().unwrap().set_uploaded(uploaded, sky);
        self.mark_applied(seq, read);
    }

    /// Takes a reloaded config's rules (SIGHUP): a removed group's
    /// filters stop, and a filter refused for want of its group runs.
    pub fn reconfigure(&self, config: &Config) {
        *self.policy.write().unwrap() = Arc::new(Policy::of(config));
        self.apply_and_publish(true);
    }

    /// The rules in force here now.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().unwrap().clone()
    }

    /// Whether a group's sky file has expired since the last change.
    fn expiring(&self) -> bool {
        let next = self.state.lock().unwrap().next_expiry;
        next.is_some_and(|at| at <= now_ms())
    }

    /// Takes one record into the entries (not yet applied).
    fn take(&self, m: &rdkafka::message::BorrowedMessage<'_>) {
        let at = (m.partition(), m.offset());
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        let value = m.payload().map(decode_any);
        let mut state = self.state.lock().unwrap();
        match value {
            None => {
                state.entries.remove(&key);
                state.sky_entries.remove(&key);
            }
            Some(Ok(Stored::Sky(record, file))) if record.key() == key => {
                // An expired file's bytes are never read again: only its
                // record is kept (listed, and counted in the quota until
                // deleted or replaced).
                let file = if record.expired(now_ms()) {
                    bytes::Bytes::new()
                } else {
                    file
                };
                state.sky_entries.insert(
                    key,
                    SkyEntry {
                        record,
                        file,
                        offset: at,
                    },
                );
            }
            Some(Ok(Stored::Sky(record, _))) => tracing::error!(
                %key,
                claims = %record.key(),
                offset = at.1,
                "registry record under another key; ignored"
            ),
            Some(Ok(Stored::Filter(record, component))) if record.key() == key => {
                state.entries.insert(
                    key,
                    Entry {
                        record,
                        component,
                        offset: at,
                    },
                );
            }
            Some(Ok(Stored::Filter(record, _))) => tracing::error!(
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
    /// sequence number `seq` (see [`Desired`]).
    fn mark_applied(&self, seq: u64, read: HashMap<i32, i64>) {
        let mut state = self.state.lock().unwrap();
        state.applied = read;
        state.applied_seq = seq;
    }

    /// Turns the entries into deployments, reusing the loaded filter of
    /// every entry that did not change (`recheck`: unless the groups or
    /// topics changed and it is now refused, or it had failed). Returns
    /// them with how far the records were read when the entries were.
    fn apply_with(
        &self,
        recheck: bool,
    ) -> (Vec<Deployment>, Arc<crate::sky::Sky>, HashMap<i32, i64>) {
        let (entries, previous, read) = {
            let state = self.state.lock().unwrap();
            (
                state.entries.clone(),
                state.running.clone(),
                state.read.clone(),
            )
        };
        let sky = self.apply_sky();
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
                    Running::Deployed(_) => {
                        !recheck || self.policy().runnable(entry).err().is_none()
                    }
                    Running::Disabled => true,
                });
            let now = if !r.enabled {
                Running::Disabled
            } else if let Some(running) = unchanged {
                running
            } else if let Some(why) = self.policy().runnable(entry).err() {
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
        (out, sky, read)
    }

    /// The config's sky with each group's unexpired watchlists and maps
    /// added (read once per record), made the one uploads are checked
    /// against.
    fn apply_sky(&self) -> Arc<crate::sky::Sky> {
        let now = now_ms();
        let policy = self.policy();
        let mut sky = (*self.base_sky).clone();
        sky.uploads = true;
        let max_radius = sky.caps().max_radius_arcsec;
        let mut state = self.state.lock().unwrap();
        let entries: Vec<SkyEntry> = state.sky_entries.values().cloned().collect();
        let held = &mut *state;
        held.read_files
            .retain(|k, _| held.sky_entries.contains_key(k));
        let mut problems = HashMap::new();
        let mut next_expiry: Option<u64> = None;
        for entry in entries {
            let r = &entry.record;
            let key = r.key();
            if r.expired(now) {
                // Its bytes are never read again.
                if let Some(e) = state.sky_entries.get_mut(&key) {
                    e.file = bytes::Bytes::new();
                }
                state.read_files.remove(&key);
                continue;
            }
            if let Some(at) = r.expires_at_ms {
                next_expiry = Some(next_expiry.map_or(at, |n| n.min(at)));
            }
            // A record written some other way than the admin API is
            // checked again, as a filter's record is.
            let refused = if let Err(why) = policy.group(&r.group) {
                Some(why.reason)
            } else if !crate::sky::is_catalog_name(&r.name) {
                Some(format!(
                    "'{}' is not a name (1 to {} of a-z, 0-9, '_' and '-')",
                    crate::text::shown(&r.name, 80),
                    crate::sky::CATALOG_NAME_BYTES
                ))
            } else {
                None
            };
            if let Some(why) = refused {
                tracing::debug!(file = %key, %why, "a group's sky file not used here");
                problems.insert(key, why);
                continue;
            }
            let read = match state.read_files.get(&key) {
                Some((at, read)) if *at == entry.offset => read.clone(),
                _ => {
                    let read = if crate::sandbox::sha256_hex(&entry.file) != r.sha256 {
                        Err("the file is not the one its sha256 names".to_string())
                    } else {
                        SkyFile::read(r.kind, &entry.file, max_radius).map_err(|e| format!("{e:#}"))
                    };
                    if let Err(why) = &read {
                        tracing::error!(file = %key, %why, "a group's sky file did not read here; its filters read it absent");
                    }
                    state
                        .read_files
                        .insert(key.clone(), (entry.offset, read.clone()));
                    read
                }
            };
            match read {
                Ok(file) => file.add_to(&mut sky, &r.group, &r.name),
                Err(why) => {
                    problems.insert(key, format!("it did not read here: {why}"));
                }
            }
        }
        state.sky_problems = problems;
        state.next_expiry = next_expiry;
        drop(state);
        let sky = Arc::new(sky);
        *self.sky.write().unwrap() = sky.clone();
        sky
    }

    /// The sky filters see now: the config's, and the groups' files.
    pub fn sky(&self) -> Arc<crate::sky::Sky> {
        self.sky.read().unwrap().clone()
    }

    /// The filter admission checked, else a fresh load; refused if it
    /// asks for history columns or catalogues this instance does not have
    /// (instances configured apart).
    fn load(&self, entry: &Entry) -> Result<Arc<LoadedFilter>, String> {
        let filter = self.load_component(entry)?;
        let _ = filter.group.set(entry.record.group.clone());
        if let Some(why) =
            crate::deploy::serve_refuses(&filter, self.memory.as_deref(), &self.sky())
        {
            return Err(why);
        }
        crate::kafka::ensure_outputs(&self.config, &[&entry.record.output_topic()])
            .map_err(|e| format!("{e:#}"))?;
        Ok(filter)
    }

    fn load_component(&self, entry: &Entry) -> Result<Arc<LoadedFilter>, String> {
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

    /// Writes an admitted upload's record and waits until this instance
    /// runs it (or has dropped it, for a disabled one). The filter the
    /// canary ran is deployed as it is, not loaded again.
    pub async fn put(&self, admitted: &Admitted) -> Result<(), WriteError> {
        let record = &admitted.record;
        let validated = record.enabled.then(|| admitted.filter.clone());
        self.write_record(record, &admitted.component, validated)
            .await
    }

    /// Rewrites a registered filter's record (enabled or disabled) and
    /// waits until this instance runs it, or has dropped it.
    pub async fn switch(&self, entry: &Entry, enabled: bool) -> Result<(), WriteError> {
        let record = Record {
            enabled,
            ..entry.record.clone()
        };
        self.write_record(&record, &entry.component, None).await
    }

    async fn write_record(
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

    /// Writes a group's watchlist or sky map (checked by the admin API)
    /// and waits until this instance's filters read it.
    pub async fn put_sky(&self, record: &SkyRecord, file: &[u8]) -> Result<(), WriteError> {
        self.write(&record.key(), Some(&encode_sky(record, file)))
            .await
    }

    /// Deletes a group's watchlist or sky map and waits until it is gone
    /// here.
    pub async fn delete_sky(
        &self,
        group: &str,
        kind: SkyKind,
        name: &str,
    ) -> Result<(), WriteError> {
        self.write(&sky_key(group, kind, name), None).await
    }

    /// Why a group's sky file (registry `key`) is not used here, if it
    /// is not though unexpired: it did not read, or its group or name is
    /// not one.
    pub fn sky_problem(&self, key: &str) -> Option<String> {
        self.state.lock().unwrap().sky_problems.get(key).cloned()
    }

    /// Whether the record at `offset` is applied here, in a set the
    /// pipeline has published: alerts from now on are decided with it.
    pub fn in_effect(&self, offset: (i32, i64)) -> bool {
        let state = self.state.lock().unwrap();
        state.applied.get(&offset.0).is_some_and(|a| *a > offset.1)
            && self.published.load(Ordering::Acquire) >= state.applied_seq
    }

    /// A group's registered watchlists and maps (expired ones included,
    /// until the registry drops them), by key.
    pub fn sky_entries(&self, group: &str) -> Vec<SkyEntry> {
        let state = self.state.lock().unwrap();
        state
            .sky_entries
            .values()
            .filter(|e| e.record.group == group)
            .cloned()
            .collect()
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

impl super::admission::Roster for Fleet {
    fn policy(&self) -> Arc<Policy> {
        Fleet::policy(self)
    }

    fn entries(&self) -> BTreeMap<String, Entry> {
        Fleet::entries(self)
    }

    fn sky(&self) -> Arc<crate::sky::Sky> {
        Fleet::sky(self)
    }
}

/// Milliseconds since 1970, as expiries are written.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
