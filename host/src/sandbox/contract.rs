//! The contract versions the host links, behind one call path.
//!
//! A filter is built for one version of `bandpass:filter`: the current
//! one (0.5.0, `wit/filter.wit`), 0.4.0, 0.3.0 or 0.2.0 (frozen in
//! `wit/frozen/`). Each version has its own generated bindings; this
//! module wraps them so that the rest of the sandbox calls `describe`,
//! `init` and `evaluate` without knowing which a filter speaks. A 0.4.0
//! filter receives its fields in a `field-values` record, texts in
//! `others` (0.5.0 sends numbers, kinds and texts in one list, and
//! `others` only when there are some) and answers a `result` with a
//! whole decision (0.5.0 answers `none` for "reject, keep the state",
//! else an `answer`: a decision or a failure). A 0.3.0 filter asks for
//! no cross-matches. A 0.2.0 filter also keeps no state: it reports none
//! in its manifest, receives none, and its verdict comes back as a
//! decision that keeps the state as it was.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::args::{self, Lane};
use super::bindings::bandpass::filter::types as wit;
use super::bindings_v2::bandpass::filter::types as wit_v2;
use super::bindings_v3::bandpass::filter::types as wit_v3;
use super::bindings_v4::bandpass::filter::types as wit_v4;
use super::{Crossmatch, HostState, Manifest, StateSpec};
use crate::decode::FieldValue;

/// The contract version of a component: its filter export names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// 0.5.0: texts in one string, `none` for "reject, keep the state".
    Current,
    /// 0.4.0: manifests may ask for cross-matches.
    V4,
    /// 0.3.0: manifests may declare state, `evaluate` takes and returns it.
    V3,
    /// 0.2.0: no state.
    V2,
}

impl Contract {
    /// The version a filter export's version (`0.2.0`, `0.3.1`) means, if
    /// the host links it (for 0.x, the same minor; any patch).
    pub fn of_version(version: &str) -> Option<Contract> {
        let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
        match (parts.next()??, parts.next()??) {
            (0, 5) => Some(Contract::Current),
            (0, 4) => Some(Contract::V4),
            (0, 3) => Some(Contract::V3),
            (0, 2) => Some(Contract::V2),
            _ => None,
        }
    }
}

/// A component linked and type-checked for its contract version.
pub(super) enum Pre {
    Current(super::bindings::AlertFilterPre<HostState>),
    V4(super::bindings_v4::AlertFilterPre<HostState>),
    V3(super::bindings_v3::AlertFilterPre<HostState>),
    V2(super::bindings_v2::AlertFilterPre<HostState>),
}

/// A live instance's exports.
pub(super) enum Exports {
    Current(super::bindings::AlertFilter),
    V4(super::bindings_v4::AlertFilter),
    V3(super::bindings_v3::AlertFilter),
    V2(super::bindings_v2::AlertFilter),
}

/// One alert's fields, in the instance's version's types, refilled in
/// place alert after alert.
pub(super) enum Args {
    Current(args::Fields<wit::Value>),
    V4(wit_v4::FieldValues),
    V3(wit_v3::FieldValues),
    V2(wit_v2::FieldValues),
}

/// What a filter decided on one alert, before the host checks it.
pub(super) struct Decision {
    pub verdict: wit::Verdict,
    pub state: wit::StateChange,
}

/// A version's manifest in the host's types (each version's generated
/// types are distinct, of one shape): `state` and `crossmatches` say
/// whether the version has them (`yes`), or not (`no`: none, and no
/// cross-matches).
macro_rules! manifest {
    ($m:expr, state: $state:ident, crossmatches: $cross:ident) => {{
        let m = $m;
        Manifest {
            name: m.name,
            version: m.version,
            survey: m.survey,
            fields: m.fields,
            description: m.description,
            state: manifest!(@state m, $state),
            crossmatches: manifest!(@crossmatches m, $cross),
        }
    }};
    (@state $m:ident, yes) => {
        $m.state.map(|s| StateSpec {
            format: s.format,
            max_bytes: s.max_bytes,
        })
    };
    (@state $m:ident, no) => {
        None
    };
    (@crossmatches $m:ident, yes) => {
        $m.crossmatches
            .into_iter()
            .map(|c| Crossmatch {
                name: c.name,
                catalog: c.catalog,
                radius_arcsec: c.radius_arcsec,
                max_rows: c.max_rows,
            })
            .collect()
    };
    (@crossmatches $m:ident, no) => {
        Vec::new()
    };
}

