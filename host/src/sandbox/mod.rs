//! The sandbox: loading, validating and calling filter components.
//!
//! Owns: the one shared wasmtime [`Engine`] (component model, fuel, epoch
//! interruption) and its epoch ticker; the one [`Linker`] (a locked-down
//! WASI plus the `log` import, linked once); validation of a component
//! before it ever runs; and per-alert calls under hard budgets.
//!
//! Must never: let a filter's failure reach another filter or the host,
//! call into a Store that trapped (it is dropped and a fresh instance is
//! made from the `InstancePre`), or deserialize bytes a user sent.

mod cache;
mod clocks;
pub mod compile;
mod limits;
mod log;
pub mod release;
mod validate;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use cache::{CacheOutcome, CompileCache, DEFAULT_CACHE_BYTES, WASMTIME_VERSION};
pub use limits::{Limiter, Limits};
pub use log::{FilterLog, LogBounds, LogLine, Source};
pub use validate::{CONTRACT_VERSION, ComponentReport, LoadError, Surface, manifest_bounds};

use crate::decode::{DecodedAlert, FieldPath, FieldValue};

/// The one `bindgen!` call site: host-side bindings of `wit/`.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "alert-filter",
    });
}

use bindings::bandpass::filter::log::Level;
use bindings::bandpass::filter::types::{
    Accepted, FieldValues, IntegerColumn, RealColumn, TextColumn, Value, Verdict as WitVerdict,
};
use bindings::{AlertFilter, AlertFilterPre};

/// Settings of the engine shared by every filter.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Where compiled components are kept; `None` compiles every time.
    pub cache: Option<CompileCache>,
    /// Wasm stack cap, in bytes (deep recursion traps past it).
    pub max_wasm_stack: usize,
    /// Largest component accepted, in bytes.
    pub max_component_bytes: usize,
    /// Consecutive failed alerts after which a filter is quarantined.
    pub quarantine_after: u32,
    /// Bounds of each filter's log.
    pub log: LogBounds,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            cache: CompileCache::default_dir().map(|d| CompileCache::new(d.join("compiled"))),
            max_wasm_stack: 512 << 10,
            max_component_bytes: 64 << 20,
            quarantine_after: 5,
            log: LogBounds::default(),
        }
    }
}

/// State of one Store: the guest's WASI, its limiter and its log.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    log: FilterLog,
    /// When the current call's time is up: no timer may end later.
    deadline: Instant,
    /// The longest any timer may run: the per-alert deadline, so that a
    /// timer set in one call (say `init`, which has longer) cannot be
    /// waited on past the deadline of the next.
    max_wait: Duration,
    /// Set when a call was stopped for asking to wait past `deadline`.
    waited_past_deadline: Option<String>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::bandpass::filter::types::Host for HostState {}

impl bindings::bandpass::filter::log::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let source = match level {
            Level::Debug => Source::Debug,
            Level::Info => Source::Info,
            Level::Warn => Source::Warn,
            Level::Error => Source::Error,
        };
        self.log.line(source, &message);
    }
}

