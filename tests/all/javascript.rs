//! JavaScript filters (guest-sdk/js, sample-filters/js) through the host,
//! built with both engines the SDK offers (QuickJS, the default, and
//! SpiderMonkey): the JavaScript samples give the Rust samples' verdicts,
//! scores, tags and notes alert by alert on the real ZTF alerts, a bug in
//! a filter arrives as a filter error naming the exception and its line
//! (not a trap), and a component imports nothing but the contract.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use bandpass::sandbox::{
    FailureKind, Limits, LoadError, LoadedFilter, Origin, Outcome, Sandbox, Verdict,
};

use crate::support::{
    self, filter_errors, js_filters_dir, load_one_at_a_time, outcomes_by_file, repo_root, run,
    shared_cache_sandbox, ztf_alerts,
};

/// The engines a JavaScript filter is built with, and the subfolder of
/// sample-filters/target/js holding their components.
const ENGINES: &[(&str, &str)] = &[("quickjs", ""), ("spidermonkey", "spidermonkey/")];

/// The bytes of a built JavaScript sample, by module name, for an engine.
fn js_component(name: &str, engine: &str) -> Vec<u8> {
    let (_, folder) = ENGINES
        .iter()
        .find(|(e, _)| *e == engine)
        .unwrap_or_else(|| panic!("no engine {engine}"));
    let path = js_filters_dir().join(format!("{folder}{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Loads a component, one at a time, so that tests running in parallel
/// compile each component once and then share the compiled artifact.
fn load_js(
    sb: &Sandbox,
    bytes: &[u8],
    params: &[(&str, &str)],
) -> Result<Arc<LoadedFilter>, LoadError> {
    load_one_at_a_time(sb, bytes, params, Limits::default())
}

/// Runs the JavaScript build (with `engine`) and the Rust build of a
/// filter side by side over the real ZTF alerts, requires the same outcome
/// on every alert (verdict, score, tags and notes), and returns how many
/// were accepted.
fn assert_same_as_rust(
    js_name: &str,
    rust_name: &str,
    engine: &str,
    params: &[(&str, &str)],
) -> usize {
    let sb = shared_cache_sandbox(5);
    let js = load_js(&sb, &js_component(js_name, engine), params)
        .unwrap_or_else(|e| panic!("the JavaScript {js_name} ({engine}) did not load: {e}"));
    support::assert_same_as_rust(js, &format!("JavaScript ({engine})"), rust_name, params)
}

#[test]
fn javascript_bright_transients_gives_the_rust_verdicts_scores_tags_and_notes_on_every_real_alert_with_both_engines()
 {
    for (engine, _) in ENGINES {
        let accepted = assert_same_as_rust("bright-transients", "bright_transients", engine, &[]);
        assert!(
            accepted > 0,
            "no real alert accepted: the comparison would be vacuous"
        );
        // The parameters reach the JavaScript filter typed: max_age_days
        // and min_real split the accepts.
        let fewer = assert_same_as_rust(
            "bright-transients",
            "bright_transients",
            engine,
            &[("max_age_days", "1000"), ("min_real", "0.9")],
        );
        assert!(fewer < accepted, "{engine}: the parameters changed nothing");
    }
}

#[test]
fn javascript_fast_risers_gives_the_rust_verdicts_scores_tags_and_notes_on_every_real_alert_with_both_engines()
 {
    for (engine, _) in ENGINES {
        let accepted = assert_same_as_rust("fast-risers", "fast_risers", engine, &[]);
        assert!(
            accepted > 0,
            "no real alert accepted: the comparison would be vacuous"
        );
    }
}

#[test]
fn the_javascript_twenty_field_cut_gives_the_rust_verdicts_and_scores_with_both_engines() {
    for (engine, _) in ENGINES {
        let accepted =
            assert_same_as_rust("bench-twenty-fields", "bench_twenty_fields", engine, &[]);
        assert!(
            accepted > 0,
            "no real alert accepted: the comparison would be vacuous"
        );
        let fewer = assert_same_as_rust(
            "bench-twenty-fields",
            "bench_twenty_fields",
            engine,
            &[("min_score", "0.22")],
        );
        assert!(
            0 < fewer && fewer < accepted,
            "{engine}: min_score 0.22 should split the accepts"
        );
    }
}

#[test]
fn a_javascript_filter_refuses_unknown_or_bad_parameters_at_load_naming_them() {
    let sb = shared_cache_sandbox(5);
    for (engine, _) in ENGINES {
        let bytes = js_component("bright-transients", engine);
        let err = load_js(&sb, &bytes, &[("max_mgg", "17")])
            .err()
            .expect("a misspelt parameter refuses the deployment");
        assert!(
            err.to_string().contains(
                "unknown parameter \"max_mgg\"; this filter knows: max_mag, min_real, min_ndethist, max_age_days"
            ),
            "{engine}: {err}"
        );
        let err = load_js(&sb, &bytes, &[("min_ndethist", "2.5")])
            .err()
            .expect("a parameter of the wrong type refuses the deployment");
        assert!(
            err.to_string()
                .contains("parameter min_ndethist: expected an integer, got \"2.5\""),
            "{engine}: {err}"
        );
    }
}

#[test]
fn a_javascript_component_imports_nothing_but_the_contracts_log_with_either_engine() {
    let sb = shared_cache_sandbox(5);
    for (engine, _) in ENGINES {
        let report = sb
            .inspect(&js_component("bright-transients", engine))
            .unwrap_or_else(|e| panic!("{engine}: {e}"));
        let foreign: Vec<&String> = report
            .imports
            .iter()
            .filter(|i| !i.starts_with("bandpass:filter/"))
            .collect();
        assert!(foreign.is_empty(), "{engine} imports {foreign:?}");
        assert!(
            report
                .imports
                .iter()
                .any(|i| i.starts_with("bandpass:filter/log@")),
            "{engine}: {:?}",
            report.imports
        );
    }
}

/// A filter with a bug: on alerts fainter than 18.5 it reads a property of
/// null. The line of the bug is found by its text, not hard-coded.
const THROWS: &str = r#"import { defineFilter, accept } from '@bandpass/filter';

// Accepts alerts brighter than 18.5; reads a property of null on the others.
export default defineFilter({
  name: 'throws-type-error',
  version: '0.1.0',
  survey: 'ztf',
  description: 'A filter with a bug on faint alerts.',
  fields: { magpsf: 'candidate.magpsf' },
  evaluate(alert) {
    if (alert.magpsf > 18.5) {
      const missing = null;
      return missing.magpsf;
    }
    return accept({ score: alert.magpsf });
  },
});
"#;

/// Builds `THROWS` with the SDK's `bandpass-js build` for `engine`.
fn build_throwing_filter(engine: &str) -> Vec<u8> {
    build_js("throws-type-error.js", THROWS, engine)
}

/// Builds `text`, saved as `file`, with the SDK's `bandpass-js build` for `engine`.
fn build_js(file: &str, text: &str, engine: &str) -> Vec<u8> {
    js_filters_dir(); // the SDK's dependencies are installed
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join(file);
    std::fs::write(&source, text).unwrap();
    let output = dir.path().join(format!("{file}-{engine}.wasm"));
    let out = Command::new("node")
        .arg(repo_root().join("guest-sdk/js/bin/bandpass-js.js"))
        .arg("build")
        .arg(&source)
        .arg("-o")
        .arg(&output)
        .args(["--engine", engine, "--quiet"])
        .output()
        .expect("node runs bandpass-js");
    assert!(
        out.status.success(),
        "bandpass-js build of {} ({engine}) failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&output).unwrap()
}

#[test]
fn a_type_error_thrown_in_a_javascript_filter_is_a_filter_error_naming_it_and_its_line_not_a_trap()
{
    let line = THROWS
        .lines()
        .position(|l| l.contains("missing.magpsf"))
        .unwrap()
        + 1;
    let at = format!("(at throws-type-error.js:{line})");
    for (engine, _) in ENGINES {
        let sb = shared_cache_sandbox(5);
        let filter = load_js(&sb, &build_throwing_filter(engine), &[])
            .unwrap_or_else(|e| panic!("{engine}: the filter did not load: {e}"));
        let results = run(std::slice::from_ref(&filter), &ztf_alerts());
        let (mut failed, mut accepted_after_a_failure) = (0, 0);
        let mut after_failure = false;
        for (file, result) in &results {
            match &result.evaluations[0].outcome {
                Outcome::Failed(f) => {
                    assert_eq!(
                        f.kind,
                        FailureKind::FilterError,
                        "{engine} on {}: {f:?}",
                        file.display()
                    );
                    // The host says "reported an error: " before the filter's message.
                    assert!(
                        f.message.contains("TypeError: ") && f.message.ends_with(&at),
                        "{engine} on {}: expected 'TypeError: ... {at}', got {:?}",
                        file.display(),
                        f.message
                    );
                    failed += 1;
                    after_failure = true;
                }
                Outcome::Verdict(Verdict::Accept { .. }) => {
                    if after_failure {
                        accepted_after_a_failure += 1;
                    }
                    after_failure = false;
                }
                other => panic!("{engine} on {}: {other:?}", file.display()),
            }
        }
        assert!(
            failed > 0,
            "{engine}: no alert hit the bug: the test would be vacuous"
        );
        assert!(
            accepted_after_a_failure > 0,
            "{engine}: no alert right after a failure was accepted"
        );
        // The stack went to the filter's log, mapped to the author's file.
        let logged = filter
            .log
            .lines()
            .into_iter()
            .find(|l| l.source == Origin::Error)
            .unwrap_or_else(|| panic!("{engine}: nothing logged at error level"));
        assert!(
            logged.text.starts_with("TypeError: ")
                && logged
                    .text
                    .contains(&format!("throws-type-error.js:{line}:")),
            "{engine}: the log has no stack through line {line}: {:?}",
            logged.text
        );
    }
}

/// A filter that reads an undeclared property in one mode (`typo`), and
/// otherwise accepts every alert with what it drew from `Math.random`, what
/// the clock said, and the alert object seen as a plain object.
const DICE: &str = r#"import { defineFilter, accept, reject } from '@bandpass/filter';

export default defineFilter({
  name: 'dice',
  version: '0.1.0',
  survey: 'ztf',
  description: 'Draws random numbers; reads a misspelt field when asked to.',
  fields: { magpsf: 'candidate.magpsf', rb: 'candidate.rb' },
  params: { typo: false },
  evaluate(c, params) {
    if (params.typo) {
      return c.magpfs < 19 ? accept() : reject();
    }
    let clock = 'no error';
    try {
      Date.now();
    } catch (e) {
      clock = e.message;
    }
    let perf = 'no error';
    try {
      performance.now();
    } catch (e) {
      perf = e.message;
    }
    console.log(c);
    const plain = [JSON.stringify(Object.keys(c)), `${c}`, String(c.hasOwnProperty('rb')), String(c.toJSON)].join(' ');
    const fields = `${c.magpsf} ${c.rb}`;
    return accept({ score: Math.random(), notes: { more: `${Math.random()} ${Math.random()}`, clock, perf, plain, fields } });
  },
});
"#;

/// Each alert's outcome, by file, after running `files` in that order.
#[test]
fn reading_an_undeclared_alert_property_in_javascript_is_a_filter_error_naming_it_and_the_declared_fields_with_both_engines()
 {
    let line = DICE.lines().position(|l| l.contains("c.magpfs")).unwrap() + 1;
    for (engine, _) in ENGINES {
        let sb = shared_cache_sandbox(1000);
        let filter = load_js(&sb, &build_js("dice.js", DICE, engine), &[("typo", "true")])
            .unwrap_or_else(|e| panic!("{engine}: the filter did not load: {e}"));
        for message in filter_errors(&filter, &ztf_alerts(), engine) {
            assert!(
                message.contains(
                    "ReferenceError: alert.magpfs: the filter declared no field 'magpfs' \
                     (did you mean 'magpsf'?); its fields are magpsf, rb."
                ) && message.ends_with(&format!("(at dice.js:{line})")),
                "{engine}: {message}"
            );
        }
    }
}

#[test]
fn math_random_in_javascript_draws_the_same_numbers_for_an_alert_in_any_order_and_with_either_engine()
 {
    let alerts = ztf_alerts();
    let reversed: Vec<PathBuf> = alerts.iter().rev().cloned().collect();
    let mut by_engine = Vec::new();
    for (engine, _) in ENGINES {
        let sb = shared_cache_sandbox(1000);
        let filter = load_js(&sb, &build_js("dice.js", DICE, engine), &[])
            .unwrap_or_else(|e| panic!("{engine}: the filter did not load: {e}"));
        // One instance: in order, then backwards, then the first alert again.
        let forward: BTreeMap<PathBuf, Outcome> =
            outcomes_by_file(&filter, &alerts).into_iter().collect();
        let backward = outcomes_by_file(&filter, &reversed);
        for (file, outcome) in &backward {
            assert_eq!(
                outcome,
                &forward[file],
                "{engine}: {} drew other numbers when run in another order",
                file.display()
            );
        }
        let again = outcomes_by_file(&filter, &alerts[..1]);
        assert_eq!(
            again[0].1, forward[&alerts[0]],
            "{engine}: the first alert again"
        );
        // The draws are a function of the declared field values: the same
        // values (the same candidate in several schema versions) draw the
        // same numbers, other values others.
        let mut scores = BTreeMap::new();
        for (file, outcome) in &forward {
            let Outcome::Verdict(Verdict::Accept {
                score: Some(score),
                annotations,
                ..
            }) = outcome
            else {
                panic!("{engine} on {}: {outcome:?}", file.display());
            };
            assert!((0.0..1.0).contains(score), "{engine}: {score}");
            let note = |key: &str| {
                annotations
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_else(|| panic!("{engine}: no note {key} in {annotations:?}"))
            };
            assert_eq!(
                note("clock"),
                "Date.now(): a JavaScript filter has no clock: its verdict must not depend on when it \
                 runs; use the alert's own time (candidate.jd, diaSource.midpointMjdTai)",
                "{engine}"
            );
            assert!(
                note("perf").starts_with("performance.now(): a JavaScript filter has no clock: "),
                "{engine}: {}",
                note("perf")
            );
            scores
                .entry(note("fields").to_string())
                .or_insert_with(Vec::new)
                .push(score.to_bits());
            // The alert object still behaves as a plain one.
            assert_eq!(
                note("plain"),
                r#"["magpsf","rb"] [object Object] true undefined"#,
                "{engine}"
            );
        }
        crate::support::assert_one_draw_per_key(&scores, engine);
        // console.log(alert) wrote it as JSON.
        assert!(
            filter
                .log
                .lines()
                .iter()
                .any(|l| l.text.starts_with("{\"magpsf\":") && l.text.contains("\"rb\":")),
            "{engine}: console.log(alert) did not log it as JSON"
        );
        by_engine.push(forward);
    }
    // The generator and its seed are the SDK's, not the engine's.
    assert_eq!(
        by_engine[0], by_engine[1],
        "QuickJS and SpiderMonkey drew different numbers"
    );
}
