//! The runner: decode each message once and run every filter on it.
//!
//! Owns: the union of the fields all filters declare (the decoder's
//! paths), each filter's mapping from its fields to those paths, and a
//! handle on each filter's instance. One `Runner` per worker thread; the
//! decoder (and its schema cache) and the filters' instances are shared.
//!
//! Must never: decode an alert more than once, or let one filter's
//! failure change another filter's verdict.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::decode::{DecodeError, DecodedAlert, Decoder, FieldValue, SchemaSource};
use crate::memory::history::{self, History, HistoryPlan, Kept};
use crate::memory::{Memory, ObjectRecord, object_key};
use crate::sandbox::{
    AlertTime, Evaluation, FilterInstance, Held, LoadedFilter, Moment, Outcome, StateChange,
    Verdict,
};
use crate::sky::{Sky, SkyPlan, SkySlot};

/// What the host gives filters besides the alert's own fields: the
/// history columns it keeps per survey (`history.*`), and the catalogues
/// it cross-matches with (`xmatch.*`). The same in `test`, `run` and
/// `serve`, so that a filter decides alike in all three.
#[derive(Debug, Clone, Default)]
pub struct HostFields {
    pub kept: Arc<Kept>,
    pub sky: Arc<Sky>,
}

impl HostFields {
    /// Why a filter asks for what the host does not give: history columns
    /// not kept, catalogues, columns or cones it does not have or allow;
    /// as (the thing, a sentence).
    pub fn refusals(&self, filter: &LoadedFilter) -> Vec<(String, String)> {
        let mut out = self.kept.refusals(&filter.manifest.survey, &filter.fields);
        out.extend(self.sky.refusals(
            filter.sky_group(),
            &filter.manifest.crossmatches,
            &filter.fields,
        ));
        out
    }
}

/// Paths tried, in order, for an alert's object id (ZTF, then Rubin).
const OBJECT_ID_PATHS: &[&str] = &["objectId", "diaObject.diaObjectId", "diaSource.diaObjectId"];
/// Paths tried, in order, for an alert's candidate (detection) id.
const CANDIDATE_ID_PATHS: &[&str] = &["candid", "diaSource.diaSourceId", "alertId"];
/// Paths tried, in order, for where an alert's detection is on the sky
/// (right ascension, declination; degrees): ZTF, then Rubin (`decl`
/// before schema 7).
const POSITION_PATHS: &[(&str, &str)] = &[
    ("candidate.ra", "candidate.dec"),
    ("diaSource.ra", "diaSource.dec"),
    ("diaSource.ra", "diaSource.decl"),
];
/// Paths tried, in order, for when an alert's detection was observed:
/// the time a filter's clock reads (see [`Moment`]).
const TIME_PATHS: &[(&str, AlertTime)] = &[
    ("candidate.jd", AlertTime::JulianDate),
    ("diaSource.midpointMjdTai", AlertTime::MjdTai),
    ("diaSource.midPointTai", AlertTime::MjdTai),
];

/// The identity of an alert, for reports and file names.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AlertId {
    pub object_id: Option<String>,
    pub candidate_id: Option<String>,
}

/// One alert and every filter's evaluation of it, in filter order.
#[derive(Debug)]
pub struct AlertResult {
    pub alert: DecodedAlert,
    pub id: AlertId,
    pub evaluations: Vec<Evaluation>,
}

/// Decodes messages and runs every filter on each alert.
pub struct Runner {
    decoder: Arc<Decoder>,
    /// The history columns the host keeps, and its catalogues.
    host: HostFields,
    instances: Vec<FilterInstance>,
    /// Each instance's deployment name: what its state is kept under.
    deployments: Vec<String>,
    /// Where the objects' states and light curves are kept, once
    /// [`Runner::remember`] gave a store; without one, filters with state
    /// get none, and history is the packet's own.
    memory: Option<Memory>,
    /// The history columns some filter declared (see [`Plan`]).
    history: Vec<String>,
    /// Per filter, whether it keeps state or reads history (see
    /// [`Runner::remembers`]): decided once per filter set.
    remembering: Vec<bool>,
    sources: Vec<Source>,
    /// The cross-matches and map answers some filter asked for (see
    /// [`Plan`]).
    sky: SkyPlan,
    position_slots: Vec<(usize, usize)>,
    /// Which of how many runners sharing the filters' instances this is:
    /// each starts its round of filters at its own share of them (see
    /// [`Runner::spread`]).
    share: (usize, usize),
    object_slots: Vec<usize>,
    candidate_slots: Vec<usize>,
    time_slots: Vec<(usize, AlertTime)>,
}

