//! Python filters (guest-sdk/python, sample-filters/python) through the
//! host: the Python samples give the Rust samples' verdicts, scores, tags
//! and notes alert by alert on the real ZTF alerts, and every misbehaviour
//! of `hostile.py` ends in its own classified failure while the alerts
//! after it, and a good filter beside it, still get their verdicts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use bandpass::decode::{Decoder, FieldValue, SchemaSource};
use bandpass::sandbox::{
    FailureKind, Limits, LoadError, LoadedFilter, Origin, Outcome, Sandbox, Verdict,
};
use bytes::Bytes;

use crate::support::{
    self, filter_errors, load_one_at_a_time, outcomes_by_file, python_filters_dir, repo_root, run,
    shared_cache_sandbox, ztf_alerts,
};

/// The bytes of a built Python component, by module name with dashes.
fn python_component(name: &str) -> Vec<u8> {
    let path = python_filters_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Loads a Python component (see [`load_one_at_a_time`]).
fn load_python(
    sb: &Sandbox,
    name: &str,
    params: &[(&str, &str)],
    limits: Limits,
) -> Result<Arc<LoadedFilter>, LoadError> {
    load_one_at_a_time(sb, &python_component(name), params, limits)
}

fn python(sb: &Sandbox, name: &str, params: &[(&str, &str)]) -> Arc<LoadedFilter> {
    load_python(sb, name, params, Limits::default())
        .unwrap_or_else(|e| panic!("the Python {name} did not load: {e}"))
}

/// Runs `filters` over the real ZTF alerts: per alert, each filter's outcome.
fn outcomes(filters: &[Arc<LoadedFilter>]) -> Vec<(PathBuf, Vec<Outcome>)> {
    run(filters, &ztf_alerts())
        .into_iter()
        .map(|(file, r)| (file, r.evaluations.into_iter().map(|e| e.outcome).collect()))
        .collect()
}

/// The Python build of a sample beside the Rust one (see
/// [`support::assert_same_as_rust`]); returns how many were accepted.
fn assert_same_as_rust(python_name: &str, rust_name: &str, params: &[(&str, &str)]) -> usize {
    let sb = shared_cache_sandbox(5);
    let py = python(&sb, python_name, params);
    support::assert_same_as_rust(py, "Python", rust_name, params)
}

#[test]
fn python_bright_transients_gives_the_rust_verdicts_scores_tags_and_notes_on_every_real_alert() {
    let accepted = assert_same_as_rust("bright-transients", "bright_transients", &[]);
    assert!(
        accepted > 0,
        "no real alert accepted: the comparison would be vacuous"
    );
    // A parameter reaches the Python filter typed: max_age_days splits the accepts.
    let fewer = assert_same_as_rust(
        "bright-transients",
        "bright_transients",
        &[("max_age_days", "1000"), ("min_real", "0.9")],
    );
    assert!(fewer < accepted, "the parameters changed nothing");
}

#[test]
fn python_fast_risers_gives_the_rust_verdicts_scores_tags_and_notes_on_every_real_alert() {
    let accepted = assert_same_as_rust("fast-risers", "fast_risers", &[]);
    assert!(
        accepted > 0,
        "no real alert accepted: the comparison would be vacuous"
    );
}

#[test]
fn the_python_twenty_field_cut_gives_the_rust_verdicts_and_scores() {
    let accepted = assert_same_as_rust("bench-twenty-fields", "bench_twenty_fields", &[]);
    assert!(
        accepted > 0,
        "no real alert accepted: the comparison would be vacuous"
    );
    let fewer = assert_same_as_rust(
        "bench-twenty-fields",
        "bench_twenty_fields",
        &[("min_score", "0.22")],
    );
    assert!(
        0 < fewer && fewer < accepted,
        "min_score 0.22 should split the accepts"
    );
}

#[test]
fn a_python_filter_refuses_unknown_or_bad_parameters_at_load_naming_them() {
    let sb = shared_cache_sandbox(5);
    let err = load_python(
        &sb,
        "bright-transients",
        &[("max_mgg", "17")],
        Limits::default(),
    )
    .err()
    .expect("a misspelt parameter refuses the deployment");
    assert!(
        err.to_string().contains(
            "unknown parameter \"max_mgg\"; this filter knows: max_mag, min_real, min_ndethist, max_age_days"
        ),
        "{err}"
    );
    let err = load_python(
        &sb,
        "bright-transients",
        &[("max_mag", "bright")],
        Limits::default(),
    )
    .err()
    .expect("a parameter that does not parse refuses the deployment");
    assert!(
        err.to_string()
            .contains("parameter max_mag: expected a finite number, got 'bright'"),
        "{err}"
    );
    let err = load_python(&sb, "hostile", &[("mode", "explode")], Limits::default())
        .err()
        .expect("hostile refuses an unknown mode");
    assert!(
        err.to_string().contains("expected one of loop, memory"),
        "{err}"
    );
}

/// Alerts with magpsf at or below this make `hostile` misbehave: 8 of the
/// 18 real ZTF alerts, interleaved with the others.
const HOSTILE_MAX_MAG: &str = "18.3";

/// Runs `hostile.py` in `mode` (misbehaving on the alerts at or brighter
/// than HOSTILE_MAX_MAG and rejecting the others) beside the good Python
/// bright-transients, over the real ZTF alerts. Checks that every
/// misbehaving alert failed as `kind` with each of `needles` in its
/// message, that every other alert got its verdict (including alerts
/// right after a failure, on the instance rebuilt or kept), and that the
/// good filter's verdicts are those the Rust bright-transients gives
/// alone. Returns the hostile filter.
fn hostile_beside_a_good_filter(
    mode: &str,
    limits: Limits,
    kind: FailureKind,
    needles: &[&str],
) -> Arc<LoadedFilter> {
    let sb = shared_cache_sandbox(1000);
    let hostile = load_python(
        &sb,
        "hostile",
        &[("mode", mode), ("max_mag", HOSTILE_MAX_MAG)],
        limits,
    )
    .unwrap_or_else(|e| panic!("hostile ({mode}) did not load: {e}"));
    let good = python(&sb, "bright-transients", &[]);
    let reference: Vec<Outcome> = outcomes(&[support::load(&sb, "bright_transients")])
        .into_iter()
        .map(|(_, o)| o[0].clone())
        .collect();
    let max_mag: f64 = HOSTILE_MAX_MAG.parse().unwrap();
    let magnitudes = magnitudes();
    let results = outcomes(&[hostile.clone(), good]);
    let (mut failed, mut recovered) = (0, 0);
    let mut after_failure = false;
    for (i, (file, o)) in results.iter().enumerate() {
        assert_eq!(
            o[1],
            reference[i],
            "{mode}: the good filter beside it changed its verdict on {}",
            file.display()
        );
        if magnitudes[i] <= max_mag {
            match &o[0] {
                Outcome::Failed(f) => {
                    assert_eq!(f.kind, kind, "{mode} on {}: {f:?}", file.display());
                    for needle in needles {
                        assert!(
                            f.message.contains(needle),
                            "{mode} on {}: '{needle}' not in: {}",
                            file.display(),
                            f.message
                        );
                    }
                }
                other => panic!(
                    "{mode} on {}: expected a {kind:?} failure, got {other:?}",
                    file.display()
                ),
            }
            failed += 1;
            after_failure = true;
        } else {
            assert_eq!(
                o[0],
                Outcome::Verdict(Verdict::Reject),
                "{mode} on {}: the next alerts must get verdicts again",
                file.display()
            );
            if after_failure {
                recovered += 1;
            }
            after_failure = false;
        }
    }
    assert!(
        failed >= 5 && recovered >= 2,
        "{mode}: {failed} failed, {recovered} recovered"
    );
    hostile
}

/// `candidate.magpsf` of each real ZTF alert, in `ztf_alerts()` order,
/// as the host decodes it.
fn magnitudes() -> Vec<f64> {
    let decoder = Decoder::new(vec!["candidate.magpsf".into()], SchemaSource::None);
    ztf_alerts()
        .iter()
        .map(|file| {
            let bytes = Bytes::from(std::fs::read(file).unwrap());
            match decoder.decode(&bytes).unwrap()[0].values[0] {
                FieldValue::Real(m) => m,
                ref other => panic!("{}: candidate.magpsf is {other:?}", file.display()),
            }
        })
        .collect()
}

#[test]
fn an_infinite_loop_in_python_runs_out_of_fuel() {
    // Fuel, not the clock, must stop it: a deadline far off, so that a
    // loaded machine cannot make it a deadline failure.
    let limits = Limits {
        fuel_per_alert: 20_000_000,
        deadline_ms: 30_000,
        ..Limits::default()
    };
    hostile_beside_a_good_filter("loop", limits, FailureKind::OutOfFuel, &["budget 20000000"]);
}

#[test]
fn python_allocating_without_end_hits_the_memory_cap() {
    // Filling memory costs about 0.8 fuel a byte in CPython, so under the
    // default 50M fuel it is a smaller cap that is reached first (a Python
    // instance starts at about 13 MiB).
    let limits = Limits {
        memory_bytes: 32 << 20,
        deadline_ms: 30_000,
        ..Limits::default()
    };
    hostile_beside_a_good_filter(
        "memory",
        limits,
        FailureKind::Memory,
        &["over the cap of 33554432 bytes"],
    );
}

/// The line of `hostile.py` holding `text`, 1-based.
fn hostile_line(text: &str) -> usize {
    let source =
        std::fs::read_to_string(repo_root().join("sample-filters/python/hostile.py")).unwrap();
    1 + source
        .lines()
        .position(|l| l.contains(text))
        .unwrap_or_else(|| panic!("hostile.py has no line with {text:?}"))
}

#[test]
fn an_uncaught_python_exception_is_a_filter_error_naming_the_line_and_its_traceback_is_logged() {
    let line = hostile_line("return score / total");
    let hostile = hostile_beside_a_good_filter(
        "raise",
        Limits::default(),
        FailureKind::FilterError,
        // CPython 3.14 (in the component) says "division by zero", 3.11
        // "float division by zero".
        &[
            "reported an error: ZeroDivisionError: ",
            &format!("division by zero (at hostile.py:{line} in normalise)"),
        ],
    );
    let log: Vec<String> = hostile
        .log
        .lines()
        .into_iter()
        .filter(|l| l.source == Origin::Error)
        .map(|l| l.text)
        .collect();
    let log = log.join("\n");
    assert!(log.contains("Traceback (most recent call last):"), "{log}");
    assert!(
        log.contains(&format!("hostile.py\", line {line}, in normalise")),
        "{log}"
    );
    assert!(log.contains("ZeroDivisionError: "), "{log}");
}

#[test]
fn opening_a_file_from_python_fails_as_a_filter_error_with_its_message() {
    hostile_beside_a_good_filter(
        "open-file",
        Limits::default(),
        FailureKind::FilterError,
        &[&format!(
            "reported an error: FileNotFoundError: [Errno 44] No such file or directory: \
             '/etc/passwd' (at hostile.py:{} in hostile)",
            hostile_line("open(\"/etc/passwd\")")
        )],
    );
}

#[test]
fn opening_a_socket_from_python_fails_as_a_filter_error() {
    hostile_beside_a_good_filter(
        "socket",
        Limits::default(),
        FailureKind::FilterError,
        &[&format!(
            "reported an error: PermissionError: [Errno 2] Permission denied \
             (at hostile.py:{} in hostile)",
            hostile_line("with socket.socket(")
        )],
    );
}

/// `bandpass-py` in the venv the Python samples are built with.
fn bandpass_py() -> PathBuf {
    python_filters_dir(); // makes the venv and installs the SDK
    repo_root().join("target/bandpass-tools/py-venv/bin/bandpass-py")
}

/// `bandpass-py build FILE -o OUT` in `dir` (`-q`).
fn bandpass_py_build(dir: &Path, file: &str) -> Output {
    Command::new(bandpass_py())
        .args(["build", "-q", file, "-o"])
        .arg(dir.join(file.replace(".py", ".wasm")))
        .current_dir(dir)
        .output()
        .expect("bandpass-py runs")
}

/// A filter whose `evaluate` forgets its `return` in one mode (`forget`),
/// and otherwise accepts every alert with what it drew from `random`.
const DICE: &str = r#"import random

import bandpass


@bandpass.filter(
    name="py-dice",
    version="0.1.0",
    survey="ztf",
    description="Draws random numbers; forgets to return when asked to.",
    fields={"magpsf": "candidate.magpsf", "candid": "candidate.candid"},
    params={"forget": False},
)
def py_dice(magpsf, candid, params):
    if params.forget:
        bandpass.accept(score=magpsf)
    else:
        return bandpass.accept(score=random.random(), notes={"more": repr(random.gauss(0, 1)), "candid": candid})
"#;

/// `DICE` built into a component (once per test process).
fn dice() -> Vec<u8> {
    static BUILT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("py_dice.py"), DICE).unwrap();
            let out = bandpass_py_build(dir.path(), "py_dice.py");
            assert!(
                out.status.success(),
                "bandpass-py build py_dice.py failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::read(dir.path().join("py_dice.wasm")).unwrap()
        })
        .clone()
}

