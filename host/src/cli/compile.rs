//! `bandpass compile` (hidden): compiles one component, read from stdin,
//! into a compiled-code cache, and nothing else.
//!
//! `serve` runs it as a child process for every upload
//! (`admin::compile`): a component built to take minutes to compile, or
//! to crash the compiler, then costs the service a child it kills or
//! loses, not a core for minutes or the whole process. The service's own
//! load of the same bytes afterwards reads the artifact from the cache.
//!
//! Exit status: 0 compiled (or already in the cache); 1 the component is
//! refused, with the reason on stdout; 2 this command could not run.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::sandbox::{CompileCache, Sandbox, SandboxOptions};

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The compiled-code cache to write the artifact into.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: PathBuf,
}

pub fn execute(args: CompileArgs) -> anyhow::Result<u8> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("reading the component from stdin")?;
    // The same engine settings as `serve`'s (the defaults), so that the
    // artifact's compatibility hash is the one `serve` looks for.
    let sandbox = Sandbox::new(SandboxOptions {
        cache: Some(CompileCache::new(args.cache_dir)),
        ..SandboxOptions::default()
    })
    .context("starting the wasm engine")?;
    match sandbox.compile(&bytes) {
        Ok(_) => Ok(0),
        Err(refused) => {
            println!("{refused}");
            Ok(1)
        }
    }
}
