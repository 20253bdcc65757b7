//! Shared test helpers: where the real data is, building the sample
//! filters from source (once per test run: Rust, Python, JavaScript), and
//! a sandbox per test. The submodules hold the harness of the tests that
//! run `bandpass serve` against the real broker.

pub mod http;
pub mod kafka;
pub mod metrics;
pub mod processes;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use bandpass::decode::SchemaSource;
use bandpass::runner::{AlertResult, Runner};
use bandpass::sandbox::{
    CompileCache, FailureKind, Limits, LoadedFilter, Outcome, Sandbox, SandboxOptions, Verdict,
};
use bytes::Bytes;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared real alerts, read in place (`../shared/data`).
pub fn data_dir() -> PathBuf {
    let dir = repo_root().join("../shared/data");
    assert!(
        dir.join("ztf/alerts").is_dir(),
        "the shared alert data is missing at {}: the tests read real alerts from ../shared/data",
        dir.display()
    );
    dir
}

/// Every ZTF sample alert, sorted.
pub fn ztf_alerts() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for version in std::fs::read_dir(data_dir().join("ztf/alerts")).unwrap() {
        for file in std::fs::read_dir(version.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "avro") {
                out.push(path);
            }
        }
    }
    out.sort();
    assert!(
        out.len() >= 10,
        "expected the ZTF samples, found {}",
        out.len()
    );
    out
}

/// Every Rubin `fakeAlert.avro`, sorted.
pub fn rubin_alerts() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(data_dir().join("rubin/schema"))
        .unwrap()
        .map(|d| d.unwrap().path().join("sample_data/fakeAlert.avro"))
        .filter(|p| p.exists())
        .collect();
    out.sort();
    assert!(
        out.len() >= 5,
        "expected the Rubin samples, found {}",
        out.len()
    );
    out
}

/// Builds `sample-filters/` for wasm32-wasip2 (once per test process) and
/// returns the folder holding the components.
pub fn filters_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let status = Command::new("cargo")
            .args([
                "build",
                "--quiet",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root.join("sample-filters/Cargo.toml"))
            // The host's test build sets these for itself; the guest build
            // must not inherit them.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "building sample-filters failed; is the wasm32-wasip2 target installed? \
             (scripts/test.sh installs it)"
        );
        root.join("sample-filters/target/wasm32-wasip2/release")
    })
}

/// Runs `scripts/<script>` (which installs its toolchain the first time
/// and skips what is up to date) and returns `out` under the repository.
fn built_by(script: &str, needs: &str, out: &str) -> PathBuf {
    let root = repo_root();
    let run = Command::new("bash")
        .arg(root.join("scripts").join(script))
        .output()
        .unwrap_or_else(|e| panic!("bash cannot run scripts/{script}: {e}"));
    assert!(
        run.status.success(),
        "scripts/{script} failed (it needs {needs}):\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    root.join(out)
}

/// Builds the Python samples (once per test process) and returns the
/// folder holding them; the script's venv holds `bandpass-py`.
pub fn python_filters_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        built_by(
            "build-python-filters.sh",
            "python3 >= 3.11, and the package index the first time",
            "sample-filters/target/python",
        )
    })
}

/// Builds the JavaScript samples with both engines (once per test
/// process) and returns sample-filters/target/js.
pub fn js_filters_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        built_by(
            "build-js-filters.sh",
            "Node.js 20 or later with npm, and the npm registry the first time",
            "sample-filters/target/js",
        )
    })
}

/// A sandbox whose compile cache every caller in this process shares:
/// a Python or SpiderMonkey component takes seconds to compile and
/// milliseconds to load compiled. Load through [`load_one_at_a_time`].
pub fn shared_cache_sandbox(quarantine_after: u32) -> Sandbox {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    let dir = CACHE.get_or_init(|| tempfile::tempdir().unwrap().keep());
    Sandbox::new(SandboxOptions {
        cache: Some(CompileCache::new(dir.clone())),
        quarantine_after,
        ..SandboxOptions::default()
    })
    .unwrap()
}

/// Loads a component, one load at a time in this process, so that tests
/// running in parallel compile each component once and then share it.
pub fn load_one_at_a_time(
    sb: &Sandbox,
    bytes: &[u8],
    params: &[(&str, &str)],
    limits: Limits,
) -> Result<Arc<LoadedFilter>, bandpass::sandbox::LoadError> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let params = params
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    sb.load(bytes, params, limits)
}

