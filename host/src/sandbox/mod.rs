//! The sandbox: loading, validating and calling filter components.
//!
//! Owns: the one shared wasmtime `Engine` (component model, fuel, epoch
//! interruption) and its epoch ticker; the one `Linker` (a locked-down
//! WASI plus the `log` import, linked once); validation of a component
//! before it ever runs; and per-alert calls under hard budgets.
//!
//! Rooms, in the order of a filter's life: `engine` (the `Sandbox`: the
//! engine, linker, compiling and the Store a call runs in), `validate`
//! (what a component must be, checked before it runs), [`compile`] (the
//! bounded compile child) and `cache`, `filter` (a [`LoadedFilter`]),
//! `instance` (a filter's one instance, [`Held`] by one worker at a
//! time through its [`FilterInstance`]), `args` (the values as the
//! contract sends them), `outcome` (verdicts, failures and their causes),
//! `health` (the quarantine rules), `limits`, `log`, and `clocks` and
//! `world` (what a filter reads of time and randomness: fixed by the
//! alert, the same in every run).
//!
//! Must never: let a filter's failure reach another filter or the host,
//! call into a Store that trapped (it is dropped and a fresh instance is
//! made from the `InstancePre`), or deserialize bytes a user sent.

mod args;
mod cache;
mod clocks;
pub mod compile;
mod contract;
mod engine;
mod filter;
mod health;
mod instance;
mod limits;
mod log;
mod outcome;
pub mod release;
mod validate;
mod world;

use sha2::Digest;

pub use cache::{CacheOutcome, CompileCache, DEFAULT_CACHE_BYTES, WASMTIME_VERSION};
pub use contract::Contract;
pub use engine::{HostState, Sandbox, SandboxOptions};
pub use filter::{Crossmatch, LoadedFilter, Manifest, StateSpec};
pub use health::{Health, SKIPPED_QUARANTINED};
pub use instance::{BUSY_ROUNDS, FilterInstance, Held};
pub use limits::{Budget, Limiter, Limits};
pub use log::{FilterLog, LogBounds, LogLine, Origin};
use outcome::{CallBudget, classify};
pub use outcome::{Evaluation, Failure, FailureKind, Outcome, StateChange, Verdict};
pub use validate::{CONTRACT_VERSION, ComponentReport, LoadError, Surface, manifest_bounds};
pub use world::{AlertTime, J2000_UNIX_NANOS, Moment};

use engine::{new_store, set_deadline, set_deadline_after};
use filter::Live;
use outcome::{bounded, check_verdict, error_chain};

/// Host-side bindings of the current contract, `wit/filter.wit`.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "alert-filter",
    });
}

/// Host-side bindings of contract 0.4.0, which the host still links
/// (`contract.rs` puts every version behind one call path).
mod bindings_v4 {
    wasmtime::component::bindgen!({
        path: "../wit/frozen/0.4.0.wit",
        world: "alert-filter",
    });
}

/// Host-side bindings of contract 0.3.0, which the host still links
/// (`contract.rs` puts every version behind one call path).
mod bindings_v3 {
    wasmtime::component::bindgen!({
        path: "../wit/frozen/0.3.0.wit",
        world: "alert-filter",
    });
}

/// Host-side bindings of contract 0.2.0, which the host still links.
mod bindings_v2 {
    wasmtime::component::bindgen!({
        path: "../wit/frozen/0.2.0.wit",
        world: "alert-filter",
    });
}

/// Entry points for the fuzz targets (`fuzz/`): the checks of what a
/// guest hands the host, called without a guest.
#[doc(hidden)]
pub mod fuzzing {
    use super::bindings::bandpass::filter::types::Accepted;
    use super::*;

    /// [`validate::check_manifest`] on a manifest made of these parts.
    pub fn check_manifest(
        name: String,
        version: String,
        survey: String,
        fields: Vec<String>,
        description: String,
    ) -> Result<(), String> {
        validate::check_manifest(&Manifest {
            name,
            version,
            survey,
            fields,
            description,
            state: None,
            crossmatches: Vec::new(),
        })
        .map_err(|e| e.to_string())
    }

    /// The verdict check under the default limits.
    pub fn check_verdict(
        score: Option<f64>,
        tags: Vec<String>,
        annotations: Vec<(String, String)>,
    ) -> Result<Verdict, String> {
        let accepted = Accepted {
            score,
            tags,
            annotations,
        };
        super::check_verdict(accepted, &Limits::default()).map_err(|f| f.message)
    }
}

/// The sha256 of a component, hex: its identity in caches and reports.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}
