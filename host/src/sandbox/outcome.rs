//! What became of one call into a filter: its [`Verdict`], or a
//! [`Failure`] of a named [`FailureKind`] ([`classify`] names the cause
//! of a wasmtime error, [`check_verdict`] holds a verdict to the bounds of
//! [`Limits`]), and what it cost ([`Evaluation`]).

use std::time::Instant;

use wasmtime::Store;

use super::bindings::bandpass::filter::types::Accepted;
use super::{FilterLog, HostState, Limits, clocks};

/// What one call into a guest may spend: the fuel it was given and its
/// deadline, counted from `start`. Failure messages quote these, the
/// budget of the call that failed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallBudget {
    pub fuel: u64,
    pub deadline_ms: u64,
    pub start: Instant,
}

/// Names the cause of a wasmtime error from a call into the guest.
pub(crate) fn classify(
    budget: &CallBudget,
    log: &FilterLog,
    store: &mut Store<HostState>,
    err: wasmtime::Error,
    during: &str,
) -> Failure {
    let refused = store.data_mut().limiter.refused.take();
    if let Some(why) = clocks::wait_refused(store.data_mut()) {
        return Failure {
            kind: FailureKind::Deadline,
            message: format!(
                "stopped {during}: it {why} ending after its deadline of {} ms",
                budget.deadline_ms
            ),
        };
    }
    let trap = err.downcast_ref::<wasmtime::Trap>().copied();
    let (kind, message) = match (refused, trap) {
        (Some(why), _) => (
            FailureKind::Memory,
            format!("memory cap reached {during}: {why}"),
        ),
        (None, Some(wasmtime::Trap::OutOfFuel)) => (
            FailureKind::OutOfFuel,
            format!("ran out of fuel {during} (budget {})", budget.fuel),
        ),
        (None, Some(wasmtime::Trap::Interrupt)) => (
            FailureKind::Deadline,
            format!("missed its deadline of {} ms {during}", budget.deadline_ms),
        ),
        (None, Some(wasmtime::Trap::StackOverflow)) => (
            FailureKind::StackOverflow,
            format!("overflowed its stack {during}"),
        ),
        (None, Some(wasmtime::Trap::UnreachableCodeReached)) => {
            let tail = log.stderr_tail(3);
            let said = if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            };
            (FailureKind::Panic, format!("panicked {during}{said}"))
        }
        // Rust and C guests keep their data stack at the bottom of linear
        // memory, growing down: deep recursion runs the stack pointer past
        // address 0 and the next access is out of bounds. A wild pointer
        // in unsafe code looks the same, so the message says both.
        (None, Some(wasmtime::Trap::MemoryOutOfBounds)) => (
            FailureKind::StackOverflow,
            format!(
                "overflowed its data stack {during} (an out-of-bounds memory access: \
                 deep recursion in most guests, else a wild pointer)"
            ),
        ),
        (None, Some(trap)) => (FailureKind::Trap, format!("trapped {during}: {trap}")),
        (None, None) => match err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            // `exit()` (Rust's `std::process::exit`, Python's `sys.exit`)
            // ends the instance: a failure of its own, said in one line.
            Some(exit) => (
                FailureKind::Trap,
                format!(
                    "called exit({}) {during}: a filter returns, it never exits",
                    exit.0
                ),
            ),
            None => (
                FailureKind::Trap,
                format!("failed {during}: {}", error_chain(&err)),
            ),
        },
    };
    Failure { kind, message }
}

/// Longest guest-supplied text kept in a failure message, in bytes.
const MAX_GUEST_MESSAGE: usize = 1024;

/// A guest's message as the host keeps it: cut to [`MAX_GUEST_MESSAGE`]
/// bytes and made safe to show (`text::shown`).
pub(super) fn bounded(message: &str) -> String {
    crate::text::shown(message, MAX_GUEST_MESSAGE).into_owned()
}

/// An error and its causes in one line: the wasm backtrace wasmtime adds
/// as context (many lines of guest addresses) is left out.
pub(super) fn error_chain(err: &wasmtime::Error) -> String {
    err.chain()
        .map(|e| e.to_string())
        .filter(|e| !e.starts_with("error while executing at wasm backtrace"))
        .collect::<Vec<_>>()
        .join(": ")
}

