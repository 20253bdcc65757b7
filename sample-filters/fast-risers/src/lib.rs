//! `fast-risers`: ZTF sources brightening faster than a threshold, in
//! mag/day, in the band of the current detection, measured against the
//! light curve the alert carries (`prv_candidates`).
//!
//! The cuts, their defaults and the science are in this crate's README.md;
//! `tests/py/expected_verdicts.py` implements the same cuts independently.

use bandpass_sdk::prelude::*;

fields! {
    /// What the filter reads from a ZTF alert: the current detection and the
    /// previous-candidate columns (one entry per earlier epoch).
    struct Alert {
        /// Observation date of the current detection (JD).
        jd: Option<f64> = "candidate.jd",
        /// Its filter: 1 = g, 2 = r, 3 = i.
        fid: Option<i64> = "candidate.fid",
        /// Its difference-image PSF magnitude.
        magpsf: Option<f64> = "candidate.magpsf",
        /// "t" or "1" for a positive difference.
        isdiffpos: Option<String> = "candidate.isdiffpos",
        /// Deep-learning real-bogus score (schema v3.3 and later).
        drb: Option<f64> = "candidate.drb?",
        /// Random-forest real-bogus score (every schema).
        rb: Option<f64> = "candidate.rb",
        /// Detections at this position since the survey began.
        ndethist: Option<i64> = "candidate.ndethist",
        /// Distance to the nearest known solar-system object, arcsec.
        ssdistnr: Option<f64> = "candidate.ssdistnr",
        /// Dates of the earlier epochs (JD).
        prv_jd: Reals = "prv_candidates.jd",
        /// Their filters.
        prv_fid: Integers = "prv_candidates.fid",
        /// Their magnitudes; null for a non-detection. Optional: some
        /// schemas' previous candidates are forced photometry without it.
        prv_magpsf: Reals = "prv_candidates.magpsf?",
        /// Their signs; null for a non-detection.
        prv_isdiffpos: Texts = "prv_candidates.isdiffpos?",
        /// Their 5-sigma limiting magnitudes.
        prv_diffmaglim: Reals = "prv_candidates.diffmaglim",
    }
}

/// A known solar-system object within this distance (arcsec) vetoes.
const SSO_RADIUS_ARCSEC: f64 = 5.0;

/// The filter's configuration (see README.md for each threshold).
#[derive(Debug, Clone, PartialEq)]
struct FastRisers {
    min_rise: f64,
    min_baseline_days: f64,
    min_real: f64,
}

impl Default for FastRisers {
    fn default() -> Self {
        Self {
            min_rise: 0.5,
            min_baseline_days: 0.5,
            min_real: 0.65,
        }
    }
}

/// The fastest rise found against one earlier epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rise {
    /// Brightening rate, mag/day (positive: brighter now).
    rate: f64,
    /// Days between that epoch and now.
    baseline: f64,
    /// Whether that epoch was a non-detection, making `rate` a lower bound.
    from_limit: bool,
}

impl FastRisers {
    /// The fastest rise of the current detection over the earlier epochs in
    /// its band, or `None` when there is no usable epoch.
    fn fastest_rise(&self, a: &Alert, jd: f64, fid: i64, mag: f64) -> Option<Rise> {
        let n = a.prv_jd.len();
        let columns = [
            a.prv_fid.len(),
            a.prv_magpsf.len(),
            a.prv_isdiffpos.len(),
            a.prv_diffmaglim.len(),
        ];
        // A schema whose previous candidates lack a column has no usable
        // light curve (its forced-photometry rows are not detections).
        if columns.iter().any(|&len| len != n) {
            return None;
        }
        let mut best: Option<Rise> = None;
        for i in 0..n {
            let (Some(then), Some(band)) = (a.prv_jd.get(i), a.prv_fid.get(i)) else {
                continue;
            };
            let baseline = jd - then;
            if band != fid || baseline < self.min_baseline_days {
                continue;
            }
            let (reference, from_limit) = match (a.prv_magpsf.get(i), a.prv_diffmaglim.get(i)) {
                // A positive detection: its magnitude.
                (Some(m), _) if matches!(a.prv_isdiffpos.get(i), Some("t" | "1")) => (m, false),
                // A negative detection says nothing about a rise.
                (Some(_), _) => continue,
                // A non-detection: the source was fainter than the limit.
                (None, Some(limit)) => (limit, true),
                (None, None) => continue,
            };
            let rate = (reference - mag) / baseline;
            if best.is_none_or(|b| rate > b.rate) {
                best = Some(Rise {
                    rate,
                    baseline,
                    from_limit,
                });
            }
        }
        best
    }
}

impl Filter for FastRisers {
    type Fields = Alert;
    const NAME: &'static str = "fast-risers";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = bandpass_sdk::survey::ZTF;
    const DESCRIPTION: &'static str =
        "Real ZTF sources brightening by at least 0.5 mag/day in the current band.";

