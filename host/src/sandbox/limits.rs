//! A filter's limits ([`Limits`]) and the budgets people set of them
//! ([`Budget`]), and the `ResourceLimiter` that enforces
//! the memory and table caps and remembers why it refused a growth (so
//! that the resulting trap can be classified as a memory failure).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units as human;

/// The hard budgets one filter runs under. Defaults suit a compiled
/// (Rust) filter; interpreted guests (Python, JavaScript) need more fuel
/// and memory, set per filter within the operator's maxima.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// WebAssembly fuel per alert (about one unit per instruction; a tight
    /// loop burns roughly 26 billion a second here). Deterministic: the
    /// same filter on the same alert uses the same fuel on every machine.
    pub fuel_per_alert: u64,
    /// Wall-clock backstop per alert, in milliseconds (epoch interruption,
    /// 1 ms resolution).
    pub deadline_ms: u64,
    /// Mean wall time per alert, in milliseconds, over each run of 64
    /// alerts a worker gives the filter: a filter inside its deadline on
    /// every alert can still hold a worker, and so every other filter,
    /// for most of its time. Over it, the filter is quarantined.
    pub mean_ms: u64,
    /// Fuel for `init`, which may build lookup tables.
    pub fuel_for_init: u64,
    /// Linear memory cap per filter instance (all its memories together),
    /// in bytes.
    pub memory_bytes: usize,
    /// Cap on table elements (all its tables together).
    pub table_elements: usize,
    /// Cap on core instances, tables and memories per store.
    pub instances: usize,
    /// Cap on host resource handles (WASI streams, pollables, ...) a
    /// store may hold at once.
    pub handles: usize,
    /// Most tags a verdict may carry.
    pub max_tags: usize,
    /// Longest tag, in bytes.
    pub max_tag_bytes: usize,
    /// Most annotations a verdict may carry.
    pub max_annotations: usize,
    /// Longest annotation key plus value, in bytes.
    pub max_annotation_bytes: usize,
    /// Most bytes of state a filter may keep per object: its manifest's
    /// `max-bytes` must be within it, or it is refused at load.
    pub max_state_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel_per_alert: default_fuel_per_alert(),
            deadline_ms: 100,
            mean_ms: 10,
            fuel_for_init: 1_000_000_000,
            memory_bytes: 64 << 20,
            table_elements: 100_000,
            instances: 64,
            handles: 1_000,
            max_tags: 32,
            max_tag_bytes: 64,
            max_annotations: 16,
            max_annotation_bytes: 256,
            max_state_bytes: 4096,
        }
    }
}

impl Limits {
    /// Longest deadline a call may have: an hour. Past it a deadline is a
    /// typo, and the clock arithmetic it feeds would overflow.
    pub const MAX_DEADLINE_MS: u64 = 3_600_000;

    /// Most state any filter may keep per object, whatever the config
    /// says: 64 KiB. Each alert reads and writes its object's record, so
    /// state is a few small numbers, not a light curve (history is the
    /// host's).
    pub const MAX_STATE_BYTES: usize = 64 << 10;

    /// Refuses budgets no call can run under, or that would overflow what
    /// they feed, naming the budget.
    pub fn check(&self) -> Result<(), String> {
        if self.deadline_ms == 0 || self.deadline_ms > Self::MAX_DEADLINE_MS {
            return Err(format!(
                "deadline of {} ms: give 1 ms to {} ms",
                self.deadline_ms,
                Self::MAX_DEADLINE_MS
            ));
        }
        if self.mean_ms == 0 {
            return Err("a mean time per alert of 0 ms: no call could run".into());
        }
        if self.fuel_per_alert == 0 || self.fuel_for_init == 0 {
            return Err("a fuel budget of 0: no call could run".into());
        }
        if self.max_state_bytes > Self::MAX_STATE_BYTES {
            return Err(format!(
                "state cap of {} bytes per object: at most {} bytes",
                self.max_state_bytes,
                Self::MAX_STATE_BYTES
            ));
        }
        // A 32-bit linear memory holds at most 4 GiB.
        if self.memory_bytes > 4 << 30 {
            return Err(format!(
                "memory cap of {} bytes: at most 4 GiB (a 32-bit memory's size)",
                self.memory_bytes
            ));
        }
        Ok(())
    }
}

/// 50 million: about 2 ms of straight-line work, hundreds of times what a
/// typical cut needs.
fn default_fuel_per_alert() -> u64 {
    50_000_000
}

