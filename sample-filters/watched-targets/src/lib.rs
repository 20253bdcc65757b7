//! `watched-targets`: positive ZTF detections within the radius of one
//! of a group's targets (the watchlist `targets`: name, position and
//! radius each), tagged with the nearest target's name.
//!
//! It reads no list itself: the host holds the watchlist and gives each
//! alert the targets whose own radius holds it, nearest first. The cut
//! is in this crate's README.md.

use bandpass_sdk::prelude::*;

fields! {
    /// The detection and the targets it falls within.
    struct Alert {
        /// "t" or "1" for a positive difference.
        isdiffpos: Option<String> = "candidate.isdiffpos",
        /// The targets' names, nearest first.
        names: Texts = "watch.targets.name",
        /// Their distances from the alert, arcseconds.
        dist: Reals = "watch.targets.dist",
    }
}

#[derive(Debug, Default)]
struct WatchedTargets;

impl Filter for WatchedTargets {
    type Fields = Alert;
    const NAME: &'static str = "watched-targets";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SURVEY: &'static str = "ztf";
    const DESCRIPTION: &'static str = "Positive ZTF detections within the radius of a target of \
        the watchlist targets, tagged with the nearest target's name.";

    fn init(params: &Params) -> Result<Self, String> {
        params.deny_unknown(&[])?;
        Ok(Self)
    }

    fn evaluate(&self, a: Alert) -> Result<Verdict, String> {
        let positive = matches!(a.isdiffpos.as_deref(), Some("t" | "1"));
        let (Some(name), Some(dist)) = (a.names.get(0), a.dist.get(0)) else {
            return Ok(Verdict::reject());
        };
        if !positive {
            return Ok(Verdict::reject());
        }
        Ok(Verdict::accept()
            .tag(name)
            .note("targets", a.names.len())
            .note_real("dist", dist, 2))
    }
}

export_filter!(WatchedTargets);
