//! Each guide's quick start, run as written: the ```` ```sh quickstart ````
//! block of every filter author's guide is run by bash in a temporary
//! folder outside the checkout, with the built `bandpass` on PATH, and
//! every command in it must succeed. A guide whose commands stop working
//! fails here.

use std::path::Path;
use std::process::Command;

use crate::support::{bandpass_bin, repo_root};

/// The guides that hold a quick start.
const GUIDES: &[&str] = &[
    "docs/filter-authors.md",
    "docs/filter-authors-python.md",
    "docs/filter-authors-js.md",
];

/// The lines of the guide's ```` ```sh quickstart ```` block.
fn quick_start(guide: &Path) -> String {
    let text = std::fs::read_to_string(guide).unwrap();
    let mut lines = text.lines().skip_while(|l| l.trim() != "```sh quickstart");
    assert!(
        lines.next().is_some(),
        "{} has no ```sh quickstart block",
        guide.display()
    );
    let block: Vec<&str> = lines.take_while(|l| l.trim() != "```").collect();
    assert!(
        !block.is_empty(),
        "{}: the quick start is empty",
        guide.display()
    );
    block.join("\n")
}

/// `PATH` with the built `bandpass` first.
fn path_with_bandpass() -> String {
    format!(
        "{}:{}",
        bandpass_bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs one guide's quick start; panics with its output if a command
/// fails.
fn run_quick_start(guide: &str) {
    let script = quick_start(&repo_root().join(guide));
    let folder = tempfile::Builder::new()
        .prefix("bandpass-quickstart")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    assert!(
        !folder.path().starts_with(repo_root()),
        "the quick start must run outside the checkout"
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(folder.path())
        .env("PATH", path_with_bandpass())
        .env("BANDPASS_CACHE_DIR", folder.path().join(".cache"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "{guide}: the quick start failed as written:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // It ends in `bandpass test`, which shows an accepted alert.
    assert!(
        stdout.contains(" accepted,"),
        "{guide}: no test summary:\n{stdout}"
    );
    assert!(
        !stdout.contains(" 0 accepted,"),
        "{guide}: nothing accepted:\n{stdout}"
    );
}

#[test]
fn the_rust_guide_quick_start_works_as_written() {
    run_quick_start(GUIDES[0]);
}

#[test]
fn the_python_guide_quick_start_works_as_written() {
    run_quick_start(GUIDES[1]);
}

#[test]
fn the_javascript_guide_quick_start_works_as_written() {
    run_quick_start(GUIDES[2]);
}

/// The operators' guide's quick start, as written: its own broker from
/// `scripts/kafka.sh`, a config, `serve --check`, `produce`, serve until
/// the group's lag is 0, `consume`, the metrics, a stop, `offsets` back
/// to the start and `lag`. Bounded by `timeout` so that a broken step
/// fails rather than waits for ever.
#[test]
fn the_operators_quick_start_works_as_written() {
    crate::support::filters_dir();
    let script = quick_start(&repo_root().join("docs/operators.md"));
    let folder = tempfile::Builder::new()
        .prefix("bandpass-operator")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let out = Command::new("timeout")
        .args(["300", "bash", "-euo", "pipefail", "-c", &script])
        .current_dir(folder.path())
        .env("PATH", path_with_bandpass())
        .env("BANDPASS_CHECKOUT", repo_root())
        .env_remove("BANDPASS_KAFKA_BROKERS")
        .env_remove("BANDPASS_KAFKA_DIR")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let log = std::fs::read_to_string(folder.path().join("serve.log")).unwrap_or_default();
    let why = format!(
        "the operators' quick start, as written:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- serve.log\n{log}"
    );
    assert!(out.status.success(), "failed: {why}");
    let accepted = crate::support::offline_accepts("bright_transients").len();
    let alerts = crate::support::ztf_alerts().len();
    for said in [
        "ready to serve (checked without Kafka)".to_string(),
        format!("{alerts} alerts from {alerts} inputs acknowledged on ztf-alerts"),
        format!("bandpass_filter_accepted_total{{filter=\"bright-transients\"}} {accepted}"),
        "group night-1: offsets committed".to_string(),
        format!("group night-1: {alerts} messages behind"),
    ] {
        assert!(stdout.contains(&said), "no '{said}': {why}");
    }
    // consume's lines: one per accepted alert, each naming its filter.
    let lines = stdout
        .lines()
        .filter(|l| l.contains("bandpass-filter=bright-transients"))
        .count();
    assert_eq!(lines, accepted, "{why}");
}
