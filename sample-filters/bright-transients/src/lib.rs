//! `bright-transients`: bright, real, positive ZTF transients, confirmed by
//! at least a second detection and not a known solar-system object.
//!
//! The cuts, their defaults and the science are in this crate's README.md;
//! `tests/py/expected_verdicts.py` implements the same cuts independently.

use bandpass_sdk::prelude::*;

fields! {
    /// What the filter reads from a ZTF alert.
    struct Candidate {
        /// Difference-image PSF magnitude.
        magpsf: Option<f64> = "candidate.magpsf",
        /// "t" or "1" for a positive difference (brighter than the reference).
        isdiffpos: Option<String> = "candidate.isdiffpos",
        /// Deep-learning real-bogus score (schema v3.3 and later).
        drb: Option<f64> = "candidate.drb?",
        /// Random-forest real-bogus score (every schema).
        rb: Option<f64> = "candidate.rb",
        /// Detections at this position since the survey began.
        ndethist: Option<i64> = "candidate.ndethist",
        /// Distance to the nearest known solar-system object, arcsec (-999: none).
        ssdistnr: Option<f64> = "candidate.ssdistnr",
        /// Observation date (JD).
        jd: Option<f64> = "candidate.jd",
        /// Date of the first detection at this position (JD).
        jdstarthist: Option<f64> = "candidate.jdstarthist",
        /// Filter: 1 = g, 2 = r, 3 = i.
        fid: Option<i64> = "candidate.fid",
        /// Star/galaxy score of the nearest PS1 source (1 = star).
        sgscore1: Option<f64> = "candidate.sgscore1",
        /// Distance to the nearest PS1 source, arcsec.
        distpsnr1: Option<f64> = "candidate.distpsnr1",
    }
}

/// A known solar-system object within this distance (arcsec) vetoes.
const SSO_RADIUS_ARCSEC: f64 = 5.0;
/// Tagged `new` when first detected at most this many days ago.
const NEW_DAYS: f64 = 5.0;

/// The filter's configuration (see README.md for each threshold).
#[derive(Debug, Clone, PartialEq)]
struct BrightTransients {
    max_mag: f64,
    min_real: f64,
    min_ndethist: i64,
    max_age_days: Option<f64>,
}

impl Default for BrightTransients {
    fn default() -> Self {
        Self {
            max_mag: 18.5,
            min_real: 0.65,
            min_ndethist: 2,
            max_age_days: None,
        }
    }
}

impl Filter for BrightTransients {
    type Fields = Candidate;
    const NAME: &'static str = "bright-transients";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = bandpass_sdk::survey::ZTF;
    const DESCRIPTION: &'static str = "Bright (magpsf <= 18.5), real, positive ZTF transients seen at least twice, not known asteroids.";

    fn init(params: &Params) -> Result<Self, String> {
        params.deny_unknown(&["max_mag", "min_real", "min_ndethist", "max_age_days"])?;
        let d = Self::default();
        let max_age_days = match params.get("max_age_days") {
            None => None,
            Some(_) => Some(params.f64("max_age_days", 0.0)?),
        };
        Ok(Self {
            max_mag: params.f64("max_mag", d.max_mag)?,
            min_real: params.f64("min_real", d.min_real)?,
            min_ndethist: params.i64("min_ndethist", d.min_ndethist)?,
            max_age_days,
        })
    }

    fn evaluate(&self, c: Candidate) -> Result<Verdict, String> {
        let positive = matches!(c.isdiffpos.as_deref(), Some("t" | "1"));
        // Deep real-bogus where the schema has it, else the older score.
        let Some(real) = c.drb.or(c.rb) else {
            return Ok(Verdict::reject());
        };
        let (Some(mag), Some(ndethist)) = (c.magpsf, c.ndethist) else {
            return Ok(Verdict::reject());
        };
        let near_sso = c
            .ssdistnr
            .is_some_and(|d| (0.0..=SSO_RADIUS_ARCSEC).contains(&d));
        let age = c.jd.zip(c.jdstarthist).map(|(jd, start)| jd - start);
        let young_enough = match (self.max_age_days, age) {
            (None, _) => true,
            (Some(max), Some(age)) => age <= max,
            (Some(_), None) => false,
        };
        if !positive
            || mag > self.max_mag
            || real < self.min_real
            || ndethist < self.min_ndethist
            || near_sso
            || !young_enough
        {
            return Ok(Verdict::reject());
        }

        let mut verdict = Verdict::accept()
            .score(real)
            .tag("bright")
            .note_real("magpsf", mag, 2);
        if let Some(band) = band(c.fid) {
            verdict = verdict.tag(band);
        }
        if age.is_some_and(|a| a <= NEW_DAYS) {
            verdict = verdict.tag("new");
        }
        let stellar = c.sgscore1.is_some_and(|s| s > 0.5)
            && c.distpsnr1.is_some_and(|d| (0.0..=1.5).contains(&d));
        if stellar {
            verdict = verdict.tag("stellar-counterpart");
        }
        Ok(verdict)
    }
}

/// The ZTF band tag for a filter id.
fn band(fid: Option<i64>) -> Option<&'static str> {
    match fid? {
        1 => Some("ztf-g"),
        2 => Some("ztf-r"),
        3 => Some("ztf-i"),
        _ => None,
    }
}

export_filter!(BrightTransients);

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate() -> Candidate {
        Candidate {
            magpsf: Some(18.0),
            isdiffpos: Some("t".into()),
            drb: None,
            rb: Some(0.8),
            ndethist: Some(3),
            ssdistnr: Some(-999.0),
            jd: Some(2_458_226.76),
            jdstarthist: Some(2_458_224.76),
            fid: Some(2),
            sgscore1: Some(0.1),
            distpsnr1: Some(3.0),
        }
    }

    fn verdict(c: Candidate) -> Verdict {
        BrightTransients::default().evaluate(c).unwrap()
    }

    #[test]
    fn accepts_a_bright_real_positive_repeated_detection() {
        let v = verdict(candidate());
        assert!(v.is_accept());
        assert_eq!(v.get_score(), Some(0.8));
        assert_eq!(v.tags(), ["bright", "ztf-r", "new"]);
    }

    #[test]
    fn prefers_drb_over_rb_where_the_schema_has_it() {
        let v = verdict(Candidate {
            drb: Some(0.1),
            ..candidate()
        });
        assert!(!v.is_accept());
    }

    #[test]
    fn rejects_negative_faint_single_or_asteroid_detections() {
        for c in [
            Candidate {
                isdiffpos: Some("f".into()),
                ..candidate()
            },
            Candidate {
                magpsf: Some(19.0),
                ..candidate()
            },
            Candidate {
                ndethist: Some(1),
                ..candidate()
            },
            Candidate {
                ssdistnr: Some(1.0),
                ..candidate()
            },
        ] {
            assert!(!verdict(c).is_accept());
        }
    }

    #[test]
    fn parameters_override_the_defaults_and_typos_are_refused() {
        let params = Params::new(vec![("max_mag".into(), "17.5".into())]);
        let f = BrightTransients::init(&params).unwrap();
        assert!(!f.evaluate(candidate()).unwrap().is_accept());
        let typo = Params::new(vec![("max_mgg".into(), "17.5".into())]);
        assert!(BrightTransients::init(&typo).is_err());
    }
}
