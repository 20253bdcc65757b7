//! The engine every filter runs in ([`Sandbox`]): one wasmtime
//! [`Engine`] (component model, fuel, epoch interruption) and its epoch
//! ticker, one [`Linker`] (a locked-down WASI plus the `log` import),
//! and the Store each call runs in (`new_store`, `set_deadline`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::AlertFilter;
use super::bindings::bandpass::filter::log::Level;
use super::bindings_v2::AlertFilter as AlertFilterV2;
use super::bindings_v3::AlertFilter as AlertFilterV3;
use super::bindings_v4::AlertFilter as AlertFilterV4;
use super::contract::{Contract, Pre};
use super::{
    CacheOutcome, CompileCache, ComponentReport, FilterLog, Health, Limiter, Limits, LoadError,
    LoadedFilter, LogBounds, Origin, Surface, clocks, release,
};
use crate::decode::FieldPath;

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
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limiter: Limiter,
    pub(super) log: FilterLog,
    /// When the current call's time is up: no timer may end later.
    pub(super) deadline: Instant,
    /// The longest any timer may run: the per-alert deadline, so that a
    /// timer set in one call (say `init`, which has longer) cannot be
    /// waited on past the deadline of the next.
    pub(super) max_wait: Duration,
    /// Set when a call was stopped for asking to wait past `deadline`.
    pub(super) waited_past_deadline: Option<String>,
    /// The clocks and randomness the current call reads.
    pub(super) world: super::world::World,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl super::bindings::bandpass::filter::types::Host for HostState {}
impl super::bindings_v4::bandpass::filter::types::Host for HostState {}
impl super::bindings_v3::bandpass::filter::types::Host for HostState {}
impl super::bindings_v2::bandpass::filter::types::Host for HostState {}

impl super::bindings::bandpass::filter::log::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let source = match level {
            Level::Debug => Origin::Debug,
            Level::Info => Origin::Info,
            Level::Warn => Origin::Warn,
            Level::Error => Origin::Error,
        };
        self.log.line(source, &message);
    }
}

/// The frozen versions' logs: the same lines (each version's `level` is
/// a type of its own).
macro_rules! frozen_log {
    ($($bindings:ident),+) => {$(
        impl super::$bindings::bandpass::filter::log::Host for HostState {
            fn log(
                &mut self,
                level: super::$bindings::bandpass::filter::log::Level,
                message: String,
            ) {
                use super::$bindings::bandpass::filter::log::Level as Frozen;
                let level = match level {
                    Frozen::Debug => Level::Debug,
                    Frozen::Info => Level::Info,
                    Frozen::Warn => Level::Warn,
                    Frozen::Error => Level::Error,
                };
                super::bindings::bandpass::filter::log::Host::log(self, level, message);
            }
        }
    )+};
}
frozen_log!(bindings_v4, bindings_v3, bindings_v2);

