//! What the host remembers of each object between its alerts: every
//! deployment's state (contract 0.3.0), kept in an embedded store on
//! local disk (fjall, chosen in docs/design/object-memory.md).
//!
//! Owns: the store ([`Memory`]), one record per object ([`ObjectRecord`],
//! keyed by survey and object id: one read and one write per alert,
//! whatever the number of filters), the expiry of states an object's
//! alerts stopped renewing, and putting offline inputs in alert time
//! order ([`TimeOrder`]) so that a replay builds the state the stream
//! would.
//!
//! Must never: read the machine's clock for anything a filter sees (an
//! object's age is its alerts' own times), or fail an alert because the
//! disk did: a store that cannot be written is counted and named, and
//! filters go on.

pub mod history;
mod order;
mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

pub use order::TimeOrder;
pub use record::{DeploymentState, ObjectRecord, StoredHistory};

/// How long an object's state lives without an alert of it, by default:
/// a year of alert time.
pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(365 * 86_400);

/// Longest object id the store keys a record by, in bytes (ZTF's are 12,
/// Rubin's at most 20 digits): a longer one is treated as none.
pub const MAX_OBJECT_ID_BYTES: usize = 256;

/// The largest record the store keeps for one object (its history and
/// every deployment's state): a larger one is not written (counted as a
/// failed write, the object's earlier record stays), so that serve's
/// changelog, whose records this bounds, never refuses one.
pub const MAX_RECORD_BYTES: usize = 8 << 20;

/// The name every temporary store's folder starts with.
const TEMPORARY_PREFIX: &str = "bandpass-memory-";

/// The bytes of the files under `dir`.
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The store's block cache.
const CACHE_BYTES: u64 = 32 << 20;

/// The key of an object's record: its survey and id.
pub fn object_key(survey: &str, object_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(survey.len() + 1 + object_id.len());
    key.extend_from_slice(survey.as_bytes());
    key.push(0);
    key.extend_from_slice(object_id.as_bytes());
    key
}

/// The store itself: one folder, one fjall keyspace, shared by every
/// [`Memory`] handle opened on it (serve's workers each hold one).
struct Store {
    keyspace: fjall::Keyspace,
    objects: fjall::PartitionHandle,
    dir: PathBuf,
    /// Held while the store is open: one process at a time per folder.
    _lock: std::fs::File,
    /// Holds a temporary folder until the store is dropped.
    _temporary: Option<tempfile::TempDir>,
    /// Objects kept since the store was opened (serve's stores start
    /// empty): each new object counted, each deletion and each scope
    /// cleared taken off, each restore counted by its keys.
    objects_kept: std::sync::atomic::AtomicI64,
}

impl Drop for Store {
    fn drop(&mut self) {
        // What a `--state` folder keeps for the next run.
        if let Err(e) = self.keyspace.persist(fjall::PersistMode::Buffer) {
            tracing::warn!("cannot write the state folder {}: {e}", self.dir.display());
        }
    }
}

/// One change to the store, as serve's changelog carries it: the full key
/// (scope and object) and the record's bytes, or none for a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// The scope of one input partition's objects in serve: every key of the
/// partition starts with it (the topic, a zero byte, the partition
/// number), so that a partition's objects are restored, and dropped, as
/// one (topic names hold no zero byte).
pub fn partition_scope(topic: &str, partition: i32) -> Vec<u8> {
    let mut scope = Vec::with_capacity(topic.len() + 5);
    scope.extend_from_slice(topic.as_bytes());
    scope.push(0);
    scope.extend_from_slice(&partition.to_be_bytes());
    scope
}