    fn init(params: &Params) -> Result<Self, String> {
        params.deny_unknown(&["min_rise", "min_baseline_days", "min_real"])?;
        let d = Self::default();
        let filter = Self {
            min_rise: params.f64("min_rise", d.min_rise)?,
            min_baseline_days: params.f64("min_baseline_days", d.min_baseline_days)?,
            min_real: params.f64("min_real", d.min_real)?,
        };
        if filter.min_baseline_days <= 0.0 {
            return Err("parameter min_baseline_days: must be above 0".to_string());
        }
        Ok(filter)
    }

    fn evaluate(&self, a: Alert) -> Result<Verdict, String> {
        let positive = matches!(a.isdiffpos.as_deref(), Some("t" | "1"));
        let real = a.drb.or(a.rb).is_some_and(|r| r >= self.min_real);
        // A moving object appears from nowhere: demand an earlier detection
        // here, and no known solar-system object nearby.
        let repeated = a.ndethist.is_some_and(|n| n >= 2);
        let near_sso = a
            .ssdistnr
            .is_some_and(|d| (0.0..=SSO_RADIUS_ARCSEC).contains(&d));
        let (Some(jd), Some(fid), Some(mag)) = (a.jd, a.fid, a.magpsf) else {
            return Ok(Verdict::reject());
        };
        if !positive || !real || !repeated || near_sso {
            return Ok(Verdict::reject());
        }
        let Some(rise) = self.fastest_rise(&a, jd, fid, mag) else {
            return Ok(Verdict::reject());
        };
        if rise.rate < self.min_rise {
            return Ok(Verdict::reject());
        }

        let mut verdict = Verdict::accept()
            .score(rise.rate)
            .tag("fast-riser")
            .tag(if rise.from_limit {
                "rise-from-limit"
            } else {
                "rise-from-detection"
            })
            .note_real("rise_mag_per_day", rise.rate, 3)
            .note_real("baseline_days", rise.baseline, 3);
        if let Some(band) = band(fid) {
            verdict = verdict.tag(band);
        }
        Ok(verdict)
    }
}

/// The ZTF band tag for a filter id.
fn band(fid: i64) -> Option<&'static str> {
    match fid {
        1 => Some("ztf-g"),
        2 => Some("ztf-r"),
        3 => Some("ztf-i"),
        _ => None,
    }
}

export_filter!(FastRisers);

#[cfg(test)]
mod tests {
    use super::*;

    /// Now: r = 18.0 at JD 10. Before: an r limit of 20.0 at JD 8 (rise of
    /// at least 1 mag/day), a g detection, and an r detection an hour ago.
    fn alert() -> Alert {
        Alert {
            jd: Some(10.0),
            fid: Some(2),
            magpsf: Some(18.0),
            isdiffpos: Some("t".into()),
            drb: Some(0.9),
            rb: None,
            ndethist: Some(2),
            ssdistnr: Some(-999.0),
            prv_jd: [Some(8.0), Some(9.0), Some(9.96)].into_iter().collect(),
            prv_fid: [Some(2), Some(1), Some(2)].into_iter().collect(),
            prv_magpsf: [None, Some(25.0), Some(19.0)].into_iter().collect(),
            prv_isdiffpos: [None, Some("t"), Some("t")].into_iter().collect(),
            prv_diffmaglim: [Some(20.0), Some(20.5), Some(20.5)].into_iter().collect(),
        }
    }

    fn verdict(a: Alert) -> Verdict {
        FastRisers::default().evaluate(a).unwrap()
    }

    #[test]
    fn measures_the_rise_in_the_same_band_over_at_least_the_baseline() {
        let v = verdict(alert());
        assert!(v.is_accept());
        assert_eq!(v.get_score(), Some(1.0));
        assert_eq!(v.tags(), ["fast-riser", "rise-from-limit", "ztf-r"]);
    }

    #[test]
    fn rejects_a_slow_rise() {
        let mut a = alert();
        a.prv_diffmaglim = [Some(18.5), Some(20.5), Some(20.5)].into_iter().collect();
        assert!(!verdict(a).is_accept());
    }

    #[test]
    fn ignores_a_light_curve_with_a_missing_column() {
        let a = Alert {
            prv_magpsf: Reals::default(),
            ..alert()
        };
        assert!(!verdict(a).is_accept());
    }

    #[test]
    fn a_detection_rise_is_preferred_when_faster() {
        let mut a = alert();
        a.prv_magpsf = [Some(21.0), Some(25.0), Some(19.0)].into_iter().collect();
        a.prv_isdiffpos = [Some("1"), Some("t"), Some("t")].into_iter().collect();
        let v = verdict(a);
        assert_eq!(v.get_score(), Some(1.5));
        assert_eq!(v.tags()[1], "rise-from-detection");
    }
}