/// Each alert's outcome, by file, after running `files` in that order.
#[test]
fn a_python_filter_that_returns_none_is_a_filter_error_naming_its_file_and_def_line() {
    let line = DICE
        .lines()
        .position(|l| l.starts_with("def py_dice("))
        .unwrap()
        + 1;
    let sb = shared_cache_sandbox(1000);
    let filter = load_one_at_a_time(&sb, &dice(), &[("forget", "true")], Limits::default())
        .unwrap_or_else(|e| panic!("py_dice did not load: {e}"));
    for message in filter_errors(&filter, &ztf_alerts(), "a missing return") {
        assert!(
            message.ends_with(&format!(
                "py_dice (py_dice.py, line {line}) returned None; \
                 return bandpass.accept(...) or bandpass.reject() on every path"
            )),
            "{message}"
        );
    }
}

/// Needs the host's wasi:random to be a stream fixed by the component and
/// the alert (docs/design/authors-loop.md, section 2): the SDK reseeds
/// `random` from it at each alert.
#[test]
fn python_random_draws_the_same_numbers_for_an_alert_in_any_order() {
    let alerts = ztf_alerts();
    let reversed: Vec<PathBuf> = alerts.iter().rev().cloned().collect();
    let sb = shared_cache_sandbox(1000);
    let filter = load_one_at_a_time(&sb, &dice(), &[], Limits::default())
        .unwrap_or_else(|e| panic!("py_dice did not load: {e}"));
    // One instance: in order, then backwards, then the first alert again.
    let forward: BTreeMap<PathBuf, Outcome> =
        outcomes_by_file(&filter, &alerts).into_iter().collect();
    for (file, outcome) in outcomes_by_file(&filter, &reversed) {
        assert_eq!(
            outcome,
            forward[&file],
            "{} drew other numbers when run in another order",
            file.display()
        );
    }
    let again = outcomes_by_file(&filter, &alerts[..1]);
    assert_eq!(again[0].1, forward[&alerts[0]], "the first alert again");
    // The host's stream is fixed by the alert's identity (its candidate
    // id): the same candidate in several schema versions draws the same
    // numbers, another candidate others.
    let mut by_candidate: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for outcome in forward.values() {
        let Outcome::Verdict(Verdict::Accept {
            score: Some(score),
            annotations,
            ..
        }) = outcome
        else {
            panic!("{outcome:?}");
        };
        let candid = annotations.iter().find(|(k, _)| k == "candid").unwrap();
        by_candidate
            .entry(candid.1.clone())
            .or_default()
            .push(score.to_bits());
    }
    crate::support::assert_one_draw_per_key(&by_candidate, "python random by candidate");
}

