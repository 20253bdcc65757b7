//! The `bandpass` commands. `main.rs` parses these arguments, starts
//! tracing and prints any error; each command prints its own report and
//! returns the process's exit status.
//!
//! Exit statuses: 0 all good; 1 a filter failed on some alert (or was
//! quarantined, or could not be loaded in `run`); 2 the command could not
//! run at all (bad arguments, a filter that does not load in `test`);
//! 3 some inputs could not be read or decoded (and no filter failed).

mod build;
mod catalog;
mod compile;
mod consume;
mod demo;
mod explain;
mod fields;
pub mod format;
mod inspect;
mod map;
mod new;
mod offsets;
mod paths;
mod produce;
mod remote;
mod run;
mod serve;
mod test;
mod token;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::decode::{PathCheck, SchemaSource, Vocabulary};
use crate::sandbox::{Budget, CompileCache, Limits, LoadedFilter, Sandbox, SandboxOptions};

/// Runs untrusted WebAssembly filters over astronomical alert streams.
#[derive(Debug, Parser)]
#[command(name = "bandpass", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter for the host's own diagnostics (e.g. `debug`,
    /// `bandpass=trace`); also read from `RUST_LOG`.
    #[arg(long, global = true, default_value = "warn")]
    pub log: String,
    /// How log lines are written to stderr: `text` for people, `json`
    /// (one object per line) for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The format of the host's own log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one filter on alert files and show its verdict on each: the
    /// filter author's loop, on the production engine.
    Test(test::TestArgs),
    /// Batch replay: run filters over alert files or archives and write
    /// each filter's accepted alerts to its own folder.
    Run(run::RunArgs),
    /// Validate a filter component and show its contract, fields and
    /// imports.
    Inspect(inspect::InspectArgs),
    /// The embedded demo: synthetic ZTF-shaped alerts through the sample
    /// filters, no data or services needed.
    Demo(demo::DemoArgs),
    /// List the field paths (and Avro types) of an alert's schema: what a
    /// filter can declare.
    Fields(fields::FieldsArgs),
    /// The service: consume alert topics from Kafka, filter, produce.
    Serve(serve::ServeArgs),
    /// Start a filter project (Rust, Python or JavaScript) that builds
    /// and runs as made.
    New(new::NewArgs),
    /// Build a filter project made by `bandpass new` into NAME.wasm,
    /// installing what the language's build needs first.
    Build(build::BuildArgs),
    /// Make a token for the admin API, and the hash the config holds.
    Token(token::TokenArgs),
    /// Upload a filter to a running `bandpass serve` (its admin API),
    /// with your group's token from $BANDPASS_TOKEN.
    Upload(remote::UploadArgs),
    /// Your group's filters on a running `bandpass serve`: state and
    /// counters, or one filter with its log lines.
    Filters(remote::FiltersArgs),
    /// Alert files, folders or archives onto a topic, one message per
    /// alert, keyed by object (the serve config's Kafka settings).
    Produce(produce::ProduceArgs),
    /// A topic's alerts, a line each with their bandpass headers, or to
    /// files (reads without a consumer group).
    Consume(consume::ConsumeArgs),
    /// A consumer group's committed offsets and lag per input partition
    /// (the serve config's Kafka settings).
    Lag(offsets::LagArgs),
    /// Moves a stopped consumer group's offsets to the earliest, the
    /// latest, or a time: a replay of a night.
    Offsets(offsets::OffsetsArgs),
    /// Catalogues for cross-matches: build one from CSV or Gaia's binary
    /// file, see what it holds, and try a cone.
    Catalog(catalog::CatalogArgs),
    /// Sky maps (survey footprints as MOCs, gravitational-wave
    /// localisations): what one holds, and what it says at a position.
    Map(map::MapArgs),
    /// Compile one component from stdin into a cache: the child process
    /// `serve` checks each upload's compile in (internal).
    #[command(hide = true)]
    Compile(compile::CompileArgs),
}

