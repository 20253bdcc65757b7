//! `bandpass consume --config F --topic T`: a topic's alerts as a line
//! each (partition, offset, key, the alert's object and candidate, the
//! `bandpass-*` headers a filter's verdict put there), or written to
//! files (`--out DIR`), with the serve config's Kafka settings. It reads
//! as an outside client: no consumer group joins, nothing is committed.
//!
//! Must never: print a topic's text unescaped (headers and keys are
//! anyone's bytes), or write outside `--out`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::decode::{Decoder, FieldValue};

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The serve config: its [kafka] settings (and [schemas], to read
    /// wire-format alerts).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The topic to read.
    #[arg(long)]
    pub topic: String,
    /// Write each message's bytes to DIR/<topic>-<partition>-<offset>.avro
    /// instead of a line each.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Stop after this many messages.
    #[arg(long)]
    pub max: Option<u64>,
    /// Only messages produced from now on (default: from the start).
    #[arg(long)]
    pub latest: bool,
    /// Keep reading at the end, until interrupted (default: stop at the
    /// end the topic had when it started).
    #[arg(long)]
    pub follow: bool,
}

const TIMEOUT: Duration = Duration::from_secs(15);

/// The paths each line shows (ZTF, then Rubin).
const SHOWN: [&str; 4] = [
    "objectId",
    "candid",
    "diaObject.diaObjectId",
    "diaSource.diaSourceId",
];

fn text(v: &FieldValue) -> Option<String> {
    match v {
        FieldValue::Integer(n) => Some(n.to_string()),
        FieldValue::Text(t) => Some(crate::text::shown(t, 64).into_owned()),
        _ => None,
    }
}

pub fn execute(args: ConsumeArgs) -> anyhow::Result<u8> {
    let config = Config::load(&args.config)?;
    // Assigned, never subscribed: no group joined, nothing committed.
    let consumer = super::offsets::client(&config, None)?;
    let all = super::offsets::partitions(std::slice::from_ref(&args.topic), &consumer)?;
    let partitions: Vec<i32> = all.elements().iter().map(|e| e.partition()).collect();
    // Where each partition ends now: without --follow, the reading stops
    // there.
    let mut ends = std::collections::BTreeMap::new();
    let mut list = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer.fetch_watermarks(&args.topic, p, TIMEOUT)?;
        let start = if args.latest { high } else { low };
        if start < high || args.follow {
            ends.insert(p, high);
            list.add_partition_offset(&args.topic, p, Offset::Offset(start))?;
        }
    }
    if let Some(dir) = &args.out {
        if dir.exists() && !dir.is_dir() {
            anyhow::bail!("--out {}: give a folder (it is a file)", dir.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    consumer.assign(&list).context("reading the topic")?;
    let decoder = Decoder::new(
        SHOWN.iter().map(|p| p.to_string()).collect(),
        config.schemas.source(),
    );
    let mut read = 0u64;
    let mut quiet_since = Instant::now();
    while args.max.is_none_or(|m| read < m) && (args.follow || !ends.is_empty()) {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            // A partition whose last offsets are not messages (the marker
            // that ends a transaction, on an exactly-once output) is at
            // its end when the position reaches it.
            if !args.follow
                && let Ok(position) = consumer.position()
            {
                ends.retain(|p, end| {
                    !matches!(
                        position.find_partition(&args.topic, *p).map(|e| e.offset()),
                        Some(Offset::Offset(at)) if at >= *end
                    )
                });
                if ends.is_empty() {
                    break;
                }
            }
            if !args.follow && quiet_since.elapsed() > TIMEOUT {
                anyhow::bail!("no message for {TIMEOUT:?} before the topic's end: the brokers?");
            }
            continue;
        };
        quiet_since = Instant::now();
        let m = message.context("reading the topic")?;
        read += 1;
        let (p, offset) = (m.partition(), m.offset());
        if ends.get(&p).is_some_and(|end| offset + 1 >= *end) && !args.follow {
            ends.remove(&p);
        }
        let payload = m.payload().unwrap_or_default();
        if let Some(dir) = &args.out {
            let file = dir.join(format!("{}-{p}-{offset}.avro", args.topic));
            std::fs::write(&file, payload)
                .with_context(|| format!("writing {}", file.display()))?;
            continue;
        }
        let mut line = format!("{p}/{offset} {} bytes", payload.len());
        if let Some(key) = m.key() {
            line.push_str(&format!(
                " key={}",
                crate::text::shown(&String::from_utf8_lossy(key), 64)
            ));
        }
        match decoder.decode(&bytes::Bytes::copy_from_slice(payload)) {
            Ok(alerts) => {
                for alert in alerts {
                    for (path, value) in SHOWN.iter().zip(&alert.values) {
                        if let Some(v) = text(value) {
                            line.push_str(&format!(" {path}={v}"));
                        }
                    }
                }
            }
            Err(e) => line.push_str(&format!(
                " (not an alert: {})",
                crate::text::shown(&e.to_string(), 120)
            )),
        }
        if let Some(headers) = m.headers() {
            for h in headers.iter().filter(|h| h.key.starts_with("bandpass-")) {
                let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                line.push_str(&format!(
                    " {}={}",
                    crate::text::shown(h.key, 64),
                    crate::text::shown(&value, 200)
                ));
            }
        }
        println!("{line}");
    }
    if let Some(dir) = &args.out {
        println!(
            "{read} messages of {} written to {}",
            args.topic,
            dir.display()
        );
    }
    Ok(0)
}
