//! The visit (issue 17, `scripts/bench-visit.sh`): a Rubin-sized burst of
//! real alerts already on the input topic, and how long `bandpass serve`
//! takes to get through it with N deployments of one filter, in Rust and
//! in Python, beside a plain copy of the same topic in the same run.
//!
//! - The input: ALERTS real ZTF alerts (the 18 samples repeated, in file
//!   order), round-robin over a fresh 4-partition topic, filled before
//!   any case starts.
//! - A filter case: N deployments of bright-transients (the Rust
//!   component or its Python twin), written as one `[[filter]]` with N
//!   parameter sets: the first as sampled, each other with its own
//!   `max_mag` (18 - i/10,000), which accepts none of the samples while
//!   still judging every alert, as selective production filters nearly
//!   do. So every case writes the same outputs (what the first accepts)
//!   and differs only in the number of filters. Each deployment has its
//!   own output topic.
//! - The plain copy: this binary again, in a process of its own
//!   (`copy-visit`), consuming the topic with serve's consumer settings
//!   and producing every message to one output topic with serve's
//!   producer settings, storing an offset once its copy is acknowledged
//!   and auto-committing as serve does (at-least-once).
//! - Measured alike for each: a fresh consumer group; the time from
//!   starting the process to the group's committed offsets reaching the
//!   end of every partition (and to its first commit); the process's CPU
//!   time (`/proc/<pid>/stat`) and peak resident memory (`VmHWM`) read at
//!   that moment.
//! - serve's wall-clock limits per filter (`deadline`, `mean_time`) are
//!   raised to 10 s: on a shared machine a thread can wait longer than
//!   the default 100 ms for a core, and that would show as failed calls
//!   and missing outputs rather than as time. Fuel and memory stay at
//!   their defaults. Failed calls and quarantined deployments are read
//!   from serve's `/metrics` at the end and shown.
//! - Output topics (and the dead-letter topic) are made before the clock
//!   starts, with one partition each: what a running service finds at its
//!   next start. After each case they are deleted, so the next case's
//!   broker holds no more topics than its own.
//! - Checked, not timed: every output topic holds exactly what
//!   `bandpass run --config` accepts offline with the same config, byte
//!   for byte and as many times as the alert was on the input; the copy's
//!   topic holds every input message. A difference stops the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bandpass::cli::format::thousands;
use bandpass_bench::kafka::{PARTITIONS, committed_by, high_watermark, memory};
use bandpass_bench::{filter_dir, repo, ztf_alert_files, ztf_alerts};
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::{Serve, Settings, fill, settings_from, settle, unique};

/// The cases of a full run, in order.
const DEFAULT_CASES: [&str; 6] = [
    "copy",
    "rust:100",
    "rust:1000",
    "python:5",
    "python:25",
    "python:100",
];
/// Most alerts a visit may hold (about 65 GB of ZTF alerts).
const MAX_ALERTS: usize = 1_000_000;
/// Most deployments a case may have: as many as a config may hold.
const MAX_DEPLOYMENTS: usize = bandpass::config::filter::MAX_DEPLOYMENTS;
/// How long a case may take to reach the end before the run stops.
const CASE_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Clone, Copy, PartialEq)]
enum Language {
    Rust,
    Python,
}

impl Language {
    fn label(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
        }
    }

    /// The bright-transients component in this language.
    fn component(self) -> PathBuf {
        match self {
            Language::Rust => filter_dir().join("bright_transients.wasm"),
            Language::Python => repo().join("sample-filters/target/python/bright-transients.wasm"),
        }
    }

    /// The script that builds it, for the error when it is missing.
    fn build_script(self) -> &'static str {
        match self {
            Language::Rust => "scripts/build-filters.sh",
            Language::Python => "scripts/build-python-filters.sh",
        }
    }
}

#[derive(Clone, Copy)]
enum Case {
    Copy,
    Filters(Language, usize),
}

