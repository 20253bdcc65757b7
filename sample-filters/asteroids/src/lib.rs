//! `asteroids`: ZTF detections of known solar-system objects.
//!
//! The cuts, their defaults and the science are in this crate's README.md;
//! `tests/py/expected_verdicts.py` implements the same cuts independently.

use bandpass_sdk::prelude::*;

fields! {
    /// What the filter reads from a ZTF alert.
    struct Candidate {
        /// Distance to the nearest known solar-system object, arcsec (-999: none).
        ssdistnr: Option<f64> = "candidate.ssdistnr",
        /// That object's predicted V magnitude (-999: none).
        ssmagnr: Option<f64> = "candidate.ssmagnr",
        /// That object's name in the MPC catalogue.
        ssnamenr: Option<String> = "candidate.ssnamenr",
        /// "t" or "1" for a positive difference.
        isdiffpos: Option<String> = "candidate.isdiffpos",
        /// Deep-learning real-bogus score (schema v3.3 and later).
        drb: Option<f64> = "candidate.drb?",
        /// Random-forest real-bogus score (every schema).
        rb: Option<f64> = "candidate.rb",
        /// Difference-image PSF magnitude.
        magpsf: Option<f64> = "candidate.magpsf",
    }
}

/// The filter's configuration (see README.md for each threshold).
#[derive(Debug, Clone, PartialEq)]
struct Asteroids {
    max_ssdistnr: f64,
    min_real: f64,
}

impl Default for Asteroids {
    fn default() -> Self {
        Self {
            max_ssdistnr: 5.0,
            min_real: 0.65,
        }
    }
}

impl Filter for Asteroids {
    type Fields = Candidate;
    const NAME: &'static str = "asteroids";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = bandpass_sdk::survey::ZTF;
    const DESCRIPTION: &'static str =
        "Real, positive ZTF detections within 5 arcsec of a known solar-system object.";

    fn init(params: &Params) -> Result<Self, String> {
        params.deny_unknown(&["max_ssdistnr", "min_real"])?;
        let d = Self::default();
        Ok(Self {
            max_ssdistnr: params.f64("max_ssdistnr", d.max_ssdistnr)?,
            min_real: params.f64("min_real", d.min_real)?,
        })
    }

    fn evaluate(&self, c: Candidate) -> Result<Verdict, String> {
        let positive = matches!(c.isdiffpos.as_deref(), Some("t" | "1"));
        let real = c.drb.or(c.rb);
        // ZTF writes -999 where no known object is within its search radius.
        let (Some(dist), Some(ssmag)) = (c.ssdistnr, c.ssmagnr) else {
            return Ok(Verdict::reject());
        };
        let near = (0.0..=self.max_ssdistnr).contains(&dist);
        if !positive || !real.is_some_and(|r| r >= self.min_real) || !near || ssmag <= 0.0 {
            return Ok(Verdict::reject());
        }

        let mut verdict = Verdict::accept()
            .score(1.0 - dist / self.max_ssdistnr.max(f64::MIN_POSITIVE))
            .tag("asteroid")
            .tag("known-sso")
            .note_real("ssdistnr", dist, 2)
            .note_real("ssmagnr", ssmag, 2);
        if let Some(name) = c.ssnamenr.filter(|n| !n.is_empty() && n != "null") {
            verdict = verdict.note("ssnamenr", name);
        }
        if let Some(mag) = c.magpsf {
            verdict = verdict.note_real("magpsf", mag, 2);
        }
        Ok(verdict)
    }
}

export_filter!(Asteroids);

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate() -> Candidate {
        Candidate {
            ssdistnr: Some(1.2),
            ssmagnr: Some(19.5),
            ssnamenr: Some("12345".into()),
            isdiffpos: Some("t".into()),
            drb: Some(0.99),
            rb: Some(0.5),
            magpsf: Some(19.2),
        }
    }

    fn verdict(c: Candidate) -> Verdict {
        Asteroids::default().evaluate(c).unwrap()
    }

    #[test]
    fn accepts_a_real_detection_next_to_a_known_object() {
        let v = verdict(candidate());
        assert!(v.is_accept());
        assert_eq!(v.tags(), ["asteroid", "known-sso"]);
        assert!(v.notes().contains(&("ssnamenr".into(), "12345".into())));
    }

    #[test]
    fn rejects_alerts_with_no_known_object_nearby() {
        for (dist, mag) in [(-999.0, -999.0), (6.0, 19.5), (1.0, -999.0)] {
            let c = Candidate {
                ssdistnr: Some(dist),
                ssmagnr: Some(mag),
                ..candidate()
            };
            assert!(!verdict(c).is_accept());
        }
    }
}
