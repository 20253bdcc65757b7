//! `bandpass serve --config FILE`: the service. Consumes the configured
//! alert topics and produces each filter's accepted alerts to its output
//! topic until SIGINT or SIGTERM, then drains, commits and exits 0.
//!
//! SIGHUP re-reads the config file and replaces the filter set without a
//! restart or a pause: filters added, removed, disabled, or changed
//! (component, parameters, limits, output topic); and the admin API's
//! tokens and groups. A config that does not load, or a filter that is
//! refused, leaves everything as it was. Changes to other sections need
//! a restart, and are logged as such.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::admin::api::Api;
use crate::admin::{Admin, Bounds};
use crate::config::Config;
use crate::deploy::{self, Deployment, Desired};
use crate::fleet::Fleet;
use crate::fleet::canary::Canary;
use crate::metrics::Metrics;
use crate::pipeline;
use crate::sandbox::{CompileCache, Sandbox};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The service's configuration file (TOML; see docs/operators.md).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Check the config and say what would run, without Kafka: every
    /// key, the filters (compiled, their fields against the host's),
    /// the canary alerts and the sky files; exits 0, or 2 with the
    /// first thing wrong.
    #[arg(long)]
    pub check: bool,
}

pub fn execute(args: ServeArgs) -> anyhow::Result<u8> {
    // Signals first: a SIGHUP or SIGTERM while the filters compile must
    // not end the process with the signal's default action.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .context("installing the signal handlers")?;
    }
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())
        .context("installing the SIGHUP handler")?;
    let config = Config::load(&args.config)?;
    let config_dir = super::config_dir(&args.config);
    let mut options = super::engine_options(&config, &config_dir);
    // With uploads, the compiled-code cache is on by default: it is the
    // instance's local cache of the registry's components, so that a
    // restart reads the registry without compiling every upload again.
    let uploads = config.admin.as_ref().is_some_and(|a| a.uploads_enabled());
    if uploads
        && config.engine.cache_dir.is_none()
        && let Some(dir) = CompileCache::default_dir()
    {
        options.cache =
            Some(CompileCache::new(dir).with_max_bytes(config.engine.cache_max_size as u64));
    }
    // Kept until the pipeline has drained: the engine's epoch ticker, the
    // wall-clock deadline of every filter, lives as long as the sandbox.
    let sandbox = Arc::new(Sandbox::new(options).context("starting the wasm engine")?);
    if args.check {
        return check(&args.config, &config, &config_dir, &sandbox);
    }
    // Deleted and replaced filters give their memory back.
    crate::sandbox::release::spawn();
    // Catalogues are memory-mapped once, for every filter set of this
    // process (a change of [sky] needs a restart).
    let sky = Arc::new(
        config
            .sky
            .open(&config_dir, crate::sky::crossmatch::CONFIG_SETTING)?,
    );
    let deployments = deploy::load_filters(&config, &config_dir, &sandbox, &[])?;
    deploy::check_servable(&config, &deployments, &sky)?;
    check_connections(&config)?;
    ensure_outputs(&config, &deployments)?;
    let (sources, updates) = Desired::new(deployments.clone(), sky.clone());
    let sources = Arc::new(Mutex::new(sources));
    let metrics = Arc::new(Metrics::new());
    // Uploads: the fleet registry is read to its end, and its filters
    // loaded, before the first alert, so that no alert misses them.
    let api = match &config.admin {
        Some(admin) if admin.uploads_enabled() => {
            let canary = Canary::load(&config_dir, &admin.uploads)?;
            let registry = Fleet::start(
                &config,
                sandbox.clone(),
                sources.clone(),
                stop.clone(),
                sky.clone(),
                metrics.clone(),
            )?;
            Some(Arc::new(Api::new(
                &config,
                sandbox.clone(),
                registry,
                canary,
                metrics.clone(),
            )))
        }
        _ => None,
    };
    let initial = sources.lock().unwrap().initial();
    // With the groups' maps and watchlists the registry holds.
    let initial_sky = sources.lock().unwrap().sky.clone();
    // Answers until the pipeline has drained (dropped at return).
    let _admin = match &config.admin {
        Some(a) => Some(Admin::start(
            a.listen,
            Bounds::of(a),
            metrics.clone(),
            api.clone(),
        )?),
        None => None,
    };
    let reloader = Reloader {
        path: args.config.clone(),
        dir: config_dir,
        config: config.clone(),
        running: deployments,
        sandbox: sandbox.clone(),
        sky: sky.clone(),
        api,
    };
    let watcher = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("bandpass-reload".into())
            .spawn(move || reloader.run(&hangup, &stop, &sources))
            .context("starting the reload thread")?
    };
    let served = pipeline::serve(
        &config,
        initial,
        stop.clone(),
        updates,
        metrics,
        initial_sky,
    );
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    drop(sandbox);
    served?;
    Ok(0)
}

