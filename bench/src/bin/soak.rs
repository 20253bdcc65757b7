//! The soak (docs/reliability.md, "Soak"): a long run of `bandpass serve`
//! through crashes and a broker restart, checking that no accepted alert
//! is lost.
//!
//! Run by `scripts/soak.sh`, which builds the release binaries and the
//! filters and starts a broker of its own with size-bounded retention.
//!
//! - Input: the real ZTF alerts, repeated, each keyed by its sequence
//!   number `i` (sample `i % 18`), on 4 partitions, produced while serve
//!   runs and never more than `WINDOW` alerts ahead of serve's commits
//!   (so that retention never deletes an alert serve has not read).
//! - serve runs 25 deployments: the five ZTF sample filters as they are
//!   (their outputs are checked), fifteen of them with parameters that
//!   accept nothing while judging every alert, and five hostile fixtures
//!   (an endless loop, a memory bomb, endless recursion, a trap on every
//!   third alert, a 90 ms sleep under a 100 ms deadline).
//! - Every `KILL_EVERY` seconds serve is killed with SIGKILL and started
//!   again at once; halfway through, the broker is killed and started
//!   again.
//! - A checker reads every output topic as it is written. The expected
//!   verdicts come from the same components run in process on each
//!   sample: for each checked deployment and each sequence number whose
//!   sample it accepts, the alert must be on its output at least once.
//! - Every 5 s: serve's committed offsets, resident memory and open
//!   descriptors, to `soak.csv` in the work directory.
//!
//! Exit status 0 when nothing was lost, nothing unexpected was written
//! and serve never exited by itself, except on purpose for its supervisor
//! to start it again after a broker outage (a fenced consumer; in-flight
//! work the broker did not let finish under exactly-once); 1 otherwise.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bandpass::decode::SchemaSource;
use bandpass::runner::Runner;
use bandpass::sandbox::{Limits, Outcome, Sandbox, SandboxOptions, Verdict};
use bandpass_bench::kafka::{
    PARTITIONS, descriptors, memory, producer, send, try_committed_by, try_high_watermark,
};
use bandpass_bench::{bandpass_bin, filter_dir, repo, ztf_alerts};
use bytes::Bytes;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

/// The most alerts the producer runs ahead of serve's commits: 20,000
/// real ZTF alerts are about 1.3 GB, a third of what the soak broker
/// keeps of the input (1 GiB per partition).
const WINDOW: i64 = 20_000;
/// The most output messages the checker may trail the outputs by before
/// the producer waits for it (each output partition keeps 1 GiB, about
/// 16,000 alerts).
const CHECKER_WINDOW: i64 = 20_000;

/// The key of the one message written to each output topic before the
/// soak, so that the topics exist when the checker subscribes.
const WARM_UP: &[u8] = b"soak-warm-up";

/// A deployment of the soak's serve.
struct Deployment {
    name: String,
    /// `<component>.wasm` in the filter directory.
    component: &'static str,
    /// The `[[filter]]` lines after name, path and output topic.
    extra: &'static str,
    /// Whether its output is checked against the in-process verdicts.
    checked: bool,
}

/// The 25 deployments: five as sampled, fifteen selective, five hostile.
fn deployments() -> Vec<Deployment> {
    let mut all = Vec::new();
    let samples = [
        ("bright_transients", "min_real = \"1.01\""),
        ("fast_risers", "min_real = \"1.01\""),
        ("nuclear_transients", "min_real = \"1.01\""),
        ("asteroids", "min_real = \"1.01\""),
        ("bench_twenty_fields", "min_score = \"2\""),
    ];
    for (component, tightened) in samples {
        all.push(Deployment {
            name: component.replace('_', "-"),
            component,
            extra: "",
            checked: true,
        });
        for k in 1..=3 {
            all.push(Deployment {
                name: format!("{}-none-{k}", component.replace('_', "-")),
                component,
                extra: tightened,
                checked: false,
            });
        }
    }
    let hostile = [
        ("hostile_infinite_loop", ""),
        ("hostile_memory_bomb", ""),
        ("hostile_deep_recursion", ""),
        ("hostile_panic", "every = \"3\""),
        ("hostile_sleep", "sleep_ms = \"90\""),
    ];
    for (component, params) in hostile {
        all.push(Deployment {
            name: component.replace('_', "-"),
            component,
            extra: params,
            checked: false,
        });
    }
    all
}