/// What the decoder reads and where each filter's fields sit among an
/// alert's values: the decoder's paths first, then the history columns
/// some filter declared (`history.*`), then the cross-match columns
/// (`xmatch.*`) and the sky maps' answers (`map.*`); the runner computes
/// them.
struct Plan {
    /// The decoder's paths: every filter's fields but history ones, the id
    /// and time paths, and, when a filter declared history, each kept
    /// survey's history sources (`memory::history::HistoryPlan::paths`).
    paths: Vec<String>,
    /// Per filter, per declared field: its index among an alert's values.
    slots: Vec<Vec<usize>>,
    /// The history columns declared, in order of first declaration.
    history: Vec<String>,
    /// Each kept survey's plan, the columns read and the first of its
    /// paths.
    sources: Vec<Source>,
    sky: SkyPlan,
}

/// Where a filter's declared field is found among an alert's values.
enum Slot {
    Decoded(usize),
    History(usize),
    Sky(SkySlot),
}

/// Where one survey's history is read from among an alert's values.
#[derive(Debug, Clone)]
struct Source {
    plan: Arc<HistoryPlan>,
    /// The plan's columns read (`HistoryPlan::read`).
    read: Vec<usize>,
    /// The first of its paths among the decoder's.
    first: usize,
    /// How many paths it reads.
    len: usize,
}

fn plan(filters: &[Arc<LoadedFilter>], host: &HostFields) -> Plan {
    let kept = &*host.kept;
    let mut paths: Vec<String> = Vec::new();
    let mut history: Vec<String> = Vec::new();
    let mut sky = SkyPlan::default();
    let slot_of = |text: &str, paths: &mut Vec<String>| match paths.iter().position(|p| p == text) {
        Some(i) => i,
        None => {
            paths.push(text.to_string());
            paths.len() - 1
        }
    };
    // Decoder slots now; history and cross-match ones, which follow
    // every decoder path, once the paths are all known.
    let firsts: Vec<Vec<Slot>> = filters
        .iter()
        .map(|f| {
            f.fields
                .iter()
                .map(|p| {
                    if let Some(column) = history::column_of(p) {
                        return Slot::History(slot_of(column, &mut history));
                    }
                    match sky.slot(&host.sky, f.sky_group(), &f.manifest.crossmatches, &p.text) {
                        Some(s) => Slot::Sky(s),
                        None => Slot::Decoded(slot_of(&p.text, &mut paths)),
                    }
                })
                .collect()
        })
        .collect();
    for id in OBJECT_ID_PATHS.iter().chain(CANDIDATE_ID_PATHS) {
        slot_of(id, &mut paths);
    }
    if !sky.is_empty() {
        for (ra, dec) in POSITION_PATHS {
            slot_of(ra, &mut paths);
            slot_of(dec, &mut paths);
        }
    }
    for (time, _) in TIME_PATHS {
        slot_of(time, &mut paths);
    }
    let mut sources = Vec::new();
    if !history.is_empty() {
        for plan in kept.plans() {
            // Appended, not shared: the plan reads its paths as a block.
            let read = plan.read(&history);
            let block = plan.paths(&read);
            sources.push(Source {
                plan: plan.clone(),
                read,
                first: paths.len(),
                len: block.len(),
            });
            paths.extend(block);
        }
    }
    let decoded = paths.len();
    let computed = decoded + history.len();
    let slots = firsts
        .into_iter()
        .map(|f| {
            f.into_iter()
                .map(|s| match s {
                    Slot::Decoded(i) => i,
                    Slot::History(i) => decoded + i,
                    Slot::Sky(s) => computed + sky.position(s),
                })
                .collect()
        })
        .collect();
    Plan {
        paths,
        slots,
        history,
        sources,
        sky,
    }
}

