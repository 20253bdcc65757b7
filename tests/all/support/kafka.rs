//! Talking to the real Apache Kafka broker the tests run against
//! (started once per test run by `scripts/test.sh`, see
//! `scripts/kafka.sh`): unique names, producing, reading topics back, and
//! a broker of a test's own for tests that stop it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// The broker's address. Fails, never skips, when no broker was started.
pub fn brokers() -> String {
    std::env::var("BANDPASS_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "BANDPASS_KAFKA_BROKERS is not set: run the tests with scripts/test.sh, which \
             starts a Kafka broker (scripts/kafka.sh) for them"
        )
    })
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Produces `messages` to `topic` on the shared broker.
pub fn produce(topic: &str, messages: &[Vec<u8>]) {
    produce_to(&brokers(), topic, messages)
}

/// Produces `messages` to `topic` (keys are their indices) and waits
/// until the broker acknowledged every one.
pub fn produce_to(brokers: &str, topic: &str, messages: &[Vec<u8>]) {
    produce_stamped(brokers, topic, messages, None)
}

/// Like [`produce_to`], every message with this timestamp (ms since the
/// epoch) instead of the time of sending.
pub fn produce_stamped(brokers: &str, topic: &str, messages: &[Vec<u8>], timestamp: Option<i64>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for (i, m) in messages.iter().enumerate() {
        let key = i.to_string();
        let mut record = BaseRecord::to(topic).key(&key).payload(m);
        if let Some(ms) = timestamp {
            record = record.timestamp(ms);
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// A received message: payload and headers.
pub type Received = (Vec<u8>, BTreeMap<String, String>);

/// Reads `topic` on the shared broker; see [`consume_from`].
pub fn consume(topic: &str, want: usize, wait: Duration) -> Vec<Received> {
    consume_from(&brokers(), topic, want, wait)
}

/// Produces each (key, payload) to `topic` on the shared broker and waits
/// until the broker acknowledged every one.
pub fn produce_keyed(topic: &str, messages: &[(String, Vec<u8>)]) {
    produce_keyed_with(topic, messages, None);
}

/// [`produce_keyed`], each message with the header `(name, value)`.
pub fn produce_keyed_with(
    topic: &str,
    messages: &[(String, Vec<u8>)],
    header: Option<(&str, &str)>,
) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    for (key, payload) in messages {
        let mut record = BaseRecord::to(topic).key(key).payload(payload);
        if let Some((name, value)) = header {
            record = record.headers(rdkafka::message::OwnedHeaders::new().insert(
                rdkafka::message::Header {
                    key: name,
                    value: Some(value),
                },
            ));
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// A received message with where it was and its key.
pub struct Keyed {
    pub partition: i32,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Reads `topic` from the start until `want` messages came or `wait`
/// passed; only committed transactions' messages, as exactly-once
/// consumers of the outputs read them.
pub fn consume_from(brokers: &str, topic: &str, want: usize, wait: Duration) -> Vec<Received> {
    consume_keyed(brokers, topic, want, wait)
        .into_iter()
        .map(|m| (m.payload, m.headers))
        .collect()
}

/// [`consume_from`], keeping each message's partition and key.
pub fn consume_keyed(brokers: &str, topic: &str, want: usize, wait: Duration) -> Vec<Keyed> {
    let consumer: BaseConsumer = reader(brokers)
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(keyed(&m));
        }
    }
    out
}

/// A consumer's settings as an exactly-once reader of the outputs has
/// them: a group of its own, no commits, committed transactions only.
fn reader(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed");
    config
}

fn keyed(m: &rdkafka::message::BorrowedMessage<'_>) -> Keyed {
    let mut headers = BTreeMap::new();
    if let Some(h) = m.headers() {
        for header in h.iter() {
            let value = header
                .value
                .map(|v| String::from_utf8_lossy(v).into_owned());
            headers.insert(header.key.to_string(), value.unwrap_or_default());
        }
    }
    Keyed {
        partition: m.partition(),
        key: String::from_utf8_lossy(m.key().unwrap_or(&[])).into_owned(),
        payload: m.payload().unwrap_or(&[]).to_vec(),
        headers,
    }
}

/// Everything `topic` holds now (committed transactions only), read to
/// the end of every partition: for a topic nobody writes to any more,
/// the whole of it, however slow the broker is to hand it over (within
/// 120 s, else it panics). No consumer group: the partitions are assigned
/// directly.
pub fn read_to_end(brokers: &str, topic: &str) -> Vec<Received> {
    let consumer: BaseConsumer = reader(brokers)
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let partitions = loop {
        let found = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| Some(m.topics().first()?.partitions().len()))
            .unwrap_or(0);
        if found > 0 {
            break found as i32;
        }
        assert!(Instant::now() < deadline, "no topic {topic} to read");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut at_end = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    while at_end.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "{topic}: only partitions {at_end:?} of {partitions} read to their end in 120 s"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let m = keyed(&m);
                out.push((m.payload, m.headers));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
    }
    out
}

/// Reads `topic` until every payload of `accepted` arrived at least
/// `need` times or `wait` passed; returns the fewest copies of any.
/// (Duplicates are allowed, so a total count would stop too early.)
pub fn fewest_copies(
    brokers: &str,
    topic: &str,
    accepted: &[Vec<u8>],
    need: usize,
    wait: Duration,
) -> usize {
    let deadline = Instant::now() + wait;
    let mut fewest = 0;
    while Instant::now() < deadline && fewest < need {
        let got = consume_from(brokers, topic, usize::MAX, Duration::from_secs(3));
        fewest = accepted
            .iter()
            .map(|a| got.iter().filter(|(p, _)| p == a).count())
            .min()
            .unwrap_or(0);
    }
    fewest
}

/// How many times each payload is on `topic` (read_committed, to the end
/// of every partition).
pub fn copies_on(topic: &str) -> BTreeMap<Vec<u8>, usize> {
    let mut out = BTreeMap::new();
    for (payload, _) in read_to_end(&brokers(), topic) {
        *out.entry(payload).or_default() += 1;
    }
    out
}

/// Reads `topic` until every key of `want` is there (or 120 s passed).
pub fn read_until(topic: &str, want: &[String]) -> Vec<Keyed> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = consume_keyed(&brokers(), topic, usize::MAX, Duration::from_secs(3));
        let all = want.iter().all(|k| got.iter().any(|m| &m.key == k));
        if all || Instant::now() > deadline {
            return got;
        }
    }
}

/// Counts the messages in topics (one client, reused: cheap to ask often).
pub struct Counter(BaseConsumer);

impl Counter {
    pub fn new() -> Counter {
        Counter(
            ClientConfig::new()
                .set("bootstrap.servers", brokers())
                .create()
                .unwrap(),
        )
    }

    /// How many messages `topic` holds (the sum of its partitions' high
    /// watermarks; transaction markers and aborted messages count too).
    pub fn count(&self, topic: &str) -> i64 {
        let Ok(metadata) = self.0.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
            return 0;
        };
        let Some(t) = metadata.topics().first() else {
            return 0;
        };
        t.partitions()
            .iter()
            .filter_map(|p| {
                self.0
                    .fetch_watermarks(topic, p.id(), Duration::from_secs(5))
                    .ok()
            })
            .map(|(_, high)| high)
            .sum()
    }
}

