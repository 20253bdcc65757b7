//! An upload's compile, run in a child process the service can kill.
//!
//! Compiling is the one step of an upload check that no fuel or deadline
//! bounds: it runs the compiler, not the filter. A thread cannot be
//! stopped, so a component made to compile for minutes would keep a core
//! busy long after its upload was refused, and a component that crashes
//! the compiler would take the service down. So `serve` compiles each
//! upload in `bandpass compile`, a child of the same executable, which
//! writes the artifact into the compiled-code cache. On time, the service
//! then loads the same bytes from the cache in milliseconds; past
//! `admin.uploads.compile_timeout` the child is killed, and the core is
//! free at once.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::sandbox::{CompileCache, Sandbox};

/// Why a compile did not give a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileFailure {
    /// The component is not one the host can run: the reason.
    Refused(String),
    /// Still compiling at this time bound; killed.
    TimedOut(Duration),
    /// The compile process died (a signal, or an error of its own): how
    /// (`killed by signal 11`), and the end of what it wrote to stderr.
    Crashed { how: String, stderr: String },
}

impl std::fmt::Display for CompileFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompileFailure::Refused(reason) => write!(f, "component refused: {reason}"),
            CompileFailure::TimedOut(timeout) => write!(
                f,
                "the component did not compile within {timeout:?} \
                 (admin.uploads.compile_timeout): make it smaller"
            ),
            CompileFailure::Crashed { how, .. } => write!(
                f,
                "compiling the component crashed the compiler ({how}); \
                 the service is unharmed: report it to the operator"
            ),
        }
    }
}

/// Compiles `component` into `sandbox`'s cache in a child process
/// (unless it is there already), so that loading it afterwards reads the
/// artifact. Without a cache there is nothing to do: the load compiles.
pub fn compile_bounded(
    sandbox: &Sandbox,
    component: &[u8],
    sha256: &str,
    timeout: Duration,
    memory: usize,
) -> Result<(), CompileFailure> {
    match &sandbox.options().cache {
        Some(cache) if !sandbox.is_cached(sha256) => {
            let compiled = compile_in_child(cache, component, timeout, memory);
            match &compiled {
                Err(CompileFailure::TimedOut(_)) => tracing::warn!(
                    %sha256,
                    ?timeout,
                    "a component outlasted admin.uploads.compile_timeout: its compile process was killed"
                ),
                Err(CompileFailure::Crashed { how, stderr }) => {
                    tracing::error!(%sha256, %how, %stderr, "a component's compile process died")
                }
                _ => {}
            }
            compiled
        }
        _ => Ok(()),
    }
}

/// Compiles `component` into `cache` in a child process, killed if it
/// runs longer than `timeout`, and given at most `memory` bytes.
pub fn compile_in_child(
    cache: &CompileCache,
    component: &[u8],
    timeout: Duration,
    memory: usize,
) -> Result<(), CompileFailure> {
    let failed = |how: String| CompileFailure::Crashed {
        how,
        stderr: String::new(),
    };
    // The running executable itself, even once a package upgrade has
    // replaced or removed the file it was started from.
    let proc_exe = Path::new("/proc/self/exe");
    let exe = if proc_exe.exists() {
        proc_exe.to_path_buf()
    } else {
        std::env::current_exe()
            .map_err(|e| failed(format!("cannot find the bandpass executable to run: {e}")))?
    };
    let mib = memory >> 20;
    let mut command = Command::new(exe);
    command
        .args(["--log", "warn", "compile", "--memory-mib", &mib.to_string()])
        .arg("--cache-dir")
        .arg(cache.dir())
        .arg("--cache-max-bytes")
        .arg(cache.max_bytes().to_string())
        // What it says on a crash is for the log, not a backtrace.
        .env_remove("RUST_BACKTRACE");
    match run_bounded(command, component, timeout) {
        Err(e) => Err(failed(format!("could not run the compile process: {e}"))),
        Ok(None) => Err(CompileFailure::TimedOut(timeout)),
        Ok(Some(ended)) => match ended.status.code() {
            Some(0) => {
                // Its warnings (say, a cache it could not write) are the
                // service's to log.
                if !ended.stderr.trim().is_empty() {
                    tracing::warn!(said = %ended.stderr.trim(), "the compile process warned");
                }
                Ok(())
            }
            Some(1) => Err(CompileFailure::Refused(ended.stdout.trim().to_string())),
            // Rust's allocator reports a refused allocation, then aborts.
            _ if ended.stderr.contains("memory allocation of") => {
                Err(CompileFailure::Refused(format!(
                    "compiling it needs more than the {mib} MiB allowed \
                     (admin.uploads.compile_memory): make it smaller"
                )))
            }
            _ => Err(CompileFailure::Crashed {
                how: ended.how(),
                stderr: ended.stderr.trim().to_string(),
            }),
        },
    }
}

