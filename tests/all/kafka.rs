//! The real Apache Kafka broker the tests run against (started once per
//! test run by `scripts/test.sh`, see `scripts/kafka.sh`), and the first
//! fact the pipeline stands on: real alerts survive a round trip through
//! it byte for byte. The produce/consume helpers other tests use are in
//! `support::kafka`.

use std::time::Duration;

use crate::support::kafka::{consume, produce, unique};
use crate::support::ztf_alert_bytes;

#[test]
fn real_alerts_round_trip_through_the_test_broker_byte_for_byte() {
    let topic = unique("roundtrip");
    let alerts = ztf_alert_bytes();
    produce(&topic, &alerts);
    let mut received: Vec<Vec<u8>> = consume(&topic, alerts.len(), Duration::from_secs(60))
        .into_iter()
        .map(|(payload, _)| payload)
        .collect();
    let mut sent = alerts.clone();
    received.sort();
    sent.sort();
    assert_eq!(received.len(), sent.len(), "every alert came back");
    assert!(received == sent, "the alerts came back changed");
}