impl Runner {
    /// A runner for these filters, with its own decoder, giving them the
    /// host's fields `host`.
    pub fn new(filters: &[Arc<LoadedFilter>], schemas: SchemaSource, host: HostFields) -> Runner {
        let decoder = Runner::decoder_for(filters, schemas, &host);
        Runner::with_decoder(filters, decoder, host)
    }

    /// A decoder fit for these filters and host fields, to share between
    /// runners.
    pub fn decoder_for(
        filters: &[Arc<LoadedFilter>],
        schemas: SchemaSource,
        host: &HostFields,
    ) -> Arc<Decoder> {
        Arc::new(Decoder::new(plan(filters, host).paths, schemas))
    }

    /// A runner sharing `decoder`, which must come from [`Runner::decoder_for`]
    /// with the same filters and `host`.
    pub fn with_decoder(
        filters: &[Arc<LoadedFilter>],
        decoder: Arc<Decoder>,
        host: HostFields,
    ) -> Runner {
        let mut runner = Runner {
            host,
            sky: SkyPlan::default(),
            position_slots: Vec::new(),
            share: (0, 1),
            instances: Vec::new(),
            deployments: Vec::new(),
            memory: None,
            history: Vec::new(),
            remembering: Vec::new(),
            sources: Vec::new(),
            object_slots: Vec::new(),
            candidate_slots: Vec::new(),
            time_slots: Vec::new(),
            decoder: decoder.clone(),
        };
        let host = runner.host.clone();
        runner.retarget(filters, decoder, host);
        runner
    }

    /// Switches to another set of filters and its decoder (from
    /// [`Runner::decoder_for`] with the same `host`), between two alerts:
    /// the host's fields change with it (a group's new watchlist or sky
    /// map). A filter in both sets (the same loaded filter) keeps its
    /// instance and live Store; the others are dropped or instantiated on
    /// their first alert.
    pub fn retarget(
        &mut self,
        filters: &[Arc<LoadedFilter>],
        decoder: Arc<Decoder>,
        host: HostFields,
    ) {
        self.host = host;
        let Plan {
            paths,
            slots,
            history,
            sources,
            sky,
        } = plan(filters, &self.host);
        assert_eq!(paths, decoder.paths(), "decoder made for other filters");
        self.history = history;
        self.sources = sources;
        self.sky = sky;
        let mut old: Vec<Option<FilterInstance>> = std::mem::take(&mut self.instances)
            .into_iter()
            .map(Some)
            .collect();
        self.deployments = filters.iter().map(|f| f.name.clone()).collect();
        // Once per filter set, not per alert.
        self.remembering = filters.iter().map(|f| f.remembers()).collect();
        self.instances = filters
            .iter()
            .zip(slots)
            .map(|(f, s)| {
                let kept = old
                    .iter_mut()
                    .find(|i| i.as_ref().is_some_and(|i| Arc::ptr_eq(i.filter(), f)))
                    .and_then(Option::take);
                match kept {
                    Some(mut instance) => {
                        instance.reslot(s);
                        instance
                    }
                    None => f.instance(s),
                }
            })
            .collect();
        let position = |p: &&str| paths.iter().position(|x| x == p).expect("planned");
        self.object_slots = OBJECT_ID_PATHS.iter().map(position).collect();
        self.candidate_slots = CANDIDATE_ID_PATHS.iter().map(position).collect();
        self.time_slots = TIME_PATHS
            .iter()
            .map(|(p, kind)| (position(p), *kind))
            .collect();
        self.position_slots = if self.sky.is_empty() {
            Vec::new()
        } else {
            POSITION_PATHS
                .iter()
                .map(|(ra, dec)| (position(ra), position(dec)))
                .collect()
        };
        self.decoder = decoder;
    }

