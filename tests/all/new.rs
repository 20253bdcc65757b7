//! `bandpass new`: each language's project builds as made and passes
//! `bandpass test` on the real alerts, as its README says.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{bandpass_bin, data_dir, repo_root};

fn run(command: &mut Command) -> Output {
    let out = command.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `bandpass new NAME --lang LANG` in `dir`.
fn new(dir: &Path, name: &str, lang: &str) -> Output {
    Command::new(bandpass_bin())
        .args(["new", name, "--lang", lang, "--dir"])
        .arg(dir)
        .output()
        .expect("bandpass runs")
}

/// `bandpass test` on the real ZTF alerts; returns its summary line.
fn test_on_ztf(component: &Path) -> String {
    let cache = tempfile::tempdir().unwrap();
    let out = run(Command::new(bandpass_bin())
        .arg("test")
        .arg(component)
        .arg(data_dir().join("ztf/alerts"))
        .env("BANDPASS_CACHE_DIR", cache.path()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout
        .lines()
        .find(|l| l.contains(" alerts: "))
        .unwrap_or_else(|| panic!("no summary in {stdout}"))
        .to_string()
}

#[test]
fn new_rust_project_builds_and_accepts_bright_alerts_as_made() {
    let dir = tempfile::tempdir().unwrap();
    let made = new(dir.path(), "my-bright", "rust");
    assert!(made.status.success(), "{made:?}");
    let project = dir.path().join("my-bright");
    // Its own target folder under the repository's, kept between runs so
    // that the SDK's dependencies compile once.
    let target = repo_root().join("target/new-project-test");
    run(Command::new("cargo")
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&project));
    let summary = test_on_ztf(&target.join("wasm32-wasip2/release/my_bright.wasm"));
    assert!(
        summary.contains("5 accepted") && summary.contains("0 errors"),
        "{summary}"
    );

    // Never over an existing folder, and never with a bad name.
    let again = new(dir.path(), "my-bright", "rust");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = new(dir.path(), "My_Filter", "rust");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lowercase letters"));
}
