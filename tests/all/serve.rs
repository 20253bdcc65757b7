//! `bandpass serve` against the real broker: the stream accepts exactly
//! what the batch replay accepts on the same alerts, byte for byte, with
//! the right headers; bad messages go to the dead-letter topic; SIGTERM
//! drains, commits and exits 0.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use bandpass::sandbox::{Outcome, Verdict};

use crate::support::http::{admin_get, admin_until};
use crate::support::kafka::{
    Counter, DedicatedBroker, brokers, consume, consume_from, copies_on, fewest_copies, produce,
    produce_stamped, produce_to, read_to_end, unique,
};
use crate::support::metrics::{failure_kinds, sample};
use crate::support::processes::{
    Serve, ServeBuilder, chromium, exited_within, hangup, terminate, wait_for_log,
};
use crate::support::{
    bandpass_bin, filters_dir, load, offline_accepts, offline_accepts_with, rubin_alerts, run,
    sandbox, ztf_alert_bytes, ztf_alerts,
};

/// The partitions of `topic` an instance owns by its log: those of its
/// last assignment, or none after a revocation.
fn last_assignment(log: &std::path::Path, topic: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("partitions assigned") || l.contains("partitions revoked"))?;
    if line.contains("partitions revoked") {
        // Between a revocation and the next assignment it owns nothing.
        return Some(Vec::new());
    }
    let prefix = format!("{topic}/");
    Some(
        line.split(|c: char| c == ',' || c == '=' || c.is_whitespace())
            .filter(|w| w.starts_with(&prefix))
            .map(|w| {
                w.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .to_string()
            })
            .collect(),
    )
}

/// One bright-transients deployment on fresh topics (names start with
/// `prefix`), reading its input from the earliest offset.
struct Bright {
    /// Every real ZTF alert's bytes.
    alerts: Vec<Vec<u8>>,
    /// Those bright-transients accepts offline.
    accepted: Vec<Vec<u8>>,
    input: String,
    output: String,
    /// Its config, written; `serve.clone()` to start it with a log.
    serve: ServeBuilder,
    /// Holds the config (and any logs) until the test ends.
    dir: tempfile::TempDir,
}

impl Bright {
    /// [`fewest_copies`] of its accepted alerts on its output, through
    /// `brokers`, waiting up to 120 s for `need`.
    fn delivered(&self, brokers: &str, need: usize) -> usize {
        fewest_copies(
            brokers,
            &self.output,
            &self.accepted,
            need,
            Duration::from_secs(120),
        )
    }
}

fn bright(prefix: &str, brokers: &str) -> Bright {
    bright_with(prefix, brokers, |serve| serve)
}

/// [`bright`], its config given more by `more` (an admin port, say).
fn bright_with(
    prefix: &str,
    brokers: &str,
    more: impl FnOnce(ServeBuilder) -> ServeBuilder,
) -> Bright {
    let output = unique(&format!("{prefix}-out"));
    let input = unique(&format!("{prefix}-alerts"));
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeBuilder::new(
        dir.path().join("bandpass.toml"),
        &input,
        &unique(&format!("{prefix}-group")),
    )
    .brokers(brokers)
    .dead_letter(&unique(&format!("{prefix}-dlq")))
    .filter("bright_transients", &output);
    Bright {
        alerts: ztf_alert_bytes(),
        accepted: offline_accepts("bright_transients"),
        input,
        output,
        serve: more(serve).write(),
        dir,
    }
}

