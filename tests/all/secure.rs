//! Connecting as a real survey stream requires: SASL (SCRAM-SHA-512)
//! over TLS, with ACLs enforced. A broker of this module's own
//! (`scripts/kafka.sh start-secure`, started once for the module and
//! stopped when the test process exits) has a SASL_SSL listener, a
//! certificate signed by a CA it made, an `operator` with every right and
//! a `reader` allowed only to read the topics `alerts*` in the groups
//! `reader*`; its plaintext listener (a super user) is the tests' own way
//! in. serve, the upload registry, the dead letters and the operator's
//! commands work with the rights they need; a wrong password, an
//! untrusted certificate and a missing ACL each stop with what to fix;
//! and serve reads from the survey's cluster as `reader` while it writes
//! to the operator's (the suite's plaintext broker).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::kafka::{brokers, fewest_copies, produce_to, read_to_end, unique};
use crate::support::processes::{ServeBuilder, exited_within, terminate};
use crate::support::{bandpass_bin, data_dir, offline_accepts, repo_root};

/// The secure broker, as `scripts/kafka.sh start-secure` printed it.
struct Secure {
    /// The SASL_SSL listener.
    brokers: String,
    /// The plaintext listener (a super user): how the tests look.
    admin: String,
    ca: PathBuf,
    operator_password: String,
    reader_password: String,
    dir: String,
}

static SECURE: OnceLock<Secure> = OnceLock::new();

/// Stops the secure broker when the test process exits (as
/// scripts/test.sh stops the shared one when the run ends).
extern "C" fn stop_secure() {
    if let Some(secure) = SECURE.get() {
        let _ = Command::new(repo_root().join("scripts/kafka.sh"))
            .args(["stop", &secure.dir])
            .output();
    }
}

/// The module's secure broker, started on first use.
fn secure() -> &'static Secure {
    SECURE.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/kafka.sh"))
            .arg("start-secure")
            .output()
            .expect("scripts/kafka.sh runs");
        assert!(
            out.status.success(),
            "scripts/kafka.sh start-secure failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8(out.stdout).unwrap();
        let value = |key: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("BANDPASS_KAFKA_SECURE_{key}=")))
                .unwrap_or_else(|| panic!("start-secure printed no {key}: {env}"))
                .to_string()
        };
        assert_eq!(value("READER_TOPICS"), "alerts");
        assert_eq!(value("READER_GROUPS"), "reader");
        // SAFETY: registers a plain function, once.
        unsafe { libc::atexit(stop_secure) };
        Secure {
            brokers: value("BROKERS"),
            admin: value("ADMIN"),
            ca: PathBuf::from(value("CA")),
            operator_password: value("OPERATOR_PASSWORD"),
            reader_password: value("READER_PASSWORD"),
            dir: value("DIR"),
        }
    })
}

/// Who connects: the user, its password, the CA file it trusts.
struct As<'a> {
    user: &'a str,
    password: &'a str,
    ca: &'a Path,
}

fn operator() -> As<'static> {
    let s = secure();
    As {
        user: "operator",
        password: &s.operator_password,
        ca: &s.ca,
    }
}

fn reader() -> As<'static> {
    let s = secure();
    As {
        user: "reader",
        password: &s.reader_password,
        ca: &s.ca,
    }
}

/// `[kafka]`'s security keys for the secure listener, as `who`.
fn security(who: &As<'_>) -> String {
    format!(
        "security_protocol = \"sasl_ssl\"\nsasl_mechanism = \"SCRAM-SHA-512\"\n\
         sasl_username = \"{}\"\nsasl_password = \"{}\"\nssl_ca_location = \"{}\"\n",
        who.user,
        who.password,
        who.ca.display()
    )
}

/// A serve config reading `input` in `group` from the secure listener as
/// `who` (written, then its `[kafka]` given the security keys).
fn secured(builder: ServeBuilder, who: &As<'_>) -> ServeBuilder {
    let builder = builder.brokers(&secure().brokers).write();
    let line = format!("brokers = [\"{}\"]\n", secure().brokers);
    let text = std::fs::read_to_string(builder.config_file()).unwrap();
    assert!(text.contains(&line), "{text}");
    let text = text.replacen(&line, &format!("{line}{}", security(who)), 1);
    std::fs::write(builder.config_file(), text).unwrap();
    builder
}