impl Case {
    fn parse(text: &str) -> anyhow::Result<Case> {
        if text == "copy" {
            return Ok(Case::Copy);
        }
        let bad = || {
            anyhow::anyhow!(
                "'{}' is not a case: give copy, rust:N or python:N (N from 1 to {MAX_DEPLOYMENTS})",
                text.escape_debug()
            )
        };
        let (language, n) = text.split_once(':').ok_or_else(bad)?;
        let language = match language {
            "rust" => Language::Rust,
            "python" => Language::Python,
            _ => return Err(bad()),
        };
        let n: usize = n.parse().map_err(|_| bad())?;
        if n == 0 || n > MAX_DEPLOYMENTS {
            return Err(bad());
        }
        Ok(Case::Filters(language, n))
    }

    fn label(self) -> String {
        match self {
            Case::Copy => "plain copy (consume + produce, no filter)".into(),
            Case::Filters(language, n) => format!(
                "{} {} deployment{}",
                thousands(n as u64),
                language.label(),
                if n == 1 { "" } else { "s" }
            ),
        }
    }
}

/// What one case measured.
struct Measured {
    /// From starting the process to the group's committed offsets at the
    /// end of every partition.
    to_end: Duration,
    /// From starting the process to its first commit.
    first_commit: Duration,
    /// The process's CPU time (user + system) by then.
    cpu: f64,
    /// Each of serve's worker threads' CPU time by then, in seconds
    /// (none for the copy): how busy the filters kept them.
    workers: Vec<f64>,
    /// Its peak resident memory by then, in MiB.
    peak: f64,
    /// Messages on its output topics, once checked.
    outputs: i64,
    /// serve's failed filter calls and quarantined deployments, from its
    /// metrics (none for the copy).
    failures: Option<Failures>,
    /// The 1-minute load average as the case ended.
    load: f64,
    /// The process's stderr.
    log: PathBuf,
}

/// `visit [ALERTS] [CASE...]`: the visit, each case in turn, a table at
/// the end. Each case's row is printed as it ends, so a run stopped
/// later keeps what it measured.
pub fn run(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut alerts_wanted = 10_000;
    let mut cases = Vec::new();
    if let Some(first) = args.next() {
        match first.parse::<usize>() {
            Ok(n) if (1..=MAX_ALERTS).contains(&n) => alerts_wanted = n,
            Ok(_) => bail!("ALERTS must be from 1 to {MAX_ALERTS}"),
            Err(_) => cases.push(Case::parse(&first)?),
        }
    }
    for a in args {
        cases.push(Case::parse(&a)?);
    }
    if cases.is_empty() {
        cases = DEFAULT_CASES
            .iter()
            .map(|c| Case::parse(c))
            .collect::<anyhow::Result<_>>()?;
    }
    let s = settings_from(std::iter::empty())?;
    ensure!(
        s.bandpass.exists(),
        "{}: no bandpass binary there; build it (scripts/bench-visit.sh does) or set BANDPASS_BIN",
        s.bandpass.display()
    );
    for case in &cases {
        if let Case::Filters(language, _) = case {
            let path = language.component();
            ensure!(
                path.exists(),
                "{}: run {} first",
                path.display(),
                language.build_script()
            );
        }
    }
    let files = ztf_alert_files()?;
    let alerts = ztf_alerts()?;
    ensure!(!alerts.is_empty(), "no ZTF alert files found");
    let dir = std::env::temp_dir().join(unique("bandpass-visit"));
    std::fs::create_dir_all(&dir)?;
    // The compiled-code cache: BANDPASS_CACHE_DIR's (scripts/test.sh
    // sets one its tests have filled), else one of this run's own.
    let cache = std::env::var_os("BANDPASS_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("cache"));

    println!("{}", machine());
    let input = unique("visit-in");
    create_topics(&s.brokers, &[input.as_str()], PARTITIONS)?;
    let fill_rate = fill(&s, &input, &alerts, alerts_wanted)?;
    let mean_kb = alerts.iter().map(|a| a.len()).sum::<usize>() as f64 / alerts.len() as f64 / 1e3;
    println!(
        "the visit: {} real ZTF alerts ({} samples repeated, {mean_kb:.0} KB mean) on {PARTITIONS} partitions of {input}, filled at {fill_rate:.0} alerts/s; serve's workers: {}",
        thousands(alerts_wanted as u64),
        alerts.len(),
        workers()
    );
    // A fresh broker makes its offsets topic at the first commit of any
    // group, which takes seconds: done here, so that no case pays it.
    let warm = reader(&s.brokers, &unique("visit-warm"))?;
    let mut first = TopicPartitionList::new();
    first.add_partition_offset(&input, 0, Offset::Offset(0))?;
    warm.commit(&first, CommitMode::Sync)
        .context("committing a first offset (to make the broker's offsets topic)")?;
    // Each filled message's sample, to know what each output must hold.
    let filled: Vec<usize> = (0..alerts_wanted).map(|i| i % alerts.len()).collect();

    let mut rows: Vec<(Case, Measured)> = Vec::new();
    let mut copy_time = None;
    for case in cases {
        settle();
        let m = match case {
            Case::Copy => copy_case(&s, &dir, &input, alerts_wanted)?,
            Case::Filters(language, n) => filters_case(
                &s,
                &dir,
                &cache,
                &input,
                language,
                n,
                (&files, &alerts, &filled),
            )?,
        };
        if matches!(case, Case::Copy) {
            copy_time = Some(m.to_end);
        }
        println!("{}", row(case, &m, copy_time));
        rows.push((case, m));
    }

    println!("\n{}", header());
    for (case, m) in &rows {
        println!("{}", row(*case, m, copy_time));
    }
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("configs and logs kept in {}", dir.display());
    }
    Ok(())
}