/// Runs a parsed command line; returns the exit status.
pub fn execute(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Test(args) => test::execute(args),
        Command::Run(args) => run::execute(args),
        Command::Inspect(args) => inspect::execute(args),
        Command::Demo(args) => demo::execute(args),
        Command::Fields(args) => fields::execute(args),
        Command::Serve(args) => serve::execute(args),
        Command::New(args) => new::execute(args),
        Command::Build(args) => build::execute(args),
        Command::Token(args) => token::execute(args),
        Command::Upload(args) => remote::execute(args),
        Command::Filters(args) => remote::list(args),
        Command::Produce(args) => produce::execute(args),
        Command::Consume(args) => consume::execute(args),
        Command::Lag(args) => offsets::lag(args),
        Command::Offsets(args) => offsets::offsets(args),
        Command::Catalog(args) => catalog::execute(args),
        Command::Map(args) => map::execute(args),
        Command::Compile(args) => compile::execute(args),
    }
}

/// A filter's budgets as flags; those not given keep the defaults.
#[derive(Debug, Clone, Args)]
pub struct BudgetArgs {
    /// Fuel budget per alert (deterministic CPU budget).
    #[arg(long, value_name = "UNITS")]
    pub fuel: Option<u64>,
    /// Wall-clock deadline per alert, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub deadline_ms: Option<u64>,
    /// Memory cap per filter instance, in MiB.
    #[arg(long, value_name = "MIB")]
    pub memory_mib: Option<usize>,
    /// Most bytes of state a filter may keep per object (default 4096, at
    /// most 65536): a filter declaring more is refused.
    #[arg(long, value_name = "BYTES")]
    pub max_state_bytes: Option<usize>,
}

impl BudgetArgs {
    /// The default budget with the flags given applied.
    fn budget(&self) -> Budget {
        let mut budget = Budget::default();
        if let Some(fuel) = self.fuel {
            budget.fuel = fuel;
        }
        if let Some(ms) = self.deadline_ms {
            budget.deadline = std::time::Duration::from_millis(ms);
        }
        if let Some(mib) = self.memory_mib {
            budget.memory = mib.saturating_mul(1 << 20);
        }
        if let Some(bytes) = self.max_state_bytes {
            budget.state = bytes;
        }
        budget
    }
}

/// The catalogues `test` and `run` cross-match with.
#[derive(Debug, Clone, Args)]
pub struct SkyArgs {
    /// A catalogue filters may cross-match with, as NAME=FILE (a file
    /// `bandpass catalog build` made; NAME is what a filter's manifest
    /// asks for, such as `gaia`). Repeat for another. With `run
    /// --config`, added to the config's [[sky.catalog]].
    #[arg(long = "catalog", value_name = "NAME=FILE")]
    pub catalogs: Vec<String>,
    /// A sky map filters may read (`map.NAME.inside`, and for a
    /// probability map `.prob` and `.credible`), as NAME=FILE: an IVOA
    /// MOC (FITS, JSON or ASCII) or a multi-order HEALPix probability map
    /// (FITS, as gravitational-wave pipelines publish). Repeat for
    /// another. With `run --config`, added to the config's [[sky.map]].
    #[arg(long = "map", value_name = "NAME=FILE")]
    pub maps: Vec<String>,
    /// A watchlist filters may read (`watch.NAME.name`, `.dist`, `.ra`,
    /// `.dec`: the targets whose own radius holds the alert), as
    /// NAME=FILE: CSV with a header `name,ra,dec,radius_arcsec`, or a
    /// JSON array of objects with those keys. Repeat for another. With
    /// `run --config`, added to the config's [[sky.watchlist]].
    #[arg(long = "watchlist", value_name = "NAME=FILE")]
    pub watchlists: Vec<String>,
}

impl SkyArgs {
    /// The catalogues: a serve config's `[sky]` (`run --config`; relative
    /// files from `dir`), then each `--catalog`; the caps are the
    /// config's, else the defaults.
    pub(crate) fn sky(
        &self,
        config: Option<(&crate::config::SkyConfig, &Path)>,
    ) -> anyhow::Result<std::sync::Arc<crate::sky::Sky>> {
        use crate::sky::crossmatch::{BOTH_SETTING, FLAG_SETTING};
        let mut sky = match config {
            Some((c, dir)) => c.open(dir, BOTH_SETTING)?,
            None => crate::sky::Sky::new(Default::default(), FLAG_SETTING),
        };
        let named = |flag: &str, option: &str, example: &str| {
            let shown = crate::text::shown(flag, 120).into_owned();
            match flag.split_once('=') {
                None => Err(anyhow::anyhow!(
                    "--{option} '{shown}': write NAME=FILE, as '{example}'"
                )),
                Some((_, "")) => Err(anyhow::anyhow!(
                    "--{option} '{shown}': give the file after '='"
                )),
                Some((name, file)) => Ok((name.to_string(), PathBuf::from(file), shown)),
            }
        };
        for flag in &self.catalogs {
            let (name, file, shown) = named(flag, "catalog", "gaia=catalogs/gaia.bpcat")?;
            sky.add(&name, &file)
                .map_err(|e| anyhow::anyhow!("--catalog '{shown}': {e:#}"))?;
        }
        for flag in &self.maps {
            let (name, file, shown) = named(flag, "map", "gw=S250206dm.multiorder.fits")?;
            sky.add_map(&name, &file)
                .map_err(|e| anyhow::anyhow!("--map '{shown}': {e:#}"))?;
        }
        for flag in &self.watchlists {
            let (name, file, shown) = named(flag, "watchlist", "targets=targets.csv")?;
            sky.add_watchlist(&name, &file)
                .map_err(|e| anyhow::anyhow!("--watchlist '{shown}': {e:#}"))?;
        }
        Ok(std::sync::Arc::new(sky))
    }
}

