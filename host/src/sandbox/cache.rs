//! The on-disk cache of compiled components.
//!
//! Compiling a component is slow (a Python filter takes seconds); loading
//! a compiled artifact takes milliseconds. Artifacts are keyed by the
//! component's sha256, the engine's compatibility hash (its settings and
//! target) and the wasmtime version, so any change of either recompiles.
//!
//! Safety: only artifacts this module wrote are ever deserialized, from a
//! directory owned by the operator; bytes a user uploads are always
//! compiled, never deserialized.
//!
//! Size: the artifacts together are kept under a bound (`max_bytes`,
//! default 2 GiB: about a hundred Python filters). Each write evicts the
//! least recently used artifacts past it; a load marks its artifact used.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The wasmtime version the host is built with (pinned in Cargo.toml).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// The default bound of a cache's artifacts together: 2 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 2 << 30;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from an artifact compiled earlier.
    Hit,
    /// Compiled now (and stored, when a cache is configured).
    Compiled,
}

impl CompileCache {
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache {
            dir: dir.into(),
            max_bytes: DEFAULT_CACHE_BYTES,
        }
    }

    /// The same cache with its artifacts bounded to `max_bytes` together.
    pub fn with_max_bytes(self, max_bytes: u64) -> CompileCache {
        CompileCache { max_bytes, ..self }
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// `$BANDPASS_CACHE_DIR`, else `$XDG_CACHE_HOME/bandpass`, else
    /// `~/.cache/bandpass`; `None` when none of these is known.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("BANDPASS_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("bandpass"));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/bandpass"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The artifact path for a component with this sha256.
    fn artifact(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hasher.finish();
        self.dir.join(format!(
            "{sha256}-{engine_hash:016x}-wasmtime{WASMTIME_VERSION}.cwasm"
        ))
    }

    /// Whether an artifact for this sha256 and engine is stored.
    pub fn has(&self, engine: &Engine, sha256: &str) -> bool {
        self.artifact(engine, sha256).exists()
    }

    /// Loads the compiled artifact for `bytes`, or compiles and stores it.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.artifact(engine, sha256);
        if self.has(engine, sha256) {
            // SAFETY: the file was written by `store` below from
            // `Component::serialize` with an engine of identical
            // compatibility hash (it is in the file name); the directory is
            // the operator's. A damaged file fails to load and is rebuilt.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    // Used now: the last to be evicted.
                    let _ = std::fs::File::options()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                    return Ok((component, CacheOutcome::Hit));
                }
                Err(err) => tracing::warn!(
                    path = %path.display(),
                    error = %err,
                    "compiled component unreadable; compiling again"
                ),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(err) = self.store(&path, &component) {
            tracing::warn!(
                dir = %self.dir.display(),
                error = %err,
                "could not store compiled component; it will be compiled again next time"
            );
        }
        Ok((component, CacheOutcome::Compiled))
    }

    /// Removes the artifact for this sha256, if there is one.
    pub fn remove(&self, engine: &Engine, sha256: &str) {
        let path = self.artifact(engine, sha256);
        if let Err(err) = std::fs::remove_file(&path)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %err, "could not remove a compiled component");
        }
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating cache directory {}", self.dir.display()))?;
        let bytes = component
            .serialize()
            .map_err(|e| anyhow::anyhow!("serializing the compiled component: {e}"))?;
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        self.evict(path);
        Ok(())
    }

    /// Removes the least recently used artifacts until those left are
    /// within `max_bytes` together, keeping `newest` (just written).
    fn evict(&self, newest: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut artifacts: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = artifacts.iter().map(|(_, len, _)| len).sum();
        if total <= self.max_bytes {
            return;
        }
        artifacts.sort();
        for (_, len, path) in artifacts {
            if total <= self.max_bytes {
                break;
            }
            if path == newest {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    total -= len;
                    tracing::info!(path = %path.display(), bytes = len, "evicted a compiled component from the cache");
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "could not evict a compiled component")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_evicts_the_least_recently_used_artifacts_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path()).with_max_bytes(2500);
        let at = |secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        for (name, secs) in [("old", 1), ("used", 3), ("mid", 2)] {
            let path = dir.path().join(format!("{name}.cwasm"));
            std::fs::write(&path, [0u8; 1000]).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(at(secs))
                .unwrap();
        }
        let newest = dir.path().join("new.cwasm");
        std::fs::write(&newest, [0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("not-an-artifact.txt"), [0u8; 5000]).unwrap();
        cache.evict(&newest);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        // 4,000 bytes of artifacts over a 2,500 bound: the two least
        // recently used go, the one just written stays.
        assert_eq!(left, ["new.cwasm", "not-an-artifact.txt", "used.cwasm"]);
    }
}
