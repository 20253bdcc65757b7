//! A worker's handle on a deployment's instance ([`FilterInstance`]):
//! its own slots and argument buffer, and the one live instance of the
//! deployment ([`Shared`]: the Store, rebuilt after a trap, and the
//! record of the filter's last alerts), which the workers take in turn
//! ([`Held`]).

use std::sync::{Arc, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use super::bindings::bandpass::filter::types::{StateChange as WitState, Verdict as WitVerdict};
use super::contract::Args;
use super::health::{Recent, SKIPPED_QUARANTINED};
use super::{
    CallBudget, Evaluation, Failure, FailureKind, Live, LoadedFilter, Moment, Outcome, StateChange,
    Verdict, bounded, check_verdict, classify, set_deadline_after,
};
use crate::decode::{DecodedAlert, FieldValue};

/// A deployment's one instance, which every worker running it shares
/// (one at a time): a loaded filter has one, not one per worker, so 100
/// deployments on two workers hold 100 instances, not 200
/// (docs/design/many-filters.md). Kept in the [`LoadedFilter`].
#[derive(Default)]
pub(super) struct Shared {
    /// `None` after a trap, until the next call rebuilds it.
    pub(super) live: Option<Live>,
    /// Whether an instance was ever made: later ones are rebuilds. The
    /// load's trial instance is the first (see `Sandbox::load`).
    pub(super) instantiated: bool,
    /// The record of the filter's last alerts (see [`Recent`]).
    recent: Recent,
}

/// One worker's handle on a filter's instance: where the filter's fields
/// sit among this worker's decoded values, and the worker's argument
/// buffer. Not shared between threads; the instance it calls is, unless
/// the worker kept finding it busy (see [`BUSY_ROUNDS`]).
pub struct FilterInstance {
    /// This worker's own instance, once `busy` reached [`BUSY_ROUNDS`].
    /// First, so that it drops before the filter (whose drop notes the
    /// memory freed).
    own: Option<Box<Shared>>,
    filter: Arc<LoadedFilter>,
    slots: Vec<usize>,
    /// Reused argument buffer: one alert's `field-values`, in the types
    /// of the filter's contract version.
    args: Args,
    /// Rounds in a row in which this worker found the shared instance
    /// held by another ([`FilterInstance::try_hold`]).
    busy: u32,
}

/// Rounds in a row a worker finds a deployment's instance held by another
/// before it makes its own. One instance per deployment saves memory but
/// runs the deployment's calls on one core at a time: a filter slow
/// enough (within its limits) that the workers keep meeting at it would
/// cap every worker at its pace. Workers meet by chance now and then
/// (their rounds start at different filters: `Runner::spread`); three
/// rounds in a row is a filter that takes a worker's share of the time.
pub const BUSY_ROUNDS: u32 = 3;

/// A filter's instance, held by one worker for a run of calls (one alert,
/// or a batch of them): other workers wanting it meanwhile wait, or
/// run another filter first ([`FilterInstance::try_hold`]).
pub struct Held<'a> {
    filter: &'a LoadedFilter,
    slots: &'a [usize],
    args: &'a mut Args,
    shared: Slot<'a>,
}

/// The instance a [`Held`] calls: the deployment's, or the worker's own.
enum Slot<'a> {
    Shared(MutexGuard<'a, Shared>),
    Own(&'a mut Shared),
}

impl std::ops::Deref for Slot<'_> {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        match self {
            Slot::Shared(guard) => guard,
            Slot::Own(own) => own,
        }
    }
}

impl std::ops::DerefMut for Slot<'_> {
    fn deref_mut(&mut self) -> &mut Shared {
        match self {
            Slot::Shared(guard) => guard,
            Slot::Own(own) => own,
        }
    }
}

impl FilterInstance {
    pub(super) fn new(filter: Arc<LoadedFilter>, slots: Vec<usize>) -> FilterInstance {
        assert_eq!(slots.len(), filter.fields.len(), "one slot per field");
        FilterInstance {
            slots,
            args: filter.prepared.pre.args(),
            busy: 0,
            own: None,
            filter,
        }
    }