/// Where `test` and `run` keep what filters remember per object.
#[derive(Debug, Clone, Args)]
pub struct MemoryArgs {
    /// Keep what filters remember per object in DIR, and start from what
    /// it holds: a later run continues where this one stopped. Without it,
    /// a temporary folder, removed at the end.
    #[arg(long = "state", value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// How long an object's state lives without an alert of it, in alert
    /// time (the alerts' own dates): `365d`, `30d`, `12h` [default: 365d,
    /// or the config's memory.state_ttl with `run --config`].
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_age)]
    pub state_ttl: Option<std::time::Duration>,
    /// Points of an object's light curve older than this before its
    /// latest are dropped [default: 365d, or memory.history_max_age].
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_age)]
    pub history_max_age: Option<std::time::Duration>,
    /// At most this many points of an object's light curve are kept
    /// [default: 4000, or memory.history_max_points; at most 100000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub history_max_points: Option<u32>,
    /// The light-curve columns kept for a survey instead of the defaults,
    /// as a serve config's memory.history.SURVEY.columns:
    /// `ztf=jd,fid,candid,magpsf,fwhm:real` (a column the host does not
    /// know the type of says it: real, integer or text). Repeat for
    /// another survey.
    #[arg(long, value_name = "SURVEY=COLUMNS")]
    pub history_columns: Vec<String>,
}

