//! `bandpass build [PROJECT]`: builds a filter project made by `bandpass
//! new` into `PROJECT/NAME.wasm`, with the language's own tools, and
//! first makes whatever they need that is missing (the wasm32-wasip2
//! target, the Python virtual environment with the SDK, the npm
//! packages). So `new`, `build`, `test` are the whole loop, in any
//! language, from any folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The project folder (made by `bandpass new`).
    #[arg(default_value = ".")]
    pub project: PathBuf,
    /// The bandpass repository's `guest-sdk` folder, installed into a
    /// Python or JavaScript project that lacks it (default: the one this
    /// binary was built from).
    #[arg(long, value_name = "DIR")]
    pub sdk: Option<PathBuf>,
}

/// A project's language, as its files show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Project {
    /// A cargo package: its package name.
    Rust { package: String },
    /// A Python filter module: its file.
    Python { source: PathBuf },
    /// An npm package with a `build` script.
    Js,
}

pub fn execute(args: BuildArgs) -> anyhow::Result<u8> {
    // Absolute, since the tools run inside it.
    let dir = &args
        .project
        .canonicalize()
        .with_context(|| format!("no project folder {}", args.project.display()))?;
    let name = project_name(dir)?;
    let project = detect(dir, &name)?;
    let sdk = sdk_dir(args.sdk)?;
    prepare(dir, &project, &sdk)?;
    let wasm = dir.join(format!("{name}.wasm"));
    // A failed build must not leave the last one to be tested as if new.
    match std::fs::remove_file(&wasm) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot replace {}", wasm.display()));
        }
        _ => {}
    }
    match &project {
        Project::Rust { package } => {
            run(
                Command::new("cargo")
                    .args(["build", "--release", "--target", "wasm32-wasip2"])
                    .current_dir(dir),
                "cargo build",
            )?;
            let built = dir
                .join("target/wasm32-wasip2/release")
                .join(format!("{}.wasm", package.replace('-', "_")));
            std::fs::copy(&built, &wasm).with_context(|| {
                format!("cargo built, but {} is not there to copy", built.display())
            })?;
        }
        Project::Python { source } => {
            let file = source.file_name().context("a Python file name")?;
            run(
                Command::new(venv_bin(dir, "bandpass-py"))
                    .arg("build")
                    .arg(file)
                    .arg("-o")
                    .arg(format!("{name}.wasm"))
                    .current_dir(dir),
                "bandpass-py build",
            )?;
        }
        Project::Js => run(
            Command::new("npm")
                .args(["run", "--silent", "build"])
                .current_dir(dir),
            "npm run build",
        )?,
    }
    if !wasm.exists() {
        bail!(
            "the build ran but made no {}: the project's build must write NAME.wasm",
            wasm.display()
        );
    }
    println!(
        "built {}; try it: bandpass test {} {}",
        wasm.display(),
        wasm.display(),
        dir.join("alerts").display()
    );
    Ok(0)
}

/// The project's name: its folder's name.
fn project_name(dir: &Path) -> anyhow::Result<String> {
    dir.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("{} has no usable folder name", dir.display()))
}

/// Which language `dir` holds: a `Cargo.toml`, a `package.json`, or a
/// Python file named after the project (or the only one there).
pub(crate) fn detect(dir: &Path, name: &str) -> anyhow::Result<Project> {
    let cargo = dir.join("Cargo.toml");
    if cargo.exists() {
        let text = std::fs::read_to_string(&cargo)
            .with_context(|| format!("cannot read {}", cargo.display()))?;
        let manifest: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", cargo.display()))?;
        let package = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .with_context(|| format!("{} has no [package] name", cargo.display()))?;
        return Ok(Project::Rust {
            package: package.to_string(),
        });
    }
    if dir.join("package.json").exists() {
        return Ok(Project::Js);
    }
    // A Python filter imports the SDK; any other Python file is not one.
    let filter = |p: &Path| {
        std::fs::read_to_string(p).is_ok_and(|text| {
            text.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("import bandpass") || l.starts_with("from bandpass")
            })
        })
    };
    let named = dir.join(format!("{}.py", name.replace('-', "_")));
    if filter(&named) {
        return Ok(Project::Python { source: named });
    }
    let python: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "py") && filter(p))
        .collect();
    match python.as_slice() {
        [one] => Ok(Project::Python {
            source: one.clone(),
        }),
        _ => bail!(
            "{} is not a filter project: it has no Cargo.toml, no package.json and not one \
             Python file that imports bandpass; make one with `bandpass new NAME --lang rust|python|js`",
            dir.display()
        ),
    }
}