/// A config for the operator's commands: the secure listener as `who`,
/// `input` read in `group`.
fn command_config(dir: &Path, who: &As<'_>, input: &str, group: &str) -> PathBuf {
    let path = dir.join(format!("{}-{}.toml", who.user, unique("commands")));
    std::fs::write(
        &path,
        format!(
            "[kafka]\nbrokers = [\"{}\"]\n{}[input]\ntopics = [\"{input}\"]\ngroup = \"{group}\"\n",
            secure().brokers,
            security(who)
        ),
    )
    .unwrap();
    path
}

/// Runs `bandpass ARGS` to its end, within 90 s (a stall fails the test
/// instead of hanging it); returns its exit code, stdout and stderr.
fn bandpass(args: &[&str]) -> (Option<i32>, String, String) {
    let out = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut child = Command::new(bandpass_bin())
        .args(args)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "bandpass {args:?} still ran after 90 s (a stall); it said:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (
        status.code(),
        std::fs::read_to_string(stdout).unwrap(),
        std::fs::read_to_string(stderr).unwrap(),
    )
}

/// Runs `bandpass serve` on `config` until it exits by itself (within
/// 90 s); returns its exit code and its log.
fn serve_until_it_stops(config: &ServeBuilder, log: &Path) -> (Option<i32>, String) {
    let mut serve = config.clone().log(log).spawn();
    let status = exited_within(&mut serve, Duration::from_secs(90));
    let said = std::fs::read_to_string(log).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("serve still ran after 90 s; its log:\n{said}"));
    (status.code(), said)
}

/// Asserts `text` holds every one of `parts`.
fn says(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "no '{part}' in:\n{text}");
    }
}

