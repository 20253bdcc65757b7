//! Validation of a component before it runs: size, that it is a
//! component at all, its contract version, its imports against the
//! allowed set, its exports, and the manifest it reports.

use std::collections::HashSet;

use wasmtime::Store;

use super::contract::{Contract, Pre};
use super::{CacheOutcome, FilterLog, HostState, Limits, Manifest};
use crate::decode::FieldPath;

/// The contract version this host speaks (`wit/filter.wit`). It also
/// runs filters built for 0.2.0, 0.3.0 and 0.4.0 (see `contract.rs`).
pub const CONTRACT_VERSION: &str = "0.5.0";

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
        "built for contract bandpass:filter@{found}, but this host speaks bandpass:filter@{CONTRACT_VERSION} \
         (and runs 0.2.0, 0.3.0 and 0.4.0): rebuild the filter with an SDK for {CONTRACT_VERSION}"
    )]
    ContractVersion { found: String },
    #[error(
        "does not export bandpass:filter/filter (exports: {exports}): build it with the bandpass SDK"
    )]
    NoFilterExport { exports: String },
    #[error("cannot be linked: {reason}")]
    Link { reason: String },
    #[error("cannot be instantiated: {reason}")]
    Instantiate { reason: String },
    #[error("describe() failed: {reason}")]
    Describe { reason: String },
    #[error("bad manifest: {reason}")]
    Manifest { reason: String },
    #[error("init failed: {reason}")]
    Init { reason: String },
    #[error("limits refused: {reason}")]
    Limits { reason: String },
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

/// A version the host links (see [`Contract::of_version`]).
fn compatible(found: &str) -> bool {
    Contract::of_version(found).is_some()
}

/// What can be refused without compiling, in microseconds: the size
/// (at most `max` bytes)
/// and magic, then the component's own import and export names
/// (read, not compiled): imports outside the allowed set, no filter
/// export, another contract version. An upload refused here costs no
/// compile and leaves nothing in the cache.
pub fn precheck(bytes: &[u8], max: usize) -> Result<Surface, LoadError> {
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
    let surface = surface(bytes)?;
    for name in &surface.imports {
        if !ALLOWED_IMPORTS.iter().any(|p| name.starts_with(p)) {
            return Err(LoadError::ForbiddenImport {
                import: name.clone(),
            });
        }
    }
    let filter_export = surface
        .exports
        .iter()
        .find(|n| n.starts_with("bandpass:filter/filter"))
        .ok_or_else(|| LoadError::NoFilterExport {
            exports: if surface.exports.is_empty() {
                "none".into()
            } else {
                surface.exports.join(", ")
            },
        })?;
    let contract = version_of(filter_export)
        .unwrap_or("unversioned")
        .to_string();
    if !compatible(&contract) {
        return Err(LoadError::ContractVersion { found: contract });
    }
    for name in surface
        .imports
        .iter()
        .filter(|n| n.starts_with("bandpass:filter/"))
    {
        let found = version_of(name).unwrap_or("unversioned");
        if !compatible(found) {
            return Err(LoadError::ContractVersion {
                found: found.to_string(),
            });
        }
    }
    Ok(Surface {
        contract,
        ..surface
    })
}

/// A component's outside, read without compiling it: the names of its
/// top-level imports and exports, and the contract version its filter
/// export names.
#[derive(Debug, Clone, Default)]
pub struct Surface {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// The `bandpass:filter` version of its filter export (set by
    /// [`Sandbox::precheck`] once the export is found).
    pub contract: String,
}

/// Most top-level imports or exports a component may have: a Python
/// guest imports about 30 WASI interfaces, a Rust one a dozen.
const MAX_SURFACE_NAMES: usize = 256;