/// A broker of a test's own, for tests that stop it: the shared one must
/// stay up for the others. Stopped and removed when dropped.
pub struct DedicatedBroker {
    pub address: String,
    dir: String,
}

fn kafka_script(args: &[&str]) -> String {
    let out = std::process::Command::new(super::repo_root().join("scripts/kafka.sh"))
        .args(args)
        .output()
        .expect("scripts/kafka.sh runs");
    assert!(
        out.status.success(),
        "scripts/kafka.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl DedicatedBroker {
    pub fn start() -> DedicatedBroker {
        let env = kafka_script(&["start"]);
        let value = |key: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("scripts/kafka.sh start printed no {key}"))
                .to_string()
        };
        DedicatedBroker {
            address: value("BANDPASS_KAFKA_BROKERS="),
            dir: value("BANDPASS_KAFKA_DIR="),
        }
    }

    /// Kills the broker abruptly, keeping its data.
    pub fn down(&self) {
        kafka_script(&["down", &self.dir]);
    }

    /// Starts it again on the same port, with the same topics and offsets.
    pub fn up(&self) {
        kafka_script(&["up", &self.dir]);
    }
}

impl Drop for DedicatedBroker {
    fn drop(&mut self) {
        let _ = std::process::Command::new(super::repo_root().join("scripts/kafka.sh"))
            .args(["stop", &self.dir])
            .output();
    }
}
