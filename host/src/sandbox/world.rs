//! What a filter can read of the world, fixed by the alert rather than by
//! when, where or in what order it runs: the wall clock, the monotonic
//! clock's readings and every source of randomness. So the same filter
//! gives the same verdict, byte for byte, in `test`, `run` and `serve`.
//!
//! Owns: [`Moment`] (an alert's time and identity, made once per alert
//! by the runner) and [`World`] (a Store's view of it, started afresh at
//! each call), and the host side of `wasi:clocks/wall-clock` and
//! `wasi:random/{random, insecure, insecure-seed}`, which replace WASI's
//! own in the linker (the monotonic clock is in `clocks`, with its
//! timers).
//!
//! - Wall clock: the alert's own time (ZTF `candidate.jd`, Rubin
//!   `diaSource.midpointMjdTai`, TAI read as UTC less 37 s), else
//!   J2000.0 (2000-01-01T12:00:00Z), which `describe` and `init` see too.
//! - Monotonic clock: 0 at the start of each call, 1 µs more at each
//!   read. Timers still wait real time, within the call's deadline.
//! - Randomness: a xoshiro256** stream seeded, at each call, from the
//!   component's sha256 and the alert's identity.
//!
//! Must never: let two runs of one component on one alert read different
//! values, or let one alert's reads depend on the alerts before it.

use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::p2::bindings::clocks::wall_clock;
use wasmtime_wasi::p2::bindings::random::{insecure, insecure_seed, random};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::HostState;

/// J2000.0, 2000-01-01T12:00:00Z, in nanoseconds since the Unix epoch:
/// the time a call reads when its alert has no time of its own.
pub const J2000_UNIX_NANOS: u64 = 946_728_000 * NANOS_PER_SECOND;
const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// The Julian date of the Unix epoch.
const UNIX_EPOCH_JD: f64 = 2_440_587.5;
/// A modified Julian date is a Julian date less this.
const MJD_OFFSET: f64 = 2_400_000.5;
/// TAI - UTC since 2017-01-01 (and until the next leap second).
const TAI_MINUS_UTC_SECONDS: f64 = 37.0;
/// How far each read moves the monotonic clock.
const MONOTONIC_STEP_NANOS: u64 = 1_000;
/// Most random bytes one request may ask for (host memory made first).
const MAX_RANDOM_BYTES: u64 = 64 << 10;

/// An alert's time and identity: all a call may learn of when and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// Wall-clock time, in nanoseconds since the Unix epoch.
    pub unix_nanos: u64,
    /// A hash of the alert's identity.
    pub identity: u64,
}

/// How an alert says when it was observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertTime {
    /// A Julian date (UTC), as ZTF's `candidate.jd`.
    JulianDate,
    /// A modified Julian date in TAI, as Rubin's `midpointMjdTai`.
    MjdTai,
}

impl AlertTime {
    /// A date of this kind as nanoseconds since the Unix epoch (UTC); none
    /// if it is not finite or falls outside 1970 to 2200.
    pub fn unix_nanos(self, value: f64) -> Option<u64> {
        unix_nanos(value, self)
    }
}

impl Moment {
    /// What `describe` and `init` read: J2000.0 and no alert.
    pub const AT_REST: Moment = Moment {
        unix_nanos: J2000_UNIX_NANOS,
        identity: 0,
    };

    /// An alert's moment: its time if it has one that makes sense (else
    /// J2000.0), and its identity: the survey and candidate id, or where
    /// it has none, a hash of its bytes.
    pub fn of_alert(
        time: Option<(f64, AlertTime)>,
        survey: &str,
        candidate_id: Option<&str>,
        raw: &[u8],
    ) -> Moment {
        let unix_nanos = time
            .and_then(|(value, kind)| unix_nanos(value, kind))
            .unwrap_or(J2000_UNIX_NANOS);
        let identity = match candidate_id {
            Some(id) => xxh3_64_with_seed(id.as_bytes(), xxh3_64(survey.as_bytes())),
            None => xxh3_64(raw),
        };
        Moment {
            unix_nanos,
            identity,
        }
    }
}

/// A date as nanoseconds since the Unix epoch; None if it is not finite
/// or falls before 1970 or past 2200 (no real alert does).
fn unix_nanos(value: f64, kind: AlertTime) -> Option<u64> {
    let seconds = match kind {
        AlertTime::JulianDate => (value - UNIX_EPOCH_JD) * 86_400.0,
        AlertTime::MjdTai => {
            (value + MJD_OFFSET - UNIX_EPOCH_JD) * 86_400.0 - TAI_MINUS_UTC_SECONDS
        }
    };
    const LAST: f64 = 7_258_118_400.0; // 2200-01-01
    (seconds.is_finite() && (0.0..LAST).contains(&seconds))
        .then(|| (seconds * NANOS_PER_SECOND as f64).round() as u64)
}

/// A component's part of every seed: the first 8 bytes of its sha256.
pub fn component_seed(sha256_hex: &str) -> u64 {
    u64::from_str_radix(sha256_hex.get(..16).unwrap_or("0"), 16).unwrap_or(0)
}

/// One Store's view of the world during the current call.
#[derive(Debug, Clone)]
pub struct World {
    wall_nanos: u64,
    monotonic_nanos: u64,
    /// The call's seed; the stream is made from it at the first draw, so
    /// a call that draws nothing costs nothing.
    seed: u64,
    random: Option<Xoshiro256>,
}

impl Default for World {
    fn default() -> World {
        let mut w = World {
            wall_nanos: 0,
            monotonic_nanos: 0,
            seed: 0,
            random: None,
        };
        w.begin(Moment::AT_REST, 0);
        w
    }
}

