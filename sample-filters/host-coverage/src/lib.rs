//! `host-coverage`: positive ZTF detections inside the Legacy Surveys
//! footprint, where a host galaxy has a photometric redshift to look up.
//!
//! It reads no footprint itself: the host holds the operator's sky map
//! `legacy` (a MOC) and says whether each alert is inside it. The cut and
//! its defaults are in this crate's README.md;
//! `sample-filters/python/host_coverage.py` and
//! `sample-filters/js/host-coverage.js` are its twins.

use bandpass_sdk::prelude::*;

fields! {
    /// The detection and where it is.
    struct Alert {
        /// "t" or "1" for a positive difference.
        isdiffpos: Option<String> = "candidate.isdiffpos",
        /// Deep-learning real-bogus score (schema v3.3 and later).
        drb: Option<f64> = "candidate.drb?",
        /// Inside the Legacy Surveys footprint; `None` without a position.
        inside: Option<bool> = "map.legacy.inside",
    }
}

/// The filter's configuration (see README.md).
#[derive(Debug, Clone, PartialEq)]
struct HostCoverage {
    /// The least deep-learning real-bogus score (where the schema has it).
    min_drb: f64,
}

impl Default for HostCoverage {
    fn default() -> Self {
        Self { min_drb: 0.65 }
    }
}

impl Filter for HostCoverage {
    type Fields = Alert;
    const NAME: &'static str = "host-coverage";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = "ztf";
    const DESCRIPTION: &'static str = "Positive ZTF detections inside the Legacy Surveys \
        footprint (map legacy), where a host galaxy photometric redshift exists.";

    fn init(params: &Params) -> Result<Self, String> {
        params.deny_unknown(&["min_drb"])?;
        Ok(Self {
            min_drb: params.f64("min_drb", Self::default().min_drb)?,
        })
    }

    fn evaluate(&self, a: Alert) -> Result<Verdict, String> {
        let positive = matches!(a.isdiffpos.as_deref(), Some("t" | "1"));
        let real = a.drb.is_none_or(|drb| drb >= self.min_drb);
        Ok(if positive && real && a.inside == Some(true) {
            Verdict::accept().tag("legacy-footprint")
        } else {
            Verdict::reject()
        })
    }
}

export_filter!(HostCoverage);
