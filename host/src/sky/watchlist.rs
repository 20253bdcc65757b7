//! Watchlists: a group's targets (name, position, radius), and which of
//! them an alert falls within (docs/design/sky.md, section 3).
//!
//! Owns: reading a list (CSV with a header `name,ra,dec,radius_arcsec`,
//! or a JSON array of objects with those keys), checking every target
//! (a name of printable text, a position, a radius within the cap), and
//! answering: the targets whose own radius holds the alert, nearest
//! first. The targets are held as an in-memory catalogue (the same cone
//! search as cross-matches, sorted by HEALPix cell), searched with the
//! list's largest radius, each match then kept by its own.
//!
//! Must never: allocate for a list past its bounds, or order matches by
//! anything but distance, then the list's order.

use std::path::Path;

use anyhow::{Context, bail};

use super::catalog::{Builder, Catalog, Column, ColumnType, Value};

/// A list file of more bytes is refused.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// A list of more targets is refused.
pub const MAX_TARGETS: usize = 1_000_000;
/// A target's name: 1 to this many bytes of printable text.
pub const MAX_NAME_BYTES: usize = 64;
/// The most targets given for one alert (the nearest).
pub const MAX_MATCHES: usize = 100;
/// The most targets in one HEALPix cell of depth [`DENSITY_DEPTH`] (3.4
/// arcminutes across): an alert's lookup reads the targets of its cell
/// and the cells around it, so this bounds the host's work per alert
/// (a list of 700,000 targets in one place once cost 200 ms per alert
/// there, outside any filter's budget).
pub const MAX_TARGETS_PER_CELL: usize = 1_000;
/// See [`MAX_TARGETS_PER_CELL`].
pub const DENSITY_DEPTH: u8 = 10;

/// A list of targets.
pub struct Watchlist {
    /// Columns `radius` (real) and `target` (the index in `names`).
    catalog: Catalog,
    names: Vec<String>,
    max_radius_arcsec: f64,
    /// Which file it was read from (see [`super::map::version_of`]).
    version: String,
}

impl std::fmt::Debug for Watchlist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Watchlist({} targets)", self.names.len())
    }
}

/// One target an alert falls within.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit<'a> {
    pub name: &'a str,
    pub ra: f64,
    pub dec: f64,
    /// Arcseconds from the alert.
    pub dist_arcsec: f64,
}

impl Watchlist {
    /// Reads `path`, each target's radius at most `max_radius_arcsec`.
    pub fn open(path: &Path, max_radius_arcsec: f64) -> anyhow::Result<Watchlist> {
        let bytes = super::catalog::read_bounded(path, MAX_FILE_BYTES, "a watchlist")?;
        Watchlist::parse(&bytes, max_radius_arcsec)
            .with_context(|| format!("watchlist {}", super::catalog::shown(path)))
    }