/// A locked-down WASI: no args, no env, no preopened directories, no
/// network; stdout and stderr go to the filter's bounded log.
fn locked_down_wasi(log: &FilterLog) -> WasiCtx {
    WasiCtx::builder()
        .stdout(log.stream(Source::Stdout))
        .stderr(log.stream(Source::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        // Random bytes are made in host memory first: 64 KiB a call.
        .max_random_size(64 << 10)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .build()
}

/// The engine every filter runs in.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    options: SandboxOptions,
    ticker_stop: Arc<AtomicBool>,
}

/// How often the epoch advances: the resolution of deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(1);

impl Sandbox {
    pub fn new(options: SandboxOptions) -> anyhow::Result<Sandbox> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(true);
        config.epoch_interruption(true);
        config.max_wasm_stack(options.max_wasm_stack);
        // No shared memories: a wait on one (`memory.atomic.wait32`) parks
        // the thread beyond the reach of fuel and the epoch, and a shared
        // memory grows without asking the limiter. No filter needs threads.
        config.wasm_threads(false);
        // Filters are called synchronously, one call at a time per Store:
        // without the component-model-async machinery each call skips
        // setting up a guest task (measured in docs/benchmarks.md).
        config.concurrency_support(false);
        // `BANDPASS_PERFMAP=1` names JIT code for `perf` (profiling only).
        if std::env::var_os("BANDPASS_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        clocks::add_to_linker(&mut linker)?;
        AlertFilter::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let stop = ticker_stop.clone();
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("bandpass-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })?;
        Ok(Sandbox {
            engine,
            linker,
            options,
            ticker_stop,
        })
    }

    pub fn options(&self) -> &SandboxOptions {
        &self.options
    }

    /// Whether the cache holds this engine's compiled code for the
    /// component with this sha256 (a load of it will not compile).
    pub fn is_cached(&self, sha256: &str) -> bool {
        self.options
            .cache
            .as_ref()
            .is_some_and(|cache| cache.has(&self.engine, sha256))
    }

    /// Drops the cache's compiled code for the component with this
    /// sha256: an upload that was refused after its compile leaves none.
    pub fn forget_compiled(&self, sha256: &str) {
        if let Some(cache) = &self.options.cache {
            cache.remove(&self.engine, sha256);
        }
    }

    /// Validates a component without keeping it: what `bandpass inspect`
    /// shows. Fails with the first reason it cannot run here.
    pub fn inspect(&self, bytes: &[u8]) -> Result<ComponentReport, LoadError> {
        let (report, _) = self.prepare(bytes)?;
        Ok(report)
    }

    /// Validates, compiles (or loads from the cache), links and describes
    /// a component, then runs its `init` with `params` once to refuse a
    /// bad deployment before any alert.
    pub fn load(
        &self,
        bytes: &[u8],
        params: Vec<(String, String)>,
        limits: Limits,
    ) -> Result<Arc<LoadedFilter>, LoadError> {
        limits
            .check()
            .map_err(|reason| LoadError::Limits { reason })?;
        let (report, pre) = self.prepare(bytes)?;
        let manifest = report.manifest.clone().ok_or_else(|| LoadError::Manifest {
            reason: "the component did not describe itself".into(),
        })?;
        let fields = manifest
            .fields
            .iter()
            .map(|f| FieldPath::parse(f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LoadError::Manifest {
                reason: e.to_string(),
            })?;
        let filter = Arc::new(LoadedFilter {
            name: manifest.name.clone(),
            manifest,
            fields,
            sha256: report.sha256.clone(),
            cache: report.cache,
            pre,
            params,
            limits,
            quarantine_after: self.options.quarantine_after,
            health: Health::default(),
            log: FilterLog::new(self.options.log),
            _freed: release::FreedOnDrop,
        });
        // A trial instance proves `init` accepts the parameters.
        filter
            .instantiate_live(filter.load_budget())
            .map_err(|f| LoadError::Init { reason: f.message })?;
        Ok(filter)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// What the manifest a filter reports says, checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub survey: String,
    pub fields: Vec<String>,
    pub description: String,
}

/// A filter's running record, shared by every instance of it.
#[derive(Debug, Default)]
pub struct Health {
    consecutive_failures: AtomicU32,
    /// Set once, with the reason; read without locking on every alert.
    is_quarantined: AtomicBool,
    quarantined: Mutex<Option<String>>,
}

impl Health {
    /// Why the filter is quarantined, if it is.
    pub fn quarantined(&self) -> Option<String> {
        if !self.is_quarantined.load(Ordering::Acquire) {
            return None;
        }
        self.quarantined.lock().unwrap().clone()
    }
}

/// A validated, compiled filter, ready to be instantiated per worker.
pub struct LoadedFilter {
    /// Deployment name (the manifest's name).
    pub name: String,
    pub manifest: Manifest,
    /// The manifest's fields, parsed, in order.
    pub fields: Vec<FieldPath>,
    pub sha256: String,
    /// Whether the compiled code came from the cache.
    pub cache: CacheOutcome,
    pre: AlertFilterPre<HostState>,
    params: Vec<(String, String)>,
    pub limits: Limits,
    quarantine_after: u32,
    pub health: Health,
    /// The filter's log: stdout, stderr and `log` lines of all instances.
    pub log: FilterLog,
    /// Last, so that it drops after the rest: notes the memory freed.
    _freed: release::FreedOnDrop,
}

/// A live instance: a Store and the bindings into it.
struct Live {
    store: Store<HostState>,
    bindings: AlertFilter,
}

impl LoadedFilter {
    /// Whether this filter wants alerts of `survey`.
    pub fn accepts_survey(&self, survey: &str) -> bool {
        self.manifest.survey == "any" || self.manifest.survey == survey
    }

    /// A per-worker instance. `slots[i]` is the index, in the decoder's
    /// values, of this filter's `i`-th declared field.
    pub fn instance(self: &Arc<Self>, slots: Vec<usize>) -> FilterInstance {
        assert_eq!(slots.len(), self.fields.len(), "one slot per field");
        FilterInstance {
            filter: self.clone(),
            slots,
            live: None,
            instantiated: false,
            recent: 0,
            recent_traps: 0,
            seen: 0,
            window: (Duration::ZERO, 0),
            args: FieldValues {
                kinds: Vec::new(),
                numbers: Vec::new(),
                others: Vec::new(),
            },
        }
    }

    fn new_store(&self) -> Store<HostState> {
        new_store(self.pre.engine(), &self.limits, &self.log)
    }

    /// Instantiates and runs `init` within `budget`.
    fn instantiate_live(&self, budget: Budget) -> Result<Live, Failure> {
        let mut store = self.new_store();
        store
            .set_fuel(self.limits.fuel_for_init)
            .expect("fuel is enabled");
        set_deadline(&mut store, budget.deadline_ms, budget.start);
        let failed = |store: &mut Store<HostState>, err, during| {
            classify(&budget, &self.log, store, err, during)
        };
        let bindings = match self.pre.instantiate(&mut store) {
            Ok(b) => b,
            Err(err) => return Err(failed(&mut store, err, "instantiating")),
        };
        match bindings
            .bandpass_filter_filter()
            .call_init(&mut store, &self.params)
        {
            Ok(Ok(())) => Ok(Live { store, bindings }),
            Ok(Err(message)) => Err(Failure {
                kind: FailureKind::Init,
                message: format!("init refused the parameters: {}", bounded(&message)),
            }),
            Err(err) => Err(failed(&mut store, err, "in init")),
        }
    }

    /// What the load's trial `init` may take: the filter's `init` fuel and
    /// at least a second (a Python guest's first `init` builds its
    /// interpreter state). Only the load gets this; a rebuild after a trap
    /// runs within the alert's own deadline.
    fn load_budget(&self) -> Budget {
        Budget {
            fuel: self.limits.fuel_for_init,
            deadline_ms: self.limits.deadline_ms.max(1000),
            start: Instant::now(),
        }
    }

    /// Counts one alert's outcome; quarantines after too many failures.
    fn record(&self, failed: Option<&Failure>) {
        let Some(failure) = failed else {
            // Most calls succeed: avoid writing a shared cache line.
            if self.health.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.health.consecutive_failures.store(0, Ordering::Relaxed);
            }
            return;
        };
        let n = self
            .health
            .consecutive_failures
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if n >= self.quarantine_after {
            self.quarantine(format!(
                "{n} consecutive failed alerts; last: {}",
                failure.message
            ));
        }
    }

    /// Skips the filter from now on, for `reason` (the first one given).
    fn quarantine(&self, reason: String) {
        let mut q = self.health.quarantined.lock().unwrap();
        if q.is_none() {
            tracing::warn!(filter = %self.name, %reason, "filter quarantined");
            *q = Some(reason);
            self.health.is_quarantined.store(true, Ordering::Release);
        }
    }
}

/// What one call into a guest may spend: the fuel it was given and its
/// deadline, counted from `start`. Failure messages quote these, the
/// budget of the call that failed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub fuel: u64,
    pub deadline_ms: u64,
    pub start: Instant,
}

/// Names the cause of a wasmtime error from a call into the guest.
pub(crate) fn classify(
    budget: &Budget,
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

/// A fresh Store: locked-down WASI, the limiter and handle cap of
/// `limits`, output into `log`, and a trap at the epoch deadline.
fn new_store(engine: &Engine, limits: &Limits, log: &FilterLog) -> Store<HostState> {
    let mut table = ResourceTable::new();
    table.set_max_capacity(limits.handles);
    let state = HostState {
        wasi: locked_down_wasi(log),
        table,
        limiter: Limiter::new(limits),
        log: log.clone(),
        deadline: Instant::now(),
        max_wait: Duration::from_millis(limits.deadline_ms),
        waited_past_deadline: None,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_trap();
    // What the guest may hand the host in one call (the verdict, a log
    // line, a write), counted in bytes of host memory made from it: a
    // quarter of wasmtime's default of 128 MiB, and still room for a
    // verdict far over its bounds (a million empty tags: 24 MB of host
    // strings), so that it is refused as a bad verdict, not as a trap.
    store.set_hostcall_fuel(MAX_HOSTCALL_BYTES);
    store
}

/// See [`new_store`].
const MAX_HOSTCALL_BYTES: usize = 32 << 20;

/// Gives the next call into `store` `ms` milliseconds from `start`: the
/// epoch deadline for its wasm code, and the limit of any timer it sets.
fn set_deadline(store: &mut Store<HostState>, ms: u64, start: Instant) {
    // What is left of the `ms` since `start`: a call that follows another
    // within one alert (the evaluate after a rebuilt instance's init)
    // gets only the rest.
    let spent = start.elapsed().as_millis() as u64;
    store.set_epoch_deadline(deadline_ticks(ms.saturating_sub(spent)));
    let state = store.data_mut();
    state.deadline = start + Duration::from_millis(ms);
    // What an earlier call left (a refused growth it survived) is not
    // this call's cause of failure.
    state.limiter.refused = None;
    state.waited_past_deadline = None;
}

fn deadline_ticks(ms: u64) -> u64 {
    // One extra tick: the current tick may be about to end.
    ms.div_ceil(EPOCH_TICK.as_millis() as u64) + 1
}

/// Longest guest-supplied text kept in a failure message, in bytes.
const MAX_GUEST_MESSAGE: usize = 1024;

/// A guest's message as the host keeps it: cut to [`MAX_GUEST_MESSAGE`]
/// bytes and made safe to show (`text::shown`).
fn bounded(message: &str) -> String {
    crate::text::shown(message, MAX_GUEST_MESSAGE).into_owned()
}

/// An error and its causes in one line: the wasm backtrace wasmtime adds
/// as context (many lines of guest addresses) is left out.
fn error_chain(err: &wasmtime::Error) -> String {
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
    /// `init` failed when making a fresh instance.
    Init,
}

impl FailureKind {
    /// Whether the Store is poisoned and must be rebuilt.
    fn poisons(self) -> bool {
        !matches!(
            self,
            FailureKind::FilterError | FailureKind::UnknownField | FailureKind::BadVerdict
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
    },
}

/// One call's outcome and what it cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    #[serde(flatten)]
    pub outcome: Outcome,
    pub fuel: u64,
    /// Wall time of the call, including any re-instantiation.
    pub nanos: u64,
}

/// One worker's instance of a filter. Not shared between threads.
pub struct FilterInstance {
    filter: Arc<LoadedFilter>,
    slots: Vec<usize>,
    /// `None` until first use and after a trap.
    live: Option<Live>,
    /// Whether an instance was ever made here: later ones are rebuilds.
    instantiated: bool,
    /// This worker's last 64 outcomes of the filter, newest in bit 0: a
    /// set bit is a failure.
    recent: u64,
    /// The same 64 alerts, a set bit where the failure was a trap (the
    /// Store was dropped, and the next alert pays for a new instance).
    recent_traps: u64,
    /// Alerts this worker ran the filter on (saturating).
    seen: u32,
    /// Reused argument buffer: one alert's `field-values`.
    args: FieldValues,
    /// Wall time and count of the alerts run here since the last full
    /// window of 64 ([`charge_time`](Self::charge_time)).
    window: (Duration, u32),
}

/// Failures among a worker's last 64 alerts that quarantine a filter,
/// consecutive or not: a filter failing every other alert never makes
/// five in a row.
const FAILED_OF_LAST_64: u32 = 32;

/// Traps among a worker's last 64 alerts that quarantine a filter: each
/// trap costs a new instance and its `init`, so a filter trapping on one
/// alert in four is stopped (one in three was seen making every third
/// alert pay a rebuild). A reported error costs no rebuild, and only
/// counts towards [`FAILED_OF_LAST_64`].
const TRAPPED_OF_LAST_64: u32 = 16;

impl FilterInstance {
    pub fn filter(&self) -> &Arc<LoadedFilter> {
        &self.filter
    }

    /// Points the instance at other decoder slots (a new decoder after
    /// the filter set changed), keeping its live Store.
    pub fn reslot(&mut self, slots: Vec<usize>) {
        assert_eq!(slots.len(), self.filter.fields.len(), "one slot per field");
        self.slots = slots;
    }

    /// Runs the filter on one decoded alert.
    pub fn evaluate(&mut self, alert: &DecodedAlert) -> Evaluation {
        self.evaluate_from(alert, Instant::now()).0
    }

    /// [`evaluate`](Self::evaluate), timed from `start`; also returns when
    /// it ended, so that a caller running filters one after another reads
    /// the clock once per filter rather than twice.
    pub fn evaluate_from(&mut self, alert: &DecodedAlert, start: Instant) -> (Evaluation, Instant) {
        let finish = |outcome: Outcome, fuel: u64| {
            let end = Instant::now();
            let nanos = end.duration_since(start).as_nanos() as u64;
            (
                Evaluation {
                    outcome,
                    fuel,
                    nanos,
                },
                end,
            )
        };
        let filter = &self.filter;
        if !filter.accepts_survey(&alert.schema.survey) {
            let reason = format!(
                "filter expects {} alerts, this is {}",
                filter.manifest.survey, alert.schema.survey
            );
            return finish(Outcome::Skipped { reason }, 0);
        }
        if let Some(reason) = filter.health.quarantined() {
            let reason = format!("quarantined: {reason}");
            return finish(Outcome::Skipped { reason }, 0);
        }
        let (result, fuel) = self.call(alert, start);
        if let Err(failure) = &result
            && failure.kind.poisons()
        {
            self.live = None;
        }
        self.filter.record(result.as_ref().err());
        self.recent = (self.recent << 1) | u64::from(result.is_err());
        let trapped = result.as_ref().is_err_and(|f| f.kind.poisons());
        self.recent_traps = (self.recent_traps << 1) | u64::from(trapped);
        self.seen = self.seen.saturating_add(1);
        // The rates are of a full window: a burst is the consecutive
        // rule's to judge.
        if let Err(failure) = &result
            && self.seen >= 64
        {
            let (failed, traps) = (self.recent.count_ones(), self.recent_traps.count_ones());
            if traps >= TRAPPED_OF_LAST_64 {
                self.filter.quarantine(format!(
                    "{traps} of its last 64 alerts here trapped, each costing a new instance; last: {}",
                    failure.message
                ));
            } else if failed >= FAILED_OF_LAST_64 {
                self.filter.quarantine(format!(
                    "{failed} of its last 64 alerts here failed; last: {}",
                    failure.message
                ));
            }
        }
        self.charge_time(start.elapsed());
        let outcome = match result {
            Ok(v) => Outcome::Verdict(v),
            Err(f) => Outcome::Failed(f),
        };
        finish(outcome, fuel)
    }

    /// Adds one alert's wall time to this worker's run of 64, and
    /// quarantines the filter as soon as the run has taken more than 64
    /// alerts at `limits.mean_ms` may: its mean over the run is then over
    /// its mean time whatever the rest take, so there is no need to wait
    /// for the 64th. Each alert is within its deadline, yet a filter that
    /// spends 90 ms of a 100 ms deadline on every alert would hold the
    /// worker, and so every other filter on it, to 11 alerts a second; it
    /// is stopped after its 8th alert (at the default 10 ms), not its
    /// 64th.
    fn charge_time(&mut self, spent: Duration) {
        self.window.0 += spent;
        self.window.1 += 1;
        let allowed = Duration::from_millis(self.filter.limits.mean_ms);
        if self.window.0 > allowed * 64 {
            self.filter.quarantine(format!(
                "took {:.0} ms over its last {} alerts here, more than 64 alerts at its mean time \
                 of {} ms (limits mean_time) may take: a slow filter holds a worker from every \
                 other filter",
                self.window.0.as_secs_f64() * 1e3,
                self.window.1,
                self.filter.limits.mean_ms
            ));
            self.window = (Duration::ZERO, 0);
        } else if self.window.1 >= 64 {
            self.window = (Duration::ZERO, 0);
        }
    }

    fn call(&mut self, alert: &DecodedAlert, start: Instant) -> (Result<Verdict, Failure>, u64) {
        let filter = &self.filter;
        // The argument buffer keeps its strings and columns from the last
        // alert and is refilled in place: no allocation per value.
        let args = &mut self.args;
        args.kinds.clear();
        args.numbers.clear();
        let mut others = 0;
        for (path, &slot) in filter.fields.iter().zip(&self.slots) {
            let value = &alert.values[slot];
            if matches!(value, FieldValue::Missing) && !path.optional {
                let failure = Failure {
                    kind: FailureKind::UnknownField,
                    message: format!(
                        "field '{}' is not in this alert's schema ({}{}); \
                         check the name, or declare it as '{}?' to receive absent",
                        path.text,
                        alert.schema.full_name,
                        alert
                            .schema
                            .version
                            .as_deref()
                            .map(|v| format!(" version {v}"))
                            .unwrap_or_default(),
                        path.text
                    ),
                };
                return (Err(failure), 0);
            }
            pack(args, &mut others, value);
        }
        args.others.truncate(others);
        let mut start = start;
        if self.live.is_none() {
            // This worker's first instance gets the load's budget for its
            // `init`, and the alert's deadline starts after it. A rebuild
            // after a trap is recovery, charged to the filter: its `init`
            // runs within this alert's deadline, and fails like any call.
            let first = !self.instantiated;
            let budget = if first {
                filter.load_budget()
            } else {
                Budget {
                    fuel: filter.limits.fuel_for_init,
                    deadline_ms: filter.limits.deadline_ms,
                    start,
                }
            };
            self.instantiated = true;
            match filter.instantiate_live(budget) {
                Ok(live) => self.live = Some(live),
                Err(f) => return (Err(f), 0),
            }
            if first {
                start = Instant::now();
            }
        }
        let live = self.live.as_mut().expect("instantiated above");
        let budget = filter.limits.fuel_per_alert;
        live.store.set_fuel(budget).expect("fuel is enabled");
        set_deadline(&mut live.store, filter.limits.deadline_ms, start);
        let result = live
            .bindings
            .bandpass_filter_filter()
            .call_evaluate(&mut live.store, &self.args);
        let fuel = budget - live.store.get_fuel().unwrap_or(0);
        let verdict = match result {
            Ok(Ok(WitVerdict::Reject)) => Ok(Verdict::Reject),
            Ok(Ok(WitVerdict::Accept(accepted))) => check_verdict(accepted, &filter.limits),
            Ok(Err(message)) => Err(Failure {
                kind: FailureKind::FilterError,
                message: format!("reported an error: {}", bounded(&message)),
            }),
            Err(err) => Err(classify(
                &Budget {
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

/// Enforces the verdict bounds of [`Limits`].
fn check_verdict(a: Accepted, limits: &Limits) -> Result<Verdict, Failure> {
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

/// The kinds of `field-values` (wit/filter.wit): how field `i`'s 8 bytes
/// of `numbers` read, or that its value is the next entry of `others`.
mod kind {
    pub const ABSENT: u8 = 0;
    pub const REAL: u8 = 1;
    pub const INTEGER: u8 = 2;
    pub const BOOLEAN: u8 = 3;
    pub const OTHER: u8 = 4;
}

/// Appends one field to `args`: single numbers and booleans as a kind and
/// 8 little-endian bytes, anything else as a kind and the next entry of
/// `others` (`others` entries already in `args` are refilled in place).
fn pack(args: &mut FieldValues, others: &mut usize, value: &FieldValue) {
    let (kind, bits) = match *value {
        FieldValue::Missing | FieldValue::Absent => (kind::ABSENT, 0),
        FieldValue::Real(r) => (kind::REAL, r.to_bits()),
        FieldValue::Integer(i) => (kind::INTEGER, i as u64),
        FieldValue::Boolean(b) => (kind::BOOLEAN, u64::from(b)),
        _ => {
            match args.others.get_mut(*others) {
                Some(slot) => refill(slot, value),
                None => args.others.push(to_wit(value)),
            }
            *others += 1;
            (kind::OTHER, 0)
        }
    };
    args.kinds.push(kind);
    args.numbers.extend_from_slice(&bits.to_le_bytes());
}

/// Sets `arg` to `value`, reusing the buffers `arg` already holds.
fn refill(arg: &mut Value, value: &FieldValue) {
    match (arg, value) {
        (Value::Text(d), FieldValue::Text(s)) => {
            d.clear();
            d.push_str(s);
        }
        (Value::Bytes(d), FieldValue::Bytes(s)) => {
            d.clear();
            d.extend_from_slice(s);
        }
        (Value::Reals(d), FieldValue::Reals(c)) => {
            fill_column(&mut d.values, &mut d.present, c, |r| r.to_bits())
        }
        (Value::Integers(d), FieldValue::Integers(c)) => {
            fill_column(&mut d.values, &mut d.present, c, |i| i as u64)
        }
        (Value::Texts(d), FieldValue::Texts(c)) => fill_text_column(d, c),
        (arg, value) => *arg = to_wit(value),
    }
}

fn to_wit(v: &FieldValue) -> Value {
    match v {
        FieldValue::Missing | FieldValue::Absent => Value::Absent,
        FieldValue::Boolean(b) => Value::Boolean(*b),
        FieldValue::Integer(i) => Value::Integer(*i),
        FieldValue::Real(r) => Value::Real(*r),
        FieldValue::Text(s) => Value::Text(s.clone()),
        FieldValue::Bytes(b) => Value::Bytes(b.clone()),
        FieldValue::Booleans(c) => Value::Booleans(c.clone()),
        FieldValue::Integers(c) => {
            let mut column = IntegerColumn {
                values: Vec::new(),
                present: Vec::new(),
            };
            fill_column(&mut column.values, &mut column.present, c, |i| i as u64);
            Value::Integers(column)
        }
        FieldValue::Reals(c) => {
            let mut column = RealColumn {
                values: Vec::new(),
                present: Vec::new(),
            };
            fill_column(&mut column.values, &mut column.present, c, |r| r.to_bits());
            Value::Reals(column)
        }
        FieldValue::Texts(c) => {
            let mut column = TextColumn {
                text: String::new(),
                ends: Vec::new(),
                present: Vec::new(),
            };
            fill_text_column(&mut column, c);
            Value::Texts(column)
        }
    }
}

/// A numeric column as the contract sends it: each element's 64 bits
/// (`bits`), little-endian, zero where null, and a presence mask.
fn fill_column<T: Copy>(
    values: &mut Vec<u8>,
    present: &mut Vec<u8>,
    column: &[Option<T>],
    bits: impl Fn(T) -> u64,
) {
    values.clear();
    present.clear();
    for v in column {
        values.extend_from_slice(&v.map_or(0, &bits).to_le_bytes());
        present.push(u8::from(v.is_some()));
    }
}

/// A text column as the contract sends it: one concatenated string, the
/// end offset of each element, and a presence mask.
fn fill_text_column(out: &mut TextColumn, column: &[Option<String>]) {
    out.text.clear();
    out.ends.clear();
    out.present.clear();
    for value in column {
        if let Some(s) = value {
            out.text.push_str(s);
        }
        // Columns come from one alert (under the decoder's 64 MiB message
        // cap), so offsets fit in u32.
        out.ends.push(out.text.len() as u32);
        out.present.push(u8::from(value.is_some()));
    }
}

/// Entry points for the fuzz targets (`fuzz/`): the checks of what a
/// guest hands the host, called without a guest.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// [`validate::check_manifest`] on a manifest made of these parts.
    pub fn check_manifest(
        name: String,
        version: String,
        survey: String,
        fields: Vec<String>,
        description: String,
    ) -> Result<(), String> {
        validate::check_manifest(&Manifest {
            name,
            version,
            survey,
            fields,
            description,
        })
        .map_err(|e| e.to_string())
    }

    /// The verdict check under the default limits.
    pub fn check_verdict(
        score: Option<f64>,
        tags: Vec<String>,
        annotations: Vec<(String, String)>,
    ) -> Result<Verdict, String> {
        let accepted = Accepted {
            score,
            tags,
            annotations,
        };
        super::check_verdict(accepted, &Limits::default()).map_err(|f| f.message)
    }
}

/// The sha256 of a component, hex: its identity in caches and reports.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn columns_become_values_and_a_presence_mask() {
        let Value::Reals(reals) = to_wit(&FieldValue::Reals(vec![Some(1.5), None, Some(2.0)]))
        else {
            panic!("a real column")
        };
        let packed: Vec<u8> = [1.5f64, 0.0, 2.0]
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        assert_eq!((reals.values, reals.present), (packed, vec![1, 0, 1]));
        let texts = vec![
            Some("t".into()),
            None,
            Some("1".into()),
            Some(String::new()),
        ];
        let Value::Texts(texts) = to_wit(&FieldValue::Texts(texts)) else {
            panic!("a text column")
        };
        assert_eq!(texts.text, "t1");
        assert_eq!(texts.ends, [1, 1, 2, 2]);
        assert_eq!(texts.present, [1, 0, 1, 1]);
    }

    #[test]
    fn numbers_travel_packed_with_their_kind_and_the_rest_in_order_in_others() {
        let mut args = FieldValues {
            kinds: Vec::new(),
            numbers: Vec::new(),
            others: vec![Value::Text(String::with_capacity(32))],
        };
        let mut others = 0;
        for value in [
            FieldValue::Real(18.25),
            FieldValue::Text("t".into()),
            FieldValue::Integer(2_695_378_462_115_010_012),
            FieldValue::Absent,
            FieldValue::Boolean(true),
            FieldValue::Missing,
            FieldValue::Reals(vec![Some(-1.0)]),
        ] {
            pack(&mut args, &mut others, &value);
        }
        args.others.truncate(others);
        assert_eq!(args.kinds, [1, 4, 2, 0, 3, 0, 4]);
        let numbers: Vec<[u8; 8]> = args
            .numbers
            .chunks_exact(8)
            .map(|c| c.try_into().unwrap())
            .collect();
        assert_eq!(numbers.len(), 7, "8 bytes for every field");
        assert_eq!(f64::from_le_bytes(numbers[0]), 18.25);
        assert_eq!(i64::from_le_bytes(numbers[2]), 2_695_378_462_115_010_012);
        assert_eq!(i64::from_le_bytes(numbers[4]), 1);
        for i in [1, 3, 5, 6] {
            assert_eq!(numbers[i], [0; 8], "field {i} has no number");
        }
        assert!(matches!(&args.others[0], Value::Text(s) if s == "t" && s.capacity() >= 32));
        assert!(
            matches!(&args.others[1], Value::Reals(c) if c.values == (-1.0f64).to_le_bytes() && c.present == [1])
        );
    }

    #[test]
    fn refilling_an_argument_reuses_its_buffers_and_gives_the_new_value() {
        let mut arg = to_wit(&FieldValue::Text("first value".into()));
        refill(&mut arg, &FieldValue::Text("t".into()));
        assert!(matches!(&arg, Value::Text(s) if s == "t" && s.capacity() >= 11));
        refill(&mut arg, &FieldValue::Real(2.5));
        assert!(matches!(arg, Value::Real(2.5)));
        let mut col = to_wit(&FieldValue::Integers(vec![Some(1), Some(2), Some(3)]));
        refill(&mut col, &FieldValue::Integers(vec![None, Some(-9)]));
        let packed: Vec<u8> = [0i64, -9].iter().flat_map(|i| i.to_le_bytes()).collect();
        assert!(matches!(&col, Value::Integers(c) if c.values == packed && c.present == [0, 1]));
        let mut texts = to_wit(&FieldValue::Texts(vec![Some("abc".into())]));
        refill(&mut texts, &FieldValue::Texts(vec![None, Some("d".into())]));
        assert!(
            matches!(&texts, Value::Texts(c) if c.text == "d" && c.ends == [0, 1] && c.present == [0, 1])
        );
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