/// The bytes of a built component, by crate name with underscores.
pub fn component(name: &str) -> Vec<u8> {
    let path = filters_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A sandbox with a private compile cache.
pub fn sandbox_with(quarantine_after: u32) -> Sandbox {
    let cache = tempfile::tempdir().unwrap().keep();
    Sandbox::new(SandboxOptions {
        cache: Some(CompileCache::new(cache)),
        quarantine_after,
        ..SandboxOptions::default()
    })
    .unwrap()
}

pub fn sandbox() -> Sandbox {
    sandbox_with(5)
}

pub fn load(sandbox: &Sandbox, name: &str) -> Arc<LoadedFilter> {
    load_with(sandbox, name, Limits::default(), vec![])
}

pub fn load_with(
    sandbox: &Sandbox,
    name: &str,
    limits: Limits,
    params: Vec<(String, String)>,
) -> Arc<LoadedFilter> {
    sandbox
        .load(&component(name), params, limits)
        .unwrap_or_else(|e| panic!("{name} did not load: {e}"))
}

/// Runs `filters` over alert files; one result per alert.
pub fn run(filters: &[Arc<LoadedFilter>], files: &[PathBuf]) -> Vec<(PathBuf, AlertResult)> {
    let mut runner = Runner::new(filters, SchemaSource::None, Default::default());
    let mut out = Vec::new();
    for file in files {
        let bytes = Bytes::from(std::fs::read(file).unwrap());
        for result in runner.process(&bytes).unwrap() {
            out.push((file.clone(), result));
        }
    }
    out
}

/// Every ZTF sample alert's bytes, in [`ztf_alerts`]'s order.
pub fn ztf_alert_bytes() -> Vec<Vec<u8>> {
    ztf_alerts()
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect()
}

/// The bytes of the ZTF sample alerts that the sample filter `stem`
/// accepts offline (the batch path a stream must match), in order.
pub fn offline_accepts(stem: &str) -> Vec<Vec<u8>> {
    offline_accepts_with(stem, &[])
}

/// [`offline_accepts`], the filter given `params`.
pub fn offline_accepts_with(stem: &str, params: &[(&str, &str)]) -> Vec<Vec<u8>> {
    let sb = sandbox();
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let filter = load_with(&sb, stem, Limits::default(), params);
    run(std::slice::from_ref(&filter), &ztf_alerts())
        .into_iter()
        .filter(|(_, r)| {
            matches!(
                r.evaluations[0].outcome,
                Outcome::Verdict(Verdict::Accept { .. })
            )
        })
        .map(|(f, _)| std::fs::read(f).unwrap())
        .collect()
}

/// The path of the `bandpass` binary built for these tests.
pub fn bandpass_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bandpass"))
}

/// Runs a guest-language build of a sample (`guest`, described as
/// `language` in messages) beside the Rust build `rust_name` with the same
/// parameters over the real ZTF alerts; requires the same outcome
/// (verdict, score, tags, notes) on every alert and returns how many the
/// Rust build accepted.
pub fn assert_same_as_rust(
    guest: Arc<LoadedFilter>,
    language: &str,
    rust_name: &str,
    params: &[(&str, &str)],
) -> usize {
    let owned = params
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    let sb = shared_cache_sandbox(5);
    let rust = load_with(&sb, rust_name, Limits::default(), owned);
    assert_eq!(guest.manifest.name, rust.manifest.name);
    assert_eq!(guest.manifest.fields, rust.manifest.fields);
    let mut accepted = 0;
    let mut differences = Vec::new();
    for (file, result) in run(&[guest, rust], &ztf_alerts()) {
        let (theirs, rust) = (
            &result.evaluations[0].outcome,
            &result.evaluations[1].outcome,
        );
        if matches!(rust, Outcome::Verdict(Verdict::Accept { .. })) {
            accepted += 1;
        }
        if !matches!(rust, Outcome::Verdict(_)) {
            differences.push(format!(
                "{}: Rust gave no verdict: {rust:?}",
                file.display()
            ));
        } else if theirs != rust {
            differences.push(format!(
                "{}:\n  {language} {theirs:?}\n  Rust {rust:?}",
                file.display()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{rust_name} ({params:?}): {language} and Rust differ on {} alerts:\n{}",
        differences.len(),
        differences.join("\n")
    );
    accepted
}

/// `hostile-texts` with `describe` reporting `variant` (7 bytes): the
/// marker rewritten in a copy of the built component.
pub fn texts_variant(variant: &str) -> Vec<u8> {
    assert_eq!(variant.len(), 7);
    let mut bytes = component("hostile_texts");
    let marker = b"bandpass-variant:default";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the variant marker is in the component");
    bytes[at + 17..at + 24].copy_from_slice(variant.as_bytes());
    bytes
}

/// Each key's draws (scores as bits) are all equal, and different keys
/// drew different numbers (more than five keys): randomness is a
/// function of the key, not of what ran before.
pub fn assert_one_draw_per_key<K: std::fmt::Debug>(
    draws: &std::collections::BTreeMap<K, Vec<u64>>,
    what: &str,
) {
    let mut distinct: Vec<u64> = draws
        .values()
        .map(|s| {
            assert!(s.iter().all(|x| *x == s[0]), "{what}: {draws:?}");
            s[0]
        })
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() == draws.len() && draws.len() > 5,
        "{what}: other keys should draw other numbers: {draws:?}"
    );
}

/// Each alert file's outcome of `filter`, in file order.
pub fn outcomes_by_file(filter: &Arc<LoadedFilter>, files: &[PathBuf]) -> Vec<(PathBuf, Outcome)> {
    run(std::slice::from_ref(filter), files)
        .into_iter()
        .map(|(file, mut r)| (file, r.evaluations.remove(0).outcome))
        .collect()
}

/// The message of the error `filter` reported on each of `files`; panics,
/// naming the file and `what`, at any other outcome.
pub fn filter_errors(filter: &Arc<LoadedFilter>, files: &[PathBuf], what: &str) -> Vec<String> {
    outcomes_by_file(filter, files)
        .into_iter()
        .map(|(file, outcome)| match outcome {
            Outcome::Failed(f) if f.kind == FailureKind::FilterError => f.message,
            other => panic!(
                "{what} on {}: not a filter error: {other:?}",
                file.display()
            ),
        })
        .collect()
}
