//! `bandpass produce --config F --topic T INPUTS...`: alert files,
//! folders or `.tar.gz` archives onto a topic, one message per alert (a
//! container file holding several is split), with the serve config's
//! Kafka settings, so that an operator feeds a topic without other
//! tools.
//!
//! Must never: stop at an unreadable file (each is named and counted, and
//! the exit status says some were), or call a message sent before the
//! broker acknowledged it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use rdkafka::ClientContext;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use crate::config::Config;
use crate::decode::{Decoder, FieldValue};
use crate::kafka::{Cluster, Role, client_config};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The serve config: its [kafka] settings (and [schemas], to read
    /// wire-format inputs).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Alert files (Avro containers), folders of them, `.tar.gz` archives.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Each message's key: the alert's object id (so that one object's
    /// alerts share a partition), its candidate id, or none.
    #[arg(long, value_enum, default_value_t = Key::Object)]
    pub key: Key,
    /// Every message to this partition (default: by key, or spread).
    #[arg(long)]
    pub partition: Option<i32>,
    /// At most this many messages a second (default: as fast as the
    /// broker takes them).
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    /// How each message holds its alert: an Avro container (the schema
    /// in every message, as ZTF sends), or Confluent's wire format (a
    /// zero byte, the schema id, the record; as Rubin sends), which needs
    /// --schema-id.
    #[arg(long, value_enum, default_value_t = Framing::Container)]
    pub framing: Framing,
    /// With --framing wire: the schema registry's id of the alerts'
    /// schema, checked against the config's [schemas] source.
    #[arg(long, value_name = "ID")]
    pub schema_id: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Framing {
    Container,
    Wire,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Key {
    Object,
    Candidate,
    None,
}

/// The slowest `--rate`: one message an hour.
const MIN_RATE: f64 = 1.0 / 3600.0;

/// Paths read for a key, in order (ZTF, then Rubin).
const OBJECT: [&str; 3] = ["objectId", "diaObject.diaObjectId", "diaSource.diaObjectId"];
const CANDIDATE: [&str; 3] = ["candid", "diaSource.diaSourceId", "alertId"];

/// Counts the broker's answers.
#[derive(Default)]
struct Acks {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_failure: std::sync::Mutex<Option<String>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_failure
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// The alert's key as text, from the first of `paths` it holds.
fn key_of(values: &[FieldValue]) -> Option<String> {
    values.iter().find_map(|v| match v {
        FieldValue::Integer(n) => Some(n.to_string()),
        FieldValue::Text(t) => Some(t.clone()),
        _ => None,
    })
}

/// Confluent wire framing under one schema id, with each writer schema
/// compared with the id's once.
struct Wire<'a> {
    id: u32,
    decoder: &'a Decoder,
    /// Whether each writer schema seen (by fingerprint) is the id's.
    checked: std::collections::HashMap<u64, bool>,
}

impl Wire<'_> {
    /// One alert (a container of one record) as a wire-format message.
    fn frame(&mut self, alert: &crate::decode::DecodedAlert) -> Result<Bytes, String> {
        let (schema, record) =
            crate::decode::single_record(&alert.raw).map_err(|e| e.to_string())?;
        let same = match self.checked.get(&alert.schema.fingerprint) {
            Some(same) => *same,
            None => {
                let same = self
                    .decoder
                    .is_schema_of_id(self.id, schema)
                    .map_err(|e| e.to_string())?;
                self.checked.insert(alert.schema.fingerprint, same);
                same
            }
        };
        if !same {
            return Err(format!(
                "its writer schema ({}) is not the schema registered under id {}; give the id of the schema it was written with",
                alert.schema.full_name, self.id
            ));
        }
        let mut out = Vec::with_capacity(5 + record.len());
        out.push(0);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&record);
        Ok(Bytes::from(out))
    }
}

