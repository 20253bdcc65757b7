//! End to end: `bandpass serve` with 25 filters against a real broker,
//! side by side with a plain consume-and-produce copy (no decoding, no
//! filtering) in the same run, so the figures read as a fraction of what
//! the broker allows on this machine.
//!
//! Run by `scripts/bench-serve.sh`, which starts a broker of its own and
//! builds the release binaries:
//!
//! 0. Latency (first, on the fresh broker): alerts produced at a steady
//!    rate (key = send time); a reader of the input and of all 25
//!    outputs records, per alert, the time from sending to reading on the
//!    input (the broker alone) and, per accepted alert, on an output.
//! 1. Fill an input topic (4 partitions) with real ZTF alerts, round-robin.
//! 2. Copy baseline: consume every message and produce it unchanged to
//!    one output topic; rate from the first message to the last
//!    acknowledgement.
//! 3. `bandpass serve` over the same topic with 25 filters (the four ZTF
//!    science filters and the 20-field cut, five deployments each, each
//!    with its own output topic); rate from the first committed offset to
//!    the last (consume, decode, filter, produce, acknowledge, commit);
//!    resident memory of the process.
//! 4. The same with `input.rekey = true`: every alert through the
//!    re-keying stage (decode its object id, produce it keyed to the
//!    re-key topic) before the filters, timed on the filtering stage's
//!    commits.
//!
//! `visit`: the visit benchmark (`scripts/bench-visit.sh`, the module
//! `visit`): a burst of alerts already on the topic through N
//! deployments of one filter, Rust and Python, beside a plain copy.

#[path = "serve/visit.rs"]
mod visit;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bandpass_bench::kafka::{
    PARTITIONS, committed_by, high_watermark, memory, producer as producer_with, send,
};
use bandpass_bench::{bandpass_bin, filter_dir, ztf_alerts};
use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};

/// The sample filters the 25 deployments are made of.
const FILTERS: [&str; 5] = [
    "bright_transients",
    "fast_risers",
    "nuclear_transients",
    "asteroids",
    "bench_twenty_fields",
];

/// A producer as serve's, reporting nothing.
fn producer(
    brokers: &str,
    linger_ms: &str,
) -> anyhow::Result<ThreadedProducer<DefaultProducerContext>> {
    producer_with(brokers, linger_ms, DefaultProducerContext)
}

struct Settings {
    brokers: String,
    bandpass: PathBuf,
    filters: PathBuf,
    alerts: usize,
    rate: u64,
    seconds: u64,
}

fn settings() -> anyhow::Result<Settings> {
    settings_from(std::env::args().skip(1))
}

fn settings_from(mut args: impl Iterator<Item = String>) -> anyhow::Result<Settings> {
    let number = |a: Option<String>, default: u64| -> anyhow::Result<u64> {
        a.map_or(Ok(default), |s| {
            s.parse().with_context(|| format!("'{s}' is not a number"))
        })
    };
    Ok(Settings {
        brokers: std::env::var("BANDPASS_KAFKA_BROKERS")
            .context("set BANDPASS_KAFKA_BROKERS (scripts/bench-serve.sh starts a broker)")?,
        bandpass: bandpass_bin(),
        filters: filter_dir(),
        alerts: number(args.next(), 40_000)? as usize,
        rate: number(args.next(), 2_000)?,
        seconds: number(args.next(), 20)?,
    })
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", now_ns())
}

