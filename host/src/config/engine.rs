//! `[engine]`: engine-wide settings, and the per-filter limits as the
//! file (and an upload's manifest) writes them.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Invalid, human};
use crate::sandbox::Limits;

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
    /// Where compiled components are cached. With uploads on, defaults to
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
    pub limits: LimitsConfig,
    /// The most any filter may ask for in its own `limits`.
    #[serde(default = "default_max_limits")]
    pub max_limits: LimitsConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: default_workers(),
            quarantine_after: default_quarantine_after(),
            cache_dir: None,
            cache_max_size: default_cache_max_size(),
            limits: LimitsConfig::default(),
            max_limits: default_max_limits(),
        }
    }
}

/// Per-filter budgets, as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Fuel per alert (deterministic CPU budget).
    pub fuel: u64,
    /// Wall-clock deadline per alert.
    #[serde(with = "human::duration")]
    pub deadline: Duration,
    /// Mean wall time per alert over each 64 alerts a worker runs the
    /// filter on; over it the filter is quarantined (a slow filter holds
    /// the worker from every other filter).
    #[serde(with = "human::duration")]
    pub mean_time: Duration,
    /// Linear memory per instance.
    #[serde(with = "human::size")]
    pub memory: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig::of(&Limits::default())
    }
}

impl LimitsConfig {
    /// The budgets of `limits`, as the file writes them.
    pub fn of(limits: &Limits) -> LimitsConfig {
        LimitsConfig {
            fuel: limits.fuel_per_alert,
            deadline: Duration::from_millis(limits.deadline_ms),
            mean_time: Duration::from_millis(limits.mean_ms),
            memory: limits.memory_bytes,
        }
    }

    /// Whether every budget is at most `max`'s.
    pub fn within(&self, max: &LimitsConfig) -> bool {
        self.fuel <= max.fuel
            && self.deadline <= max.deadline
            && self.mean_time <= max.mean_time
            && self.memory <= max.memory
    }

    /// `fuel N, deadline D, mean time T, memory N bytes`, for errors.
    pub fn describe(&self) -> String {
        format!(
            "fuel {}, deadline {:?}, mean time {:?}, memory {} bytes",
            self.fuel, self.deadline, self.mean_time, self.memory
        )
    }

    /// The engine's limits with these budgets.
    pub fn to_limits(self) -> Limits {
        Limits {
            fuel_per_alert: self.fuel,
            deadline_ms: self.deadline.as_millis() as u64,
            mean_ms: self.mean_time.as_millis() as u64,
            memory_bytes: self.memory,
            ..Limits::default()
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

fn default_max_limits() -> LimitsConfig {
    LimitsConfig {
        fuel: 10_000_000_000,
        deadline: Duration::from_secs(1),
        mean_time: Duration::from_secs(1),
        memory: 512 << 20,
    }
}