/// Refuses `--partition p` unless `topic` has partition `p`, before a
/// message is sent: librdkafka would fail each message with its own words
/// ("Local: Unknown partition"). Asking for the metadata creates the topic
/// where the broker creates topics on first use, as producing would.
fn check_partition(producer: &BaseProducer<Acks>, topic: &str, p: i32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let count = loop {
        let count = crate::kafka::partition_count(producer.client(), topic)?;
        // A topic the broker has just created shows no partitions yet.
        if count > 0 || Instant::now() > deadline {
            break count;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    match count {
        0 => anyhow::bail!(
            "--partition {p}: topic {topic} does not exist on the input cluster and the broker \
             does not create topics on first use: create it, then produce again"
        ),
        n if p < 0 || p as usize >= n => anyhow::bail!(
            "--partition {p}: topic {topic} has {n} partition{} (0 to {}): give one of them, \
             or leave --partition out to spread the alerts by --key",
            if n == 1 { "" } else { "s" },
            n - 1
        ),
        _ => Ok(()),
    }
}

pub fn execute(args: ProduceArgs) -> anyhow::Result<u8> {
    let config = Config::load(&args.config)?;
    if let Some(rate) = args.rate
        && !(rate >= MIN_RATE && rate.is_finite())
    {
        anyhow::bail!("--rate {rate}: give a number of messages a second, at least {MIN_RATE}");
    }
    let schema_id = match (args.framing, args.schema_id) {
        (Framing::Wire, Some(id)) => Some(id),
        (Framing::Wire, None) => anyhow::bail!(
            "--framing wire needs --schema-id ID: the schema registry's id of the alerts' schema"
        ),
        (Framing::Container, Some(_)) => anyhow::bail!(
            "--schema-id is for --framing wire; a container carries its schema itself"
        ),
        (Framing::Container, None) => None,
    };
    crate::kafka::check_connection(&config, Cluster::Input, &[], None)?;
    let mut client = client_config(&config, Role::InputClient);
    client
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000");
    let producer: BaseProducer<Acks> = client
        .create_with_context(Acks::default())
        .context("creating the Kafka producer")?;
    if let Some(p) = args.partition {
        check_partition(&producer, &args.topic, p)?;
    }
    let paths: &[&str] = match args.key {
        Key::Object => &OBJECT,
        Key::Candidate => &CANDIDATE,
        Key::None => &[],
    };
    let decoder = Decoder::new(
        paths.iter().map(|p| p.to_string()).collect(),
        config.schemas.source(),
    );
    if let Some(id) = schema_id {
        // Refused before anything is sent: serve would dead-letter every
        // message whose id it cannot resolve.
        decoder.schema_for_id(id).map_err(|e| {
            anyhow::anyhow!(
                "--schema-id {id}: {e}; the config's [schemas] source must hold the schema, as serve's does"
            )
        })?;
    }
    let mut wire = schema_id.map(|id| Wire {
        id,
        decoder: &decoder,
        checked: Default::default(),
    });
    let started = Instant::now();
    let (mut sent, mut unreadable, mut files) = (0u64, 0u64, 0u64);
    for item in crate::input::items(&args.inputs) {
        files += 1;
        // Each alert with the message that carries it, or why the input
        // gives none.
        let framed = item
            .bytes
            .map_err(|e| e.to_string())
            .and_then(|b| decoder.decode(&b).map_err(|e| e.to_string()))
            .and_then(|alerts| {
                alerts
                    .into_iter()
                    .map(|a| {
                        let payload = match &mut wire {
                            None => a.raw.clone(),
                            Some(wire) => wire.frame(&a)?,
                        };
                        Ok((a, payload))
                    })
                    .collect::<Result<Vec<_>, String>>()
            });
        let framed = match framed {
            Ok(f) => f,
            Err(why) => {
                eprintln!(
                    "{}: not produced: {why}",
                    crate::text::shown(&item.name, 200)
                );
                unreadable += 1;
                continue;
            }
        };
        for (alert, payload) in framed {
            if let Some(rate) = args.rate {
                let due = started + Duration::from_secs_f64(sent as f64 / rate);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            let key = key_of(&alert.values);
            let mut record = BaseRecord::<str, [u8]>::to(&args.topic).payload(&payload[..]);
            if let Some(k) = &key {
                record = record.key(k.as_str());
            }
            if let Some(p) = args.partition {
                record = record.partition(p);
            }
            let mut record = record;
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        producer.poll(Duration::from_millis(50));
                        record = back;
                    }
                    Err((e, _)) => anyhow::bail!("producing to {}: {e}", args.topic),
                }
            }
            producer.poll(Duration::ZERO);
            sent += 1;
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("waiting for the broker to acknowledge every message")?;
    let acks = producer.context();
    let (delivered, failed) = (
        acks.delivered.load(Ordering::Relaxed),
        acks.failed.load(Ordering::Relaxed),
    );
    println!(
        "{delivered} alerts from {files} inputs acknowledged on {} ({:.1} s){}",
        args.topic,
        started.elapsed().as_secs_f64(),
        if unreadable > 0 {
            format!("; {unreadable} inputs not produced (above)")
        } else {
            String::new()
        }
    );
    if failed > 0 {
        eprintln!(
            "{failed} alerts refused by the broker; the first: {}",
            acks.first_failure
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_default()
        );
    }
    Ok(if failed > 0 || unreadable > 0 { 2 } else { 0 })
}
