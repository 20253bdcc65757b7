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

pub fn execute(args: ServeArgs) -> anyhow::Result<u8> {
    let config = Config::load(&args.config)?;
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
