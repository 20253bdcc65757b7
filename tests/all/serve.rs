//! `bandpass serve` against the real broker: the stream accepts exactly
//! what the batch replay accepts on the same alerts, byte for byte, with
//! the right headers; bad messages go to the dead-letter topic; SIGTERM
//! drains, commits and exits 0.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bandpass::sandbox::{Outcome, Verdict};
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::kafka::{brokers, unique};
use crate::support::{bandpass_bin, filters_dir, load, run, sandbox, ztf_alerts};

/// A `bandpass serve` process, killed if the test ends early.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn produce(topic: &str, messages: &[Vec<u8>]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    for (i, m) in messages.iter().enumerate() {
        let key = i.to_string();
        producer
            .send(BaseRecord::to(topic).key(&key).payload(m))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// A received message: payload and headers.
type Received = (Vec<u8>, BTreeMap<String, String>);

/// Reads `topic` from the start until `want` messages came or `wait` passed.
fn consume(topic: &str, want: usize, wait: Duration) -> Vec<Received> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let mut headers = BTreeMap::new();
            if let Some(h) = m.headers() {
                for header in h.iter() {
                    let value = header
                        .value
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                    headers.insert(header.key.to_string(), value.unwrap_or_default());
                }
            }
            out.push((m.payload().unwrap_or(&[]).to_vec(), headers));
        }
    }
    out
}

#[test]
fn serve_accepts_on_the_stream_what_run_accepts_offline_and_dead_letters_bad_messages() {
    const COPIES: usize = 5;
    let names = [
        "bright_transients",
        "fast_risers",
        "nuclear_transients",
        "asteroids",
    ];

    // What the batch path accepts on the same alerts.
    let files = ztf_alerts();
    let sb = sandbox();
    let filters: Vec<_> = names.iter().map(|n| load(&sb, n)).collect();
    let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(); names.len()];
    for (file, result) in run(&filters, &files) {
        for (i, e) in result.evaluations.iter().enumerate() {
            if matches!(e.outcome, Outcome::Verdict(Verdict::Accept { .. })) {
                for _ in 0..COPIES {
                    expected[i].push(std::fs::read(&file).unwrap());
                }
            }
        }
    }

    // The input: every real alert five times, and three bad messages.
    let input = unique("alerts");
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for _ in 0..COPIES {
        messages.extend(files.iter().map(|f| std::fs::read(f).unwrap()));
    }
    let real = std::fs::read(&files[0]).unwrap();
    let bad = [
        real[..real.len() / 2].to_vec(),
        b"random bytes, not avro".to_vec(),
        vec![0, 0, 0, 3, 7, 1],
    ];
    messages.extend(bad.iter().cloned());
    produce(&input, &messages);

    let dir = tempfile::tempdir().unwrap();
    let dead_letter = unique("dead-letter");
    let outputs: Vec<String> = names.iter().map(|n| unique(n)).collect();
    let mut toml = format!(
        "dead_letter_topic = \"{dead_letter}\"\n[kafka]\nbrokers = [\"{}\"]\n\
         [input]\ntopics = [\"{input}\"]\ngroup = \"{}\"\nstart = \"earliest\"\n",
        brokers(),
        unique("serve-group")
    );
    for (name, output) in names.iter().zip(&outputs) {
        let path: PathBuf = filters_dir().join(format!("{name}.wasm"));
        toml.push_str(&format!(
            "[[filter]]\npath = \"{}\"\noutput_topic = \"{output}\"\n",
            path.display()
        ));
    }
    let config = dir.path().join("bandpass.toml");
    std::fs::write(&config, toml).unwrap();
    let mut serve = Serve(
        Command::new(bandpass_bin())
            .args(["serve", "--config", config.to_str().unwrap()])
            .spawn()
            .expect("bandpass serve starts"),
    );

    for ((name, output), want) in names.iter().zip(&outputs).zip(&expected) {
        if want.is_empty() {
            continue;
        }
        let got = consume(output, want.len(), Duration::from_secs(90));
        let mut payloads: Vec<&Vec<u8>> = got.iter().map(|(p, _)| p).collect();
        let mut wanted: Vec<&Vec<u8>> = want.iter().collect();
        payloads.sort();
        wanted.sort();
        assert_eq!(
            payloads.len(),
            wanted.len(),
            "{name}: accepted count on the stream"
        );
        assert!(
            payloads == wanted,
            "{name}: the stream's accepted alerts differ from run's, byte for byte"
        );
        let filter_name = name.replace('_', "-");
        for (_, headers) in &got {
            assert_eq!(headers["bandpass-filter"], filter_name);
            assert_eq!(headers["bandpass-filter-version"], "0.1.0");
            assert!(
                headers["bandpass-score"].parse::<f64>().is_ok(),
                "{headers:?}"
            );
            assert!(!headers["bandpass-tags"].is_empty(), "{headers:?}");
        }
    }
    let dead = consume(&dead_letter, bad.len(), Duration::from_secs(60));
    assert_eq!(dead.len(), bad.len(), "every bad message is dead-lettered");
    let mut dead_payloads: Vec<&Vec<u8>> = dead.iter().map(|(p, _)| p).collect();
    let mut bad_sorted: Vec<&Vec<u8>> = bad.iter().collect();
    dead_payloads.sort();
    bad_sorted.sort();
    assert!(
        dead_payloads == bad_sorted,
        "dead letters keep the original bytes"
    );
    for (_, headers) in &dead {
        assert!(!headers["bandpass-error"].is_empty());
        assert_eq!(headers["bandpass-source-topic"], input);
    }
    // A filter that accepts nothing produced nothing.
    let idle = names.iter().position(|n| *n == "asteroids").unwrap();
    assert!(expected[idle].is_empty());
    assert!(consume(&outputs[idle], 1, Duration::from_secs(3)).is_empty());

    // SIGTERM: drain, commit, exit 0 in bounded time.
    let pid = serve.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = serve.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not exit within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "serve exits 0 after SIGTERM: {status}");
}

#[test]
fn serve_refuses_a_bad_or_unfinished_config_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let base =
        "[kafka]\nbrokers = [\"127.0.0.1:1\"]\n[input]\ntopics = [\"alerts\"]\ngroup = \"g\"\n";
    let cases = [
        (format!("{base}typo = 1\n"), "typo"),
        (
            format!("delivery = \"exactly-once\"\n{base}"),
            "exactly-once",
        ),
        (
            format!("{base}[schemas]\nregistry_url = \"http://127.0.0.1:1\"\n"),
            "registry_url",
        ),
    ];
    for (text, needle) in cases {
        let config = dir.path().join("bandpass.toml");
        std::fs::write(&config, text).unwrap();
        let out = Command::new(bandpass_bin())
            .args(["serve", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("bandpass.toml") && stderr.contains(needle),
            "{stderr}"
        );
    }
}
