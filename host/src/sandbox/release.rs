//! Giving a removed filter's memory back to the operating system.
//!
//! A filter's host-side memory (its compiled code's metadata, manifest,
//! log, the buffers of its canary run) is allocated with the C allocator
//! by many threads, so it lands in glibc's per-thread arenas, which keep
//! freed memory for reuse instead of returning it. Measured with the
//! upload/delete loop in tests/all/uploads.rs: after the Python sample
//! and a manifest at its bounds were uploaded and deleted seven times,
//! serve's RSS was 133 MiB, of which `malloc_trim` returned 63 MiB.
//!
//! So the last field of every [`super::LoadedFilter`] is a
//! [`FreedOnDrop`], which notes that a filter's memory was freed; serve
//! runs [`spawn`], a thread that once a second, when something was freed,
//! asks the allocator to return its free pages. Nothing on an alert's
//! path pays for it, and a shutdown with a thousand filters trims once at
//! most. Elsewhere than on glibc this is a no-op.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set when a filter's memory was freed; cleared by the trimming thread.
static FREED: AtomicBool = AtomicBool::new(false);

/// Notes, when dropped, that a filter's memory was freed. The last field
/// of a loaded filter, so it drops after everything else in it.
#[derive(Debug, Default)]
pub(crate) struct FreedOnDrop;

impl Drop for FreedOnDrop {
    fn drop(&mut self) {
        FREED.store(true, Ordering::Relaxed);
    }
}

/// Starts the thread that returns freed memory (at most once a second,
/// only after a filter was dropped). For long-running processes: serve.
pub fn spawn() {
    let started = std::thread::Builder::new()
        .name("bandpass-release".into())
        .spawn(|| {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                if FREED.swap(false, Ordering::Relaxed) {
                    let start = Instant::now();
                    trim();
                    tracing::debug!(
                        took_ms = start.elapsed().as_secs_f64() * 1e3,
                        "returned freed filter memory to the operating system"
                    );
                }
            }
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "could not start the thread that returns freed memory");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it
    // takes the arena locks itself and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
