//! `bandpass new NAME --lang rust|python|js`: a filter project that builds
//! and passes `bandpass test` as made, from the templates in
//! `host/templates/` (compiled into the binary), with a dozen synthetic
//! alerts in `alerts/` (`bandpass demo --write`'s generator).
//!
//! Never overwrites: the project folder must not exist yet.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::demo::{self, Mix};

/// Synthetic alerts written into a new project.
const EXAMPLE_ALERTS: usize = 12;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The filter's name: lowercase letters, digits and dashes, starting
    /// with a letter (`my-transients`). Also the project folder's name.
    pub name: String,
    /// The language of the filter.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
    /// Where to create the project folder (default: the current one).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// The bandpass repository's `guest-sdk` folder, which the project
    /// depends on (default: the one this binary was built from).
    #[arg(long, value_name = "DIR")]
    pub sdk: Option<PathBuf>,
}

/// A filter language with a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// One template file: its path in the project and its text.
type File = (&'static str, &'static str);

const RUST: &[File] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/rust/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/rust/src/lib.rs"),
    ),
    ("README.md", include_str!("../../templates/rust/README.md")),
    (".gitignore", include_str!("../../templates/rust/gitignore")),
];

const PYTHON: &[File] = &[
    (
        "{{module}}.py",
        include_str!("../../templates/python/filter.py"),
    ),
    (
        "README.md",
        include_str!("../../templates/python/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/python/gitignore"),
    ),
];

const JS: &[File] = &[
    ("filter.js", include_str!("../../templates/js/filter.js")),
    (
        "package.json",
        include_str!("../../templates/js/package.json"),
    ),
    ("README.md", include_str!("../../templates/js/README.md")),
    (".gitignore", include_str!("../../templates/js/gitignore")),
];

impl Lang {
    /// The language's name, for people.
    fn name(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }

    fn files(self) -> &'static [File] {
        match self {
            Lang::Rust => RUST,
            Lang::Python => PYTHON,
            Lang::Js => JS,
        }
    }
}

pub fn execute(args: NewArgs) -> anyhow::Result<u8> {
    check_name(&args.name)?;
    let sdk = super::build::sdk_dir(args.sdk)?;
    let project = args.dir.join(&args.name);
    if project.exists() {
        bail!(
            "{} already exists: choose another name, or --dir for another place",
            project.display()
        );
    }
    let vars = Vars {
        name: &args.name,
        sdk: &sdk,
        alerts: example_alerts(),
        docs: built_from().join("docs"),
    };
    for (path, text) in args.lang.files() {
        let target = project.join(vars.fill(path));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, vars.fill(text))
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    // Synthetic alerts of the template's survey, each kind of source in
    // turn, so that `bandpass test` shows the accept path at once.
    let alerts = project.join("alerts");
    std::fs::create_dir_all(&alerts)
        .with_context(|| format!("cannot create {}", alerts.display()))?;
    for (i, alert) in demo::generate_for("ztf", EXAMPLE_ALERTS, 42, Mix::EachInTurn)?
        .iter()
        .enumerate()
    {
        let file = alerts.join(format!("{}-{i}.avro", alert.population.name()));
        std::fs::write(&file, &alert.bytes)
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    println!(
        "created {} ({} filter '{}'); next steps are in {}",
        project.display(),
        args.lang.name(),
        args.name,
        project.join("README.md").display()
    );
    Ok(0)
}

/// Filter names go into manifests, headers, topic names and crate names.
fn check_name(name: &str) -> anyhow::Result<()> {
    // A name, and a crate name too: it starts with a letter.
    let ok = crate::text::is_name(name, 64) && name.starts_with(|c: char| c.is_ascii_lowercase());
    if name == "bandpass" || name == "bandpass-filter" {
        bail!(
            "'{name}' is the name of bandpass's own SDK module: a Python filter of that name \
             would hide it; choose another name (e.g. my-transients)"
        );
    }
    if !ok {
        bail!(
            "'{name}' is not a filter name: use lowercase letters, digits and dashes, \
             starting with a letter, at most 64 characters (e.g. my-transients)"
        );
    }
    Ok(())
}

/// The repository this binary was built from.
fn built_from() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The real ZTF alerts beside the repository, when they are there.
fn example_alerts() -> String {
    let shared = built_from().join("../shared/data/ztf/alerts");
    match shared.canonicalize() {
        Ok(dir) => dir.display().to_string(),
        Err(_) => "path/to/alerts/".to_string(),
    }
}

/// What a template's `{{...}}` placeholders become.
struct Vars<'a> {
    name: &'a str,
    sdk: &'a Path,
    alerts: String,
    docs: PathBuf,
}

impl Vars<'_> {
    fn fill(&self, text: &str) -> String {
        let docs = self
            .docs
            .canonicalize()
            .unwrap_or_else(|_| self.docs.clone());
        text.replace("{{name}}", self.name)
            .replace("{{crate}}", &self.name.replace('-', "_"))
            .replace("{{module}}", &self.name.replace('-', "_"))
            .replace("{{sdk}}", &self.sdk.display().to_string())
            .replace("{{alerts}}", &self.alerts)
            .replace("{{docs}}", &docs.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_manifests_topics_and_crates() {
        for good in ["my-transients", "a", "fast2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["My", "2fast", "-x", "a_b", "a b", ""] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains("lowercase letters"), "{err}");
        }
    }

    #[test]
    fn every_placeholder_of_every_template_is_filled() {
        let vars = Vars {
            name: "my-filter",
            sdk: Path::new("/sdk"),
            alerts: "/alerts".into(),
            docs: PathBuf::from("/docs"),
        };
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for (path, text) in lang.files() {
                let filled = vars.fill(text);
                assert!(!filled.contains("{{"), "{lang:?} {path}: {filled}");
                assert!(!vars.fill(path).contains("{{"), "{lang:?} {path}");
            }
        }
        assert!(vars.fill(RUST[0].1).contains("name = \"my-filter\""));
    }
}
