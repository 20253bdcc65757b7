//! Cross-matches: the catalogues the operator registered, the caps on
//! what a filter may ask of them, and the cones a set of filters asks
//! for, run once per alert (docs/design/sky.md).
//!
//! Owns: which catalogue a name means, the refusals of what a filter
//! asks and the host cannot give, and the `xmatch.<name>.<column>`
//! values of one alert.
//!
//! Must never: run a cone a loaded filter did not ask for, run the same
//! cone twice for one alert, or order rows by anything but distance, then
//! row (the same answer on every machine).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::catalog::{Catalog, Match, Value};
use crate::decode::{FieldPath, FieldValue, XMATCH_PREFIX};
use crate::sandbox::Crossmatch;

/// The operator's caps on a cross-match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Caps {
    /// The widest cone a filter may ask for, arcseconds.
    pub max_radius_arcsec: f64,
    /// The most rows a filter may ask for per cone.
    pub max_rows: u32,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            max_radius_arcsec: 60.0,
            max_rows: 20,
        }
    }
}

/// Where the catalogues come from, as refusals name it.
pub const FLAG_SETTING: &str = "--catalog NAME=FILE";
/// The same, in a serve config.
pub const CONFIG_SETTING: &str = "a [[sky.catalog]] entry of the config";
/// The same, in `run --config`: either.
pub const BOTH_SETTING: &str = "--catalog NAME=FILE or a [[sky.catalog]] entry of the config";

/// The catalogues and sky maps the host has, by name, and the caps.
#[derive(Clone)]
pub struct Sky {
    catalogs: BTreeMap<String, Arc<Catalog>>,
    maps: BTreeMap<String, Arc<super::map::SkyMap>>,
    /// Maps and watchlists by name: the operator's under their name, a
    /// group's under `<group>/<name>` (see [`Sky::add_group_map`]).
    lists: BTreeMap<String, Arc<super::watchlist::Watchlist>>,
    caps: Caps,
    /// What registers another catalogue (`FLAG_SETTING`, `CONFIG_SETTING`).
    setting: &'static str,
    /// Whether groups upload maps and watchlists here (serve with
    /// uploads): one may be missing now and come, or expire, later, so a
    /// group's filter naming one it lacks is not refused when it loads
    /// (the upload was checked against what the group had), and reads
    /// it absent meanwhile.
    pub uploads: bool,
}

impl Default for Sky {
    fn default() -> Sky {
        Sky {
            catalogs: BTreeMap::new(),
            maps: BTreeMap::new(),
            lists: BTreeMap::new(),
            caps: Caps::default(),
            setting: FLAG_SETTING,
            uploads: false,
        }
    }
}

impl std::fmt::Debug for Sky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sky")
            .field("catalogs", &self.catalogs.keys().collect::<Vec<_>>())
            .field("maps", &self.maps.keys().collect::<Vec<_>>())
            .field("watchlists", &self.lists.keys().collect::<Vec<_>>())
            .field("caps", &self.caps)
            .finish()
    }
}

impl Sky {
    /// No catalogue yet, these caps; `setting` is what refusals name as
    /// the way to add one.
    pub fn new(caps: Caps, setting: &'static str) -> Sky {
        Sky {
            catalogs: BTreeMap::new(),
            maps: BTreeMap::new(),
            lists: BTreeMap::new(),
            caps,
            setting,
            uploads: false,
        }
    }

    /// Reads `file` as sky map `name` (a MOC or a probability map); the
    /// error names both.
    pub fn add_map(&mut self, name: &str, file: &Path) -> anyhow::Result<()> {
        insert_named(&mut self.maps, "map", name, || {
            super::map::SkyMap::open(file)
        })
    }

    /// Reads `file` as watchlist `name` (each target's radius within
    /// the cap on cones); the error names both.
    pub fn add_watchlist(&mut self, name: &str, file: &Path) -> anyhow::Result<()> {
        let cap = self.caps.max_radius_arcsec;
        insert_named(&mut self.lists, "watchlist", name, || {
            super::watchlist::Watchlist::open(file, cap)
        })
    }

