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

/// A serve config naming only the shared broker (for the operator's
/// Kafka commands), in `dir`.
fn operator_config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("bandpass.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = [\"{}\"]\n[input]\ntopics = [\"{}\"]\ngroup = \"{}\"\n",
            crate::support::kafka::brokers(),
            unique("unused-input"),
            unique("unused-group")
        ),
    )
    .unwrap();
    config
}

#[test]
fn produce_puts_alert_files_on_a_topic_one_keyed_message_per_alert() {
    use crate::support::kafka::{brokers, consume_keyed};
    let dir = tempfile::tempdir().unwrap();
    let config = operator_config(dir.path());
    let alerts_dir = crate::support::data_dir().join("ztf/alerts");
    // A file that is not an alert, among them: named, the rest produced.
    let bad = dir.path().join("not-an-alert.avro");
    std::fs::write(&bad, b"not avro").unwrap();
    let topic = unique("produced");
    let produce_to = |topic: &str| {
        let mut c = std::process::Command::new(crate::support::bandpass_bin());
        c.args([
            "produce",
            "--config",
            config.to_str().unwrap(),
            "--topic",
            topic,
        ]);
        c
    };
    let out = produce_to(&topic)
        .arg(&alerts_dir)
        .arg(&bad)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("not-an-alert.avro: not produced"),
        "{stderr}"
    );
    let alerts = ztf_alert_bytes();
    assert!(
        stdout.contains(&format!(
            "{} alerts from {} inputs acknowledged on {topic}",
            alerts.len(),
            alerts.len() + 1
        )),
        "{stdout}"
    );
    // Byte for byte, each keyed by its object id: one object, one
    // partition.
    let got = consume_keyed(&brokers(), &topic, alerts.len(), Duration::from_secs(60));
    assert_eq!(got.len(), alerts.len());
    let mut payloads: Vec<&Vec<u8>> = got.iter().map(|m| &m.payload).collect();
    let mut want: Vec<&Vec<u8>> = alerts.iter().collect();
    payloads.sort();
    want.sort();
    assert!(payloads == want, "the messages are not the alert files");
    let mut partition_of = std::collections::BTreeMap::new();
    for m in &got {
        let text = String::from_utf8_lossy(&m.payload);
        assert!(
            m.key.starts_with("ZTF") && text.contains(&m.key),
            "{}",
            m.key
        );
        assert_eq!(
            *partition_of.entry(m.key.clone()).or_insert(m.partition),
            m.partition,
            "object {} on two partitions",
            m.key
        );
    }
    assert!(partition_of.len() > 5, "{partition_of:?}");
    // One partition, no key, at a bounded rate.
    let topic = unique("produced-one");
    let out = produce_to(&topic)
        .args(["--key", "none", "--partition", "2", "--rate", "500"])
        .arg(&alerts_dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = consume_keyed(&brokers(), &topic, alerts.len(), Duration::from_secs(60));
    assert_eq!(got.len(), alerts.len());
    assert!(got.iter().all(|m| m.partition == 2 && m.key.is_empty()));
    // A partition the topic lacks is refused before anything is sent,
    // naming those it has.
    for wrong in ["4", "-1"] {
        let out = produce_to(&topic)
            .arg(format!("--partition={wrong}"))
            .arg(&alerts_dir)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{said}");
        assert!(
            said.contains(&format!(
                "--partition {wrong}: topic {topic} has 4 partitions (0 to 3)"
            )),
            "{said}"
        );
    }
}