impl MemoryArgs {
    /// The history columns kept: the defaults, then a serve config's
    /// (`run --config`), then each `--history-columns`.
    pub(crate) fn kept(
        &self,
        config: Option<&crate::config::MemoryConfig>,
    ) -> anyhow::Result<std::sync::Arc<crate::memory::history::Kept>> {
        let mut columns: std::collections::BTreeMap<String, Vec<String>> = config
            .map(|c| {
                c.history
                    .iter()
                    .map(|(s, h)| (s.clone(), h.columns.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for flag in &self.history_columns {
            let Some((survey, list)) = flag.split_once('=') else {
                anyhow::bail!(
                    "--history-columns '{}': write SURVEY=COLUMNS, as \
                     'ztf=jd,fid,candid,magpsf,fwhm:real'",
                    crate::text::shown(flag, 80)
                );
            };
            columns.insert(
                survey.to_string(),
                list.split(',').map(|c| c.trim().to_string()).collect(),
            );
        }
        let kept = crate::memory::history::Kept::with_columns(
            columns.iter().map(|(s, c)| (s.as_str(), c.as_slice())),
            crate::memory::history::FLAG_SETTING,
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        Ok(std::sync::Arc::new(kept))
    }

    /// Gives `runner` a store when one of its filters keeps state (no
    /// store, no folder otherwise), and says whether it did: the caller
    /// then feeds alerts in time order ([`ordered`]).
    /// The expiry and caps are a serve config's (`run --config`), else
    /// the defaults, each replaced by its flag when given.
    pub(crate) fn attach(
        &self,
        runner: &mut crate::runner::Runner,
        config: Option<&crate::config::MemoryConfig>,
    ) -> anyhow::Result<bool> {
        if !runner.remembers() {
            return Ok(false);
        }
        let mut memory = match &self.state {
            Some(dir) => crate::memory::Memory::open(dir)?,
            None => crate::memory::Memory::temporary()?,
        };
        let mut settings = config.cloned().unwrap_or_default();
        if let Some(ttl) = self.state_ttl {
            settings.state_ttl = ttl;
        }
        if let Some(age) = self.history_max_age {
            settings.history_max_age = age;
        }
        if let Some(points) = self.history_max_points {
            settings.history_max_points = points as usize;
        }
        settings.apply(&mut memory);
        runner.remember(memory);
        Ok(true)
    }
}

/// The input items under `paths`: in alert time order when `timed` (some
/// filter keeps state, and the order of an object's alerts then matters),
/// else as listed. Sorting reads every input once first (its listing
/// errors and unreadable files come first).
pub(crate) fn ordered<'a>(
    runner: &crate::runner::Runner,
    paths: &'a [PathBuf],
    timed: bool,
) -> anyhow::Result<Box<dyn Iterator<Item = crate::input::Item> + 'a>> {
    if !timed {
        return Ok(Box::new(crate::input::items(paths)));
    }
    let mut order = crate::memory::TimeOrder::new()?;
    for item in crate::input::items(paths) {
        let time = item.bytes.as_ref().ok().and_then(|b| runner.time_of(b));
        order.push(time, item)?;
    }
    Ok(Box::new(order.into_items()))
}

/// What the store holds after a run, for `test` and `run`: `null` when no
/// filter keeps state.
pub(crate) fn memory_report(
    runner: &crate::runner::Runner,
    args: &MemoryArgs,
) -> serde_json::Value {
    let Some(memory) = runner.memory() else {
        return serde_json::Value::Null;
    };
    if let Err(e) = memory.flush() {
        tracing::warn!("{e:#}");
    }
    let (failures, first) = memory.failures();
    serde_json::json!({
        "folder": args.state.as_ref().map(|d| d.display().to_string()),
        "objects": memory.count_objects().unwrap_or_else(|e| {
            tracing::warn!("{e:#}");
            0
        }),
        "failures": failures,
        "first_failure": first,
        "alerts_without_object": memory.unkeyed,
        "alerts_out_of_order": memory.out_of_order,
    })
}

/// Whether the store failed during the run ([`memory_report`]): `test`
/// and `run` then exit 1.
pub(crate) fn memory_failed(report: &serde_json::Value) -> bool {
    report["failures"].as_u64().is_some_and(|n| n > 0)
}

/// The lines [`memory_report`] prints under a run's summary.
pub(crate) fn print_memory_report(report: &serde_json::Value) {
    if report.is_null() {
        return;
    }
    let objects = report["objects"].as_u64().unwrap_or(0);
    match report["folder"].as_str() {
        Some(dir) => println!(
            "state: {objects} objects kept in {} (a later --state run continues from it)",
            crate::text::shown(dir, 1024)
        ),
        None => println!(
            "state: {objects} objects remembered, in alert time order, then dropped \
             (--state DIR keeps them)"
        ),
    }
    if let Some(n) = report["alerts_out_of_order"].as_u64().filter(|n| *n > 0) {
        println!(
            "WARNING: {n} alerts were older than their object's latest remembered alert (a state \
             folder given an earlier night after a later one, or the same alerts twice): their \
             states and light curves differ from one run over all the alerts in time order"
        );
    }
    if let Some(n) = report["alerts_without_object"].as_u64().filter(|n| *n > 0) {
        println!(
            "note: {n} alerts had a blank object id or one over {} bytes: no state, and only \
             their packet's history",
            crate::memory::MAX_OBJECT_ID_BYTES
        );
    }
    if let Some(n) = report["failures"].as_u64().filter(|n| *n > 0) {
        println!(
            "ERROR: {n} reads or writes of the state store failed, the first: {}; the alerts \
             after it were decided without what was lost, so their verdicts may differ from a \
             run with a working store (exit status 1)",
            report["first_failure"].as_str().unwrap_or("?")
        );
    }
}

/// Options shared by every command that loads filters.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// Consecutive failed alerts after which a filter is quarantined.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub quarantine_after: u32,
    /// A filter parameter passed to `init`, as KEY=VALUE (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Directory of Avro schemas for Confluent wire-format alerts:
    /// `<id>.avsc` files, or Rubin's `vM_m/` layout.
    #[arg(long, value_name = "DIR")]
    pub schemas: Option<PathBuf>,
    /// A folder of a survey's alert schemas, every version (such as the
    /// survey's `schema` folder): each declared field path is checked
    /// against every version before alerts run, and a path in none is
    /// refused with the nearest real ones (repeatable; without it, the
    /// folders in `$BANDPASS_SCHEMAS_FROM`, separated by `:`).
    #[arg(long = "schemas-from", value_name = "DIR")]
    pub schemas_from: Vec<PathBuf>,
    /// Compile components every time instead of using the cache in
    /// `$BANDPASS_CACHE_DIR` (default `~/.cache/bandpass`).
    #[arg(long)]
    pub no_cache: bool,
}

pub(crate) fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("parameter '{s}' is not KEY=VALUE"))
}