/// A locked-down WASI: no args, no env, no preopened directories, no
/// network; stdout and stderr go to the filter's bounded log. Its clocks
/// and random are replaced in the linker (`clocks`, `world`).
fn locked_down_wasi(log: &FilterLog) -> WasiCtx {
    WasiCtx::builder()
        .stdout(log.stream(Origin::Stdout))
        .stderr(log.stream(Origin::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .build()
}

/// The engine every filter runs in.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    options: SandboxOptions,
    ticker_stop: Arc<AtomicBool>,
    /// The components live filters were loaded from, by sha256: every
    /// deployment of one component (its parameter sets, one file named
    /// twice, a re-upload) shares one compiled component, one mapping of
    /// its code and memory image, and one manifest, rather than each
    /// loading its own (docs/design/many-filters.md). Weak: a component
    /// no filter holds any more is freed.
    prepared: Mutex<HashMap<String, Weak<Prepared>>>,
}

/// A component validated, compiled, linked and described, as
/// [`Sandbox::load`] shares it between the filters loaded from it.
pub(super) struct Prepared {
    pub(super) report: ComponentReport,
    pub(super) pre: Pre,
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
        super::world::add_to_linker(&mut linker)?;
        // Every linked contract version's imports: their names differ by
        // version.
        AlertFilter::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        AlertFilterV4::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        AlertFilterV3::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        AlertFilterV2::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;

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
            prepared: Mutex::default(),
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
        let (report, _) = self.prepare(bytes, super::sha256_hex(bytes))?;
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
        self.load_hashed(bytes, &super::sha256_hex(bytes), params, limits)
    }

    /// [`load`](Self::load) of bytes whose sha256 the caller has already
    /// computed (`sha256` must be [`sha256_hex`](super::sha256_hex) of
    /// `bytes`): a config's many deployments of one file hash it once.
    pub fn load_hashed(
        &self,
        bytes: &[u8],
        sha256: &str,
        params: Vec<(String, String)>,
        limits: Limits,
    ) -> Result<Arc<LoadedFilter>, LoadError> {
        debug_assert_eq!(sha256, super::sha256_hex(bytes), "the bytes' own sha256");
        limits
            .check()
            .map_err(|reason| LoadError::Limits { reason })?;
        let (prepared, cache) = self.shared_prepare(bytes, sha256)?;
        let report = &prepared.report;
        let manifest = report.manifest.clone().ok_or_else(|| LoadError::Manifest {
            reason: "the component did not describe itself".into(),
        })?;
        if let Some(state) = &manifest.state
            && state.max_bytes as usize > limits.max_state_bytes
        {
            return Err(LoadError::Limits {
                reason: format!(
                    "the filter keeps up to {} bytes of state per object (format '{}'), over \
                     this deployment's cap of {} bytes: raise it (`limits.state` in a config, \
                     `--max-state-bytes` for test and run; at most {}) or declare a smaller \
                     max-bytes",
                    state.max_bytes,
                    state.format,
                    limits.max_state_bytes,
                    Limits::MAX_STATE_BYTES
                ),
            });
        }
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
            deployment: Mutex::new(manifest.name.clone()),
            manifest,
            fields,
            seed: super::world::component_seed(&report.sha256),
            sha256: report.sha256.clone(),
            cache,
            prepared: prepared.clone(),
            params,
            limits,
            health: Health::new(self.options.quarantine_after),
            log: FilterLog::new(self.options.log),
            group: std::sync::OnceLock::new(),
            instance: Mutex::default(),
            _freed: release::FreedOnDrop,
        });
        // A trial instance proves `init` accepts the parameters; it is
        // then the filter's instance, so that its first alert does not
        // pay for a second `init`.
        let live = filter
            .instantiate_live(filter.load_budget())
            .map_err(|f| LoadError::Init { reason: f.message })?;
        filter.keep_instance(live);
        Ok(filter)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A fresh Store: locked-down WASI, the limiter and handle cap of