struct Settings {
    brokers: String,
    kafka_dir: PathBuf,
    bandpass: PathBuf,
    filters: PathBuf,
    alerts: i64,
    kill_every: Duration,
    delivery: String,
    work: PathBuf,
}

fn settings() -> anyhow::Result<Settings> {
    let arg = |i: usize, default: u64| -> anyhow::Result<u64> {
        std::env::args().nth(i).map_or(Ok(default), |s| {
            s.parse().with_context(|| format!("'{s}' is not a number"))
        })
    };
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    Ok(Settings {
        brokers: std::env::var("BANDPASS_KAFKA_BROKERS")
            .context("set BANDPASS_KAFKA_BROKERS (scripts/soak.sh starts a broker)")?,
        kafka_dir: std::env::var_os("BANDPASS_KAFKA_DIR")
            .map(PathBuf::from)
            .context("set BANDPASS_KAFKA_DIR (the broker to restart halfway)")?,
        bandpass: bandpass_bin(),
        filters: filter_dir(),
        alerts: arg(1, 1_000_000)? as i64,
        kill_every: Duration::from_secs(arg(2, 120)?),
        delivery: std::env::var("SOAK_DELIVERY").unwrap_or_else(|_| "at-least-once".into()),
        work: std::env::var_os("SOAK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join(format!("bandpass-soak-{stamp}"))),
    })
}

/// Which samples each checked deployment accepts, from the same
/// components run in process (the engine serve runs).
fn expected(s: &Settings, all: &[Deployment], alerts: &[Bytes]) -> anyhow::Result<Vec<Vec<bool>>> {
    let sandbox = Sandbox::new(SandboxOptions::default())?;
    all.iter()
        .map(|d| {
            if !d.checked {
                return Ok(vec![false; alerts.len()]);
            }
            let path = s.filters.join(format!("{}.wasm", d.component));
            let bytes = std::fs::read(&path)
                .with_context(|| format!("{}: run scripts/build-filters.sh", path.display()))?;
            let filter = sandbox.load(&bytes, vec![], Limits::default())?;
            let mut runner = Runner::new(&[filter], SchemaSource::None, Default::default());
            alerts
                .iter()
                .map(|a| {
                    let result = runner.process(a)?;
                    Ok(matches!(
                        result[0].evaluations[0].outcome,
                        Outcome::Verdict(Verdict::Accept { .. })
                    ))
                })
                .collect()
        })
        .collect()
}

/// Counts the producer's failed deliveries.
#[derive(Clone, Default)]
struct Deliveries(Arc<AtomicU64>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            eprintln!("soak: an input alert was not delivered: {e}");
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the producer, the checker and the monitor share.
#[derive(Default)]
struct Shared {
    /// Alerts queued to the input so far.
    produced: AtomicI64,
    /// serve's committed offsets, summed (last known).
    committed: AtomicI64,
    /// The outputs' ends (last known), and how far the checker has read
    /// them, both in offsets summed over every output partition. In
    /// offsets, not messages: under exactly-once, transaction markers and
    /// aborted messages take offsets too, and a count of messages read
    /// would never reach the ends.
    written: AtomicI64,
    checked: AtomicI64,
    /// The producer has queued and flushed everything.
    produced_all: AtomicBool,
    /// The soak is over: the checker stops.
    stop: AtomicBool,
}

/// Produces `n` alerts keyed by sequence number, `WINDOW` ahead of serve
/// at most.
fn produce(
    s: &Settings,
    input: &str,
    alerts: &[Bytes],
    shared: &Shared,
    failed: Deliveries,
) -> anyhow::Result<()> {
    let p = producer(&s.brokers, "20", failed)?;
    for i in 0..s.alerts {
        while i - shared.committed.load(Ordering::Relaxed) > WINDOW
            || shared.written.load(Ordering::Relaxed) - shared.checked.load(Ordering::Relaxed)
                > CHECKER_WINDOW
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        send(
            &p,
            input,
            Some((i % i64::from(PARTITIONS)) as i32),
            i.to_string().as_bytes(),
            &alerts[(i % alerts.len() as i64) as usize],
        );
        shared.produced.store(i + 1, Ordering::Relaxed);
    }
    p.flush(Duration::from_secs(600))?;
    shared.produced_all.store(true, Ordering::Relaxed);
    Ok(())
}

/// What the checker found on the outputs.
#[derive(Default)]
struct Found {
    /// Per deployment, per sequence number: read at least once.
    seen: Vec<Vec<bool>>,
    /// Reads of a sequence number already seen on the same output.
    duplicates: Vec<u64>,
    /// Messages a deployment should not have written (its sample's
    /// verdict is not an accept, or the key is not a sequence number).
    unexpected: Vec<u64>,
    /// Errors the reader saw (an offset out of range would mean the
    /// checker fell behind retention: a failure of the soak, not serve).
    errors: Vec<String>,
}

/// A reader of every output partition from `next` (the checker's
/// position), assigned, not in a group: a reader made again needs no
/// group coordinator and waits for no earlier member's session.
fn output_reader(
    s: &Settings,
    outputs: &[String],
    next: &[[i64; PARTITIONS as usize]],
) -> anyhow::Result<BaseConsumer> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("group.id", format!("soak-checker-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for (topic, next) in outputs.iter().zip(next) {
        for (p, offset) in next.iter().enumerate() {
            assignment.add_partition_offset(topic, p as i32, Offset::Offset(*offset))?;
        }
    }
    reader.assign(&assignment)?;
    Ok(reader)
}

/// How long the checker waits with output unread and nothing arriving
/// before it makes its reader again (seen once: a reader that stopped
/// receiving after the broker was fenced under load).
const CHECKER_STALL: Duration = Duration::from_secs(30);

/// Reads every output topic until told to stop.
fn check(
    s: &Settings,
    outputs: &[String],
    accepts: &[Vec<bool>],
    shared: &Shared,
) -> anyhow::Result<Found> {
    // The next offset to read per (output, partition): a message read
    // again by a new reader is not counted twice.
    let mut next = vec![[0i64; PARTITIONS as usize]; outputs.len()];
    let mut reader = output_reader(s, outputs, &next)?;
    let n = s.alerts as usize;
    let mut found = Found {
        seen: vec![vec![false; n]; outputs.len()],
        duplicates: vec![0; outputs.len()],
        unexpected: vec![0; outputs.len()],
        errors: Vec::new(),
    };
    let mut last_read = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(m) = reader.poll(Duration::from_millis(100)) else {
            // Under exactly-once each partition may end with a marker
            // that no message follows.
            let behind = shared.written.load(Ordering::Relaxed)
                - shared.checked.load(Ordering::Relaxed)
                > outputs.len() as i64 * i64::from(PARTITIONS);
            if behind && last_read.elapsed() > CHECKER_STALL {
                eprintln!(
                    "soak: the checker read nothing for {CHECKER_STALL:?} with output unread; a new reader"
                );
                // Closing a client can wait on the broker without bound:
                // the old one is dropped aside.
                let old = std::mem::replace(&mut reader, output_reader(s, outputs, &next)?);
                std::thread::spawn(move || drop(old));
                last_read = Instant::now();
            }
            continue;
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                // Broker restarts show up here and recover by themselves.
                let text = e.to_string();
                if found.errors.len() < 50 {
                    found.errors.push(text);
                }
                continue;
            }
        };
        last_read = Instant::now();
        let Some(d) = outputs.iter().position(|o| o == m.topic()) else {
            continue;
        };
        let next = &mut next[d][m.partition() as usize];
        if m.offset() < *next {
            continue;
        }
        // Offsets skipped (markers, aborted messages) count as read.
        shared
            .checked
            .fetch_add(m.offset() + 1 - *next, Ordering::Relaxed);
        *next = m.offset() + 1;
        if m.key() == Some(WARM_UP) {
            continue;
        }
        let seq = m
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.parse::<usize>().ok())
            .filter(|&i| i < n);
        match seq {
            Some(i) if accepts[d][i % accepts[d].len()] => {
                if std::mem::replace(&mut found.seen[d][i], true) {
                    found.duplicates[d] += 1;
                }
            }
            _ => found.unexpected[d] += 1,
        }
    }
    Ok(found)
}

