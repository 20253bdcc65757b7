//! A loaded filter ([`LoadedFilter`]): validated, compiled and linked,
//! with its checked [`Manifest`], its parameters and limits, its
//! [`Health`], its log and its one instance; shared by every worker, each
//! of which calls it through its own [`FilterInstance`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::Store;

use super::contract::Exports;
use super::engine::Prepared;
use super::instance::Shared;
use super::{
    CacheOutcome, CallBudget, Failure, FailureKind, FilterInstance, FilterLog, Health, HostState,
    Limits, Moment, bounded, classify, new_store, release, set_deadline,
};
use crate::decode::FieldPath;

/// What the manifest a filter reports says, checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub survey: String,
    pub fields: Vec<String>,
    pub description: String,
    /// What the filter keeps per object (contract 0.3.0), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StateSpec>,
    /// The catalogue cones it asks for (contract 0.4.0), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub crossmatches: Vec<Crossmatch>,
}

/// A cross-match a filter asks for: the rows of catalogue `catalog`
/// within `radius_arcsec` of each alert, nearest first, at most
/// `max_rows`, read as the fields `xmatch.<name>.*`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Crossmatch {
    pub name: String,
    pub catalog: String,
    pub radius_arcsec: f64,
    pub max_rows: u32,
}

/// A filter's state per object, as its manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StateSpec {
    /// The author's name for the bytes' layout: a new version of the
    /// filter with the same format keeps its predecessor's state.
    pub format: String,
    /// The most bytes it keeps for one object.
    pub max_bytes: u32,
}

/// A validated, compiled filter with its one instance, which every
/// worker running it takes in turn through its own [`FilterInstance`].
pub struct LoadedFilter {
    /// Deployment name (the manifest's name).
    pub name: String,
    pub manifest: Manifest,
    /// The manifest's fields, parsed, in order.
    pub fields: Vec<FieldPath>,
    pub sha256: String,
    /// The component's part of every random seed (from its sha256).
    pub(super) seed: u64,
    /// Whether the compiled code came from the cache.
    pub cache: CacheOutcome,
    /// The component, shared with every filter loaded from the same
    /// bytes (see `Sandbox::load`).
    pub(super) prepared: Arc<Prepared>,
    pub(super) params: Vec<(String, String)>,
    pub limits: Limits,
    pub health: Health,
    /// The filter's log: stdout, stderr and `log` lines of all instances.
    pub log: FilterLog,
    /// The group whose own watchlists and sky maps it reads (an uploaded
    /// filter's; none for the operator's): set once, by the fleet, before
    /// it runs.
    pub group: std::sync::OnceLock<String>,
    /// The name it runs under in serve (see [`LoadedFilter::deployed_as`]).
    pub(super) deployment: Mutex<String>,
    /// Its one live instance, which the workers take in turn.
    pub(super) instance: Mutex<Shared>,
    /// Last, so that it drops after the rest: notes the memory freed.
    pub(super) _freed: release::FreedOnDrop,
}

/// A live instance: a Store and the bindings into it.
pub(super) struct Live {
    pub(super) store: Store<HostState>,
    pub(super) exports: Exports,
}

impl LoadedFilter {
    /// The group whose watchlists and maps it reads, besides the
    /// operator's (see [`LoadedFilter::group`]).
    pub fn sky_group(&self) -> Option<&str> {
        self.group.get().map(String::as_str)
    }

    /// Whether `other` was loaded from the same component bytes, and so
    /// shares its compiled code and memory image (see `Sandbox::load`).
    pub fn shares_component_with(&self, other: &LoadedFilter) -> bool {
        Arc::ptr_eq(&self.prepared, &other.prepared)
    }

    /// Names the deployment it runs as, for its log lines: a config's
    /// `name` or parameter set, an upload's name. Until then, and in
    /// `test` and `run --filter`, the manifest's name.
    pub fn deployed_as(&self, name: &str) {
        let mut deployment = self.deployment.lock().unwrap_or_else(|p| p.into_inner());
        if *deployment != name {
            *deployment = name.to_string();
        }
    }

    /// The name it runs as (see [`LoadedFilter::deployed_as`]).
    pub fn deployment(&self) -> String {
        self.deployment
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The parameters its `init` was given.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// Whether this filter wants alerts of `survey`.
    #[inline]
    pub fn accepts_survey(&self, survey: &str) -> bool {
        self.manifest.survey == "any" || self.manifest.survey == survey
    }

    /// The first field this filter declares under `history.` (an
    /// object's light curve), if any.
    pub fn history_field(&self) -> Option<&FieldPath> {
        self.fields
            .iter()
            .find(|f| f.text.starts_with(crate::decode::HISTORY_PREFIX))
    }

    /// Whether this filter reads or changes what the host remembers of an
    /// object: its state, or its history.
    pub fn remembers(&self) -> bool {
        self.manifest.state.is_some() || self.history_field().is_some()
    }

    /// A worker's handle on the filter's instance. `slots[i]` is the
    /// index, in the worker's decoded values, of this filter's `i`-th
    /// declared field.
    pub fn instance(self: &Arc<Self>, slots: Vec<usize>) -> FilterInstance {
        FilterInstance::new(self.clone(), slots)
    }

    fn new_store(&self) -> Store<HostState> {
        new_store(self.prepared.pre.engine(), &self.limits, &self.log)
    }

    /// Instantiates and runs `init` within `budget`.
    pub(super) fn instantiate_live(&self, budget: CallBudget) -> Result<Live, Failure> {
        let mut store = self.new_store();
        store.data_mut().world.begin(Moment::AT_REST, self.seed);
        store
            .set_fuel(self.limits.fuel_for_init)
            .expect("fuel is enabled");
        set_deadline(&mut store, budget.deadline_ms, budget.start);
        let failed = |store: &mut Store<HostState>, err, during| {
            classify(&budget, &self.log, store, err, during)
        };
        let bindings = match self.prepared.pre.instantiate(&mut store) {
            Ok(b) => b,
            Err(err) => return Err(failed(&mut store, err, "instantiating")),
        };
        match bindings.init(&mut store, &self.params) {
            Ok(Ok(())) => Ok(Live {
                store,
                exports: bindings,
            }),
            Ok(Err(message)) => Err(Failure {
                kind: FailureKind::Init,
                message: format!("init refused the parameters: {}", bounded(&message)),
            }),
            Err(err) => Err(failed(&mut store, err, "in init")),
        }
    }

    /// Keeps `live`, just made, as the filter's instance: the first.
    pub(super) fn keep_instance(&self, live: Live) {
        let mut shared = self.instance.lock().expect("not yet shared");
        shared.live = Some(live);
        shared.instantiated = true;
    }

    /// What the load's trial `init` may take: the filter's `init` fuel and
    /// at least a second (a Python guest's first `init` builds its
    /// interpreter state). Only the load gets this; a rebuild after a trap
    /// runs within the alert's own deadline.
    pub(super) fn load_budget(&self) -> CallBudget {
        CallBudget {
            fuel: self.limits.fuel_for_init,
            deadline_ms: self.limits.deadline_ms.max(1000),
            start: Instant::now(),
        }
    }

    /// Skips the filter from now on, for `reason` (the first one given:
    /// see [`Health::quarantine`]).
    pub(super) fn quarantine(&self, reason: String) {
        self.health.quarantine(&self.deployment(), reason);
    }
}