fn header() -> String {
    "| case | to lag 0 | to the first commit | CPU | workers' CPU | peak RSS | to lag 0, x copy | outputs | failed calls | load (1 min) |\n\
     | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        .into()
}

fn row(case: Case, m: &Measured, copy: Option<Duration>) -> String {
    let ratio = match copy {
        Some(c) => format!("{:.2}x", m.to_end.as_secs_f64() / c.as_secs_f64()),
        None => "-".into(),
    };
    let workers = if m.workers.is_empty() {
        "-".to_string()
    } else {
        let each: Vec<String> = m.workers.iter().map(|w| format!("{w:.1}")).collect();
        format!("{} s", each.join(" + "))
    };
    format!(
        "| {} | {:.1} s | {:.1} s | {:.1} s | {workers} | {} MiB | {ratio} | {} | {} | {:.1} |",
        case.label(),
        m.to_end.as_secs_f64(),
        m.first_commit.as_secs_f64(),
        m.cpu,
        thousands(m.peak.round() as u64),
        thousands(m.outputs.max(0) as u64),
        m.failures.as_ref().map_or("-".into(), Failures::to_string),
        m.load
    )
}

/// The machine, as docs/benchmarks.md reports it.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!(
        "machine: {} cores ({model}), {mem_gib:.0} GiB; load average {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// serve's engine.workers: BENCH_WORKERS, else one per core (serve's
/// default, written out so the run says what it used).
fn workers() -> String {
    std::env::var("BENCH_WORKERS").unwrap_or_else(|_| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .to_string()
    })
}

/// The plain copy in a process of its own, measured as serve is.
fn copy_case(s: &Settings, dir: &Path, input: &str, n: usize) -> anyhow::Result<Measured> {
    let group = unique("visit-copy");
    let output = format!("{group}.out");
    create_topics(&s.brokers, &[output.as_str()], 1)?;
    settle();
    let log = dir.join(format!("{group}.log"));
    let start = Instant::now();
    let child = Command::new(std::env::current_exe()?)
        .args(["copy-visit", input, &output, &group])
        .env("BANDPASS_KAFKA_BROKERS", &s.brokers)
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting the copy process")?;
    let started = Started {
        process: Serve(child),
        at: start,
        log,
    };
    let mut m = until_end(s, started, &group, input, n, None)?;
    let log = m.log.clone();
    let reader = reader(&s.brokers, &unique("visit-check"))?;
    m.outputs = high_watermark(&reader, &output);
    ensure!(
        m.outputs == n as i64,
        "the copy's output {output} holds {} messages where the input held {n}; see {}",
        m.outputs,
        log.display()
    );
    delete_topics(&s.brokers, &[output])?;
    Ok(m)
}

