//! When a filter stops being run: the quarantine rules, in one place.
//!
//! A filter is quarantined (skipped from then on, with the reason shown)
//! by the first of these rules to fire, checked after every alert in this
//! order:
//! 1. `quarantine_after` consecutive failed alerts, across all workers
//!    ([`Health::count`]);
//! 2. on one instance, [`TRAPPED_OF_LAST_64`] traps among its last 64
//!    alerts (each trap costs a new instance and its `init`), then
//!    [`FAILED_OF_LAST_64`] failures of any kind among them
//!    ([`Recent::count`]): a filter failing every other alert never makes
//!    five in a row;
//! 3. on one instance, a run of 64 alerts that has spent more than 64 times
//!    the filter's mean time ([`Recent::charge_time`]).
//!
//! [`Health`] is shared by every instance of a filter; [`Recent`] is one
//! instance's record (the deployment's one instance, or a worker's own
//! made when it kept finding that one busy), kept with it. Only the first reason is
//! kept. Reloading the config (or uploading again) is how an operator
//! gives a quarantined filter another chance.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use super::Failure;

/// How the reason of an alert skipped for a quarantine begins
/// (`Outcome::Skipped`, whose `quarantined` says it too).
pub const SKIPPED_QUARANTINED: &str = "quarantined: ";

/// Failures among a worker's last 64 alerts that quarantine a filter,
/// consecutive or not: a filter failing every other alert never makes
/// five in a row.
pub const FAILED_OF_LAST_64: u32 = 32;

/// Traps among a worker's last 64 alerts that quarantine a filter: each
/// trap costs a new instance and its `init`, so a filter trapping on one
/// alert in four is stopped (one in three was seen making every third
/// alert pay a rebuild). A reported error costs no rebuild, and only
/// counts towards [`FAILED_OF_LAST_64`].
pub const TRAPPED_OF_LAST_64: u32 = 16;

/// A filter's running record, shared by every instance of it.
#[derive(Debug)]
pub struct Health {
    /// Consecutive failed alerts after which the filter is quarantined.
    quarantine_after: u32,
    consecutive_failures: AtomicU32,
    /// Set once, with the reason; read without locking on every alert.
    is_quarantined: AtomicBool,
    quarantined: Mutex<Option<String>>,
}

impl Health {
    pub fn new(quarantine_after: u32) -> Health {
        Health {
            quarantine_after,
            consecutive_failures: AtomicU32::new(0),
            is_quarantined: AtomicBool::new(false),
            quarantined: Mutex::new(None),
        }
    }

    /// Why the filter is quarantined, if it is.
    #[inline]
    pub fn quarantined(&self) -> Option<String> {
        if !self.is_quarantined.load(Ordering::Acquire) {
            return None;
        }
        self.quarantined.lock().unwrap().clone()
    }

    /// Counts one alert's outcome (`failed`: its failure, if it failed)
    /// towards the consecutive rule; the reason to quarantine, if it
    /// fires.
    #[inline]
    pub fn count(&self, failed: Option<&Failure>) -> Option<String> {
        let Some(failure) = failed else {
            // Most calls succeed: avoid writing a shared cache line.
            if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.consecutive_failures.store(0, Ordering::Relaxed);
            }
            return None;
        };
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        (n >= self.quarantine_after)
            .then(|| format!("{n} consecutive failed alerts; last: {}", failure.message))
    }

    /// Skips `filter` from now on, for `reason`, unless it already is
    /// (the first reason stays). Says so in the log the first time.
    pub fn quarantine(&self, filter: &str, reason: String) {
        let mut q = self.quarantined.lock().unwrap();
        if q.is_none() {
            tracing::warn!(%filter, %reason, "filter quarantined");
            *q = Some(reason);
            self.is_quarantined.store(true, Ordering::Release);
        }
    }
}

/// The record of a filter's last alerts, kept with its one instance.
#[derive(Debug, Default)]
pub struct Recent {
    /// The last 64 outcomes, newest in bit 0: a set bit is a failure.
    failed: u64,
    /// The same 64 alerts, a set bit where the failure was a trap (the
    /// Store was dropped, and the next alert pays for a new instance).
    trapped: u64,
    /// Alerts counted (saturating).
    seen: u32,
    /// Wall time and count of the alerts since the last full run of 64.
    run: (Duration, u32),
}

impl Recent {
    /// Counts one alert's outcome (`trapped`: whether the failure cost
    /// the instance); the reason to quarantine, if a rate rule fires. The
    /// rates are of a full window: a burst is the consecutive rule's to
    /// judge.
    #[inline]
    pub fn count(&mut self, failed: Option<&Failure>, trapped: bool) -> Option<String> {
        self.failed = (self.failed << 1) | u64::from(failed.is_some());
        self.trapped = (self.trapped << 1) | u64::from(trapped);
        self.seen = self.seen.saturating_add(1);
        let failure = failed?;
        if self.seen < 64 {
            return None;
        }
        let (failed, traps) = (self.failed.count_ones(), self.trapped.count_ones());
        if traps >= TRAPPED_OF_LAST_64 {
            Some(format!(
                "{traps} of its last 64 alerts here trapped, each costing a new instance; last: {}",
                failure.message
            ))
        } else if failed >= FAILED_OF_LAST_64 {
            Some(format!(
                "{failed} of its last 64 alerts here failed; last: {}",
                failure.message
            ))
        } else {
            None
        }
    }