/// serve's committed offsets and the topics' ends, read by a client of
/// the soak's own. After a broker restart or a fencing, a client that is
/// never polled can go on asking a coordinator that is gone (seen in the
/// first soak: every reading failed from then on), so after `STALE`
/// readings in a row without an answer it is made again.
struct Watcher {
    brokers: String,
    group: String,
    client: BaseConsumer,
    /// Readings in a row without an answer, per question (committed
    /// offsets, topic ends): one kind of reading answering must not hide
    /// another that no longer does.
    misses: [u32; 2],
}

const STALE: u32 = 10;

impl Watcher {
    fn client(brokers: &str, group: &str) -> anyhow::Result<BaseConsumer> {
        Ok(ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .create()?)
    }

    fn new(brokers: &str, group: &str) -> anyhow::Result<Watcher> {
        Ok(Watcher {
            brokers: brokers.into(),
            group: group.into(),
            client: Watcher::client(brokers, group)?,
            misses: [0; 2],
        })
    }

    /// Each partition's committed offset (-1 where none yet).
    fn committed(&mut self, topic: &str) -> Option<Vec<i64>> {
        let got = try_committed_by(&self.client, topic);
        self.answered(0, got.is_some());
        got
    }

    /// The messages `topic` holds.
    fn end(&mut self, topic: &str) -> Option<i64> {
        let got = try_high_watermark(&self.client, topic);
        self.answered(1, got.is_some());
        got
    }