/// N deployments of bright-transients in `language`, measured, then
/// their outputs checked against `bandpass run --config`.
fn filters_case(
    s: &Settings,
    dir: &Path,
    cache: &Path,
    input: &str,
    language: Language,
    n: usize,
    (files, alerts, filled): (&[PathBuf], &[Bytes], &[usize]),
) -> anyhow::Result<Measured> {
    let group = unique(&format!(
        "visit-{}-{n}",
        language.label().to_ascii_lowercase()
    ));
    let names: Vec<String> = (0..n).map(|i| format!("bt-{i:04}")).collect();
    let outputs: Vec<String> = names.iter().map(|name| format!("{group}.{name}")).collect();
    // As visit_config names it.
    let dead_letters = format!("{group}-dlq");
    let config = dir.join(format!("{group}.toml"));
    let metrics = free_address()?;
    std::fs::write(
        &config,
        visit_config(s, input, &group, cache, metrics, language, &names),
    )?;

    // What each deployment accepts, offline, with the same config (this
    // also compiles the component into the cache serve then loads from,
    // so compiling is not in the figures).
    let accepted = offline(s, dir, cache, &config, &group, files, &names)?;
    let sample_of: HashMap<&[u8], usize> = alerts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_ref(), i))
        .collect();
    // Per deployment: how many copies of each sample its topic must hold.
    let mut expected: Vec<HashMap<usize, i64>> = vec![HashMap::new(); n];
    for (d, bytes) in accepted.iter().enumerate() {
        for b in bytes {
            let Some(&sample) = sample_of.get(b.as_slice()) else {
                bail!(
                    "bandpass run accepted, for {}, bytes that are none of the input alerts",
                    names[d]
                );
            };
            let times = filled.iter().filter(|&&f| f == sample).count() as i64;
            *expected[d].entry(sample).or_default() += times;
        }
    }

    let mut topics: Vec<&str> = outputs.iter().map(String::as_str).collect();
    topics.push(&dead_letters);
    create_topics(&s.brokers, &topics, 1)?;
    settle();
    let log = dir.join(format!("{group}.log"));
    let start = Instant::now();
    let child = Command::new(&s.bandpass)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", s.bandpass.display()))?;
    let started = Started {
        process: Serve(child),
        at: start,
        log,
    };
    let mut m = until_end(s, started, &group, input, filled.len(), Some(metrics))?;
    let log = m.log.clone();
    let failures = m.failures.clone().unwrap_or_default();

    // Checked: each output holds what the deployment accepts offline,
    // byte for byte and as many times as it was on the input; nothing
    // went to the dead letters.
    let reader = reader(&s.brokers, &unique("visit-check"))?;
    let mut total = 0;
    for (d, topic) in outputs.iter().enumerate() {
        let want: i64 = expected[d].values().sum();
        let held = high_watermark(&reader, topic);
        ensure!(
            held == want,
            "{topic} ({}) holds {held} messages where bandpass run accepts {want} \
             (serve's failed calls: {failures}); see {}",
            names[d],
            log.display()
        );
        if want > 0 {
            let mut got: HashMap<usize, i64> = HashMap::new();
            for payload in read_all(&s.brokers, topic, held)? {
                let Some(&sample) = sample_of.get(payload.as_slice()) else {
                    bail!("{topic} holds a message that is none of the input alerts");
                };
                *got.entry(sample).or_default() += 1;
            }
            ensure!(
                got == expected[d],
                "{topic} ({}) holds other alerts than bandpass run accepts: {got:?} against {:?} (sample index: copies)",
                names[d],
                expected[d]
            );
        }
        total += held;
    }
    let dead = high_watermark(&reader, &dead_letters);
    ensure!(
        dead == 0,
        "{dead} messages went to the dead letters {dead_letters}; see {}",
        log.display()
    );
    m.outputs = total;
    let mut gone = outputs;
    gone.push(dead_letters);
    delete_topics(&s.brokers, &gone)?;
    Ok(m)
}