    /// [`Watchlist::open`] on bytes.
    pub fn parse(bytes: &[u8], max_radius_arcsec: f64) -> anyhow::Result<Watchlist> {
        let targets = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => json_targets(bytes)?,
            Some(b'{') => bail!(
                "a JSON watchlist is an array of objects with name, ra, dec and radius_arcsec \
                 ([{{...}}, ...]), not one object"
            ),
            _ => csv_targets(bytes)?,
        };
        if targets.is_empty() {
            bail!("no targets");
        }
        crowded(&targets)?;
        let mut builder = Builder::new(
            vec![
                Column {
                    name: "radius".into(),
                    kind: ColumnType::Real,
                },
                Column {
                    name: "target".into(),
                    kind: ColumnType::Integer,
                },
            ],
            "watchlist",
        )?;
        let mut names = Vec::with_capacity(targets.len());
        let mut largest: f64 = 0.0;
        for (i, (name, ra, dec, radius)) in targets.into_iter().enumerate() {
            let which = || format!("target {} ('{}')", i + 1, crate::text::shown(&name, 64));
            if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control)
            {
                bail!(
                    "{}: a name is 1 to {MAX_NAME_BYTES} bytes of printable text",
                    which()
                );
            }
            if !(ra.is_finite() && dec.is_finite() && (-90.0..=90.0).contains(&dec)) {
                bail!(
                    "{}: ra {ra}, dec {dec} is no position (degrees, dec within ±90)",
                    which()
                );
            }
            if !(radius > 0.0 && radius <= max_radius_arcsec) {
                bail!(
                    "{}: radius {radius} arcseconds; it must be above 0 and at most \
                     {max_radius_arcsec}",
                    which()
                );
            }
            largest = largest.max(radius);
            builder.push(
                ra,
                dec,
                &[Value::Real(radius), Value::Integer(i as i64)],
                which,
            )?;
            names.push(name);
        }
        Ok(Watchlist {
            catalog: builder.into_catalog("watchlist")?,
            names,
            max_radius_arcsec: largest,
            version: super::map::version_of(bytes),
        })
    }

    /// The targets whose own radius holds (`ra`, `dec`), nearest first
    /// (then in the list's order), at most [`MAX_MATCHES`].
    pub fn hits(&self, ra: f64, dec: f64) -> Vec<Hit<'_>> {
        let mut found: Vec<(f64, i64, u64)> = self
            .catalog
            .cone(ra, dec, self.max_radius_arcsec, usize::MAX)
            .into_iter()
            .filter_map(|m| {
                let radius = match self.catalog.value(0, m.row) {
                    Value::Real(r) => r,
                    Value::Integer(_) => return None,
                };
                let Value::Integer(target) = self.catalog.value(1, m.row) else {
                    return None;
                };
                (m.dist_arcsec <= radius).then_some((m.dist_arcsec, target, m.row))
            })
            .collect();
        found.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        found.truncate(MAX_MATCHES);
        found
            .into_iter()
            .map(|(dist_arcsec, target, row)| {
                let (ra, dec) = self.catalog.position(row);
                Hit {
                    name: &self.names[target as usize],
                    ra,
                    dec,
                    dist_arcsec,
                }
            })
            .collect()
    }

    /// Which file it was read from: the start of its bytes' sha256.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn targets(&self) -> usize {
        self.names.len()
    }

    /// The largest target radius, arcseconds.
    pub fn largest_radius(&self) -> f64 {
        self.max_radius_arcsec
    }
}

type Target = (String, f64, f64, f64);

/// Refuses a list with more than [`MAX_TARGETS_PER_CELL`] targets in one
/// cell, naming where (positions that are none are refused later,
/// naming the target).
fn crowded(targets: &[Target]) -> anyhow::Result<()> {
    let layer = cdshealpix::nested::get(DENSITY_DEPTH);
    let mut cells: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for (_, ra, dec, _) in targets {
        let Some((lon, lat)) = super::radians(*ra, *dec) else {
            continue;
        };
        let n = cells.entry(layer.hash(lon, lat)).or_default();
        *n += 1;
        if *n > MAX_TARGETS_PER_CELL {
            bail!(
                "more than {MAX_TARGETS_PER_CELL} targets within 3.4 arcminutes of ra {ra}, dec \
                 {dec}: every alert there would cost the host a look at each; merge them into \
                 one target with a wider radius"
            );
        }
    }
    Ok(())
}

fn csv_targets(bytes: &[u8]) -> anyhow::Result<Vec<Target>> {
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .context("no header row")?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for (i, h) in header.iter().enumerate() {
        if !["name", "ra", "dec", "radius_arcsec"].contains(&h.as_str()) {
            bail!(
                "a CSV watchlist's columns are name, ra, dec and radius_arcsec; column {} is '{}'",
                i + 1,
                crate::text::shown(h, 64)
            );
        }
        if header[..i].contains(h) {
            bail!("column '{h}' is given twice in the header");
        }
    }
    let at = |name: &str| header.iter().position(|h| h == name);
    let (Some(name), Some(ra), Some(dec), Some(radius)) =
        (at("name"), at("ra"), at("dec"), at("radius_arcsec"))
    else {
        bail!(
            "a CSV watchlist's header names the columns name, ra, dec and radius_arcsec (it has {})",
            crate::text::shown(&header.join(","), 200)
        );
    };
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        if out.len() >= MAX_TARGETS {
            bail!("more than {MAX_TARGETS} targets");
        }
        let record = record.with_context(|| format!("row {}", i + 2))?;
        let number = |c: usize, what: &str| -> anyhow::Result<f64> {
            let text = record.get(c).unwrap_or("").trim();
            text.parse().map_err(|_| {
                anyhow::anyhow!(
                    "row {}: {what} '{}' is not a number",
                    i + 2,
                    crate::text::shown(text, 40)
                )
            })
        };
        out.push((
            record.get(name).unwrap_or("").trim().to_string(),
            number(ra, "ra")?,
            number(dec, "dec")?,
            number(radius, "radius_arcsec")?,
        ));
    }
    Ok(out)
}

