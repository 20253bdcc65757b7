//! The same filter gives the same verdict, byte for byte, in `bandpass
//! test`, in `bandpass run` and in a real `serve` (two workers, alerts
//! spread over partitions, so each instance sees other alerts in another
//! order): a filter that reads the wall clock, the monotonic clock and
//! random numbers gets them fixed by the alert, in Rust, Python and
//! JavaScript.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::kafka::{consume, produce, unique};
use crate::support::processes::ServeBuilder;
use crate::support::{
    bandpass_bin, filters_dir, js_filters_dir, python_filters_dir, ztf_alert_bytes,
};

/// What an accepted alert carried: its score's text and its notes.
type Carried = (String, BTreeMap<String, String>);

/// `bandpass test --json`: each alert file's verdict.
fn by_test(filter: &Path) -> BTreeMap<Vec<u8>, Carried> {
    let dir = crate::support::data_dir().join("ztf/alerts");
    let out = succeeds(
        Command::new(bandpass_bin())
            .args(["test", "--json"])
            .arg(filter)
            .arg(&dir),
    );
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    doc["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let bytes = std::fs::read(a["input"].as_str().unwrap()).unwrap();
            let r = &a["result"];
            assert_eq!(r["verdict"], "accept", "{a}");
            let notes = r["annotations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|kv| {
                    (
                        kv[0].as_str().unwrap().to_string(),
                        kv[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (bytes, (score_text(&r["score"]), notes))
        })
        .collect()
}

/// `bandpass run --out`: each accepted alert's verdict line, keyed by
/// the alert written beside it.
fn by_run(filter: &Path, name: &str) -> BTreeMap<Vec<u8>, Carried> {
    let out_dir = tempfile::tempdir().unwrap();
    succeeds(
        Command::new(bandpass_bin())
            .args(["run", "--quiet", "--filter"])
            .arg(filter)
            .arg("--out")
            .arg(out_dir.path())
            .arg(crate::support::data_dir().join("ztf/alerts")),
    );
    let folder = out_dir.path().join(name);
    let lines = std::fs::read_to_string(folder.join("verdicts.jsonl")).unwrap();
    lines
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let bytes = std::fs::read(folder.join(v["file"].as_str().unwrap())).unwrap();
            let notes = v["notes"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (bytes, (score_text(&v["score"]), notes))
        })
        .collect()
}

/// A real `serve` over the alerts on a topic of several partitions.
fn by_serve(filter: &Path) -> BTreeMap<Vec<u8>, Carried> {
    let dir = tempfile::tempdir().unwrap();
    let input = unique("determinism-in");
    let output = unique("determinism-out");
    let alerts = ztf_alert_bytes();
    produce(&input, &alerts);
    let config = ServeBuilder::new(
        dir.path().join("bandpass.toml"),
        &input,
        &unique("determinism"),
    )
    .filter_at(filter, &output)
    .write();
    let _serve = config.spawn();
    consume(&output, alerts.len(), Duration::from_secs(120))
        .into_iter()
        .map(|(payload, headers)| {
            let notes = headers
                .iter()
                .filter_map(|(k, v)| {
                    Some((k.strip_prefix("bandpass-note-")?.to_string(), v.clone()))
                })
                .collect();
            let score: f64 = headers["bandpass-score"].parse().unwrap();
            (payload, (score_text(&serde_json::json!(score)), notes))
        })
        .collect()
}

/// Runs a command that must exit 0; its stdout.
fn succeeds(command: &mut Command) -> Vec<u8> {
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    out.stdout
}

/// A score as the shortest text that reads back to the same f64.
fn score_text(v: &serde_json::Value) -> String {
    format!("{:?}", v.as_f64().expect("a score"))
}

/// Runs `filter` through test, run and serve and compares every
/// alert's verdict; returns the verdicts for checks of their own.
fn same_everywhere(filter: &Path) -> BTreeMap<Vec<u8>, Carried> {
    let test = by_test(filter);
    let distinct: std::collections::BTreeSet<Vec<u8>> = ztf_alert_bytes().into_iter().collect();
    assert_eq!(test.len(), distinct.len(), "one accepted verdict per alert");
    let run = by_run(filter, "clock-and-dice");
    assert_eq!(
        differences(&run, &test),
        Vec::<String>::new(),
        "run and test differ"
    );
    let serve = by_serve(filter);
    assert_eq!(
        differences(&serve, &test),
        Vec::<String>::new(),
        "serve and test differ"
    );
    test
}

/// Each alert whose verdict differs between two runs, both verdicts shown.
fn differences(a: &BTreeMap<Vec<u8>, Carried>, b: &BTreeMap<Vec<u8>, Carried>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&Vec<u8>> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "alert of {} bytes: {:?} against {:?}",
                k.len(),
                a.get(k),
                b.get(k)
            )
        })
        .collect()
}

