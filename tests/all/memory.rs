//! Filters that remember (contract 0.3.0) offline: a state per object and
//! per deployment, in alert time order, through `bandpass test` and
//! `bandpass run`, on nights of real ZTF 4.02 alerts written by
//! `tests/py/nights.py`; the verdicts compared with the cut stated
//! independently in `tests/py/expected_verdicts.py`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::{bandpass, filter, text, write_config};
use crate::support::{data_dir, repo_root, texts_variant};

/// Nights of alerts of five objects (see `tests/py/nights.py`), the epochs
/// from `days` (`"FROM:TO"`, or all).
fn nights(out: &Path, days: Option<&str>) -> Vec<PathBuf> {
    nights_from(out, days, None)
}

/// The first night of the template's own previous candidates' year: each
/// packet then carries them (ten: seven detections, three limits, from
/// JD 2460420.96 to 2460447.92), within a year of every night.
const WITHIN_A_YEAR: &str = "2460450.5";

/// [`nights`] from JD `jd0` (default 2461000.5, over a year after the
/// template's previous candidates).
fn nights_from(out: &Path, days: Option<&str>, jd0: Option<&str>) -> Vec<PathBuf> {
    let template = data_dir().join("ztf/alerts/v4.02/2695378462115010012.avro");
    let mut cmd = Command::new("python3");
    if let Some(jd0) = jd0 {
        cmd.env("NIGHTS_JD0", jd0);
    }
    cmd.arg(repo_root().join("tests/py/nights.py"))
        .arg(&template)
        .arg(out);
    if let Some(days) = days {
        cmd.arg(days);
    }
    let made = cmd.output().expect("python3 runs");
    assert!(made.status.success(), "{}", text(&made.stderr));
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// `{file: verdict}` of rise-once from the Python statement of its cut.
fn expected(files: &[PathBuf]) -> BTreeMap<String, String> {
    let out = Command::new("python3")
        .arg(repo_root().join("tests/py/expected_verdicts.py"))
        .args(files)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_slice(&out.stdout).unwrap();
    all.into_iter()
        .map(|(file, v)| (file, v["rise-once"].clone()))
        .collect()
}

/// `bandpass test --json`'s `{input: verdict}`, and the document.
fn tested(component: &str, args: &[&str]) -> (BTreeMap<String, String>, serde_json::Value) {
    let mut all = vec!["test", "--json", component];
    all.extend_from_slice(args);
    let out = bandpass(&all);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}\n{}", text(&out.stdout), text(&out.stderr)));
    let verdicts = doc["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let r = &a["result"];
            let verdict = r["verdict"]
                .as_str()
                .or(r["outcome"].as_str())
                .unwrap()
                .to_string();
            (a["input"].as_str().unwrap().to_string(), verdict)
        })
        .collect();
    (verdicts, doc)
}

/// `m` keyed by each path's file name: the same nights written to other
/// folders compare.
fn by_file_name<V>(m: BTreeMap<String, V>) -> BTreeMap<String, V> {
    m.into_iter()
        .map(|(k, v)| {
            (
                Path::new(&k).file_name().unwrap().to_string_lossy().into(),
                v,
            )
        })
        .collect()
}

fn accepted(verdicts: &BTreeMap<String, String>) -> Vec<&str> {
    verdicts
        .iter()
        .filter(|(_, v)| *v == "accept")
        .map(|(k, _)| k.as_str())
        .collect()
}