/// The serve config of a filter case: one `[[filter]]`, a parameter set
/// per deployment.
fn visit_config(
    s: &Settings,
    input: &str,
    group: &str,
    cache: &Path,
    metrics: std::net::SocketAddr,
    language: Language,
    names: &[String],
) -> String {
    let mut toml = format!(
        "dead_letter_topic = \"{group}-dlq\"\n\
         [kafka]\nbrokers = [\"{}\"]\n\
         [kafka.librdkafka]\n\"auto.commit.interval.ms\" = \"100\"\n\
         [input]\ntopics = [\"{input}\"]\ngroup = \"{group}\"\nstart = \"earliest\"\n\
         [engine]\nworkers = {}\ncache_dir = \"{}\"\n\
         [engine.limits]\ndeadline = \"10s\"\nmean_time = \"10s\"\n\
         [engine.max_limits]\ndeadline = \"10s\"\nmean_time = \"10s\"\n\
         [admin]\nlisten = \"{metrics}\"\n\
         [[filter]]\npath = \"{}\"\noutput_topic = \"{group}.{{name}}\"\nsets = [\n",
        s.brokers,
        workers(),
        // Where `bandpass run` (in `offline`) stores what it compiles.
        cache.join("compiled").display(),
        language.component().display()
    );
    for (i, name) in names.iter().enumerate() {
        if i == 0 {
            toml.push_str(&format!("  {{ name = \"{name}\" }},\n"));
        } else {
            // Distinct from every other deployment, and brighter than any
            // sample the filter would otherwise accept (18.36).
            let max_mag = 18.0 - i as f64 / 10_000.0;
            toml.push_str(&format!(
                "  {{ name = \"{name}\", params = {{ max_mag = {max_mag:.4} }} }},\n"
            ));
        }
    }
    toml.push_str("]\n");
    toml
}

/// What each deployment of `config` accepts of the sample files, by
/// `bandpass run --config`: per deployment, the accepted alerts' bytes.
fn offline(
    s: &Settings,
    dir: &Path,
    cache: &Path,
    config: &Path,
    group: &str,
    files: &[PathBuf],
    names: &[String],
) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
    let out = dir.join(format!("{group}-run"));
    let result = Command::new(&s.bandpass)
        .args(["run", "--quiet", "--config"])
        .arg(config)
        .args(files)
        .arg("--out")
        .arg(&out)
        // `run --config` takes its cache from here (its `compiled`
        // folder), not from the config's engine.cache_dir as serve does.
        .env("BANDPASS_CACHE_DIR", cache)
        .env("RUST_LOG", "warn")
        .output()
        .with_context(|| format!("starting {} run", s.bandpass.display()))?;
    ensure!(
        result.status.success(),
        "bandpass run --config {} failed ({}): {}",
        config.display(),
        result.status,
        String::from_utf8_lossy(&result.stderr)
    );
    let mut accepted = Vec::new();
    for name in names {
        let folder = out.join(name);
        let mut bytes = Vec::new();
        for f in std::fs::read_dir(&folder)
            .with_context(|| format!("bandpass run wrote no folder {}", folder.display()))?
        {
            let p = f?.path();
            if p.extension().is_some_and(|e| e == "avro") {
                bytes.push(std::fs::read(&p)?);
            }
        }
        accepted.push(bytes);
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(accepted)
}

/// A process being measured: serve or the copy.
struct Started {
    process: Serve,
    /// Just before it was started.
    at: Instant,
    /// Where its stderr goes.
    log: PathBuf,
}

