//! Whether an upload may join the fleet ([`Admission::decide`]): the
//! manifest part read within its bounds, the record it asks for checked
//! against the [`Policy`] (quota and time budget included), then the
//! component checked as one blocking job under the one slot this
//! instance has for it: refused before compiling where it can be
//! ([`Sandbox::precheck`]), compiled within a time and memory bound,
//! loaded, its manifest compared with the component's own, and run on
//! the canary alerts. What comes out is an [`Admitted`] upload, which
//! [`super::Fleet::put`] writes, or a [`Denial`] that says why.
//!
//! Nothing here knows HTTP: the admin API reads the request and hands
//! over an [`Upload`]; it picks a status from the denial's [`Rule`].
//!
//! Must never: leave compiled code behind for a refused upload, let two
//! changes to one group's filters interleave (the quota would not hold),
//! or free the slot before the work it covers has really ended (a thread
//! cannot be stopped: a load past its time bound keeps the slot until it
//! ends, though the upload is refused at once).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use super::canary::{Canary, CanaryReport};
use super::policy::{Denial, Policy, Rule, Usage};
use super::record::{Entry, Record, output_topic};
use crate::config::UploadsConfig;
use crate::memory::history::Kept;
use crate::sandbox::compile::{CompileFailure, compile_bounded};
use crate::sandbox::{Budget, CacheOutcome, LoadedFilter, Sandbox, sha256_hex};

/// Bounds of what an upload's `manifest` part may hold, checked before
/// the host keeps any of it (docs/admin-api.yaml).
pub mod bounds {
    /// The whole `manifest` part, in bytes.
    pub const MANIFEST_BYTES: usize = 64 << 10;
    /// Parameters.
    pub const PARAMS: usize = 64;
    /// A parameter's name, in bytes.
    pub const PARAM_KEY_BYTES: usize = 64;
    /// A parameter's value, in bytes.
    pub const PARAM_VALUE_BYTES: usize = 4096;
}

/// What admission needs of the fleet: the rules in force and the
/// filters registered. [`super::Fleet`] is the one of a running serve; a
/// test may hand another.
pub trait Roster: Send + Sync {
    fn policy(&self) -> Arc<Policy>;
    fn entries(&self) -> BTreeMap<String, Entry>;
    /// The catalogues, and the sky maps and watchlists as they are now
    /// (the config's and the groups' uploaded ones).
    fn sky(&self) -> Arc<crate::sky::Sky>;
}

/// An upload as the admin API received it.
pub struct Upload {
    pub group: String,
    pub name: String,
    /// `operator`, or the group whose token sent it.
    pub by: String,
    /// The `manifest` part (JSON), if one was sent.
    pub manifest: Option<String>,
    /// The `component` part.
    pub component: Vec<u8>,
}

/// An upload that passed every check, ready for [`super::Fleet::put`]. It holds
/// its group's turn: no other change to the group's filters runs on this
/// instance until it is dropped.
pub struct Admitted {
    pub record: Record,
    pub component: Vec<u8>,
    /// The filter the canary ran, deployed as it is (not loaded again).
    pub filter: Arc<LoadedFilter>,
    pub report: CanaryReport,
    /// Whether it replaces a filter of the same name.
    pub replaces: bool,
    _turn: OwnedMutexGuard<()>,
}

/// The JSON part of an upload. Name, version and survey, where given,
/// must agree with the path and the component's own manifest.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadManifest {
    name: Option<String>,
    version: Option<String>,
    survey: Option<String>,
    description: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, Value>,
    limits: Option<Budget>,
    /// Upload disabled (registered, not run). Default true.
    enabled: Option<bool>,
    /// Refused unless it is the derived topic: present so the refusal
    /// can say so.
    output_topic: Option<String>,
}

