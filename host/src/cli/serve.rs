//! `bandpass serve --config FILE`: the service. Consumes the configured
//! alert topics and produces each filter's accepted alerts to its output
//! topic until SIGINT or SIGTERM, then drains, commits and exits 0.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::pipeline;
use crate::sandbox::{CompileCache, Sandbox, SandboxOptions};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The service's configuration file (TOML; see docs/operators.md).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Settings the file accepts but this version does not implement yet:
/// refused, rather than silently ignored.
fn refuse_unfinished(config: &Config) -> anyhow::Result<()> {
    use crate::config::{Delivery, StartPosition};
    if config.delivery == Delivery::ExactlyOnce {
        anyhow::bail!("delivery = \"exactly-once\" is not implemented yet: use \"at-least-once\"");
    }
    if config.schemas.registry_url.is_some() {
        anyhow::bail!("schemas.registry_url is not implemented yet: use schemas.dir");
    }
    if let StartPosition::TimestampMs(_) = config.input.start {
        anyhow::bail!(
            "input.start = {{ timestamp_ms }} is not implemented yet: use earliest or latest"
        );
    }
    if config.engine.workers > 1 {
        tracing::warn!(
            workers = config.engine.workers,
            "engine.workers: this version runs filters on one thread"
        );
    }
    Ok(())
}

pub fn execute(args: ServeArgs) -> anyhow::Result<u8> {
    let config = Config::load(&args.config)?;
    refuse_unfinished(&config).with_context(|| format!("config file {}", args.config.display()))?;
    let config_dir = args
        .config
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut options = SandboxOptions {
        quarantine_after: config.engine.quarantine_after,
        ..SandboxOptions::default()
    };
    if let Some(dir) = &config.engine.cache_dir {
        options.cache = Some(CompileCache::new(dir.clone()));
    }
    let sandbox = Sandbox::new(options).context("starting the wasm engine")?;
    let deployments = pipeline::load_filters(&config, &config_dir, &sandbox)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .context("installing the signal handlers")?;
    }
    pipeline::serve(&config, deployments, stop)?;
    Ok(0)
}