    /// One partition's end.
    fn partition_end(&mut self, topic: &str, partition: i32) -> Option<i64> {
        let got = self
            .client
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .ok()
            .map(|(_, h)| h);
        self.answered(1, got.is_some());
        got
    }

    fn answered(&mut self, question: usize, yes: bool) {
        if yes {
            self.misses[question] = 0;
            return;
        }
        self.misses[question] += 1;
        if self.misses[question] >= STALE {
            eprintln!("soak: the watching client got no answer {STALE} times in a row; a new one");
            if let Ok(client) = Watcher::client(&self.brokers, &self.group) {
                // Closing a client can wait on the broker without bound.
                let old = std::mem::replace(&mut self.client, client);
                std::thread::spawn(move || drop(old));
            }
            self.misses = [0; 2];
        }
    }
}

/// One life of serve: from a start to its kill or exit.
struct Life {
    child: Child,
    started: Instant,
    /// (seconds into the life, resident MiB, descriptors)
    samples: Vec<(f64, f64, usize)>,
    /// How it ended: "killed", or the exit status when serve exited by
    /// itself.
    end: String,
    /// The length of serve's log when this life began.
    log_from: u64,
}

/// What serve says when it stops on purpose for its supervisor to start
/// it again, resuming from the last commit: a fatal consumer error
/// (host/src/pipeline/mod.rs), and, under exactly-once, in-flight work
/// that the broker did not let finish (host/src/pipeline/offsets.rs).
/// Both follow a broker outage or stall.
const STOPS_FOR_SUPERVISOR: [(&str, &str); 2] = [
    (
        "the Kafka consumer hit a fatal error and cannot go on",
        "a fatal consumer error",
    ),
    (
        "exactly-once: in-flight work did not finish within",
        "in-flight work the broker did not let finish",
    ),
];

/// How a life that exited by itself ended: a stop for the supervisor
/// (which the soak, as the supervisor, answers by starting serve again),
/// or a crash.
fn exit_reason(log: &Path, from: u64, status: std::process::ExitStatus) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let written = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default());
    match STOPS_FOR_SUPERVISOR
        .iter()
        .find(|(said, _)| written.contains(said))
    {
        Some((_, why)) => format!("stopped for its supervisor after {why}: {status}"),
        None => format!("exited by itself: {status}"),
    }
}

