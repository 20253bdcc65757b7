//! Bright, real, positive ZTF detections: the example in guest-sdk/README.md.

use bandpass_sdk::prelude::*;

fields! {
    /// The fields the filter reads, in the order the host sends them.
    struct Cand {
        magpsf: Option<f64> = "candidate.magpsf",
        drb: Option<f64> = "candidate.drb?", // `?`: absent before schema v3.3
        rb: Option<f64> = "candidate.rb",
        isdiffpos: Option<String> = "candidate.isdiffpos",
        jds: Reals = "prv_candidates.jd", // a column: one per earlier epoch
    }
}

/// The filter. It has no parameters, so a unit struct will do.
#[derive(Default)]
struct Bright;

impl Filter for Bright {
    type Fields = Cand;
    const NAME: &'static str = "readme-example";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = "ztf";
    const DESCRIPTION: &'static str = "Bright, real, positive ZTF detections.";

    fn evaluate(&self, c: Cand) -> Result<Verdict, String> {
        let real = c.drb.or(c.rb).unwrap_or(0.0);
        let positive = matches!(c.isdiffpos.as_deref(), Some("t" | "1"));
        if !(positive && real >= 0.65 && c.magpsf.is_some_and(|m| m <= 18.5)) {
            return Ok(Verdict::reject());
        }
        log::debug!("real-bogus {real:.2} after {} epochs", c.jds.len());
        Ok(Verdict::accept()
            .score(real)
            .tag("bright")
            .note("epochs", c.jds.len()))
    }
}

export_filter!(Bright);
