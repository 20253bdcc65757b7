//! `nuclear-transients`: variability at the nucleus of a galaxy in ZTF
//! alerts: tidal disruption event and AGN flare candidates.
//!
//! The cuts, their defaults and the science are in this crate's README.md;
//! `tests/py/expected_verdicts.py` implements the same cuts independently.

use bandpass_sdk::prelude::*;

fields! {
    /// What the filter reads from a ZTF alert.
    struct Candidate {
        /// Distance to the nearest source in the reference image, arcsec.
        distnr: Option<f64> = "candidate.distnr",
        /// Distance to the nearest PS1 source, arcsec (-999: none).
        distpsnr1: Option<f64> = "candidate.distpsnr1",
        /// Star/galaxy score of that PS1 source: 0 galaxy .. 1 star (-999: none).
        sgscore1: Option<f64> = "candidate.sgscore1",
        /// "t" or "1" for a positive difference.
        isdiffpos: Option<String> = "candidate.isdiffpos",
        /// Deep-learning real-bogus score (schema v3.3 and later).
        drb: Option<f64> = "candidate.drb?",
        /// Random-forest real-bogus score (every schema).
        rb: Option<f64> = "candidate.rb",
        /// Distance to the nearest known solar-system object, arcsec.
        ssdistnr: Option<f64> = "candidate.ssdistnr",
        /// Filter: 1 = g, 2 = r, 3 = i.
        fid: Option<i64> = "candidate.fid",
    }
}

/// A known solar-system object within this distance (arcsec) vetoes.
const SSO_RADIUS_ARCSEC: f64 = 5.0;

/// The filter's configuration (see README.md for each threshold).
#[derive(Debug, Clone, PartialEq)]
struct NuclearTransients {
    max_distnr: f64,
    max_distpsnr1: f64,
    max_sgscore1: f64,
    min_real: f64,
    require_positive: bool,
}

impl Default for NuclearTransients {
    fn default() -> Self {
        Self {
            max_distnr: 0.5,
            max_distpsnr1: 1.0,
            max_sgscore1: 0.5,
            min_real: 0.65,
            require_positive: false,
        }
    }
}

impl Filter for NuclearTransients {
    type Fields = Candidate;
    const NAME: &'static str = "nuclear-transients";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = bandpass_sdk::survey::ZTF;
    const DESCRIPTION: &'static str = "Real ZTF detections within 0.5 arcsec of a galaxy-like \
         reference source: TDE and AGN flare candidates.";

    fn init(params: &Params) -> Result<Self, String> {
        params.deny_unknown(&[
            "max_distnr",
            "max_distpsnr1",
            "max_sgscore1",
            "min_real",
            "require_positive",
        ])?;
        let d = Self::default();
        Ok(Self {
            max_distnr: params.f64("max_distnr", d.max_distnr)?,
            max_distpsnr1: params.f64("max_distpsnr1", d.max_distpsnr1)?,
            max_sgscore1: params.f64("max_sgscore1", d.max_sgscore1)?,
            min_real: params.f64("min_real", d.min_real)?,
            require_positive: params.bool("require_positive", d.require_positive)?,
        })
    }

    fn evaluate(&self, c: Candidate) -> Result<Verdict, String> {
        // ZTF writes -999 where there is no source: the ranges exclude it.
        let within = |value: Option<f64>, max: f64| value.is_some_and(|v| (0.0..=max).contains(&v));
        let positive = matches!(c.isdiffpos.as_deref(), Some("t" | "1"));
        let real = c.drb.or(c.rb);
        let near_sso = within(c.ssdistnr, SSO_RADIUS_ARCSEC);
        if !real.is_some_and(|r| r >= self.min_real)
            || !within(c.distnr, self.max_distnr)
            || !within(c.distpsnr1, self.max_distpsnr1)
            || !within(c.sgscore1, self.max_sgscore1)
            || near_sso
            || (self.require_positive && !positive)
        {
            return Ok(Verdict::reject());
        }

        let mut verdict =
            Verdict::accept()
                .tag("nuclear")
                .tag(if positive { "brightening" } else { "fading" });
        if let Some(real) = real {
            verdict = verdict.score(real);
        }
        if let Some(d) = c.distnr {
            verdict = verdict.note_real("distnr", d, 3);
        }
        if let Some(band) = match c.fid {
            Some(1) => Some("ztf-g"),
            Some(2) => Some("ztf-r"),
            Some(3) => Some("ztf-i"),
            _ => None,
        } {
            verdict = verdict.tag(band);
        }
        Ok(verdict)
    }
}

export_filter!(NuclearTransients);

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate() -> Candidate {
        Candidate {
            distnr: Some(0.13),
            distpsnr1: Some(0.12),
            sgscore1: Some(0.05),
            isdiffpos: Some("t".into()),
            drb: None,
            rb: Some(0.8),
            ssdistnr: Some(-999.0),
            fid: Some(1),
        }
    }

    #[test]
    fn accepts_a_real_detection_on_a_galaxy_nucleus() {
        let v = NuclearTransients::default().evaluate(candidate()).unwrap();
        assert_eq!(v.tags(), ["nuclear", "brightening", "ztf-g"]);
    }

    #[test]
    fn rejects_stars_offsets_and_missing_hosts() {
        for c in [
            Candidate {
                sgscore1: Some(0.98),
                ..candidate()
            },
            Candidate {
                distnr: Some(1.5),
                ..candidate()
            },
            Candidate {
                distpsnr1: Some(-999.0),
                sgscore1: Some(-999.0),
                ..candidate()
            },
        ] {
            assert!(
                !NuclearTransients::default()
                    .evaluate(c)
                    .unwrap()
                    .is_accept()
            );
        }
    }

    #[test]
    fn fading_nuclei_pass_unless_positive_differences_are_required() {
        let fading = || Candidate {
            isdiffpos: Some("f".into()),
            ..candidate()
        };
        let v = NuclearTransients::default().evaluate(fading()).unwrap();
        assert!(v.tags().contains(&"fading".to_string()));
        let params = Params::new(vec![("require_positive".into(), "true".into())]);
        let strict = NuclearTransients::init(&params).unwrap();
        assert!(!strict.evaluate(fading()).unwrap().is_accept());
    }
}
