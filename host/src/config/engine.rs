//! `[engine]`: engine-wide settings, and the per-filter limits as the
//! file (and an upload's manifest) writes them.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Invalid, human};
use crate::sandbox::Budget;

/// Engine-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Threads running filters (they are CPU-bound); defaults to the
    /// number of cores. One partition's alerts always run on the same
    /// worker, so more workers than input partitions leaves some idle.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Consecutive failed alerts after which a filter is quarantined.
    #[serde(default = "default_quarantine_after")]
    pub quarantine_after: u32,
    /// Where compiled components are cached (a relative path is from the
    /// config file's folder, as filter paths are). With uploads on, defaults to
    /// `$BANDPASS_CACHE_DIR`, else `~/.cache/bandpass` (a restart then
    /// reads the registry without compiling every upload again).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Most the compiled components in the cache may take together; past
    /// it the least recently used are removed.
    #[serde(default = "default_cache_max_size", with = "human::size")]
    pub cache_max_size: usize,
    /// Default limits of every filter.
    #[serde(default)]
    pub limits: Budget,
    /// The most any filter may ask for in its own `limits`.
    #[serde(default = "default_max_limits")]
    pub max_limits: Budget,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: default_workers(),
            quarantine_after: default_quarantine_after(),
            cache_dir: None,
            cache_max_size: default_cache_max_size(),
            limits: Budget::default(),
            max_limits: default_max_limits(),
        }
    }
}

impl EngineConfig {
    pub(super) fn check(&self) -> Result<(), Invalid> {
        if self.workers == 0 {
            return Err(Invalid::new("engine.workers", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// One per core.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn default_quarantine_after() -> u32 {
    5
}

fn default_cache_max_size() -> usize {
    crate::sandbox::DEFAULT_CACHE_BYTES as usize
}

fn default_max_limits() -> Budget {
    Budget {
        fuel: 10_000_000_000,
        deadline: Duration::from_secs(1),
        mean_time: Duration::from_secs(1),
        memory: 512 << 20,
        state: crate::sandbox::Limits::MAX_STATE_BYTES,
    }
}
