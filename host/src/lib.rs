//! bandpass: runs untrusted WebAssembly alert filters over astronomical
//! alert streams. See the repository README and `docs/`.
//!
//! Modules, bottom layer first ([`LAYERS`], checked by a test: a module
//! never uses one in a layer above it):
//! - [`text`]: how any text a tenant wrote is bounded and escaped;
//!   [`units`]: durations and sizes as people write them;
//! - [`input`]: alert files, directories and `.tar.gz` archives;
//!   [`decode`]: framing, cached writer schemas, the projection decoder;
//!   [`demo`]: synthetic alerts;
//! - [`sandbox`]: the wasmtime engine, validation, budgets, failures,
//!   quarantine; [`memory`]: what the host keeps per object between
//!   alerts (each deployment's state), and offline inputs in time order;
//! - [`runner`]: one decode per alert, every filter on it;
//! - [`config`]: the service's configuration file, a file per section;
//! - [`metrics`]: what serve counts, and whether it is ready;
//! - [`kafka`]: every Kafka client's settings, and their log;
//! - [`deploy`]: which filters run, and how a new set reaches the pipeline;
//! - [`pipeline`]: the Kafka loop of `bandpass serve`; [`fleet`]: the
//!   uploaded filters every instance shares through a compacted topic,
//!   the one policy both uploads and records face, and admission;
//! - [`admin`]: the HTTP port (health, metrics, status page, the filter
//!   API);
//! - [`cli`]: the `bandpass` commands; `fuzzing`: the fuzz targets' entry
//!   points.

pub mod admin;
pub mod cli;
pub mod config;
pub mod decode;
pub mod demo;
pub mod deploy;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod input;
pub mod kafka;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod runner;
pub mod sandbox;
pub mod sky;
pub mod text;
pub mod units;

/// The layers of the crate, bottom first (docs/architecture.md): a module
/// may use the modules of its own layer and of the layers below, never one
/// above. Test code may reach up.
pub const LAYERS: &[&[&str]] = &[
    &["text"],
    &["units"],
    &["decode", "input", "demo"],
    &["sandbox", "memory", "sky"],
    &["runner"],
    &["config"],
    &["metrics"],
    &["kafka"],
    &["deploy"],
    &["pipeline", "fleet"],
    &["admin"],
    &["cli", "fuzzing"],
];

#[cfg(test)]
mod layering {
    use std::path::Path;

    fn layer(module: &str) -> Option<usize> {
        super::LAYERS.iter().position(|l| l.contains(&module))
    }

    /// Every `crate::<module>` a file of the crate names, outside its
    /// tests, with the file's own top module.
    fn uses(dir: &Path, out: &mut Vec<(String, String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                uses(&path, out);
                continue;
            }
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
            if matches!(top, "lib" | "main") || rel == "decode/tests.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            for (at, _) in code.match_indices("crate::") {
                let used: String = code[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                out.push((rel.clone(), top.to_string(), used));
            }
        }
    }

    #[test]
    fn no_module_uses_one_in_a_layer_above_it() {
        let mut found = Vec::new();
        uses(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(found.len() > 100, "the scan found the crate's imports");
        let upward: Vec<String> = found
            .iter()
            .filter(|(_, top, used)| top != used)
            .filter_map(|(file, top, used)| {
                let (own, theirs) = (layer(top)?, layer(used)?);
                (theirs > own).then(|| format!("{file}: {top} uses {used}"))
            })
            .collect();
        assert!(
            upward.is_empty(),
            "imports against the layering:\n{}",
            upward.join("\n")
        );
        for (file, top, _) in &found {
            assert!(layer(top).is_some(), "{file}: module {top} is in no layer");
        }
    }
}
