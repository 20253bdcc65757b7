//! `rubin-bright`: significant, positive, reliable Rubin difference-image
//! detections brighter than a magnitude, that are not known solar-system
//! objects. Works across the alert schema versions 3.0 to 11.0 through
//! optional (`?`) paths where field names changed.
//!
//! The cuts, their defaults and the science are in this crate's README.md;
//! `tests/py/expected_verdicts.py` implements the same cuts independently.

use bandpass_sdk::prelude::*;

fields! {
    /// What the filter reads from a Rubin alert's triggering DIA source.
    struct Source {
        /// PSF flux on the difference image, nJy (schema 5.0 and later).
        psf_flux: Option<f64> = "diaSource.psfFlux?",
        /// The same, under its name in schemas 3.0 and 4.0.
        ps_flux: Option<f64> = "diaSource.psFlux?",
        /// Signal-to-noise ratio of the detection.
        snr: Option<f64> = "diaSource.snr",
        /// Real/bogus reliability, 0..1 (schema 5.0 and later).
        reliability: Option<f64> = "diaSource.reliability?",
        /// Its inverse in schemas 3.0 and 4.0, 0..1.
        spuriousness: Option<f64> = "diaSource.spuriousness?",
        /// Band, `u g r i z y` (schema 5.0 and later).
        band: Option<String> = "diaSource.band?",
        /// The same, under its name in schemas 3.0 and 4.0.
        filter_name: Option<String> = "diaSource.filterName?",
        /// Id of the associated known solar-system object, if any.
        ss_object_id: Option<i64> = "diaSource.ssObjectId",
        /// Saturated pixel at the centre (schema 7.0 and later).
        saturated: Option<bool> = "diaSource.pixelFlags_saturatedCenter?",
    }
}

/// AB magnitude zero point of a flux in nJy.
const AB_ZERO_POINT_NJY: f64 = 31.4;

/// The filter's configuration (see README.md for each threshold).
#[derive(Debug, Clone, PartialEq)]
struct RubinBright {
    max_mag: f64,
    min_snr: f64,
    min_reliability: f64,
}

impl Default for RubinBright {
    fn default() -> Self {
        Self {
            max_mag: 24.0,
            min_snr: 20.0,
            min_reliability: 0.5,
        }
    }
}

impl RubinBright {
    /// The flux in nJy of a source of magnitude `max_mag`.
    fn min_flux(&self) -> f64 {
        10f64.powf((AB_ZERO_POINT_NJY - self.max_mag) / 2.5)
    }
}

impl Filter for RubinBright {
    type Fields = Source;
    const NAME: &'static str = "rubin-bright";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = bandpass_sdk::survey::RUBIN;
    const DESCRIPTION: &'static str = "Positive Rubin DIA sources brighter than 24.0 AB with \
         snr >= 20, reliable, unsaturated, not known solar-system objects.";

    fn init(params: &Params) -> Result<Self, String> {
        params.deny_unknown(&["max_mag", "min_snr", "min_reliability"])?;
        let d = Self::default();
        Ok(Self {
            max_mag: params.f64("max_mag", d.max_mag)?,
            min_snr: params.f64("min_snr", d.min_snr)?,
            min_reliability: params.f64("min_reliability", d.min_reliability)?,
        })
    }

    fn evaluate(&self, s: Source) -> Result<Verdict, String> {
        let Some(flux) = s.psf_flux.or(s.ps_flux) else {
            return Ok(Verdict::reject());
        };
        // Early alert streams leave the classifier's score null: no veto then.
        let reliable = match (s.reliability, s.spuriousness) {
            (Some(r), _) => r >= self.min_reliability,
            (None, Some(sp)) => 1.0 - sp >= self.min_reliability,
            (None, None) => true,
        };
        let known_sso = s.ss_object_id.is_some_and(|id| id != 0);
        if flux <= 0.0
            || flux < self.min_flux()
            || !s.snr.is_some_and(|snr| snr >= self.min_snr)
            || !reliable
            || known_sso
            || s.saturated == Some(true)
        {
            return Ok(Verdict::reject());
        }

        let mag = AB_ZERO_POINT_NJY - 2.5 * flux.log10();
        let mut verdict = Verdict::accept()
            .tag("rubin-bright")
            .note_real("mag", mag, 2);
        if let Some(snr) = s.snr {
            verdict = verdict.score(snr);
        }
        if let Some(band) = s.band.or(s.filter_name) {
            verdict = verdict.tag(format!("lsst-{band}"));
        }
        Ok(verdict)
    }
}

export_filter!(RubinBright);

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        Source {
            psf_flux: Some(1241.0),
            ps_flux: None,
            snr: Some(41.1),
            reliability: None,
            spuriousness: None,
            band: Some("r".into()),
            filter_name: None,
            ss_object_id: None,
            saturated: None,
        }
    }

    fn verdict(s: Source) -> Verdict {
        RubinBright::default().evaluate(s).unwrap()
    }

    #[test]
    fn accepts_a_bright_significant_source_under_either_flux_name() {
        assert_eq!(verdict(source()).tags(), ["rubin-bright", "lsst-r"]);
        let old = Source {
            psf_flux: None,
            ps_flux: Some(1241.0),
            band: None,
            filter_name: Some("g".into()),
            ..source()
        };
        assert_eq!(verdict(old).tags(), ["rubin-bright", "lsst-g"]);
    }

    #[test]
    fn rejects_faint_negative_bogus_or_moving_sources() {
        for s in [
            Source {
                psf_flux: Some(500.0),
                ..source()
            },
            Source {
                psf_flux: Some(-5000.0),
                ..source()
            },
            Source {
                reliability: Some(0.1),
                ..source()
            },
            Source {
                ss_object_id: Some(42),
                ..source()
            },
            Source {
                saturated: Some(true),
                ..source()
            },
        ] {
            assert!(!verdict(s).is_accept());
        }
    }
}