/// A decision of a frozen version with state (0.3.0, 0.4.0: the current
/// shape in the version's own generated types, `$wit`), as the current
/// one.
macro_rules! decision {
    ($d:expr, $wit:ident) => {{
        let d = $d;
        Decision {
            verdict: match d.verdict {
                $wit::Verdict::Reject => wit::Verdict::Reject,
                $wit::Verdict::Accept(a) => wit::Verdict::Accept(wit::Accepted {
                    score: a.score,
                    tags: a.tags,
                    annotations: a.annotations,
                }),
            },
            state: match d.state {
                $wit::StateChange::Keep => wit::StateChange::Keep,
                $wit::StateChange::Set(bytes) => wit::StateChange::Set(bytes),
                $wit::StateChange::Forget => wit::StateChange::Forget,
            },
        }
    }};
}

impl Pre {
    /// Type-checks the instance's exports against `contract`.
    pub fn new(contract: Contract, pre: InstancePre<HostState>) -> wasmtime::Result<Pre> {
        Ok(match contract {
            Contract::Current => Pre::Current(super::bindings::AlertFilterPre::new(pre)?),
            Contract::V4 => Pre::V4(super::bindings_v4::AlertFilterPre::new(pre)?),
            Contract::V3 => Pre::V3(super::bindings_v3::AlertFilterPre::new(pre)?),
            Contract::V2 => Pre::V2(super::bindings_v2::AlertFilterPre::new(pre)?),
        })
    }

    pub fn contract(&self) -> Contract {
        match self {
            Pre::Current(_) => Contract::Current,
            Pre::V4(_) => Contract::V4,
            Pre::V3(_) => Contract::V3,
            Pre::V2(_) => Contract::V2,
        }
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        match self {
            Pre::Current(p) => p.engine(),
            Pre::V4(p) => p.engine(),
            Pre::V3(p) => p.engine(),
            Pre::V2(p) => p.engine(),
        }
    }

    pub fn instance_pre(&self) -> &InstancePre<HostState> {
        match self {
            Pre::Current(p) => p.instance_pre(),
            Pre::V4(p) => p.instance_pre(),
            Pre::V3(p) => p.instance_pre(),
            Pre::V2(p) => p.instance_pre(),
        }
    }

    pub fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Exports> {
        Ok(match self {
            Pre::Current(p) => Exports::Current(p.instantiate(store)?),
            Pre::V4(p) => Exports::V4(p.instantiate(store)?),
            Pre::V3(p) => Exports::V3(p.instantiate(store)?),
            Pre::V2(p) => Exports::V2(p.instantiate(store)?),
        })
    }

    /// An empty argument buffer of this version's types.
    pub fn args(&self) -> Args {
        match self {
            Pre::Current(_) => Args::Current(args::Fields::new()),
            Pre::V4(_) => Args::V4(wit_v4::FieldValues {
                kinds: Vec::new(),
                numbers: Vec::new(),
                others: Vec::new(),
            }),
            Pre::V3(_) => Args::V3(wit_v3::FieldValues {
                kinds: Vec::new(),
                numbers: Vec::new(),
                others: Vec::new(),
            }),
            Pre::V2(_) => Args::V2(wit_v2::FieldValues {
                kinds: Vec::new(),
                numbers: Vec::new(),
                others: Vec::new(),
            }),
        }
    }
}

impl Args {
    /// Empties the buffer for the next alert, of `count` fields, keeping
    /// what `others` holds for refilling.
    #[inline]
    pub fn begin(&mut self, count: usize) {
        match self {
            Args::Current(a) => a.begin(count),
            Args::V4(a) => a.begin(count),
            Args::V3(a) => a.begin(count),
            Args::V2(a) => a.begin(count),
        }
    }

    /// Appends one field (see `args::pack`).
    #[inline]
    pub fn push(&mut self, others: &mut usize, value: &FieldValue) {
        match self {
            Args::Current(a) => args::current::pack(a, others, value),
            Args::V4(a) => args::v4::pack(a, others, value),
            Args::V3(a) => args::v3::pack(a, others, value),
            Args::V2(a) => args::v2::pack(a, others, value),
        }
    }