/// A filter's decision on one alert, as the host passes it on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    Reject,
    Accept {
        score: Option<f64>,
        tags: Vec<String>,
        annotations: Vec<(String, String)>,
    },
}

/// Why a filter produced no verdict on an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The per-alert fuel budget ran out.
    OutOfFuel,
    /// The wall-clock deadline passed.
    Deadline,
    /// Memory or table growth over the cap.
    Memory,
    /// The wasm stack cap was exceeded.
    StackOverflow,
    /// The guest aborted (a Rust panic, an uncaught exception).
    Panic,
    /// Any other trap or host-side error while calling the guest.
    Trap,
    /// The filter returned an error value.
    FilterError,
    /// A required field is not in this alert's schema.
    UnknownField,
    /// The verdict exceeded the size bounds.
    BadVerdict,
    /// The state returned is over the manifest's `max-bytes`, or was set
    /// by a filter that declared no state. The object's state stays.
    BadState,
    /// `init` failed when making a fresh instance.
    Init,
}

impl FailureKind {
    /// Every kind, as `/metrics` lists them from the start.
    pub const ALL: [FailureKind; 11] = [
        FailureKind::OutOfFuel,
        FailureKind::Deadline,
        FailureKind::Memory,
        FailureKind::StackOverflow,
        FailureKind::Panic,
        FailureKind::Trap,
        FailureKind::FilterError,
        FailureKind::UnknownField,
        FailureKind::BadVerdict,
        FailureKind::BadState,
        FailureKind::Init,
    ];

    /// As reports, metrics and logs spell it (and the JSON of a report):
    /// `out-of-fuel`.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::OutOfFuel => "out-of-fuel",
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::StackOverflow => "stack-overflow",
            FailureKind::Panic => "panic",
            FailureKind::Trap => "trap",
            FailureKind::FilterError => "filter-error",
            FailureKind::UnknownField => "unknown-field",
            FailureKind::BadVerdict => "bad-verdict",
            FailureKind::BadState => "bad-state",
            FailureKind::Init => "init",
        }
    }

    /// Whether the Store is poisoned and must be rebuilt.
    #[inline]
    pub(super) fn poisons(self) -> bool {
        !matches!(
            self,
            FailureKind::FilterError
                | FailureKind::UnknownField
                | FailureKind::BadVerdict
                | FailureKind::BadState
        )
    }
}

/// A classified failure, with a message that names the cause.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// What became of one alert in one filter.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    Verdict(Verdict),
    Failed(Failure),
    /// Not run: another survey's alert, or the filter is quarantined.
    Skipped {
        reason: String,
        /// Skipped because the filter is quarantined (the reason then
        /// begins with [`SKIPPED_QUARANTINED`](super::SKIPPED_QUARANTINED)).
        #[serde(skip)]
        quarantined: bool,
    },
}

/// What becomes of the object's state after one alert, as the host
/// applies it (checked: only from a verdict, within the declared size).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StateChange {
    #[default]
    Keep,
    Set(Vec<u8>),
    Forget,
}

/// One call's outcome and what it cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The object's state after the alert: `Keep` unless the call gave a
    /// verdict and changed it.
    #[serde(skip)]
    pub state: StateChange,
    pub fuel: u64,
    /// Wall time of the call, including any re-instantiation.
    pub nanos: u64,
}

