//! Validation of a component before it runs: size, that it is a
//! component at all, its contract version, its imports against the
//! allowed set, its exports, and the manifest it reports.

use std::collections::HashSet;

use wasmtime::Store;

use super::bindings::AlertFilterPre;
use super::{CacheOutcome, FilterLog, HostState, Limits, Manifest, Sandbox};
use crate::decode::FieldPath;

/// The contract version this host speaks (`wit/filter.wit`).
pub const CONTRACT_VERSION: &str = "0.2.0";

/// The interfaces a filter may import. Python guests import all of WASI
/// 0.2; the locked-down context makes filesystem and sockets inert.
const ALLOWED_IMPORTS: &[&str] = &[
    "wasi:io/",
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "bandpass:filter/log@",
    "bandpass:filter/types@",
];

/// Why a component cannot be loaded. Each message names the cause and
/// says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("component is {size} bytes, over the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("not a WebAssembly binary (no '\\0asm' magic): give the .wasm file the build produced")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build for the wasm32-wasip2 target \
         (`cargo build --target wasm32-wasip2`), which emits a component"
    )]
    CoreModule,
    #[error("not a valid component: {reason}")]
    Invalid { reason: String },
    #[error(
        "imports '{import}', which filters may not use; allowed are WASI 0.2 io, cli, clocks, \
         random, filesystem and sockets (all inert) and bandpass:filter/log"
    )]
    ForbiddenImport { import: String },
    #[error(
        "built for contract bandpass:filter@{found}, but this host speaks bandpass:filter@{CONTRACT_VERSION}: \
         rebuild the filter with an SDK for {CONTRACT_VERSION}"
    )]
    ContractVersion { found: String },
    #[error(
        "does not export bandpass:filter/filter (exports: {exports}): build it with the bandpass SDK"
    )]
    NoFilterExport { exports: String },
    #[error("cannot be linked: {reason}")]
    Link { reason: String },
    #[error("describe() failed: {reason}")]
    Describe { reason: String },
    #[error("bad manifest: {reason}")]
    Manifest { reason: String },
    #[error("init failed: {reason}")]
    Init { reason: String },
}

/// What `bandpass inspect` reports of a component.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComponentReport {
    pub size: usize,
    pub sha256: String,
    /// The `bandpass:filter` version it was built for.
    pub contract: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub manifest: Option<Manifest>,
    #[serde(skip)]
    pub cache: CacheOutcome,
}

/// The version in a name like `bandpass:filter/filter@0.2.0`.
fn version_of(name: &str) -> Option<&str> {
    name.rsplit_once('@').map(|(_, v)| v)
}

/// Same major version (for 0.x: same minor).
fn compatible(found: &str) -> bool {
    let key = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        Some(if major == 0 { (0, minor) } else { (major, 0) })
    };
    key(found).is_some() && key(found) == key(CONTRACT_VERSION)
}

impl Sandbox {
    /// Compiles a component into the cache (or finds it there) and keeps
    /// nothing else: what the upload check runs in a child process it can
    /// kill (`bandpass compile`), so that the service's own `load` of the
    /// same bytes then reads the artifact.
    pub fn compile(&self, bytes: &[u8]) -> Result<CacheOutcome, LoadError> {
        self.compile_component(bytes).map(|(_, outcome, _)| outcome)
    }

    /// The size and magic checks, then validation and compilation through
    /// the cache; returns the component, whether it came from the cache,
    /// and its sha256.
    fn compile_component(
        &self,
        bytes: &[u8],
    ) -> Result<(wasmtime::component::Component, CacheOutcome, String), LoadError> {
        let max = self.options.max_component_bytes;
        if bytes.len() > max {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                max,
            });
        }
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(LoadError::NotWasm);
        }
        // Bytes 4..8: version and layer; layer 0 is a core module.
        if bytes[6..8] == [0, 0] {
            return Err(LoadError::CoreModule);
        }
        let sha256 = super::sha256_hex(bytes);
        let compiled = match &self.options.cache {
            Some(cache) => cache.load_or_compile(&self.engine, bytes, &sha256),
            None => wasmtime::component::Component::new(&self.engine, bytes)
                .map(|c| (c, CacheOutcome::Compiled)),
        };
        let (component, cache) = compiled.map_err(|e| LoadError::Invalid {
            reason: super::error_chain(&e),
        })?;
        Ok((component, cache, sha256))
    }

    pub(super) fn prepare(
        &self,
        bytes: &[u8],
    ) -> Result<(ComponentReport, AlertFilterPre<HostState>), LoadError> {
        let (component, cache, sha256) = self.compile_component(bytes)?;

        let ty = component.component_type();
        let mut imports = Vec::new();
        for (name, _) in ty.imports(&self.engine) {
            if !ALLOWED_IMPORTS.iter().any(|p| name.starts_with(p)) {
                return Err(LoadError::ForbiddenImport {
                    import: name.to_string(),
                });
            }
            imports.push(name.to_string());
        }
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let filter_export = exports
            .iter()
            .find(|n| n.starts_with("bandpass:filter/filter"))
            .ok_or_else(|| LoadError::NoFilterExport {
                exports: if exports.is_empty() {
                    "none".into()
                } else {
                    exports.join(", ")
                },
            })?;
        let contract = version_of(filter_export)
            .unwrap_or("unversioned")
            .to_string();
        if !compatible(&contract) {
            return Err(LoadError::ContractVersion { found: contract });
        }
        for name in imports.iter().filter(|n| n.starts_with("bandpass:filter/")) {
            let found = version_of(name).unwrap_or("unversioned");
            if !compatible(found) {
                return Err(LoadError::ContractVersion {
                    found: found.to_string(),
                });
            }
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                reason: super::error_chain(&e),
            })?;
        let pre = AlertFilterPre::new(pre).map_err(|e| LoadError::Link {
            reason: super::error_chain(&e),
        })?;
        let manifest = describe(&pre)?;
        Ok((
            ComponentReport {
                size: bytes.len(),
                sha256,
                contract,
                imports,
                exports,
                manifest: Some(manifest),
                cache,
            },
            pre,
        ))
    }
}

