//! What lies around an alert on the sky (docs/design/sky.md): catalogue
//! cross-matches and sky maps (footprints, gravitational-wave
//! localisations); watchlists to come.
//!
//! Owns: positions on the sphere (degrees in, radians inside), the
//! catalogue files ([`catalog`]), the cross-matches filters ask of
//! them ([`crossmatch`]), sky maps ([`map`]), and what a set of filters
//! asks of all of them per alert ([`plan`]).
//!
//! Must never: do HEALPix arithmetic of its own (cells and cone coverage
//! come from the CDS's `cdshealpix`), or answer differently for the same
//! alert on two machines.

pub mod catalog;
pub mod crossmatch;
pub mod map;
pub mod plan;
pub mod watchlist;

pub use crossmatch::{Caps, CrossmatchPlan, Sky};
pub use plan::{SkyPlan, SkySlot};

/// A catalogue's name is 1 to this many bytes of `a-z`, `0-9`, `_` and `-`.
pub const CATALOG_NAME_BYTES: usize = 64;

/// Whether `name` can name a catalogue (`gaia`, `ps1_dr2`).
pub fn is_catalog_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= CATALOG_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Arcseconds in a radian.
pub const ARCSEC_PER_RADIAN: f64 = 180.0 * 3600.0 / std::f64::consts::PI;

/// A position in degrees as HEALPix wants it (radians, right ascension
/// in [0, 2π)), or `None` when it is no position: not a number, or a
/// declination outside [-90, 90].
pub fn radians(ra_deg: f64, dec_deg: f64) -> Option<(f64, f64)> {
    if !ra_deg.is_finite() || !dec_deg.is_finite() || !(-90.0..=90.0).contains(&dec_deg) {
        return None;
    }
    let ra = ra_deg.rem_euclid(360.0);
    let ra = if ra >= 360.0 { 0.0 } else { ra };
    Some((ra.to_radians(), dec_deg.to_radians()))
}

/// The great-circle distance between two positions, in radians (the
/// haversine form: exact at the small angles a cross-match works at).
pub fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    cdshealpix::haversine_dist(a.0, a.1, b.0, b.1)
}
