//! The object store at scale: N synthetic objects, each with a light
//! curve and one deployment's state, written to serve's store, read back
//! at random from disk, and restored from a changelog topic on a real
//! broker by the same code serve runs (`Changelog::restore`).
//!
//!   bandpass-memory-bench [OBJECTS] [LOOKUPS]
//!
//! OBJECTS defaults to 1,000,000, LOOKUPS to 100,000. The restore needs
//! BANDPASS_KAFKA_BROKERS (scripts/kafka.sh starts a broker); without it
//! that part is skipped and says so. The store is made under
//! MEMORY_BENCH_DIR (default $TMPDIR) and removed at the end.
//!
//! Light curves: ZTF's kept columns (memory::history::Kept's default), a mix of
//! lengths like an alert stream's objects over a year: 70 % with 3
//! points, 25 % with 30, 5 % with 200 (19.6 on average); one state of 64
//! bytes per object.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use bandpass::memory::history::{Cell, Kept, Point};
use bandpass::memory::{Memory, ObjectRecord, StoredHistory, object_key, partition_scope};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Input partitions the objects are spread over.
const PARTITIONS: i32 = 4;
const INPUT: &str = "alerts";

fn points_of(i: u64) -> usize {
    match i % 20 {
        0 => 200,
        1..=5 => 30,
        _ => 3,
    }
}

/// Object `i`'s record: its light curve and one state.
fn record(i: u64) -> ObjectRecord {
    let kept = Kept::default();
    let plan = kept.plan_of("ztf").expect("ZTF's history is kept");
    let n = points_of(i);
    let points = (0..n)
        .map(|k| {
            let time = 2_461_000.5 + k as f64 * (365.0 / n as f64) + (i % 97) as f64 * 1e-3;
            let cells = plan
                .columns
                .iter()
                .enumerate()
                .map(|(c, (name, _))| match name.as_str() {
                    "jd" => Cell::Real(time),
                    "fid" => Cell::Integer(1 + (k % 2) as i64),
                    "isdiffpos" => Cell::Text("t".into()),
                    "candid" | "programid" => Cell::Integer((i * 1000 + k as u64) as i64),
                    _ => Cell::Real(18.0 + ((i + k as u64 + c as u64) % 300) as f64 / 100.0),
                })
                .collect();
            Point { time, cells }
        })
        .collect();
    let mut record = ObjectRecord {
        last_alert: 1_790_000_000_000_000_000 + i,
        applied: None,
        states: Vec::new(),
        history: Some(StoredHistory {
            columns: plan.columns.iter().map(|(n, _)| n.to_string()).collect(),
            points,
        }),
    };
    record.set("rise-once", "rise-once/1", &[b'x'; 64]);
    record
}

fn key(i: u64) -> (i32, Vec<u8>) {
    let partition = (i % PARTITIONS as u64) as i32;
    let mut key = partition_scope(INPUT, partition);
    key.extend(object_key("ztf", &format!("ZTF{i:09}")));
    (partition, key)
}

fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let objects: u64 = args.first().map_or(Ok(1_000_000), |a| a.parse())?;
    let lookups: usize = args.get(1).map_or(Ok(100_000), |a| a.parse())?;
    let parent = std::env::var_os("MEMORY_BENCH_DIR").map(std::path::PathBuf::from);
    let work = match &parent {
        Some(p) => tempfile::tempdir_in(p)?,
        None => tempfile::tempdir()?,
    };
    let dir = work.path().join("store");
    println!(
        "memory bench: {objects} objects (19.6 points of {} columns on average, a state of 64 bytes), {lookups} lookups",
        Kept::default()
            .plan_of("ztf")
            .map_or(0, |p| p.columns.len())
    );

    // Writing, as serve's workers do: one record per object.
    let started = Instant::now();
    let mut encoded = 0u64;
    {
        let mut memory = Memory::open(&dir)?;
        for i in 0..objects {
            let (_, k) = key(i);
            let r = record(i);
            encoded += r.encode().len() as u64;
            memory.keep(&k, &r);
        }
        memory.flush()?;
        anyhow::ensure!(memory.failures().0 == 0, "{:?}", memory.failures());
    }
    let wrote = started.elapsed();
    let memory = Memory::open(&dir)?;
    let disk = memory.disk_bytes();
    println!(
        "write: {:.1} s, {:.0} objects/s; records {:.0} bytes on average; on disk {:.0} MB, {:.0} bytes per object",
        wrote.as_secs_f64(),
        objects as f64 / wrote.as_secs_f64(),
        encoded as f64 / objects as f64,
        disk as f64 / 1e6,
        disk as f64 / objects as f64
    );
    drop(memory);

    // Lookups from disk: a reopened store (its cache empty), objects at
    // random (a fixed sequence), each read and decoded.
    let mut memory = Memory::open(&dir)?;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut times = Vec::with_capacity(lookups);
    for _ in 0..lookups {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (_, k) = key(x % objects);
        let t = Instant::now();
        let found = memory.recall(&k);
        times.push(t.elapsed().as_nanos() as u64);
        anyhow::ensure!(found.is_some(), "object {} missing", x % objects);
    }
    times.sort_unstable();
    println!(
        "lookup from disk (read and decode): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        percentile(&times, 0.5) as f64 / 1e3,
        percentile(&times, 0.99) as f64 / 1e3,
        *times.last().unwrap() as f64 / 1e3
    );
    drop(memory);

    match std::env::var("BANDPASS_KAFKA_BROKERS") {
        Ok(brokers) => restore(&brokers, objects, &work)?,
        Err(_) => println!(
            "restore: NOT RUN (set BANDPASS_KAFKA_BROKERS; scripts/kafka.sh starts a broker)"
        ),
    }
    Ok(())
}

/// Produces every record to a changelog topic as serve would, then
/// restores the four partitions into an empty store with serve's code.
fn restore(brokers: &str, objects: u64, work: &tempfile::TempDir) -> anyhow::Result<()> {
    let group = format!(
        "memory-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let text = format!(
        "[kafka]\nbrokers = [\"{brokers}\"]\n[input]\ntopics = [\"{INPUT}-{group}\"]\ngroup = \"{group}\"\nkeyed_by = \"object\"\n[memory]\ndir = \"{}\"\n",
        work.path().display()
    );
    let config =
        bandpass::config::Config::parse(&text, std::path::Path::new("bench.toml"), |_| None)?;
    // The input topic first, so that the changelog gets its partitions.
    bandpass::kafka::ensure_topic(
        &config,
        &bandpass::kafka::Internal {
            topic: &config.input.topics[0],
            compacted: false,
            partitions: PARTITIONS,
            max_message: None,
            what: "input topic",
            lost: "",
            key: "input.topics",
        },
    )?;
    let changelog = bandpass::pipeline::changelog::Changelog::start(&config)?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("message.max.bytes", (9 << 20).to_string())
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .context("a producer for the changelog")?;
    let started = Instant::now();
    for i in 0..objects {
        let (partition, k) = key(i);
        let value = record(i).encode();
        let mut r = BaseRecord::<[u8], [u8]>::to(&changelog.topic)
            .partition(changelog.partition_of(partition))
            .key(&k)
            .payload(&value);
        loop {
            match producer.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(600))?;
    drop(producer);
    println!(
        "changelog: {objects} records produced in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let metrics = bandpass::metrics::Metrics::new();
    let stop = AtomicBool::new(false);
    // The peak from here on is the restore's (Linux: "5" resets VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (rss_before, _) = rss_mib();
    let started = Instant::now();
    let partitions: Vec<(String, i32)> = (0..PARTITIONS).map(|p| (INPUT.to_string(), p)).collect();
    let applied = changelog.restore(&partitions, &metrics, &stop)?;
    let took = started.elapsed();
    let (rss_after, peak) = rss_mib();
    anyhow::ensure!(applied == objects, "restored {applied} of {objects}");
    println!(
        "restore: {applied} objects in {:.1} s ({:.0} objects/s); RSS {rss_before:.0} MiB before, {rss_after:.0} after, peak {peak:.0}",
        took.as_secs_f64(),
        applied as f64 / took.as_secs_f64()
    );
    Ok(())
}
