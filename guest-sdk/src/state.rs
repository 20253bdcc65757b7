//! A filter's state per object: a few bytes the host keeps for each
//! object (a ZTF `objectId`, a Rubin `diaObjectId`) and hands back with
//! the object's next alert.
//!
//! Declare it with [`Filter::STATE`](crate::Filter::STATE), then, inside
//! [`Filter::evaluate`](crate::Filter::evaluate), read it with [`load`]
//! and change it with [`save`] or [`forget`]:
//!
//! ```rust,no_run
//! use bandpass_sdk::prelude::*;
//! # fields! { struct Alert { magpsf: Option<f64> = "candidate.magpsf" } }
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! struct Seen {
//!     alerts: u32,
//! }
//!
//! # #[derive(Default)] struct Third;
//! impl Filter for Third {
//! #   type Fields = Alert;
//! #   const NAME: &'static str = "third";
//! #   const VERSION: &'static str = "0.1.0";
//! #   const SURVEY: &'static str = "ztf";
//! #   const DESCRIPTION: &'static str = "The third alert of each object.";
//!     const STATE: Option<StateSpec> = Some(StateSpec::new("third/1", 64));
//!
//!     fn evaluate(&self, _: Alert) -> Result<Verdict, String> {
//!         let mut seen: Seen = state::load()?; // `Default` the first time
//!         seen.alerts += 1;
//!         state::save(&seen)?;
//!         Ok(if seen.alerts == 3 { Verdict::accept() } else { Verdict::reject() })
//!     }
//! }
//! ```
//!
//! [`load`] and [`save`] keep the state as a JSON object (with `serde`),
//! the layout the Python and JavaScript SDKs use too; [`bytes`] and
//! [`save_bytes`] give the raw bytes to a filter that packs its own.
//!
//! What the host guarantees: the state is this deployment's own (another
//! deployment of the same component, with other parameters, keeps
//! another); it comes back with the object's next alert, in alert time
//! order, in `bandpass test`, `run` and `serve` alike; it stays as it was
//! when `evaluate` returns an error or traps; a state over the declared
//! `max_bytes` fails that alert (`bad-state`) and the old state stays. A
//! new version of the filter with the same [`StateSpec::format`] receives
//! its predecessor's state; change the format when the layout changes.

use core::cell::RefCell;

use crate::bindings::bandpass::filter::types as wit;

/// What a filter keeps per object: see [`Filter::STATE`](crate::Filter::STATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSpec {
    /// The name of the bytes' layout (`first-rise/1`): printable ASCII
    /// without spaces, at most 64 bytes. Change it when the layout changes
    /// and an old state would mislead the new code: the host then starts
    /// every object from none.
    pub format: &'static str,
    /// The most bytes kept for one object (the host's cap is 4096 unless
    /// the operator raised it).
    pub max_bytes: u32,
}

impl StateSpec {
    /// A state of layout `format` of at most `max_bytes` bytes.
    pub const fn new(format: &'static str, max_bytes: u32) -> StateSpec {
        StateSpec { format, max_bytes }
    }
}

/// The state of the alert being evaluated: what came in, and the change.
#[derive(Default)]
struct Current {
    spec: Option<StateSpec>,
    incoming: Option<Vec<u8>>,
    change: Option<wit::StateChange>,
}

std::thread_local! {
    static CURRENT: RefCell<Current> = RefCell::new(Current::default());
}

/// Starts an alert: the state the host sent.
pub(crate) fn begin(spec: Option<StateSpec>, incoming: Option<Vec<u8>>) {
    CURRENT.with(|c| {
        *c.borrow_mut() = Current {
            spec,
            incoming,
            change: None,
        }
    });
}

/// Ends an alert: what to tell the host.
pub(crate) fn finish() -> wit::StateChange {
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        c.incoming = None;
        c.change.take().unwrap_or(wit::StateChange::Keep)
    })
}

fn declared() -> Result<StateSpec, String> {
    CURRENT.with(|c| c.borrow().spec).ok_or_else(|| {
        "this filter declares no state: set `const STATE: Option<StateSpec> = \
         Some(StateSpec::new(\"name/1\", 512));` in its `impl Filter`"
            .to_string()
    })
}

/// The object's state as the host sent it: `None` the first time, after
/// [`forget`], or after it expired. A [`save`] earlier in this call is
/// not seen here.
///
/// # Errors
///
/// The filter declares no state.
pub fn bytes() -> Result<Option<Vec<u8>>, String> {
    declared()?;
    Ok(CURRENT.with(|c| c.borrow().incoming.clone()))
}