    pub fn filters(&self) -> impl Iterator<Item = &Arc<LoadedFilter>> {
        self.instances.iter().map(|i| i.filter())
    }

    /// Where filter `i`'s declared fields sit among each alert's values.
    pub fn slots(&self, i: usize) -> &[usize] {
        self.instances[i].slots()
    }

    pub fn decoder(&self) -> &Arc<Decoder> {
        &self.decoder
    }

    /// Names the deployments, in filter order: each one's state is kept
    /// under its name (by default its filter's manifest name), so one
    /// component deployed twice keeps two states.
    pub fn name_deployments(&mut self, names: Vec<String>) {
        assert_eq!(names.len(), self.instances.len(), "one name per filter");
        self.deployments = names;
    }

    /// Makes this runner the `runner`-th of `runners` running the same
    /// filters at once (serve's workers). A filter has one instance,
    /// which one runner holds at a time; each starts its round of the
    /// filters at its own share of them (the second of two at the middle),
    /// so that runners going at one pace do not queue for the same
    /// instances. The verdicts do not depend on it.
    pub fn spread(&mut self, runner: usize, runners: usize) {
        assert!(runner < runners, "runner {runner} of {runners}");
        self.share = (runner, runners);
    }

    /// Where this runner's round of the filters starts.
    fn first_filter(&self) -> usize {
        let (runner, runners) = self.share;
        runner * self.instances.len() / runners
    }

    /// Keeps the objects' states in `memory` from now on.
    pub fn remember(&mut self, memory: Memory) {
        self.memory = Some(memory);
    }

    pub fn memory(&self) -> Option<&Memory> {
        self.memory.as_ref()
    }

    pub fn memory_mut(&mut self) -> Option<&mut Memory> {
        self.memory.as_mut()
    }

    /// Whether some filter keeps a state or reads an object's history:
    /// then the runner remembers objects, and the order of each object's
    /// alerts matters (see [`crate::memory::TimeOrder`]).
    pub fn remembers(&self) -> bool {
        self.remembering.contains(&true)
    }

    /// When the earliest alert of a message was observed, in nanoseconds
    /// since the Unix epoch; none if it does not decode or has no time.
    pub fn time_of(&self, message: &Bytes) -> Option<u64> {
        let alerts = self.decoder.decode(message).ok()?;
        alerts
            .iter()
            .filter_map(|a| {
                let (value, kind) = self.alert_time(a)?;
                kind.unix_nanos(value)
            })
            .min()
    }

    fn alert_time(&self, alert: &DecodedAlert) -> Option<(f64, AlertTime)> {
        self.time_slots
            .iter()
            .find_map(|&(s, kind)| match alert.values[s] {
                FieldValue::Real(t) => Some((t, kind)),
                _ => None,
            })
    }

    /// Decodes one message and runs every filter on each alert in it.
    pub fn process(&mut self, message: &Bytes) -> Result<Vec<AlertResult>, DecodeError> {
        let alerts = self.decoder.decode(message)?;
        Ok(alerts.into_iter().map(|a| self.evaluate(a)).collect())
    }

    /// Runs every filter on one decoded alert.
    pub fn evaluate(&mut self, alert: DecodedAlert) -> AlertResult {
        let mut prepared = self.prepare(alert);
        let mut evaluations: Vec<Option<Evaluation>> = Vec::new();
        evaluations.resize_with(self.instances.len(), || None);
        let deployments = &self.deployments;
        let remembering = &self.remembering;
        let p = &prepared;
        let first = self.first_filter();
        each_held(&mut self.instances, first, |i, held, clock| {
            if p.replayed && remembering[i] {
                evaluations[i] = Some(replay_skipped());
                return clock;
            }
            let state = match (&p.record, &held.filter().manifest.state) {
                (Some(r), Some(spec)) => r.state(&deployments[i], &spec.format),
                _ => None,
            };
            let (evaluation, end) = held.evaluate_from(&p.alert, p.moment, state, clock);
            evaluations[i] = Some(evaluation);
            end
        });
        prepared.evaluations = evaluations
            .into_iter()
            .map(|e| e.expect("every filter ran"))
            .collect();
        self.finish(prepared)
    }