/// Connects to the input cluster (the input topics and the group must be
/// the principal's to read) and, when it is another, to the output
/// cluster: a password, certificate or ACL that is wrong stops the start
/// with what to fix, instead of librdkafka retrying it for ever.
fn check_connections(config: &Config) -> anyhow::Result<()> {
    use crate::kafka::{Cluster, check_connection};
    check_connection(
        config,
        Cluster::Input,
        &config.input.topics,
        Some(&config.input.group),
    )?;
    if config.output.kafka.is_some() {
        check_connection(config, Cluster::Output, &[], None)?;
    }
    Ok(())
}

/// Creates the output topics of `deployments` and the dead-letter topic
/// where they do not exist (`[output]`).
fn ensure_outputs(config: &Config, deployments: &[Deployment]) -> anyhow::Result<()> {
    let topics: Vec<&str> = deployments
        .iter()
        .map(|d| d.output_topic.as_str())
        .chain([config.dead_letter_topic.as_str()])
        .collect();
    crate::kafka::ensure_outputs(config, &topics)?;
    Ok(())
}

/// `serve --check`: what [`execute`] loads before it connects to Kafka,
/// loaded and described; nothing is started.
fn check(
    path: &std::path::Path,
    config: &Config,
    config_dir: &std::path::Path,
    sandbox: &Sandbox,
) -> anyhow::Result<u8> {
    let sky = config
        .sky
        .open(config_dir, crate::sky::crossmatch::CONFIG_SETTING)?;
    let deployments = deploy::load_filters(config, config_dir, sandbox, &[])?;
    deploy::check_servable(config, &deployments, &sky)?;
    let canary = match &config.admin {
        Some(admin) if admin.uploads_enabled() => Some(Canary::load(config_dir, &admin.uploads)?),
        _ => None,
    };
    let shown = |t: &str| crate::text::shown(t, 200).into_owned();
    println!("{}: ready to serve (checked without Kafka)", path.display());
    println!(
        "input: {} as consumer group {} from brokers {}",
        config.input.topics.join(", "),
        shown(&config.input.group),
        config.kafka.brokers.join(", ")
    );
    println!("filters ({}):", deployments.len());
    for d in &deployments {
        let params: Vec<String> = d
            .filter
            .params()
            .iter()
            .map(|(k, v)| format!("{}={}", shown(k), shown(v)))
            .collect();
        println!(
            "  {} {} ({}) -> {}{}",
            d.name,
            shown(&d.filter.manifest.version),
            shown(&d.filter.manifest.survey),
            d.output_topic,
            if params.is_empty() {
                String::new()
            } else {
                format!("  params {}", params.join(" "))
            }
        );
    }
    // Those the config keeps but does not run: said, so that a set
    // switched off is not mistaken for one forgotten.
    let disabled: Vec<String> = config
        .filters
        .iter()
        .filter(|f| f.disabled)
        .map(|f| match &f.name {
            Some(name) => shown(name),
            None => shown(&f.path.display().to_string()),
        })
        .collect();
    if !disabled.is_empty() {
        println!(
            "disabled ({}, not loaded): {}",
            disabled.len(),
            disabled.join(", ")
        );
    }
    match (&config.admin, canary) {
        (Some(admin), Some(canary)) => println!(
            "uploads: on, groups {}; registry topic {}; {} canary alerts",
            if admin.groups.is_empty() {
                "none (the operator's token only)".to_string()
            } else {
                admin
                    .groups
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            admin.uploads.registry_topic,
            canary.len()
        ),
        _ => println!("uploads: off"),
    }
    let names = |it: &mut dyn Iterator<Item = &str>| {
        let all: Vec<&str> = it.collect();
        if all.is_empty() {
            "none".to_string()
        } else {
            all.join(", ")
        }
    };
    println!(
        "sky: catalogues {}; maps {}; watchlists {}",
        names(&mut sky.catalogs().map(|(n, _)| n)),
        names(&mut sky.maps(None).map(|(n, _)| n)),
        names(&mut sky.watchlists(None).map(|(n, _)| n))
    );
    Ok(0)
}

/// Re-reads the config on SIGHUP and hands the new filter set to the
/// pipeline. Loading a changed filter (compiling it) happens here, off
/// the consuming thread.
struct Reloader {
    path: PathBuf,
    dir: PathBuf,
    config: Config,
    running: Vec<Deployment>,
    sandbox: Arc<Sandbox>,
    /// The catalogues opened at start (`[sky]` changes need a restart).
    sky: Arc<crate::sky::Sky>,
    /// The filter API, whose tokens and groups a reload replaces.
    api: Option<Arc<Api>>,
}

impl Reloader {
    fn run(mut self, hangup: &AtomicBool, stop: &AtomicBool, sources: &Mutex<Desired>) {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if !hangup.swap(false, Ordering::Relaxed) {
                continue;
            }
            match self.reload() {
                Ok(deployments) => {
                    self.running = deployments.clone();
                    sources.lock().unwrap().set_config(deployments);
                }
                Err(error) => tracing::error!(
                    config = %self.path.display(),
                    error = format!("{error:#}"),
                    "SIGHUP: the config was not reloaded; the running filters stay"
                ),
            }
        }
    }

    fn reload(&mut self) -> anyhow::Result<Vec<Deployment>> {
        let config = Config::load(&self.path)?;
        let deployments = deploy::load_filters(&config, &self.dir, &self.sandbox, &self.running)?;
        deploy::check_servable(&config, &deployments, &self.sky)?;
        // With the Kafka settings and [output] serve started with (their
        // changes need a restart).
        ensure_outputs(&self.config, &deployments)?;
        let unapplied = restart_needed(&self.config, &config);
        if let Some(api) = &self.api {
            api.reconfigure(&config);
        }
        if !unapplied.is_empty() {
            tracing::warn!(
                sections = %unapplied.join(", "),
                "SIGHUP: these settings changed and apply only after a restart"
            );
        }
        tracing::info!(config = %self.path.display(), filters = deployments.len(), "SIGHUP: config reloaded");
        Ok(deployments)
    }
}