/// Makes what the language's build needs, where it is missing: the
/// wasm32-wasip2 target (Rust), `.venv` with the SDK (Python),
/// `node_modules` (JavaScript).
pub(crate) fn prepare(dir: &Path, project: &Project, sdk: &Path) -> anyhow::Result<()> {
    match project {
        Project::Rust { .. } => {
            let installed = Command::new("rustup")
                .args(["target", "list", "--installed"])
                .output()
                .context(
                    "rustup is not installed; it installs Rust and the wasm32-wasip2 target",
                )?;
            if !String::from_utf8_lossy(&installed.stdout)
                .lines()
                .any(|l| l.trim() == "wasm32-wasip2")
            {
                eprintln!("bandpass: installing the wasm32-wasip2 target (once)");
                run(
                    Command::new("rustup").args(["target", "add", "wasm32-wasip2"]),
                    "rustup target add wasm32-wasip2",
                )?;
            }
        }
        Project::Python { .. } => {
            if !venv_bin(dir, "bandpass-py").exists() {
                let python = std::env::var("BANDPASS_PYTHON").unwrap_or_else(|_| "python3".into());
                eprintln!(
                    "bandpass: making {} with the bandpass SDK from {} (once)",
                    dir.join(".venv").display(),
                    sdk.join("python").display()
                );
                run(
                    Command::new(&python)
                        .args(["-m", "venv", ".venv"])
                        .current_dir(dir),
                    &format!(
                        "{python} -m venv .venv (Python 3.11 or later; set BANDPASS_PYTHON to choose one)"
                    ),
                )?;
                run(
                    Command::new(venv_bin(dir, "python"))
                        .args([
                            "-m",
                            "pip",
                            "install",
                            "--quiet",
                            "--disable-pip-version-check",
                        ])
                        .arg(sdk.join("python"))
                        .current_dir(dir),
                    "pip install of the bandpass SDK",
                )?;
            }
        }
        Project::Js => {
            // The SDK's own componentizers, in a checkout where they were
            // never installed.
            let sdk_js = sdk.join("js");
            if !sdk_js.join("node_modules").exists() {
                eprintln!(
                    "bandpass: installing the JavaScript SDK's packages in {} (once)",
                    sdk_js.display()
                );
                run(
                    Command::new("npm")
                        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                        .current_dir(&sdk_js),
                    "npm ci in the SDK (Node.js 20 or later with npm)",
                )?;
            }
            if !dir.join("node_modules/@bandpass/filter").exists() {
                eprintln!("bandpass: installing the project's npm packages (once)");
                run(
                    Command::new("npm")
                        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                        .current_dir(dir),
                    "npm install (Node.js 20 or later with npm)",
                )?;
            }
        }
    }
    Ok(())
}

/// The SDK folder given, else the one beside the repository this binary
/// was built from; the error says how to give it.
pub(crate) fn sdk_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let sdk = given.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"));
    sdk.canonicalize().with_context(|| {
        format!(
            "cannot find bandpass's guest-sdk at {}: pass --sdk PATH/TO/bandpass/guest-sdk",
            sdk.display()
        )
    })
}

/// A program in the project's virtual environment.
fn venv_bin(dir: &Path, program: &str) -> PathBuf {
    dir.join(".venv/bin").join(program)
}

/// Runs a command, its output going to ours; the error names it.
fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("{what}: cannot start it (is it installed?)"))?;
    if !status.success() {
        bail!("{what} failed ({status}); its output is above");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_read_from_the_project_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = detect(dir.path(), "x").unwrap_err().to_string();
        assert!(err.contains("bandpass new"), "{err}");
        std::fs::write(dir.path().join("setup.py"), "print('hello')\n").unwrap();
        assert!(
            detect(dir.path(), "x").is_err(),
            "a Python file without the SDK"
        );
        std::fs::write(dir.path().join("other.py"), "import bandpass\n").unwrap();
        assert!(matches!(
            detect(dir.path(), "x").unwrap(),
            Project::Python { .. }
        ));
        std::fs::write(dir.path().join("x.py"), "from bandpass import accept\n").unwrap();
        assert_eq!(
            detect(dir.path(), "x").unwrap(),
            Project::Python {
                source: dir.path().join("x.py")
            }
        );
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        assert_eq!(detect(dir.path(), "x").unwrap(), Project::Js);
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"my-cut\"\n",
        )
        .unwrap();
        assert_eq!(
            detect(dir.path(), "x").unwrap(),
            Project::Rust {
                package: "my-cut".into()
            }
        );
    }
}
