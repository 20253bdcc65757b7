//! The [`Filter`] trait and the plumbing [`export_filter!`](crate::export_filter!)
//! expands to: describe, init, evaluate.
//!
//! Owns the one configured instance of the filter per component instance.
//! Never holds anything from one alert to the next but that instance.

use core::cell::RefCell;

use crate::bindings::bandpass::filter::types as wit;
use crate::fields::FieldValues;
use crate::{Crossmatch, Fields, Params, StateSpec};

/// An alert filter.
///
/// Implement it on a type that holds the filter's configuration (a unit
/// struct if it has none) and implements [`Default`], then export it with
/// [`export_filter!`](crate::export_filter!). `Default` is required even
/// when you write [`Filter::init`]: derive it on a unit struct, or write it
/// to hold the parameters' defaults. The host calls, in order:
///
/// 1. `describe` once at load: the consts and [`Fields::PATHS`];
/// 2. [`Filter::init`] once per instance with the operator's parameters;
/// 3. [`Filter::evaluate`] once per alert of [`Filter::SURVEY`], with the
///    declared fields already converted.
///
/// A filter must not panic: a panic traps, which the host counts against the
/// filter (and quarantines it after repeated traps). Return `Err` instead.
pub trait Filter: Default + 'static {
    /// The fields this filter reads, declared with [`fields!`](crate::fields!).
    type Fields: Fields;

    /// Short name, `[a-z0-9-]`, used in logs, metrics and output headers.
    const NAME: &'static str;
    /// The filter's own version; `env!("CARGO_PKG_VERSION")` is usual.
    const VERSION: &'static str;
    /// The survey whose alerts the filter expects: see [`crate::survey`].
    const SURVEY: &'static str;
    /// One sentence on what the filter selects.
    const DESCRIPTION: &'static str;
    /// What the filter keeps per object between alerts, if anything: see
    /// [`crate::state`]. `None` (the default) keeps nothing.
    const STATE: Option<StateSpec> = None;
    /// The catalogue rows the host finds around each alert for this
    /// filter, read as `xmatch.<name>.*` fields: see [`crate::crossmatch`].
    /// None by default.
    const CROSSMATCHES: &'static [Crossmatch] = &[];

    /// Builds the configured filter from the operator's parameters.
    ///
    /// The default ignores the parameters and uses [`Default`]. Override it
    /// to read thresholds (`params.f64("min_drb", 0.65)?`); refuse unknown
    /// keys with [`Params::deny_unknown`] so a typo fails the deployment
    /// instead of silently using a default.
    ///
    /// # Errors
    ///
    /// A message that refuses this deployment (a bad or unknown parameter).
    fn init(params: &Params) -> Result<Self, String> {
        let _ = params;
        Ok(Self::default())
    }

    /// Decides on one alert.
    ///
    /// # Errors
    ///
    /// A message the host reports as this filter's error on this alert; the
    /// alert is not forwarded and the host goes on.
    fn evaluate(&self, fields: Self::Fields) -> Result<crate::Verdict, String>;
}

/// Where the one configured filter of a component instance lives.
#[doc(hidden)]
pub type State<F> = RefCell<Option<F>>;

/// The manifest `describe` returns.
#[doc(hidden)]
pub fn describe<F: Filter>() -> wit::Manifest {
    wit::Manifest {
        name: F::NAME.to_string(),
        version: F::VERSION.to_string(),
        survey: F::SURVEY.to_string(),
        fields: F::Fields::PATHS.iter().map(|p| (*p).to_string()).collect(),
        description: F::DESCRIPTION.to_string(),
        state: F::STATE.map(|s| wit::StateSpec {
            format: s.format.to_string(),
            max_bytes: s.max_bytes,
        }),
        crossmatches: F::CROSSMATCHES
            .iter()
            .map(|c| wit::Crossmatch {
                name: c.name.to_string(),
                catalog: c.catalog.to_string(),
                radius_arcsec: c.radius_arcsec,
                max_rows: c.max_rows,
            })
            .collect(),
    }
}

