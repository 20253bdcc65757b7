//! `bandpass run`: batch replay. Every filter over alert files or
//! archives; each filter's accepted alerts written, byte for byte, to
//! `OUT/<filter>/` with their verdicts in `OUT/<filter>/verdicts.jsonl`;
//! a summary table and `OUT/summary.json`.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::format::{Table, Tally, thousands};
use super::paths::FieldWatch;
use super::{EngineArgs, MemoryArgs, SkyArgs};
use crate::config::Config;
use crate::decode::SchemaSource;
use crate::deploy;
use crate::input;
use crate::runner::{AlertId, Runner};
use crate::sandbox::{LoadedFilter, Outcome, Sandbox, Verdict};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A filter component (.wasm); repeat for several. Each appears once
    /// and `--param` goes to all: to run one component with several
    /// parameter sets, give them as deployments in a config (`--config`).
    #[arg(
        long = "filter",
        value_name = "FILTER.wasm",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub filters: Vec<PathBuf>,
    /// Replay the deployments of a `bandpass serve` config instead: its
    /// `[[filter]]` entries (names, parameters, limits; the disabled ones
    /// left out), its quarantine rule and its schemas. Filters uploaded to
    /// a running serve live on its registry topic and are not replayed.
    #[arg(long, value_name = "bandpass.toml")]
    pub config: Option<PathBuf>,
    /// Alert files (.avro), directories of them, or .tar.gz archives.
    #[arg(required = true)]
    pub alerts: Vec<PathBuf>,
    /// Where accepted alerts go: one folder per filter, with each one's
    /// score, tags and notes in its `verdicts.jsonl`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub memory: MemoryArgs,
    #[command(flatten)]
    pub sky: SkyArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Most unreadable inputs reported one by one on stderr.
const MAX_REPORTED_INPUT_ERRORS: usize = 20;

pub fn execute(args: RunArgs) -> anyhow::Result<u8> {
    let Loaded {
        named,
        mut refused,
        schemas,
        sandbox: _sandbox,
        memory: memory_config,
        sky,
    } = match &args.config {
        Some(config) => deployments_of(config, &args.engine)?,
        None => components(&args)?,
    };
    let filters: Vec<Arc<LoadedFilter>> = named.iter().map(|(_, f)| f.clone()).collect();
    let host = crate::runner::HostFields {
        kept: args.memory.kept(memory_config.as_ref())?,
        sky: args
            .sky
            .sky(sky.as_ref().map(|(c, dir)| (c, dir.as_path())))?,
    };
    let (folders, checks) = args.engine.check_paths(&filters, &host)?;
    let mut kept = Vec::new();
    for ((name, f), check) in named.into_iter().zip(checks) {
        match check.refused.first() {
            Some(_) => refused.push(format!(
                "filter '{name}': asks for what this host does not give (said above); skipped"
            )),
            None => kept.push((name, f)),
        }
    }
    let names: Vec<String> = kept.iter().map(|(n, _)| n.clone()).collect();
    let filters: Vec<Arc<LoadedFilter>> = kept.into_iter().map(|(_, f)| f).collect();
    for r in &refused {
        eprintln!("bandpass: {r}");
    }
    if filters.is_empty() {
        anyhow::bail!("no filter could be loaded; nothing to run");
    }
    let mut outputs = Vec::new();
    for name in &names {
        let dir = args.out.join(name);
        // Files of an earlier run beside this one's would read as this
        // run's accepted alerts.
        if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
            anyhow::bail!(
                "{} already holds files (an earlier run's?): remove it, or give another --out",
                dir.display()
            );
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
        let verdicts = dir.join("verdicts.jsonl");
        let verdicts = std::fs::File::create(&verdicts)
            .with_context(|| format!("cannot create {}", verdicts.display()))?;
        outputs.push(Output {
            dir,
            names: HashSet::new(),
            verdicts: std::io::BufWriter::new(verdicts),
        });
    }

    let mut runner = Runner::new(&filters, schemas, host);
    // State is kept per deployment: one component under two names keeps two.
    runner.name_deployments(names.clone());
    let timed = args.memory.attach(&mut runner, memory_config.as_ref())?;
    let watch = FieldWatch::new(&runner, folders);
    let mut replay = Replay {
        runner,
        watch,
        tallies: vec![Tally::default(); filters.len()],
        outputs,
        input_errors: Vec::new(),
        alerts: 0,
    };
    let (files, listing_errors) = input::files(&args.alerts);
    let mut progress = Progress::new(files.len(), !args.quiet && std::io::stderr().is_terminal());
    let started = Instant::now();
    if timed {
        // Filters with state see each object's alerts in time order: every
        // input is read once to sort it, then run (what could not be
        // listed or read comes first).
        for item in super::ordered(&replay.runner, &args.alerts, true)? {
            replay.handle(item, &mut progress)?;
        }
        progress.file_done(replay.alerts);
    } else {
        for item in listing_errors {
            replay.handle(item, &mut progress)?;
        }
        for file in files {
            for item in input::read(file) {
                replay.handle(item, &mut progress)?;
            }
            progress.file_done(replay.alerts);
        }
    }
    let memory = super::memory_report(&replay.runner, &args.memory);
    let Replay {
        tallies,
        input_errors,
        alerts,
        watch,
        ..
    } = replay;
    progress.clear();
    let elapsed = started.elapsed();

    let mut table = Table::new(&[
        "FILTER", "VERSION", "ACCEPTED", "REJECTED", "SKIPPED", "ERRORS", "FUEL p50", "FUEL p99",
        "TIME p50", "TIME p99", "STATUS",
    ]);
    let mut summary = Vec::new();
    let mut any_failed = !refused.is_empty();
    for (i, ((f, t), name)) in filters.iter().zip(&tallies).zip(&names).enumerate() {
        let findings = watch.findings(i, f);
        if !args.json {
            findings.report(f);
        }
        let quarantined = f.health.quarantined();
        any_failed |= t.errors > 0 || quarantined.is_some();
        table.row(vec![
            name.clone(),
            f.manifest.version.clone(),
            thousands(t.accepted),
            thousands(t.rejected),
            thousands(t.skipped),
            thousands(t.errors),
            t.fuel_cell(50.0),
            t.fuel_cell(99.0),
            t.time_cell(50.0),
            t.time_cell(99.0),
            match &quarantined {
                Some(reason) => format!("QUARANTINED: {reason}"),
                None => "ok".into(),
            },
        ]);
        summary.push(serde_json::json!({
            "filter": name,
            "version": f.manifest.version,
            "sha256": f.sha256,
            "output": args.out.join(name).display().to_string(),
            "tally": t,
            "stats": t.stats(),
            "quarantined": quarantined,
            "paths": findings,
        }));
    }
    let doc = serde_json::json!({
        "alerts": alerts,
        "unreadable_inputs": input_errors.len(),
        "seconds": elapsed.as_secs_f64(),
        "filters": summary,
        "refused_filters": refused,
        "input_errors": input_errors,
        "memory": memory,
    });
    let summary_path = args.out.join("summary.json");
    std::fs::write(&summary_path, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", summary_path.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", table.render());
        println!(
            "\n{} alerts in {:.2} s ({}/s); {} unreadable inputs{}; accepted alerts in {}",
            thousands(alerts),
            elapsed.as_secs_f64(),
            thousands((alerts as f64 / elapsed.as_secs_f64().max(1e-9)) as u64),
            input_errors.len(),
            if input_errors.len() > MAX_REPORTED_INPUT_ERRORS {
                format!(" (first {MAX_REPORTED_INPUT_ERRORS} shown; all in summary.json)")
            } else {
                String::new()
            },
            args.out.display()
        );
        super::print_memory_report(&memory);
    }
    Ok(if any_failed || super::memory_failed(&memory) {
        1
    } else if !input_errors.is_empty() {
        3
    } else {
        0
    })
}

