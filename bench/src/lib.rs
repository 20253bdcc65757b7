//! What the benchmark binaries share: where the repository is, and the
//! real ZTF alerts they all run on (read in place from `../shared/data`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every real ZTF alert (one Avro container file each), in file order.
pub fn ztf_alerts() -> anyhow::Result<Vec<Bytes>> {
    let root = repo().join("../shared/data/ztf/alerts");
    let mut files = Vec::new();
    for v in std::fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))? {
        for f in std::fs::read_dir(v?.path())? {
            let p = f?.path();
            if p.extension().is_some_and(|e| e == "avro") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .iter()
        .map(|p| Ok(Bytes::from(std::fs::read(p)?)))
        .collect()
}