/// Waits for `group`'s committed offsets on `input` to reach `n`, then
/// reads the process's CPU time and peak memory, and stops it.
fn until_end(
    s: &Settings,
    started: Started,
    group: &str,
    input: &str,
    n: usize,
    metrics: Option<std::net::SocketAddr>,
) -> anyhow::Result<Measured> {
    let Started {
        mut process,
        at: start,
        log,
    } = started;
    let watcher = reader(&s.brokers, group)?;
    let mut first_commit = None;
    loop {
        let done: i64 = committed_by(&watcher, input)
            .iter()
            .filter(|o| **o >= 0)
            .sum();
        if done > 0 && first_commit.is_none() {
            first_commit = Some(start.elapsed());
        }
        if done >= n as i64 {
            break;
        }
        if let Some(status) = process.0.try_wait()? {
            bail!(
                "{group}: the process stopped ({status}) with {done} of {n} committed; see {}",
                log.display()
            );
        }
        if start.elapsed() > CASE_TIMEOUT {
            bail!(
                "{group}: {done} of {n} committed after {} s; see {}",
                CASE_TIMEOUT.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let to_end = start.elapsed();
    let pid = process.0.id();
    let cpu = cpu_seconds(pid)?;
    let workers = worker_seconds(pid);
    let peak = memory(pid).1;
    let failures = match metrics {
        Some(address) => Some(Failures::scraped(address)?),
        None => None,
    };
    drop(process);
    Ok(Measured {
        to_end,
        first_commit: first_commit.unwrap_or(to_end),
        cpu,
        workers,
        peak,
        outputs: 0,
        failures,
        load: load(),
        log,
    })
}

/// What went wrong in serve's filter calls, from its `/metrics`.
#[derive(Clone, Default)]
struct Failures {
    /// `bandpass_filter_failures_total`, summed over filters, by kind.
    by_kind: Vec<(String, u64)>,
    /// Deployments with `bandpass_filter_quarantined` at 1.
    quarantined: usize,
}

impl Failures {
    /// Reads serve's metrics page at `address`.
    fn scraped(address: std::net::SocketAddr) -> anyhow::Result<Failures> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5))
            .with_context(|| format!("connecting to serve's metrics at {address}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )?;
        let mut page = String::new();
        stream
            .read_to_string(&mut page)
            .with_context(|| format!("reading serve's metrics at {address}"))?;
        let mut failures = Failures::default();
        for line in page.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if series.starts_with("bandpass_filter_quarantined{") && value >= 1.0 {
                failures.quarantined += 1;
            }
            if !series.starts_with("bandpass_filter_failures_total{") || value <= 0.0 {
                continue;
            }
            let kind = series
                .split_once("kind=\"")
                .and_then(|(_, k)| k.split_once('"'))
                .map_or("unknown", |(k, _)| k);
            match failures.by_kind.iter_mut().find(|(k, _)| k == kind) {
                Some((_, n)) => *n += value as u64,
                None => failures.by_kind.push((kind.to_string(), value as u64)),
            }
        }
        Ok(failures)
    }
}

impl std::fmt::Display for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.by_kind.is_empty() && self.quarantined == 0 {
            return write!(f, "0");
        }
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{} {k}", thousands(*n)))
            .collect();
        write!(f, "{}", kinds.join(", "))?;
        if self.quarantined > 0 {
            write!(f, "; {} quarantined", self.quarantined)?;
        }
        Ok(())
    }
}

/// A loopback address with a port free a moment ago, for serve's admin
/// listener.
fn free_address() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// User and system CPU time of a running process, in seconds (all its
/// threads).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    stat_seconds(&format!("/proc/{pid}/stat"))
}

/// The CPU time of each of serve's worker threads (`bandpass-worker-N`,
/// shown truncated to 15 bytes by the kernel), in seconds; empty when the
/// process has none.
fn worker_seconds(pid: u32) -> Vec<f64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.starts_with("bandpass-worke"))
        })
        .filter_map(|t| stat_seconds(&t.path().join("stat").to_string_lossy()).ok())
        .collect()
}

/// User and system CPU time in a `/proc/.../stat` file, in seconds.
fn stat_seconds(path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // After the command's name in parentheses: state is field 3, utime
    // field 14 and stime field 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("an unreadable /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("a short /proc/<pid>/stat")?
            .parse::<f64>()?)
    };
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11)? + ticks(12)?) / per_second)
}