/// What a replay runs.
struct Loaded {
    /// Filters by name.
    named: Vec<(String, Arc<LoadedFilter>)>,
    /// What was refused, each a sentence ending in "skipped".
    refused: Vec<String>,
    /// Where wire-format schemas come from.
    schemas: SchemaSource,
    /// Must outlive the run (its epoch ticker is every deadline).
    sandbox: Sandbox,
    /// A serve config's `[memory]`, with `--config`.
    memory: Option<crate::config::MemoryConfig>,
    /// A serve config's `[sky]` and its folder, with `--config`.
    sky: Option<(crate::config::SkyConfig, PathBuf)>,
}

/// `--filter` components: each loaded with `--param`; a second one of
/// the same name is skipped.
fn components(args: &RunArgs) -> anyhow::Result<Loaded> {
    let sandbox = args.engine.sandbox()?;
    let mut named: Vec<(String, Arc<LoadedFilter>)> = Vec::new();
    let mut refused = Vec::new();
    for path in &args.filters {
        match args.engine.load(&sandbox, path) {
            Ok(f) if named.iter().any(|(n, _)| *n == f.name) => {
                refused.push(format!(
                    "filter {}: a filter named '{}' is already loaded (a component runs once \
                     with --filter; give several parameter sets as deployments in a config, \
                     --config); skipped",
                    path.display(),
                    f.name
                ));
            }
            Ok(f) => named.push((f.name.clone(), f)),
            Err(err) => refused.push(format!("{err:#}; skipped")),
        }
    }
    Ok(Loaded {
        named,
        refused,
        schemas: args.engine.schema_source(),
        sandbox,
        memory: None,
        sky: None,
    })
}

