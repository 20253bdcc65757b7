//! A filter's log: its stdout, its stderr and its `log` import, kept in a
//! bounded buffer that truncates instead of failing.
//!
//! A guest that writes to a full pipe gets an error and, in Rust std,
//! panics; so the streams given to guests always accept every byte and the
//! log silently keeps only what fits, counting what it dropped.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Stdout,
    Stderr,
    Debug,
    Info,
    Warn,
    Error,
}

/// One line of a filter's log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    pub source: Origin,
    pub text: String,
}

/// Bounds for a filter's log.
#[derive(Debug, Clone, Copy)]
pub struct LogBounds {
    /// Lines kept (the oldest are dropped first).
    pub max_lines: usize,
    /// Longest line kept, in bytes; longer lines are cut.
    pub max_line_bytes: usize,
}

impl Default for LogBounds {
    fn default() -> Self {
        LogBounds {
            max_lines: 1000,
            max_line_bytes: 1024,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    lines: VecDeque<LogLine>,
    /// Bytes of stdout/stderr not yet ended by a newline.
    partial_stdout: Vec<u8>,
    partial_stderr: Vec<u8>,
    dropped_lines: u64,
    truncated_bytes: u64,
    total_bytes: u64,
}

/// A bounded, shared log for one filter. Cloning shares the buffer.
#[derive(Debug, Clone, Default)]
pub struct FilterLog {
    inner: Arc<Mutex<Inner>>,
    bounds: LogBounds,
}

impl FilterLog {
    pub fn new(bounds: LogBounds) -> FilterLog {
        FilterLog {
            inner: Arc::default(),
            bounds,
        }
    }

    /// Appends one line from the `log` import.
    pub fn line(&self, source: Origin, text: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.total_bytes += text.len() as u64;
        self.push(&mut inner, source, text.as_bytes());
    }

    /// Appends raw bytes written to stdout or stderr, split into lines.
    fn write(&self, source: Origin, bytes: &[u8]) {
        let mut inner = self.inner.lock().unwrap();
        inner.total_bytes += bytes.len() as u64;
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(partial(&mut inner, source));
            line.extend_from_slice(&rest[..pos]);
            self.push(&mut inner, source, &line);
            rest = &rest[pos + 1..];
        }
        let room = self
            .bounds
            .max_line_bytes
            .saturating_sub(partial(&mut inner, source).len());
        let keep = rest.len().min(room);
        partial(&mut inner, source).extend_from_slice(&rest[..keep]);
        inner.truncated_bytes += (rest.len() - keep) as u64;
    }

    fn push(&self, inner: &mut Inner, source: Origin, bytes: &[u8]) {
        let keep = bytes.len().min(self.bounds.max_line_bytes);
        inner.truncated_bytes += (bytes.len() - keep) as u64;
        // Kept as it will be shown: control characters made visible, so
        // a line cannot steer a terminal or forge a line of the host's log.
        let text = crate::text::shown(&String::from_utf8_lossy(&bytes[..keep]), keep).into_owned();
        if inner.lines.len() == self.bounds.max_lines {
            inner.lines.pop_front();
            inner.dropped_lines += 1;
        }
        inner.lines.push_back(LogLine { source, text });
    }

    /// The lines kept, oldest first, with any unterminated output last.
    pub fn lines(&self) -> Vec<LogLine> {
        let inner = self.inner.lock().unwrap();
        let mut out: Vec<LogLine> = inner.lines.iter().cloned().collect();
        for (source, bytes) in [
            (Origin::Stdout, &inner.partial_stdout),
            (Origin::Stderr, &inner.partial_stderr),
        ] {
            if !bytes.is_empty() {
                out.push(LogLine {
                    source,
                    text: String::from_utf8_lossy(bytes).into_owned(),
                });
            }
        }
        out
    }

    /// The last few stderr lines, joined: where a guest's panic message
    /// is. Lines a language runtime adds after the guest's own message
    /// (see [`is_runtime_boilerplate`]) are skipped, so that a Python
    /// exception's last traceback lines are what the report quotes.
    pub fn stderr_tail(&self, max_lines: usize) -> String {
        let lines = self.lines();
        let tail: Vec<&str> = lines
            .iter()
            .filter(|l| l.source == Origin::Stderr)
            .map(|l| l.text.as_str())
            .filter(|l| !is_runtime_boilerplate(l))
            .collect();
        tail[tail.len().saturating_sub(max_lines)..].join(" | ")
    }

    /// Lines dropped because the log was full, and bytes cut from lines.
    pub fn dropped(&self) -> (u64, u64) {
        let inner = self.inner.lock().unwrap();
        (inner.dropped_lines, inner.truncated_bytes)
    }

    /// Every byte the filter tried to log, kept or not.
    pub fn total_bytes(&self) -> u64 {
        self.inner.lock().unwrap().total_bytes
    }

    /// A stdout or stderr stream for a guest, writing into this log.
    pub fn stream(&self, source: Origin) -> LogStream {
        LogStream {
            log: self.clone(),
            source,
        }
    }
}

/// Whether a stderr line is what a guest's runtime prints around every
/// failure rather than the failure itself: blank lines, Rust's backtrace
/// hint, and componentize-py's and SpiderMonkey's abort notices (seen in
/// docs/spikes/guest-languages).
fn is_runtime_boilerplate(line: &str) -> bool {
    let line = line.trim();
    line.is_empty()
        || line.starts_with("note: run with `RUST_BACKTRACE")
        || line == "Python function threw an unexpected exception"
        || line.starts_with("Redirecting call to abort() to mozalloc_abort")
        || (line.starts_with("thread '") && line.contains("panicked at runtime/src/lib.rs"))
}

fn partial(inner: &mut Inner, source: Origin) -> &mut Vec<u8> {
    match source {
        Origin::Stderr => &mut inner.partial_stderr,
        _ => &mut inner.partial_stdout,
    }
}

/// A guest's stdout or stderr: accepts everything, keeps what fits.
#[derive(Debug, Clone)]
pub struct LogStream {
    log: FilterLog,
    source: Origin,
}

/// How much a guest may write per `check-write` permit.
const PERMIT: usize = 64 * 1024;

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        // wasmtime does not hold a write to its permit: a guest ignoring
        // `check-write` could make the host split megabytes into lines
        // under the log's lock in one call.
        if bytes.len() > PERMIT {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "wrote {} bytes at once to {:?}, over the {PERMIT} that check-write allows",
                bytes.len(),
                self.source
            )));
        }
        self.log.write(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.log.write(self.source, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_over_the_permit_traps_and_keeps_nothing() {
        let log = FilterLog::new(LogBounds::default());
        let mut stream = LogStream {
            log: log.clone(),
            source: Origin::Stdout,
        };
        assert!(stream.write(Bytes::from(vec![b'\n'; PERMIT])).is_ok());
        let lines = log.lines().len();
        let over = stream.write(Bytes::from(vec![b'\n'; PERMIT + 1]));
        assert!(matches!(over, Err(StreamError::Trap(_))));
        assert_eq!(log.lines().len(), lines);
    }

    #[test]
    fn keeps_the_newest_lines_and_counts_the_dropped_ones() {
        let log = FilterLog::new(LogBounds {
            max_lines: 3,
            max_line_bytes: 8,
        });
        log.write(Origin::Stdout, b"one\ntwo\nthree\nfour and more\nfive");
        let lines: Vec<String> = log.lines().into_iter().map(|l| l.text).collect();
        assert_eq!(lines, ["two", "three", "four and", "five"]);
        assert_eq!(log.dropped(), (1, 5));
    }

    #[test]
    fn a_line_cannot_steer_the_terminal_or_forge_a_line_of_its_own() {
        let log = FilterLog::new(LogBounds::default());
        log.line(
            Origin::Info,
            "done\r\n2026-12-05T00:00:00Z ERROR forged\x1b[2J",
        );
        log.write(Origin::Stdout, b"tab\there \x1b]0;title\x07\n");
        let lines: Vec<String> = log.lines().into_iter().map(|l| l.text).collect();
        assert_eq!(
            lines,
            [
                "done\\r\\n2026-12-05T00:00:00Z ERROR forged\\u{1b}[2J",
                "tab\\there \\u{1b}]0;title\\u{7}"
            ]
        );
    }

    #[test]
    fn the_stderr_tail_quotes_the_guest_not_its_runtime() {
        let log = FilterLog::new(LogBounds {
            max_lines: 100,
            max_line_bytes: 200,
        });
        // What a componentize-py filter prints for an uncaught exception.
        log.write(
            Origin::Stderr,
            b"Traceback (most recent call last):\n  File \"/0/app.py\", line 74, in evaluate\n  \
              File \"/0/app.py\", line 64, in helper\nZeroDivisionError: division by zero\n\n\
              thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\n\
              Python function threw an unexpected exception\n\
              note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        );
        assert_eq!(
            log.stderr_tail(2),
            "  File \"/0/app.py\", line 64, in helper | ZeroDivisionError: division by zero"
        );
        // A Rust guest's panic keeps its location, loses only the hint.
        let log = FilterLog::new(LogBounds {
            max_lines: 100,
            max_line_bytes: 200,
        });
        log.write(
            Origin::Stderr,
            b"thread '<unnamed>' (1) panicked at src/lib.rs:21:9:\nboom\n\
              note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        );
        assert_eq!(
            log.stderr_tail(3),
            "thread '<unnamed>' (1) panicked at src/lib.rs:21:9: | boom"
        );
    }
}