#[test]
fn building_a_python_filter_that_imports_a_package_with_native_code_says_so_in_two_lines() {
    // A real extension module of the venv's CPython, copied into a package
    // beside the filter: it imports in desktop CPython, as numpy does, and
    // cannot in the component.
    let python = bandpass_py().with_file_name("python");
    let found = Command::new(&python)
        .args([
            "-c",
            "import os, sysconfig; d = sysconfig.get_config_var('DESTSHARED'); \
             print(next(os.path.join(d, f) for f in sorted(os.listdir(d)) if f.startswith('_bisect.')))",
        ])
        .output()
        .expect("the venv's python runs");
    assert!(
        found.status.success(),
        "this CPython has no _bisect extension file to copy: {}",
        String::from_utf8_lossy(&found.stderr)
    );
    let so = PathBuf::from(String::from_utf8(found.stdout).unwrap().trim());
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("fastmath");
    std::fs::create_dir(&package).unwrap();
    std::fs::copy(&so, package.join(so.file_name().unwrap())).unwrap();
    std::fs::write(
        package.join("__init__.py"),
        "from . import _bisect  # noqa: F401\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("uses_native.py"),
        DICE.replace("import random\n", "import fastmath\nimport random\n")
            .replace("py-dice", "uses-native")
            .replace("def py_dice", "def uses_native"),
    )
    .unwrap();
    let out = bandpass_py_build(dir.path(), "uses_native.py");
    assert!(!out.status.success(), "the build must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let so_name = so.file_name().unwrap().to_string_lossy();
    assert!(
        stderr.starts_with(&format!(
            "bandpass-py: uses_native.py:1: imports fastmath, which has native code (fastmath/{so_name}) \
             that cannot run in a component: a component holds the standard library's pure-Python modules \
             and the pure-Python packages installed beside the SDK, but no native code"
        )),
        "{stderr}"
    );
    assert!(
        stderr.lines().count() <= 2 && !stderr.contains("Traceback"),
        "not short: {stderr}"
    );
}