    /// Adds group `group`'s sky map `name` (checked by the upload),
    /// replacing the one it had under that name. Only the group's filters
    /// see it, before an operator's map of the same name.
    pub fn add_group_map(&mut self, group: &str, name: &str, map: Arc<super::map::SkyMap>) {
        self.maps.insert(format!("{group}/{name}"), map);
    }

    /// [`Sky::add_group_map`] for a watchlist.
    pub fn add_group_watchlist(
        &mut self,
        group: &str,
        name: &str,
        list: Arc<super::watchlist::Watchlist>,
    ) {
        self.lists.insert(format!("{group}/{name}"), list);
    }

    /// The watchlist called `name` as a filter of `group` (none: the
    /// operator's) sees it, with its key: the group's own, else the
    /// operator's.
    pub fn watchlist_for(
        &self,
        group: Option<&str>,
        name: &str,
    ) -> Option<(&str, &Arc<super::watchlist::Watchlist>)> {
        scoped(&self.lists, group, name)
    }

    /// The operator's watchlist called `name`.
    pub fn watchlist(&self, name: &str) -> Option<&Arc<super::watchlist::Watchlist>> {
        self.lists.get(name).filter(|_| !name.contains('/'))
    }

    /// The watchlists a filter of `group` (none: the operator's) sees,
    /// by the names it reads them by.
    pub fn watchlists<'a>(
        &'a self,
        group: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a Arc<super::watchlist::Watchlist>)> {
        seen_by(&self.lists, group)
    }

    /// The sky map called `name` as a filter of `group` sees it (see
    /// [`Sky::watchlist_for`]).
    pub fn map_for(
        &self,
        group: Option<&str>,
        name: &str,
    ) -> Option<(&str, &Arc<super::map::SkyMap>)> {
        scoped(&self.maps, group, name)
    }

    /// The operator's sky map called `name`.
    pub fn map(&self, name: &str) -> Option<&Arc<super::map::SkyMap>> {
        self.maps.get(name).filter(|_| !name.contains('/'))
    }

    /// The sky maps a filter of `group` sees, by the names it reads them by.
    pub fn maps<'a>(
        &'a self,
        group: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a Arc<super::map::SkyMap>)> {
        seen_by(&self.maps, group)
    }

    /// The versions of the maps and watchlists `fields` read, as a
    /// filter of `group` sees them: `map.gw=3f2a9c01b2d4,watch.mine=...`
    /// (each file's [`super::map::version_of`]); none when they read none.
    pub fn versions_read(&self, group: Option<&str>, fields: &[FieldPath]) -> Option<String> {
        let mut read: Vec<String> = Vec::new();
        for f in fields {
            let found = if let Some((name, _)) = super::plan::split_map(&f.text) {
                self.map_for(group, name)
                    .map(|(_, m)| format!("map.{name}={}", m.version()))
            } else if let Some(rest) = f.text.strip_prefix(crate::decode::WATCH_PREFIX) {
                rest.split_once('.').and_then(|(name, _)| {
                    self.watchlist_for(group, name)
                        .map(|(_, l)| format!("watch.{name}={}", l.version()))
                })
            } else {
                None
            };
            if let Some(v) = found.filter(|v| !read.contains(v)) {
                read.push(v);
            }
        }
        (!read.is_empty()).then(|| read.join(","))
    }

    /// What adds a sky map, as refusals say it.
    pub(super) fn map_setting(&self) -> &'static str {
        match self.setting {
            FLAG_SETTING => "--map NAME=FILE",
            CONFIG_SETTING => "a [[sky.map]] entry of the config",
            _ => "--map NAME=FILE or a [[sky.map]] entry of the config",
        }
    }

    /// What adds a watchlist, as refusals say it.
    pub(super) fn watchlist_setting(&self) -> &'static str {
        match self.setting {
            FLAG_SETTING => "--watchlist NAME=FILE",
            CONFIG_SETTING => "a [[sky.watchlist]] entry of the config",
            _ => "--watchlist NAME=FILE or a [[sky.watchlist]] entry of the config",
        }
    }

    /// Opens each `(name, file)`; an error names the catalogue and file.
    pub fn open<'a>(
        catalogs: impl IntoIterator<Item = (&'a str, &'a Path)>,
        caps: Caps,
        setting: &'static str,
    ) -> anyhow::Result<Sky> {
        let mut sky = Sky::new(caps, setting);
        for (name, file) in catalogs {
            sky.add(name, file)?;
        }
        Ok(sky)
    }

    /// Opens `file` as catalogue `name`; the error names both.
    pub fn add(&mut self, name: &str, file: &Path) -> anyhow::Result<()> {
        insert_named(&mut self.catalogs, "catalogue", name, || {
            Catalog::open(file)
        })
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// The catalogue called `name`.
    pub fn catalog(&self, name: &str) -> Option<&Arc<Catalog>> {
        self.catalogs.get(name)
    }

    /// The catalogues, by name.
    pub fn catalogs(&self) -> impl Iterator<Item = (&str, &Arc<Catalog>)> {
        self.catalogs.iter().map(|(n, c)| (n.as_str(), c))
    }

    /// Why the host cannot give what a filter asks: each cross-match
    /// whose catalogue it does not have or that is over a cap, and each
    /// `xmatch.*` field naming a column its catalogue does not have, as
    /// (the thing, a sentence naming it and what exists). The manifest's
    /// own checks (names, bounds, that each field names a declared
    /// cross-match) were made at load.
    pub fn refusals(
        &self,
        group: Option<&str>,
        crossmatches: &[Crossmatch],
        fields: &[FieldPath],
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for f in fields {
            if let Some(why) = super::plan::map_refusal(self, group, f)
                .or_else(|| super::plan::watch_refusal(self, group, f))
            {
                out.push((f.text.clone(), why));
            }
        }
        for c in crossmatches {
            let Some(catalog) = self.catalogs.get(&c.catalog) else {
                out.push((
                    c.catalog.clone(),
                    format!(
                        "cross-match '{}' asks for catalogue '{}', which this host does not have \
                         ({}; {} registers one)",
                        c.name,
                        c.catalog,
                        what_it_has(self.catalogs.keys().map(String::as_str)),
                        self.setting
                    ),
                ));
                continue;
            };
            if c.radius_arcsec > self.caps.max_radius_arcsec {
                out.push((
                    c.name.clone(),
                    format!(
                        "cross-match '{}' asks for a cone of {} arcseconds; the operator allows \
                         at most {}",
                        c.name, c.radius_arcsec, self.caps.max_radius_arcsec
                    ),
                ));
            }
            if c.max_rows > self.caps.max_rows {
                out.push((
                    c.name.clone(),
                    format!(
                        "cross-match '{}' asks for {} rows; the operator allows at most {}",
                        c.name, c.max_rows, self.caps.max_rows
                    ),
                ));
            }
            for f in fields {
                let Some((name, column)) = split(&f.text) else {
                    continue;
                };
                // An optional column the catalogue lacks is given absent,
                // as an optional path a schema lacks is.
                if f.optional {
                    continue;
                }
                if name != c.name || Column::of(catalog, column).is_some() {
                    continue;
                }
                let mut names = vec!["dist", "ra", "dec"];
                names.extend(catalog.columns().iter().map(|c| c.name.as_str()));
                out.push((
                    f.text.clone(),
                    format!(
                        "declared field '{}': catalogue '{}' has no column '{}' (it gives {})",
                        crate::text::shown(&f.text, 256),
                        c.catalog,
                        crate::text::shown(column, 64),
                        names.join(", ")
                    ),
                ));
            }
        }
        out
    }
}