    pub fn filter(&self) -> &Arc<LoadedFilter> {
        &self.filter
    }

    /// Where each declared field's value sits among the decoder's paths.
    pub fn slots(&self) -> &[usize] {
        &self.slots
    }

    /// Points the handle at other decoder slots (a new decoder after the
    /// filter set changed); the instance lives on.
    pub fn reslot(&mut self, slots: Vec<usize>) {
        assert_eq!(slots.len(), self.filter.fields.len(), "one slot per field");
        self.slots = slots;
    }

    /// The instance, if no other worker holds it now (or the worker's
    /// own). Counts the rounds in a row it was busy.
    pub fn try_hold(&mut self) -> Option<Held<'_>> {
        let FilterInstance {
            filter,
            slots,
            args,
            busy,
            own,
        } = self;
        let filter: &LoadedFilter = filter;
        let shared = match own {
            Some(own) => Slot::Own(own),
            None => match filter.instance.try_lock() {
                Ok(shared) => {
                    *busy = 0;
                    Slot::Shared(shared)
                }
                Err(TryLockError::WouldBlock) => {
                    *busy = busy.saturating_add(1);
                    return None;
                }
                Err(TryLockError::Poisoned(poisoned)) => {
                    Slot::Shared(unpoison(poisoned.into_inner()))
                }
            },
        };
        Some(Held {
            filter,
            slots,
            args,
            shared,
        })
    }

    /// The instance, once the worker holding it lets it go; or, after
    /// [`BUSY_ROUNDS`] rounds in a row found it busy, the worker's own,
    /// made now (its `init` has the load's budget, as a first instance).
    pub fn hold(&mut self) -> Held<'_> {
        if self.own.is_none() && self.busy >= BUSY_ROUNDS {
            tracing::info!(
                filter = %self.filter.deployment(),
                "another worker held this filter's instance {BUSY_ROUNDS} rounds in a row: \
                 this worker makes its own, so that the filter's calls run on more than one core \
                 (it costs one more instance's memory)"
            );
            self.own = Some(Box::default());
        }
        let FilterInstance {
            filter,
            slots,
            args,
            own,
            ..
        } = self;
        let filter: &LoadedFilter = filter;
        let shared = match own {
            Some(own) => Slot::Own(own),
            None => Slot::Shared(
                filter
                    .instance
                    .lock()
                    .unwrap_or_else(|poisoned| unpoison(poisoned.into_inner())),
            ),
        };
        Held {
            filter,
            slots,
            args,
            shared,
        }
    }

    /// Whether this worker runs its own instance of the filter (see
    /// [`BUSY_ROUNDS`]).
    pub fn has_own_instance(&self) -> bool {
        self.own.is_some()
    }

    /// Runs the filter on one decoded alert, at [`Moment::AT_REST`]: the
    /// runner, which every command uses, gives each alert its own time
    /// and identity (see [`Moment`]) through
    /// [`evaluate_from`](Held::evaluate_from).
    pub fn evaluate(&mut self, alert: &DecodedAlert) -> Evaluation {
        self.hold()
            .evaluate_from(alert, Moment::AT_REST, None, Instant::now())
            .0
    }
}