/// `--framing wire`: each alert as Confluent's wire format (a zero byte,
/// the schema id, the record), read back by an independent Avro reader;
/// an id the config's schemas lack, or that names another schema, is
/// refused before a wrong message is sent.
#[test]
fn produce_in_wire_format_writes_the_id_and_the_record_and_refuses_a_wrong_id() {
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::{Reader, Schema};
    let dir = tempfile::tempdir().unwrap();
    let config = operator_config(dir.path());
    let alerts = crate::support::data_dir().join("ztf/alerts");
    let schema_of = |version: &str| -> Schema {
        let folder = alerts.join(version);
        let file = std::fs::read_dir(&folder)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        Reader::new(&std::fs::read(file).unwrap()[..])
            .unwrap()
            .writer_schema()
            .clone()
    };
    // Id 7 holds the 4.02 schema in canonical form (not the alert's
    // header text byte for byte), id 9 the 3.3 one.
    let schemas = dir.path().join("schemas");
    std::fs::create_dir(&schemas).unwrap();
    std::fs::write(schemas.join("7.avsc"), schema_of("v4.02").canonical_form()).unwrap();
    std::fs::write(schemas.join("9.avsc"), schema_of("v3.3").canonical_form()).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}[schemas]\ndir = \"{}\"\n", schemas.display()),
    )
    .unwrap();
    // `bandpass produce --framing wire` with `config`, to `topic`,
    // `--schema-id id` unless none.
    let wire =
        |config: &std::path::Path, topic: &str, id: Option<&str>, input: &std::path::Path| {
            let mut c = std::process::Command::new(crate::support::bandpass_bin());
            c.args([
                "produce",
                "--config",
                config.to_str().unwrap(),
                "--topic",
                topic,
            ])
            .args(["--framing", "wire"]);
            if let Some(id) = id {
                c.args(["--schema-id", id]);
            }
            c.arg(input).output().unwrap()
        };
    let produce =
        |topic: &str, id: &str, folder: &str| wire(&config, topic, Some(id), &alerts.join(folder));
    let topic = unique("wire");
    let out = produce(&topic, "7", "v4.02");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let file = std::fs::read_dir(alerts.join("v4.02"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut reader = Reader::new(std::fs::File::open(file).unwrap()).unwrap();
    let schema = reader.writer_schema().clone();
    let want = reader.next().unwrap().unwrap();
    let got = consume(&topic, 1, Duration::from_secs(60));
    assert_eq!(got.len(), 1);
    let message = &got[0].0;
    assert_eq!(message[..5], [0, 0, 0, 0, 7], "the wire header: zero, id 7");
    let mut record = &message[5..];
    let value = GenericDatumReader::builder(&schema)
        .build()
        .unwrap()
        .read_value(&mut record)
        .unwrap();
    assert!(record.is_empty(), "{} bytes after the record", record.len());
    assert!(
        value == want,
        "the record read back differs from the file's"
    );

    // Alerts of 3.3 under the id of 4.02: refused, nothing sent.
    let topic = unique("wire-wrong");
    let out = produce(&topic, "7", "v3.3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "not produced: its writer schema (ztf.alert) is not the schema registered under id 7"
        ),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 alerts from 1 inputs"));
    // An id the schemas do not hold, and a wire framing without an id.
    let out = produce(&topic, "8", "v3.3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("--schema-id 8:"), "{stderr}");
    let out = wire(&config, &topic, None, &alerts.join("v3.3"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--framing wire needs --schema-id ID"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A schema kept in several files (Rubin's vM_m/ layout, where id 703
    // is v7_3): its own alert is sent under its id, another version's is
    // not.
    let rubin = crate::support::data_dir().join("rubin/schema");
    let rubin_config = dir.path().join("rubin.toml");
    std::fs::write(
        &rubin_config,
        format!("{text}[schemas]\ndir = \"{}\"\n", rubin.display()),
    )
    .unwrap();
    let rubin_topic = unique("wire-rubin");
    let rubin_produce = |id: &str, version: &str| {
        let alert = rubin.join(version).join("sample_data/fakeAlert.avro");
        wire(&rubin_config, &rubin_topic, Some(id), &alert)
    };
    let out = rubin_produce("703", "v7_3");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = rubin_produce("703", "v7_0");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not the schema registered under id 703"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The right id for 3.3: read back as 3.3.
    let out = produce(&topic, "9", "v3.3");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = consume(&topic, 1, Duration::from_secs(60));
    assert_eq!(got[0].0[..5], [0, 0, 0, 0, 9]);
}

#[test]
fn consume_shows_a_topic_s_alerts_a_line_each_or_writes_them_to_files() {
    use crate::support::kafka::produce_keyed_with;
    let dir = tempfile::tempdir().unwrap();
    let config = operator_config(dir.path());
    let alerts = ztf_alert_bytes();
    let topic = unique("consumed");
    let keyed: Vec<(String, Vec<u8>)> = alerts
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("k{i}"), a.clone()))
        .collect();
    // A header with a control character: shown escaped.
    produce_keyed_with(&topic, &keyed, Some(("bandpass-tags", "bright,\u{1b}[2Jx")));
    produce(&topic, &[b"not an alert".to_vec()]);
    let consume = |more: &[&str]| {
        let out = std::process::Command::new(crate::support::bandpass_bin())
            .args([
                "consume",
                "--config",
                config.to_str().unwrap(),
                "--topic",
                &topic,
            ])
            .args(more)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let lines: Vec<String> = consume(&[]).lines().map(String::from).collect();
    assert_eq!(lines.len(), alerts.len() + 1, "{lines:#?}");
    let alert_lines: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("objectId=ZTF"))
        .collect();
    assert_eq!(alert_lines.len(), alerts.len(), "{lines:#?}");
    for l in &alert_lines {
        assert!(l.contains(" key=k") && l.contains(" candid="), "{l}");
        assert!(l.contains("bandpass-tags=bright,\\u{1b}[2Jx"), "{l}");
        assert!(!l.contains('\u{1b}'), "{l}");
    }
    assert!(
        lines.iter().any(|l| l.contains("(not an alert:")),
        "{lines:#?}"
    );
    assert_eq!(consume(&["--max", "3"]).lines().count(), 3);
    // To files: byte for byte.
    let out = dir.path().join("out");
    let said = consume(&["--out", out.to_str().unwrap()]);
    assert!(
        said.contains(&format!("{} messages of {topic} written", alerts.len() + 1)),
        "{said}"
    );
    let mut written: Vec<Vec<u8>> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .filter(|b| b.as_slice() != b"not an alert")
        .collect();
    let mut want = alerts.clone();
    written.sort();
    want.sort();
    assert!(written == want, "the files are not the alerts");
}