    /// Adds one alert's wall time to the run of 64; the reason to
    /// quarantine as soon as the run has taken more than 64 alerts at
    /// `mean_ms` may: the filter's mean over the run is then over its mean
    /// time whatever the rest take, so there is no need to wait for the
    /// 64th. Each alert is within its deadline, yet a filter that spends
    /// 90 ms of a 100 ms deadline on every alert would hold the worker,
    /// and so every other filter on it, to 11 alerts a second; it is
    /// stopped after its 8th alert (at the default 10 ms), not its 64th.
    #[inline]
    pub fn charge_time(&mut self, spent: Duration, mean_ms: u64) -> Option<String> {
        self.run.0 += spent;
        self.run.1 += 1;
        let allowed = Duration::from_millis(mean_ms);
        if self.run.0 > allowed * 64 {
            let reason = format!(
                "took {:.0} ms over its last {} alerts here, more than 64 alerts at its mean time \
                 of {mean_ms} ms (limits mean_time) may take: a slow filter holds a worker from \
                 every other filter",
                self.run.0.as_secs_f64() * 1e3,
                self.run.1,
            );
            self.run = (Duration::ZERO, 0);
            Some(reason)
        } else {
            if self.run.1 >= 64 {
                self.run = (Duration::ZERO, 0);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::FailureKind;

    fn failure(n: usize) -> Failure {
        Failure {
            kind: FailureKind::Trap,
            message: format!("failure {n}"),
        }
    }

    #[test]
    fn consecutive_failures_quarantine_at_the_bound_and_a_success_starts_again() {
        let health = Health::new(3);
        assert_eq!(health.count(Some(&failure(1))), None);
        assert_eq!(health.count(Some(&failure(2))), None);
        assert_eq!(health.count(None), None, "a success resets the count");
        assert_eq!(health.count(Some(&failure(3))), None);
        assert_eq!(health.count(Some(&failure(4))), None);
        assert_eq!(
            health.count(Some(&failure(5))).as_deref(),
            Some("3 consecutive failed alerts; last: failure 5")
        );
    }

    #[test]
    fn only_the_first_reason_is_kept() {
        let health = Health::new(5);
        assert_eq!(health.quarantined(), None);
        health.quarantine("f", "first".into());
        health.quarantine("f", "second".into());
        assert_eq!(health.quarantined().as_deref(), Some("first"));
    }

    #[test]
    fn every_other_alert_failing_quarantines_once_a_full_window_is_seen() {
        let mut recent = Recent::default();
        for i in 0..63 {
            let failed = (i % 2 == 0).then(|| failure(i));
            assert_eq!(recent.count(failed.as_ref(), false), None, "alert {i}");
        }
        // The 64th alert fills the window: 32 of 64 failed.
        let why = recent.count(Some(&failure(63)), false).unwrap();
        assert_eq!(
            why,
            "33 of its last 64 alerts here failed; last: failure 63"
        );
    }

    #[test]
    fn traps_quarantine_at_a_lower_rate_than_reported_errors() {
        let mut recent = Recent::default();
        let mut fired = None;
        for i in 0..=64 {
            let trapped = i % 4 == 0;
            let failed = trapped.then(|| failure(i));
            fired = fired.or(recent.count(failed.as_ref(), trapped));
        }
        let why = fired.expect("one alert in four trapping is quarantined");
        assert!(
            why.starts_with("16 of its last 64 alerts here trapped"),
            "{why}"
        );
        // The same rate of reported errors (no rebuild each) is not.
        let mut recent = Recent::default();
        for i in 0..128 {
            let failed = (i % 4 == 0).then(|| failure(i));
            assert_eq!(recent.count(failed.as_ref(), false), None);
        }
    }

    #[test]
    fn a_success_never_quarantines_even_in_a_bad_window() {
        let mut recent = Recent::default();
        for i in 0..64 {
            recent.count(Some(&failure(i)), true);
        }
        assert_eq!(recent.count(None, false), None);
    }

    #[test]
    fn the_mean_time_rule_fires_as_soon_as_the_run_cannot_be_within_it() {
        let mut recent = Recent::default();
        let slow = Duration::from_millis(90);
        for alert in 1..=7 {
            assert_eq!(recent.charge_time(slow, 10), None, "alert {alert}");
        }
        // 8 x 90 ms = 720 ms > 64 x 10 ms.
        let why = recent.charge_time(slow, 10).unwrap();
        assert!(
            why.starts_with("took 720 ms over its last 8 alerts here"),
            "{why}"
        );
        assert!(why.contains("mean time of 10 ms"), "{why}");
    }

    #[test]
    fn a_run_within_its_mean_time_starts_again_after_64_alerts() {
        let mut recent = Recent::default();
        // Exactly at the mean for 64 alerts: within, and a new run begins.
        for _ in 0..64 {
            assert_eq!(recent.charge_time(Duration::from_millis(10), 10), None);
        }
        // So a slow start of the next run is judged on its own.
        assert_eq!(recent.charge_time(Duration::from_millis(600), 10), None);
        assert!(recent.charge_time(Duration::from_millis(41), 10).is_some());
    }
}