impl EngineArgs {
    fn limits(&self) -> Limits {
        self.budget.budget().to_limits()
    }

    fn sandbox(&self) -> anyhow::Result<Sandbox> {
        let mut options = SandboxOptions {
            quarantine_after: self.quarantine_after.max(1),
            ..SandboxOptions::default()
        };
        if self.no_cache {
            options.cache = None;
        }
        Sandbox::new(options).context("starting the wasm engine")
    }

    fn schema_source(&self) -> SchemaSource {
        self.schemas
            .clone()
            .map(SchemaSource::Dir)
            .unwrap_or_default()
    }

    /// Every schema version under `--schemas-from` (and `--schemas`, when
    /// it holds versioned alert schemas).
    fn vocabulary(&self) -> anyhow::Result<Vocabulary> {
        let mut vocabulary = Vocabulary::new();
        // The flag, else the variable (whose empty entries, as in PATH,
        // mean nothing).
        let (folders, origin) = if self.schemas_from.is_empty() {
            let listed = std::env::var_os("BANDPASS_SCHEMAS_FROM").unwrap_or_default();
            let folders: Vec<PathBuf> = std::env::split_paths(&listed)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
            (folders, "$BANDPASS_SCHEMAS_FROM")
        } else {
            (self.schemas_from.clone(), "--schemas-from")
        };
        for dir in &folders {
            vocabulary
                .add_dir(dir)
                .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        }
        for problem in &vocabulary.problems {
            eprintln!("warning: {problem}");
        }
        if let Some(dir) = &self.schemas {
            // Wire-format schema files need not carry a version.
            let _ = vocabulary.add_dir(dir);
        }
        Ok(vocabulary)
    }

    /// Checks each filter's declared paths against the schema folders
    /// given, printing what it finds to stderr: the folders' versions,
    /// and the check of each filter (a filter with a refused path must
    /// not run).
    fn check_paths(
        &self,
        filters: &[Arc<LoadedFilter>],
        host: &crate::runner::HostFields,
    ) -> anyhow::Result<(Vocabulary, Vec<PathCheck>)> {
        let vocabulary = self.vocabulary()?;
        let checks = filters
            .iter()
            .map(|f| {
                let mut check = vocabulary.check(&f.manifest.survey, &f.fields);
                // `history.*` and `xmatch.*` paths name what the host
                // computes, not a schema's.
                for (field, why) in host.refusals(f) {
                    check.refused.push(why);
                    check.refused_paths.push(field);
                }
                paths::report(&f.manifest.name, &check);
                check
            })
            .collect();
        Ok((vocabulary, checks))
    }

    /// Reads and loads one filter, naming the file in any error.
    fn load(&self, sandbox: &Sandbox, path: &Path) -> anyhow::Result<Arc<LoadedFilter>> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read filter {}", path.display()))?;
        sandbox
            .load(&bytes, self.params.clone(), self.limits())
            .with_context(|| format!("filter {} refused", path.display()))
    }
}

/// The folder a config's relative paths start from: the config file's.
fn config_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The engine options a config sets for `serve` and its replay (`run
/// --config`): its quarantine rule and its compiled-code cache
/// (`engine.cache_dir`, relative to the config's folder `config_dir` as
/// filter paths are, else the default one; within
/// `engine.cache_max_size`).
fn engine_options(config: &crate::config::Config, config_dir: &Path) -> SandboxOptions {
    let mut options = SandboxOptions {
        quarantine_after: config.engine.quarantine_after,
        ..SandboxOptions::default()
    };
    if let Some(dir) = &config.engine.cache_dir {
        options.cache = Some(CompileCache::new(config_dir.join(dir)));
    }
    options.cache = options
        .cache
        .map(|c| c.with_max_bytes(config.engine.cache_max_size as u64));
    options
}

/// The default cache location, for messages.
pub fn cache_dir() -> Option<PathBuf> {
    CompileCache::default_dir()
}