/// Enforces the verdict bounds of [`Limits`].
pub(super) fn check_verdict(a: Accepted, limits: &Limits) -> Result<Verdict, Failure> {
    let bad = |message: String| {
        Err(Failure {
            kind: FailureKind::BadVerdict,
            message,
        })
    };
    if a.tags.len() > limits.max_tags {
        return bad(format!(
            "returned {} tags; at most {} are allowed",
            a.tags.len(),
            limits.max_tags
        ));
    }
    if let Some(t) = a.tags.iter().find(|t| t.len() > limits.max_tag_bytes) {
        return bad(format!(
            "returned a tag of {} bytes; at most {} are allowed",
            t.len(),
            limits.max_tag_bytes
        ));
    }
    if a.annotations.len() > limits.max_annotations {
        return bad(format!(
            "returned {} annotations; at most {} are allowed",
            a.annotations.len(),
            limits.max_annotations
        ));
    }
    if let Some((k, v)) = a
        .annotations
        .iter()
        .find(|(k, v)| k.len() + v.len() > limits.max_annotation_bytes)
    {
        return bad(format!(
            "returned an annotation '{}' of {} bytes; at most {} are allowed",
            crate::text::shown(k, 64),
            k.len() + v.len(),
            limits.max_annotation_bytes
        ));
    }
    // A note's key becomes a Kafka header name, `bandpass-note-<key>`:
    // a plain, distinct name, or the downstream reader cannot trust it.
    for (i, (k, _)) in a.annotations.iter().enumerate() {
        let plain = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !plain {
            return bad(format!(
                "returned a note key '{}' that is not 1 or more of A-Z, a-z, 0-9, '_', '-' and '.'",
                crate::text::shown(k, 64)
            ));
        }
        if a.annotations[..i].iter().any(|(earlier, _)| earlier == k) {
            return bad(format!("returned the note key '{k}' twice"));
        }
    }
    if a.score.is_some_and(|s| !s.is_finite()) {
        return bad("returned a score that is not a finite number".into());
    }
    Ok(Verdict::Accept {
        score: a.score,
        tags: a.tags,
        annotations: a.annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_kind_is_named_as_its_json_spells_it() {
        use FailureKind::*;
        for kind in [
            OutOfFuel,
            Deadline,
            Memory,
            StackOverflow,
            Panic,
            Trap,
            FilterError,
            UnknownField,
            BadVerdict,
            Init,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
    }

    #[test]
    fn guest_messages_are_cut_at_a_character_boundary_and_escaped() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(1000);
        let cut = bounded(&long);
        assert!(cut.starts_with(&"é".repeat(512)));
        assert!(cut.ends_with("... (976 more bytes cut)"), "{cut}");
        assert_eq!(bounded("two\nlines\x1b[0m"), "two\\nlines\\u{1b}[0m");
    }

    #[test]
    fn verdicts_over_the_bounds_are_refused_with_the_bound_named() {
        let limits = Limits::default();
        let accepted = |tags: usize, annotation: usize, score: f64| Accepted {
            score: Some(score),
            tags: vec!["t".into(); tags],
            annotations: vec![("k".into(), "v".repeat(annotation))],
        };
        assert!(check_verdict(accepted(32, 10, 0.5), &limits).is_ok());
        let too_many = check_verdict(accepted(33, 10, 0.5), &limits).unwrap_err();
        assert_eq!(too_many.kind, FailureKind::BadVerdict);
        assert!(too_many.message.contains("33 tags; at most 32"));
        let too_long = check_verdict(accepted(1, 300, 0.5), &limits).unwrap_err();
        assert!(
            too_long.message.contains("at most 256"),
            "{}",
            too_long.message
        );
        assert!(check_verdict(accepted(1, 1, f64::NAN), &limits).is_err());
        let with_keys = |keys: &[&str]| Accepted {
            score: None,
            tags: Vec::new(),
            annotations: keys.iter().map(|k| (k.to_string(), "v".into())).collect(),
        };
        assert!(check_verdict(with_keys(&["ssnamenr", "rise.rate_r-band"]), &limits).is_ok());
        for (keys, reason) in [
            (&["a\r\nX-Forged: 1"][..], "note key 'a\\r\\nX-Forged: 1'"),
            (&[""], "note key ''"),
            (&["nul\0"], "note key 'nul\\u{0}'"),
            (&["k", "k"], "note key 'k' twice"),
        ] {
            let refused = check_verdict(with_keys(keys), &limits).unwrap_err();
            assert_eq!(refused.kind, FailureKind::BadVerdict);
            assert!(refused.message.contains(reason), "{}", refused.message);
        }
    }
}