    /// Drops the `others` entries past the `others` this alert used.
    #[inline]
    pub fn end(&mut self, others: usize) {
        match self {
            Args::Current(a) => a.others.truncate(others),
            Args::V4(a) => a.others.truncate(others),
            Args::V3(a) => a.others.truncate(others),
            Args::V2(a) => a.others.truncate(others),
        }
    }
}

impl Exports {
    pub fn describe(&self, store: &mut Store<HostState>) -> wasmtime::Result<Manifest> {
        Ok(match self {
            Exports::Current(b) => manifest!(
                b.bandpass_filter_filter().call_describe(store)?,
                state: yes,
                crossmatches: yes
            ),
            Exports::V4(b) => manifest!(
                b.bandpass_filter_filter().call_describe(store)?,
                state: yes,
                crossmatches: yes
            ),
            Exports::V3(b) => manifest!(
                b.bandpass_filter_filter().call_describe(store)?,
                state: yes,
                crossmatches: no
            ),
            Exports::V2(b) => manifest!(
                b.bandpass_filter_filter().call_describe(store)?,
                state: no,
                crossmatches: no
            ),
        })
    }

    pub fn init(
        &self,
        store: &mut Store<HostState>,
        params: &[(String, String)],
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Exports::Current(b) => b.bandpass_filter_filter().call_init(store, params),
            Exports::V4(b) => b.bandpass_filter_filter().call_init(store, params),
            Exports::V3(b) => b.bandpass_filter_filter().call_init(store, params),
            Exports::V2(b) => b.bandpass_filter_filter().call_init(store, params),
        }
    }

    /// Calls `evaluate`. `args` must be of this instance's version (both
    /// come from the same [`Pre`]).
    pub fn evaluate(
        &self,
        store: &mut Store<HostState>,
        args: &Args,
        state: Option<&[u8]>,
    ) -> wasmtime::Result<Result<Decision, String>> {
        match (self, args) {
            (Exports::Current(b), Args::Current(a)) => {
                let answer = b.bandpass_filter_filter().call_evaluate(
                    store,
                    &a.fields,
                    a.others(),
                    state,
                )?;
                Ok(match answer {
                    None => Ok(Decision {
                        verdict: wit::Verdict::Reject,
                        state: wit::StateChange::Keep,
                    }),
                    Some(wit::Answer::Decided(d)) => Ok(Decision {
                        verdict: d.verdict,
                        state: d.state,
                    }),
                    Some(wit::Answer::Failed(message)) => Err(message),
                })
            }
            (Exports::V4(b), Args::V4(a)) => Ok(b
                .bandpass_filter_filter()
                .call_evaluate(store, a, state)?
                .map(|d| decision!(d, wit_v4))),
            (Exports::V3(b), Args::V3(a)) => Ok(b
                .bandpass_filter_filter()
                .call_evaluate(store, a, state)?
                .map(|d| decision!(d, wit_v3))),
            (Exports::V2(b), Args::V2(a)) => Ok(b
                .bandpass_filter_filter()
                .call_evaluate(store, a)?
                .map(|v| Decision {
                    verdict: match v {
                        wit_v2::Verdict::Reject => wit::Verdict::Reject,
                        wit_v2::Verdict::Accept(a) => wit::Verdict::Accept(wit::Accepted {
                            score: a.score,
                            tags: a.tags,
                            annotations: a.annotations,
                        }),
                    },
                    state: wit::StateChange::Keep,
                })),
            _ => unreachable!("an instance's arguments come from its own Pre"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_links_0_2_to_0_5_with_any_patch_and_nothing_else() {
        assert_eq!(Contract::of_version("0.5.0"), Some(Contract::Current));
        assert_eq!(Contract::of_version("0.5.7"), Some(Contract::Current));
        assert_eq!(Contract::of_version("0.4.0"), Some(Contract::V4));
        assert_eq!(Contract::of_version("0.3.0"), Some(Contract::V3));
        assert_eq!(Contract::of_version("0.2.0"), Some(Contract::V2));
        for other in ["0.1.0", "0.6.0", "1.5.0", "unversioned", "", "0"] {
            assert_eq!(Contract::of_version(other), None, "{other}");
        }
    }
}
