//! `rise-once`: each ZTF object once, the first time it is seen brighter,
//! by a margin, than the faintest the filter remembers of it in the same
//! band, at least a day after the filter first saw it.
//!
//! It reads no light curve from the packet: what it knows of the object is
//! its own state, which the host keeps per object between alerts (contract
//! 0.3.0). The cut, its defaults and the state's layout are in this
//! crate's README.md; `tests/py/expected_verdicts.py` states the same cut
//! independently, and `sample-filters/python/rise_once.py` and
//! `sample-filters/js/rise-once.js` are its twins.

use std::collections::BTreeMap;

use bandpass_sdk::prelude::*;

fields! {
    /// The current detection.
    struct Alert {
        /// Observation date (JD).
        jd: Option<f64> = "candidate.jd",
        /// Its band: 1 = g, 2 = r, 3 = i.
        fid: Option<i64> = "candidate.fid",
        /// Its difference-image PSF magnitude.
        magpsf: Option<f64> = "candidate.magpsf",
        /// "t" or "1" for a positive difference.
        isdiffpos: Option<String> = "candidate.isdiffpos",
    }
}

/// What the filter remembers of one object: JSON, keys in sorted order,
/// as the Python and JavaScript twins write it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Seen {
    /// Whether the object was accepted: it never is again.
    #[serde(default, skip_serializing_if = "is_false")]
    done: bool,
    /// The faintest positive detection per band (key: `fid` in decimal).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    faintest: BTreeMap<String, f64>,
    /// When the filter first saw a positive detection of it (JD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<f64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The filter's configuration (see README.md).
#[derive(Debug, Clone, PartialEq)]
struct RiseOnce {
    /// Brightening needed over the faintest remembered, in magnitudes.
    min_rise: f64,
    /// Days since the first detection the filter saw.
    min_days: f64,
}

impl Default for RiseOnce {
    fn default() -> Self {
        Self {
            min_rise: 0.5,
            min_days: 1.0,
        }
    }
}

impl Filter for RiseOnce {
    type Fields = Alert;
    const NAME: &'static str = "rise-once";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = "ztf";
    const DESCRIPTION: &'static str = "Each object once: the first time it is seen brighter by \
        min_rise than the faintest remembered in its band, min_days after it was first seen.";
    const STATE: Option<StateSpec> = Some(StateSpec::new("rise-once/1", 512));

    fn init(params: &Params) -> Result<Self, String> {
        params.deny_unknown(&["min_rise", "min_days"])?;
        let d = Self::default();
        Ok(Self {
            min_rise: params.f64("min_rise", d.min_rise)?,
            min_days: params.f64("min_days", d.min_days)?,
        })
    }

    fn evaluate(&self, a: Alert) -> Result<Verdict, String> {
        let positive = matches!(a.isdiffpos.as_deref(), Some("t" | "1"));
        let (Some(jd), Some(fid), Some(mag), true) = (a.jd, a.fid, a.magpsf, positive) else {
            return Ok(Verdict::reject());
        };
        let mut seen: Seen = state::load()?;
        if seen.done {
            return Ok(Verdict::reject());
        }
        let band = fid.to_string();
        let since = seen.since.unwrap_or(jd);
        if let Some(&faintest) = seen.faintest.get(&band) {
            let (rise, days) = (faintest - mag, jd - since);
            if rise >= self.min_rise && days >= self.min_days {
                seen.done = true;
                state::save(&seen)?;
                return Ok(Verdict::accept()
                    .score(rise)
                    .tag("rise-once")
                    .note_real("rise", rise, 2)
                    .note_real("days", days, 2));
            }
        }
        let faintest = seen.faintest.entry(band).or_insert(mag);
        *faintest = faintest.max(mag);
        seen.since = Some(since.min(jd));
        state::save(&seen)?;
        Ok(Verdict::reject())
    }
}

export_filter!(RiseOnce);
