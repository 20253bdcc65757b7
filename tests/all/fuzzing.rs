//! Every input the fuzzers keep (`fuzz/regressions/<target>/`: findings,
//! each fixed; `fuzz/seeds/<target>/`: small inputs written by hand), and
//! the seeds made from the real alerts, replayed through the fuzz
//! targets' bodies (host/src/fuzzing.rs) on every test run: a finding
//! once fixed stays fixed.

use std::path::Path;

use bandpass::fuzzing;

use crate::support::{repo_root, rubin_alerts, ztf_alerts};

/// A fuzz target's body.
type Target = fn(&[u8]);

/// The fuzz targets, by the name of their folder under `fuzz/`.
const TARGETS: [(&str, Target); 6] = [
    ("decode_message", fuzzing::decode_message),
    ("writer_schema", fuzzing::writer_schema),
    ("manifest_verdict", fuzzing::manifest_verdict),
    ("config", fuzzing::config),
    ("upload_request", fuzzing::upload_request),
    ("object_record", fuzzing::object_record),
];

/// The files under `dir`, if it exists.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_kept_fuzz_input_runs_through_its_target_without_a_panic() {
    let mut replayed = 0;
    for (target, run) in TARGETS {
        for kind in ["regressions", "seeds"] {
            for file in files(&repo_root().join("fuzz").join(kind).join(target)) {
                let bytes = std::fs::read(&file).unwrap();
                let outcome = std::panic::catch_unwind(|| run(&bytes));
                assert!(outcome.is_ok(), "{} panicked {target}", file.display());
                replayed += 1;
            }
        }
    }
    assert!(
        replayed >= 10,
        "only {replayed} kept fuzz inputs were found"
    );
}

#[test]
fn the_real_alerts_and_their_cuts_run_through_the_decoder_targets() {
    // What scripts/fuzz.sh seeds the decoder targets with, replayed here
    // with a sample of cuts (the fuzzers go on from these).
    let mut alerts = ztf_alerts();
    alerts.extend(rubin_alerts());
    for path in alerts {
        let bytes = std::fs::read(&path).unwrap();
        for cut in [bytes.len(), bytes.len() / 2, 300, 40, 5] {
            fuzzing::decode_message(&bytes[..cut.min(bytes.len())]);
        }
    }
}

#[test]
fn the_object_record_seeds_are_records_so_the_target_reaches_its_checks() {
    let seeds = files(&repo_root().join("fuzz/seeds/object_record"));
    assert_eq!(seeds.len(), 4, "{seeds:?}");
    for seed in seeds {
        let bytes = std::fs::read(&seed).unwrap();
        let record = bandpass::memory::ObjectRecord::decode(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
        if seed.ends_with("state-applied-offset") {
            assert_eq!(record.applied, Some(41), "the third encoding's offset");
        }
        assert_eq!(
            record.state("rise-once", "rise-once/1"),
            Some(&br#"{"done":true}"#[..])
        );
    }
}