/// Starts `serve` `times` times and kills each with SIGKILL as soon as
/// it has added `step` messages to `output`: every kill lands in the
/// middle of the work, whatever the machine's speed.
fn kill_mid_run(serve: &ServeBuilder, output: &str, times: usize, step: i64) {
    let counter = Counter::new();
    for _ in 0..times {
        let before = counter.count(output);
        let mut serve = serve.spawn();
        let deadline = Instant::now() + Duration::from_secs(90);
        while counter.count(output) < before + step {
            assert!(
                Instant::now() < deadline,
                "{output} never grew by {step} messages"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        serve.0.kill().unwrap();
        serve.0.wait().unwrap();
    }
}

/// Makes the consumer of a config written by [`ServeBuilder`] fetch a
/// few alerts at a time, so that a run lasts seconds and a kill can land
/// in its middle (bandpass at full speed finishes these inputs in under a
/// second).
fn slow_down(config: &std::path::Path) {
    let text = std::fs::read_to_string(config).unwrap().replace(
        "\"heartbeat.interval.ms\" = \"1000\"\n",
        "\"heartbeat.interval.ms\" = \"1000\"\n\"queued.min.messages\" = \"1\"\n\
         \"max.partition.fetch.bytes\" = \"262144\"\n\"fetch.queue.backoff.ms\" = \"50\"\n",
    );
    std::fs::write(config, text).unwrap();
}

/// Puts `line` at the top of a config written by [`ServeBuilder`].
fn prepend(config: &std::path::Path, line: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, format!("{line}\n{text}")).unwrap();
}

/// Waits until every payload of `accepted` is on `output` at least `n`
/// times, stops `serves` (SIGTERM; each must exit 0), then requires
/// exactly `n` copies of each and nothing else on `output`: no loss and
/// no duplicate.
fn expect_exactly(
    output: &str,
    accepted: &[Vec<u8>],
    n: usize,
    serves: &mut [&mut Serve],
    why: &str,
) {
    let copies = fewest_copies(&brokers(), output, accepted, n, Duration::from_secs(120));
    assert!(
        copies >= n,
        "an accepted alert was lost: {copies} copies of one"
    );
    for serve in serves {
        assert!(terminate(serve).success());
    }
    let received = copies_on(output);
    for a in accepted {
        assert_eq!(received.get(a).copied().unwrap_or(0), n, "{why}");
    }
    assert_eq!(
        received.len(),
        accepted.len(),
        "only accepted alerts on the output"
    );
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
    // A container whose header names no schema (`avro.schema` misspelt).
    let mut bad_header = real.clone();
    let key = bad_header
        .windows(11)
        .position(|w| w == b"avro.schema")
        .unwrap();
    bad_header[key + 10] = b'x';
    let bad = [
        real[..real.len() / 2].to_vec(),
        b"random bytes, not avro".to_vec(),
        vec![0, 0, 0, 3, 7, 1],
        bad_header,
    ];
    messages.extend(bad.iter().cloned());
    produce(&input, &messages);

    let dir = tempfile::tempdir().unwrap();
    let dead_letter = unique("dead-letter");
    let outputs: Vec<String> = names.iter().map(|n| unique(n)).collect();
    // Hostile filters loaded beside the good ones change none of their
    // results, and produce nothing themselves.
    let hostile = [
        "hostile_infinite_loop",
        "hostile_panic",
        "hostile_memory_bomb",
    ];
    let hostile_outputs: Vec<String> = hostile.iter().map(|n| unique(n)).collect();
    let mut config = ServeBuilder::new(
        dir.path().join("bandpass.toml"),
        &input,
        &unique("serve-group"),
    )
    .dead_letter(&dead_letter)
    .admin();
    for (name, output) in names.iter().zip(&outputs) {
        config = config.filter(name, output);
    }
    for (name, output) in hostile.iter().zip(&hostile_outputs) {
        config = config.filter(name, output);
    }
    let config = config.write();
    let admin = config.admin_addr();
    let mut serve = config.spawn();

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
    let errors: Vec<&str> = dead
        .iter()
        .map(|(_, h)| h["bandpass-error"].as_str())
        .collect();
    for needle in ["ends early", "neither", "schema id", "header is corrupt"] {
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "no dead letter says '{needle}': {errors:?}"
        );
    }
    // A filter that accepts nothing produced nothing; nor did the hostile.
    let idle = names.iter().position(|n| *n == "asteroids").unwrap();
    assert!(expected[idle].is_empty());
    for topic in hostile_outputs.iter().chain([&outputs[idle]]) {
        assert!(
            consume(topic, 1, Duration::from_secs(2)).is_empty(),
            "{topic} got an alert"
        );
    }

    // The metrics: every good filter evaluated every alert; each hostile
    // one failed with its kind until it was quarantined (a few more may
    // fail on the other worker meanwhile), then skipped the rest.
    let every = (COPIES * files.len()) as f64;
    let page = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let page = admin_get(admin, "/metrics").1;
            let done = names.iter().all(|n| {
                let series = format!(
                    "bandpass_filter_alerts_total{{filter=\"{}\"}}",
                    n.replace('_', "-")
                );
                sample(&page, &series) == Some(every)
            }) && hostile.iter().all(|n| {
                // Evaluated or skipped, each hostile filter saw them all.
                let count = |metric: &str| {
                    sample(
                        &page,
                        &format!("{metric}{{filter=\"{}\"}}", n.replace('_', "-")),
                    )
                    .unwrap_or(0.0)
                };
                count("bandpass_filter_alerts_total") + count("bandpass_filter_skipped_total")
                    == every
            });
            if done || Instant::now() > deadline {
                break page;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    for name in names {
        let series = format!(
            "bandpass_filter_alerts_total{{filter=\"{}\"}}",
            name.replace('_', "-")
        );
        assert_eq!(sample(&page, &series), Some(every), "{series}\n{page}");
    }
    let status_page = admin_get(admin, "/").1;
    // Each hostile filter fails only in its own way. A runaway loop ends on
    // fuel, or on the wall-clock deadline when a loaded machine is slower
    // than the fuel (CI once saw one deadline among the memory bomb's
    // failures), so both count as the runaway's failures.
    for (name, kinds) in [
        ("hostile-infinite-loop", &["out-of-fuel", "deadline"][..]),
        ("hostile-panic", &["panic"][..]),
        // Under the default limits it runs out of fuel before it reaches
        // the memory cap (fuel is deterministic; the clock is not).
        ("hostile-memory-bomb", &["out-of-fuel", "deadline"][..]),
    ] {
        let get =
            |metric: &str| sample(&page, &format!("{metric}{{filter=\"{name}\"}}")).unwrap_or(0.0);
        let failures = failure_kinds(&page, name);
        let failed: f64 = failures.values().sum();
        assert!(
            failures
                .iter()
                .filter(|(_, n)| **n > 0.0)
                .all(|(k, _)| kinds.contains(&k.as_str())),
            "{name}: failed in a way it should not: {failures:?}"
        );
        assert!(failed >= 5.0, "{name}: {failed} failures before quarantine");
        assert_eq!(
            get("bandpass_filter_alerts_total"),
            failed,
            "{name}: only failures ({failures:?})"
        );
        assert_eq!(
            get("bandpass_filter_alerts_total") + get("bandpass_filter_skipped_total"),
            every,
            "{name}: every alert evaluated or skipped"
        );
        assert_eq!(get("bandpass_filter_quarantined"), 1.0, "{name}\n{page}");
        let row = status_page
            .split(&format!("<tr data-filter=\"{name}\">"))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_default();
        assert!(
            row.contains(">quarantined<"),
            "{name} on the status page: {row}"
        );
    }

    // SIGTERM: drain, commit, exit 0 in bounded time.
    let status = terminate(&mut serve);
    assert!(status.success(), "serve exits 0 after SIGTERM: {status}");
}

#[test]
fn serve_killed_with_sigkill_at_several_points_and_restarted_loses_no_accepted_alert() {
    const COPIES: usize = 40;
    let b = bright("crash", &brokers());
    let mut expected: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for a in b.accepted {
        *expected.entry(a).or_default() += COPIES;
    }
    let mut messages = Vec::new();
    for _ in 0..COPIES {
        messages.extend(b.alerts.iter().cloned());
    }
    produce(&b.input, &messages);

    let total: usize = expected.values().sum();
    slow_down(b.serve.config_file());
    kill_mid_run(&b.serve, &b.output, 3, total as i64 / 5);
    let mut serve = b.serve.spawn();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut received: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    while Instant::now() < deadline {
        received.clear();
        for (payload, _) in consume(&b.output, usize::MAX, Duration::from_secs(3)) {
            *received.entry(payload).or_default() += 1;
        }
        if expected
            .iter()
            .all(|(p, n)| received.get(p).copied().unwrap_or(0) >= *n)
        {
            break;
        }
    }
    for (payload, n) in &expected {
        let got = received.get(payload).copied().unwrap_or(0);
        assert!(
            got >= *n,
            "an b.accepted alert was lost: {got} of {n} copies on the b.output"
        );
    }
    assert!(
        received.keys().all(|p| expected.contains_key(p)),
        "only b.accepted b.alerts on the b.output"
    );
    let duplicates: usize = received.values().sum::<usize>() - total;
    eprintln!("at-least-once after three kill -9: {total} b.accepted, {duplicates} duplicates");
    assert!(terminate(&mut serve).success());
}

#[test]
fn serve_refuses_a_bad_config_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let base =
        "[kafka]\nbrokers = [\"127.0.0.1:1\"]\n[input]\ntopics = [\"alerts\"]\ngroup = \"g\"\n";
    let cases = [
        (format!("{base}typo = 1\n"), "typo"),
        (format!("{base}[engine]\nworkers = 0\n"), "engine.workers"),
        (
            format!("delivery = \"exactly-twice\"\n{base}"),
            "exactly-twice",
        ),
        (
            format!("{base}[schemas]\ndir = \"s\"\nregistry_url = \"http://127.0.0.1:1\"\n"),
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

#[test]
fn a_gracefully_stopped_serve_resumes_where_it_stopped_without_duplicates() {
    let b = bright("resume", &brokers());

    // First run: every alert once, then SIGTERM once all is out.
    produce(&b.input, &b.alerts);
    let mut serve = b.serve.spawn();
    assert_eq!(
        consume(&b.output, b.accepted.len(), Duration::from_secs(90)).len(),
        b.accepted.len()
    );
    assert!(terminate(&mut serve).success());

    // Second run: a second copy of every alert; the first must not be
    // processed again.
    produce(&b.input, &b.alerts);
    let mut serve = b.serve.spawn();
    let want = 2 * b.accepted.len();
    assert_eq!(
        consume(&b.output, want, Duration::from_secs(90)).len(),
        want
    );
    // Give a duplicate time to show up, then count again.
    std::thread::sleep(Duration::from_secs(2));
    assert!(terminate(&mut serve).success());
    let all = read_to_end(&brokers(), &b.output);
    assert_eq!(
        all.len(),
        want,
        "a graceful restart re-processed committed b.alerts"
    );
}

#[test]
fn serve_recovers_by_itself_when_the_broker_dies_and_comes_back_and_readyz_says_so() {
    let broker = DedicatedBroker::start();
    let b = bright_with("outage", &broker.address, ServeBuilder::admin);
    let admin = b.serve.admin_addr();
    produce_to(&broker.address, &b.input, &b.alerts);
    let mut serve = b.serve.spawn();
    let first = consume_from(
        &broker.address,
        &b.output,
        b.accepted.len(),
        Duration::from_secs(90),
    );
    assert_eq!(first.len(), b.accepted.len());
    let ready = admin_until(admin, "/readyz", 200, Duration::from_secs(30));
    assert_eq!(ready.0, 200, "ready once assigned and consuming: {ready:?}");

    // The broker dies (SIGKILL), stays away, and comes back: /readyz
    // says so and why, /healthz still answers.
    broker.down();
    let gone = admin_until(admin, "/readyz", 503, Duration::from_secs(60));
    assert_eq!(gone.0, 503, "not ready without a broker: {gone:?}");
    assert!(gone.1.contains("not ready: "), "{gone:?}");
    assert_eq!(admin_get(admin, "/healthz").0, 200);
    broker.up();
    let back = admin_until(admin, "/readyz", 200, Duration::from_secs(90));
    assert_eq!(back.0, 200, "ready again once the broker is back: {back:?}");
    produce_to(&broker.address, &b.input, &b.alerts);
    let copies = b.delivered(&broker.address, 2);
    assert!(
        copies >= 2,
        "an b.accepted alert was lost across the outage: {copies} copies of one"
    );

    // SIGTERM while the broker is gone: the process still exits in
    // bounded time (terminate allows 60 s).
    broker.down();
    let started = Instant::now();
    let status = terminate(&mut serve);
    eprintln!(
        "stopped without a broker in {:?}: {status}",
        started.elapsed()
    );
}

#[test]
fn serve_decodes_rubin_wire_format_alerts_with_schemas_from_a_directory_or_a_registry() {
    // Each Rubin sample re-framed as the live stream sends it: 0x00, the
    // schema id (major * 100 + minor, big-endian), the bare record.
    let schema_dir = crate::support::data_dir().join("rubin/schema");
    let mut messages = Vec::new();
    let mut registered = BTreeMap::new();
    for file in rubin_alerts() {
        let version_dir = file.parent().unwrap().parent().unwrap();
        let version = version_dir.file_name().unwrap().to_string_lossy();
        let (major, minor) = version.trim_start_matches('v').split_once('_').unwrap();
        let id: u32 = major.parse::<u32>().unwrap() * 100 + minor.parse::<u32>().unwrap();
        registered.insert(id, crate::decode::self_contained_rubin_schema(version_dir));
        let mut wire = vec![0u8];
        wire.extend_from_slice(&id.to_be_bytes());
        wire.extend_from_slice(&crate::decode::record_bytes(&std::fs::read(&file).unwrap()));
        messages.push(wire);
    }
    let (registry, requests) = crate::decode::serve_registry(registered.clone());
    for source in ["dir", "registry"] {
        let input = unique("rubin-alerts");
        let output = unique("rubin-out");
        let dir = tempfile::tempdir().unwrap();
        let mut serve = ServeBuilder::new(
            dir.path().join("bandpass.toml"),
            &input,
            &unique("rubin-group"),
        )
        .dead_letter(&unique("rubin-dlq"))
        .filter("rubin_bright", &output);
        if source == "dir" {
            serve = serve.schemas(&schema_dir);
        }
        let config = serve.write();
        if source == "registry" {
            // Also: input topics by pattern.
            let text = std::fs::read_to_string(config.config_file())
                .unwrap()
                .replace(
                    &format!("topics = [\"{input}\"]"),
                    &format!("topics = [\"^{input}$\"]"),
                );
            std::fs::write(
                config.config_file(),
                format!("{text}[schemas]\nregistry_url = \"{registry}\"\n"),
            )
            .unwrap();
        }
        produce(&input, &messages);
        let mut serve = config.spawn();
        // rubin-bright accepts every sample (see its README).
        let got = consume(&output, messages.len(), Duration::from_secs(90));
        let mut payloads: Vec<&Vec<u8>> = got.iter().map(|(p, _)| p).collect();
        let mut sent: Vec<&Vec<u8>> = messages.iter().collect();
        payloads.sort();
        sent.sort();
        assert!(
            payloads == sent,
            "schemas from the {source}: every wire-format alert accepted, original bytes kept"
        );
        assert!(terminate(&mut serve).success());
    }
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        registered.len(),
        "the registry is asked once per schema id"
    );
}

#[test]
fn two_instances_in_one_group_share_the_partitions_and_one_finishes_when_the_other_dies() {
    const COPIES: usize = 30;
    let b = bright("pair", &brokers());
    // The topic exists (four partitions) before the instances subscribe.
    produce(&b.input, &b.alerts);
    let logs = [b.dir.path().join("one.log"), b.dir.path().join("two.log")];
    let mut one = b.serve.clone().log(&logs[0]).spawn();
    let mut two = b.serve.clone().log(&logs[1]).spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (of_one, of_two) = loop {
        let of_one = last_assignment(&logs[0], &b.input).unwrap_or_default();
        let of_two = last_assignment(&logs[1], &b.input).unwrap_or_default();
        // The logs are read one after the other: the pair holds at one
        // moment only if one's did not change meanwhile (a rebalance).
        let still = last_assignment(&logs[0], &b.input).unwrap_or_default();
        if !of_one.is_empty() && !of_two.is_empty() && still == of_one {
            break (of_one, of_two);
        }
        assert!(
            Instant::now() < deadline,
            "both instances never held partitions at once"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        of_one.iter().all(|p| !of_two.contains(p)),
        "one partition given to both: {of_one:?} {of_two:?}"
    );

    // More alerts; one instance dies mid-stream; the other takes over.
    let mut more = Vec::new();
    for _ in 0..COPIES {
        more.extend(b.alerts.iter().cloned());
    }
    produce(&b.input, &more);
    one.0.kill().unwrap();
    one.0.wait().unwrap();
    let copies = b.delivered(&brokers(), COPIES + 1);
    assert!(
        copies > COPIES,
        "an b.accepted alert was lost: only {copies} copies of one arrived"
    );
    assert!(terminate(&mut two).success());
}

#[test]
fn a_restarted_instance_gets_its_partitions_back_without_waiting_for_its_old_session() {
    // A session of five minutes, and the restart within it: were the new
    // process a new member, the group would hold every partition for the
    // dead one until its session expired. Under the same instance id
    // (static membership) it takes the old member's place at once.
    let b = bright("static", &brokers());
    let text = std::fs::read_to_string(b.serve.config_file())
        .unwrap()
        .replace(
            "\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n",
            "",
        )
        .replace(
            "[input]\n",
            &format!(
                "[input]\nsession_timeout = \"300s\"\ninstance_id = \"{}\"\n",
                unique("instance")
            ),
        );
    std::fs::write(b.serve.config_file(), text).unwrap();
    produce(&b.input, &b.alerts);
    let logs = [b.dir.path().join("one.log"), b.dir.path().join("two.log")];
    let mut first = b.serve.clone().log(&logs[0]).spawn();
    let copies = b.delivered(&brokers(), 1);
    assert!(
        copies >= 1,
        "the first instance never produced every accepted alert"
    );
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    produce(&b.input, &b.alerts);
    let mut second = b.serve.clone().log(&logs[1]).spawn();
    // Well within the 300 s session: only static membership gets here.
    let copies = b.delivered(&brokers(), 2);
    assert!(
        copies >= 2,
        "the restarted instance did not get its partitions back before its old session expired"
    );
    wait_for_log(&logs[1], "static group membership", 1);
    assert!(terminate(&mut second).success());
}

#[test]
fn an_instance_fenced_by_another_with_its_instance_id_stops_and_says_why() {
    // Two instances given the same instance id (a copied config): the
    // second takes the first's place in the group, and the first's
    // consumer gets a fatal error. Polling on would hold its work for
    // good; it stops, non-zero, naming the setting.
    let b = bright("fenced", &brokers());
    let text = std::fs::read_to_string(b.serve.config_file())
        .unwrap()
        .replace(
            "[input]\n",
            &format!("[input]\ninstance_id = \"{}\"\n", unique("twin")),
        );
    std::fs::write(b.serve.config_file(), text).unwrap();
    produce(&b.input, &b.alerts);
    let logs = [b.dir.path().join("one.log"), b.dir.path().join("two.log")];
    let mut first = b.serve.clone().log(&logs[0]).spawn();
    let copies = b.delivered(&brokers(), 1);
    assert!(
        copies >= 1,
        "the first instance never produced every accepted alert"
    );
    let mut second = b.serve.clone().log(&logs[1]).spawn();
    let status = exited_within(&mut first, Duration::from_secs(120));
    let log = std::fs::read_to_string(&logs[0]).unwrap();
    let status = status.unwrap_or_else(|| panic!("the fenced instance is still running: {log}"));
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("the Kafka consumer hit a fatal error and cannot go on")
            && log.contains("input.instance_id"),
        "{log}"
    );
    // The one that took its place goes on: the next alerts come through.
    produce(&b.input, &b.alerts);
    let copies = b.delivered(&brokers(), 2);
    assert!(copies >= 2, "the second instance did not take over");
    assert!(terminate(&mut second).success());
}

#[test]
fn exactly_once_serve_killed_with_sigkill_and_restarted_delivers_each_accepted_alert_once() {
    const COPIES: usize = 80;
    let b = bright("eos", &brokers());
    let mut messages = Vec::new();
    for _ in 0..COPIES {
        messages.extend(b.alerts.iter().cloned());
    }
    produce(&b.input, &messages);

    prepend(b.serve.config_file(), "delivery = \"exactly-once\"");
    slow_down(b.serve.config_file());
    // The restarts keep the transactional id (the default is derived
    // from the group and host), so each fences its killed predecessor.
    kill_mid_run(
        &b.serve,
        &b.output,
        3,
        (COPIES * b.accepted.len()) as i64 / 5,
    );
    let mut serve = b.serve.spawn();
    expect_exactly(
        &b.output,
        &b.accepted,
        COPIES,
        &mut [&mut serve],
        "exactly-once: each b.accepted alert once per b.input copy, after three kill -9",
    );
}

/// One component with three parameter sets runs as three deployments:
/// each set's output holds exactly what `bandpass test` accepts with that
/// set's parameters (the filter's shared ones under the set's own).
#[test]
fn parameter_sets_run_as_deployments_of_their_own_with_their_own_verdicts() {
    let input = unique("sets-alerts");
    let prefix = unique("sets-out");
    let dir = tempfile::tempdir().unwrap();
    let mut serve = ServeBuilder::new(
        dir.path().join("bandpass.toml"),
        &input,
        &unique("sets-group"),
    )
    .brokers(&brokers())
    .dead_letter(&unique("sets-dlq"))
    .filter_with(
        &filters_dir().join("bright_transients.wasm"),
        &format!("{prefix}.{{name}}"),
        "params = { min_real = 0.5 }\n\
             sets = [\n\
               { name = \"plain\" },\n\
               { name = \"real\", params = { min_real = 0.9 } },\n\
               { name = \"bright\", params = { max_mag = 18.3 } },\n\
             ]",
    )
    .write()
    .spawn();
    produce(&input, &ztf_alert_bytes());
    let expected = |params: &[(&str, &str)]| offline_accepts_with("bright_transients", params);
    let sets = [
        ("plain", expected(&[("min_real", "0.5")])),
        ("real", expected(&[("min_real", "0.9")])),
        (
            "bright",
            expected(&[("min_real", "0.5"), ("max_mag", "18.3")]),
        ),
    ];
    // The sets decide differently on these alerts: the test sees whose
    // parameters each deployment got.
    assert!(
        sets[0].1.len() > sets[1].1.len() && sets[1].1.len() > sets[2].1.len(),
        "{:?}",
        sets.iter().map(|(n, a)| (n, a.len())).collect::<Vec<_>>()
    );
    // The set that accepts none is read after the others, and after
    // serve stopped (it drains what it consumed).
    for (name, accepted) in sets.iter().filter(|(_, a)| !a.is_empty()) {
        let output = format!("{prefix}.{name}");
        let copies = fewest_copies(&brokers(), &output, accepted, 1, Duration::from_secs(120));
        assert!(copies >= 1, "{output}: an accepted alert is missing");
    }
    assert!(terminate(&mut serve).success());
    for (name, accepted) in &sets {
        let received = copies_on(&format!("{prefix}.{name}"));
        assert_eq!(
            received.len(),
            accepted.len(),
            "{name}: only its own accepts"
        );
        assert!(
            accepted.iter().all(|a| received.get(a) == Some(&1)),
            "{name}"
        );
    }
}

/// One component deployed as several parameter sets: a quarantine's log
/// line names the set, not only the component they share.
#[test]
fn a_quarantine_names_the_parameter_set_it_stopped() {
    let input = unique("quarantine-sets");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let mut serve = ServeBuilder::new(
        dir.path().join("bandpass.toml"),
        &input,
        &unique("quarantine-group"),
    )
    .brokers(&brokers())
    .dead_letter(&unique("quarantine-dlq"))
    .filter_with(
        &filters_dir().join("hostile_panic.wasm"),
        &unique("quarantine-out"),
        // Panics on every alert, and on every second: both quarantined.
        "sets = [\n\
           { name = \"panics-always\" },\n\
           { name = \"panics-every-second\", params = { every = 2 } },\n\
         ]",
    )
    .log(&log)
    .write()
    .spawn();
    // 108 alerts: the second set is quarantined by its rate of traps,
    // judged once it has run on 64.
    for _ in 0..6 {
        produce(&input, &ztf_alert_bytes());
    }
    wait_for_log(&log, "filter quarantined", 2);
    assert!(terminate(&mut serve).success());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("filter quarantined"))
        .collect();
    for set in ["panics-always", "panics-every-second"] {
        assert!(
            lines.iter().any(|l| l.contains(&format!("filter={set} "))),
            "no quarantine line names {set}: {lines:#?}"
        );
    }
}

/// Exactly-once commits offsets through the producer's transactions,
/// which librdkafka's statistics do not see: the committed lag still
/// falls to zero on every partition once the alerts are committed.
#[test]
fn committed_lag_falls_to_zero_on_every_partition_under_exactly_once() {
    let b = bright_with("eos-lag", &brokers(), ServeBuilder::admin);
    prepend(b.serve.config_file(), "delivery = \"exactly-once\"");
    produce(&b.input, &b.alerts);
    let admin = b.serve.admin_addr();
    let mut serve = b.serve.spawn();
    let copies = fewest_copies(
        &brokers(),
        &b.output,
        &b.accepted,
        1,
        Duration::from_secs(120),
    );
    assert!(copies >= 1, "no accepted alert came out");
    let series = |page: &str, name: &str| -> Vec<String> {
        page.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .map(str::to_string)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (consumed, committed) = loop {
        let (status, page) = admin_get(admin, "/metrics");
        assert_eq!(status, 200, "{page}");
        let consumed = series(&page, "bandpass_consumer_lag");
        let committed = series(&page, "bandpass_consumer_committed_lag");
        let settled = !consumed.is_empty()
            && committed.len() == consumed.len()
            && committed.iter().all(|l| l.ends_with(" 0"));
        if settled || Instant::now() > deadline {
            break (consumed, committed);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(terminate(&mut serve).success());
    assert!(!consumed.is_empty(), "no partition assigned");
    assert_eq!(
        committed.len(),
        consumed.len(),
        "a committed lag for each assigned partition: {committed:?}"
    );
    assert!(committed.iter().all(|l| l.ends_with(" 0")), "{committed:?}");
    // The output ends in a transaction's marker, which is no message:
    // `consume` still knows it reached the end, and says so with 0.
    let out = Command::new(bandpass_bin())
        .args(["consume", "--config"])
        .arg(b.serve.config_file())
        .args(["--topic", &b.output])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        said.lines()
            .filter(|l| l.contains("bandpass-filter="))
            .count(),
        b.accepted.len(),
        "{said}"
    );
}

#[test]
fn a_timestamp_start_reads_from_the_first_message_at_or_after_it() {
    let b = bright("rewind", &brokers());
    assert!(!b.accepted.is_empty());
    // Two nights of the same alerts; start at noon between them.
    let night = 1_764_000_000_000i64;
    let day = 86_400_000i64;
    produce_stamped(&brokers(), &b.input, &b.alerts, Some(night));
    produce_stamped(&brokers(), &b.input, &b.alerts, Some(night + day));

    let text = std::fs::read_to_string(b.serve.config_file())
        .unwrap()
        .replace(
            "start = \"earliest\"",
            &format!("start = {{ timestamp_ms = {} }}", night + day / 2),
        );
    std::fs::write(b.serve.config_file(), text).unwrap();
    let mut serve = b.serve.spawn();
    expect_exactly(
        &b.output,
        &b.accepted,
        1,
        &mut [&mut serve],
        "the second night only, each alert once",
    );
}

#[test]
fn an_instance_joining_mid_stream_causes_no_duplicate_because_revoked_work_is_committed_first() {
    const ROUNDS: usize = 60;
    let b = bright("join", &brokers());
    produce(&b.input, &b.alerts);
    // A steady stream (every alert ten times a second for six seconds),
    // so the second instance joins while the first is busy.
    let stream = {
        let (input, alerts) = (b.input.clone(), b.alerts.clone());
        std::thread::spawn(move || {
            for _ in 1..ROUNDS {
                produce(&input, &alerts);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let logs = [b.dir.path().join("one.log"), b.dir.path().join("two.log")];
    let mut one = b.serve.clone().log(&logs[0]).spawn();
    std::thread::sleep(Duration::from_secs(2));
    let mut two = b.serve.clone().log(&logs[1]).spawn();
    // The second instance must really join (however slow its start) for
    // there to be a rebalance to test.
    let deadline = Instant::now() + Duration::from_secs(60);
    while last_assignment(&logs[1], &b.input).is_none_or(|p| p.is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the second instance never got partitions"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stream.join().unwrap();
    expect_exactly(
        &b.output,
        &b.accepted,
        ROUNDS,
        &mut [&mut two, &mut one],
        "a rebalance without a crash duplicates nothing",
    );
    let one_log = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(
        one_log.contains("partitions revoked"),
        "the first instance gave partitions up when the second joined:\n{one_log}"
    );
    // The test config's consumer settings go to the producer too; that is
    // expected and not worth a warning at every start.
    assert!(
        !one_log.contains("will be ignored by this"),
        "librdkafka's property-scope warnings should not reach the log:\n{one_log}"
    );
}

#[test]
fn metrics_count_what_serve_consumed_filtered_dead_lettered_and_produced() {
    const COPIES: usize = 3;
    let b = bright_with("metrics", &brokers(), ServeBuilder::admin);
    let admin = b.serve.admin_addr();
    let bad = [b"not an alert".to_vec(), vec![0, 0, 0, 0, 42, 1, 2]];
    let mut input = Vec::new();
    for _ in 0..COPIES {
        input.extend(b.alerts.iter().cloned());
    }
    input.extend(bad.iter().cloned());
    produce(&b.input, &input);
    let log = b.dir.path().join("serve.log");
    let mut serve = b
        .serve
        .clone()
        .log(&log)
        .args(&["--log-format", "json"])
        .spawn();
    let copies = b.delivered(&brokers(), COPIES);
    assert!(copies >= COPIES);
    let evaluated = (COPIES * b.alerts.len()) as f64;
    let accepted = (COPIES * b.accepted.len()) as f64;
    let series = "bandpass_filter_alerts_total{filter=\"bright-transients\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let (status, page) = admin_get(admin, "/metrics");
        assert_eq!(status, 200, "{page}");
        // Consumed, and committed (auto-commit, every few seconds).
        let lag_settled = ["bandpass_consumer_lag{", "bandpass_consumer_committed_lag{"]
            .iter()
            .all(|series| {
                page.contains(series)
                    && !page
                        .lines()
                        .any(|l| l.starts_with(series) && !l.ends_with(" 0"))
            });
        // Dead letters and produce acknowledgements are counted on other
        // threads, after the filter's count: wait for them too.
        let settled = sample(&page, series) == Some(evaluated)
            && lag_settled
            && sample(&page, "bandpass_dead_letters_total") == Some(bad.len() as f64)
            && sample(&page, "bandpass_messages_produced_total")
                == Some(accepted + bad.len() as f64);
        if settled || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    // The last transaction may still be committing: wait for its alerts
    // (a duplicate would show as more, never fewer).
    let deadline = Instant::now() + Duration::from_secs(60);
    let on_output = loop {
        let n: usize = copies_on(&b.output).values().sum();
        if n as f64 >= accepted || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let f = |name: &str| sample(&page, &format!("{name}{{filter=\"bright-transients\"}}"));
    assert_eq!(f("bandpass_filter_alerts_total"), Some(evaluated), "{page}");
    assert_eq!(
        f("bandpass_filter_accepted_total"),
        Some(accepted),
        "{page}"
    );
    assert_eq!(
        on_output as f64, accepted,
        "what the metrics say is on the topic"
    );
    assert_eq!(
        f("bandpass_filter_rejected_total"),
        Some(evaluated - accepted),
        "{page}"
    );
    assert_eq!(
        f("bandpass_filter_seconds_count"),
        Some(evaluated),
        "{page}"
    );
    assert!(f("bandpass_filter_fuel_total").is_some_and(|fuel| fuel > evaluated * 1000.0));
    assert_eq!(f("bandpass_filter_quarantined"), Some(0.0), "{page}");
    // A browser's icon request is answered, and is not a refusal.
    assert_eq!(admin_get(admin, "/favicon.ico").0, 204);
    assert_eq!(
        sample(
            &admin_get(admin, "/metrics").1,
            "bandpass_admin_refused_total{status=\"404\"}"
        ),
        Some(0.0)
    );
    // Without uploads, the filter API says why it does not answer.
    let (status, body) = admin_get(admin, "/v1/groups/hosts/filters");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("this instance takes no uploads"), "{body}");
    // Every kind is there from the start, at zero.
    let kinds = failure_kinds(&page, "bright-transients");
    assert_eq!(kinds.len(), 11, "{page}");
    assert!(kinds.values().all(|n| *n == 0.0), "{page}");
    assert_eq!(
        sample(&page, "bandpass_messages_consumed_total"),
        Some(input.len() as f64),
        "{page}"
    );
    assert_eq!(
        sample(&page, "bandpass_dead_letters_total"),
        Some(2.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "bandpass_messages_produced_total"),
        Some(accepted + 2.0),
        "accepted alerts and dead letters, acknowledged: {page}"
    );
    assert_eq!(sample(&page, "bandpass_produce_errors_total"), Some(0.0));
    assert!(
        sample(&page, "bandpass_assigned_partitions").is_some_and(|n| n >= 1.0),
        "{page}"
    );

    // The status page, rendered by a real browser: the DOM Chromium built
    // shows the filter with the counts the metrics gave, and a screenshot
    // of it is taken.
    let url = format!("http://{admin}/");
    let shot = b.dir.path().join("status.png");
    let dom = chromium(&["--dump-dom", &url]);
    let row = dom
        .split("<tr data-filter=\"bright-transients\">")
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row for bright-transients in the DOM:\n{dom}"));
    assert!(
        row.contains(&format!("<td class=\"n alerts\">{evaluated}</td>"))
            && row.contains(&format!("<td class=\"n accepted\">{accepted}</td>"))
            && row.contains(">running<")
            && row.contains(&b.output),
        "{row}"
    );
    assert!(dom.contains("id=\"state\" class=\"ok\">ready<"), "{dom}");
    chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1400,600",
        &url,
    ]);
    let png = std::fs::read(&shot).expect("Chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    assert!(terminate(&mut serve).success());
    // --log-format json: every line one JSON object, with level and fields.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "serving" && l["level"] == "INFO"),
        "{text}"
    );
}

#[test]
fn sighup_adds_replaces_and_removes_filters_on_the_live_stream_without_a_restart() {
    let b = bright_with("reload", &brokers(), ServeBuilder::admin);
    let admin = b.serve.admin_addr();
    let log = b.dir.path().join("serve.log");
    let risers_accept = offline_accepts("fast_risers");
    assert!(!risers_accept.is_empty());
    let (risers_out, risers_moved) = (unique("reload-risers"), unique("reload-risers-moved"));
    let original = std::fs::read_to_string(b.serve.config_file()).unwrap();
    let risers = |output: &str| {
        format!(
            "[[filter]]\npath = \"{}\"\noutput_topic = \"{output}\"\n",
            filters_dir().join("fast_risers.wasm").display()
        )
    };
    // bright-transients with a threshold no alert meets: the same
    // component, another deployment (the "v2" of this test).
    let bright_v2 = original.replace(
        "output_topic = \"",
        "params = { max_mag = \"5\" }\noutput_topic = \"",
    );
    assert_ne!(bright_v2, original);
    let mut serve = b.serve.clone().log(&log).spawn();
    // The fewest copies of any of `want` on `topic`, once there are `n`.
    let copies = |topic: &str, want: &[Vec<u8>], n: usize| {
        fewest_copies(&brokers(), topic, want, n, Duration::from_secs(90))
    };

    // 1. The configured set: bright-transients only.
    produce(&b.input, &b.alerts);
    let got = copies(&b.output, &b.accepted, 1);
    assert_eq!(got, 1);

    // 2. SIGHUP adds fast-risers: it decides on the alerts produced after
    // the reload, once each, and on none from before.
    std::fs::write(
        b.serve.config_file(),
        format!("{original}{}", risers(&risers_out)),
    )
    .unwrap();
    hangup(&serve);
    wait_for_log(&log, "filter set replaced", 1);
    produce(&b.input, &b.alerts);
    let got = copies(&b.output, &b.accepted, 2);
    assert_eq!(got, 2);
    let moved = copies(&risers_out, &risers_accept, 1);
    assert_eq!(moved, 1);

    // 3. SIGHUP replaces bright-transients by its v2 (accepts nothing) and
    // moves fast-risers to another topic.
    std::fs::write(
        b.serve.config_file(),
        format!("{bright_v2}{}", risers(&risers_moved)),
    )
    .unwrap();
    hangup(&serve);
    wait_for_log(&log, "filter set replaced", 2);
    produce(&b.input, &b.alerts);
    let moved = copies(&risers_moved, &risers_accept, 1);
    assert_eq!(moved, 1, "the third batch went through the second set");

    // 4. A config that does not load leaves the running set alone.
    std::fs::write(b.serve.config_file(), format!("{bright_v2}\nnot toml [")).unwrap();
    hangup(&serve);
    wait_for_log(&log, "the config was not reloaded", 1);
    // So does a filter that is refused (here: not a component at all).
    let junk = b.dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    std::fs::write(
        b.serve.config_file(),
        format!(
            "{bright_v2}[[filter]]\npath = \"{}\"\noutput_topic = \"{}\"\n",
            junk.display(),
            unique("reload-junk")
        ),
    )
    .unwrap();
    hangup(&serve);
    wait_for_log(&log, "the config was not reloaded", 2);
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("junk.wasm) refused"),
        "the refusal names the entry and its file"
    );

    // 5. Back to the original: bright-transients v1 again, fast-risers
    // removed.
    std::fs::write(b.serve.config_file(), &original).unwrap();
    hangup(&serve);
    wait_for_log(&log, "filter set replaced", 3);
    produce(&b.input, &b.alerts);
    let every = (4 * b.alerts.len()) as f64;
    let series = "bandpass_filter_alerts_total{filter=\"bright-transients\"}";
    let deadline = Instant::now() + Duration::from_secs(90);
    while sample(&admin_get(admin, "/metrics").1, series) != Some(every) {
        assert!(
            Instant::now() < deadline,
            "the fourth batch was not processed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(terminate(&mut serve).success(), "one process throughout");

    let on_bright = copies_on(&b.output);
    for a in &b.accepted {
        assert_eq!(on_bright[a], 3, "v1 twice, v2 never, v1 again");
    }
    assert_eq!(on_bright.len(), b.accepted.len());
    for topic in [&risers_out, &risers_moved] {
        let on_risers = copies_on(topic);
        for a in &risers_accept {
            assert_eq!(
                on_risers[a], 1,
                "fast-risers ran on exactly one batch per topic"
            );
        }
        assert_eq!(on_risers.len(), risers_accept.len());
    }
}

/// `topic`'s partition count and `retention.ms` on the shared broker
/// (0 partitions: it does not exist).
fn topic_shape(topic: &str) -> (usize, Option<String>) {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", brokers());
    let client: BaseConsumer = config.create().unwrap();
    let metadata = client
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .sum();
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let retention = runtime
        .block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()))
        .ok()
        .and_then(|mut r| r.pop())
        .and_then(Result::ok)
        .and_then(|c| c.get("retention.ms").and_then(|e| e.value.clone()));
    (partitions, retention)
}

#[test]
fn serve_creates_its_output_and_dead_letter_topics_as_output_says() {
    // The shared broker would create them with 4 partitions on first
    // use; serve creates them first, with 3 and two days' retention.
    let b = bright_with("created", &brokers(), |s| {
        s.extra("[output]\npartitions = 3\nretention = \"2d\"\n")
            .admin()
    });
    let dead_letter = b.serve.dead_letter_topic().to_string();
    assert_eq!(topic_shape(&b.output).0, 0, "a fresh topic");
    produce(&b.input, &b.alerts);
    let log = b.dir.path().join("serve.log");
    let mut serve = b.serve.clone().log(&log).start();
    for topic in [&b.output, &dead_letter] {
        let (partitions, retention) = topic_shape(topic);
        assert_eq!(partitions, 3, "{topic}");
        assert_eq!(retention.as_deref(), Some("172800000"), "{topic}");
    }
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("output topic created"), "{said}");
    // Alerts go there as before.
    assert_eq!(
        consume(&b.output, b.accepted.len(), Duration::from_secs(60)).len(),
        b.accepted.len()
    );
    assert!(terminate(&mut serve).success());
}

#[test]
fn lag_shows_the_committed_offsets_and_offsets_moves_a_stopped_group_for_a_replay() {
    // A short session: a stopped instance (a static member) leaves the
    // group within seconds.
    let b = bright_with("replay", &brokers(), |s| s.admin());
    let text = std::fs::read_to_string(b.serve.config_file()).unwrap();
    std::fs::write(
        b.serve.config_file(),
        text.replacen("[input]\n", "[input]\nsession_timeout = \"6s\"\n", 1),
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(b.serve.config_file())
            .unwrap()
            .contains("session_timeout")
    );
    produce(&b.input, &b.alerts);
    let config = b.serve.config_file().to_str().unwrap().to_string();
    let bp = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", &config]);
        let out = Command::new(bandpass_bin()).args(&all).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let behind = |said: &str| -> u64 {
        let line = said
            .lines()
            .find(|l| l.contains("messages behind"))
            .unwrap();
        line.split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap()
    };
    // Nothing committed yet: all of it behind.
    let (code, said, err) = bp(&["lag"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(behind(&said), b.alerts.len() as u64, "{said}");
    assert!(said.contains(&b.input) && said.contains("none"), "{said}");
    // Serve reads it all and commits.
    let mut serve = b.serve.start();
    assert_eq!(b.delivered(&brokers(), 1), 1);
    // While it runs, its offsets are not moved under it.
    let (code, _, err) = bp(&["offsets", "--to", "earliest"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("live members") && err.contains("stop them"),
        "{err}"
    );
    assert!(terminate(&mut serve).success());
    let (_, said, _) = bp(&["lag"]);
    assert_eq!(behind(&said), 0, "{said}");
    // A dry run says what it would do, and does nothing (once the stopped
    // instance's session has timed out).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (code, said, err) = loop {
        let (code, said, err) = bp(&["offsets", "--to", "earliest", "--dry-run"]);
        if code == Some(0) || Instant::now() > deadline {
            break (code, said, err);
        }
        assert!(err.contains("try again after it"), "{err}");
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(code, Some(0), "{err}");
    assert!(said.contains("nothing committed (--dry-run)"), "{said}");
    assert_eq!(behind(&bp(&["lag"]).1), 0);
    // Moved to the start, the whole night is behind again, and the next
    // start replays it: every accepted alert a second time.
    let (code, said, err) = bp(&["offsets", "--to", "earliest"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(said.contains("offsets committed"), "{said}");
    assert_eq!(behind(&bp(&["lag"]).1), b.alerts.len() as u64);
    let mut serve = b.serve.start();
    assert_eq!(b.delivered(&brokers(), 2), 2);
    assert!(terminate(&mut serve).success());
    // A time after every message: the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (code, err) = loop {
        let (code, _, err) = bp(&["offsets", "--to", "2099-01-01T00:00:00Z"]);
        if code == Some(0) || Instant::now() > deadline {
            break (code, err);
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(behind(&bp(&["lag"]).1), 0);
    let (code, _, err) = bp(&["offsets", "--to", "last tuesday"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("give earliest, latest, a UTC time"), "{err}");
}