fn reader(brokers: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()?)
}

/// Every message's payload of `topic` (one partition), `n` of them.
fn read_all(brokers: &str, topic: &str, n: i64) -> anyhow::Result<Vec<Vec<u8>>> {
    let c = reader(brokers, &unique("visit-check"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    c.assign(&tpl)?;
    let mut payloads = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (payloads.len() as i64) < n {
        ensure!(
            Instant::now() < deadline,
            "read {} of {n} messages of {topic} in 120 s",
            payloads.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            payloads.push(m?.payload().unwrap_or(&[]).to_vec());
        }
    }
    Ok(payloads)
}

fn admin(brokers: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?)
}

/// Creates `topics` with `partitions` each; one already there is fine.
fn create_topics(brokers: &str, topics: &[&str], partitions: i32) -> anyhow::Result<()> {
    let admin = admin(brokers)?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(120)));
    for result in runtime()?.block_on(admin.create_topics(&new, &options))? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// Deletes `topics` and waits until the broker lists none of them.
fn delete_topics(brokers: &str, topics: &[String]) -> anyhow::Result<()> {
    let admin = admin(brokers)?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(120)));
    for result in runtime()?.block_on(admin.delete_topics(&names, &options))? {
        if let Err((topic, code)) = result {
            bail!("deleting topic {topic}: {code}");
        }
    }
    let c = reader(brokers, &unique("visit-check"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let listed = c.fetch_metadata(None, Duration::from_secs(10))?;
        let left = listed
            .topics()
            .iter()
            .filter(|t| names.contains(&t.name()))
            .count();
        if left == 0 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{left} topics still listed 120 s after deleting them"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The copies acknowledged by the broker and not yet stored as offsets:
/// (input partition, input offset).
#[derive(Clone, Default)]
struct Acknowledged(Arc<Mutex<Vec<(i32, i64)>>>);

impl ClientContext for Acknowledged {}

impl ProducerContext for Acknowledged {
    type DeliveryOpaque = Box<(i32, i64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, from: Self::DeliveryOpaque) {
        match result {
            Ok(_) => self.0.lock().unwrap().push(*from),
            // With message.timeout.ms = 0 (serve's) librdkafka retries
            // for ever; an error here is one it cannot retry.
            Err((e, _)) => panic!("a copy was refused: {e}"),
        }
    }
}

/// `copy-visit INPUT OUTPUT GROUP`: the plain copy, run by [`copy_case`]
/// in a process of its own so it is measured as serve is. Consumes with
/// serve's consumer settings, produces every message unchanged with its
/// producer settings, stores an offset once the copy is acknowledged and
/// auto-commits every 100 ms (the visit's serve config), until killed.
pub fn copy_process(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let usage = "copy-visit INPUT OUTPUT GROUP";
    let input = args.next().context(usage)?;
    let output = args.next().context(usage)?;
    let group = args.next().context(usage)?;
    let brokers = std::env::var("BANDPASS_KAFKA_BROKERS").context("set BANDPASS_KAFKA_BROKERS")?;
    // As host/src/kafka.rs sets them for serve (at-least-once).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "100")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed")
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.queue.backoff.ms", "10")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&input])?;
    let acknowledged = Acknowledged::default();
    let producer: ThreadedProducer<Acknowledged> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.kbytes", "65536")
        .set("message.timeout.ms", "0")
        .create_with_context(acknowledged.clone())?;
    loop {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            let mut record =
                BaseRecord::with_opaque_to(&output, Box::new((m.partition(), m.offset())))
                    .key(m.key().unwrap_or(&[]))
                    .payload(m.payload().unwrap_or(&[]));
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, back))
                        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                    {
                        record = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => bail!("producing to {output}: {e}"),
                }
            }
        }
        let done: Vec<(i32, i64)> = std::mem::take(&mut *acknowledged.0.lock().unwrap());
        for (partition, offset) in done {
            consumer.store_offset(&input, partition, offset + 1)?;
        }
    }
}