/// `init`: builds the filter from the parameters and keeps it.
#[doc(hidden)]
pub fn init<F: Filter>(state: &State<F>, params: Vec<(String, String)>) -> Result<(), String> {
    let filter = F::init(&Params::new(params))?;
    *state.borrow_mut() = Some(filter);
    Ok(())
}

/// `evaluate`: converts the values and asks the filter; the object's
/// state is there for [`crate::state`] during the call. A rejection that
/// leaves the state as it was is answered `None`, the contract's cheapest
/// answer; an error, `failed` with its message.
///
/// A host that skipped `init` gets the filter built with no parameters.
#[doc(hidden)]
pub fn evaluate<F: Filter>(
    state: &State<F>,
    values: FieldValues,
    object: Option<Vec<u8>>,
) -> Option<wit::Answer> {
    match decide(state, values, object) {
        Ok(None) => None,
        Ok(Some(decision)) => Some(wit::Answer::Decided(decision)),
        Err(message) => Some(wit::Answer::Failed(message)),
    }
}

/// The decision on one alert, `None` for a rejection that keeps the state.
fn decide<F: Filter>(
    state: &State<F>,
    values: FieldValues,
    object: Option<Vec<u8>>,
) -> Result<Option<wit::Decision>, String> {
    let mut state = state.borrow_mut();
    let filter = match &mut *state {
        Some(filter) => filter,
        slot @ None => slot.insert(F::init(&Params::default())?),
    };
    let fields = F::Fields::from_packed(values)?;
    // A filter that declares no state never has one to begin or change
    // (`state::set` refuses it), so its alerts skip the bookkeeping.
    let stateful = F::STATE.is_some();
    if stateful {
        crate::state::begin(F::STATE, object);
    }
    let verdict = filter.evaluate(fields);
    let change = if stateful {
        crate::state::finish()
    } else {
        wit::StateChange::Keep
    };
    let verdict = verdict?.into_wit();
    Ok(match (verdict, change) {
        (wit::Verdict::Reject, wit::StateChange::Keep) => None,
        (verdict, state) => Some(wit::Decision { verdict, state }),
    })
}

/// Exports a [`Filter`] as this component's implementation of the
/// `bandpass:filter/filter` interface.
///
/// Use it once, at the root of a `cdylib` crate built for `wasm32-wasip2`:
///
/// ```rust,no_run
/// # use bandpass_sdk::prelude::*;
/// # fields! { struct Alert { magpsf: Option<f64> = "candidate.magpsf" } }
/// # #[derive(Default)]
/// # struct BrightTransients;
/// # impl Filter for BrightTransients {
/// #     type Fields = Alert;
/// #     const NAME: &'static str = "bright-transients";
/// #     const VERSION: &'static str = "0.1.0";
/// #     const SURVEY: &'static str = "ztf";
/// #     const DESCRIPTION: &'static str = "bright ones";
/// #     fn evaluate(&self, _: Alert) -> Result<Verdict, String> {
/// #         Ok(Verdict::reject())
/// #     }
/// # }
/// bandpass_sdk::export_filter!(BrightTransients);
/// ```
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        const _: () = {
            struct BandpassExport;

            ::std::thread_local! {
                static BANDPASS_STATE: $crate::__private::State<$filter> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            impl $crate::__private::Guest for BandpassExport {
                fn describe() -> $crate::__private::Manifest {
                    $crate::__private::describe::<$filter>()
                }

                fn init(
                    params: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    BANDPASS_STATE.with(|state| $crate::__private::init::<$filter>(state, params))
                }

                fn evaluate(
                    fields: ::std::vec::Vec<u8>,
                    others: ::core::option::Option<::std::vec::Vec<$crate::Value>>,
                    object: ::core::option::Option<::std::vec::Vec<u8>>,
                ) -> ::core::option::Option<$crate::__private::Answer> {
                    let values = $crate::__private::FieldValues {
                        fields,
                        others: others.unwrap_or_default(),
                    };
                    BANDPASS_STATE
                        .with(|state| $crate::__private::evaluate::<$filter>(state, values, object))
                }
            }

    $crate::__private::export!(BandpassExport with_types_in $crate::bindings);
        };
    };
}