#[test]
fn a_rust_filter_reading_clocks_and_random_gives_one_verdict_everywhere() {
    let verdicts = same_everywhere(&filters_dir().join("clock_and_dice.wasm"));
    let notes: Vec<&BTreeMap<String, String>> = verdicts.values().map(|(_, n)| n).collect();
    // The clock is the alert's time (ZTF JDs of 2018 and later), not now.
    for n in &notes {
        let wall: u128 = n["wall_ns"].parse().unwrap();
        assert!(
            (1_500_000_000_000_000_000..1_800_000_000_000_000_000).contains(&wall),
            "{n:?}"
        );
        assert_eq!(n["elapsed_ns"], "1000", "{n:?}");
    }
    // Random differs from alert to alert, so it is not a constant.
    let distinct: std::collections::BTreeSet<&String> =
        notes.iter().map(|n| &n["random"]).collect();
    assert!(distinct.len() > notes.len() / 2, "{notes:?}");
}

#[test]
fn a_python_filter_reading_clocks_and_random_gives_one_verdict_everywhere() {
    let verdicts = same_everywhere(&python_filters_dir().join("clock-and-dice.wasm"));
    for (_, n) in verdicts.values() {
        let wall: u128 = n["wall_ns"].parse().unwrap();
        assert!(
            (1_500_000_000_000_000_000..1_800_000_000_000_000_000).contains(&wall),
            "{n:?}"
        );
    }
}

#[test]
fn a_javascript_filter_drawing_random_gives_one_verdict_everywhere() {
    let verdicts = same_everywhere(&js_filters_dir().join("clock-and-dice.wasm"));
    for (_, n) in verdicts.values() {
        assert_eq!(n["clock"], "throws", "{n:?}");
    }
}

/// Filter by filter over batches gives what alert by alert gives: each
/// verdict, failure (with a quarantine after repeated ones) and fuel
/// count, for every batch size, with good and failing filters mixed.
#[test]
fn filter_by_filter_batches_give_each_filter_what_alert_by_alert_gives() {
    use bandpass::decode::SchemaSource;
    use bandpass::runner::Runner;
    use bandpass::sandbox::Limits;
    use bytes::Bytes;

    let sb = crate::support::sandbox();
    let limits = Limits {
        fuel_per_alert: 5_000_000,
        deadline_ms: 10_000,
        ..Limits::default()
    };
    let names = [
        "bright_transients",
        "hostile_panic",
        "fast_risers",
        "clock_and_dice",
        "hostile_infinite_loop",
        "nuclear_transients",
        "hostile_million_tags",
        "bench_twenty_fields",
    ];
    // Each runner its own filters: quarantine is a loaded filter's.
    let runner = || {
        let filters: Vec<_> = names
            .iter()
            .map(|n| crate::support::load_with(&sb, n, limits, vec![]))
            .collect();
        Runner::new(&filters, SchemaSource::None, Default::default())
    };
    let messages: Vec<Bytes> = std::iter::repeat_n(ztf_alert_bytes(), 3)
        .flatten()
        .map(Bytes::from)
        .collect();
    let shown = |results: Vec<bandpass::runner::AlertResult>| -> Vec<String> {
        results
            .iter()
            .flat_map(|r| {
                r.evaluations.iter().zip(names).map(|(e, name)| {
                    let mut e = serde_json::to_value(e).unwrap();
                    e.as_object_mut().unwrap().remove("nanos");
                    format!("{name}: {e}")
                })
            })
            .collect()
    };
    let mut one = runner();
    let decoded: Vec<_> = messages
        .iter()
        .flat_map(|m| one.decoder().decode(m).unwrap())
        .collect();
    let want = shown(decoded.iter().map(|a| one.evaluate(a.clone())).collect());
    // Failures happened and led to quarantines: the batches must keep
    // the same order of calls per filter.
    assert!(want.iter().any(|e| e.contains("quarantined")), "{want:?}");
    assert!(want.iter().any(|e| e.contains("accept")), "{want:?}");
    for size in [2, 7, 54] {
        let mut batched = runner();
        let mut got = Vec::new();
        for batch in decoded.chunks(size) {
            got.extend(shown(batched.evaluate_batch(batch.to_vec())));
        }
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "batches of {size}");
        }
    }
}