/// A handle on the object store: one record per object. `test` and `run`
/// hold one; serve's workers each hold one ([`Memory::handle`]) scoped
/// to the partition of the alert they process ([`Memory::scope_to`]).
pub struct Memory {
    store: Arc<Store>,
    /// Prepended to every key (serve: the input partition's scope).
    scope: Vec<u8>,
    /// Changes since the last [`Memory::take_changes`], when kept (serve
    /// produces them to its changelog).
    journal: Option<Vec<Change>>,
    /// States of an object with no alert for this long (alert time) are
    /// dropped when its next alert comes.
    pub state_ttl: Duration,
    /// Points of a light curve older than this many days before the
    /// object's latest are dropped.
    pub history_max_age_days: f64,
    /// At most this many points of a light curve are kept (the latest).
    pub history_max_points: usize,
    /// Writes that failed (a full or read-only disk), and the first
    /// reason.
    failed_writes: u64,
    first_failure: Option<String>,
    /// The first read or write the disk refused (see [`Memory::broken`]).
    broken: Option<String>,
    /// Alerts whose object id was blank or over [`MAX_OBJECT_ID_BYTES`]:
    /// given no state, and only their packet's history.
    pub unkeyed: u64,
    /// Alerts older than their object's latest kept alert: a state folder
    /// fed out of order (an earlier night after a later one, or the same
    /// night twice), whose states and curves then differ from one run in
    /// time order.
    pub out_of_order: u64,
    /// Writes skipped because the record came out as it was read.
    pub unchanged: u64,
    /// The key and hash of the bytes last read (see [`Memory::keep`]).
    last_read: Option<(Vec<u8>, u64)>,
    /// The input offset of the message being processed (serve,
    /// at-least-once; see [`ObjectRecord::applied`]).
    pub position: Option<i64>,
}

