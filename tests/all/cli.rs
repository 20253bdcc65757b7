//! The `bandpass` command as users run it: real binary, real filters,
//! real alerts, and bad input of every kind.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support::{bandpass_bin, filters_dir, ztf_alerts};

pub(crate) fn bandpass(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    Command::new(bandpass_bin())
        .args(args)
        .env("BANDPASS_CACHE_DIR", cache.path())
        .output()
        .expect("bandpass runs")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A serve config at `path` with `filters` (its `[[filter]]` tables)
/// under a Kafka section nothing connects to: for `run --config`, and for
/// what serve refuses before it connects.
pub(crate) fn write_config(path: &std::path::Path, filters: &str) {
    let config = format!(
        "dead_letter_topic = \"dead\"\n[kafka]\nbrokers = [\"127.0.0.1:9\"]\n\
         [input]\ntopics = [\"alerts\"]\ngroup = \"replay\"\n{filters}"
    );
    std::fs::write(path, config).unwrap();
}

pub(crate) fn filter(name: &str) -> String {
    filters_dir()
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

fn ztf_dir() -> String {
    crate::support::data_dir()
        .join("ztf/alerts")
        .display()
        .to_string()
}

#[test]
fn test_prints_a_row_per_alert_and_a_summary() {
    let out = bandpass(&["test", &filter("bright_transients"), &ztf_dir()]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let n = ztf_alerts().len();
    assert!(stdout.contains(&format!("{n} alerts: ")), "{stdout}");
    assert!(stdout.contains("fuel p50"), "{stdout}");
    for file in ztf_alerts() {
        assert!(
            stdout.contains(&file.display().to_string()),
            "no row for {}",
            file.display()
        );
    }
}

#[test]
fn test_json_has_one_entry_per_alert_with_verdict_and_cost() {
    let out = bandpass(&["test", "--json", &filter("bright_transients"), &ztf_dir()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let alerts = doc["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), ztf_alerts().len());
    for a in alerts {
        assert_eq!(a["result"]["outcome"], "verdict");
        assert!(a["result"]["fuel"].as_u64().unwrap() > 0);
        assert!(a["object_id"].as_str().unwrap().starts_with("ZTF"));
    }
    assert_eq!(doc["filter"]["manifest"]["name"], "bright-transients");
}

#[test]
fn test_exits_non_zero_and_says_why_when_the_filter_fails() {
    let out = bandpass(&["test", &filter("hostile_panic"), &ztf_dir()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("panic: panicked on this alert"), "{stdout}");
    assert!(stdout.contains("QUARANTINED"), "{stdout}");
    // It says how to see the alerts it skipped, and that way works.
    let alerts = ztf_alerts().len();
    let hint = format!(
        "the {} alerts after it were not run: --quarantine-after {} runs",
        alerts - 5,
        alerts + 1
    );
    assert!(stdout.contains(&hint), "{stdout}");
    let every = (alerts + 1).to_string();
    let out = bandpass(&[
        "test",
        "--quarantine-after",
        &every,
        &filter("hostile_panic"),
        &ztf_dir(),
    ]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("{alerts} errors")), "{stdout}");
    assert!(!stdout.contains("QUARANTINED"), "{stdout}");
}

#[test]
fn inspect_shows_the_contract_fields_and_imports() {
    let out = bandpass(&["inspect", &filter("fast_risers")]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout
            .contains("bandpass:filter@0.5.0 (host speaks 0.5.0, and runs 0.2.0, 0.3.0 and 0.4.0)"),
        "{stdout}"
    );
    assert!(stdout.contains("state      none"), "{stdout}");
    assert!(stdout.contains("xmatch     none"), "{stdout}");
    assert!(stdout.contains("prv_candidates.magpsf"), "{stdout}");
    assert!(stdout.contains("wasi:cli/"), "{stdout}");
}

#[test]
fn inspect_refuses_a_bad_component_naming_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = bandpass(&["inspect", core.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("core.wasm") && stderr.contains("not a component"),
        "{stderr}"
    );

    let out = bandpass(&["inspect", &filter("future_contract")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("future_contract.wasm") && stderr.contains("1.0.0"),
        "{stderr}"
    );
}

/// The folder of every published ZTF alert schema version.
fn ztf_schemas() -> String {
    format!(
        "{}/../../shared/data/ztf/schema",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn inspect_checks_declared_paths_against_every_schema_version_given() {
    let schemas = ztf_schemas();
    let out = bandpass(&[
        "inspect",
        &filter("fast_risers"),
        "--schemas-from",
        &schemas,
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains("checked against ztf 2.0,") && stdout.contains("ztf 4.02"),
        "{stdout}"
    );

    // A typo in a required path and one in an optional path are both
    // refused before any alert, with the real path, never a `?`.
    for (fixture, typo, real) in [
        ("hostile_unknown_field", "candidate.no_such_field", None),
        (
            "typo_optional_field",
            "candidate.dbr",
            Some("candidate.drb"),
        ),
    ] {
        let out = bandpass(&["inspect", &filter(fixture), "--schemas-from", &schemas]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
        assert!(!stdout.contains("a valid bandpass filter"), "{stdout}");
        let line = stderr
            .lines()
            .find(|l| l.contains(typo))
            .unwrap_or_default();
        assert!(
            line.contains("is in no ztf schema version known here (2.0, 3.0"),
            "{stderr}"
        );
        match real {
            Some(real) => assert!(line.contains(&format!("did you mean '{real}'")), "{line}"),
            None => assert!(line.contains("check its spelling"), "{line}"),
        }
        assert!(
            !line.contains("declare it"),
            "never told to add '?': {line}"
        );
    }

    let out = bandpass(&[
        "inspect",
        &filter("fast_risers"),
        "--schemas-from",
        "/no/such/folder",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/no/such/folder"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn test_names_a_misspelt_optional_path_and_one_no_alert_filled() {
    // Without schema folders the alerts' own schemas are the check, and
    // a warning: a sample may lack the versions that have a path.
    let out = bandpass(&["test", &filter("typo_optional_field"), &ztf_dir()]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: filter 'typo-optional-field': declared field 'candidate.dbr?' is in no ztf schema version")
            && stderr.contains("did you mean 'candidate.drb'"),
        "{stderr}"
    );
    // With them, it is refused before any alert runs.
    let out = bandpass(&[
        "test",
        &filter("typo_optional_field"),
        &ztf_dir(),
        "--schemas-from",
        &ztf_schemas(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    // A real optional path that no alert filled is a warning: v2.0
    // alerts have no `candidate.drb` (it came with v3.3). Alone, they
    // cannot tell it from a typo, and say how to settle it.
    let old = format!("{}/v2.0", ztf_dir());
    let out = bandpass(&["test", &filter("bright_transients"), &old]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("check every version with --schemas-from DIR"),
        "{stderr}"
    );
    let out = bandpass(&[
        "test",
        &filter("bright_transients"),
        &old,
        "--schemas-from",
        &ztf_schemas(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("note: filter 'bright-transients': optional field 'candidate.drb?' is absent from ztf versions 2.0, 3.0, 3.1, 3.2"), "{stderr}");
    assert!(
        stderr.contains("warning: filter 'bright-transients': optional field 'candidate.drb?' was absent from all"),
        "{stderr}"
    );
    assert!(!stderr.contains("error:"), "{stderr}");
}

#[test]
fn explain_shows_each_declared_field_as_received_and_the_verdict() {
    let alert = format!("{}/v4.02/2695378462115010012.avro", ztf_dir());
    let out = bandpass(&["test", &filter("fast_risers"), "--explain", &alert]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("candidate 2695378462115010012"), "{stdout}");
    let line = |path: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{path} ")))
            .unwrap_or_else(|| panic!("no line for {path}:\n{stdout}"))
            .to_string()
    };
    assert!(line("candidate.fid").ends_with("integer  2"), "{stdout}");
    assert!(
        line("candidate.isdiffpos").ends_with("text     \"f\""),
        "{stdout}"
    );
    // A column: its length, its first elements, a null where there is one.
    assert!(
        line("prv_candidates.magpsf?").contains("reals[10]  null, 16.8"),
        "{stdout}"
    );
    assert!(stdout.contains("verdict:\n  reject"), "{stdout}");

    // One alert, or the usual run: not both.
    let out = bandpass(&[
        "test",
        &filter("fast_risers"),
        "--explain",
        &alert,
        &ztf_dir(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--explain"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn demo_writes_synthetic_alerts_on_which_every_sample_filter_accepts_some() {
    let dir = tempfile::tempdir().unwrap();
    let out = bandpass(&[
        "demo",
        "--write",
        dir.path().to_str().unwrap(),
        "--alerts",
        "12",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let ztf = dir.path().join("ztf");
    let rubin = dir.path().join("rubin");
    assert_eq!(std::fs::read_dir(&ztf).unwrap().count(), 12);
    assert!(rubin.join("fast-riser-3.avro").exists());
    for (stem, alerts) in [
        ("bright_transients", &ztf),
        ("fast_risers", &ztf),
        ("nuclear_transients", &ztf),
        ("asteroids", &ztf),
        ("rubin_bright", &rubin),
    ] {
        let out = bandpass(&["test", "--json", &filter(stem), alerts.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{stem}: {}", text(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let accepted = doc["summary"]["tally"]["accepted"].as_u64().unwrap();
        assert!(
            (1..12).contains(&accepted),
            "{stem} accepted {accepted} of 12"
        );
    }
}

#[test]
fn run_replays_the_deployments_of_a_serve_config_each_with_its_own_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bandpass.toml");
    let component = filter("bright_transients");
    // The replay compiles into the config's cache, as serve would (a
    // relative path is from the config's folder).
    let cache = dir.path().join("compiled");
    write_config(
        &config,
        &format!(
            "[engine]\ncache_dir = \"compiled\"\n\
             [[filter]]\nname = \"bright\"\npath = \"{component}\"\noutput_topic = \"bright\"\n\
             [[filter]]\nname = \"very-bright\"\npath = \"{component}\"\noutput_topic = \"very-bright\"\n\
             params = {{ max_mag = \"16\" }}\n\
             [[filter]]\nname = \"off\"\npath = \"{component}\"\noutput_topic = \"off\"\ndisabled = true\n"
        ),
    );
    let out_dir = dir.path().join("out");
    let out = bandpass(&[
        "run",
        "--quiet",
        "--json",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        &ztf_dir(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let accepted = |name: &str| {
        doc["filters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["filter"] == name)
            .unwrap_or_else(|| panic!("no deployment {name}: {doc}"))["tally"]["accepted"]
            .as_u64()
            .unwrap()
    };
    // Each deployment as `--filter` with its own parameters gives.
    let alone = |params: &[&str]| {
        let o = tempfile::tempdir().unwrap();
        let mut a = vec![
            "run",
            "--quiet",
            "--json",
            "--filter",
            &component,
            "--out",
            o.path().to_str().unwrap(),
        ];
        a.extend_from_slice(params);
        let ztf = ztf_dir();
        a.push(&ztf);
        let out = bandpass(&a);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["filters"][0]["tally"]["accepted"].as_u64().unwrap()
    };
    assert_eq!(accepted("bright"), alone(&[]));
    assert_eq!(accepted("very-bright"), alone(&["--param", "max_mag=16"]));
    assert!(accepted("very-bright") < accepted("bright"), "{doc}");
    assert_eq!(
        doc["filters"].as_array().unwrap().len(),
        2,
        "the disabled one is left out: {doc}"
    );
    assert!(out_dir.join("very-bright/verdicts.jsonl").exists());
    let compiled = std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        compiled, 1,
        "one compiled component in the config's cache_dir"
    );

    // --filter and --config do not mix.
    let out = bandpass(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--filter",
        &component,
        "--out",
        out_dir.to_str().unwrap(),
        &ztf_dir(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn nothing_to_read_a_used_output_folder_and_a_name_that_hides_the_sdk_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let empty = empty.to_str().unwrap();
    for args in [
        vec!["test", &filter("asteroids"), empty][..].to_vec(),
        vec!["test", &filter("asteroids"), "--explain", empty],
    ] {
        let out = bandpass(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains(empty), "{}", text(&out.stderr));
    }
    // A folder an earlier run or write filled is not mixed with this one.
    let written = dir.path().join("alerts");
    let write = || {
        bandpass(&[
            "demo",
            "--write",
            written.to_str().unwrap(),
            "--alerts",
            "2",
        ])
    };
    assert_eq!(write().status.code(), Some(0));
    let again = write();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("already holds files"),
        "{}",
        text(&again.stderr)
    );
    let out_dir = dir.path().join("out");
    let run = || {
        bandpass(&[
            "run",
            "--quiet",
            "--filter",
            &filter("asteroids"),
            "--out",
            out_dir.to_str().unwrap(),
            &ztf_dir(),
        ])
    };
    assert_eq!(run().status.code(), Some(0));
    let again = run();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("already holds files"),
        "{}",
        text(&again.stderr)
    );
    // A Python module named bandpass would hide the SDK.
    let out = bandpass(&[
        "new",
        "bandpass",
        "--lang",
        "python",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("SDK"), "{}", text(&out.stderr));
}

#[test]
fn empty_entries_of_the_schema_folders_variable_mean_nothing() {
    let listed = format!(":{}::", ztf_schemas());
    let out = Command::new(bandpass_bin())
        .args(["inspect", &filter("fast_risers")])
        .env("BANDPASS_SCHEMAS_FROM", &listed)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("checked against ztf 2.0"),
        "{}",
        text(&out.stdout)
    );
}

/// A folder of inputs: real alerts, and each kind of bad input.
struct Inputs {
    dir: tempfile::TempDir,
    good: Vec<PathBuf>,
}

fn inputs_with_bad_ones() -> Inputs {
    let dir = tempfile::tempdir().unwrap();
    let alerts = ztf_alerts();
    let mut good = Vec::new();
    for a in &alerts[..4] {
        let to = dir
            .path()
            .join(format!("good-{}", a.file_name().unwrap().to_string_lossy()));
        std::fs::copy(a, &to).unwrap();
        good.push(to);
    }
    let real = std::fs::read(&alerts[0]).unwrap();
    std::fs::write(dir.path().join("truncated.avro"), &real[..real.len() / 3]).unwrap();
    let mut corrupt = real.clone();
    corrupt[4..40].fill(0xff); // the header's metadata map
    std::fs::write(dir.path().join("corrupt-header.avro"), corrupt).unwrap();
    std::fs::write(dir.path().join("not-avro.avro"), b"{\"this\": \"is json\"}").unwrap();

    // An archive with two good members and two junk ones.
    let file = std::fs::File::create(dir.path().join("night.tar.gz")).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    let mut add = |name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes).unwrap();
    };
    add("night/a.avro", &std::fs::read(&alerts[5]).unwrap());
    add("night/README.txt", b"junk member");
    add("night/b.avro", &std::fs::read(&alerts[6]).unwrap());
    add("night/zeros.avro", &[0u8; 100]);
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
    Inputs { dir, good }
}

#[test]
fn run_carries_on_past_bad_inputs_and_names_each_one() {
    let inputs = inputs_with_bad_ones();
    let out_dir = tempfile::tempdir().unwrap();
    let out = bandpass(&[
        "run",
        "--quiet",
        "--filter",
        &filter("bright_transients"),
        "--filter",
        &filter("asteroids"),
        "--out",
        out_dir.path().to_str().unwrap(),
        inputs.dir.path().to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    for bad in [
        "truncated.avro",
        "corrupt-header.avro",
        "not-avro.avro",
        "night.tar.gz:night/README.txt",
        "night.tar.gz:night/zeros.avro",
    ] {
        assert!(stderr.contains(bad), "no error naming {bad}:\n{stderr}");
    }
    // 4 good files + 2 good archive members.
    assert!(stdout.contains("6 alerts in"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["alerts"], 6);
    assert_eq!(summary["unreadable_inputs"], 5);
}

#[test]
fn run_writes_each_accepted_alert_byte_for_byte() {
    let inputs = inputs_with_bad_ones();
    let out_dir = tempfile::tempdir().unwrap();
    let out = bandpass(&[
        "run",
        "--quiet",
        "--json",
        "--filter",
        &filter("bright_transients"),
        "--out",
        out_dir.path().to_str().unwrap(),
        &ztf_dir(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let accepted = doc["filters"][0]["tally"]["accepted"].as_u64().unwrap();
    let folder = out_dir.path().join("bright-transients");
    let written: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "avro"))
        .collect();
    assert_eq!(written.len() as u64, accepted);
    // Beside them, one line per accepted alert: its file and its verdict.
    let verdicts = std::fs::read_to_string(folder.join("verdicts.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = verdicts
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, accepted);
    for line in &lines {
        let file = folder.join(line["file"].as_str().unwrap());
        assert!(written.contains(&file), "{line}");
        assert!(line["score"].as_f64().is_some(), "{line}");
        assert!(
            line["object_id"].as_str().unwrap().starts_with("ZTF"),
            "{line}"
        );
        assert!(
            line["tags"].is_array() && line["notes"].is_object(),
            "{line}"
        );
    }
    assert!(accepted > 0, "the sample filter accepts some real alerts");
    let originals: Vec<Vec<u8>> = ztf_alerts()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    for w in &written {
        let bytes = std::fs::read(w).unwrap();
        assert!(
            originals.contains(&bytes),
            "{} is not an input alert, byte for byte",
            w.display()
        );
    }
    drop(inputs);
}

#[test]
fn run_skips_a_filter_that_does_not_load_and_runs_the_rest() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = bandpass(&[
        "run",
        "--quiet",
        "--filter",
        &filter("hostile_forbidden_import"),
        "--filter",
        &filter("typo_optional_field"),
        "--filter",
        &filter("asteroids"),
        "--schemas-from",
        &ztf_schemas(),
        "--out",
        out_dir.path().to_str().unwrap(),
        &ztf_dir(),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("hostile_forbidden_import.wasm") && stderr.contains("wasi:http"),
        "{stderr}"
    );
    // A misspelt path is a filter that does not load, once the schema
    // folders can tell.
    assert!(
        stderr.contains("filter 'typo-optional-field': declared field 'candidate.dbr?' is in no ztf schema version")
            && stderr.contains("; skipped"),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("asteroids") && !stdout.contains("typo-optional-field"),
        "{stdout}"
    );
}

#[test]
fn test_reads_alerts_from_a_tar_gz_archive() {
    let inputs = inputs_with_bad_ones();
    let archive = inputs.dir.path().join("night.tar.gz");
    let out = bandpass(&[
        "test",
        "--json",
        &filter("asteroids"),
        archive.to_str().unwrap(),
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(doc["input_errors"].as_array().unwrap().len(), 2);
    assert_eq!(out.status.code(), Some(3));
    let _ = inputs.good;
}

#[test]
fn demo_runs_the_sample_filters_on_synthetic_alerts() {
    let out = bandpass(&[
        "demo",
        "--alerts",
        "400",
        "--filters",
        filters_dir().to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    for name in [
        "bright-transients",
        "asteroids",
        "fast-risers",
        "nuclear-transients",
        "rubin-bright",
    ] {
        assert!(stdout.contains(name), "{name} missing:\n{stdout}");
    }
    assert!(stdout.contains("400 alerts decoded once"), "{stdout}");
}

#[test]
fn fields_lists_the_paths_a_filter_can_declare() {
    let alert = ztf_alerts()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("v4.02"))
        .unwrap();
    let out = bandpass(&["fields", alert.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("survey ztf"), "{stdout}");
    for path in [
        "candidate.magpsf",
        "candidate.drb",
        "prv_candidates.jd",
        "objectId",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{path} "))),
            "{path} missing:\n{stdout}"
        );
    }
}

#[test]
fn test_decodes_rubin_wire_format_alerts_with_a_schema_directory() {
    // Re-frame a Rubin container's record as the live stream sends it:
    // 0x00, a big-endian schema id, the bare record.
    let data = crate::support::data_dir();
    let container =
        std::fs::read(data.join("rubin/schema/v7_1/sample_data/fakeAlert.avro")).unwrap();
    let record = crate::decode::record_bytes(&container);
    let mut wire = vec![0u8];
    wire.extend_from_slice(&701u32.to_be_bytes());
    wire.extend_from_slice(&record);
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("alert.bin");
    std::fs::write(&msg, wire).unwrap();

    let schemas = data.join("rubin/schema");
    let out = bandpass(&[
        "test",
        "--json",
        &filter("rubin_bright"),
        msg.to_str().unwrap(),
        "--schemas",
        schemas.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["alerts"][0]["result"]["verdict"], "accept");
    assert_eq!(doc["alerts"][0]["schema"], "lsst.v7_1.alert");

    // Without a schema directory: a clear error naming the file.
    let out = bandpass(&["test", &filter("rubin_bright"), msg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("alert.bin") && stdout.contains("schema id 701"),
        "{stdout}"
    );
}

#[test]
fn parameters_reach_init_and_a_misspelt_one_is_refused() {
    let strict = bandpass(&[
        "test",
        "--json",
        "--param",
        "max_mag=10",
        &filter("bright_transients"),
        &ztf_dir(),
    ]);
    assert_eq!(strict.status.code(), Some(0), "{}", text(&strict.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&strict.stdout).unwrap();
    assert_eq!(
        doc["summary"]["tally"]["accepted"], 0,
        "no real sample is brighter than mag 10"
    );

    let typo = bandpass(&[
        "test",
        "--param",
        "max_mgg=10",
        &filter("bright_transients"),
        &ztf_dir(),
    ]);
    let stderr = text(&typo.stderr);
    assert_eq!(typo.status.code(), Some(2));
    assert!(
        stderr.contains("max_mgg") && stderr.contains("bright_transients.wasm"),
        "{stderr}"
    );
}

#[test]
fn a_reader_that_closes_the_pipe_early_ends_test_quietly_without_a_panic() {
    // `bandpass test ... | head`: the reader is gone before the first row.
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(bandpass_bin())
        .args(["test", &filter("bright_transients"), &ztf_dir()])
        .env("BANDPASS_CACHE_DIR", cache.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bandpass runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.status.success(), "a closed pipe is not success");
}

#[test]
fn token_makes_a_fresh_token_and_the_config_entry_holding_its_hash() {
    let entry = |out: &Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let token = stdout
            .lines()
            .find_map(|l| l.strip_prefix("#   "))
            .expect("the token is printed")
            .to_string();
        let config: String = stdout
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        (token, config)
    };
    let (token, config) = entry(&bandpass(&["token", "--group", "hosts"]));
    let said = text(&bandpass(&["token", "--group", "hosts"]).stdout);
    assert!(
        said.contains("turning uploads on (the first group or the operator token) needs a restart"),
        "{said}"
    );
    let parsed: toml::Value = toml::from_str(&config).expect("a TOML entry");
    let group = &parsed["admin"]["group"];
    let group = group.as_array().map(|a| &a[0]).unwrap_or(group);
    assert_eq!(group["name"].as_str(), Some("hosts"));
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    assert_eq!(group["token_sha256"].as_str(), Some(hash.as_str()));
    let (again, _) = entry(&bandpass(&["token", "--group", "hosts"]));
    assert_ne!(token, again, "each run makes a new token");
    assert!(token.len() >= 64, "{token}");
    let refused = bandpass(&["token", "--group", "Hosts!"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("not a group name"));
}

#[test]
fn serve_check_says_what_would_run_without_kafka_or_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    let bright = filters_dir().join("bright_transients.wasm");
    let veto = filters_dir().join("bright_star_veto.wasm");
    // No broker listens there: nothing may try it.
    let base = format!(
        "[kafka]\nbrokers = [\"127.0.0.1:1\"]\n[input]\ntopics = [\"ztf_alerts\"]\n\
         group = \"night\"\n[[filter]]\npath = \"{}\"\noutput_topic = \"bright\"\n\
         params = {{ max_mag = 18.5 }}\n",
        bright.display()
    );
    let check = |text: &str| {
        std::fs::write(&config, text).unwrap();
        bandpass(&["serve", "--check", "--config", config.to_str().unwrap()])
    };
    let out = check(&base);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    for line in [
        "ready to serve (checked without Kafka)",
        "input: ztf_alerts as consumer group night from brokers 127.0.0.1:1",
        "filters (1):",
        "bright-transients 0.1.0 (ztf) -> bright  params max_mag=18.5",
        "uploads: off",
        "sky: catalogues none; maps none; watchlists none",
    ] {
        assert!(said.contains(line), "{line}: {said}");
    }
    // One component with parameter sets: a deployment a set.
    let sets = base.replace(
        "output_topic = \"bright\"",
        "output_topic = \"bright.{name}\"",
    ) + "sets = [{ name = \"faint\", params = { max_mag = 20 } }, { name = \"real\", params = { min_real = 0.9 } }, \
         { name = \"off\", disabled = true }]\n";
    let out = check(&sets);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    for line in [
        "filters (2):",
        "faint 0.1.0 (ztf) -> bright.faint  params max_mag=20",
        "real 0.1.0 (ztf) -> bright.real  params max_mag=18.5 min_real=0.9",
        "disabled (1, not loaded): off",
    ] {
        assert!(said.contains(line), "{line}: {said}");
    }
    // What is wrong, named: a key, a filter asking for a catalogue the
    // config does not give.
    for (extra, wrong) in [
        ("[engine]\nworkers_count = 2\n", "workers_count"),
        (
            &format!(
                "[[filter]]\npath = \"{}\"\noutput_topic = \"veto\"\n",
                veto.display()
            ),
            "cross-match 'stars' asks for catalogue 'gaia', which this host does not have",
        ),
    ] {
        let out = check(&format!("{base}{extra}"));
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
        assert!(
            text(&out.stderr).contains(wrong),
            "{wrong}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stdout).contains("ready to serve"));
    }
}