    /// Runs every filter on each of `alerts`, filter by filter: each
    /// filter's instance takes the whole batch before the next runs, so
    /// that its code and memory stay in the caches. Each filter sees the
    /// alerts in their order, as [`Runner::evaluate`] one at a time would
    /// give them, and the results are the same; with object memory
    /// (states and histories flow from one alert of an object to the
    /// next) the alerts go one at a time.
    pub fn evaluate_batch(&mut self, alerts: Vec<DecodedAlert>) -> Vec<AlertResult> {
        if self.remembers() || alerts.len() < 2 {
            return alerts.into_iter().map(|a| self.evaluate(a)).collect();
        }
        let mut prepared: Vec<Prepared> = alerts.into_iter().map(|a| self.prepare(a)).collect();
        // Per alert, per filter: filled filter by filter, in whatever
        // order the instances come free.
        let n = self.instances.len();
        let mut evaluations: Vec<Vec<Option<Evaluation>>> = prepared
            .iter()
            .map(|_| std::iter::repeat_with(|| None).take(n).collect())
            .collect();
        let first = self.first_filter();
        each_held(&mut self.instances, first, |i, held, mut clock| {
            for (p, e) in prepared.iter().zip(&mut evaluations) {
                let (evaluation, end) = held.evaluate_from(&p.alert, p.moment, None, clock);
                clock = end;
                e[i] = Some(evaluation);
            }
            clock
        });
        for (p, e) in prepared.iter_mut().zip(evaluations) {
            p.evaluations = e
                .into_iter()
                .map(|e| e.expect("every filter ran"))
                .collect();
        }
        prepared.into_iter().map(|p| self.finish(p)).collect()
    }

    /// What every filter's call on `alert` needs: its ids and time, its
    /// object's record (with object memory), its history columns and its
    /// sky answers appended to its values.
    fn prepare(&mut self, mut alert: DecodedAlert) -> Prepared {
        let id = AlertId {
            object_id: first_present(&alert, &self.object_slots),
            candidate_id: first_present(&alert, &self.candidate_slots),
        };
        let moment = Moment::of_alert(
            self.alert_time(&alert),
            &alert.schema.survey,
            id.candidate_id.as_deref(),
            &alert.raw,
        );
        let (key, mut record) = self.recall(&alert, &id, moment);
        // Serve under at-least-once, after a crash: a message read again
        // whose changes the object's record already holds (it was applied,
        // and its remembering deployments' outputs acknowledged, before
        // the crash). Those deployments are not run again on a memory
        // that already holds it and maybe later alerts; the others are.
        let position = self.memory.as_ref().and_then(|m| m.position);
        let replayed = position.is_some_and(|p| {
            record
                .as_ref()
                .and_then(|r| r.applied)
                .is_some_and(|a| a >= p)
        });
        // Older than its object's latest alert, and not a replay: the
        // object's alerts came out of time order.
        if !replayed
            && let (Some(memory), Some(r)) = (&mut self.memory, &record)
            && moment.unix_nanos < r.last_alert
        {
            memory.out_of_order += 1;
        }
        let history = self.history_of(&mut alert, record.as_mut());
        let sky_at = self.position_slots.iter().find_map(|&(ra, dec)| {
            match (&alert.values[ra], &alert.values[dec]) {
                (FieldValue::Real(ra), FieldValue::Real(dec)) => Some((*ra, *dec)),
                _ => None,
            }
        });
        self.sky.append(sky_at, &mut alert.values);
        Prepared {
            alert,
            id,
            moment,
            key,
            record,
            history,
            replayed,
            position,
            evaluations: Vec::new(),
        }
    }