/// Reads the top-level import and export names of a component, skipping
/// the modules and components nested in it (no code is looked at).
fn surface(bytes: &[u8]) -> Result<Surface, LoadError> {
    use wasmparser::{Chunk, Parser, Payload};
    let invalid = |reason: String| LoadError::Invalid { reason };
    let mut surface = Surface::default();
    let mut parser = Parser::new(0);
    let mut offset = 0;
    loop {
        let chunk = parser
            .parse(&bytes[offset..], true)
            .map_err(|e| invalid(e.to_string()))?;
        let Chunk::Parsed { consumed, payload } = chunk else {
            return Err(invalid("the component ends early".into()));
        };
        offset += consumed;
        let (names, section): (Vec<&str>, _) = match payload {
            Payload::ComponentImportSection(reader) => (
                reader
                    .into_iter()
                    .map(|i| i.map(|i| i.name.name))
                    .collect::<Result<_, _>>()
                    .map_err(|e| invalid(e.to_string()))?,
                &mut surface.imports,
            ),
            Payload::ComponentExportSection(reader) => (
                reader
                    .into_iter()
                    .map(|e| e.map(|e| e.name.name))
                    .collect::<Result<_, _>>()
                    .map_err(|e| invalid(e.to_string()))?,
                &mut surface.exports,
            ),
            // Nested modules and components: their bytes are skipped.
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                if unchecked_range.end > bytes.len() {
                    return Err(invalid("a nested module runs past the end".into()));
                }
                offset = unchecked_range.end;
                continue;
            }
            Payload::End(_) => return Ok(surface),
            _ => continue,
        };
        if section.len() + names.len() > MAX_SURFACE_NAMES {
            return Err(invalid(format!(
                "more than {MAX_SURFACE_NAMES} imports or exports: a filter needs a few dozen"
            )));
        }
        section.extend(
            names
                .into_iter()
                .map(|n| crate::text::shown(n, 256).into_owned()),
        );
    }
}

/// Calls `describe` in a throwaway instance under default limits, and
/// checks what it says. `export` names the component's filter export.
pub(super) fn describe(pre: &Pre, export: &str) -> Result<Manifest, LoadError> {
    let limits = Limits::default();
    let log = FilterLog::default();
    let mut store = super::new_store(pre.engine(), &limits, &log);
    store
        .set_fuel(limits.fuel_for_init)
        .expect("fuel is enabled");
    let budget = super::CallBudget {
        fuel: limits.fuel_for_init,
        deadline_ms: 1000,
        start: std::time::Instant::now(),
    };
    super::set_deadline(&mut store, budget.deadline_ms, budget.start);
    let failed = |err: wasmtime::Error, store: &mut Store<HostState>| LoadError::Describe {
        reason: super::classify(&budget, &log, store, err, "in describe").message,
    };
    // Instantiating also type-checks every export against the contract:
    // a failure here is the component's shape (or its start code), not
    // `describe`.
    let bindings = pre.instantiate(&mut store).map_err(|e| {
        let trapped = e.downcast_ref::<wasmtime::Trap>().is_some();
        LoadError::Instantiate {
            reason: if trapped {
                super::classify(&budget, &log, &mut store, e, "instantiating").message
            } else {
                let which = mistyped(pre, export)
                    .map(|f| format!("its `{f}` does not have the contract's type ("))
                    .unwrap_or_else(|| "(".into());
                let version = match pre.contract() {
                    Contract::Current => CONTRACT_VERSION,
                    Contract::V4 => "0.4.0",
                    Contract::V3 => "0.3.0",
                    Contract::V2 => "0.2.0",
                };
                format!(
                    "{which}{}); its exports must match bandpass:filter@{version}: \
                     build it with the bandpass SDK",
                    super::error_chain(&e)
                )
            },
        }
    })?;
    let mut manifest = bindings
        .describe(&mut store)
        .map_err(|e| failed(e, &mut store))?;
    check_manifest(&manifest)?;
    // Free texts are kept as they will be shown: one line, controls
    // visible (the name, survey and fields are checked to be plain).
    for text in [&mut manifest.version, &mut manifest.description] {
        *text = crate::text::shown_owned(std::mem::take(text), usize::MAX);
    }
    Ok(manifest)
}