/// Adds what `open` reads under `name` to `table`, refusing a name that
/// is not one or is taken; each error names the `kind` and the name.
fn insert_named<T>(
    table: &mut BTreeMap<String, Arc<T>>,
    kind: &str,
    name: &str,
    open: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<()> {
    if !super::is_catalog_name(name) {
        anyhow::bail!(
            "{kind} name '{}' must be 1 to {} characters of a-z, 0-9, '_' and '-'",
            crate::text::shown(name, 80),
            super::CATALOG_NAME_BYTES
        );
    }
    if table.contains_key(name) {
        anyhow::bail!("{kind} '{name}' is given twice");
    }
    let opened = open().map_err(|e| anyhow::anyhow!("{kind} '{name}': {e:#}"))?;
    table.insert(name.to_string(), Arc::new(opened));
    Ok(())
}

/// What a filter of `group` finds under `name`: the group's own, else
/// the operator's; with the key it is held under.
fn scoped<'a, T>(
    table: &'a BTreeMap<String, Arc<T>>,
    group: Option<&str>,
    name: &str,
) -> Option<(&'a str, &'a Arc<T>)> {
    if name.contains('/') {
        return None;
    }
    group
        .and_then(|g| table.get_key_value(&format!("{g}/{name}")))
        .or_else(|| table.get_key_value(name))
        .map(|(k, v)| (k.as_str(), v))
}

