//! `bright-star-veto`: positive ZTF detections with no Gaia star brighter
//! than `max_star_mag` within 10 arcseconds, where ghosts, halos and
//! diffraction spikes make false transients.
//!
//! It reads no catalogue itself: the host cross-matches each alert with
//! the operator's catalogue `gaia` (contract 0.4.0) and hands over the
//! stars found, nearest first. The cut and its defaults are in this
//! crate's README.md; `sample-filters/python/bright_star_veto.py` and
//! `sample-filters/js/bright-star-veto.js` are its twins.

use bandpass_sdk::prelude::*;

fields! {
    /// The detection and the stars around it.
    struct Alert {
        /// "t" or "1" for a positive difference.
        isdiffpos: Option<String> = "candidate.isdiffpos",
        /// Arcseconds from the alert to each star within 10; `None` when
        /// the alert has no position (no cone was run).
        dist: Option<Reals> = "xmatch.stars.dist",
        /// Each star's Gaia G magnitude (null where not measured).
        mag: Reals = "xmatch.stars.mag",
    }
}

/// The filter's configuration (see README.md).
#[derive(Debug, Clone, PartialEq)]
struct BrightStarVeto {
    /// A star brighter than this (G, strictly) within the cone vetoes.
    max_star_mag: f64,
}

impl Default for BrightStarVeto {
    fn default() -> Self {
        Self { max_star_mag: 15.0 }
    }
}

impl Filter for BrightStarVeto {
    type Fields = Alert;
    const NAME: &'static str = "bright-star-veto";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = "ztf";
    const DESCRIPTION: &'static str = "Positive ZTF detections with no Gaia star brighter than \
        max_star_mag within 10 arcseconds (ghosts and bright-star artifacts vetoed).";
    const CROSSMATCHES: &'static [Crossmatch] = &[Crossmatch::new("stars", "gaia", 10.0, 20)];

    fn init(params: &Params) -> Result<Self, String> {
        params.deny_unknown(&["max_star_mag"])?;
        Ok(Self {
            max_star_mag: params.f64("max_star_mag", Self::default().max_star_mag)?,
        })
    }

    fn evaluate(&self, a: Alert) -> Result<Verdict, String> {
        if !matches!(a.isdiffpos.as_deref(), Some("t" | "1")) {
            return Ok(Verdict::reject());
        }
        // No position, no search: nothing says the field is clear.
        let Some(dist) = a.dist else {
            return Ok(Verdict::reject());
        };
        // A null magnitude (not measured) never vetoes.
        let bright = a
            .mag
            .iter()
            .any(|m| m.is_some_and(|m| m < self.max_star_mag));
        if bright {
            return Ok(Verdict::reject());
        }
        Ok(if dist.is_empty() {
            Verdict::accept().tag("clear")
        } else {
            Verdict::accept().tag("faint-neighbour")
        })
    }
}

export_filter!(BrightStarVeto);