/// Bounds of a manifest, each checked before anything is built from the
/// text (what the guest handed over is already capped at 32 MiB in all by
/// the store's hostcall fuel): the host keeps at most a few hundred KiB
/// per filter, however large a manifest a component reports.
pub mod manifest_bounds {
    /// Name: 1 to 64 bytes of `a-z`, `0-9` and `-`.
    pub const NAME_BYTES: usize = 64;
    /// Version: 1 to 64 bytes.
    pub const VERSION_BYTES: usize = 64;
    /// Survey: 1 to 32 bytes of `a-z`, `0-9`, `_` and `-`.
    pub const SURVEY_BYTES: usize = 32;
    /// Description: at most 1,024 bytes.
    pub const DESCRIPTION_BYTES: usize = 1024;
    /// Declared fields: at most 512, each at most
    /// [`MAX_PATH_BYTES`](crate::decode::MAX_PATH_BYTES) long.
    pub const FIELDS: usize = 512;
    /// State format: 1 to 64 printable ASCII bytes, no spaces.
    pub const STATE_FORMAT_BYTES: usize = 64;
    /// Cross-matches: at most 16.
    pub const CROSSMATCHES: usize = 16;
    /// A cross-match's name: 1 to 32 bytes of `a-z`, `0-9` and `_`.
    pub const CROSSMATCH_NAME_BYTES: usize = 32;
    /// A catalogue's name: see [`crate::sky::CATALOG_NAME_BYTES`].
    pub const CATALOG_NAME_BYTES: usize = crate::sky::CATALOG_NAME_BYTES;
    /// A cross-match's rows: 1 to 1,000 (the operator's cap, 20 by
    /// default, is checked where the catalogues are known).
    pub const CROSSMATCH_ROWS: u32 = 1000;
}

/// Checks a manifest's bounds and syntax, naming the first breach; the
/// offending text is quoted cut and escaped (`text::shown`).
/// Which of the filter's functions has a type other than the contract's:
/// each is looked up in a fresh instance and typed as the host calls it
/// (wasmtime's own error names the mismatch, not the function).
fn mistyped(pre: &Pre, export: &str) -> Option<&'static str> {
    use super::bindings::bandpass::filter::types as wit;
    use super::bindings_v2::bandpass::filter::types as wit_v2;
    use super::bindings_v3::bandpass::filter::types as wit_v3;
    use super::bindings_v4::bandpass::filter::types as wit_v4;
    let limits = Limits::default();
    let mut store = super::new_store(pre.engine(), &limits, &FilterLog::default());
    store.set_fuel(limits.fuel_for_init).ok()?;
    super::set_deadline(&mut store, 1000, std::time::Instant::now());
    let instance = pre.instance_pre().instantiate(&mut store).ok()?;
    let filter = instance.get_export_index(&mut store, None, export)?;
    let mut index = |name| instance.get_export_index(&mut store, Some(&filter), name);
    let (describe, init, evaluate) = (index("describe"), index("init"), index("evaluate"));
    let mut typed = |i: Option<_>, check: &dyn Fn(&mut Store<HostState>, _) -> bool| {
        i.is_some_and(|i| check(&mut store, i))
    };
    let contract = pre.contract();
    let checks: [(&'static str, bool); 3] = [
        (
            "describe",
            typed(describe, &|store, i| match contract {
                Contract::Current => instance
                    .get_typed_func::<(), (wit::Manifest,)>(store, i)
                    .is_ok(),
                Contract::V4 => instance
                    .get_typed_func::<(), (wit_v4::Manifest,)>(store, i)
                    .is_ok(),
                Contract::V3 => instance
                    .get_typed_func::<(), (wit_v3::Manifest,)>(store, i)
                    .is_ok(),
                Contract::V2 => instance
                    .get_typed_func::<(), (wit_v2::Manifest,)>(store, i)
                    .is_ok(),
            }),
        ),
        (
            "init",
            typed(init, &|store, i| {
                instance
                    .get_typed_func::<(Vec<(String, String)>,), (Result<(), String>,)>(store, i)
                    .is_ok()
            }),
        ),
        (
            "evaluate",
            typed(evaluate, &|store, i| {
                match contract {
                Contract::Current => instance
                    .get_typed_func::<
                        (Vec<u8>, Option<Vec<wit::Value>>, Option<Vec<u8>>),
                        (Option<wit::Answer>,),
                    >(store, i)
                    .is_ok(),
                Contract::V4 => instance
                    .get_typed_func::<
                        (wit_v4::FieldValues, Option<Vec<u8>>),
                        (Result<wit_v4::Decision, String>,),
                    >(store, i)
                    .is_ok(),
                Contract::V3 => instance
                    .get_typed_func::<
                        (wit_v3::FieldValues, Option<Vec<u8>>),
                        (Result<wit_v3::Decision, String>,),
                    >(store, i)
                    .is_ok(),
                Contract::V2 => instance
                    .get_typed_func::<(wit_v2::FieldValues,), (Result<wit_v2::Verdict, String>,)>(
                        store, i,
                    )
                    .is_ok(),
            }
            }),
        ),
    ];
    checks.iter().find(|(_, ok)| !ok).map(|(name, _)| *name)
}

