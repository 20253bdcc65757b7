//! The real Apache Kafka broker the tests run against (started once per
//! test run by `scripts/test.sh`, see `scripts/kafka.sh`), and the first
//! fact the pipeline stands on: real alerts survive a round trip through
//! it byte for byte.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::support::ztf_alerts;

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

#[test]
fn real_alerts_round_trip_through_the_test_broker_byte_for_byte() {
    let brokers = brokers();
    let topic = unique("roundtrip");
    let alerts: Vec<Vec<u8>> = ztf_alerts()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("message.max.bytes", "10000000")
        .create()
        .expect("a producer for the test broker");
    for (i, alert) in alerts.iter().enumerate() {
        let key = i.to_string();
        producer
            .send(BaseRecord::to(&topic).key(&key).payload(alert))
            .map_err(|(e, _)| e)
            .expect("queued");
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("every alert acknowledged");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("roundtrip-group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer for the test broker");
    consumer.subscribe(&[&topic]).unwrap();
    let mut received: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.len() < alerts.len() && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            let message = message.expect("no consumer error");
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            received.insert(key, message.payload().unwrap().to_vec());
        }
    }
    assert_eq!(received.len(), alerts.len(), "every alert came back");
    for (i, alert) in alerts.iter().enumerate() {
        assert_eq!(
            &received[&i.to_string()],
            alert,
            "alert {i} changed on the way"
        );
    }
}