    /// Keeps what the filters' calls changed of the alert's object (with
    /// object memory) and gives the alert's result.
    fn finish(&mut self, prepared: Prepared) -> AlertResult {
        let Prepared {
            alert,
            id,
            moment,
            key,
            record,
            history,
            replayed,
            position,
            mut evaluations,
        } = prepared;
        // With no object to keep it for, a state change is dropped: shown
        // as none, as the filter will find none.
        if key.is_none() {
            for e in &mut evaluations {
                e.state = StateChange::Keep;
            }
        }
        if let Some((key, expired)) = key {
            let mut record = record.unwrap_or_default();
            // A light curve changes with (nearly) every alert: written.
            // Under at-least-once, so is an alert a remembering deployment
            // accepted: its record, marked applied, is written only once
            // its outputs are acknowledged (see the replay rule above).
            let accepted = position.is_some()
                && evaluations
                    .iter()
                    .zip(&self.remembering)
                    .any(|(e, remembers)| {
                        *remembers && matches!(e.outcome, Outcome::Verdict(Verdict::Accept { .. }))
                    });
            let dirty = expired || history.is_some() || accepted;
            // Whatever the record is written for, it is marked with the
            // message applied to it (not when replayed: it holds it).
            let applied = if replayed { None } else { position };
            if let Some((plan, history)) = history {
                record.history = Some(plan.stored(history));
            }
            self.keep(key, dirty, record, &evaluations, (moment, applied));
        }
        AlertResult {
            alert,
            id,
            evaluations,
        }
    }
}

/// One alert on its way through the filters (see [`Runner::prepare`]).
struct Prepared {
    alert: DecodedAlert,
    id: AlertId,
    moment: Moment,
    /// The object's key in the store, and whether its states expired.
    key: Option<(Vec<u8>, bool)>,
    record: Option<ObjectRecord>,
    history: Option<(Arc<HistoryPlan>, History)>,
    replayed: bool,
    position: Option<i64>,
    evaluations: Vec<Evaluation>,
}

impl Runner {
    /// The record of the alert's object, when some filter keeps state and
    /// the alert names its object: one read. States an object's alerts
    /// stopped renewing for longer than the store's `state_ttl` (alert
    /// time) are dropped here.
    fn recall(
        &mut self,
        alert: &DecodedAlert,
        id: &AlertId,
        moment: Moment,
    ) -> (Option<(Vec<u8>, bool)>, Option<ObjectRecord>) {
        if !self.remembers() {
            return (None, None);
        }
        let (Some(memory), Some(object)) = (&mut self.memory, &id.object_id) else {
            return (None, None);
        };
        // An id that is blank or over the bound names no object the
        // store can keep: the alert gets no state and the packet's history.
        if object.trim().is_empty() || object.len() > crate::memory::MAX_OBJECT_ID_BYTES {
            memory.unkeyed += 1;
            return (None, None);
        }
        let key = object_key(&alert.schema.survey, object);
        let mut record = memory.recall(&key);
        let mut expired = false;
        if let Some(r) = &mut record {
            let ttl = memory.state_ttl.as_nanos() as u64;
            if moment.unix_nanos.saturating_sub(r.last_alert) > ttl {
                r.states.clear();
                expired = true;
            }
        }
        (Some((key, expired)), record)
    }

    /// The object's light curve with this alert's packet merged in, and
    /// its declared columns appended to the alert's values (see [`Plan`]);
    /// `None` when no filter declared history. What the store held is
    /// taken out of `record`; the caller puts the merged curve back.
    fn history_of(
        &self,
        alert: &mut DecodedAlert,
        record: Option<&mut ObjectRecord>,
    ) -> Option<(Arc<HistoryPlan>, History)> {
        if self.history.is_empty() {
            return None;
        }
        let source = self
            .sources
            .iter()
            .find(|s| s.plan.survey == alert.schema.survey);
        let merged = source.map(|s| {
            let values = &alert.values[s.first..s.first + s.len];
            let packet = s.plan.packet_points(&s.read, values);
            let stored = record
                .and_then(|r| r.history.take())
                .map(|h| s.plan.adopt(h))
                .unwrap_or_default();
            let (max_age, max_points) = self.memory.as_ref().map_or(
                (history::DEFAULT_MAX_AGE_DAYS, history::DEFAULT_MAX_POINTS),
                |m| (m.history_max_age_days, m.history_max_points),
            );
            (
                s.plan.clone(),
                s.plan.merge(stored, packet, max_age, max_points),
            )
        });
        for column in &self.history {
            let value = merged
                .as_ref()
                .and_then(|(plan, h)| plan.column(h, column))
                .unwrap_or(FieldValue::Missing);
            alert.values.push(value);
        }
        merged
    }