/// Decides uploads on one instance.
pub struct Admission {
    fleet: Arc<dyn Roster>,
    sandbox: Arc<Sandbox>,
    canary: Arc<Canary>,
    /// `admin.uploads.max_size`, `compile_timeout`, `compile_memory`.
    max_size: usize,
    compile_timeout: Duration,
    compile_memory: usize,
    /// One component checked at a time. The permit moves into the
    /// blocking job and is released when the work really ends.
    slot: Arc<Semaphore>,
    /// Components (sha256) whose compile outlasted compile_timeout here:
    /// refused at once when uploaded again.
    too_slow: Mutex<HashSet<String>>,
    /// Each group's turn to change its filters (see [`Admission::turn`]).
    changing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The history columns kept when serve keeps object memory
    /// (`input.keyed_by = "object"` or `input.rekey`); without it a
    /// filter with history or state is refused.
    memory: Option<Arc<Kept>>,
}

/// The refusal of an upload over `max` bytes (`admin.uploads.max_size`),
/// however it was found out: by its declared length, while reading its
/// body, or by the component's size.
pub fn too_large(max: usize) -> Denial {
    Denial::new(
        Rule::TooLarge,
        format!("the upload is larger than the {max} bytes allowed (admin.uploads.max_size)"),
    )
}

fn refused(reason: String) -> Denial {
    Denial::new(Rule::Refused, reason)
}

fn malformed(reason: String) -> Denial {
    Denial::new(Rule::Malformed, reason)
}

impl Admission {
    pub fn new(
        fleet: Arc<dyn Roster>,
        sandbox: Arc<Sandbox>,
        canary: Canary,
        uploads: &UploadsConfig,
        memory: Option<Arc<Kept>>,
    ) -> Admission {
        Admission {
            fleet,
            sandbox,
            canary: Arc::new(canary),
            max_size: uploads.max_size,
            compile_timeout: uploads.compile_timeout,
            compile_memory: uploads.compile_memory,
            slot: Arc::new(Semaphore::new(1)),
            too_slow: Mutex::new(HashSet::new()),
            changing: Mutex::new(HashMap::new()),
            memory,
        }
    }