/// Reads the object's state as JSON into `T`; `T::default()` when there
/// is none.
///
/// # Errors
///
/// The filter declares no state, or the bytes are not a `T` in JSON (a
/// state another layout left: change [`StateSpec::format`] when `T`
/// changes incompatibly).
pub fn load<T: serde::de::DeserializeOwned + Default>() -> Result<T, String> {
    let spec = declared()?;
    match CURRENT.with(|c| c.borrow().incoming.clone()) {
        None => Ok(T::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "the object's state ({} bytes, format '{}') does not read as this filter's \
                 state type: {e}; if the type changed, change the format",
                bytes.len(),
                spec.format
            )
        }),
    }
}

/// Keeps `value`, as JSON, as the object's state from this alert on.
///
/// JSON has no NaN or infinity: a float that is one is kept as `null`,
/// which then does not read back as an `f64`. Keep an `Option<f64>` for
/// "no value".
///
/// # Errors
///
/// The filter declares no state, `value` does not serialize to JSON (a
/// NaN), or it is over [`StateSpec::max_bytes`].
pub fn save<T: serde::Serialize>(value: &T) -> Result<(), String> {
    let spec = declared()?;
    let bytes = serde_json::to_vec(value)
        .map_err(|e| format!("the state does not serialize to JSON: {e}"))?;
    set(spec, bytes)
}

/// Keeps `bytes` as the object's state from this alert on.
///
/// # Errors
///
/// The filter declares no state, or `bytes` is over
/// [`StateSpec::max_bytes`].
pub fn save_bytes(bytes: Vec<u8>) -> Result<(), String> {
    let spec = declared()?;
    set(spec, bytes)
}

fn set(spec: StateSpec, bytes: Vec<u8>) -> Result<(), String> {
    if bytes.len() > spec.max_bytes as usize {
        return Err(format!(
            "state of {} bytes exceeds the max_bytes of {} the filter declares (format '{}')",
            bytes.len(),
            spec.max_bytes,
            spec.format
        ));
    }
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        // The same bytes as came in: nothing for the host to write.
        c.change = Some(if c.incoming.as_ref() == Some(&bytes) {
            wit::StateChange::Keep
        } else {
            wit::StateChange::Set(bytes)
        });
    });
    Ok(())
}

/// Drops the object's state: its next alert comes with none.
///
/// # Errors
///
/// The filter declares no state.
pub fn forget() -> Result<(), String> {
    declared()?;
    CURRENT.with(|c| c.borrow_mut().change = Some(wit::StateChange::Forget));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Seen {
        alerts: u32,
    }

    const SPEC: StateSpec = StateSpec::new("seen/1", 16);

    #[test]
    fn a_state_reads_as_default_the_first_time_and_comes_back_as_saved() {
        begin(Some(SPEC), None);
        let mut seen: Seen = load().unwrap();
        assert_eq!(seen, Seen::default());
        seen.alerts += 1;
        save(&seen).unwrap();
        let wit::StateChange::Set(bytes) = finish() else {
            panic!("saved")
        };
        assert_eq!(bytes, br#"{"alerts":1}"#);
        begin(Some(SPEC), Some(bytes));
        assert_eq!(load::<Seen>().unwrap(), Seen { alerts: 1 });
        assert!(
            matches!(finish(), wit::StateChange::Keep),
            "untouched: kept"
        );
        begin(Some(SPEC), None);
        forget().unwrap();
        assert!(matches!(finish(), wit::StateChange::Forget));
    }

    #[test]
    fn what_cannot_be_kept_is_an_error_that_says_why() {
        begin(Some(SPEC), Some(b"[1, 2]".to_vec()));
        let err = load::<Seen>().unwrap_err();
        assert!(
            err.contains("format 'seen/1'") && err.contains("change the format"),
            "{err}"
        );
        let err = save_bytes(vec![0; 17]).unwrap_err();
        assert!(
            err.contains("17 bytes exceeds the max_bytes of 16"),
            "{err}"
        );
        // JSON has no NaN: it is kept as null (said in `save`'s docs).
        save(&f64::NAN).unwrap();
        assert!(matches!(finish(), wit::StateChange::Set(b) if b == b"null"));
        begin(Some(SPEC), None);
        finish();
        begin(None, None);
        let err = load::<Seen>().unwrap_err();
        assert!(err.contains("declares no state"), "{err}");
        assert!(matches!(finish(), wit::StateChange::Keep));
    }
}
