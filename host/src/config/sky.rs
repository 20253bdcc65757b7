//! `[sky]`: the catalogues filters cross-match with, and the caps on what
//! a filter may ask of them (docs/design/sky.md).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Invalid;
use crate::sky::{Caps, Sky};

/// The most catalogues a config registers.
pub const MAX_CATALOGS: usize = 64;

/// `[sky]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkyConfig {
    /// The widest cone a filter's cross-match may ask for, arcseconds
    /// (at most 3600).
    #[serde(default = "default_max_radius")]
    pub max_radius_arcsec: f64,
    /// The most rows a filter's cross-match may ask for (at most 1000).
    #[serde(default = "default_max_rows")]
    pub max_rows: u32,
    /// The catalogues (`[[sky.catalog]]`), each a file `bandpass catalog
    /// build` made.
    #[serde(default, rename = "catalog")]
    pub catalogs: Vec<SkyFileConfig>,
    /// The sky maps (`[[sky.map]]`): survey footprints (MOCs) and
    /// probability maps (gravitational-wave localisations) every filter
    /// may read.
    #[serde(default, rename = "map")]
    pub maps: Vec<SkyFileConfig>,
    /// The watchlists (`[[sky.watchlist]]`): targets every filter may
    /// read the alert's nearness to; each target's radius at most
    /// `max_radius_arcsec`.
    #[serde(default, rename = "watchlist")]
    pub watchlists: Vec<SkyFileConfig>,
}

/// `[[sky.catalog]]` and `[[sky.map]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkyFileConfig {
    /// What filters call it (`gaia`, `legacy`): 1 to 64 of a-z, 0-9, '_'
    /// and '-'.
    pub name: String,
    /// The file; a relative path starts from the config file's folder.
    pub file: PathBuf,
}

impl Default for SkyConfig {
    fn default() -> Self {
        SkyConfig {
            max_radius_arcsec: default_max_radius(),
            max_rows: default_max_rows(),
            catalogs: Vec::new(),
            maps: Vec::new(),
            watchlists: Vec::new(),
        }
    }
}

fn default_max_radius() -> f64 {
    Caps::default().max_radius_arcsec
}

fn default_max_rows() -> u32 {
    Caps::default().max_rows
}

impl SkyConfig {
    pub fn caps(&self) -> Caps {
        Caps {
            max_radius_arcsec: self.max_radius_arcsec,
            max_rows: self.max_rows,
        }
    }

    /// Opens every catalogue (relative files from `dir`, the config's
    /// folder) into a sky with these caps; `setting` is what refusals
    /// name as the way to add one.
    pub fn open(&self, dir: &Path, setting: &'static str) -> anyhow::Result<Sky> {
        let mut sky = Sky::new(self.caps(), setting);
        for (i, c) in self.catalogs.iter().enumerate() {
            sky.add(&c.name, &dir.join(&c.file))
                .map_err(|e| anyhow::anyhow!("sky.catalog[{i}]: {e:#}"))?;
        }
        for (i, m) in self.maps.iter().enumerate() {
            sky.add_map(&m.name, &dir.join(&m.file))
                .map_err(|e| anyhow::anyhow!("sky.map[{i}]: {e:#}"))?;
        }
        for (i, w) in self.watchlists.iter().enumerate() {
            sky.add_watchlist(&w.name, &dir.join(&w.file))
                .map_err(|e| anyhow::anyhow!("sky.watchlist[{i}]: {e:#}"))?;
        }
        Ok(sky)
    }

    pub(super) fn check(&self) -> Result<(), Invalid> {
        let max = crate::sky::catalog::MAX_RADIUS_ARCSEC;
        if !(self.max_radius_arcsec > 0.0 && self.max_radius_arcsec <= max) {
            return Err(Invalid::new(
                "sky.max_radius_arcsec",
                format!("must be above 0 and at most {max}"),
            ));
        }
        let rows = crate::sandbox::manifest_bounds::CROSSMATCH_ROWS;
        if !(1..=rows).contains(&self.max_rows) {
            return Err(Invalid::new("sky.max_rows", format!("must be 1 to {rows}")));
        }
        if self.catalogs.len() > MAX_CATALOGS {
            return Err(Invalid::new(
                "sky.catalog",
                format!("{} catalogues; at most {MAX_CATALOGS}", self.catalogs.len()),
            ));
        }
        for (key, list) in [("sky.map", &self.maps), ("sky.watchlist", &self.watchlists)] {
            if list.len() > MAX_CATALOGS {
                return Err(Invalid::new(
                    key,
                    format!("{} entries; at most {MAX_CATALOGS}", list.len()),
                ));
            }
        }
        for (key, list) in [
            ("sky.catalog", &self.catalogs),
            ("sky.map", &self.maps),
            ("sky.watchlist", &self.watchlists),
        ] {
            for (i, c) in list.iter().enumerate() {
                if !crate::sky::is_catalog_name(&c.name) {
                    return Err(Invalid::new(
                        format!("{key}[{i}].name"),
                        format!(
                            "'{}' must be 1 to {} characters of a-z, 0-9, '_' and '-'",
                            crate::text::shown(&c.name, 80),
                            crate::sky::CATALOG_NAME_BYTES
                        ),
                    ));
                }
                if list[..i].iter().any(|o| o.name == c.name) {
                    return Err(Invalid::new(
                        format!("{key}[{i}].name"),
                        format!("'{}' is registered twice", c.name),
                    ));
                }
                if c.file.as_os_str().is_empty() {
                    return Err(Invalid::new(
                        format!("{key}[{i}].file"),
                        "is empty: give the file".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}
