//! Deployments: which filters run, under which names and output topics,
//! and how a new set of them reaches the running pipeline.
//!
//! A [`Deployment`] is one loaded filter as deployed: its name in
//! headers and metrics, its output topic, and the key that tells whether
//! a loaded filter can serve it again. [`load_filters`] makes the config
//! file's deployments; the fleet registry makes the uploaded ones. Both
//! reach the pipeline through [`set`]: [`Desired`] holds the two halves
//! and sends each whole new set, numbered; [`Updates`] is the pipeline's
//! end, and a [`FilterSet`] is one published set with its decoder.
//!
//! Must never: load a component the sandbox has not checked, or reuse a
//! quarantined filter across a reload (reloading is how an operator gives
//! it another chance).

pub mod set;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::memory::history::Kept;
use crate::sandbox::{Limits, LoadedFilter, Sandbox};
use crate::sky::Sky;
pub use set::{Desired, FilterSet, Updates};

/// One filter as deployed: the loaded component and its output topic.
#[derive(Clone)]
pub struct Deployment {
    pub filter: Arc<LoadedFilter>,
    /// Its name in headers, metrics and logs: the config's `name`, else
    /// the manifest's. Unique within a filter set.
    pub name: String,
    pub output_topic: String,
    /// The component's sha256, parameters and limits: equal keys mean
    /// the same loaded filter can serve (see [`load_filters`]).
    pub key: String,
}

/// Loads the filters a config names (paths relative to the config file).
/// A filter of `running` with the same component bytes, parameters and
/// limits is reused as it is (its live instances and health carry on),
/// unless it is quarantined: reloading is how an operator gives a
/// quarantined filter another chance. The others are loaded anew.
pub fn load_filters(
    config: &Config,
    config_dir: &Path,
    sandbox: &Sandbox,
    running: &[Deployment],
) -> anyhow::Result<Vec<Deployment>> {
    let mut out = Vec::new();
    // Each file is read and hashed once, however many parameter sets
    // deploy it: (bytes, sha256) by path.
    let mut files: HashMap<PathBuf, (Vec<u8>, String)> = HashMap::new();
    for f in config.filters.iter().filter(|f| !f.disabled) {
        let path = config_dir.join(&f.path);
        let (bytes, sha256) = match files.entry(path.clone()) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read filter {}", path.display()))?;
                let sha256 = crate::sandbox::sha256_hex(&bytes);
                new.insert((bytes, sha256))
            }
        };
        let limits = f.limits.unwrap_or(config.engine.limits).to_limits();
        let params: Vec<(String, String)> = f.params.clone().into_iter().collect();
        let key = deployment_key(sha256, &params, &limits);
        // Each running filter serves one deployment at most: two entries
        // with the same component and parameters keep separate health.
        let reusable = running.iter().find(|d| {
            d.key == key
                && d.filter.health.quarantined().is_none()
                && !out
                    .iter()
                    .any(|o: &Deployment| Arc::ptr_eq(&o.filter, &d.filter))
        });
        let filter = match reusable {
            Some(d) => d.filter.clone(),
            None => sandbox
                .load_hashed(bytes, sha256, params, limits)
                .with_context(|| match &f.name {
                    Some(name) => format!("{} ({name}, {}) refused", f.key, path.display()),
                    None => format!("{} ({}) refused", f.key, path.display()),
                })?,
        };
        let name = f.name.clone().unwrap_or_else(|| filter.name.clone());
        if out.iter().any(|d| d.name == name) {
            anyhow::bail!(
                "{} ({}) is named '{name}' like an earlier filter: give one of them \
                 its own `name = \"...\"` (headers and metrics tell deployments apart by name)",
                f.key,
                path.display()
            );
        }
        out.push(Deployment {
            filter,
            name,
            output_topic: f.output_topic.clone(),
            key,
        });
    }
    Ok(out)
}