/// Fills `topic` with `n` alerts round-robin over the partitions.
fn fill(s: &Settings, topic: &str, alerts: &[Bytes], n: usize) -> anyhow::Result<f64> {
    let p = producer(&s.brokers, "20")?;
    let start = Instant::now();
    for i in 0..n {
        send(
            &p,
            topic,
            Some(i as i32 % PARTITIONS),
            b"fill",
            &alerts[i % alerts.len()],
        );
    }
    p.flush(Duration::from_secs(300))?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The plain copy: every message of `input` to `output`, unchanged.
fn copy(s: &Settings, input: &str, output: &str, n: usize) -> anyhow::Result<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("group.id", unique("copy"))
        .set("auto.offset.reset", "earliest")
        // The consumer settings serve uses (host/src/pipeline/mod.rs).
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    consumer.subscribe(&[input])?;
    let p = producer(&s.brokers, "5")?;
    let mut start = None;
    let mut copied = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while copied < n {
        if Instant::now() > deadline {
            bail!("the copy stalled at {copied} of {n}");
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            start.get_or_insert_with(Instant::now);
            send(
                &p,
                output,
                None,
                m.key().unwrap_or(&[]),
                m.payload().unwrap_or(&[]),
            );
            copied += 1;
        }
    }
    p.flush(Duration::from_secs(300))?;
    Ok(n as f64 / start.unwrap().elapsed().as_secs_f64())
}

/// A `bandpass serve` process, killed if the bench stops early.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        // Not one that has ended (a SIGKILL of the recovery run): its
        // pid may be another process's by now.
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
        }
        let _ = self.0.wait();
    }
}

/// Parameters that make a sample filter judge every alert and accept
/// none (real-bogus scores never exceed 1; the 20-field cut's score
/// neither).
fn tightened(filter: &str) -> &'static str {
    match filter {
        "bench_twenty_fields" => "min_score = \"2\"",
        _ => "min_real = \"1.01\"",
    }
}

/// Which deployments accept what their sample filter accepts.
#[derive(Clone, Copy)]
enum Acceptance {
    /// All 25 as the samples are.
    AsSampled,
    /// Only the first (bright-transients); the other 24 judge every
    /// alert and accept none, as selective production filters nearly do.
    Selective,
}

/// Writes the 25-filter config and starts `bandpass serve` on it.
fn serve(
    s: &Settings,
    dir: &Path,
    input: &str,
    group: &str,
    outputs: &[String],
    acceptance: Acceptance,
    rekey: bool,
) -> anyhow::Result<Serve> {
    let mut toml = format!(
        "dead_letter_topic = \"{group}-dlq\"\n[kafka]\nbrokers = [\"{}\"]\n\
         [kafka.librdkafka]\n\"auto.commit.interval.ms\" = \"100\"\n{}\
         [input]\ntopics = [\"{input}\"]\ngroup = \"{group}\"\nstart = \"earliest\"\n{}\
         [engine]\nworkers = {}\n",
        s.brokers,
        // BENCH_LIBRDKAFKA="key=value,...": more client settings, to try.
        std::env::var("BENCH_LIBRDKAFKA")
            .unwrap_or_default()
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| format!("\"{k}\" = \"{v}\"\n"))
            .collect::<String>(),
        if rekey { "rekey = true\n" } else { "" },
        // BENCH_WORKERS: engine.workers (default: one per core).
        std::env::var("BENCH_WORKERS").unwrap_or_else(|_| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .to_string()
        })
    );
    // BENCH_SLOW_MEAN=<duration>: the last deployment is instead the
    // hostile-sleep fixture, 90 ms of every alert under a 100 ms deadline,
    // with that mean time (what a slow tenant costs the others; the first
    // deployment, the one that accepts in the selective runs, stays).
    let slow = std::env::var("BENCH_SLOW_MEAN").ok();
    for (i, output) in outputs.iter().enumerate() {
        if let (true, Some(mean)) = (i + 1 == outputs.len(), &slow) {
            toml.push_str(&format!(
                "[[filter]]\nname = \"slow\"\npath = \"{}\"\noutput_topic = \"{output}\"\n\
                 params = {{ sleep_ms = \"90\" }}\n\
                 limits = {{ deadline = \"100ms\", mean_time = \"{mean}\" }}\n",
                s.filters.join("hostile_sleep.wasm").display()
            ));
            continue;
        }
        let filter = FILTERS[i % FILTERS.len()];
        let path = s.filters.join(format!("{filter}.wasm"));
        // Each deployment named apart: five of each sample filter.
        toml.push_str(&format!(
            "[[filter]]\nname = \"{}-{i}\"\npath = \"{}\"\noutput_topic = \"{output}\"\n",
            filter.replace('_', "-"),
            path.display()
        ));
        if matches!(acceptance, Acceptance::Selective) && i > 0 {
            toml.push_str(&format!("[filter.params]\n{}\n", tightened(filter)));
        }
    }
    let config = dir.join(format!("{group}.toml"));
    std::fs::write(&config, toml)?;
    let child = Command::new(&s.bandpass)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(dir.join(format!("{group}.log")))?)
        .spawn()
        .with_context(|| format!("starting {}", s.bandpass.display()))?;
    Ok(Serve(child))
}

