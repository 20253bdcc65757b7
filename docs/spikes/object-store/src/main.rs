//! The access pattern of an object store for bandpass: per alert, read
//! one object's history (a blob of about 2 KB: a year of detections) and
//! write it back with one more point; commit in batches (the changelog
//! topic, not the local disk, is what survives a crash, so no fsync per
//! alert). Measures, for one store: the initial load, the per-alert
//! read-modify-write (p50, p99), random reads after reopening, bytes on
//! disk and the process's peak RSS.

use std::path::Path;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const VALUE: usize = 2_000;
const POINT: usize = 40;
const BATCH: usize = 1_000;

trait Store {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>>;
    fn put(&mut self, key: &[u8], value: &[u8]);
    /// Ends a batch of writes.
    fn commit(&mut self);
}

struct Redb {
    db: redb::Database,
    tx: Option<redb::WriteTransaction>,
    /// Commits so far: every tenth is durable (redb frees the pages of
    /// non-durable commits only at a durable one).
    commits: u64,
}

const TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("objects");

impl Redb {
    fn open(dir: &Path) -> Redb {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes())
            .create(dir.join("objects.redb"))
            .unwrap();
        Redb {
            db,
            tx: None,
            commits: 0,
        }
    }
    fn tx(&mut self) -> &redb::WriteTransaction {
        if self.tx.is_none() {
            let mut tx = self.db.begin_write().unwrap();
            self.commits += 1;
            if self.commits % 10 != 0 {
                tx.set_durability(redb::Durability::None);
            }
            self.tx = Some(tx);
        }
        self.tx.as_ref().unwrap()
    }
}

impl Store for Redb {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        use redb::ReadableTable;
        let tx = self.tx();
        let table = tx.open_table(TABLE).unwrap();
        table.get(key).unwrap().map(|v| v.value().to_vec())
    }
    fn put(&mut self, key: &[u8], value: &[u8]) {
        let tx = self.tx();
        let mut table = tx.open_table(TABLE).unwrap();
        table.insert(key, value).unwrap();
    }
    fn commit(&mut self) {
        if let Some(tx) = self.tx.take() {
            tx.commit().unwrap();
        }
    }
}

struct Fjall {
    keyspace: fjall::Keyspace,
    objects: fjall::PartitionHandle,
    batch: Option<fjall::Batch>,
    pending: std::collections::HashMap<Vec<u8>, Vec<u8>>,
}

impl Fjall {
    fn open(dir: &Path) -> Fjall {
        let keyspace = fjall::Config::new(dir)
            .cache_size(cache_bytes() as u64)
            .open()
            .unwrap();
        let objects = keyspace
            .open_partition("objects", fjall::PartitionCreateOptions::default())
            .unwrap();
        Fjall {
            keyspace,
            objects,
            batch: None,
            pending: Default::default(),
        }
    }
}

impl Store for Fjall {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        // A batch is not readable: reads see its writes through `pending`,
        // as the host's write-back cache would.
        if let Some(v) = self.pending.get(key) {
            return Some(v.clone());
        }
        self.objects.get(key).unwrap().map(|v| v.to_vec())
    }
    fn put(&mut self, key: &[u8], value: &[u8]) {
        let batch = self.batch.get_or_insert_with(|| self.keyspace.batch());
        batch.insert(&self.objects, key, value);
        self.pending.insert(key.to_vec(), value.to_vec());
    }
    fn commit(&mut self) {
        if let Some(batch) = self.batch.take() {
            batch.commit().unwrap();
        }
        self.pending.clear();
    }
}

/// The store's cache: `CACHE_MIB` (default 64 MiB), the same for both.
fn cache_bytes() -> usize {
    std::env::var("CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(64)
        << 20
}

fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize] as f64 / 1000.0
}

fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() { disk_bytes(&e.path()) } else { m.len() };
    }
    total
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn open(kind: &str, dir: &Path) -> Box<dyn Store> {
    match kind {
        "redb" => Box::new(Redb::open(dir)),
        "fjall" => Box::new(Fjall::open(dir)),
        other => panic!("unknown store {other}: redb or fjall"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("redb");
    let objects: u64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let alerts: usize = 100_000;
    let dir = std::env::temp_dir().join(format!("object-store-spike-{kind}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let mut value = vec![0u8; VALUE];

    // Load: every object once, in batches.
    let started = Instant::now();
    {
        let mut store = open(kind, &dir);
        for i in 0..objects {
            rng.fill(&mut value[..]);
            store.put(&key(i), &value);
            if (i + 1) % BATCH as u64 == 0 {
                store.commit();
            }
        }
        store.commit();
    }
    let load = started.elapsed().as_secs_f64();

    // Alerts: read-modify-write of a random object each.
    let mut store = open(kind, &dir);
    let mut gets = Vec::with_capacity(alerts);
    let mut puts = Vec::with_capacity(alerts);
    let started = Instant::now();
    for n in 0..alerts {
        let k = key(rng.random_range(0..objects));
        let t = Instant::now();
        let mut v = store.get(&k).expect("every object was loaded");
        gets.push(t.elapsed().as_nanos() as u64);
        v.drain(..POINT);
        v.extend_from_slice(&[7u8; POINT]);
        let t = Instant::now();
        store.put(&k, &v);
        if (n + 1) % BATCH == 0 {
            store.commit();
        }
        puts.push(t.elapsed().as_nanos() as u64);
    }
    store.commit();
    let loop_seconds = started.elapsed().as_secs_f64();
    drop(store);

    // Reads after reopening.
    let mut store = open(kind, &dir);
    let mut reads = Vec::with_capacity(alerts);
    for _ in 0..alerts {
        let k = key(rng.random_range(0..objects));
        let t = Instant::now();
        let v = store.get(&k);
        reads.push(t.elapsed().as_nanos() as u64);
        assert_eq!(v.map(|v| v.len()), Some(VALUE));
    }
    gets.sort_unstable();
    puts.sort_unstable();
    reads.sort_unstable();
    println!(
        "{kind} (cache {} MiB): {objects} objects of {VALUE} B; load {:.0} objects/s; {alerts} alerts (read-modify-write, commit per {BATCH}): {:.0}/s, get p50 {:.1} p99 {:.1} us, put p50 {:.1} p99 {:.1} us (a put's figure includes its commit); reopened reads p50 {:.1} p99 {:.1} us; {:.0} MB on disk ({:.0} B per object); peak RSS {:.0} MiB",
        cache_bytes() >> 20,
        objects as f64 / load,
        alerts as f64 / loop_seconds,
        percentile(&gets, 0.5),
        percentile(&gets, 0.99),
        percentile(&puts, 0.5),
        percentile(&puts, 0.99),
        percentile(&reads, 0.5),
        percentile(&reads, 0.99),
        disk_bytes(&dir) as f64 / 1e6,
        disk_bytes(&dir) as f64 / objects as f64,
        peak_rss_mib(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