/// Takes the folder's lock (`bandpass.lock`, an advisory `flock` the
/// kernel releases when the process ends, however it ends), or says who
/// holds it: two runs writing one store would each lose the other's
/// states.
fn lock(dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    let path = dir.join("bandpass.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns; no memory is
    // shared with the kernel.
    let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !taken {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        anyhow::bail!(
            "the state folder {} is in use by another bandpass (process {}): wait for it to \
             end, or give another --state folder",
            dir.display(),
            crate::text::shown(holder.trim(), 20)
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

impl Memory {
    /// Opens (or creates) the store in `dir`, kept after the process ends:
    /// a later run continues from what this one remembered.
    pub fn open(dir: &Path) -> anyhow::Result<Memory> {
        Memory::open_in(dir, None)
    }

    /// A store in a new temporary folder, removed when it is dropped.
    pub fn temporary() -> anyhow::Result<Memory> {
        Memory::temporary_in(None)
    }

    /// Removes the temporary stores under `parent` (else `$TMPDIR`) that
    /// no process holds: those a killed process could not remove (serve
    /// makes one per start). Returns how many, and their bytes.
    pub fn remove_abandoned(parent: Option<&Path>) -> (usize, u64) {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let Ok(entries) = std::fs::read_dir(&parent) else {
            return (0, 0);
        };
        let (mut removed, mut bytes) = (0, 0);
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with(TEMPORARY_PREFIX)
                || !path.join("bandpass.lock").is_file()
            {
                continue;
            }
            // Taken: no process holds it, so none uses the store.
            let Ok(held) = lock(&path) else { continue };
            let size = folder_bytes(&path);
            if std::fs::remove_dir_all(&path).is_ok() {
                removed += 1;
                bytes += size;
            }
            drop(held);
        }
        (removed, bytes)
    }

    /// A store in a new folder under `parent` (else `$TMPDIR`), removed
    /// when the last handle is dropped.
    pub fn temporary_in(parent: Option<&Path>) -> anyhow::Result<Memory> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(TEMPORARY_PREFIX);
        let temp = match parent {
            Some(parent) => {
                std::fs::create_dir_all(parent).with_context(|| {
                    format!("cannot create the memory folder {}", parent.display())
                })?;
                builder.tempdir_in(parent)
            }
            None => builder.tempdir(),
        }
        .with_context(|| {
            format!(
                "cannot create a folder for the object store in {}",
                parent.map_or("$TMPDIR".into(), |p| p.display().to_string())
            )
        })?;
        let dir = temp.path().to_path_buf();
        Memory::open_in(&dir, Some(temp))
    }

    fn open_in(dir: &Path, temporary: Option<tempfile::TempDir>) -> anyhow::Result<Memory> {
        if dir.is_file() {
            anyhow::bail!(
                "the state folder {} is a file: give a folder (it is created if missing)",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the state folder {}", dir.display()))?;
        let lock = lock(dir)?;
        let keyspace = fjall::Config::new(dir)
            .cache_size(CACHE_BYTES)
            .open()
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the state folder {} as an object store: {e} (is it writable, \
                     and not a folder of something else?)",
                    dir.display()
                )
            })?;
        let objects = keyspace
            .open_partition("objects", fjall::PartitionCreateOptions::default())
            .map_err(|e| anyhow::anyhow!("cannot open the objects in {}: {e}", dir.display()))?;
        Ok(Memory::on(Arc::new(Store {
            keyspace,
            objects,
            dir: dir.to_path_buf(),
            _lock: lock,
            _temporary: temporary,
            objects_kept: std::sync::atomic::AtomicI64::new(0),
        })))
    }

    fn on(store: Arc<Store>) -> Memory {
        Memory {
            store,
            scope: Vec::new(),
            journal: None,
            state_ttl: DEFAULT_STATE_TTL,
            history_max_age_days: history::DEFAULT_MAX_AGE_DAYS,
            history_max_points: history::DEFAULT_MAX_POINTS,
            failed_writes: 0,
            first_failure: None,
            broken: None,
            unkeyed: 0,
            out_of_order: 0,
            unchanged: 0,
            last_read: None,
            position: None,
        }
    }

    /// Another handle on the same store, with its own counters, the same
    /// settings, no scope, and a journal if this one keeps one.
    pub fn handle(&self) -> Memory {
        let mut other = Memory::on(self.store.clone());
        other.state_ttl = self.state_ttl;
        other.history_max_age_days = self.history_max_age_days;
        other.history_max_points = self.history_max_points;
        other.journal = self.journal.as_ref().map(|_| Vec::new());
        other
    }

    /// Keys from now on start with `scope` (see [`partition_scope`]).
    pub fn scope_to(&mut self, scope: &[u8]) {
        if self.scope != scope {
            self.scope.clear();
            self.scope.extend_from_slice(scope);
        }
    }

    /// Keeps every change from now on, for [`Memory::take_changes`].
    pub fn keep_changes(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
    }

    /// The changes since the last call (none unless [`Memory::keep_changes`]).
    pub fn take_changes(&mut self) -> Vec<Change> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Drops every object under `scope` (a partition about to be restored).
    pub fn clear_scope(&self, scope: &[u8]) -> anyhow::Result<u64> {
        let mut dropped = 0;
        let mut batch = self.store.keyspace.batch();
        for entry in self.store.objects.prefix(scope) {
            let (key, _) = entry.map_err(|e| self.error("reading", e))?;
            batch.remove(&self.store.objects, key);
            dropped += 1;
        }
        batch.commit().map_err(|e| self.error("clearing", e))?;
        self.count_objects_kept(-(dropped as i64));
        Ok(dropped)
    }

    /// Counts the objects under `scope` into [`Memory::objects_kept`]
    /// (after a restore applied them).
    pub fn count_scope(&self, scope: &[u8]) -> anyhow::Result<u64> {
        let mut found = 0;
        for entry in self.store.objects.prefix(scope) {
            entry.map_err(|e| self.error("reading", e))?;
            found += 1;
        }
        self.count_objects_kept(found as i64);
        Ok(found)
    }

    fn count_objects_kept(&self, by: i64) {
        self.store
            .objects_kept
            .fetch_add(by, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many objects serve's store holds (see `Store::objects_kept`).
    pub fn objects_kept(&self) -> i64 {
        self.store
            .objects_kept
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Applies one change as the changelog gives it back (a restore).
    pub fn apply(&self, key: &[u8], value: Option<&[u8]>) -> anyhow::Result<()> {
        self.put(key, value).map_err(|e| self.error("restoring", e))
    }

    /// Writes `key`'s bytes, or deletes it when there are none.
    fn put(&self, key: &[u8], value: Option<&[u8]>) -> fjall::Result<()> {
        match value {
            Some(v) => self.store.objects.insert(key, v),
            None => self.store.objects.remove(key),
        }
    }

    fn error(&self, doing: &str, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!(
            "{doing} the object store in {}: {e} (a full or read-only disk?)",
            self.store.dir.display()
        )
    }

    pub fn dir(&self) -> &Path {
        &self.store.dir
    }

    /// `key` under this handle's scope.
    fn scoped(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.scope.len() + key.len());
        full.extend_from_slice(&self.scope);
        full.extend_from_slice(key);
        full
    }

    /// The record of `key`; none if the object was never kept, or if its
    /// bytes are damaged (counted as a failed read, and the object starts
    /// afresh).
    pub fn recall(&mut self, key: &[u8]) -> Option<ObjectRecord> {
        self.last_read = None;
        let key = self.scoped(key);
        let bytes = match self.store.objects.get(&key) {
            Ok(b) => b?,
            Err(e) => {
                self.refused(format!("reading an object: {e}"));
                return None;
            }
        };
        self.last_read = Some((key, xxhash_rust::xxh3::xxh3_64(&bytes)));
        match ObjectRecord::decode(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                self.failed(e.to_string());
                None
            }
        }
    }

    /// Keeps `record` as `key`'s (an empty record deletes it). A write the
    /// disk refuses is counted (see [`Memory::failures`]), not raised: the
    /// alert's verdicts stand.
    pub fn keep(&mut self, key: &[u8], record: &ObjectRecord) {
        let key = self.scoped(key);
        let value = if record.is_empty() {
            None
        } else {
            let bytes = record.encode();
            // The same bytes as the last read of this key (an alert
            // replayed, a repeat delivery): nothing to write.
            let same = self
                .last_read
                .as_ref()
                .is_some_and(|(k, hash)| *k == key && *hash == xxhash_rust::xxh3::xxh3_64(&bytes));
            if same {
                self.unchanged += 1;
                return;
            }
            if bytes.len() > MAX_RECORD_BYTES {
                self.failed(format!(
                    "an object's record of {} bytes is over the {MAX_RECORD_BYTES} the store \
                     keeps: its earlier record stays (fewer deployments with state, or smaller \
                     limits.state)",
                    bytes.len()
                ));
                return;
            }
            Some(bytes)
        };
        let written = self.put(&key, value.as_deref());
        // Read just before (the runner's recall): was it there?
        let existed = self.last_read.as_ref().is_some_and(|(k, _)| *k == key);
        match written {
            Err(e) => self.refused(format!("writing an object: {e}")),
            Ok(()) => {
                match (existed, value.is_some()) {
                    (false, true) => self.count_objects_kept(1),
                    (true, false) => self.count_objects_kept(-1),
                    _ => {}
                }
                if let Some(journal) = &mut self.journal {
                    journal.push(Change { key, value });
                }
            }
        }
    }

    /// A read or write the store refused: counted, and the store is
    /// [`Memory::broken`] from then on.
    fn refused(&mut self, why: String) {
        let why = format!(
            "{why} (in {}: a full or read-only disk?)",
            self.store.dir.display()
        );
        self.broken.get_or_insert(why.clone());
        self.failed(why);
    }

    /// The first read or write the disk refused, if one was: what the
    /// store holds no longer follows the alerts (fjall refuses every
    /// write after one failed), so serve stops rather than decide and
    /// commit on it. A record too large or damaged is not this: it fails
    /// its own object only.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    fn failed(&mut self, why: String) {
        self.failed_writes += 1;
        self.first_failure.get_or_insert(why);
    }

    /// Reads or writes that failed so far, and the first one's reason.
    pub fn failures(&self) -> (u64, Option<&str>) {
        (self.failed_writes, self.first_failure.as_deref())
    }

    /// Makes what was kept survive the process (not a power cut: that is
    /// what serve's changelog is for).
    pub fn flush(&self) -> anyhow::Result<()> {
        self.store
            .keyspace
            .persist(fjall::PersistMode::Buffer)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot write the state folder {}: {e}",
                    self.store.dir.display()
                )
            })
    }

    /// How many objects the store holds, counted by reading every key: for
    /// a report at the end of a run, not for every alert.
    pub fn count_objects(&self) -> anyhow::Result<usize> {
        self.store.objects.len().map_err(|e| {
            anyhow::anyhow!(
                "cannot count the objects in {}: {e}",
                self.store.dir.display()
            )
        })
    }

    /// The bytes of the objects' data: their segments on disk and what
    /// the memtable holds (written to the journal, which fjall allocates
    /// ahead in blocks of 32 MiB: not counted).
    pub fn disk_bytes(&self) -> u64 {
        use fjall::AbstractTree;
        self.store.objects.disk_space() + u64::from(self.store.objects.tree.active_memtable_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_folder_keeps_objects_for_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let key = object_key("ztf", "ZTF18abudxnw");
        let mut record = ObjectRecord::default();
        record.set("rise-once", "rise-once/1", b"{}");
        {
            let mut memory = Memory::open(dir.path()).unwrap();
            assert_eq!(memory.recall(&key), None);
            memory.keep(&key, &record);
            assert_eq!(memory.recall(&key).as_ref(), Some(&record));
        }
        let mut memory = Memory::open(dir.path()).unwrap();
        assert_eq!(memory.recall(&key).as_ref(), Some(&record));
        memory.keep(&key, &record);
        assert_eq!(memory.unchanged, 1, "read and kept as it was: not written");
        memory.keep(&key, &ObjectRecord::default());
        assert_eq!(memory.recall(&key), None, "an empty record is deleted");
        assert_eq!(memory.failures().0, 0);
    }

    #[test]
    fn damaged_bytes_in_the_store_are_counted_and_the_object_starts_afresh() {
        let mut memory = Memory::temporary().unwrap();
        let key = object_key("rubin", "170028437302722614");
        memory.store.objects.insert(&key, vec![1, 2, 3]).unwrap();
        assert_eq!(memory.recall(&key), None);
        let (failed, why) = memory.failures();
        assert_eq!(failed, 1);
        assert!(why.unwrap().contains("damaged"), "{why:?}");
    }

    #[test]
    fn scoped_handles_share_one_store_and_a_scope_is_cleared_and_restored_from_its_changes() {
        let mut first = Memory::temporary().unwrap();
        first.keep_changes();
        let mut second = first.handle();
        let key = object_key("ztf", "ZTF18abudxnw");
        let mut record = ObjectRecord::default();
        record.set("once", "rise-once/1", b"{}");
        let (p0, p1) = (partition_scope("alerts", 0), partition_scope("alerts", 1));
        first.scope_to(&p0);
        second.scope_to(&p1);
        first.keep(&key, &record);
        assert_eq!(second.recall(&key), None, "another partition's object");
        second.keep(&key, &ObjectRecord::default());
        let changes = first.take_changes();
        assert_eq!(changes.len(), 1);
        assert!(changes[0].key.starts_with(&p0) && changes[0].value.is_some());
        assert_eq!(
            second.take_changes()[0].value,
            None,
            "a deletion is a tombstone"
        );
        assert!(first.take_changes().is_empty(), "taken once");
        assert_eq!(first.objects_kept(), 1, "one object kept, none deleted");
        assert_eq!(first.clear_scope(&p0).unwrap(), 1);
        assert_eq!(first.recall(&key), None);
        assert_eq!(second.objects_kept(), 0, "shared by the handles");
        for change in &changes {
            first.apply(&change.key, change.value.as_deref()).unwrap();
        }
        assert_eq!(first.count_scope(&p0).unwrap(), 1);
        assert_eq!(first.objects_kept(), 1);
        assert_eq!(first.recall(&key).as_ref(), Some(&record), "restored");
        first.keep(&key, &record);
        assert_eq!(first.objects_kept(), 1, "kept again, not a new object");
        first.keep(&key, &ObjectRecord::default());
        assert_eq!(first.objects_kept(), 0, "deleted");
    }

    #[test]
    fn abandoned_temporary_stores_are_removed_and_those_in_use_are_not() {
        let parent = tempfile::tempdir().unwrap();
        let in_use = Memory::temporary_in(Some(parent.path())).unwrap();
        let abandoned = parent.path().join(format!("{TEMPORARY_PREFIX}killed"));
        std::fs::create_dir(&abandoned).unwrap();
        std::fs::write(abandoned.join("bandpass.lock"), "1").unwrap();
        std::fs::write(abandoned.join("journal"), vec![0u8; 1000]).unwrap();
        let unrelated = parent.path().join(format!("{TEMPORARY_PREFIX}not-a-store"));
        std::fs::create_dir(&unrelated).unwrap();
        let (removed, bytes) = Memory::remove_abandoned(Some(parent.path()));
        assert_eq!(removed, 1);
        assert!(bytes >= 1000, "its files counted: {bytes}");
        assert!(!abandoned.exists());
        assert!(in_use.dir().exists(), "held by this process");
        assert!(unrelated.exists(), "no lock file: not a store");
    }

    #[test]
    fn a_state_folder_that_is_a_file_is_refused_by_name() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = Memory::open(file.path()).err().unwrap().to_string();
        assert!(
            err.contains(&file.path().display().to_string()),
            "names the folder: {err}"
        );
    }
}