/// The group's committed offsets on `topic`, summed over partitions.
fn committed(reader: &BaseConsumer, topic: &str) -> i64 {
    committed_by(reader, topic)
        .iter()
        .filter(|o| **o >= 0)
        .sum()
}

struct Throughput {
    rate: f64,
    rss: f64,
    peak: f64,
    outputs: i64,
}

/// `bandpass serve` over `n` messages of `input`: alerts per second from
/// the first committed offset to the last. With `rekey` (`input.rekey`),
/// the offsets of the filtering stage, on the re-key topic: every alert
/// through both stages.
fn throughput(
    s: &Settings,
    dir: &Path,
    input: &str,
    n: usize,
    acceptance: Acceptance,
    rekey: bool,
) -> anyhow::Result<Throughput> {
    let group = unique("bench-serve");
    let rekeyed = format!("{group}.bandpass-rekey");
    let watched = if rekey { rekeyed.as_str() } else { input };
    let outputs: Vec<String> = (0..25).map(|i| format!("{group}-out-{i}")).collect();
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("group.id", &group)
        .create()?;
    let mut child = serve(s, dir, input, &group, &outputs, acceptance, rekey)?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let (mut first, mut rss) = (None, (0.0, 0.0));
    loop {
        let done = committed(&reader, watched);
        if done > 0 && first.is_none() {
            first = Some((Instant::now(), done));
        }
        if done >= n as i64 {
            break;
        }
        if done > n as i64 / 2 && rss.0 == 0.0 {
            rss = memory(child.0.id());
        }
        if Instant::now() > deadline {
            bail!(
                "serve stalled at {done} of {n} committed; see {}",
                dir.join(format!("{group}.log")).display()
            );
        }
        if let Some(status) = child.0.try_wait()? {
            bail!(
                "serve stopped ({status}) at {done} of {n} committed; see {}",
                dir.join(format!("{group}.log")).display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (t0, c0) = first.unwrap();
    let rate = (n as i64 - c0) as f64 / t0.elapsed().as_secs_f64();
    let peak = memory(child.0.id()).1;
    drop(child);
    let outputs = outputs.iter().map(|t| high_watermark(&reader, t)).sum();
    Ok(Throughput {
        rate,
        rss: rss.0,
        peak,
        outputs,
    })
}

/// Latencies in ms, sorted.
struct Latencies {
    /// Per accepted alert: from sending it to the input topic to reading
    /// it on an output topic.
    through: Vec<f64>,
    /// Per alert: from sending it to reading it on the input topic (the
    /// broker and clients alone, the floor under `through`).
    direct: Vec<f64>,
}

/// Latency at `s.rate` alerts/s for `s.seconds`.
fn latency(s: &Settings, dir: &Path, alerts: &[Bytes]) -> anyhow::Result<Latencies> {
    let group = unique("bench-latency");
    let input = format!("{group}-in");
    let outputs: Vec<String> = (0..25).map(|i| format!("{group}-out-{i}")).collect();
    // Create every topic (a first message each) so the reader can
    // subscribe before the measured alerts flow.
    let p = producer(&s.brokers, "0")?;
    for t in outputs.iter().chain([&input]) {
        send(&p, t, None, b"warmup", b"not an alert");
    }
    p.flush(Duration::from_secs(30))?;
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("group.id", unique("bench-reader"))
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let names: Vec<&str> = outputs.iter().chain([&input]).map(String::as_str).collect();
    reader.subscribe(&names)?;
    let _serve = serve(
        s,
        dir,
        &input,
        &group,
        &outputs,
        Acceptance::Selective,
        false,
    )?;
    // Warm up until an accepted alert comes through end to end.
    let ready = Instant::now() + Duration::from_secs(120);
    'warm: loop {
        for a in alerts {
            send(&p, &input, None, b"warmup", a);
        }
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if let Some(Ok(m)) = reader.poll(Duration::from_millis(50))
                && m.topic() != input
                && m.payload().is_some_and(|b| b.starts_with(b"Obj"))
            {
                break 'warm;
            }
        }
        if Instant::now() > ready {
            bail!("no alert came through serve within 2 minutes");
        }
    }
    // Drain the warm-up, then send at a steady rate while reading.
    while reader.poll(Duration::from_millis(500)).is_some() {}
    // The first WARM_UP seconds at the rate are sent but not measured:
    // a fresh broker stalls for up to a second at first (seen as the
    // input-alone latency), which is not what a running service sees.
    const WARM_UP: u64 = 5;
    let total = (s.rate * (s.seconds + WARM_UP)) as usize;
    let measure_from = now_ns() + WARM_UP as u128 * 1_000_000_000;
    let sender = {
        let (brokers, input, alerts, rate) =
            (s.brokers.clone(), input.clone(), alerts.to_vec(), s.rate);
        std::thread::spawn(move || -> anyhow::Result<()> {
            let p = producer(&brokers, "5")?;
            let start = Instant::now();
            for i in 0..total {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                send(
                    &p,
                    &input,
                    None,
                    now_ns().to_string().as_bytes(),
                    &alerts[i % alerts.len()],
                );
            }
            p.flush(Duration::from_secs(60))?;
            Ok(())
        })
    };
    let (mut through, mut direct) = (Vec::new(), Vec::new());
    let quiet_for = Duration::from_secs(5);
    let mut last = Instant::now();
    while last.elapsed() < quiet_for || !sender.is_finished() {
        if let Some(m) = reader.poll(Duration::from_millis(20)) {
            let m = match m {
                Ok(m) => m,
                // The broker hiccuped (seen once: all connections reset
                // for a moment); the reader reconnects by itself.
                Err(e) => {
                    eprintln!("reader: {e}; continuing");
                    continue;
                }
            };
            let received = now_ns();
            let Some(sent) = m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| k.parse::<u128>().ok())
            else {
                continue;
            };
            if sent < measure_from {
                continue;
            }
            let latency = (received - sent) as f64 / 1e6;
            if std::env::var_os("BENCH_TRACE").is_some() && latency > 100.0 {
                eprintln!(
                    "{:.3} s: {latency:.0} ms on {}",
                    (sent % 1_000_000_000_000) as f64 / 1e9,
                    m.topic()
                );
            }
            if m.topic() == input {
                direct.push(latency);
            } else {
                through.push(latency);
            }
            last = Instant::now();
        }
    }
    sender.join().unwrap()?;
    through.sort_by(f64::total_cmp);
    direct.sort_by(f64::total_cmp);
    Ok(Latencies { through, direct })
}