/// Calls `describe` in a throwaway instance under default limits, and
/// checks what it says.
fn describe(pre: &AlertFilterPre<HostState>) -> Result<Manifest, LoadError> {
    let limits = Limits::default();
    let log = FilterLog::default();
    let mut store = super::new_store(pre.engine(), &limits, &log);
    store
        .set_fuel(limits.fuel_for_init)
        .expect("fuel is enabled");
    super::set_deadline(&mut store, 1000, std::time::Instant::now());
    let failed = |err: wasmtime::Error, store: &mut Store<HostState>| LoadError::Describe {
        reason: super::classify(&limits, &log, store, err, "in describe").message,
    };
    let bindings = pre
        .instantiate(&mut store)
        .map_err(|e| failed(e, &mut store))?;
    let m = bindings
        .bandpass_filter_filter()
        .call_describe(&mut store)
        .map_err(|e| failed(e, &mut store))?;
    let manifest = Manifest {
        name: m.name,
        version: m.version,
        survey: m.survey,
        fields: m.fields,
        description: m.description,
    };
    check_manifest(&manifest)?;
    Ok(manifest)
}

fn check_manifest(m: &Manifest) -> Result<(), LoadError> {
    let bad = |reason: String| Err(LoadError::Manifest { reason });
    let name_ok = !m.name.is_empty()
        && m.name.len() <= 64
        && m.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        return bad(format!(
            "name '{}' must be 1 to 64 characters of a-z, 0-9 and '-'",
            m.name
        ));
    }
    if m.version.is_empty() || m.version.len() > 64 {
        return bad(format!(
            "version '{}' must be 1 to 64 characters",
            m.version
        ));
    }
    let survey_ok = !m.survey.is_empty()
        && m.survey.len() <= 32
        && m.survey
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !survey_ok {
        return bad(format!(
            "survey '{}' must be a lowercase name such as ztf, rubin or any",
            m.survey
        ));
    }
    if m.description.len() > 1024 {
        return bad(format!(
            "description is {} bytes; at most 1024",
            m.description.len()
        ));
    }
    if m.fields.len() > 512 {
        return bad(format!("{} fields declared; at most 512", m.fields.len()));
    }
    let mut seen = HashSet::new();
    for f in &m.fields {
        let path = FieldPath::parse(f).map_err(|e| LoadError::Manifest {
            reason: e.to_string(),
        })?;
        if !seen.insert(path.text) {
            return bad(format!("field '{f}' is declared twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            name: "good-name".into(),
            version: "1.0.0".into(),
            survey: "ztf".into(),
            fields: vec!["candidate.magpsf".into(), "candidate.drb?".into()],
            description: "A filter.".into(),
        }
    }

    #[test]
    fn a_shared_memory_is_refused_at_load() {
        // A wait on a shared memory parks the thread out of reach of fuel
        // and the epoch, and its growth skips the limiter: such a
        // component must not compile here at all.
        let shared = wat::parse_str("(component (core module (memory 1 1 shared)))").unwrap();
        let sandbox = Sandbox::new(crate::sandbox::SandboxOptions {
            cache: None,
            ..Default::default()
        })
        .unwrap();
        let err = sandbox.inspect(&shared).unwrap_err().to_string();
        assert!(
            err.starts_with("not a valid component") && err.contains("threads"),
            "{err}"
        );
    }

    #[test]
    fn a_manifest_is_checked_field_by_field_with_the_reason_named() {
        assert!(check_manifest(&manifest()).is_ok());
        type Spoil = fn(&mut Manifest);
        let cases: [(Spoil, &str); 5] = [
            (|m| m.name = "Bad Name".into(), "name 'Bad Name'"),
            (|m| m.survey = "ZTF!".into(), "survey 'ZTF!'"),
            (
                |m| m.fields.push("candidate.magpsf".into()),
                "declared twice",
            ),
            (
                |m| m.fields.push("candidate..x".into()),
                "invalid field path",
            ),
            (
                |m| m.description = "x".repeat(2000),
                "description is 2000 bytes",
            ),
        ];
        for (spoil, reason) in cases {
            let mut m = manifest();
            spoil(&mut m);
            let err = check_manifest(&m).unwrap_err().to_string();
            assert!(err.contains(reason), "{err} lacks {reason}");
        }
    }

    #[test]
    fn accepts_patch_and_refuses_other_minor_versions_of_a_0_x_contract() {
        assert!(compatible("0.2.0"));
        assert!(compatible("0.2.7"));
        assert!(!compatible("0.1.0"));
        assert!(!compatible("0.3.0"));
        assert!(!compatible("1.0.0"));
        assert!(!compatible("garbage"));
    }
}