    /// Applies each filter's state change to the object's record, and
    /// writes it back if anything changed (or it is `dirty`: expired, or
    /// with a new light curve; an empty record is deleted): one write.
    fn keep(
        &mut self,
        key: Vec<u8>,
        dirty: bool,
        mut record: ObjectRecord,
        evaluations: &[Evaluation],
        (moment, applied): (Moment, Option<i64>),
    ) {
        let Some(memory) = &mut self.memory else {
            return;
        };
        let last_alert = record.last_alert;
        let mut changed = false;
        for ((e, deployment), i) in evaluations
            .iter()
            .zip(&self.deployments)
            .zip(&self.instances)
        {
            let Some(spec) = &i.filter().manifest.state else {
                continue;
            };
            match &e.state {
                StateChange::Keep => {}
                StateChange::Set(bytes) => {
                    changed |= record.set(deployment, &spec.format, bytes);
                }
                StateChange::Forget => changed |= record.forget(deployment),
            }
        }
        // An object with state is renewed by each of its alerts.
        if !record.is_empty() {
            record.last_alert = record.last_alert.max(moment.unix_nanos);
        }
        if dirty || changed || record.last_alert != last_alert {
            if applied.is_some() {
                record.applied = applied;
            }
            memory.keep(&key, &record);
        }
    }
}

/// Calls `run(i, instance, clock)` with each filter's instance held, in
/// filter order from `first` round to `first - 1`, except that an
/// instance another worker holds (a deployment's one instance is shared
/// by the workers) is left until the others have run, and only then
/// waited for. `run` returns when its
/// calls ended: the next one's clock (one clock read per call); after a
/// wait the clock is read afresh, so that no filter is charged for
/// another's time.
fn each_held(
    instances: &mut [FilterInstance],
    first: usize,
    mut run: impl FnMut(usize, &mut Held<'_>, Instant) -> Instant,
) {
    let mut busy = Vec::new();
    let mut clock = Instant::now();
    let n = instances.len();
    for i in (first..n).chain(0..first) {
        match instances[i].try_hold() {
            Some(mut held) => clock = run(i, &mut held, clock),
            None => busy.push(i),
        }
    }
    for i in busy {
        let mut held = instances[i].hold();
        run(i, &mut held, Instant::now());
    }
}

/// The evaluation of a remembering deployment on a message replayed after
/// a crash that its object's memory already holds.
fn replay_skipped() -> Evaluation {
    Evaluation {
        outcome: Outcome::Skipped {
            reason: "read again after a restart, and already applied to its object's memory \
                     before it: decided then"
                .into(),
            quarantined: false,
        },
        state: StateChange::Keep,
        fuel: 0,
        nanos: 0,
    }
}

fn first_present(alert: &DecodedAlert, slots: &[usize]) -> Option<String> {
    slots.iter().find_map(|&s| match &alert.values[s] {
        FieldValue::Integer(i) => Some(i.to_string()),
        FieldValue::Text(t) => Some(t.clone()),
        _ => None,
    })
}

/// The `p`-th percentile (0..=100) of unsorted values; 0 when empty.
pub fn percentile(values: &[u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_read_as_expected() {
        assert_eq!(percentile(&[5, 1, 3, 2, 4], 50.0), 3);
        assert_eq!(percentile(&[5, 1, 3, 2, 4], 100.0), 5);
        assert_eq!(percentile(&[], 99.0), 0);
    }
}