/// Why `bandpass serve` cannot run `filter`, if it cannot: it reads an
/// object's history or keeps a state per object, and the input is neither
/// said to be keyed by object nor re-keyed (`memory` is `None`: neither
/// `input.keyed_by = "object"` nor `input.rekey`), so one object's alerts
/// may reach several partitions and instances, each remembering its own
/// part; or it reads a history column serve does not keep (`memory`: the
/// columns kept); or it cross-matches with a catalogue `sky` does not
/// have, or over its caps. Refused rather than run with other verdicts
/// than `bandpass test` and `run` give.
pub fn serve_refuses(filter: &LoadedFilter, memory: Option<&Kept>, sky: &Sky) -> Option<String> {
    let refused = sky.refusals(
        filter.sky_group(),
        &filter.manifest.crossmatches,
        &filter.fields,
    );
    if !refused.is_empty() {
        let why: Vec<String> = refused.into_iter().map(|(_, why)| why).collect();
        return Some(format!("{}: {}", filter.name, why.join("; ")));
    }
    if let Some(kept) = memory {
        let refused = kept.refusals(&filter.manifest.survey, &filter.fields);
        return (!refused.is_empty()).then(|| {
            let why: Vec<String> = refused.into_iter().map(|(_, why)| why).collect();
            format!("{}: {}", filter.name, why.join("; "))
        });
    }
    const HOW: &str = "serve keeps them only when every alert of an object reaches one \
         partition: key the input topic by object id and set input.keyed_by = \"object\", \
         or let serve re-key it with input.rekey = true (or run it offline with \
         `bandpass test` or `bandpass run --state DIR`)";
    if let Some(path) = filter.history_field() {
        return Some(format!(
            "{} reads an object's history ('{}'): {HOW}",
            filter.name, path.text
        ));
    }
    let state = filter.manifest.state.as_ref()?;
    Some(format!(
        "{} keeps a state per object (format '{}'): {HOW}",
        filter.name,
        crate::text::shown(&state.format, 64)
    ))
}

/// [`serve_refuses`] for a config's deployments.
pub fn check_servable(
    config: &Config,
    deployments: &[Deployment],
    sky: &Sky,
) -> anyhow::Result<()> {
    for d in deployments {
        let kept = config.remembers_objects().then(|| config.kept_history());
        if let Some(why) = serve_refuses(&d.filter, kept.as_deref(), sky) {
            anyhow::bail!("filter '{}': {why}", d.name);
        }
    }
    Ok(())
}

impl Deployment {
    /// Gives each loaded filter the name it now runs as, for its log lines
    /// (a quarantine, a worker's own instance): the deployment's, not only
    /// its component's (one component may run as many parameter sets).
    /// Called when a set starts to run ([`FilterSet::new`], `run
    /// --config`), never for a set that may yet be refused: a refused
    /// reload leaves the running filters named as they run.
    pub fn name_filters(deployments: &[Deployment]) {
        for d in deployments {
            d.filter.deployed_as(&d.name);
        }
    }
}

/// What makes two deployments able to share one loaded filter: the
/// component's sha256, its parameters and its limits.
pub fn deployment_key(sha256: &str, params: &[(String, String)], limits: &Limits) -> String {
    format!("{sha256} {params:?} {limits:?}")
}

/// What the status page and the quarantine gauge follow of each
/// deployment.
pub fn describe(
    deployments: &[Deployment],
) -> Vec<(crate::metrics::FilterInfo, Arc<LoadedFilter>)> {
    deployments
        .iter()
        .map(|d| {
            let info = crate::metrics::FilterInfo {
                name: d.name.clone(),
                version: d.filter.manifest.version.clone(),
                survey: d.filter.manifest.survey.clone(),
                output_topic: d.output_topic.clone(),
                // Set by the fleet on an uploaded filter before it runs.
                group: d.filter.sky_group().map(str::to_string),
            };
            (info, d.filter.clone())
        })
        .collect()
}
