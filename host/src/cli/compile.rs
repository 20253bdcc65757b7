//! `bandpass compile` (hidden): compiles one component, read from stdin,
//! into a compiled-code cache, and nothing else.
//!
//! `serve` runs it as a child process for every upload
//! (`sandbox::compile`): a component built to take minutes to compile, or
//! to crash the compiler, then costs the service a child it kills or
//! loses, not a core for minutes or the whole process. The service's own
//! load of the same bytes afterwards reads the artifact from the cache.
//!
//! With `--memory-mib` it caps its own memory: a component made to make
//! the compiler allocate without end aborts this process ("memory
//! allocation of N bytes failed"), which the service reports as such.
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
    /// The cache's bound, in bytes (the service's
    /// `engine.cache_max_size`): writing past it evicts.
    #[arg(long, value_name = "BYTES", default_value_t = crate::sandbox::DEFAULT_CACHE_BYTES)]
    pub cache_max_bytes: u64,
    /// The most memory this process may take, in MiB: an allocation past
    /// it aborts the process.
    #[arg(long, value_name = "MIB")]
    pub memory_mib: Option<u64>,
}

pub fn execute(args: CompileArgs) -> anyhow::Result<u8> {
    if let Some(mib) = args.memory_mib {
        bound_memory(mib << 20).context("limiting the compile's memory")?;
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .context("reading the component from stdin")?;
    // The same engine settings as `serve`'s (the defaults), so that the
    // artifact's compatibility hash is the one `serve` looks for.
    let sandbox = Sandbox::new(SandboxOptions {
        cache: Some(CompileCache::new(args.cache_dir).with_max_bytes(args.cache_max_bytes)),
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

/// Caps this process's data (heap and private mappings, `RLIMIT_DATA`)
/// at `bytes`, and makes it the kernel's first choice should the machine
/// run out of memory: a compile, not the service, is what goes.
fn bound_memory(bytes: u64) -> std::io::Result<()> {
    // Raising one's own score needs no privilege; best effort.
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit reads the struct it is given and changes only
    // this process's limits.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
