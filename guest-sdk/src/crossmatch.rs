//! Cross-matches: the catalogue rows the host finds around each alert.
//!
//! A filter asks for them in [`Filter::CROSSMATCHES`](crate::Filter::CROSSMATCHES)
//! and reads the rows as declared fields, each a column with one entry
//! per row, nearest first:
//!
//! ```rust,no_run
//! use bandpass_sdk::prelude::*;
//!
//! fields! {
//!     struct Alert {
//!         /// Arcseconds from the alert to each star found.
//!         dist: Reals = "xmatch.stars.dist",
//!         /// Each star's Gaia G magnitude.
//!         mag: Reals = "xmatch.stars.mag",
//!     }
//! }
//!
//! #[derive(Default)]
//! struct NoBrightStar;
//!
//! impl Filter for NoBrightStar {
//!     type Fields = Alert;
//! #   const NAME: &'static str = "no-bright-star";
//! #   const VERSION: &'static str = "0.1.0";
//! #   const SURVEY: &'static str = "ztf";
//! #   const DESCRIPTION: &'static str = "No star brighter than 15 within 10 arcseconds.";
//!     const CROSSMATCHES: &'static [Crossmatch] = &[Crossmatch::new("stars", "gaia", 10.0, 20)];
//!
//!     fn evaluate(&self, alert: Alert) -> Result<Verdict, String> {
//!         let bright = alert.mag.iter().any(|m| m.is_some_and(|m| m < 15.0));
//!         Ok(if bright { Verdict::reject() } else { Verdict::accept() })
//!     }
//! }
//! ```
//!
//! The fields of a cross-match named `stars`: `xmatch.stars.dist`
//! (arcseconds from the alert), `xmatch.stars.ra` and `xmatch.stars.dec`
//! (degrees), and `xmatch.stars.<column>` for each of the catalogue's
//! columns (`bandpass catalog info FILE` lists them). No rows: empty
//! columns. An alert without a position: absent. A value the catalogue
//! does not have (a magnitude not measured): a null entry.
//!
//! What the host guarantees: the same rows in `bandpass test`, `run` and
//! `serve` for the same catalogue file; each cone is run once per alert
//! however many filters ask for it; a catalogue, column, radius or row
//! count the host does not have or allow refuses the filter at load,
//! naming it. Positions are the catalogue's own, at its epoch: no proper
//! motion is applied.

/// A cross-match a filter asks for: see the [module](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossmatch {
    /// What the fields call it (`xmatch.<name>.*`): 1 to 32 of `a-z`,
    /// `0-9` and `_`, distinct within the filter.
    pub name: &'static str,
    /// The operator's name for the catalogue (`gaia`).
    pub catalog: &'static str,
    /// The cone's radius in arcseconds (at most the operator's cap, 60
    /// by default).
    pub radius_arcsec: f64,
    /// The most rows given, nearest first (at most the operator's cap, 20
    /// by default).
    pub max_rows: u32,
}

impl Crossmatch {
    /// The rows of `catalog` within `radius_arcsec` of each alert, at most
    /// `max_rows`, read as `xmatch.<name>.*`.
    pub const fn new(
        name: &'static str,
        catalog: &'static str,
        radius_arcsec: f64,
        max_rows: u32,
    ) -> Crossmatch {
        Crossmatch {
            name,
            catalog,
            radius_arcsec,
            max_rows,
        }
    }
}
