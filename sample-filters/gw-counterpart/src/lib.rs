//! `gw-counterpart`: positive ZTF detections inside a gravitational-wave
//! localisation's credible region whose brightness changes fast (a
//! kilonova rises and fades within days; a slow supernova does not).
//!
//! It reads no sky map itself: the host holds the operator's map `gw`
//! (a multi-order probability map) and gives each alert the smallest
//! credible level holding it and the probability density there. The cut
//! and its defaults are in this crate's README.md;
//! `sample-filters/python/gw_counterpart.py` and
//! `sample-filters/js/gw-counterpart.js` are its twins.

use bandpass_sdk::prelude::*;

fields! {
    /// The detection, its light curve and the map's answers.
    struct Alert {
        /// "t" or "1" for a positive difference.
        isdiffpos: Option<String> = "candidate.isdiffpos",
        /// Observation date (JD).
        jd: Option<f64> = "candidate.jd",
        /// Its band: 1 = g, 2 = r, 3 = i.
        fid: Option<i64> = "candidate.fid",
        /// Its difference-image PSF magnitude.
        magpsf: Option<f64> = "candidate.magpsf",
        /// Dates of the earlier epochs (JD).
        prv_jd: Reals = "prv_candidates.jd",
        /// Their bands.
        prv_fid: Integers = "prv_candidates.fid",
        /// Their magnitudes; null for a non-detection.
        prv_magpsf: Reals = "prv_candidates.magpsf?",
        /// The smallest credible level holding the alert (near 0 at the
        /// peak, 1 outside the map);
        /// `None` without a position.
        credible: Option<f64> = "map.gw.credible",
        /// The probability density there, per square degree.
        prob: Option<f64> = "map.gw.prob",
    }
}

/// The filter's configuration (see README.md).
#[derive(Debug, Clone, PartialEq)]
struct GwCounterpart {
    /// The credible region an alert must be in (0.9: the 90 % region).
    max_credible: f64,
    /// The least change of brightness, magnitudes per day, either way.
    min_rate: f64,
}

impl Default for GwCounterpart {
    fn default() -> Self {
        Self {
            max_credible: 0.9,
            min_rate: 0.3,
        }
    }
}

impl Filter for GwCounterpart {
    type Fields = Alert;
    const NAME: &'static str = "gw-counterpart";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = "ztf";
    const DESCRIPTION: &'static str = "Positive ZTF detections inside the gravitational-wave \
        map gw's max_credible region, rising or fading by at least min_rate mag/day since the \
        last detection in the band.";

    fn init(params: &Params) -> Result<Self, String> {
        params.deny_unknown(&["max_credible", "min_rate"])?;
        let d = Self::default();
        Ok(Self {
            max_credible: params.f64("max_credible", d.max_credible)?,
            min_rate: params.f64("min_rate", d.min_rate)?,
        })
    }

    fn evaluate(&self, a: Alert) -> Result<Verdict, String> {
        let positive = matches!(a.isdiffpos.as_deref(), Some("t" | "1"));
        let (Some(jd), Some(fid), Some(mag), Some(credible), Some(prob), true) =
            (a.jd, a.fid, a.magpsf, a.credible, a.prob, positive)
        else {
            return Ok(Verdict::reject());
        };
        if credible > self.max_credible {
            return Ok(Verdict::reject());
        }
        // The latest earlier detection in the same band.
        let mut last: Option<(f64, f64)> = None;
        for i in 0..a.prv_jd.len() {
            let (Some(t), Some(f), Some(m)) =
                (a.prv_jd.get(i), a.prv_fid.get(i), a.prv_magpsf.get(i))
            else {
                continue;
            };
            if f == fid && t < jd && last.is_none_or(|(lt, _)| t > lt) {
                last = Some((t, m));
            }
        }
        let Some((then, before)) = last else {
            return Ok(Verdict::reject());
        };
        // Positive: brightening.
        let rate = (before - mag) / (jd - then);
        if rate.abs() < self.min_rate {
            return Ok(Verdict::reject());
        }
        Ok(Verdict::accept()
            .score(prob)
            .tag(if rate > 0.0 { "rising" } else { "fading" })
            .note_real("rate", rate, 2)
            .note_real("credible", credible, 3))
    }
}

export_filter!(GwCounterpart);