fn describe(ms: &[f64]) -> String {
    if ms.is_empty() {
        return "nothing read".into();
    }
    format!(
        "{} read: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms.len(),
        percentile(ms, 0.5),
        percentile(ms, 0.99),
        percentile(ms, 1.0)
    )
}

/// Lets the previous phase's writes reach the disk, so that no phase pays
/// for the one before.
/// Each partition's committed offset of `group` on `topic` (-1 where
/// none), read by a client of its own.
fn committed_each(s: &Settings, group: &str, topic: &str) -> Vec<i64> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("group.id", group)
        .create()
        .expect("a Kafka client");
    committed_by(&reader, topic)
}

/// Starts `bandpass serve` for the recovery runs: three sample filters,
/// `delivery`, and `input` keys added to `[input]`; fetching a few alerts
/// at a time (a few hundred a second), so that a kill lands mid-stream.
fn recovery_serve(
    s: &Settings,
    dir: &Path,
    topic: &str,
    group: &str,
    delivery: &str,
    input: &str,
    name: &str,
) -> anyhow::Result<Serve> {
    let mut toml = format!(
        "dead_letter_topic = \"{group}-dlq\"\ndelivery = \"{delivery}\"\n\
         [kafka]\nbrokers = [\"{}\"]\ntransactional_id = \"{group}-{name}\"\n\
         [kafka.librdkafka]\n\"queued.min.messages\" = \"1\"\n\
         \"max.partition.fetch.bytes\" = \"262144\"\n\"fetch.queue.backoff.ms\" = \"50\"\n\
         [input]\ntopics = [\"{topic}\"]\ngroup = \"{group}\"\nstart = \"earliest\"\n{input}\n",
        s.brokers
    );
    for filter in ["bright_transients", "fast_risers", "asteroids"] {
        toml.push_str(&format!(
            "[[filter]]\npath = \"{}\"\noutput_topic = \"{group}-{filter}\"\n",
            s.filters.join(format!("{filter}.wasm")).display()
        ));
    }
    let config = dir.join(format!("{group}-{name}.toml"));
    std::fs::write(&config, toml)?;
    let child = Command::new(&s.bandpass)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(
            dir.join(format!("{group}-{name}.log")),
        )?)
        .spawn()?;
    Ok(Serve(child))
}

