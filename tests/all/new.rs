//! `bandpass new`: each language's project builds as made and passes
//! `bandpass test` on the real alerts, as its README says; and the Python
//! and JavaScript SDKs those projects depend on carry the contract
//! unchanged.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{bandpass_bin, data_dir, js_filters_dir, python_filters_dir, repo_root};

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
fn new_rust_project_builds_and_accepts_bright_alerts_as_made_and_needs_default_as_documented() {
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

    // `Filter` requires `Default` even beside an `init` of one's own, as
    // the SDK's README says and the template does: without it the build
    // stops, naming the bound.
    let lib = project.join("src/lib.rs");
    let template = std::fs::read_to_string(&lib).unwrap();
    let start = template
        .find("impl Default for Bright {")
        .expect("the template implements Default");
    let end = start + template[start..].find("\n}\n").unwrap() + 3;
    assert!(template.contains("fn init(params: &Params)"));
    std::fs::write(&lib, format!("{}{}", &template[..start], &template[end..])).unwrap();
    let without = Command::new("cargo")
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&project)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(
        !without.status.success()
            && stderr.contains("the trait bound `Bright: Default` is not satisfied"),
        "{stderr}"
    );
    let readme = std::fs::read_to_string(repo_root().join("guest-sdk/README.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        readme.contains("`Filter` requires `Default` whether or not you write `init`"),
        "guest-sdk/README.md must say that Filter requires Default"
    );

    // Never over an existing folder, and never with a bad name.
    let again = new(dir.path(), "my-bright", "rust");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = new(dir.path(), "My_Filter", "rust");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lowercase letters"));
}

#[test]
fn new_python_project_builds_with_bandpass_py_and_accepts_bright_alerts_as_made() {
    // Building the samples installs the SDK and bandpass-py in its venv.
    python_filters_dir();
    let bandpass_py = repo_root().join("target/bandpass-tools/py-venv/bin/bandpass-py");
    let dir = tempfile::tempdir().unwrap();
    let made = new(dir.path(), "py-bright", "python");
    assert!(made.status.success(), "{made:?}");
    let project = dir.path().join("py-bright");
    run(Command::new(bandpass_py)
        .args(["build", "--quiet", "py_bright.py", "-o", "py-bright.wasm"])
        .current_dir(&project));
    let summary = test_on_ztf(&project.join("py-bright.wasm"));
    assert!(
        summary.contains("5 accepted") && summary.contains("0 errors"),
        "{summary}"
    );
}

#[test]
fn new_js_project_builds_with_npm_and_accepts_bright_alerts_as_made() {
    // Building the samples runs `npm ci` in the SDK, whose dependencies
    // the project's `file:` link then finds.
    js_filters_dir();
    let dir = tempfile::tempdir().unwrap();
    let made = new(dir.path(), "js-bright", "js");
    assert!(made.status.success(), "{made:?}");
    let project = dir.path().join("js-bright");
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&project));
    run(Command::new("npm")
        .args(["run", "--silent", "build"])
        .current_dir(&project));
    let summary = test_on_ztf(&project.join("js-bright.wasm"));
    assert!(
        summary.contains("5 accepted") && summary.contains("0 errors"),
        "{summary}"
    );
}

#[test]
fn the_python_and_js_sdks_ship_the_repository_contract_byte_for_byte() {
    let root = repo_root();
    let contract = std::fs::read(root.join("wit/filter.wit")).unwrap();
    for copy in [
        "guest-sdk/python/src/bandpass/wit/filter.wit",
        "guest-sdk/js/wit/filter.wit",
    ] {
        let shipped = std::fs::read(root.join(copy)).unwrap();
        assert!(
            shipped == contract,
            "{copy} differs from wit/filter.wit: copy wit/filter.wit over it"
        );
    }
}