pub(super) fn check_manifest(m: &Manifest) -> Result<(), LoadError> {
    use crate::text::shown;
    let bad = |reason: String| Err(LoadError::Manifest { reason });
    if !crate::text::is_name(&m.name, manifest_bounds::NAME_BYTES) {
        return bad(format!(
            "name '{}' ({} bytes) must be 1 to {} characters of a-z, 0-9 and '-'",
            shown(&m.name, manifest_bounds::NAME_BYTES),
            m.name.len(),
            manifest_bounds::NAME_BYTES
        ));
    }
    if m.version.is_empty() || m.version.len() > manifest_bounds::VERSION_BYTES {
        return bad(format!(
            "version '{}' ({} bytes) must be 1 to {} bytes",
            shown(&m.version, manifest_bounds::VERSION_BYTES),
            m.version.len(),
            manifest_bounds::VERSION_BYTES
        ));
    }
    let survey_ok = !m.survey.is_empty()
        && m.survey.len() <= manifest_bounds::SURVEY_BYTES
        && m.survey
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !survey_ok {
        return bad(format!(
            "survey '{}' must be a lowercase name such as ztf, rubin or any",
            shown(&m.survey, manifest_bounds::SURVEY_BYTES)
        ));
    }
    if m.description.len() > manifest_bounds::DESCRIPTION_BYTES {
        return bad(format!(
            "description is {} bytes; at most {}",
            m.description.len(),
            manifest_bounds::DESCRIPTION_BYTES
        ));
    }
    if m.fields.len() > manifest_bounds::FIELDS {
        return bad(format!(
            "{} fields declared; at most {}",
            m.fields.len(),
            manifest_bounds::FIELDS
        ));
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
    if let Some(state) = &m.state {
        let f = &state.format;
        let plain = |b: u8| b.is_ascii_graphic();
        if f.is_empty() || f.len() > manifest_bounds::STATE_FORMAT_BYTES || !f.bytes().all(plain) {
            return bad(format!(
                "state format '{}' must be 1 to {} printable ASCII characters without spaces \
                 (such as 'first-rise/1')",
                shown(f, manifest_bounds::STATE_FORMAT_BYTES),
                manifest_bounds::STATE_FORMAT_BYTES
            ));
        }
        if state.max_bytes == 0 {
            return bad("state max-bytes is 0: declare no state instead".into());
        }
    }
    check_crossmatches(m)
}

/// The cross-matches' own bounds, and that every `xmatch.<name>.<column>`
/// field names one of them (whether the catalogue has the column is
/// checked where the catalogues are known: `sky::Sky::refusals`).
fn check_crossmatches(m: &Manifest) -> Result<(), LoadError> {
    use crate::text::shown;
    use manifest_bounds::*;
    let bad = |reason: String| Err(LoadError::Manifest { reason });
    if m.crossmatches.len() > CROSSMATCHES {
        return bad(format!(
            "{} cross-matches declared; at most {CROSSMATCHES}",
            m.crossmatches.len()
        ));
    }
    let mut names = HashSet::new();
    for c in &m.crossmatches {
        let name_ok = !c.name.is_empty()
            && c.name.len() <= CROSSMATCH_NAME_BYTES
            && c.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return bad(format!(
                "cross-match name '{}' must be 1 to {CROSSMATCH_NAME_BYTES} characters of a-z, \
                 0-9 and '_' (it is the second part of the fields 'xmatch.<name>.<column>')",
                shown(&c.name, CROSSMATCH_NAME_BYTES)
            ));
        }
        if !names.insert(c.name.as_str()) {
            return bad(format!("cross-match '{}' is declared twice", c.name));
        }
        if !crate::sky::is_catalog_name(&c.catalog) {
            return bad(format!(
                "cross-match '{}': catalogue name '{}' must be 1 to {CATALOG_NAME_BYTES} \
                 characters of a-z, 0-9, '_' and '-'",
                c.name,
                shown(&c.catalog, CATALOG_NAME_BYTES)
            ));
        }
        let max = crate::sky::catalog::MAX_RADIUS_ARCSEC;
        if !(c.radius_arcsec > 0.0 && c.radius_arcsec <= max) {
            return bad(format!(
                "cross-match '{}': radius {} arcseconds; it must be above 0 and at most {max} \
                 (and the operator's cap)",
                c.name, c.radius_arcsec
            ));
        }
        if c.max_rows == 0 || c.max_rows > CROSSMATCH_ROWS {
            return bad(format!(
                "cross-match '{}': max-rows {}; it must be 1 to {CROSSMATCH_ROWS} (and the \
                 operator's cap)",
                c.name, c.max_rows
            ));
        }
    }
    for f in &m.fields {
        let Some(rest) = f
            .trim_end_matches('?')
            .strip_prefix(crate::decode::XMATCH_PREFIX)
        else {
            continue;
        };
        let (name, column) = rest.split_once('.').unwrap_or((rest, ""));
        if !names.contains(name) {
            let declared: Vec<&str> = m.crossmatches.iter().map(|c| c.name.as_str()).collect();
            return bad(format!(
                "field '{}' reads cross-match '{}', which the manifest does not declare ({})",
                shown(f, 256),
                shown(name, CROSSMATCH_NAME_BYTES),
                if declared.is_empty() {
                    "it declares none: add a crossmatch to the manifest".to_string()
                } else {
                    format!("it declares {}", declared.join(", "))
                }
            ));
        }
        if column.is_empty() || column.contains('.') {
            return bad(format!(
                "field '{}' must name one column of cross-match '{name}': \
                 'xmatch.{name}.dist', 'xmatch.{name}.ra', 'xmatch.{name}.dec' or \
                 'xmatch.{name}.<catalogue column>'",
                shown(f, 256)
            ));
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
            state: Some(super::super::StateSpec {
                format: "first-rise/1".into(),
                max_bytes: 512,
            }),
            crossmatches: Vec::new(),
        }
    }

    #[test]
    fn no_export_of_a_real_component_of_each_version_is_named_mistyped() {
        // `mistyped` names the export that broke the contract when
        // instantiating fails; its types, written out per version, must
        // accept real components (scripts/build-filters.sh builds them),
        // or a type left behind by a contract change blames a sound export.
        use super::Contract;
        let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sample-filters/target/wasm32-wasip2/release");
        let sandbox = crate::sandbox::Sandbox::new(crate::sandbox::SandboxOptions {
            cache: None,
            ..Default::default()
        })
        .unwrap();
        for (file, contract) in [
            ("bright_transients", Contract::Current),
            ("contract_0_4_0", Contract::V4),
            ("contract_0_3_0", Contract::V3),
            ("contract_0_2_0", Contract::V2),
        ] {
            let path = built.join(format!("{file}.wasm"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; build the sample filters first (scripts/build-filters.sh)",
                    path.display()
                )
            });
            let (report, pre) = sandbox
                .prepare(&bytes, crate::sandbox::sha256_hex(&bytes))
                .unwrap();
            assert_eq!(pre.contract(), contract, "{file}");
            let export = report
                .exports
                .iter()
                .find(|n| n.starts_with("bandpass:filter/filter"))
                .unwrap();
            assert_eq!(mistyped(&pre, export), None, "{file}");
        }
    }

    #[test]
    fn a_shared_memory_is_refused_at_load() {
        // A wait on a shared memory parks the thread out of reach of fuel
        // and the epoch, and its growth skips the limiter: such a
        // component must not compile here at all.
        // Its names pass the check made before compiling (an export named
        // as a filter's), so that the compile is what refuses it.
        let shared = wat::parse_str(
            r#"(component
                (core module (memory 1 1 shared))
                (instance $filter)
                (export "bandpass:filter/filter@0.2.0" (instance $filter)))"#,
        )
        .unwrap();
        let sandbox = crate::sandbox::Sandbox::new(crate::sandbox::SandboxOptions {
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
        let cases: [(Spoil, &str); 12] = [
            (|m| m.name = "Bad Name".into(), "name 'Bad Name'"),
            (
                |m| m.name = "n".repeat(30 << 20),
                "(31457280 bytes) must be 1 to 64",
            ),
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
            (
                |m| m.fields = vec!["candidate.magpsf".into(); 513],
                "513 fields declared; at most 512",
            ),
            (
                |m| m.fields.push(format!("{}?", "a".repeat(60_000))),
                "60001 bytes long; a path may have at most 256",
            ),
            (
                |m| m.state.as_mut().unwrap().format = "two words".into(),
                "state format 'two words' must be",
            ),
            (
                |m| m.state.as_mut().unwrap().format = "\u{1b}[2J".repeat(100),
                "state format '\\u{1b}[2J",
            ),
            (
                |m| m.state.as_mut().unwrap().max_bytes = 0,
                "declare no state instead",
            ),
            (
                |m| m.version = "1\n\x1b[31m".repeat(100),
                "version '1\\n\\u{1b}[31m",
            ),
        ];
        for (spoil, reason) in cases {
            let mut m = manifest();
            spoil(&mut m);
            let err = check_manifest(&m).unwrap_err().to_string();
            assert!(err.contains(reason), "{err} lacks {reason}");
            assert!(err.len() < 400, "the refusal quotes the text cut: {err}");
        }
    }

    #[test]
    fn cross_matches_are_checked_and_each_xmatch_field_must_name_one() {
        let with = |c: Vec<super::super::Crossmatch>, fields: &[&str]| {
            let mut m = manifest();
            m.crossmatches = c;
            m.fields = fields.iter().map(|f| f.to_string()).collect();
            check_manifest(&m).map_err(|e| e.to_string())
        };
        let stars = |name: &str, radius: f64, rows: u32| super::super::Crossmatch {
            name: name.into(),
            catalog: "gaia".into(),
            radius_arcsec: radius,
            max_rows: rows,
        };
        assert!(with(vec![stars("stars", 10.0, 20)], &["xmatch.stars.mag"]).is_ok());
        assert!(
            with(
                vec![stars("near", 2.0, 1), stars("far", 30.0, 5)],
                &["xmatch.near.dist", "xmatch.far.ra?"]
            )
            .is_ok()
        );
        let cases: Vec<(Vec<super::super::Crossmatch>, &[&str], &str)> = vec![
            (
                vec![stars("Stars", 10.0, 20)],
                &[],
                "cross-match name 'Stars'",
            ),
            (
                vec![stars("stars", 10.0, 20), stars("stars", 2.0, 1)],
                &[],
                "'stars' is declared twice",
            ),
            (vec![stars("stars", 0.0, 20)], &[], "radius 0 arcseconds"),
            (vec![stars("stars", f64::NAN, 20)], &[], "radius NaN"),
            (vec![stars("stars", 3600.5, 20)], &[], "at most 3600"),
            (vec![stars("stars", 10.0, 0)], &[], "max-rows 0"),
            (vec![stars("stars", 10.0, 1001)], &[], "max-rows 1001"),
            (
                vec![stars("stars", 10.0, 20); 17],
                &[],
                "17 cross-matches declared; at most 16",
            ),
            (
                vec![],
                &["xmatch.stars.mag"],
                "reads cross-match 'stars', which the manifest does not declare (it declares \
                 none",
            ),
            (
                vec![stars("near", 2.0, 1)],
                &["xmatch.far.mag"],
                "(it declares near)",
            ),
            (
                vec![stars("stars", 10.0, 20)],
                &["xmatch.stars"],
                "must name one column of cross-match 'stars'",
            ),
            (
                vec![stars("stars", 10.0, 20)],
                &["xmatch.stars.mag.x"],
                "must name one column",
            ),
        ];
        for (crossmatches, fields, reason) in cases {
            let err = with(crossmatches, fields).unwrap_err();
            assert!(err.contains(reason), "{err} lacks {reason}");
        }
        let mut bad = stars("stars", 10.0, 20);
        bad.catalog = "\u{1b}[2J".into();
        let err = with(vec![bad], &[]).unwrap_err();
        assert!(err.contains("catalogue name '\\u{1b}[2J'"), "{err}");
    }

    #[test]
    fn accepts_patch_and_refuses_other_minor_versions_of_a_0_x_contract() {
        assert!(compatible("0.2.0"));
        assert!(compatible("0.2.7"));
        assert!(compatible("0.3.0"));
        assert!(compatible("0.4.1"));
        assert!(compatible("0.5.0"));
        assert!(!compatible("0.1.0"));
        assert!(!compatible("0.6.0"));
        assert!(!compatible("1.0.0"));
        assert!(!compatible("garbage"));
    }
}