/// What a filter of `group` sees of `table`, by the names it reads:
/// the operator's and the group's own (which hide an operator's of the
/// same name).
fn seen_by<'a, T>(
    table: &'a BTreeMap<String, Arc<T>>,
    group: Option<&'a str>,
) -> impl Iterator<Item = (&'a str, &'a Arc<T>)> {
    table
        .iter()
        .filter_map(move |(k, v)| match k.split_once('/') {
            None => {
                let hidden = group.is_some_and(|g| table.contains_key(&format!("{g}/{k}")));
                (!hidden).then_some((k.as_str(), v))
            }
            Some((g, n)) => (Some(g) == group).then_some((n, v)),
        })
}

/// "it has none", or "it has" and the names, as refusals say what exists.
pub(super) fn what_it_has<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "it has none".to_string()
    } else {
        format!("it has {}", names.join(", "))
    }
}

/// A `xmatch.<name>.<column>` path's two parts.
pub fn split(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix(XMATCH_PREFIX)?.split_once('.')
}

/// What one `xmatch.*` field gives per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    /// Distance from the alert, arcseconds.
    Dist,
    Ra,
    Dec,
    /// The catalogue's column at this index.
    Catalog(usize),
}

impl Column {
    fn of(catalog: &Catalog, name: &str) -> Option<Column> {
        Some(match name {
            "dist" => Column::Dist,
            "ra" => Column::Ra,
            "dec" => Column::Dec,
            _ => Column::Catalog(catalog.columns().iter().position(|c| c.name == name)?),
        })
    }
}

/// One cone: a catalogue, a radius and a row count.
struct Cone {
    catalog: Arc<Catalog>,
    /// Its name, for telling cones apart.
    name: String,
    radius_arcsec: f64,
    max_rows: usize,
}

/// The cones a set of filters asks for, each once, and the columns read
/// from them: an alert's `xmatch.*` values, in the order
/// [`CrossmatchPlan::slot`] first gave them out.
#[derive(Default)]
pub struct CrossmatchPlan {
    cones: Vec<Cone>,
    /// Per value: its cone and column.
    columns: Vec<(usize, Column)>,
    /// Per cone, the last alert's rows (kept to reuse the allocation).
    found: Vec<Vec<Match>>,
}

impl CrossmatchPlan {
    /// The index, among the plan's values, of field `path` of a filter
    /// whose manifest declares `crossmatches`; none when `path` is not a
    /// `xmatch.*` field. The host must have what it names (a filter
    /// [`Sky::refusals`] refuses is never planned); if it has not, the
    /// value is `Missing`, which fails the filter's alert naming it.
    pub fn slot(&mut self, sky: &Sky, crossmatches: &[Crossmatch], path: &str) -> Option<usize> {
        let (name, column) = split(path)?;
        let wanted = crossmatches.iter().find(|c| c.name == name);
        let resolved = wanted.and_then(|c| {
            let catalog = sky.catalog(&c.catalog)?;
            Some((c, catalog, Column::of(catalog, column)?))
        });
        let Some((c, catalog, column)) = resolved else {
            // Planned as a value never filled: see `values`.
            self.columns.push((usize::MAX, Column::Dist));
            return Some(self.columns.len() - 1);
        };
        let max_rows = c.max_rows as usize;
        let cone = match self.cones.iter().position(|k| {
            k.name == c.catalog && k.radius_arcsec == c.radius_arcsec && k.max_rows == max_rows
        }) {
            Some(i) => i,
            None => {
                self.cones.push(Cone {
                    catalog: catalog.clone(),
                    name: c.catalog.clone(),
                    radius_arcsec: c.radius_arcsec,
                    max_rows,
                });
                self.found.push(Vec::new());
                self.cones.len() - 1
            }
        };
        Some(
            match self.columns.iter().position(|&k| k == (cone, column)) {
                Some(i) => i,
                None => {
                    self.columns.push((cone, column));
                    self.columns.len() - 1
                }
            },
        )
    }