/// Enforces [`Limits`] on one store and records the last refusal.
///
/// The caps are on the store's totals: every linear memory (a component
/// may hold several core instances, each with memories of its own) counts
/// against `memory_bytes`, and every table against `table_elements`.
#[derive(Debug)]
pub struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    /// Set when a growth was refused: "memory: wanted N bytes, cap M".
    pub refused: Option<String>,
    /// Bytes of every linear memory of the store together. A growth the
    /// system then fails to make stays counted: the count errs high.
    memory_total: usize,
    /// Elements of every table of the store together.
    table_total: usize,
}

impl Limiter {
    pub fn new(limits: &Limits) -> Limiter {
        Limiter {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            instances: limits.instances,
            refused: None,
            memory_total: 0,
            table_total: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.memory_total.saturating_add(growth);
        if total > self.memory_bytes {
            self.refused = Some(if total == desired {
                format!(
                    "linear memory would grow to {desired} bytes, over the cap of {} bytes",
                    self.memory_bytes
                )
            } else {
                format!(
                    "linear memories would grow to {total} bytes in all (this one to {desired}), \
                     over the cap of {} bytes",
                    self.memory_bytes
                )
            });
            return Ok(false);
        }
        self.memory_total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.table_total.saturating_add(growth);
        if total > self.table_elements {
            self.refused = Some(format!(
                "tables would grow to {total} elements in all, over the cap of {}",
                self.table_elements
            ));
            return Ok(false);
        }
        self.table_total = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.instances
    }

    fn memories(&self) -> usize {
        self.instances
    }
}

/// A filter's budgets as people set them: in the config file
/// (`limits`, `max_limits`), an upload's manifest and the command-line
/// flags. A filter runs under the [`Limits`] made of them
/// ([`Budget::to_limits`]); the rest of its limits are the host's own.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
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
    /// State kept per object (the most a filter's manifest may declare).
    #[serde(with = "human::size")]
    pub state: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::of(&Limits::default())
    }
}

impl Budget {
    /// The budgets of `limits`.
    pub fn of(limits: &Limits) -> Budget {
        Budget {
            fuel: limits.fuel_per_alert,
            deadline: Duration::from_millis(limits.deadline_ms),
            mean_time: Duration::from_millis(limits.mean_ms),
            memory: limits.memory_bytes,
            state: limits.max_state_bytes,
        }
    }

    /// Whether every budget is at most `max`'s.
    pub fn within(&self, max: &Budget) -> bool {
        self.fuel <= max.fuel
            && self.deadline <= max.deadline
            && self.mean_time <= max.mean_time
            && self.memory <= max.memory
            && self.state <= max.state
    }

    /// `fuel N, deadline D, mean time T, memory N bytes`, for errors.
    pub fn describe(&self) -> String {
        format!(
            "fuel {}, deadline {:?}, mean time {:?}, memory {} bytes, state {} bytes",
            self.fuel, self.deadline, self.mean_time, self.memory, self.state
        )
    }

    /// The engine's limits with these budgets.
    pub fn to_limits(self) -> Limits {
        Limits {
            fuel_per_alert: self.fuel,
            deadline_ms: self.deadline.as_millis() as u64,
            mean_ms: self.mean_time.as_millis() as u64,
            memory_bytes: self.memory,
            max_state_bytes: self.state,
            ..Limits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_caps_hold_for_all_memories_and_tables_together() {
        let mut limiter = Limiter::new(&Limits {
            memory_bytes: 64 << 20,
            table_elements: 1000,
            ..Limits::default()
        });
        // Two memories of 40 MiB: each under the cap, not both.
        assert!(limiter.memory_growing(0, 40 << 20, None).unwrap());
        assert!(!limiter.memory_growing(0, 40 << 20, None).unwrap());
        let why = limiter.refused.take().unwrap();
        assert!(why.contains("in all"), "{why}");
        // The first may still grow within what is left.
        assert!(limiter.memory_growing(40 << 20, 64 << 20, None).unwrap());
        assert!(!limiter.memory_growing(0, 1 << 16, None).unwrap());
        assert!(limiter.table_growing(0, 600, None).unwrap());
        assert!(!limiter.table_growing(0, 600, None).unwrap());
    }

    #[test]
    fn budgets_no_call_could_run_under_are_refused_by_name() {
        assert!(Limits::default().check().is_ok());
        let with = |f: fn(&mut Limits)| {
            let mut l = Limits::default();
            f(&mut l);
            l.check().unwrap_err()
        };
        assert!(with(|l| l.deadline_ms = u64::MAX).contains("deadline of 18446744073709551615 ms"));
        assert!(with(|l| l.deadline_ms = 0).contains("give 1 ms"));
        assert!(with(|l| l.fuel_per_alert = 0).contains("fuel budget of 0"));
        assert!(with(|l| l.memory_bytes = usize::MAX).contains("at most 4 GiB"));
        assert!(with(|l| l.max_state_bytes = 1 << 20).contains("at most 65536 bytes"));
    }
}