#[test]
fn rise_once_accepts_each_object_once_in_alert_time_order_as_its_cut_implies() {
    let dir = tempfile::tempdir().unwrap();
    let files = nights(dir.path(), None);
    let want = expected(&files);
    assert_eq!(
        accepted(&want).len(),
        3,
        "the nights hold three rises: {want:?}"
    );
    let (got, doc) = tested(&filter("rise_once"), &[dir.path().to_str().unwrap()]);
    assert_eq!(got, want, "rise-once and its Python statement differ");
    // Files in name order are not in time order: the filter saw them by
    // time, the five objects' first nights first, whatever their names.
    let rows = doc["alerts"].as_array().unwrap();
    let first_five: std::collections::BTreeSet<&str> = rows[..5]
        .iter()
        .map(|r| r["object_id"].as_str().unwrap())
        .collect();
    assert_eq!(first_five.len(), 5, "{:?}", &rows[..5]);
    let seen: Vec<&str> = rows.iter().map(|r| r["input"].as_str().unwrap()).collect();
    let mut by_name = seen.clone();
    by_name.sort();
    assert_ne!(
        seen, by_name,
        "the nights' file names are not in time order"
    );
    let state = &rows[0]["state"];
    assert!(state["set"].as_str().unwrap().contains("faintest"));
    assert_eq!(
        hex::decode(state["hex"].as_str().unwrap()).unwrap().len() as u64,
        state["bytes"].as_u64().unwrap(),
        "the exact bytes too: {state}"
    );
    assert_eq!(doc["memory"]["objects"], 5, "{}", doc["memory"]);

    // `--explain` on one alert with `--state` meets what a run kept: the
    // object is done, so the state stays.
    let state = dir.path().join("explain-state");
    let rise = filter("rise_once");
    let state_arg = state.to_str().unwrap();
    bandpass(&[
        "test",
        &rise,
        "--state",
        state_arg,
        dir.path().to_str().unwrap(),
    ]);
    let first_accepted = accepted(&want)[0].to_string();
    let out = bandpass(&[
        "test",
        &rise,
        "--state",
        state_arg,
        "--explain",
        &first_accepted,
    ]);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("  reject") && shown.contains("  state  unchanged"),
        "{shown}"
    );

    // `run` gives the same accepted alerts, and writes them.
    let out_dir = dir.path().join("out");
    let out = bandpass(&[
        "run",
        "--quiet",
        "--filter",
        &filter("rise_once"),
        "--out",
        out_dir.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut written: Vec<String> = std::fs::read_dir(out_dir.join("rise-once"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".avro"))
        .collect();
    written.sort();
    let mut want_names: Vec<String> = accepted(&want)
        .iter()
        .map(|f| {
            Path::new(f)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    want_names.sort();
    assert_eq!(written, want_names);
    assert!(
        text(&out.stdout).contains("in alert time order"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_state_folder_carries_what_filters_remember_into_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let whole = expected(&nights(&dir.path().join("whole"), None));
    let early = nights(&dir.path().join("early"), Some("0:2"));
    let late = nights(&dir.path().join("late"), Some("2:100"));
    let state = dir.path().join("state");
    let rise = filter("rise_once");
    let run = |part: &Path, with_state: bool| {
        let mut args = vec![part.to_str().unwrap()];
        if with_state {
            args.extend(["--state", state.to_str().unwrap()]);
        }
        tested(&rise, &args).0
    };
    let mut parts = by_file_name(run(early[0].parent().unwrap(), true));
    parts.extend(by_file_name(run(late[0].parent().unwrap(), true)));
    assert_eq!(
        parts,
        by_file_name(whole),
        "two runs on one state folder = one run on all nights"
    );
    // Without the first nights' state the second part misses a rise it
    // can only see against them (ZTF26aaaaaaa's faintest is on night 1).
    let alone = by_file_name(run(late[0].parent().unwrap(), false));
    let after = |v: &BTreeMap<String, String>| {
        v.iter()
            .filter(|(k, v)| *v == "accept" && alone.contains_key(*k))
            .count()
    };
    assert!(after(&alone) < after(&parts), "{alone:?}");
    assert!(
        std::fs::read_dir(&state).unwrap().next().is_some(),
        "the folder is kept"
    );
}

#[test]
fn two_deployments_of_one_component_keep_two_states() {
    let dir = tempfile::tempdir().unwrap();
    nights(&dir.path().join("nights"), None);
    let config = dir.path().join("bandpass.toml");
    let component = filter("rise_once");
    write_config(
        &config,
        &format!(
            "[[filter]]\nname = \"strict\"\npath = \"{component}\"\noutput_topic = \"strict\"\n\
             [[filter]]\nname = \"loose\"\npath = \"{component}\"\noutput_topic = \"loose\"\n\
             params = {{ min_rise = \"0.25\" }}\n"
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
        dir.path().join("nights").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let verdicts = |name: &str| -> Vec<String> {
        let lines = std::fs::read_to_string(out_dir.join(name).join("verdicts.jsonl")).unwrap();
        let mut objects: Vec<String> = lines
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!("{} {}", v["object_id"], v["candidate_id"])
            })
            .collect();
        objects.sort();
        objects
    };
    let (strict, loose) = (verdicts("strict"), verdicts("loose"));
    // Each accepts each rising object once; the loose one accepts
    // ZTF26aaaaaaa a night earlier (a rise of 0.3). Had they shared one
    // state, the second to run would have found every object done.
    assert_eq!(strict.len(), 3, "{strict:?}");
    assert_eq!(loose.len(), 3, "{loose:?}");
    assert_ne!(strict, loose);
}

#[test]
fn a_filter_built_for_contract_0_2_0_runs_unchanged_beside_0_3_0_ones() {
    let legacy = filter("contract_0_2_0");
    let out = bandpass(&["inspect", &legacy]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}{}", text(&out.stderr));
    assert!(shown.contains("bandpass:filter@0.2.0"), "{shown}");
    assert!(shown.contains("state      none"), "{shown}");
    let alert = data_dir().join("ztf/alerts/v4.02/2695378462115010012.avro");
    let (verdicts, doc) = tested(&legacy, &[alert.to_str().unwrap()]);
    assert_eq!(accepted(&verdicts).len(), 1, "magpsf 14.9 <= 18.5: {doc}");
    assert_eq!(doc["alerts"][0]["result"]["tags"][0], "legacy", "{doc}");
    assert!(doc["alerts"][0]["state"].is_null());
    // In one run with a filter that keeps state.
    let dir = tempfile::tempdir().unwrap();
    let out = bandpass(&[
        "run",
        "--quiet",
        "--filter",
        &legacy,
        "--filter",
        &filter("rise_once"),
        "--out",
        dir.path().join("out").to_str().unwrap(),
        alert.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_filter_built_for_contract_0_4_0_gets_its_texts_in_others_and_keeps_its_state() {
    let legacy = filter("contract_0_4_0");
    let out = bandpass(&["inspect", &legacy]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}{}", text(&out.stderr));
    assert!(
        shown.contains("contract   bandpass:filter@0.4.0"),
        "{shown}"
    );
    // The fixture fails an alert whose isdiffpos does not come as 0.4.0
    // sends a text (kind 4, an entry of `others`): none fails, and it
    // reads the real values.
    let ztf = data_dir().join("ztf");
    let (verdicts, doc) = tested(&legacy, &[ztf.to_str().unwrap()]);
    assert_eq!(doc["summary"]["tally"]["errors"], 0, "{doc}");
    let accepts = accepted(&verdicts).len();
    assert!(accepts > 0 && accepts < verdicts.len(), "{doc}");
    for a in doc["alerts"].as_array().unwrap() {
        if a["result"]["verdict"] == "accept" {
            let tags = &a["result"]["tags"];
            assert_eq!(tags[0], "legacy-0-4", "{a}");
            assert!(tags[1] == "isdiffpos-t" || tags[1] == "isdiffpos-1", "{a}");
        }
    }
    // Its state: the same alert twice, the second finds the first's count.
    let alert = ztf.join("alerts/v3.3/472263571115115000.avro");
    let (_, doc) = tested(&legacy, &[alert.to_str().unwrap(), alert.to_str().unwrap()]);
    assert_eq!(doc["alerts"][1]["result"]["score"], 2.0, "{doc}");
    // In one run beside a 0.5.0 filter that reads a text too.
    let dir = tempfile::tempdir().unwrap();
    let out = bandpass(&[
        "run",
        "--quiet",
        "--filter",
        &legacy,
        "--filter",
        &filter("bright_transients"),
        "--out",
        dir.path().join("out").to_str().unwrap(),
        ztf.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_state_over_its_bound_or_never_declared_fails_its_alert_and_names_why() {
    let dir = tempfile::tempdir().unwrap();
    nights(&dir.path().join("nights"), None);
    let nights = dir.path().join("nights");
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let declared = write("declared.wasm", texts_variant("hasstat"));
    let undeclared = write("undeclared.wasm", texts_variant("default"));
    let escapes = write("escapes.wasm", texts_variant("statefm"));

    // At the bound: every alert's state is kept.
    let (verdicts, doc) = tested(
        &declared,
        &["--param", "state=max", nights.to_str().unwrap()],
    );
    assert!(verdicts.values().all(|v| v == "reject"), "{doc}");
    // One byte over: a named failure of each alert, never a host error;
    // the filter is quarantined after five in a row, as for any failure.
    let out = bandpass(&[
        "test",
        &declared,
        "--param",
        "state=oversize",
        nights.to_str().unwrap(),
    ]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("bad-state: returned a state of 65 bytes, over the 64"),
        "{shown}"
    );
    assert!(shown.contains("QUARANTINED"), "{shown}");
    // A state set by a filter whose manifest declares none.
    let (_, doc) = tested(
        &undeclared,
        &["--param", "state=max", nights.to_str().unwrap()],
    );
    let message = doc["alerts"][0]["result"]["message"].as_str().unwrap();
    assert!(message.contains("its manifest declares none"), "{doc}");
    // A format holding control characters is refused at load, escaped.
    let out = bandpass(&["inspect", &escapes]);
    let shown = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        shown.contains("state format 'fmt\\r\\n\\u{1b}[2J'"),
        "{shown}"
    );
    // Over the deployment's cap: refused at load, naming the key.
    let out = bandpass(&[
        "test",
        &declared,
        "--max-state-bytes",
        "32",
        nights.to_str().unwrap(),
    ]);
    let shown = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("over this deployment's cap of 32 bytes"),
        "{shown}"
    );
}

#[test]
fn serve_refuses_a_filter_with_state_or_history_unless_the_input_is_keyed_by_object() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bandpass.toml");
    write_config(
        &config,
        &format!(
            "[[filter]]\nname = \"once\"\npath = \"{}\"\noutput_topic = \"once\"\n",
            filter("rise_once")
        ),
    );
    let out = bandpass(&["serve", "--config", config.to_str().unwrap()]);
    let shown = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("filter 'once': rise-once keeps a state per object (format 'rise-once/1')")
            && shown.contains("input.keyed_by = \"object\"")
            && shown.contains("input.rekey = true")
            && shown.contains("bandpass run --state DIR"),
        "{shown}"
    );
    let probe = config
        .to_str()
        .unwrap()
        .replace("bandpass.toml", "probe.toml");
    std::fs::write(
        &probe,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("rise_once.wasm", "history_probe.wasm"),
    )
    .unwrap();
    let out = bandpass(&["serve", "--config", &probe]);
    let shown = text(&out.stderr);
    assert!(
        shown.contains("history-probe reads an object's history ('history.jd')"),
        "{shown}"
    );
    // Keyed by object, but the operator keeps fewer columns than the
    // filter reads: refused naming the column and the key.
    let keyed = std::fs::read_to_string(&probe).unwrap().replacen(
        "[input]",
        "[input]\nkeyed_by = \"object\"",
        1,
    );
    assert!(
        keyed.contains("keyed_by"),
        "the config has an [input] table"
    );
    std::fs::write(
        &probe,
        format!(
            "{keyed}\n[memory.history.ztf]\ncolumns = [\"jd\", \"fid\", \"candid\", \"magpsf\"]\n"
        ),
    )
    .unwrap();
    let out = bandpass(&["serve", "--config", &probe]);
    let shown = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("'history.isdiffpos' is not a history column the host keeps")
            && shown.contains("memory.history.ztf.columns lists it"),
        "{shown}"
    );
    // A list without what places a point is a config error naming its key.
    std::fs::write(
        &probe,
        format!("{keyed}\n[memory.history.ztf]\ncolumns = [\"magpsf\"]\n"),
    )
    .unwrap();
    let out = bandpass(&["serve", "--config", &probe]);
    let shown = text(&out.stderr);
    assert!(
        shown.contains("memory.history.ztf.columns") && shown.contains("must keep jd, candid, fid"),
        "{shown}"
    );
}

/// Starts `serve` and waits until `/readyz` says ready, or fails with its
/// log.
fn ready(
    serve: &crate::support::processes::ServeBuilder,
    log: &Path,
) -> crate::support::processes::Serve {
    let started = serve.spawn();
    let (status, body) = crate::support::http::admin_until(
        serve.admin_addr(),
        "/readyz",
        200,
        std::time::Duration::from_secs(90),
    );
    assert_eq!(
        status,
        200,
        "never ready ({body}); serve's log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    started
}

/// How the test input is keyed, and what the config says of it.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Keying {
    /// Keyed by object id, and `input.keyed_by = "object"`.
    ByObject,
    /// Every message under one key (one partition, in time order), and
    /// `input.rekey = true`.
    Rekeyed,
}

/// A serve config in `dir` for `group` on `input`, keyed as `keying`
/// says, with `delivery`, rise-once deployed to `output`, an admin port,
/// a transactional id of its own (named after `dir`) and its log in
/// `dir/serve.log`.
fn remembering_serve(
    dir: &Path,
    topics: (&str, &str, &str),
    delivery: &str,
    keying: Keying,
) -> (crate::support::processes::ServeBuilder, PathBuf) {
    remembering_serve_of(dir, topics, (delivery, keying), ("rise_once", ""))
}

/// [`remembering_serve`] deploying `component`, with `more` at the end of
/// the config (in its `[memory]` table).
fn remembering_serve_of(
    dir: &Path,
    (input, group, output): (&str, &str, &str),
    (delivery, keying): (&str, Keying),
    (component, more): (&str, &str),
) -> (crate::support::processes::ServeBuilder, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let log = dir.join("serve.log");
    let built =
        crate::support::processes::ServeBuilder::new(dir.join("bandpass.toml"), input, group)
            .filter(component, output)
            .admin()
            .log(&log)
            .write();
    let name = dir.file_name().unwrap().to_string_lossy();
    let config = std::fs::read_to_string(built.config_file())
        .unwrap()
        .replace(
            "[input]\n",
            match keying {
                Keying::ByObject => "[input]\nkeyed_by = \"object\"\n",
                Keying::Rekeyed => "[input]\nrekey = true\n",
            },
        )
        .replace(
            "[kafka]\n",
            &format!("[kafka]\ntransactional_id = \"{group}-{name}\"\n"),
        )
        // At-least-once: no offset committed before a SIGKILL, so that a
        // restart reads every alert again on a memory that holds them.
        .replace(
            "[kafka.librdkafka]\n",
            if delivery == "at-least-once" {
                "[kafka.librdkafka]\n\"auto.commit.interval.ms\" = \"600000\"\n"
            } else {
                "[kafka.librdkafka]\n"
            },
        );
    std::fs::write(
        built.config_file(),
        format!(
            "delivery = \"{delivery}\"\n{config}[memory]\ndir = \"{}\"\n{more}",
            dir.join("memory").display()
        ),
    )
    .unwrap();
    (built, log)
}

/// The nights in alert time order, split after the second accepted alert:
/// an instance that runs the first part accepts two objects, and one that
/// runs the second must remember them (and the third object's past, to
/// accept it).
struct SplitNights {
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
    /// `{file: verdict}` over all the nights, from the cut's statement.
    want: BTreeMap<String, String>,
    /// `(file, object id)` in alert time order.
    rows: Vec<(String, String)>,
    split: usize,
}

impl SplitNights {
    fn new() -> SplitNights {
        let dir = tempfile::tempdir().unwrap();
        let nights_dir = dir.path().join("nights");
        std::fs::create_dir(&nights_dir).unwrap();
        let files = nights(&nights_dir, None);
        let want = expected(&files);
        let (_, doc) = tested(&filter("rise_once"), &[nights_dir.to_str().unwrap()]);
        let rows: Vec<(String, String)> = doc["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["input"].as_str().unwrap().to_string(),
                    r["object_id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let split = rows
            .iter()
            .enumerate()
            .filter(|(_, (file, _))| want[file] == "accept")
            .nth(1)
            .unwrap()
            .0
            + 1;
        let nights = SplitNights {
            dir,
            files,
            want,
            rows,
            split,
        };
        // Without what the first part left, the second gives other
        // verdicts: an instance that restored nothing would be seen.
        let later = nights.dir.path().join("later");
        std::fs::create_dir(&later).unwrap();
        for (file, _) in nights.after() {
            std::fs::copy(file, later.join(Path::new(file).file_name().unwrap())).unwrap();
        }
        let (alone, _) = tested(&filter("rise_once"), &[later.to_str().unwrap()]);
        let in_full: BTreeMap<String, String> = nights
            .after()
            .iter()
            .map(|(f, _)| (f.clone(), nights.want[f].clone()))
            .collect();
        assert_ne!(
            by_file_name(alone),
            by_file_name(in_full),
            "the second part alone must decide otherwise, or the tests prove nothing"
        );
        nights
    }

    fn before(&self) -> &[(String, String)] {
        &self.rows[..self.split]
    }

    fn after(&self) -> &[(String, String)] {
        &self.rows[self.split..]
    }

    /// Each alert of `part` as the stream carries it: keyed by object id,
    /// or all under one key.
    fn messages(part: &[(String, String)], keying: Keying) -> Vec<(String, Vec<u8>)> {
        part.iter()
            .map(|(file, object)| {
                let key = match keying {
                    Keying::ByObject => object.clone(),
                    Keying::Rekeyed => "one-night".to_string(),
                };
                (key, std::fs::read(file).unwrap())
            })
            .collect()
    }

    /// Waits until `output` holds the first part's accepted alerts.
    fn wait_for_first_part(&self, output: &str) {
        use crate::support::kafka::{brokers, consume_keyed};
        let want = self
            .before()
            .iter()
            .filter(|(f, _)| self.want[f] == "accept")
            .count();
        let seen = consume_keyed(&brokers(), output, want, std::time::Duration::from_secs(90));
        assert_eq!(seen.len(), want, "the first part's accepted alerts");
    }

    /// Waits for `output` to hold every accepted alert (and a few seconds
    /// more, for any extra), and returns the files it holds, sorted, after
    /// checking each kept its object's key.
    fn delivered(&self, output: &str) -> Vec<String> {
        use crate::support::kafka::{brokers, consume_keyed};
        use std::time::{Duration, Instant};
        let total = accepted(&self.want).len();
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut got = Vec::new();
        while Instant::now() < deadline && got.len() < total {
            got = consume_keyed(&brokers(), output, total, Duration::from_secs(5));
        }
        // Anything more (a second accept) would come with it.
        std::thread::sleep(Duration::from_secs(3));
        got = consume_keyed(&brokers(), output, total + 1, Duration::from_secs(5));
        let by_bytes: BTreeMap<Vec<u8>, String> = self
            .files
            .iter()
            .map(|f| (std::fs::read(f).unwrap(), f.to_string_lossy().into_owned()))
            .collect();
        let mut files: Vec<String> = got
            .iter()
            .map(|m| {
                let file = &by_bytes[&m.payload];
                let object = &self.rows.iter().find(|(f, _)| f == file).unwrap().1;
                assert_eq!(&m.key, object, "outputs keep the input's key");
                file.clone()
            })
            .collect();
        files.sort();
        files
    }
}

#[test]
fn serve_keeps_each_object_s_state_across_a_sigkill_by_restoring_it_from_the_changelog() {
    // Exactly-once: each accepted alert once. At-least-once: none lost,
    // and none decided on a memory that already holds it: the restart
    // reads every alert again (no offset was committed), and the
    // remembering filter is not run again on those its objects' records
    // say were applied.
    let nights = SplitNights::new();
    for delivery in ["exactly-once", "at-least-once"] {
        killed_and_restored(&nights, delivery, Keying::ByObject);
    }
}

#[test]
fn serve_re_keys_an_input_not_keyed_by_object_and_decides_as_test_does_across_a_sigkill() {
    let nights = SplitNights::new();
    let rekey_topic = killed_and_restored(&nights, "exactly-once", Keying::Rekeyed);
    // The re-key topic holds each message as it came, bytes and headers,
    // keyed by its object.
    let copies = crate::support::kafka::consume_keyed(
        &crate::support::kafka::brokers(),
        &rekey_topic,
        nights.rows.len(),
        std::time::Duration::from_secs(30),
    );
    assert!(copies.len() >= nights.rows.len(), "{}", copies.len());
    for m in &copies {
        let (file, object) = nights
            .rows
            .iter()
            .find(|(f, _)| std::fs::read(f).unwrap() == m.payload)
            .expect("a message's bytes unchanged");
        assert_eq!(&m.key, object, "{file}");
        assert_eq!(m.headers["origin"], "nights", "its headers too: {file}");
    }
}

/// Returns the re-key topic (with [`Keying::Rekeyed`]).
fn killed_and_restored(nights: &SplitNights, delivery: &str, keying: Keying) -> String {
    use crate::support::http::admin_get;
    use crate::support::kafka::{produce_keyed_with, unique};
    use crate::support::metrics::sample;

    let topics = (unique("nights"), unique("remember"), unique("once"));
    let topics = (topics.0.as_str(), topics.1.as_str(), topics.2.as_str());
    let (serve, log) = remembering_serve(
        &nights.dir.path().join(format!("{delivery}-{keying:?}")),
        topics,
        delivery,
        keying,
    );
    // A header the re-keying must keep.
    let origin = Some(("origin", "nights"));
    produce_keyed_with(
        topics.0,
        &SplitNights::messages(nights.before(), keying),
        origin,
    );
    let mut first = ready(&serve, &log);
    nights.wait_for_first_part(topics.2);
    // Committed (the outputs are read read_committed, so under
    // exactly-once their transaction, changelog included, is): the first
    // instance dies.
    let _ = first.0.kill();
    let _ = first.0.wait();

    // A second instance, with an empty store of its own, restores every
    // partition from the changelog before it takes an alert.
    produce_keyed_with(
        topics.0,
        &SplitNights::messages(nights.after(), keying),
        origin,
    );
    let _second = ready(&serve, &log);
    let mut delivered = nights.delivered(topics.2);
    let copies = delivered.len();
    if delivery == "at-least-once" {
        delivered.dedup();
        eprintln!(
            "at-least-once: {} repeated accepts after the SIGKILL",
            copies - delivered.len()
        );
    }
    assert_eq!(
        delivered,
        accepted(&nights.want),
        "{delivery}: each object accepted once, as `bandpass test` and the cut's statement say; serve's log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let metrics = admin_get(serve.admin_addr(), "/metrics").1;
    if delivery == "at-least-once" {
        // Every alert of the first part was read again; those its
        // object's record says were applied were not decided again.
        let skipped = sample(
            &metrics,
            "bandpass_filter_skipped_total{filter=\"rise-once\"}",
        )
        .unwrap_or(0.0);
        assert!(
            skipped >= 1.0 && skipped <= nights.before().len() as f64,
            "replayed alerts skipped: {skipped}; {metrics}"
        );
    }
    let restored = sample(&metrics, "bandpass_memory_restored_records_total").unwrap_or(0.0);
    assert!(restored >= 1.0, "the second instance restored: {metrics}");
    assert!(
        sample(&metrics, "bandpass_memory_objects").unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "bandpass_memory_misrouted_total"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "bandpass_memory_restoring_partitions"),
        Some(0.0)
    );
    assert_eq!(
        sample(&metrics, "bandpass_memory_restore_remaining_records"),
        Some(0.0),
        "every restore read to its end"
    );
    let page = admin_get(serve.admin_addr(), "/").1;
    assert!(
        page.contains("object memory: 5 objects")
            && page.contains(" restored, 0 partitions restoring (0 records to read)"),
        "{page}"
    );
    format!("{}.bandpass-rekey", topics.1)
}

#[test]
fn an_instance_joining_takes_its_share_of_objects_with_their_states_and_the_verdicts_stay() {
    use crate::support::kafka::{produce_keyed, unique};

    let nights = SplitNights::new();
    let topics = (unique("nights"), unique("share"), unique("once"));
    let topics = (topics.0.as_str(), topics.1.as_str(), topics.2.as_str());
    let serve = |name: &str| {
        remembering_serve(
            &nights.dir.path().join(name),
            topics,
            "exactly-once",
            Keying::ByObject,
        )
    };
    let ((one, one_log), (two, two_log)) = (serve("one"), serve("two"));
    produce_keyed(
        topics.0,
        &SplitNights::messages(nights.before(), Keying::ByObject),
    );
    let _one = ready(&one, &one_log);
    nights.wait_for_first_part(topics.2);

    // The second instance joins: the first commits and gives up half the
    // partitions (keeping the others without a restore), the second
    // restores its half from the changelog; then the rest of the nights.
    let _two = ready(&two, &two_log);
    produce_keyed(
        topics.0,
        &SplitNights::messages(nights.after(), Keying::ByObject),
    );
    assert_eq!(
        nights.delivered(topics.2),
        accepted(&nights.want),
        "each object accepted once across the rebalance; the logs:\n{}\n{}",
        std::fs::read_to_string(&one_log).unwrap_or_default(),
        std::fs::read_to_string(&two_log).unwrap_or_default()
    );
    let joined = std::fs::read_to_string(&two_log).unwrap();
    assert!(joined.contains("object memory restored"), "{joined}");
}

/// The notes a filter gave an alert in `bandpass test --json`'s report.
fn notes_of(alert: &serde_json::Value) -> BTreeMap<String, String> {
    alert["result"]["annotations"]
        .as_array()
        .unwrap_or_else(|| panic!("{alert}"))
        .iter()
        .map(|kv| {
            (
                kv[0].as_str().unwrap().into(),
                kv[1].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// What `history-probe` noted on each alert, in the order it saw them:
/// `(object, {note: value})`.
fn probed(args: &[&str]) -> Vec<(String, BTreeMap<String, String>)> {
    let (_, doc) = tested(&filter("history_probe"), args);
    doc["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["object_id"].as_str().unwrap().to_string(), notes_of(a)))
        .collect()
}

/// Checks that alert k (from 1) of each object saw `before + k` points,
/// the earliest at `first`, in order, each detection once, its own last.
fn assert_light_curves(
    seen: &[(String, BTreeMap<String, String>)],
    before: usize,
    first: Option<&str>,
) {
    let mut k: BTreeMap<&str, usize> = BTreeMap::new();
    for (object, notes) in seen {
        let k = k.entry(object).or_default();
        *k += 1;
        assert_eq!(
            notes["n"],
            (before + *k).to_string(),
            "{object} alert {k}: {notes:?}"
        );
        for yes in ["sorted", "unique", "last_is_current"] {
            assert_eq!(notes[yes], "yes", "{object} alert {k}: {notes:?}");
        }
        if let Some(first) = first {
            assert_eq!(notes["first"], first, "{object}: {notes:?}");
        }
    }
    assert_eq!(k.len(), 5, "five objects");
}

#[test]
fn history_is_the_object_s_light_curve_merged_across_packets_without_repeats() {
    let dir = tempfile::tempdir().unwrap();
    // Each packet carries the same ten previous candidates: counted once,
    // then one point more with each night.
    nights_from(&dir.path().join("year"), None, Some(WITHIN_A_YEAR));
    let seen = probed(&[dir.path().join("year").to_str().unwrap()]);
    assert_light_curves(&seen, 10, Some("2460420.96376"));
    assert_eq!(
        seen[0].1["ndet"], "8",
        "seven earlier detections and its own"
    );
    // The caps are the operator's: at most 3 points (the latest), or
    // none older than 10 days before the latest.
    let capped = probed(&[
        dir.path().join("year").to_str().unwrap(),
        "--history-max-points",
        "3",
    ]);
    for (object, notes) in &capped {
        let n: usize = notes["n"].parse().unwrap();
        assert!(
            n <= 3 && notes["last_is_current"] == "yes",
            "{object}: {notes:?}"
        );
    }
    let recent = probed(&[
        dir.path().join("year").to_str().unwrap(),
        "--history-max-age",
        "10d",
    ]);
    assert!(
        recent
            .iter()
            .all(|(_, notes)| notes["first"] != "2460420.96376"),
        "the previous candidates of a month before are left out: {recent:?}"
    );
    // A year and more after them, they are left out (the age cap).
    nights(&dir.path().join("later"), None);
    let seen = probed(&[dir.path().join("later").to_str().unwrap()]);
    assert_light_curves(&seen, 0, Some("2461000.50000"));
    // Split over two runs on one state folder: the second continues the
    // curves the first kept.
    let state = dir.path().join("state");
    nights(&dir.path().join("early"), Some("0:2"));
    nights(&dir.path().join("late"), Some("2:100"));
    let mut both = probed(&[
        dir.path().join("early").to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    both.extend(probed(&[
        dir.path().join("late").to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]));
    assert_light_curves(&both, 0, None);
}

/// The ZTF template's own `candidate.fwhm`, read by fastavro (not by
/// bandpass): what each night's packet carries.
fn template_fwhm() -> String {
    let template = data_dir().join("ztf/alerts/v4.02/2695378462115010012.avro");
    let out = Command::new("python3")
        .args([
            "-c",
            "import fastavro,sys\nr=next(fastavro.reader(open(sys.argv[1],'rb')))\n\
             print('%.3f' % r['candidate']['fwhm'])",
            template.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

#[test]
fn a_history_column_outside_the_defaults_is_refused_until_kept_then_given() {
    let dir = tempfile::tempdir().unwrap();
    let nights_dir = dir.path().join("nights");
    nights(&nights_dir, None);
    let component = filter("history_fwhm");
    let out = bandpass(&["test", &component, nights_dir.to_str().unwrap()]);
    let shown = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("'history.fwhm' is not a history column the host keeps")
            && shown.contains("--history-columns ztf=... lists it")
            && shown.contains("'fwhm:real'"),
        "{shown}"
    );
    // A type the host does not know must be said; a wrong list is refused
    // naming the flag.
    for (list, says) in [
        ("ztf=jd,fid,candid,fwhm", "say its type, as 'fwhm:real'"),
        ("ztf=jd,fwhm:real", "must keep candid, fid"),
        ("ztf jd", "write SURVEY=COLUMNS"),
    ] {
        let out = bandpass(&[
            "test",
            &component,
            nights_dir.to_str().unwrap(),
            "--history-columns",
            list,
        ]);
        let shown = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{list}: {shown}");
        assert!(shown.contains(says), "{list}: {shown}");
    }
    // Kept: each alert of an object sees one fwhm value more than the
    // last (its own detection's), the last its packet's.
    let (_, doc) = tested(
        &component,
        &[
            nights_dir.to_str().unwrap(),
            "--history-columns",
            "ztf=jd,fid,candid,magpsf,fwhm:real",
        ],
    );
    let want = template_fwhm();
    let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for a in doc["alerts"].as_array().unwrap() {
        let notes = notes_of(a);
        assert_eq!(notes["last"], want, "{a}");
        seen.entry(a["object_id"].as_str().unwrap().to_string())
            .or_default()
            .push(notes["with_fwhm"].parse().unwrap());
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    for (object, counts) in &seen {
        assert!(counts.len() > 1, "{object}: {counts:?}");
        assert!(
            counts.windows(2).all(|w| w[1] == w[0] + 1),
            "{object}: one more per alert: {counts:?}"
        );
    }
}

#[test]
fn serve_gives_the_history_columns_the_operator_keeps_as_test_does_across_a_sigkill() {
    use crate::support::kafka::{brokers, consume_keyed, produce_keyed, unique};
    use std::time::Duration;
    let nights = SplitNights::new();
    let columns = "jd,fid,candid,magpsf,fwhm:real";
    let listed: Vec<String> = columns.split(',').map(|c| format!("\"{c}\"")).collect();
    let topics = (unique("nights"), unique("history"), unique("fwhm"));
    let topics = (topics.0.as_str(), topics.1.as_str(), topics.2.as_str());
    let (serve, log) = remembering_serve_of(
        &nights.dir.path().join("history"),
        topics,
        ("exactly-once", Keying::ByObject),
        (
            "history_fwhm",
            &format!("[memory.history.ztf]\ncolumns = [{}]\n", listed.join(", ")),
        ),
    );
    // history-fwhm accepts every alert, noting what it received.
    let served_notes = |want: usize| -> BTreeMap<String, (String, String)> {
        let by_bytes: BTreeMap<Vec<u8>, String> = nights
            .files
            .iter()
            .map(|f| (std::fs::read(f).unwrap(), file_name(f)))
            .collect();
        let got = consume_keyed(&brokers(), topics.2, want, Duration::from_secs(90));
        assert_eq!(
            got.len(),
            want,
            "serve's log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        got.iter()
            .map(|m| {
                let note = |k: &str| m.headers[&format!("bandpass-note-{k}")].clone();
                (
                    by_bytes[&m.payload].clone(),
                    (note("with_fwhm"), note("last")),
                )
            })
            .collect()
    };
    produce_keyed(
        topics.0,
        &SplitNights::messages(nights.before(), Keying::ByObject),
    );
    let mut first = ready(&serve, &log);
    served_notes(nights.before().len());
    let _ = first.0.kill();
    let _ = first.0.wait();
    produce_keyed(
        topics.0,
        &SplitNights::messages(nights.after(), Keying::ByObject),
    );
    let _second = ready(&serve, &log);
    let served = served_notes(nights.rows.len());

    let (_, doc) = tested(
        &filter("history_fwhm"),
        &[
            nights.dir.path().join("nights").to_str().unwrap(),
            "--history-columns",
            &format!("ztf={columns}"),
        ],
    );
    let tested: BTreeMap<String, (String, String)> = doc["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let notes = notes_of(a);
            (
                file_name(Path::new(a["input"].as_str().unwrap())),
                (notes["with_fwhm"].clone(), notes["last"].clone()),
            )
        })
        .collect();
    assert_eq!(served.len(), nights.rows.len());
    assert_eq!(
        served, tested,
        "the light curve's fwhm column, restored after the SIGKILL, as test gives it"
    );
    assert!(
        served
            .values()
            .any(|(with, _)| with.parse::<usize>().unwrap() > 2),
        "objects with several alerts: {served:?}"
    );
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// A script that runs bandpass with a tmpfs of `size` mounted on `disk`
/// (a folder made here), in a mount namespace of its own: a disk that
/// fills up, without root. The script execs bandpass, so a signal to it
/// reaches bandpass.
fn on_a_small_disk(script: &Path, disk: &Path, size: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(disk).unwrap();
    std::fs::write(
        script,
        format!(
            "#!/bin/sh\nexec unshare --user --map-root-user --mount sh -c \
             'mount -t tmpfs -o size={size} none \"$0\" && exec \"$@\"' '{}' '{}' \"$@\"\n",
            disk.display(),
            crate::support::bandpass_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The machine must allow it: say so rather than skip.
    let probe = Command::new(script).arg("--version").output().unwrap();
    assert!(
        probe.status.success(),
        "cannot mount a tmpfs in a user namespace here (unshare): {}",
        text(&probe.stderr)
    );
    script.to_path_buf()
}

#[test]
fn a_state_folder_on_a_full_disk_fails_the_run_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let nights_dir = dir.path().join("nights");
    nights(&nights_dir, None);
    let disk = dir.path().join("disk");
    // Too small to open the store: refused before any alert.
    let tiny = on_a_small_disk(&dir.path().join("tiny.sh"), &disk, "4k");
    let state = disk.join("state");
    let args = |script: &Path| {
        Command::new(script)
            .args([
                "test",
                &filter("rise_once"),
                nights_dir.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let out = args(&tiny);
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("cannot open the state folder") && shown.contains("No space left"),
        "{shown}"
    );
    // Room to open it, not to keep the states: every alert still gets a
    // verdict, and the run fails saying why they may be wrong.
    let small = on_a_small_disk(&dir.path().join("small.sh"), &disk, "20k");
    let out = args(&small);
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("23 alerts:")
            && shown.contains("reads or writes of the state store failed")
            && shown.contains("No space left")
            && shown.contains("a full or read-only disk?"),
        "{shown}"
    );
}

#[test]
fn serve_stops_when_its_store_s_disk_fills_and_a_restart_decides_every_alert_once() {
    use crate::support::kafka::{produce_keyed, unique};
    use crate::support::processes::exited_within;
    let nights = SplitNights::new();
    let topics = (unique("nights"), unique("full"), unique("once"));
    let topics = (topics.0.as_str(), topics.1.as_str(), topics.2.as_str());
    let dir = nights.dir.path().join("full");
    let (serve, log) = remembering_serve(&dir, topics, "exactly-once", Keying::ByObject);
    // memory.dir (`dir/memory`) on a disk with room for the store's
    // files, not for the objects.
    let script = on_a_small_disk(&dir.join("small.sh"), &dir.join("memory"), "20k");
    produce_keyed(
        topics.0,
        &SplitNights::messages(&nights.rows, Keying::ByObject),
    );
    let mut full = serve.clone().binary(&script).spawn();
    let status = exited_within(&mut full, std::time::Duration::from_secs(120));
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("serve went on with a full disk:\n{logged}"));
    assert!(!status.success(), "{logged}");
    assert!(
        logged.contains("the object store refused a read or write")
            && logged.contains("No space left")
            && logged.contains("memory.dir"),
        "{logged}"
    );
    // Nothing decided on the broken store was committed: a start on a
    // working disk gives each object's accept once, as test does.
    let _second = ready(&serve, &log);
    assert_eq!(
        nights.delivered(topics.2),
        accepted(&nights.want),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// `bandpass test --json`'s outcome per input (verdict, score, tags,
/// notes), for comparing twins.
fn outcomes(component: &Path, args: &[&str]) -> BTreeMap<String, serde_json::Value> {
    let (_, doc) = tested(component.to_str().unwrap(), args);
    doc["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut r = a["result"].clone();
            for cost in ["fuel", "nanos"] {
                r.as_object_mut().unwrap().remove(cost);
            }
            (a["input"].as_str().unwrap().to_string(), r)
        })
        .collect()
}

#[test]
fn the_python_and_javascript_twins_of_rise_once_decide_as_the_rust_one_and_share_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let nights_dir = dir.path().join("nights");
    nights(&nights_dir, None);
    let rust = PathBuf::from(filter("rise_once"));
    let python = crate::support::python_filters_dir().join("rise-once.wasm");
    let js = crate::support::js_filters_dir().join("rise-once.wasm");
    let spidermonkey = crate::support::js_filters_dir().join("spidermonkey/rise-once.wasm");
    let all = [nights_dir.to_str().unwrap()];
    let want = outcomes(&rust, &all);
    assert_eq!(
        want.values().filter(|r| r["verdict"] == "accept").count(),
        3
    );
    for twin in [&python, &js, &spidermonkey] {
        assert_eq!(
            outcomes(twin, &all),
            want,
            "{} differs from Rust",
            twin.display()
        );
    }
    // One JSON layout and one format: the Python twin continues, on the
    // last nights, from the state the Rust one kept of the first.
    nights(&dir.path().join("early"), Some("0:2"));
    nights(&dir.path().join("late"), Some("2:100"));
    let state = dir.path().join("state");
    let mut split = outcomes(
        &rust,
        &[
            dir.path().join("early").to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
    );
    split.extend(outcomes(
        &python,
        &[
            dir.path().join("late").to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
    ));
    assert_eq!(by_file_name(split), by_file_name(want));
}

#[test]
fn a_state_folder_serves_one_run_at_a_time_and_says_when_it_is_fed_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    nights(&dir.path().join("early"), Some("0:2"));
    nights(&dir.path().join("late"), Some("2:100"));
    let state = dir.path().join("state");
    let rise = filter("rise_once");
    let run = |part: &str, extra: &[&str]| {
        let mut args = vec!["test", rise.as_str(), "--state", state.to_str().unwrap()];
        args.extend_from_slice(extra);
        let path = dir.path().join(part);
        let path = path.to_str().unwrap().to_string();
        args.push(&path);
        bandpass(&args)
    };
    // The late nights first, then the early ones: said, with the count.
    assert_eq!(run("late", &[]).status.code(), Some(0));
    let out = run("early", &[]);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("WARNING: 9 alerts were older than their object's latest remembered alert"),
        "{shown}"
    );
    // A folder another run holds is refused, naming it.
    let mut holder = std::process::Command::new("flock")
        .arg(state.join("bandpass.lock"))
        .args(["sleep", "30"])
        .spawn()
        .expect("flock(1) runs");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = run("early", &[]);
    holder.kill().unwrap();
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is in use by another bandpass"),
        "{}",
        text(&out.stderr)
    );
    // A file is not a folder.
    let file = dir.path().join("afile");
    std::fs::write(&file, b"x").unwrap();
    let out = bandpass(&[
        "test",
        &rise,
        "--state",
        file.to_str().unwrap(),
        dir.path().join("late").to_str().unwrap(),
    ]);
    assert!(
        text(&out.stderr).contains("is a file: give a folder"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_object_id_too_long_or_blank_to_key_gets_no_state_and_stops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("ids");
    std::fs::create_dir_all(&out_dir).unwrap();
    // Two alerts of a 100,000-byte id and two of a blank one, beside the
    // nights, written with fastavro from a real alert.
    let script = r#"
import copy, sys, fastavro
src, out = sys.argv[1], sys.argv[2]
with open(src, "rb") as fh:
    r = fastavro.reader(fh); schema = r.writer_schema; a = next(r)
for i, oid in enumerate(["x" * 100000, "x" * 100000, "", " "]):
    b = copy.deepcopy(a); b["objectId"] = oid; b["candid"] = 4000000000000000000 + i
    b["candidate"]["candid"] = b["candid"]; b["candidate"]["jd"] = 2461000.5 + i
    b["candidate"]["isdiffpos"] = "t"
    with open(f"{out}/{i}.avro", "wb") as fh:
        fastavro.writer(fh, schema, [b])
"#;
    let template = data_dir().join("ztf/alerts/v4.02/2695378462115010012.avro");
    let made = Command::new("python3")
        .args(["-c", script])
        .arg(&template)
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
    nights(&dir.path().join("nights"), None);
    for component in [filter("rise_once"), filter("history_probe")] {
        let (verdicts, doc) = tested(
            &component,
            &[
                out_dir.to_str().unwrap(),
                dir.path().join("nights").to_str().unwrap(),
            ],
        );
        assert_eq!(verdicts.len(), 27, "{doc}");
        assert_eq!(
            doc["memory"]["alerts_without_object"], 4,
            "{}",
            doc["memory"]
        );
        assert_eq!(doc["memory"]["objects"], 5, "{}", doc["memory"]);
    }
    // The same through the table: no state claimed for them.
    let out = bandpass(&["test", &filter("rise_once"), out_dir.to_str().unwrap()]);
    let shown = text(&out.stdout);
    assert!(!shown.contains("state set"), "{shown}");
    assert!(
        shown.contains("4 alerts had a blank object id or one over 256 bytes"),
        "{shown}"
    );
}

#[test]
fn a_message_read_again_that_its_object_s_record_holds_is_not_decided_again() {
    use bandpass::decode::SchemaSource;
    use bandpass::memory::Memory;
    use bandpass::runner::Runner;
    use bandpass::sandbox::{Limits, Outcome};

    // Serve under at-least-once marks each record with the offset of the
    // message applied to it; here each alert of the nights is message i,
    // then all are read again, as after a SIGKILL before any commit.
    let dir = tempfile::tempdir().unwrap();
    let nights = SplitNights::new();
    let sandbox = crate::support::shared_cache_sandbox(5);
    let rise = crate::support::load_one_at_a_time(
        &sandbox,
        &crate::support::component("rise_once"),
        &[],
        Limits::default(),
    )
    .unwrap();
    let mut runner = Runner::new(&[rise], SchemaSource::None, Default::default());
    runner.remember(Memory::temporary_in(Some(dir.path())).unwrap());
    let mut run = |offset: usize, file: &str| {
        runner.memory_mut().unwrap().position = Some(offset as i64);
        let bytes = bytes::Bytes::from(std::fs::read(file).unwrap());
        runner
            .process(&bytes)
            .unwrap()
            .remove(0)
            .evaluations
            .remove(0)
    };
    let mut first = BTreeMap::new();
    for (offset, (file, _)) in nights.rows.iter().enumerate() {
        let verdict = match run(offset, file).outcome {
            Outcome::Verdict(bandpass::sandbox::Verdict::Accept { .. }) => "accept",
            Outcome::Verdict(_) => "reject",
            other => panic!("{file}: {other:?}"),
        };
        first.insert(file.clone(), verdict.to_string());
    }
    assert_eq!(first, nights.want, "as bandpass test decides");
    // Every alert wrote its object's record (its state, or the renewal of
    // its object's latest alert), so every one is held, and none is
    // decided again on a state that holds later alerts.
    for (offset, (file, _)) in nights.rows.iter().enumerate() {
        let again = run(offset, file);
        assert!(
            matches!(&again.outcome, Outcome::Skipped { reason, .. } if reason.contains("read again")),
            "{file} (message {offset}): {:?}",
            again.outcome
        );
    }
    // A message past what a record holds is decided as usual.
    let (file, _) = nights.rows.last().unwrap();
    let later = run(nights.rows.len() + 5, file);
    assert!(
        matches!(later.outcome, Outcome::Verdict(_)),
        "{:?}",
        later.outcome
    );
}

#[test]
fn a_changelog_record_the_broker_refuses_stops_serve_naming_the_setting_and_commits_nothing() {
    use crate::support::kafka::{brokers, consume_keyed, produce_keyed, unique};
    use crate::support::processes::exited_within;
    use std::time::Duration;

    let nights = SplitNights::new();
    for delivery in ["exactly-once", "at-least-once"] {
        let topics = (unique("nights"), unique("refused"), unique("once"));
        let topics = (topics.0.as_str(), topics.1.as_str(), topics.2.as_str());
        let (serve, log) = remembering_serve(
            &nights.dir.path().join(format!("refused-{delivery}")),
            topics,
            delivery,
            Keying::ByObject,
        );
        // The changelog made by hand, compacted, but with records of at
        // most 100 bytes: every object's record is larger.
        let config = bandpass::config::Config::load(serve.config_file()).unwrap();
        let changelog = format!("{}.bandpass-changelog", topics.1);
        bandpass::kafka::ensure_topic(
            &config,
            &bandpass::kafka::Internal {
                topic: &changelog,
                compacted: true,
                partitions: 4,
                max_message: Some(100),
                what: "changelog topic",
                lost: "",
                key: "memory.changelog_topic",
            },
        )
        .unwrap();
        produce_keyed(
            topics.0,
            &SplitNights::messages(nights.before(), Keying::ByObject),
        );
        let mut running = serve.spawn();
        let status =
            exited_within(&mut running, Duration::from_secs(90)).expect("serve stops by itself");
        let said = std::fs::read_to_string(&log).unwrap();
        assert!(!status.success(), "{said}");
        assert!(
            said.contains("the broker refused a changelog record for good")
                && said.contains("max.message.bytes"),
            "{delivery}: {said}"
        );
        // Logged once, and said again as the exit's error.
        let logged = said
            .lines()
            .filter(|l| l.contains(" ERROR ") && l.contains("refused a changelog record"))
            .count();
        assert_eq!(logged, 1, "{delivery}: logged once: {said}");
        assert!(
            said.lines()
                .any(|l| l.starts_with("bandpass: the broker refused a changelog record")),
            "{said}"
        );
        // Nothing committed past it: a reader of the outputs sees none,
        // and the group has no offset.
        assert!(
            consume_keyed(&brokers(), topics.2, 1, Duration::from_secs(3)).is_empty()
                || delivery == "at-least-once",
            "{delivery}: an output of an uncommitted transaction"
        );
        let committed = committed_offsets(&brokers(), topics.1, topics.0);
        assert!(
            committed.iter().all(|o| *o < 0),
            "{delivery}: offsets committed past a lost record: {committed:?}"
        );
    }
}

/// `group`'s committed offset on each partition of `topic` (negative:
/// none).
fn committed_offsets(brokers: &str, group: &str, topic: &str) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition(topic, p);
    }
    let committed = reader
        .committed_offsets(tpl, std::time::Duration::from_secs(10))
        .unwrap();
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect()
}