    /// How many values [`CrossmatchPlan::append`] appends.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Runs each cone once around `position` (degrees) and appends every
    /// planned value to `values`: a column per field, one entry per row,
    /// nearest first (a NaN, a value not measured, is a null entry). An
    /// alert with no position gets absent values; one with no rows, empty
    /// columns.
    pub fn append(&mut self, position: Option<(f64, f64)>, values: &mut Vec<FieldValue>) {
        if self.columns.is_empty() {
            return;
        }
        let Some((ra, dec)) = position.filter(|&(ra, dec)| super::radians(ra, dec).is_some())
        else {
            values.extend(self.columns.iter().map(|&(cone, _)| {
                if cone == usize::MAX {
                    FieldValue::Missing
                } else {
                    FieldValue::Absent
                }
            }));
            return;
        };
        for (cone, found) in self.cones.iter().zip(&mut self.found) {
            *found = cone
                .catalog
                .cone(ra, dec, cone.radius_arcsec, cone.max_rows);
        }
        for &(cone, column) in &self.columns {
            if cone == usize::MAX {
                values.push(FieldValue::Missing);
                continue;
            }
            let catalog = &self.cones[cone].catalog;
            let rows = &self.found[cone];
            let real = |x: f64| (!x.is_nan()).then_some(x);
            values.push(match column {
                Column::Dist => {
                    FieldValue::Reals(rows.iter().map(|m| Some(m.dist_arcsec)).collect())
                }
                Column::Ra => FieldValue::Reals(
                    rows.iter()
                        .map(|m| real(catalog.position(m.row).0))
                        .collect(),
                ),
                Column::Dec => FieldValue::Reals(
                    rows.iter()
                        .map(|m| real(catalog.position(m.row).1))
                        .collect(),
                ),
                Column::Catalog(i) => match catalog.columns()[i].kind {
                    super::catalog::ColumnType::Integer => FieldValue::Integers(
                        rows.iter()
                            .map(|m| match catalog.value(i, m.row) {
                                Value::Integer(x) => Some(x),
                                Value::Real(_) => None,
                            })
                            .collect(),
                    ),
                    _ => FieldValue::Reals(
                        rows.iter()
                            .map(|m| match catalog.value(i, m.row) {
                                Value::Real(x) => real(x),
                                Value::Integer(_) => None,
                            })
                            .collect(),
                    ),
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sky::catalog::{Builder, ColumnType};

    /// A catalogue of three stars around (10, 20): 1" east (mag 12), 4"
    /// north (mag not measured) and 30" south (mag 8).
    fn sky(dir: &Path) -> Sky {
        let columns = vec![
            super::super::catalog::Column {
                name: "id".into(),
                kind: ColumnType::Integer,
            },
            super::super::catalog::Column {
                name: "mag".into(),
                kind: ColumnType::Real32,
            },
        ];
        let mut b = Builder::new(columns, "test").unwrap();
        let east = 1.0 / 3600.0 / 20f64.to_radians().cos();
        b.push(
            10.0 + east,
            20.0,
            &[Value::Integer(1), Value::Real(12.0)],
            String::new,
        )
        .unwrap();
        b.push(
            10.0,
            20.0 + 4.0 / 3600.0,
            &[Value::Integer(2), Value::Real(f64::NAN)],
            String::new,
        )
        .unwrap();
        b.push(
            10.0,
            20.0 - 30.0 / 3600.0,
            &[Value::Integer(3), Value::Real(8.0)],
            String::new,
        )
        .unwrap();
        let file = dir.join("t.bpcat");
        b.write(&file).unwrap();
        Sky::open([("t", file.as_path())], Caps::default(), FLAG_SETTING).unwrap()
    }

    fn xm(name: &str, radius: f64, rows: u32) -> Crossmatch {
        Crossmatch {
            name: name.into(),
            catalog: "t".into(),
            radius_arcsec: radius,
            max_rows: rows,
        }
    }

    #[test]
    fn each_cone_runs_once_for_every_filter_that_asks_and_rows_come_nearest_first() {
        let dir = tempfile::tempdir().unwrap();
        let sky = sky(dir.path());
        let mut plan = CrossmatchPlan::default();
        // Two filters ask for the same cone under other names, a third
        // for a wider one.
        let a = [xm("near", 10.0, 5)];
        let b = [xm("stars", 10.0, 5)];
        let c = [xm("wide", 60.0, 5)];
        let slots = [
            plan.slot(&sky, &a, "xmatch.near.dist"),
            plan.slot(&sky, &a, "xmatch.near.id"),
            plan.slot(&sky, &b, "xmatch.stars.dist"),
            plan.slot(&sky, &b, "xmatch.stars.mag"),
            plan.slot(&sky, &c, "xmatch.wide.id"),
            plan.slot(&sky, &c, "candidate.ra"),
        ];
        assert_eq!(slots, [Some(0), Some(1), Some(0), Some(2), Some(3), None]);
        assert_eq!(plan.cones.len(), 2);
        let mut values = Vec::new();
        plan.append(Some((10.0, 20.0)), &mut values);
        assert_eq!(values.len(), 4);
        let FieldValue::Reals(dist) = &values[0] else {
            panic!("{values:?}")
        };
        assert_eq!(dist.len(), 2);
        assert!((dist[0].unwrap() - 1.0).abs() < 1e-6 && (dist[1].unwrap() - 4.0).abs() < 1e-6);
        assert_eq!(values[1], FieldValue::Integers(vec![Some(1), Some(2)]));
        // A magnitude not measured is a null entry.
        assert_eq!(values[2], FieldValue::Reals(vec![Some(12.0), None]));
        assert_eq!(
            values[3],
            FieldValue::Integers(vec![Some(1), Some(2), Some(3)])
        );
        // No position: absent; far from every star: empty columns.
        values.clear();
        plan.append(None, &mut values);
        assert!(values.iter().all(|v| *v == FieldValue::Absent));
        values.clear();
        plan.append(Some((200.0, -40.0)), &mut values);
        assert_eq!(values[1], FieldValue::Integers(Vec::new()));
    }

    #[test]
    fn refusals_name_the_catalogue_column_or_cap_and_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let sky = sky(dir.path());
        let field = |p: &str| FieldPath::parse(p).unwrap();
        assert!(
            sky.refusals(None, &[xm("s", 60.0, 20)], &[field("xmatch.s.mag")])
                .is_empty()
        );
        let mut other = xm("s", 10.0, 5);
        other.catalog = "gaia".into();
        let why = |c: Crossmatch, f: &str| {
            sky.refusals(None, &[c], &[field(f)])
                .into_iter()
                .map(|(_, w)| w)
                .collect::<Vec<_>>()
                .join("; ")
        };
        assert_eq!(
            why(other, "xmatch.s.mag"),
            "cross-match 's' asks for catalogue 'gaia', which this host does not have (it has t; \
             --catalog NAME=FILE registers one)"
        );
        assert_eq!(
            why(xm("s", 10.0, 5), "xmatch.s.gmag"),
            "declared field 'xmatch.s.gmag': catalogue 't' has no column 'gmag' (it gives dist, \
             ra, dec, id, mag)"
        );
        assert!(why(xm("s", 61.0, 5), "xmatch.s.id").contains("the operator allows at most 60"));
        assert!(why(xm("s", 10.0, 21), "xmatch.s.id").contains("the operator allows at most 20"));
    }
}