/// A Store a worker's panic left mid-call is not trusted again: the next
/// call makes a new instance.
fn unpoison(mut shared: MutexGuard<'_, Shared>) -> MutexGuard<'_, Shared> {
    shared.live = None;
    shared
}

impl Held<'_> {
    pub fn filter(&self) -> &LoadedFilter {
        self.filter
    }

    /// Runs the filter on one decoded alert, timed from `start`; also
    /// returns when it ended, so that a caller running calls one after
    /// another reads the clock once per call rather than twice.
    /// The call reads `moment`'s time and randomness, and `state`: what
    /// this deployment kept for the alert's object (always `None` for a
    /// filter whose manifest declares no state).
    pub fn evaluate_from(
        &mut self,
        alert: &DecodedAlert,
        moment: Moment,
        state: Option<&[u8]>,
        start: Instant,
    ) -> (Evaluation, Instant) {
        let finish = |outcome: Outcome, state: StateChange, fuel: u64, end: Instant| {
            let nanos = end.duration_since(start).as_nanos() as u64;
            (
                Evaluation {
                    outcome,
                    state,
                    fuel,
                    nanos,
                },
                end,
            )
        };
        let filter = self.filter;
        if !filter.accepts_survey(&alert.schema.survey) {
            let reason = format!(
                "filter expects {} alerts, this is {}",
                filter.manifest.survey, alert.schema.survey
            );
            let quarantined = false;
            return finish(
                Outcome::Skipped {
                    reason,
                    quarantined,
                },
                StateChange::Keep,
                0,
                Instant::now(),
            );
        }
        if let Some(reason) = filter.health.quarantined() {
            let reason = format!("{SKIPPED_QUARANTINED}{reason}");
            let quarantined = true;
            return finish(
                Outcome::Skipped {
                    reason,
                    quarantined,
                },
                StateChange::Keep,
                0,
                Instant::now(),
            );
        }
        let state = state.filter(|_| filter.manifest.state.is_some());
        let (result, fuel) = self.call(alert, moment, state, start);
        // One clock read for the call's time, charged and reported alike.
        let end = Instant::now();
        if let Err(failure) = &result
            && failure.kind.poisons()
        {
            self.shared.live = None;
        }
        // The quarantine rules, in their order (sandbox/health.rs).
        let failed = result.as_ref().err();
        let trapped = failed.is_some_and(|f| f.kind.poisons());
        let recent = &mut self.shared.recent;
        let reasons = [
            filter.health.count(failed),
            recent.count(failed, trapped),
            recent.charge_time(end.duration_since(start), filter.limits.mean_ms),
        ];
        for reason in reasons.into_iter().flatten() {
            filter.quarantine(reason);
        }
        let (outcome, state) = match result {
            Ok((v, state)) => (Outcome::Verdict(v), state),
            Err(f) => (Outcome::Failed(f), StateChange::Keep),
        };
        finish(outcome, state, fuel, end)
    }

    fn call(
        &mut self,
        alert: &DecodedAlert,
        moment: Moment,
        state: Option<&[u8]>,
        start: Instant,
    ) -> (Result<(Verdict, StateChange), Failure>, u64) {
        let filter = self.filter;
        // The argument buffer keeps its strings and columns from the last
        // alert and is refilled in place: no allocation per value.
        let args = &mut *self.args;
        args.begin(filter.fields.len());
        let mut others = 0;
        // What the fields carry beyond their fixed 9 bytes each, held to
        // the filter's memory cap before it is copied: the guest could not
        // receive more, and a field declared many times would otherwise
        // have the host copy a large text as often.
        let mut carried = 0usize;
        for (path, &slot) in filter.fields.iter().zip(self.slots) {
            let value = &alert.values[slot];
            if matches!(value, FieldValue::Missing) && !path.optional {
                let message = if path.text.starts_with(crate::decode::HISTORY_PREFIX) {
                    // Only a filter of several surveys gets here: a column
                    // kept for none of its surveys is refused at load.
                    format!(
                        "field '{}': the host keeps no such history column for {} alerts \
                         (memory.history.{}.columns in serve, --history-columns in test and \
                         run); declare it '{}?' if the filter reads alerts of several surveys",
                        path.text, alert.schema.survey, alert.schema.survey, path.text
                    )
                } else {
                    format!(
                        "field '{}' is not in this alert's schema ({}{}): check its spelling \
                         (`bandpass fields ALERT` lists the schema's paths); declare it '{}?' \
                         only if some schema versions lack it on purpose",
                        path.text,
                        alert.schema.full_name,
                        alert
                            .schema
                            .version
                            .as_deref()
                            .map(|v| format!(" version {v}"))
                            .unwrap_or_default(),
                        path.text
                    )
                };
                let failure = Failure {
                    kind: FailureKind::UnknownField,
                    message,
                };
                return (Err(failure), 0);
            }
            carried = carried.saturating_add(value.carried_bytes());
            if carried > filter.limits.memory_bytes {
                let failure = Failure {
                    kind: FailureKind::Memory,
                    message: format!(
                        "this alert's declared fields take more than the filter's memory cap of \
                         {} bytes (field '{}' brings them to {carried}): the filter cannot \
                         receive them; declare fewer or smaller fields, or ask the operator \
                         for a larger memory limit",
                        filter.limits.memory_bytes, path.text
                    ),
                };
                return (Err(failure), 0);
            }
            args.push(&mut others, value);
        }
        args.end(others);
        let mut start = start;
        // What of the deadline is gone at the call: nothing when the call
        // starts at `start` (read when the caller's last call ended), the
        // `init` of an instance rebuilt after a trap.
        let mut spent = Duration::ZERO;
        let shared = &mut *self.shared;
        if shared.live.is_none() {
            // A first instance (a filter loaded without its trial one) gets
            // the load's budget for its `init`, and the alert's deadline
            // starts after it. A rebuild after a trap is recovery, charged
            // to the filter: its `init` runs within this alert's deadline,
            // and fails like any call.
            let first = !shared.instantiated;
            let budget = if first {
                filter.load_budget()
            } else {
                CallBudget {
                    fuel: filter.limits.fuel_for_init,
                    deadline_ms: filter.limits.deadline_ms,
                    start,
                }
            };
            shared.instantiated = true;
            match filter.instantiate_live(budget) {
                Ok(live) => shared.live = Some(live),
                Err(f) => return (Err(f), 0),
            }
            if first {
                start = Instant::now();
            } else {
                spent = start.elapsed();
            }
        }
        let live = shared.live.as_mut().expect("instantiated above");
        let budget = filter.limits.fuel_per_alert;
        live.store.set_fuel(budget).expect("fuel is enabled");
        set_deadline_after(&mut live.store, filter.limits.deadline_ms, start, spent);
        live.store.data_mut().world.begin(moment, filter.seed);
        let result = live.exports.evaluate(&mut live.store, args, state);
        let fuel = budget - live.store.get_fuel().unwrap_or(0);
        let verdict = match result {
            Ok(Ok(decision)) => check_state(filter, decision.state).and_then(|state| {
                let verdict = match decision.verdict {
                    WitVerdict::Reject => Verdict::Reject,
                    WitVerdict::Accept(accepted) => check_verdict(accepted, &filter.limits)?,
                };
                Ok((verdict, state))
            }),
            Ok(Err(message)) => Err(Failure {
                kind: FailureKind::FilterError,
                message: format!("reported an error: {}", bounded(&message)),
            }),
            Err(err) => Err(classify(
                &CallBudget {
                    fuel: budget,
                    deadline_ms: filter.limits.deadline_ms,
                    start,
                },
                &filter.log,
                &mut live.store,
                err,
                "on this alert",
            )),
        };
        (verdict, fuel)
    }
}

/// The state a filter returned, checked against its manifest: only a
/// filter that declares state may change it, and within its `max-bytes`.
fn check_state(filter: &LoadedFilter, change: WitState) -> Result<StateChange, Failure> {
    let bad = |message: String| Failure {
        kind: FailureKind::BadState,
        message,
    };
    match (change, &filter.manifest.state) {
        (WitState::Keep, _) => Ok(StateChange::Keep),
        (WitState::Set(_) | WitState::Forget, None) => Err(bad(
            "changed the object's state, but its manifest declares none: declare a state \
             (format and max-bytes) to keep one"
                .into(),
        )),
        (WitState::Set(bytes), Some(spec)) if bytes.len() > spec.max_bytes as usize => {
            Err(bad(format!(
                "returned a state of {} bytes, over the {} its manifest declares \
                 (format '{}'); the object's state stays as it was",
                bytes.len(),
                spec.max_bytes,
                spec.format
            )))
        }
        (WitState::Set(bytes), Some(_)) => Ok(StateChange::Set(bytes)),
        (WitState::Forget, Some(_)) => Ok(StateChange::Forget),
    }
}