fn start_serve(s: &Settings, config: &Path, log: &Path) -> anyhow::Result<Life> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let log_from = log.metadata()?.len();
    let child = Command::new(&s.bandpass)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", s.bandpass.display()))?;
    Ok(Life {
        child,
        started: Instant::now(),
        samples: Vec::new(),
        end: String::new(),
        log_from,
    })
}

fn write_config(
    s: &Settings,
    all: &[Deployment],
    input: &str,
    group: &str,
    outputs: &[String],
) -> anyhow::Result<PathBuf> {
    let mut toml = format!(
        "dead_letter_topic = \"{group}-dlq\"\ndelivery = \"{}\"\n\
         [kafka]\nbrokers = [\"{}\"]\ntransactional_id = \"{group}\"\n\
         [kafka.librdkafka]\n\"auto.commit.interval.ms\" = \"500\"\n\
         [input]\ntopics = [\"{input}\"]\ngroup = \"{group}\"\nstart = \"earliest\"\n\
         instance_id = \"{group}-a\"\n",
        s.delivery, s.brokers
    );
    for (d, output) in all.iter().zip(outputs) {
        writeln!(
            toml,
            "[[filter]]\nname = \"{}\"\npath = \"{}\"\noutput_topic = \"{output}\"",
            d.name,
            s.filters.join(format!("{}.wasm", d.component)).display()
        )?;
        if d.component == "hostile_sleep" {
            toml.push_str("limits = { deadline = \"100ms\" }\n");
        }
        if !d.extra.is_empty() {
            writeln!(toml, "params = {{ {} }}", d.extra)?;
        }
    }
    let config = s.work.join("serve.toml");
    std::fs::write(&config, toml)?;
    Ok(config)
}

/// Restarts the broker: SIGKILL, then up again on the same log dir.
fn restart_broker(s: &Settings) -> anyhow::Result<Duration> {
    let script = repo().join("scripts/kafka.sh");
    let start = Instant::now();
    for step in ["down", "up"] {
        let status = Command::new(&script).arg(step).arg(&s.kafka_dir).status()?;
        if !status.success() {
            bail!("scripts/kafka.sh {step} failed");
        }
    }
    Ok(start.elapsed())
}