/// The sections of `new` that differ from `old` and that SIGHUP does not
/// apply (everything but the filters).
fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut out = Vec::new();
    if differs(&old.kafka, &new.kafka) {
        out.push("kafka");
    }
    if differs(&old.input, &new.input) {
        out.push("input");
    }
    if differs(&old.schemas, &new.schemas) {
        out.push("schemas");
    }
    // Default limits apply to the filters a reload loads; the rest of the
    // engine section (workers, cache, quarantine) does not.
    let mut old_engine = old.engine.clone();
    old_engine.limits = new.engine.limits;
    if differs(&old_engine, &new.engine) {
        out.push("engine (except limits)");
    }
    if differs(&old.dead_letter_topic, &new.dead_letter_topic) {
        out.push("dead_letter_topic");
    }
    if differs(&old.delivery, &new.delivery) {
        out.push("delivery");
    }
    if differs(&old.sky, &new.sky) {
        out.push("sky");
    }
    if differs(&old.output, &new.output) {
        out.push("output");
    }
    // Tokens and groups apply; where it listens and how uploads are
    // checked and shared do not.
    let fixed = |c: &Config| {
        c.admin
            .as_ref()
            .map(|a| (a.listen, a.uploads_enabled(), format!("{:?}", a.uploads)))
    };
    if fixed(old) != fixed(new) {
        out.push("admin (except tokens and groups)");
    }
    out
}
