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
}

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
        CompileCache { dir: dir.into() }
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
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
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
        Ok(())
    }
}