/// Waits until `done(committed)` holds; returns the time it took.
fn until_committed(
    s: &Settings,
    group: &str,
    topic: &str,
    what: &str,
    done: impl Fn(&[i64]) -> bool,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if done(&committed_each(s, group, topic)) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("{what}: not within 300 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every partition with work left past `at` has committed
/// past it; returns when each did (seconds), and the time of the last.
fn each_moved(
    s: &Settings,
    group: &str,
    topic: &str,
    at: &[i64],
    ends: &[i64],
    what: &str,
) -> anyhow::Result<(Vec<f64>, Duration)> {
    let start = Instant::now();
    let mut when: Vec<Option<f64>> = at
        .iter()
        .zip(ends)
        .map(|(at, end)| (at >= end).then_some(0.0))
        .collect();
    while when.iter().any(Option::is_none) {
        let now = committed_each(s, group, topic);
        for (i, w) in when.iter_mut().enumerate() {
            if w.is_none() && now[i] > at[i] {
                *w = Some(start.elapsed().as_secs_f64());
            }
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("{what}: not within 300 s ({when:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((when.into_iter().flatten().collect(), start.elapsed()))
}

/// Kills a serve with SIGKILL and reaps it.
fn kill(mut serve: Serve) {
    let _ = serve.0.kill();
    let _ = serve.0.wait();
}

/// Restart and takeover after a SIGKILL mid-stream, librdkafka's
/// defaults (45 s session, a new member on restart) against bandpass's
/// (10 s session, static membership), in both delivery modes: serve with
/// three filters over `n` alerts on 4 partitions.
fn recovery(s: &Settings, dir: &Path, alerts: &[Bytes], n: usize) -> anyhow::Result<()> {
    let topic = unique("recovery-in");
    fill(s, &topic, alerts, n)?;
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &s.brokers)
                .create()
                .expect("a Kafka client");
            c.fetch_watermarks(&topic, p, Duration::from_secs(5))
                .map_or(0, |(_, h)| h)
        })
        .collect();
    println!(
        "{n} real ZTF alerts on {PARTITIONS} partitions, serve with three filters; SIGKILL once a quarter is committed"
    );
    for (label, input) in [
        (
            "librdkafka defaults (45 s session, no instance id)",
            "session_timeout = \"45s\"\ninstance_id = \"\"",
        ),
        (
            "bandpass defaults (10 s session, static membership)",
            "instance_id = \"{name}\"",
        ),
    ] {
        for delivery in ["at-least-once", "exactly-once"] {
            let group = unique("recovery");
            let input_of = |name: &str| input.replace("{name}", &format!("{group}-{name}"));
            // Restart: kill, start again at once with the same config.
            let first = recovery_serve(s, dir, &topic, &group, delivery, &input_of("a"), "a")?;
            until_committed(s, &group, &topic, "a quarter committed", |c| {
                c.iter().map(|o| o.max(&0)).sum::<i64>() >= n as i64 / 4
            })?;
            let at = committed_each(s, &group, &topic);
            kill(first);
            let again = recovery_serve(s, dir, &topic, &group, delivery, &input_of("a"), "a")?;
            let (each, restart) = each_moved(s, &group, &topic, &at, &ends, "restart")?;
            println!("  restart, {delivery}: each partition committed again after {each:.1?} s");
            kill(again);
            // Takeover: two instances; one is killed, the other takes its
            // partitions.
            let group = unique("recovery");
            let input_of = |name: &str| input.replace("{name}", &format!("{group}-{name}"));
            let a = recovery_serve(s, dir, &topic, &group, delivery, &input_of("a"), "a")?;
            let b = recovery_serve(s, dir, &topic, &group, delivery, &input_of("b"), "b")?;
            until_committed(s, &group, &topic, "a quarter committed", |c| {
                c.iter().map(|o| o.max(&0)).sum::<i64>() >= n as i64 / 4
            })?;
            let at = committed_each(s, &group, &topic);
            kill(a);
            let (each, takeover) = each_moved(s, &group, &topic, &at, &ends, "takeover")?;
            println!("  takeover, {delivery}: each partition committed again after {each:.1?} s");
            kill(b);
            println!(
                "{label}, {delivery}: restart to every partition committing again {:.1} s; \
                 takeover of a killed peer's partitions {:.1} s",
                restart.as_secs_f64(),
                takeover.as_secs_f64()
            );
        }
    }
    Ok(())
}

fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(2));
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() -> anyhow::Result<()> {
    // `visit [ALERTS] [CASE...]`: the visit benchmark (module `visit`).
    if std::env::args().nth(1).as_deref() == Some("visit") {
        return visit::run(std::env::args().skip(2));
    }
    // `copy-visit INPUT OUTPUT GROUP`: the visit's plain copy, the
    // process `visit` starts and measures.
    if std::env::args().nth(1).as_deref() == Some("copy-visit") {
        return visit::copy_process(std::env::args().skip(2));
    }
    // `fill TOPIC N`: only fill a topic (to profile serve by hand).
    if std::env::args().nth(1).as_deref() == Some("fill") {
        let topic = std::env::args().nth(2).context("fill TOPIC N")?;
        let n: usize = std::env::args().nth(3).context("fill TOPIC N")?.parse()?;
        let s = Settings {
            alerts: n,
            ..settings_from(std::iter::empty())?
        };
        println!("{:.0} alerts/s", fill(&s, &topic, &ztf_alerts()?, n)?);
        return Ok(());
    }
    // `count TOPIC`: how many messages a topic holds.
    if std::env::args().nth(1).as_deref() == Some("count") {
        let topic = std::env::args().nth(2).context("count TOPIC")?;
        let s = settings_from(std::iter::empty())?;
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &s.brokers)
            .create()?;
        println!("{}", high_watermark(&c, &topic));
        return Ok(());
    }
    // `recovery [ALERTS]`: restart and takeover times after a SIGKILL
    // (docs/reliability.md).
    if std::env::args().nth(1).as_deref() == Some("recovery") {
        let s = settings_from(std::env::args().skip(2).take(1))?;
        let n = if std::env::args().nth(2).is_some() {
            s.alerts
        } else {
            20_000
        };
        let dir = std::env::temp_dir().join(unique("bandpass-serve-bench"));
        std::fs::create_dir_all(&dir)?;
        return recovery(&s, &dir, &ztf_alerts()?, n);
    }
    // `latency`: only the latency run.
    if std::env::args().nth(1).as_deref() == Some("latency") {
        let s = settings_from(std::env::args().skip(2))?;
        let dir = std::env::temp_dir().join(unique("bandpass-serve-bench"));
        std::fs::create_dir_all(&dir)?;
        let l = latency(&s, &dir, &ztf_alerts()?)?;
        println!("through serve: {}", describe(&l.through));
        println!("input alone:   {}", describe(&l.direct));
        return Ok(());
    }
    // `selective TOPIC N`: only the selective throughput run, on a topic
    // filled before (to profile serve by hand).
    if std::env::args().nth(1).as_deref() == Some("selective") {
        let topic = std::env::args().nth(2).context("selective TOPIC N")?;
        let n: usize = std::env::args()
            .nth(3)
            .context("selective TOPIC N")?
            .parse()?;
        let s = settings_from(std::iter::empty())?;
        let dir = std::env::temp_dir().join(unique("bandpass-serve-bench"));
        std::fs::create_dir_all(&dir)?;
        let t = throughput(&s, &dir, &topic, n, Acceptance::Selective, false)?;
        println!("{:.0} alerts/s, RSS {:.0} MiB", t.rate, t.rss);
        return Ok(());
    }
    let s = settings()?;
    for f in FILTERS {
        let path = s.filters.join(format!("{f}.wasm"));
        if !path.exists() {
            bail!("{}: run scripts/build-filters.sh first", path.display());
        }
    }
    let alerts = ztf_alerts()?;
    let mean_kb = alerts.iter().map(|a| a.len()).sum::<usize>() as f64 / alerts.len() as f64 / 1e3;
    let dir = std::env::temp_dir().join(unique("bandpass-serve-bench"));
    std::fs::create_dir_all(&dir)?;
    println!(
        "{} real ZTF alerts ({mean_kb:.0} KB mean), {} messages, {PARTITIONS} partitions, broker {}",
        alerts.len(),
        s.alerts,
        s.brokers
    );

    // Latency first, on the fresh broker: the throughput phases write
    // gigabytes, and the disk's writeback of them stalls the broker.
    let l = latency(&s, &dir, &alerts)?;
    if l.through.is_empty() {
        bail!("no accepted alert was read back in the latency run");
    }
    println!(
        "latency at {}/s for {} s (25 filters, 24 selective)",
        s.rate, s.seconds
    );
    println!(
        "  produce -> readable on the input (broker alone)   {}",
        describe(&l.direct)
    );
    println!(
        "  produce -> accepted alert readable on an output   {}",
        describe(&l.through)
    );
    let input = unique("bench-in");
    let fill_rate = fill(&s, &input, &alerts, s.alerts)?;
    println!("fill (produce only)                      {fill_rate:>10.0} alerts/s");
    settle();
    let copy_rate = copy(&s, &input, &unique("bench-copy"), s.alerts)?;
    println!("plain copy, consume + produce (baseline) {copy_rate:>10.0} alerts/s  1.00x");
    for (acceptance, rekey, label) in [
        (Acceptance::Selective, false, "25 filters, 24 selective"),
        (Acceptance::AsSampled, false, "25 filters as sampled"),
        (Acceptance::Selective, true, "re-keyed, 24 selective"),
    ] {
        settle();
        let t = throughput(&s, &dir, &input, s.alerts, acceptance, rekey)?;
        println!(
            "bandpass serve, {label:<24}  {:>10.0} alerts/s  {:.2}x   {:.2} outputs/alert, RSS {:.0} MiB mid-run, {:.0} MiB peak",
            t.rate,
            t.rate / copy_rate,
            t.outputs as f64 / s.alerts as f64,
            t.rss,
            t.peak
        );
    }

    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