/// The payloads of `topic` on the broker at `brokers`, sorted.
fn payloads(brokers: &str, topic: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = read_to_end(brokers, topic)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// Reads `bandpass lag` as `config` says until the group is `0 messages
/// behind` (within 60 s); returns its last output.
fn lag_until_caught_up(config: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, stdout, stderr) = bandpass(&["lag", "--config", config.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{stderr}");
        if stdout.contains(": 0 messages behind") || Instant::now() > deadline {
            return stdout;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn serve_uploads_dead_letters_and_the_operator_s_commands_work_over_sasl_ssl_with_scram() {
    let s = secure();
    let dir = tempfile::tempdir().unwrap();
    let input = unique("alerts-operator");
    let group = unique("operator-group");
    let output = unique("bright-operator");
    let commands = command_config(dir.path(), &operator(), &input, &group);
    // bandpass produce, as the operator: the real alerts onto the input.
    let (code, stdout, stderr) = bandpass(&[
        "produce",
        "--config",
        commands.to_str().unwrap(),
        "--topic",
        &input,
        data_dir().join("ztf/alerts").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    says(&stdout, &["18 alerts from 18 inputs acknowledged"]);
    // A message that is not an alert, for the dead-letter producer.
    produce_to(&s.admin, &input, &[b"not an alert".to_vec()]);

    // serve as the operator, with uploads (the registry follower).
    let registry = unique("registry-operator");
    let config = secured(
        ServeBuilder::new(dir.path().join("serve.toml"), &input, &group)
            .filter("bright_transients", &output)
            .admin_with(&crate::uploads::admin_keys(&registry, ""))
            .log(&dir.path().join("serve.log")),
        &operator(),
    );
    let mut serve = config.start();
    let admin = config.admin_addr();

    // Its accepted alerts, byte for byte the offline verdicts', and the
    // message that is not an alert among the dead letters.
    let accepted = offline_accepts("bright_transients");
    assert_eq!(accepted.len(), 5);
    assert_eq!(
        fewest_copies(&s.admin, &output, &accepted, 1, Duration::from_secs(120)),
        1
    );
    assert_eq!(payloads(&s.admin, &output), sorted(accepted.clone()));
    let dead = payloads(&s.admin, config.dead_letter_topic());
    assert_eq!(dead, vec![b"not an alert".to_vec()]);

    // An upload goes through the registry (written and read back over
    // SASL_SSL) and runs.
    let name = unique("risers");
    let (status, body) = crate::support::http::upload(
        admin,
        crate::uploads::HOSTS_TOKEN,
        "hosts",
        &name,
        &crate::support::component("fast_risers"),
        None,
    );
    assert_eq!(status, 201, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["filter"]["state"], "running", "{body}");
    assert!(!read_to_end(&s.admin, &registry).is_empty());

    // bandpass consume, as the operator: the output, byte for byte.
    let out = dir.path().join("consumed");
    let (code, _, stderr) = bandpass(&[
        "consume",
        "--config",
        commands.to_str().unwrap(),
        "--topic",
        &output,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let files = std::fs::read_dir(&out)
        .unwrap()
        .map(|f| std::fs::read(f.unwrap().path()).unwrap())
        .collect();
    assert_eq!(sorted(files), sorted(accepted));

    // bandpass lag, as the operator: serve's group caught up.
    let lag = lag_until_caught_up(&commands);
    says(&lag, &[&format!("group {group}: 0 messages behind")]);
    assert!(terminate(&mut serve).success());
}

#[test]
fn serve_reads_the_survey_s_cluster_as_a_read_only_principal_and_writes_to_the_operator_s() {
    let s = secure();
    let dir = tempfile::tempdir().unwrap();
    let input = unique("alerts-survey");
    let group = unique("reader-group");
    let output = unique("bright-two-clusters");
    let mut alerts = crate::support::ztf_alert_bytes();
    alerts.push(b"not an alert".to_vec());
    produce_to(&s.admin, &input, &alerts);
    let registry = unique("registry-two-clusters");
    let config = secured(
        ServeBuilder::new(dir.path().join("serve.toml"), &input, &group)
            .filter("bright_transients", &output)
            .admin_with(&crate::uploads::admin_keys(&registry, ""))
            .extra(&format!("[output.kafka]\nbrokers = [\"{}\"]\n", brokers())),
        &reader(),
    );
    let mut serve = config.start();
    // Uploads are kept on the operator's cluster too.
    let (status, body) = crate::support::http::upload(
        config.admin_addr(),
        crate::uploads::HOSTS_TOKEN,
        "hosts",
        &unique("risers"),
        &crate::support::component("fast_risers"),
        None,
    );
    assert_eq!(status, 201, "{body}");
    assert!(!read_to_end(&brokers(), &registry).is_empty());
    // The outputs and the dead letters on the operator's cluster.
    let accepted = offline_accepts("bright_transients");
    assert_eq!(
        fewest_copies(&brokers(), &output, &accepted, 1, Duration::from_secs(120)),
        1
    );
    assert_eq!(payloads(&brokers(), &output), sorted(accepted));
    assert_eq!(
        payloads(&brokers(), config.dead_letter_topic()),
        vec![b"not an alert".to_vec()]
    );
    // The reader's group committed its offsets on the survey's cluster:
    // bandpass lag, as the reader, sees it caught up.
    let commands = command_config(dir.path(), &reader(), &input, &group);
    let lag = lag_until_caught_up(&commands);
    says(&lag, &[&format!("group {group}: 0 messages behind")]);
    // bandpass consume, as the reader: the survey's topic, a line each.
    let (code, listed, stderr) = bandpass(&[
        "consume",
        "--config",
        commands.to_str().unwrap(),
        "--topic",
        &input,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(listed.matches(" objectId=ZTF").count(), alerts.len() - 1);
    assert!(terminate(&mut serve).success());
    // Nothing was written on the survey's cluster.
    let operator_commands = command_config(dir.path(), &operator(), &input, &group);
    for topic in [&output, &registry] {
        let (code, _, stderr) = bandpass(&[
            "consume",
            "--config",
            operator_commands.to_str().unwrap(),
            "--topic",
            topic,
        ]);
        assert_eq!(code, Some(2), "{stderr}");
        says(&stderr, &[&format!("topic {topic} does not exist")]);
    }

    // Exactly-once cannot span the two: refused when the config loads.
    let text = std::fs::read_to_string(config.config_file()).unwrap();
    std::fs::write(
        config.config_file(),
        format!("delivery = \"exactly-once\"\n{text}"),
    )
    .unwrap();
    let (code, _, stderr) = bandpass(&[
        "serve",
        "--check",
        "--config",
        config.config_file().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    says(&stderr, &["output.kafka", "exactly-once", "at-least-once"]);
}

#[test]
fn the_re_keying_stage_reads_the_survey_s_cluster_and_keeps_its_topics_on_the_operator_s() {
    let s = secure();
    let dir = tempfile::tempdir().unwrap();
    let input = unique("alerts-rekey");
    let group = unique("reader-rekey");
    let output = unique("bright-rekey");
    let alerts = crate::support::ztf_alert_bytes();
    produce_to(&s.admin, &input, &alerts);
    let config = secured(
        ServeBuilder::new(dir.path().join("serve.toml"), &input, &group)
            .filter("bright_transients", &output)
            .admin()
            .extra(&format!("[output.kafka]\nbrokers = [\"{}\"]\n", brokers())),
        &reader(),
    );
    let text = std::fs::read_to_string(config.config_file()).unwrap();
    let start = "start = \"earliest\"\n";
    assert!(text.contains(start), "{text}");
    std::fs::write(
        config.config_file(),
        text.replacen(start, &format!("{start}rekey = true\n"), 1),
    )
    .unwrap();
    let mut serve = config.start();
    let accepted = offline_accepts("bright_transients");
    assert_eq!(
        fewest_copies(&brokers(), &output, &accepted, 1, Duration::from_secs(120)),
        1
    );
    assert_eq!(payloads(&brokers(), &output), sorted(accepted));
    // The re-key topic (each alert, keyed by its object) and the
    // changelog are on the operator's cluster, which the second stage
    // reads.
    let rekeyed = crate::support::kafka::consume_keyed(
        &brokers(),
        &format!("{group}.bandpass-rekey"),
        alerts.len(),
        Duration::from_secs(60),
    );
    assert_eq!(rekeyed.len(), alerts.len());
    assert!(rekeyed.iter().all(|m| m.key.starts_with("ZTF")));
    read_to_end(&brokers(), &format!("{group}.bandpass-changelog"));
    assert!(terminate(&mut serve).success());
}

#[test]
fn a_wrong_password_stops_serve_and_the_commands_at_once_naming_the_keys_to_fix() {
    let s = secure();
    let dir = tempfile::tempdir().unwrap();
    let input = unique("alerts-password");
    produce_to(&s.admin, &input, &[b"warm-up".to_vec()]);
    let wrong = As {
        password: "not-the-password",
        ..reader()
    };
    let config = secured(
        ServeBuilder::new(dir.path().join("serve.toml"), &input, &unique("reader-pw"))
            .filter("bright_transients", &unique("bright-password")),
        &wrong,
    );
    let (code, said) = serve_until_it_stops(&config, &dir.path().join("serve.log"));
    assert_eq!(code, Some(2), "{said}");
    says(
        &said,
        &[
            &s.brokers,
            "user reader",
            "authentication failed",
            "kafka.sasl_username and kafka.sasl_password",
        ],
    );
    let commands = command_config(dir.path(), &wrong, &input, &unique("reader-pw"));
    let (code, _, stderr) = bandpass(&["lag", "--config", commands.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    says(
        &stderr,
        &[&s.brokers, "authentication failed", "kafka.sasl_password"],
    );
}

#[test]
fn a_certificate_the_configured_ca_did_not_sign_stops_serve_and_produce_naming_the_ca_file() {
    let s = secure();
    let dir = tempfile::tempdir().unwrap();
    // A CA of its own, which did not sign the broker's certificate.
    let stranger = dir.path().join("stranger-ca.pem");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=not the broker's CA", "-keyout"])
        .arg(dir.path().join("stranger-ca.key"))
        .arg("-out")
        .arg(&stranger)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{made:?}");
    let untrusting = As {
        ca: &stranger,
        ..operator()
    };
    let input = unique("alerts-tls");
    let commands = command_config(dir.path(), &untrusting, &input, &unique("reader-tls"));
    let (code, _, stderr) = bandpass(&[
        "produce",
        "--config",
        commands.to_str().unwrap(),
        "--topic",
        &input,
        data_dir().join("ztf/alerts").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    let ca = stranger.display().to_string();
    says(
        &stderr,
        &[
            &s.brokers,
            "TLS handshake failed",
            "kafka.ssl_ca_location",
            &ca,
        ],
    );
    let config = secured(
        ServeBuilder::new(dir.path().join("serve.toml"), &input, &unique("reader-tls"))
            .filter("bright_transients", &unique("bright-tls")),
        &untrusting,
    );
    let (code, said) = serve_until_it_stops(&config, &dir.path().join("serve.log"));
    assert_eq!(code, Some(2), "{said}");
    says(&said, &[&s.brokers, "TLS handshake failed", &ca]);
}

#[test]
fn a_missing_acl_stops_serve_naming_the_user_and_the_topic_or_group_it_may_not_use() {
    let s = secure();
    let dir = tempfile::tempdir().unwrap();
    let input = unique("alerts-acl");
    produce_to(&s.admin, &input, &crate::support::ztf_alert_bytes());
    let on_the_operator_s = format!("[output.kafka]\nbrokers = [\"{}\"]\n", brokers());
    let run = |name: &str, builder: ServeBuilder| {
        let config = secured(builder, &reader());
        serve_until_it_stops(&config, &dir.path().join(format!("{name}.log")))
    };
    let serve = |name: &str, input: &str, group: &str| {
        ServeBuilder::new(dir.path().join(format!("{name}.toml")), input, group)
            .filter("bright_transients", &unique("bright-acl"))
    };

    // The reader may not write: its outputs on the survey's cluster.
    let (code, said) = run("writes", serve("writes", &input, &unique("reader-acl")));
    assert_eq!(code, Some(2), "{said}");
    says(&said, &[&s.brokers, "user reader", "not allowed"]);

    // Nor may it read a topic outside its ACLs ...
    let other = unique("other-acl");
    produce_to(&s.admin, &other, &[b"warm-up".to_vec()]);
    let (code, said) = run(
        "topic",
        serve("topic", &other, &unique("reader-acl")).extra(&on_the_operator_s),
    );
    assert_eq!(code, Some(2), "{said}");
    says(
        &said,
        &[&s.brokers, "user reader", "not allowed", &other, "Describe"],
    );

    // ... or read in a group outside them.
    let group = unique("night-acl");
    let (code, said) = run(
        "group",
        serve("group", &input, &group).extra(&on_the_operator_s),
    );
    assert_eq!(code, Some(2), "{said}");
    says(
        &said,
        &[&s.brokers, "user reader", "not allowed", &group, "Read"],
    );

    // An output topic it may see but not write (alerts*), which serve
    // is told not to create: the first refused produce stops serve
    // rather than dropping alerts.
    let seen_not_written = unique("alerts-acl-output");
    produce_to(&s.admin, &seen_not_written, &[b"warm-up".to_vec()]);
    // Serve as the reader, writing to that topic, which it may not
    // create.
    let writing = |name: &str| {
        run(
            name,
            ServeBuilder::new(
                dir.path().join(format!("{name}.toml")),
                &input,
                &unique("reader-acl"),
            )
            .filter("bright_transients", &seen_not_written)
            .extra("[output]\ncreate_topics = false\n"),
        )
    };
    let (code, said) = writing("produce");
    assert_eq!(code, Some(2), "{said}");
    says(
        &said,
        &[
            "refused serve's producer",
            "output.kafka.sasl_username",
            "Write",
        ],
    );

    // Given Write on another topic (so that its producer is let in), it
    // still may not write that one: the first produce refused stops
    // serve, naming the topic.
    let writable = unique("alerts-acl-writable");
    let granted = Command::new(repo_root().join("scripts/kafka.sh"))
        .args(["acl", &s.dir, "--add", "--allow-principal", "User:reader"])
        .args(["--operation", "Write", "--topic", &writable])
        .output()
        .expect("scripts/kafka.sh runs");
    assert!(
        granted.status.success(),
        "{}",
        String::from_utf8_lossy(&granted.stderr)
    );
    let (code, said) = writing("produce-topic");
    assert_eq!(code, Some(2), "{said}");
    says(
        &said,
        &[
            "refused to take alerts on topic",
            &seen_not_written,
            "Write",
        ],
    );
}