/// `--config`: the deployments a `serve` config names, loaded as serve
/// loads them (a filter that does not load stops the replay, as it stops
/// serve).
fn deployments_of(path: &Path, engine: &EngineArgs) -> anyhow::Result<Loaded> {
    let config = Config::load(path)?;
    let dir = super::config_dir(path);
    let mut options = super::engine_options(&config, &dir);
    if engine.no_cache {
        options.cache = None;
    }
    let sandbox = Sandbox::new(options).context("starting the wasm engine")?;
    let deployments = deploy::load_filters(&config, &dir, &sandbox, &[])
        .with_context(|| format!("the filters of {}", path.display()))?;
    deploy::Deployment::name_filters(&deployments);
    let named = deployments
        .into_iter()
        .map(|d| (d.name, d.filter))
        .collect();
    Ok(Loaded {
        named,
        refused: Vec::new(),
        schemas: config.schemas.source(),
        sandbox,
        memory: config.memory_section.clone(),
        sky: Some((config.sky.clone(), dir)),
    })
}

/// The state of one replay: the runner and what it has counted.
struct Replay {
    runner: Runner,
    watch: FieldWatch,
    tallies: Vec<Tally>,
    outputs: Vec<Output>,
    input_errors: Vec<serde_json::Value>,
    alerts: u64,
}

impl Replay {
    /// Decodes one input item, runs every filter, writes what they accept.
    fn handle(&mut self, item: input::Item, progress: &mut Progress) -> anyhow::Result<()> {
        let results = item
            .bytes
            .and_then(|bytes| self.runner.process(&bytes).map_err(|e| e.to_string()));
        let results = match results {
            Ok(r) => r,
            Err(why) => {
                if self.input_errors.len() < MAX_REPORTED_INPUT_ERRORS {
                    progress.clear();
                    eprintln!("bandpass: skipping {}: {why}", item.name);
                }
                self.input_errors
                    .push(serde_json::json!({"input": item.name, "error": why}));
                return Ok(());
            }
        };
        for result in results {
            self.alerts += 1;
            self.watch.observe(&result, self.runner.decoder());
            for (i, e) in result.evaluations.iter().enumerate() {
                self.tallies[i].add(e);
                if let Outcome::Verdict(verdict @ Verdict::Accept { .. }) = &e.outcome {
                    self.outputs[i].write(&result.id, self.alerts, &result.alert.raw, verdict)?;
                }
            }
        }
        Ok(())
    }
}

/// One filter's output folder: each accepted alert's bytes, and
/// `verdicts.jsonl` with one line per accepted alert (its file, ids,
/// score, tags and notes).
struct Output {
    dir: PathBuf,
    names: HashSet<String>,
    verdicts: std::io::BufWriter<std::fs::File>,
}

impl Output {
    /// Writes an accepted alert's original bytes under a unique name, and
    /// its verdict's line (a rejection, which never comes here, has none).
    fn write(
        &mut self,
        id: &AlertId,
        seq: u64,
        raw: &[u8],
        verdict: &Verdict,
    ) -> anyhow::Result<()> {
        let base = id
            .candidate_id
            .clone()
            .or_else(|| id.object_id.clone())
            .filter(|s| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
            .unwrap_or_else(|| format!("alert-{seq}"));
        let name = if self.names.contains(&base) {
            format!("{base}-{seq}")
        } else {
            base
        };
        let path: &Path = &self.dir.join(format!("{name}.avro"));
        std::fs::write(path, raw).with_context(|| format!("cannot write {}", path.display()))?;
        let file = format!("{name}.avro");
        self.names.insert(name);
        let Verdict::Accept {
            score,
            tags,
            annotations,
        } = verdict
        else {
            return Ok(());
        };
        let notes: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let line = serde_json::json!({
            "file": file,
            "object_id": id.object_id,
            "candidate_id": id.candidate_id,
            "score": score,
            "tags": tags,
            "notes": notes,
        });
        writeln!(self.verdicts, "{line}")
            .and_then(|()| self.verdicts.flush())
            .with_context(|| {
                format!("cannot write {}", self.dir.join("verdicts.jsonl").display())
            })?;
        Ok(())
    }
}

/// A one-line progress bar on stderr, redrawn at most 5 times a second.
struct Progress {
    files: usize,
    done: usize,
    enabled: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(files: usize, enabled: bool) -> Progress {
        let now = Instant::now();
        Progress {
            files,
            done: 0,
            enabled,
            started: now,
            last: now,
        }
    }

    fn file_done(&mut self, alerts: u64) {
        self.done += 1;
        if !self.enabled || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let width = 30;
        let filled = (self.done * width) / self.files.max(1);
        let rate = alerts as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r[{}{}] {}/{} files, {} alerts, {}/s ",
            "#".repeat(filled),
            ".".repeat(width - filled),
            self.done,
            self.files,
            thousands(alerts),
            thousands(rate as u64)
        );
        let _ = std::io::stderr().flush();
    }

    fn clear(&mut self) {
        if self.enabled {
            eprint!("\r{}\r", " ".repeat(79));
        }
    }
}