fn json_targets(bytes: &[u8]) -> anyhow::Result<Vec<Target>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct One {
        name: String,
        ra: f64,
        dec: f64,
        radius_arcsec: f64,
    }
    let all: Vec<One> = serde_json::from_slice(bytes)
        .context("a JSON watchlist is an array of objects with name, ra, dec and radius_arcsec")?;
    if all.len() > MAX_TARGETS {
        bail!("{} targets; at most {MAX_TARGETS}", all.len());
    }
    Ok(all
        .into_iter()
        .map(|t| (t.name, t.ra, t.dec, t.radius_arcsec))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_gets_the_targets_whose_own_radius_holds_it_nearest_first() {
        let list = Watchlist::parse(
            b"name,ra,dec,radius_arcsec\n\
              far,10.0,20.002,30\n\
              near,10.0,20.0005,5\n\
              tight,10.0,20.001,2\n\
              other,200,-30,60\n",
            60.0,
        )
        .unwrap();
        assert_eq!(list.targets(), 4);
        let names: Vec<&str> = list.hits(10.0, 20.0).iter().map(|h| h.name).collect();
        // near at 1.8" (within 5), far at 7.2" (within 30); tight at 3.6"
        // is beyond its own 2".
        assert_eq!(names, ["near", "far"]);
        let json = br#"[{"name":"a","ra":0.0,"dec":0.0,"radius_arcsec":10}]"#;
        let list = Watchlist::parse(json, 60.0).unwrap();
        assert_eq!(list.hits(359.999, 0.0).len(), 1, "across RA 0/360");
        assert!(list.hits(f64::NAN, 0.0).is_empty());
    }

    #[test]
    fn bad_lists_are_refused_naming_the_target() {
        let refused = |text: &str, why: &str| {
            let err = format!("{:#}", Watchlist::parse(text.as_bytes(), 60.0).unwrap_err());
            assert!(err.contains(why), "{err} lacks {why}");
        };
        refused("name,ra,dec\nx,1,2\n", "header names the columns");
        refused(
            "name,ra,dec,radius_arcsec\nx,1,95,2\n",
            "target 1 ('x'): ra 1, dec 95",
        );
        refused("name,ra,dec,radius_arcsec\nx,nan,5,2\n", "is no position");
        refused(
            "name,ra,dec,radius_arcsec\nx,1,5,61\n",
            "radius 61 arcseconds",
        );
        refused(
            "name,ra,dec,radius_arcsec\nx,1,5,0\n",
            "radius 0 arcseconds",
        );
        refused(
            "name,ra,dec,radius_arcsec\n\"a\x1b[2J\",1,5,1\n",
            "printable text",
        );
        refused("name,ra,dec,radius_arcsec\n,1,5,1\n", "printable text");
        refused(
            "name,ra,dec,radius_arcsec\nx,one,5,1\n",
            "row 2: ra 'one' is not a number",
        );
        refused("name,ra,dec,radius_arcsec\n", "no targets");
        refused(
            "name,ra,dec,radius_arcsec,ra\nx,1,5,1,2\n",
            "column 'ra' is given twice",
        );
        refused(
            "name,ra,dec,radius_arcsec,colour\nx,1,5,1,red\n",
            "column 5 is 'colour'",
        );
        refused(r#"{"name":"x","ra":1}"#, "not one object");
        // Crowded: every alert there would read each of them.
        let mut crowd = String::from("name,ra,dec,radius_arcsec\n");
        for i in 0..=MAX_TARGETS_PER_CELL {
            crowd.push_str(&format!("t{i},10,20,60\n"));
        }
        refused(
            &crowd,
            "more than 1000 targets within 3.4 arcminutes of ra 10, dec 20",
        );
        crowd.truncate(crowd.trim_end().rfind('\n').unwrap() + 1);
        assert_eq!(
            Watchlist::parse(crowd.as_bytes(), 60.0).unwrap().targets(),
            1000
        );
        refused(r#"[{"name":"x","ra":1}]"#, "array of objects");
        refused(
            r#"[{"name":"x","ra":1,"dec":2,"radius_arcsec":1,"extra":0}]"#,
            "array of objects",
        );
    }
}