/// How a bounded child process ended.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: String,
    /// Its last 4 KiB of stderr.
    pub stderr: String,
}

impl Ended {
    /// `killed by signal 11`, or `exit status 2`.
    fn how(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match (self.status.code(), self.status.signal()) {
            (_, Some(signal)) => format!("killed by signal {signal}"),
            (Some(code), None) => format!("exit status {code}"),
            (None, None) => self.status.to_string(),
        }
    }
}

/// Most of a child's stderr kept for a report.
const STDERR_TAIL: usize = 4096;

/// Runs `command` with `input` on its stdin; `None` when it was still
/// running after `timeout` and has been killed (and reaped).
pub fn run_bounded(
    mut command: Command,
    input: &[u8],
    timeout: Duration,
) -> std::io::Result<Option<Ended>> {
    let deadline = Instant::now() + timeout;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Each pipe has its own thread, so that neither a child that does not
    // read its input nor one that writes much can block the clock below.
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // A child that exits early closes the pipe: nothing to report.
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = (&mut stdout).take(64 << 10).read_to_string(&mut text);
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        text
    });
    let mut stderr = child.stderr.take().expect("piped");
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        let tail = &bytes[bytes.len().saturating_sub(STDERR_TAIL)..];
        String::from_utf8_lossy(tail).into_owned()
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = writer.join();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(status.map(|status| Ended {
        status,
        stdout,
        stderr,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn a_child_gets_its_input_and_its_output_is_kept() {
        let ended = run_bounded(
            sh("cat; echo said >&2"),
            b"component",
            Duration::from_secs(30),
        )
        .unwrap()
        .expect("ended");
        assert!(ended.status.success());
        assert_eq!(ended.stdout, "component");
        assert_eq!(ended.stderr, "said\n");
    }

    #[test]
    fn a_child_past_its_time_is_killed_and_reaped() {
        // It prints its pid, then sleeps far longer than the bound.
        let pid_file = tempfile::NamedTempFile::new().unwrap();
        let script = format!("echo $$ > {}; exec sleep 600", pid_file.path().display());
        let ended = run_bounded(sh(&script), b"", Duration::from_millis(300)).unwrap();
        assert!(ended.is_none(), "{ended:?}");
        let pid = std::fs::read_to_string(pid_file.path()).unwrap();
        let alive = Command::new("kill")
            .args(["-0", pid.trim()])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive, "process {} still exists", pid.trim());
    }

    #[test]
    fn a_child_that_never_reads_a_large_input_is_still_bounded() {
        // 8 MiB is far more than a pipe holds: a writer on the clock's
        // thread would block forever.
        let input = vec![0u8; 8 << 20];
        let ended = run_bounded(sh("exec sleep 600"), &input, Duration::from_millis(300)).unwrap();
        assert!(ended.is_none());
    }

    #[test]
    fn a_crash_is_told_by_its_signal() {
        let ended = run_bounded(
            sh("echo 'compiler: boom' >&2; kill -SEGV $$"),
            b"",
            Duration::from_secs(30),
        )
        .unwrap()
        .expect("ended");
        assert_eq!(ended.how(), "killed by signal 11");
        assert_eq!(ended.stderr, "compiler: boom\n");
    }
}