impl World {
    /// Starts a call on `moment` for the component seeded `component`:
    /// the clocks and the random stream start afresh.
    #[inline]
    pub fn begin(&mut self, moment: Moment, component: u64) {
        self.wall_nanos = moment.unix_nanos;
        self.monotonic_nanos = 0;
        self.seed = moment.identity ^ component.rotate_left(32);
        self.random = None;
    }

    /// The next 64 random bits of this call's stream.
    fn next_random(&mut self) -> u64 {
        let seed = self.seed;
        self.random
            .get_or_insert_with(|| Xoshiro256::seeded(seed))
            .next()
    }

    /// The monotonic clock: moves by a fixed step at each read.
    #[inline]
    pub fn monotonic_now(&mut self) -> u64 {
        self.monotonic_nanos += MONOTONIC_STEP_NANOS;
        self.monotonic_nanos
    }

    /// The monotonic clock without moving it (to turn an instant into a
    /// wait).
    #[inline]
    pub fn monotonic_peek(&self) -> u64 {
        self.monotonic_nanos
    }

    fn bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            return Err(wasmtime::format_err!(
                "asked for {len} random bytes at once; at most {MAX_RANDOM_BYTES}"
            ));
        }
        let mut out = Vec::with_capacity(len as usize);
        while out.len() < len as usize {
            let word = self.next_random().to_le_bytes();
            let take = (len as usize - out.len()).min(8);
            out.extend_from_slice(&word[..take]);
        }
        Ok(out)
    }
}

/// xoshiro256** (Blackman and Vigna), seeded through splitmix64.
#[derive(Debug, Clone)]
struct Xoshiro256 {
    s: [u64; 4],
}

impl Xoshiro256 {
    fn seeded(seed: u64) -> Xoshiro256 {
        let mut x = seed;
        let mut splitmix = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Xoshiro256 {
            s: [splitmix(), splitmix(), splitmix(), splitmix()],
        }
    }

    fn next(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

/// Replaces the linker's wall clock and random interfaces with these.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    wall_clock::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    random::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    insecure::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    insecure_seed::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    linker.allow_shadowing(false);
    Ok(())
}

impl wall_clock::Host for HostState {
    fn now(&mut self) -> wasmtime::Result<wall_clock::Datetime> {
        let n = self.world.wall_nanos;
        Ok(wall_clock::Datetime {
            seconds: n / NANOS_PER_SECOND,
            nanoseconds: (n % NANOS_PER_SECOND) as u32,
        })
    }

    fn resolution(&mut self) -> wasmtime::Result<wall_clock::Datetime> {
        Ok(wall_clock::Datetime {
            seconds: 0,
            nanoseconds: MONOTONIC_STEP_NANOS as u32,
        })
    }
}

impl random::Host for HostState {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.world.bytes(len)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.world.next_random())
    }
}

impl insecure::Host for HostState {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.world.bytes(len)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.world.next_random())
    }
}

impl insecure_seed::Host for HostState {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        Ok((self.world.next_random(), self.world.next_random()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_times_become_unix_time() {
        // ZTF: JD 2459000.5 is 2020-05-31T00:00:00Z.
        assert_eq!(
            unix_nanos(2_459_000.5, AlertTime::JulianDate),
            Some(1_590_883_200 * NANOS_PER_SECOND)
        );
        // Rubin: MJD 60000 TAI is 2023-02-25T00:00:00 TAI, 37 s earlier in UTC.
        assert_eq!(
            unix_nanos(60_000.0, AlertTime::MjdTai),
            Some((1_677_283_200 - 37) * NANOS_PER_SECOND)
        );
        for nonsense in [f64::NAN, f64::INFINITY, -1.0, 1e12] {
            assert_eq!(unix_nanos(nonsense, AlertTime::JulianDate), None);
        }
        let m = Moment::of_alert(
            Some((f64::NAN, AlertTime::JulianDate)),
            "ztf",
            Some("1"),
            b"",
        );
        assert_eq!(m.unix_nanos, J2000_UNIX_NANOS);
    }

    #[test]
    fn each_call_starts_the_same_stream_for_the_same_alert_and_component() {
        let a = Moment::of_alert(None, "ztf", Some("123"), b"raw");
        let b = Moment::of_alert(None, "ztf", Some("124"), b"raw");
        assert_eq!(
            a,
            Moment::of_alert(None, "ztf", Some("123"), b"other bytes")
        );
        let mut w = World::default();
        let draw = |w: &mut World, m: Moment, c: u64| {
            w.begin(m, c);
            (w.bytes(20).unwrap(), w.monotonic_now(), w.monotonic_now())
        };
        let first = draw(&mut w, a, 7);
        draw(&mut w, b, 7);
        assert_eq!(
            draw(&mut w, a, 7),
            first,
            "the stream depends on the alerts before"
        );
        assert_ne!(draw(&mut w, b, 7).0, first.0);
        assert_ne!(draw(&mut w, a, 8).0, first.0);
        assert_eq!((first.1, first.2), (1_000, 2_000));
        assert!(w.bytes(MAX_RANDOM_BYTES + 1).is_err());
        // Without an id, the alert's bytes are its identity.
        assert_ne!(
            Moment::of_alert(None, "ztf", None, b"x"),
            Moment::of_alert(None, "ztf", None, b"y")
        );
    }

    #[test]
    fn the_component_seed_is_its_hash_prefix() {
        assert_eq!(component_seed("00000000000000ff00"), 255);
        assert_eq!(component_seed("short"), 0);
    }
}
