//! The monotonic clock filters see: its readings are fixed by the call
//! (0 at its start, 1 µs more at each read: see `world`), and its timers
//! wait real time, except that a timer which would end after the call's
//! deadline stops the call at once.
//!
//! Fuel and the epoch deadline bound wasm code only. A guest that waits
//! (`std::thread::sleep`, `time.sleep`, a `poll` with a timeout) is in a
//! host call, outside both: without this a filter could hold a worker
//! thread, and with it the stream, for as long as it liked. Timers are the
//! only thing a filter can wait on here (stdin is empty, stdout and stderr
//! are always ready, there are no sockets or files), so bounding them
//! bounds every wait. A timer that ends within the deadline still works.
//! No timer may be longer than the per-alert deadline either, so one set
//! in a call with more time (`init`) and kept cannot be waited on past
//! the deadline of the next call.

use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;

use super::HostState;

/// Replaces the linker's `wasi:clocks/monotonic-clock` with this one.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Why the last call was stopped for waiting past its deadline.
pub(super) fn wait_refused(state: &mut HostState) -> Option<String> {
    state.waited_past_deadline.take()
}

impl monotonic_clock::Host for HostState {
    /// Not the machine's clock: a reading fixed by the call (see
    /// `world`), so that no verdict depends on how fast the host is.
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(self.world.monotonic_now())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1_000)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self.world.monotonic_peek();
        self.subscribe_duration(when.saturating_sub(now))
    }

    fn subscribe_duration(
        &mut self,
        nanos: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let wait = Duration::from_nanos(nanos);
        let ends = Instant::now().checked_add(wait);
        if wait > self.max_wait || ends.is_none_or(|ends| ends > self.deadline) {
            let why = format!("asked to wait {wait:?} (a sleep or a timeout)");
            self.waited_past_deadline = Some(why.clone());
            return Err(wasmtime::format_err!("{why}, past the call's deadline"));
        }
        monotonic_clock::Host::subscribe_duration(&mut self.clocks(), nanos)
    }
}