/// `limits`, output into `log`, and a trap at the epoch deadline.
pub(super) fn new_store(engine: &Engine, limits: &Limits, log: &FilterLog) -> Store<HostState> {
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
        world: super::world::World::default(),
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
#[inline]
pub(super) fn set_deadline(store: &mut Store<HostState>, ms: u64, start: Instant) {
    // What is left of the `ms` since `start`: a call that follows another
    // within one alert (the evaluate after a rebuilt instance's init)
    // gets only the rest.
    set_deadline_after(store, ms, start, start.elapsed());
}

/// [`set_deadline`] where the caller knows how much of the `ms` is gone
/// since `start` (`spent`): a call started at `start` needs no clock read.
#[inline]
pub(super) fn set_deadline_after(
    store: &mut Store<HostState>,
    ms: u64,
    start: Instant,
    spent: Duration,
) {
    let spent = spent.as_millis() as u64;
    store.set_epoch_deadline(deadline_ticks(ms.saturating_sub(spent)));
    let state = store.data_mut();
    state.deadline = start + Duration::from_millis(ms);
    // What an earlier call left (a refused growth it survived) is not
    // this call's cause of failure.
    state.limiter.refused = None;
    state.waited_past_deadline = None;
}

#[inline]
fn deadline_ticks(ms: u64) -> u64 {
    // One extra tick: the current tick may be about to end.
    ms.div_ceil(EPOCH_TICK.as_millis() as u64) + 1
}

/// Compiling and linking (validation itself is in `validate.rs`).
impl Sandbox {
    /// Compiles a component into the cache (or finds it there) and keeps
    /// nothing else: what the upload check runs in a child process it can
    /// kill (`bandpass compile`), so that the service's own `load` of the
    /// same bytes then reads the artifact.
    pub fn compile(&self, bytes: &[u8]) -> Result<CacheOutcome, LoadError> {
        self.compile_component(bytes, &super::sha256_hex(bytes))
            .map(|(_, _, outcome)| outcome)
    }

    /// What can be refused without compiling (see
    /// `validate::precheck`), within this
    /// engine's largest component.
    pub fn precheck(&self, bytes: &[u8]) -> Result<Surface, LoadError> {
        super::validate::precheck(bytes, self.options.max_component_bytes)
    }

    /// [`precheck`](Self::precheck), then validation and compilation
    /// through the cache (`sha256` is the bytes'); returns the component's
    /// surface, the compiled component, and whether it came from the
    /// cache.
    fn compile_component(
        &self,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<(Surface, wasmtime::component::Component, CacheOutcome), LoadError> {
        let surface = self.precheck(bytes)?;
        let compiled = match &self.options.cache {
            Some(cache) => cache.load_or_compile(&self.engine, bytes, sha256),
            None => wasmtime::component::Component::new(&self.engine, bytes)
                .map(|c| (c, CacheOutcome::Compiled)),
        };
        let (component, cache) = compiled.map_err(|e| LoadError::Invalid {
            reason: super::error_chain(&e),
        })?;
        Ok((surface, component, cache))
    }

    /// [`prepare`](Self::prepare), or the component a live filter was
    /// loaded from if it has these bytes (see [`Sandbox::prepared`]), then
    /// counted a cache [`Hit`](CacheOutcome::Hit).
    fn shared_prepare(
        &self,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<(Arc<Prepared>, CacheOutcome), LoadError> {
        let live = |map: &HashMap<String, Weak<Prepared>>| map.get(sha256).and_then(Weak::upgrade);
        if let Some(prepared) = live(&self.prepared.lock().expect("not poisoned")) {
            return Ok((prepared, CacheOutcome::Hit));
        }
        // Prepared without the lock: other loads go on meanwhile. Two
        // loads of one new component at once both prepare it; the first
        // to finish is kept.
        let (report, pre) = self.prepare(bytes, sha256.to_string())?;
        let mut map = self.prepared.lock().expect("not poisoned");
        if let Some(prepared) = live(&map) {
            return Ok((prepared, CacheOutcome::Hit));
        }
        map.retain(|_, w| w.strong_count() > 0);
        let cache = report.cache;
        let prepared = Arc::new(Prepared { report, pre });
        map.insert(sha256.to_string(), Arc::downgrade(&prepared));
        Ok((prepared, cache))
    }

    pub(super) fn prepare(
        &self,
        bytes: &[u8],
        sha256: String,
    ) -> Result<(ComponentReport, Pre), LoadError> {
        let (surface, component, cache) = self.compile_component(bytes, &sha256)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                reason: super::error_chain(&e),
            })?;
        // The precheck refused any version the host does not link.
        let contract = Contract::of_version(&surface.contract).unwrap_or(Contract::Current);
        let pre = Pre::new(contract, pre).map_err(|e| LoadError::Link {
            reason: super::error_chain(&e),
        })?;
        let filter_export = surface
            .exports
            .iter()
            .find(|n| n.starts_with("bandpass:filter/filter"))
            .cloned()
            .unwrap_or_default();
        let manifest = super::validate::describe(&pre, &filter_export)?;
        Ok((
            ComponentReport {
                size: bytes.len(),
                sha256,
                contract: surface.contract,
                imports: surface.imports,
                exports: surface.exports,
                manifest: Some(manifest),
                cache,
            },
            pre,
        ))
    }
}