fn main() -> anyhow::Result<()> {
    let s = settings()?;
    std::fs::create_dir_all(&s.work)?;
    let alerts = ztf_alerts()?;
    let all = deployments();
    println!(
        "soak: {} real ZTF alerts through serve ({}), {} deployments, SIGKILL every {} s, one broker restart; work dir {}",
        s.alerts,
        s.delivery,
        all.len(),
        s.kill_every.as_secs(),
        s.work.display()
    );
    let accepts = expected(&s, &all, &alerts)?;
    for (d, a) in all.iter().zip(&accepts).filter(|(d, _)| d.checked) {
        println!(
            "  {} accepts {} of the {} samples",
            d.name,
            a.iter().filter(|x| **x).count(),
            alerts.len()
        );
    }
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let group = format!("soak-{stamp}");
    let input = format!("{group}-in");
    let outputs: Vec<String> = all.iter().map(|d| format!("{group}-{}", d.name)).collect();
    let config = write_config(&s, &all, &input, &group, &outputs)?;
    {
        let p = producer(&s.brokers, "0", Deliveries::default())?;
        for t in &outputs {
            send(&p, t, None, WARM_UP, b"not an alert");
        }
        p.flush(Duration::from_secs(60))?;
    }
    let log = s.work.join("serve.log");

    let shared = Arc::new(Shared::default());
    let failed = Deliveries::default();
    let s = Arc::new(s);
    let checker = {
        let (s, outputs, accepts, shared) =
            (s.clone(), outputs.clone(), accepts.clone(), shared.clone());
        std::thread::spawn(move || check(&s, &outputs, &accepts, &shared))
    };
    let mut life = start_serve(&s, &config, &log)?;
    let producer = {
        let (s, input, alerts, shared, failed) = (
            s.clone(),
            input.clone(),
            alerts.clone(),
            shared.clone(),
            failed.clone(),
        );
        std::thread::spawn(move || produce(&s, &input, &alerts, &shared, failed))
    };

    let mut watch = Watcher::new(&s.brokers, &group)?;
    let mut csv = std::fs::File::create(s.work.join("soak.csv"))?;
    writeln!(
        csv,
        "seconds,life,produced,committed,written,checked,rss_mib,descriptors"
    )?;
    let start = Instant::now();
    let mut lives: Vec<Life> = Vec::new();
    let mut broker_restart: Option<(f64, Duration)> = None;
    let mut last_sample = Instant::now() - Duration::from_secs(10);
    let mut committed_each = vec![0i64; PARTITIONS as usize];
    let mut ends: Option<Vec<i64>> = None;
    let mut done_at: Option<Instant> = None;
    let mut last_checked = (0i64, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        // serve's progress; readings the broker did not answer keep their
        // last value.
        if let Some(now) = watch.committed(&input) {
            for (last, now) in committed_each.iter_mut().zip(now) {
                *last = (*last).max(now);
            }
        }
        let committed: i64 = committed_each.iter().sum();
        shared.committed.store(committed, Ordering::Relaxed);
        if let Some(written) = outputs.iter().map(|t| watch.end(t)).sum::<Option<i64>>() {
            shared.written.fetch_max(written, Ordering::Relaxed);
        }
        let written = shared.written.load(Ordering::Relaxed);
        let produced = shared.produced.load(Ordering::Relaxed);
        let elapsed = start.elapsed().as_secs_f64();

        if last_sample.elapsed() >= Duration::from_secs(5) {
            last_sample = Instant::now();
            let pid = life.child.id();
            let rss = memory(pid).0;
            let fds = descriptors(pid);
            life.samples
                .push((life.started.elapsed().as_secs_f64(), rss, fds));
            writeln!(
                csv,
                "{elapsed:.1},{},{produced},{committed},{written},{},{rss:.1},{fds}",
                lives.len() + 1,
                shared.checked.load(Ordering::Relaxed)
            )?;
            println!(
                "{elapsed:>7.0} s  life {:>2}  produced {produced:>8}  committed {committed:>8}  outputs read to {:>8}  RSS {rss:>5.0} MiB  fds {fds}",
                lives.len() + 1,
                shared.checked.load(Ordering::Relaxed)
            );
        }

        // serve exiting by itself is a failure of the soak, unless it
        // stopped for its supervisor on a fatal consumer error: record it
        // and start it again.
        if let Some(status) = life.child.try_wait()? {
            life.end = exit_reason(&log, life.log_from, status);
            println!("{elapsed:>7.0} s  serve {}", life.end);
            lives.push(life);
            life = start_serve(&s, &config, &log)?;
            continue;
        }
        let finished = ends
            .as_ref()
            .is_some_and(|ends| committed_each.iter().zip(ends).all(|(c, e)| c >= e));
        if !finished && life.started.elapsed() >= s.kill_every {
            println!("{elapsed:>7.0} s  SIGKILL serve (pid {})", life.child.id());
            let _ = life.child.kill();
            let _ = life.child.wait();
            life.end = "killed".into();
            lives.push(life);
            life = start_serve(&s, &config, &log)?;
            continue;
        }
        if broker_restart.is_none() && committed >= s.alerts / 2 {
            println!("{elapsed:>7.0} s  restarting the broker (SIGKILL, then up)");
            let took = restart_broker(&s)?;
            println!(
                "{:>7.0} s  broker up again after {:.1} s",
                start.elapsed().as_secs_f64(),
                took.as_secs_f64()
            );
            broker_restart = Some((elapsed, took));
        }
        if ends.is_none() && shared.produced_all.load(Ordering::Relaxed) {
            ends = (0..PARTITIONS)
                .map(|p| watch.partition_end(&input, p))
                .collect();
        }
        // Done once serve committed everything and the checker has read
        // every output for 10 s: up to the ends, or with nothing new
        // arriving (under exactly-once the ends may be markers).
        let checked = shared.checked.load(Ordering::Relaxed);
        if checked != last_checked.0 {
            last_checked = (checked, Instant::now());
        }
        let read_all = checked >= written || last_checked.1.elapsed() > Duration::from_secs(15);
        if finished && read_all {
            let at = *done_at.get_or_insert_with(Instant::now);
            if at.elapsed() > Duration::from_secs(10) {
                break;
            }
        } else {
            done_at = None;
        }
        if start.elapsed() > Duration::from_secs(6 * 3600) {
            bail!("the soak did not finish within 6 hours");
        }
    }
    let elapsed = start.elapsed();
    // The last life ends with a clean stop.
    let _ = Command::new("kill")
        .args(["-TERM", &life.child.id().to_string()])
        .status();
    let status = life.child.wait()?;
    life.end = format!("stopped by SIGTERM: {status}");
    lives.push(life);
    shared.stop.store(true, Ordering::Relaxed);
    producer.join().expect("the producer thread")?;
    let found = checker.join().expect("the checker thread")?;
    // The dead-letter topic exists only if serve wrote to it.
    let dead_letters = watch.end(&format!("{group}-dlq")).unwrap_or(0);

    // The report.
    let mut ok = true;
    println!(
        "\nsoak over after {:.0} s: {} alerts ({:.0}/s), {} lives of serve",
        elapsed.as_secs_f64(),
        s.alerts,
        s.alerts as f64 / elapsed.as_secs_f64(),
        lives.len()
    );
    let undelivered = failed.0.load(Ordering::Relaxed);
    println!("input alerts the broker did not take: {undelivered}");
    for (d, deployment) in all.iter().enumerate() {
        let want: Vec<usize> = (0..s.alerts as usize)
            .filter(|i| accepts[d][i % alerts.len()])
            .collect();
        let lost = want.iter().filter(|&&i| !found.seen[d][i]).count();
        if deployment.checked || found.unexpected[d] > 0 {
            println!(
                "  {:<28} accepted {:>8}  lost {lost}  duplicates {}  unexpected {}",
                deployment.name,
                want.len(),
                found.duplicates[d],
                found.unexpected[d]
            );
        }
        if lost > 0 || found.unexpected[d] > 0 {
            ok = false;
        }
    }
    let duplicates: u64 = found.duplicates.iter().sum();
    println!("duplicates over all outputs: {duplicates}; dead letters: {dead_letters}");
    if dead_letters > 0 {
        ok = false;
    }
    if let Some((at, took)) = broker_restart {
        println!(
            "broker restarted at {at:.0} s, up again after {:.1} s",
            took.as_secs_f64()
        );
    }
    let crashes = lives.iter().filter(|l| l.end.starts_with("exited")).count();
    println!(
        "serve: {} SIGKILLs, {} stops for the supervisor, {crashes} other exits by itself",
        lives.iter().filter(|l| l.end == "killed").count(),
        lives
            .iter()
            .filter(|l| l.end.starts_with("stopped for"))
            .count()
    );
    if crashes > 0 {
        ok = false;
    }
    println!("life  length  RSS at 60 s  RSS at end  RSS max  descriptors max  end");
    for (i, l) in lives.iter().enumerate() {
        let at = |t: f64| {
            l.samples
                .iter()
                .find(|x| x.0 >= t)
                .or(l.samples.last())
                .map_or(0.0, |x| x.1)
        };
        let max_rss = l.samples.iter().map(|x| x.1).fold(0.0, f64::max);
        let max_fds = l.samples.iter().map(|x| x.2).max().unwrap_or(0);
        println!(
            "{:>4}  {:>5.0} s  {:>8.0} MiB  {:>7.0} MiB  {:>4.0} MiB  {max_fds:>15}  {}",
            i + 1,
            l.samples.last().map_or(0.0, |x| x.0),
            at(60.0),
            l.samples.last().map_or(0.0, |x| x.1),
            max_rss,
            l.end
        );
    }
    let errors: BTreeSet<&String> = found.errors.iter().collect();
    if !errors.is_empty() {
        println!("the checker's reader saw (broker restarts show here):");
        for e in errors {
            println!("  {e}");
        }
    }
    std::io::stdout().flush()?;
    if !ok {
        bail!("the soak failed: see above, and {}", log.display());
    }
    println!("soak passed: nothing lost, nothing unexpected, serve never crashed");
    Ok(())
}