    /// The turn to change `group`'s filters on this instance: one change
    /// at a time per group, so that its quota count holds (across
    /// instances it does not; see docs/operators.md).
    pub async fn turn(&self, group: &str) -> OwnedMutexGuard<()> {
        let lock = self
            .changing
            .lock()
            .unwrap()
            .entry(group.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// The largest component accepted (`admin.uploads.max_size`).
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// The refusal of an upload over [`Self::max_size`].
    pub fn too_large(&self) -> Denial {
        too_large(self.max_size)
    }

    /// Decides `upload`: every check in the order the module doc gives.
    pub async fn decide(self: &Arc<Self>, upload: Upload) -> Result<Admitted, Denial> {
        if upload.component.len() > self.max_size {
            return Err(self.too_large());
        }
        let (manifest, params) = parse_manifest(upload.manifest.as_deref())?;
        let record = self.record(&upload, manifest, params)?;
        let turn = self.turn(&upload.group).await;
        let usage = Usage::of(&self.fleet.entries(), &upload.group, &upload.name);
        self.fleet.policy().admit(&record, Some(&usage))?;
        let permit = self.permit().await?;
        let admission = self.clone();
        let component = upload.component;
        let (record, component, filter, report) = tokio::task::spawn_blocking(move || {
            let mut record = record;
            let checked = admission.check(permit, &component, &mut record);
            checked.map(|(filter, report)| (record, component, filter, report))
        })
        .await
        .map_err(|e| {
            Denial::new(
                Rule::Crashed,
                format!(
                    "checking the upload crashed ({e}); nothing changed: report it to the operator"
                ),
            )
        })??;
        Ok(Admitted {
            record,
            component,
            filter,
            report,
            replaces: usage.replaces,
            _turn: turn,
        })
    }

    /// The record `upload` asks for. What is derived (the output topic)
    /// may be repeated, not chosen; version, survey and description are
    /// filled in from the component once it is loaded.
    fn record(
        &self,
        upload: &Upload,
        manifest: UploadManifest,
        params: BTreeMap<String, String>,
    ) -> Result<Record, Denial> {
        let (group, name) = (&upload.group, &upload.name);
        if let Some(n) = &manifest.name
            && n != name
        {
            return Err(malformed(format!(
                "manifest: name '{n}' differs from the path's '{name}'"
            )));
        }
        let derived = output_topic(group, name);
        if let Some(t) = &manifest.output_topic
            && *t != derived
        {
            return Err(Denial::new(
                Rule::NotAllowed,
                format!(
                    "manifest: output_topic '{t}' refused: group '{group}''s filter '{name}' \
                     produces to '{derived}', derived from the group and filter names"
                ),
            ));
        }
        let limits = manifest
            .limits
            .unwrap_or_else(|| self.fleet.policy().default_limits());
        Ok(Record {
            group: group.clone(),
            name: name.clone(),
            enabled: manifest.enabled.unwrap_or(true),
            params,
            limits: limits.to_limits(),
            version: manifest.version.unwrap_or_default(),
            survey: manifest.survey.unwrap_or_default(),
            // Kept as shown, like the component's own (sandbox/validate.rs).
            description: manifest
                .description
                .map(|d| crate::text::shown_owned(d, usize::MAX))
                .unwrap_or_default(),
            sha256: String::new(),
            uploaded_by: upload.by.clone(),
            uploaded_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        })
    }

    /// The slot, waiting at most a compile's time for the upload before
    /// to end.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, Denial> {
        let wait = self.compile_timeout + Duration::from_secs(5);
        match tokio::time::timeout(wait, self.slot.clone().acquire_owned()).await {
            Ok(permit) => Ok(permit.expect("the semaphore is never closed")),
            Err(_) => Err(Denial::new(
                Rule::Busy,
                format!("another upload has been checked here for {wait:?}: try again later"),
            )),
        }
    }

    /// The component's checks, on a blocking thread holding the slot:
    /// refused what can be without compiling, then compiled, loaded,
    /// compared and run on the canary. Fills in the record's sha256,
    /// version, survey and (if none was given) description. A refused
    /// upload leaves no compiled code behind.
    fn check(
        &self,
        permit: OwnedSemaphorePermit,
        component: &[u8],
        record: &mut Record,
    ) -> Result<(Arc<LoadedFilter>, CanaryReport), Denial> {
        self.sandbox
            .precheck(component)
            .map_err(|e| refused(format!("component refused: {e}")))?;
        record.sha256 = sha256_hex(component);
        let cached_before = self.sandbox.is_cached(&record.sha256);
        let checked = self.compile_load_try(permit, component, record);
        if checked.is_err() && !cached_before {
            self.sandbox.forget_compiled(&record.sha256);
        }
        let (filter, report) = checked?;
        record.version = filter.manifest.version.clone();
        record.survey = filter.manifest.survey.clone();
        if record.description.is_empty() {
            record.description = filter.manifest.description.clone();
        }
        Ok((filter, report))
    }

    /// [`Self::check`]'s steps from the compile on.
    fn compile_load_try(
        &self,
        permit: OwnedSemaphorePermit,
        component: &[u8],
        record: &Record,
    ) -> Result<(Arc<LoadedFilter>, CanaryReport), Denial> {
        let timeout = self.compile_timeout;
        if self.too_slow.lock().unwrap().contains(&record.sha256) {
            return Err(refused(format!(
                "this component took longer than {timeout:?} to compile here before \
                 (admin.uploads.compile_timeout): make it smaller"
            )));
        }
        // With a compiled-code cache (the default with uploads), the
        // compile runs in a child process, killed at the time bound (see
        // sandbox/compile.rs); the load below then reads its artifact.
        let compiled = compile_bounded(
            &self.sandbox,
            component,
            &record.sha256,
            timeout,
            self.compile_memory,
        );
        if let Err(failure) = compiled {
            if matches!(failure, CompileFailure::TimedOut(_)) {
                self.too_slow.lock().unwrap().insert(record.sha256.clone());
            }
            return Err(refused(failure.to_string()));
        }
        // Without a cache the load compiles, in this process: on a thread
        // of its own, given up on at the time bound. The slot goes with
        // it and comes back when it ends.
        let (done, loaded) = std::sync::mpsc::channel();
        let (sandbox, bytes) = (self.sandbox.clone(), component.to_vec());
        let (params, limits) = (record.params.clone().into_iter().collect(), record.limits);
        std::thread::Builder::new()
            .name("bandpass-upload-load".into())
            .spawn(move || {
                let filter = sandbox.load(&bytes, params, limits);
                let _ = done.send((filter, permit));
            })
            .map_err(|e| {
                Denial::new(
                    Rule::Crashed,
                    format!("could not start the upload's load ({e}): try again"),
                )
            })?;
        let (filter, _permit) = match loaded.recv_timeout(timeout) {
            Ok(loaded) => loaded,
            Err(_) => {
                self.too_slow.lock().unwrap().insert(record.sha256.clone());
                return Err(refused(CompileFailure::TimedOut(timeout).to_string()));
            }
        };
        let filter = filter.map_err(|e| refused(format!("component refused: {e}")))?;
        let _ = filter.group.set(record.group.clone());
        // The catalogues, and the maps and watchlists as they are now: a
        // required field naming one the group does not have is refused
        // here (a typo), though a record that names one later expired
        // still runs (reading it absent).
        let sky = self.fleet.sky();
        if let Some(why) = crate::deploy::serve_refuses(&filter, self.memory.as_deref(), &sky)
            .or_else(|| sky.missing(Some(&record.group), &filter.fields))
        {
            return Err(refused(why));
        }
        if filter.cache == CacheOutcome::Compiled && self.sandbox.options().cache.is_some() {
            tracing::warn!(
                sha256 = %record.sha256,
                "an upload compiled in its child process was compiled again in the service: \
                 the cache did not keep the artifact (see earlier warnings)"
            );
        }
        for (what, asked, own) in [
            ("version", &record.version, &filter.manifest.version),
            ("survey", &record.survey, &filter.manifest.survey),
        ] {
            if !asked.is_empty() && asked != own {
                return Err(malformed(format!(
                    "manifest: {what} '{asked}' differs from the component's own, '{own}'"
                )));
            }
        }
        let report = self
            .canary
            .try_filter(
                &filter,
                crate::runner::HostFields {
                    kept: self.memory.clone().unwrap_or_default(),
                    sky,
                },
            )
            .map_err(|why| refused(format!("canary: {why}")))?;
        Ok((filter, report))
    }
}

/// The `manifest` part, parsed and checked against [`bounds`] before
/// anything is kept; its params as the text `init` receives.
fn parse_manifest(
    text: Option<&str>,
) -> Result<(UploadManifest, BTreeMap<String, String>), Denial> {
    let manifest: UploadManifest = match text.map(str::trim) {
        None | Some("") => UploadManifest::default(),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| malformed(format!("manifest: {e}")))?
        }
    };
    if manifest.params.len() > bounds::PARAMS {
        return Err(malformed(format!(
            "manifest: {} params; at most {}",
            manifest.params.len(),
            bounds::PARAMS
        )));
    }
    if let Some(d) = &manifest.description
        && d.len() > crate::sandbox::manifest_bounds::DESCRIPTION_BYTES
    {
        return Err(malformed(format!(
            "manifest: description is {} bytes; at most {}",
            d.len(),
            crate::sandbox::manifest_bounds::DESCRIPTION_BYTES
        )));
    }
    let mut params = BTreeMap::new();
    for (k, v) in &manifest.params {
        if k.is_empty() || k.len() > bounds::PARAM_KEY_BYTES {
            return Err(malformed(format!(
                "manifest: param name '{k}' must be 1 to {} bytes",
                bounds::PARAM_KEY_BYTES
            )));
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(malformed(format!(
                    "manifest: param '{k}' is {other}: give a string, number or boolean"
                )));
            }
        };
        if text.len() > bounds::PARAM_VALUE_BYTES {
            return Err(malformed(format!(
                "manifest: param '{k}' is {} bytes; a value may have at most {}",
                text.len(),
                bounds::PARAM_VALUE_BYTES
            )));
        }
        params.insert(k.clone(), text);
    }
    Ok((manifest, params))
}

/// Entry points for the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub mod fuzzing {
    /// The manifest part's checks: the number of params, or the refusal.
    pub fn parse_manifest(text: Option<&str>) -> Result<usize, super::Denial> {
        super::parse_manifest(text).map(|(_, params)| params.len())
    }
}
