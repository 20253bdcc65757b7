//! Sky maps: regions of the sky (IVOA MOCs: survey footprints) and
//! probability maps (the multi-order and the flat, single-order HEALPix
//! maps gravitational-wave pipelines publish), asked at one position
//! (docs/design/sky.md, section 3).
//!
//! Both are held the same way: sorted, disjoint ranges of nested HEALPix
//! cells at depth 29 (about 0.4 milliarcseconds), so that one binary
//! search answers whether a position is inside, and, for a probability
//! map, its density and the smallest credible region holding it.
//!
//! Owns: reading MOCs (FITS in both orderings, JSON, ASCII),
//! multi-order maps (their `UNIQ` and `PROBDENSITY` columns) and flat
//! maps (a `PROB` column, `NSIDE`, `RING` or `NESTED`, every pixel or a
//! `PIXEL` list; four equal siblings held as their parent), with a
//! small FITS table reader of its own: every count checked against the
//! file's length before anything is allocated, every cell against the
//! sphere, a probability map's cells disjoint, its densities numbers and
//! not negative, summing to 1; an empty region refused. (The CDS `moc`
//! crate reads these formats too, but trusts a file's header: a crafted
//! 8 KB file made it ask for 16 PB.) HEALPix arithmetic comes from
//! `cdshealpix`.
//!
//! Must never: allocate what a file's header claims before checking it
//! against the file's length, or answer differently on two machines.

use std::ops::Range;
use std::path::Path;

use anyhow::{Context, bail};

use super::radians;

/// The depth every map's cells are held at.
const DEPTH: u8 = 29;
/// The cells at [`DEPTH`]: 12 * 4^29.
const CELLS: u64 = 12 << 58;
/// A map file of more bytes is refused (the real BAYESTAR map is 0.6 MB,
/// the Legacy Surveys footprint 0.4 MB).
pub const MAX_FILE_BYTES: u64 = 128 << 20;
/// A map of more ranges or cells is refused (held: 16 bytes a range, 40
/// with a probability map's levels).
pub const MAX_RANGES: usize = 4_000_000;
/// The credible level `map.<name>.inside` means for a probability map.
pub const INSIDE_LEVEL: f64 = 0.9;
/// How far from 1 a probability map's total may be.
const TOTAL_TOLERANCE: f64 = 0.01;

/// What a map answers at a position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    /// Inside the MOC; for a probability map, inside its 90 % region.
    pub inside: bool,
    /// Probability per square degree there (probability maps only).
    pub prob: Option<f64>,
    /// The smallest credible level whose region holds the position: the
    /// densest cell's own probability at the map's peak, 1 outside it
    /// (probability maps only).
    pub credible: Option<f64>,
}

/// A region or probability map, held as ranges at depth 29.
pub struct SkyMap {
    /// Sorted, disjoint cell ranges.
    ranges: Vec<Range<u64>>,
    /// For a probability map, per range: its density (per square degree),
    /// its credible level, and whether it is in the 90 % region.
    levels: Option<Vec<(f64, f64, bool)>>,
    /// What the file was: `MOC (FITS)`, `multi-order sky map`, ...
    kind: String,
    /// The fraction of the sky it covers (a region), or of its 90 %
    /// region (a probability map), in square degrees.
    area_deg2: f64,
    /// Which file it was read from (see [`version_of`]).
    version: String,
}

/// A file's version as outputs' headers name it: the first 12 hex
/// digits of its sha256 (a map or watchlist replaced by another file
/// gets another).
pub fn version_of(bytes: &[u8]) -> String {
    crate::sandbox::sha256_hex(bytes)[..12].to_string()
}

/// Square degrees of the whole sky.
const SKY_DEG2: f64 = 41_252.961_249_419_27;

impl std::fmt::Debug for SkyMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SkyMap({}, {} ranges)", self.kind, self.ranges.len())
    }
}

impl SkyMap {
    /// Reads `path`: a MOC (FITS, JSON or ASCII), a multi-order
    /// probability map (FITS with `ORDERING = 'NUNIQ'` and a
    /// `PROBDENSITY` column) or a flat one (FITS with `ORDERING = 'RING'`
    /// or `'NESTED'`, `NSIDE` and a `PROB` column), told apart by their
    /// contents.
    pub fn open(path: &Path) -> anyhow::Result<SkyMap> {
        let bytes = super::catalog::read_bounded(path, MAX_FILE_BYTES, "a map file")?;
        SkyMap::parse(&bytes).with_context(|| {
            format!(
                "{} is not a sky map this host reads (an IVOA MOC in FITS, JSON or ASCII, or a \
                 multi-order or flat HEALPix probability map in FITS)",
                super::catalog::shown(path)
            )
        })
    }

    /// [`SkyMap::open`] on bytes.
    pub fn parse(bytes: &[u8]) -> anyhow::Result<SkyMap> {
        let mut map = SkyMap::read(bytes)?;
        map.version = version_of(bytes);
        Ok(map)
    }

    fn read(bytes: &[u8]) -> anyhow::Result<SkyMap> {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            bail!("gzip-compressed: decompress it first (`gunzip FILE`)");
        }
        if bytes.starts_with(b"SIMPLE  =") {
            let table = fits::Table::read(bytes)?;
            if table.column("PROBDENSITY").is_some() {
                return probability_map(&table);
            }
            if is_flat(&table) {
                return flat_map(&table);
            }
            return region(moc_fits(&table)?, "MOC (FITS)");
        }
        let text = std::str::from_utf8(bytes).context("neither FITS nor text")?;
        if text.trim_start().starts_with('{') {
            return region(moc_json(text)?, "MOC (JSON)");
        }
        region(moc_ascii(text)?, "MOC (ASCII)")
    }

    /// What the map says at (`ra`, `dec`), degrees; outside for a
    /// position that is none.
    pub fn at(&self, ra: f64, dec: f64) -> Answer {
        let outside = Answer {
            inside: false,
            prob: self.levels.as_ref().map(|_| 0.0),
            credible: self.levels.as_ref().map(|_| 1.0),
        };
        let Some((lon, lat)) = radians(ra, dec) else {
            return outside;
        };
        let cell = cdshealpix::nested::hash(DEPTH, lon, lat);
        // The last range starting at or before the cell.
        let i = self.ranges.partition_point(|r| r.start <= cell);
        if i == 0 || self.ranges[i - 1].end <= cell {
            return outside;
        }
        match &self.levels {
            None => Answer {
                inside: true,
                prob: None,
                credible: None,
            },
            Some(levels) => {
                let (prob, credible, inside) = levels[i - 1];
                Answer {
                    inside,
                    prob: Some(prob),
                    credible: Some(credible),
                }
            }
        }
    }

    /// Whether it is a probability map (it has `prob` and `credible`).
    /// Which file it was read from: the start of its bytes' sha256.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn is_probability(&self) -> bool {
        self.levels.is_some()
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The ranges (cells of depth 29) it holds.
    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }

    /// Square degrees: the region's, or the 90 % region's.
    pub fn area_deg2(&self) -> f64 {
        self.area_deg2
    }
}

/// Cells gathered from a MOC, as ranges at depth 29, bounded as they
/// come.
#[derive(Default)]
struct Cells(Vec<Range<u64>>);

impl Cells {
    /// Cells `first..=last` at `depth`.
    fn push(&mut self, depth: u64, first: u64, last: u64) -> anyhow::Result<()> {
        if depth > u64::from(DEPTH) {
            bail!("a cell of depth {depth}; a MOC's cells are of depth 0 to {DEPTH}");
        }
        let shift = 2 * (u64::from(DEPTH) - depth);
        let count = 12u64 << (2 * depth);
        if first > last || last >= count {
            bail!(
                "cells {first} to {last} at depth {depth}: not cells of the sphere (0 to {})",
                count - 1
            );
        }
        if self.0.len() >= MAX_RANGES {
            bail!("more than {MAX_RANGES} cells or ranges");
        }
        self.0.push((first << shift)..((last + 1) << shift));
        Ok(())
    }

    /// A range at depth 29, `[start, end)`.
    fn push_range(&mut self, start: u64, end: u64) -> anyhow::Result<()> {
        if start >= end || end > CELLS {
            bail!("a range [{start}, {end}) that is empty or past the sphere's cells");
        }
        if self.0.len() >= MAX_RANGES {
            bail!("more than {MAX_RANGES} cells or ranges");
        }
        self.0.push(start..end);
        Ok(())
    }

    /// Sorted, overlaps and neighbours merged (a MOC is a union of
    /// cells); an empty one is refused: it would say "outside"
    /// everywhere, which a malformed file must not pass for.
    fn into_ranges(mut self) -> anyhow::Result<Vec<Range<u64>>> {
        self.0.sort_by_key(|r| (r.start, r.end));
        let mut out: Vec<Range<u64>> = Vec::with_capacity(self.0.len());
        for r in self.0 {
            match out.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => out.push(r),
            }
        }
        if out.is_empty() {
            bail!("it holds no cell: a region covering nothing");
        }
        Ok(out)
    }
}

fn region(ranges: Vec<Range<u64>>, kind: &str) -> anyhow::Result<SkyMap> {
    let cells: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    Ok(SkyMap {
        version: String::new(),
        area_deg2: SKY_DEG2 * cells as f64 / CELLS as f64,
        ranges,
        levels: None,
        kind: kind.to_string(),
    })
}

/// An IVOA MOC in FITS (1.x: `NUNIQ`; 2.0: `NUNIQ` or `RANGE`), read
/// from its one integer column after [`fits::Table::read`] checked that
/// the table fits in the file.
fn moc_fits(table: &fits::Table) -> anyhow::Result<Vec<Range<u64>>> {
    if let Some(dim) = table.keyword("MOCDIM")
        && dim != "SPACE"
    {
        bail!(
            "a MOC of {}, not of the sky (MOCDIM 'SPACE')",
            crate::text::shown(&dim, 16)
        );
    }
    let (column, bits) = table
        .integer_column(0)
        .context("a MOC's table holds one integer column (TFORM K or J)")?;
    let mut cells = Cells::default();
    match table.keyword("ORDERING").as_deref() {
        None | Some("NUNIQ") => {
            for row in 0..table.rows {
                let u = table.integer(column, row)?;
                let Ok(u) = u64::try_from(u) else {
                    bail!("row {row}: UNIQ {u} names no cell");
                };
                if !(4..16 << 58).contains(&u) {
                    bail!("row {row}: UNIQ {u} names no cell");
                }
                let (depth, ipix) = cdshealpix::nested::from_uniq_ivoa(u);
                cells.push(u64::from(depth), ipix, ipix)?;
            }
        }
        Some("RANGE") => {
            // Bounds at the index type's deepest order: 29 for 64 bits,
            // 13 for 32 (MOC 2.0, section 4.3).
            let shift = if bits == 64 { 0 } else { 2 * (29 - 13) };
            if table.rows % 2 == 1 {
                bail!("{} range bounds: an odd count", table.rows);
            }
            for row in (0..table.rows).step_by(2) {
                let bound = |r| -> anyhow::Result<u64> {
                    let v = table.integer(column, r)?;
                    u64::try_from(v)
                        .ok()
                        .and_then(|v| v.checked_shl(shift).filter(|s| s >> shift == v))
                        .with_context(|| format!("row {r}: range bound {v}"))
                };
                cells.push_range(bound(row)?, bound(row + 1)?)?;
            }
        }
        Some(other) => bail!(
            "ORDERING '{}': a MOC is ordered NUNIQ or RANGE",
            crate::text::shown(other, 16)
        ),
    }
    cells.into_ranges()
}

/// A MOC in JSON: `{"depth": [cell, ...], ...}`.
fn moc_json(text: &str) -> anyhow::Result<Vec<Range<u64>>> {
    let doc: std::collections::BTreeMap<String, Vec<u64>> = serde_json::from_str(text).context(
        "a MOC in JSON is an object of depths, each an array of cells ({\"9\": [1, 2]})",
    )?;
    let mut cells = Cells::default();
    for (depth, list) in doc {
        let depth: u64 = depth.parse().map_err(|_| {
            anyhow::anyhow!("key '{}' is not a depth", crate::text::shown(&depth, 16))
        })?;
        for cell in list {
            cells.push(depth, cell, cell)?;
        }
    }
    cells.into_ranges()
}

/// A MOC in ASCII: `depth/cell cell-cell depth/...`.
fn moc_ascii(text: &str) -> anyhow::Result<Vec<Range<u64>>> {
    let mut cells = Cells::default();
    let mut depth: Option<u64> = None;
    let number = |t: &str| -> anyhow::Result<u64> {
        t.parse().map_err(|_| {
            anyhow::anyhow!(
                "not a MOC in JSON, nor in ASCII (`depth/cell cell-cell ...`): '{}'",
                crate::text::shown(t, 24)
            )
        })
    };
    for token in text.split_whitespace() {
        let cells_part = match token.split_once('/') {
            Some((d, rest)) => {
                depth = Some(number(d)?);
                rest
            }
            None => token,
        };
        if cells_part.is_empty() {
            continue;
        }
        let Some(d) = depth else {
            bail!("not a MOC in JSON, nor in ASCII: cells before any `depth/`");
        };
        let (first, last) = match cells_part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(cells_part)?, number(cells_part)?),
        };
        cells.push(d, first, last)?;
    }
    cells.into_ranges()
}

/// A multi-order map: cells (`UNIQ`) with a probability density per
/// steradian (`PROBDENSITY`), which must tile part of the sky without
/// overlapping and hold a total probability of 1.
fn probability_map(table: &fits::Table) -> anyhow::Result<SkyMap> {
    if table.keyword("ORDERING").as_deref() != Some("NUNIQ") {
        bail!(
            "a PROBDENSITY table whose ORDERING is not 'NUNIQ': a multi-order map's cells are \
             NUNIQ (a flat map gives each pixel's probability in a PROB column)"
        );
    }
    let uniq = table.column("UNIQ").context("no UNIQ column")?;
    let density = table.column("PROBDENSITY").expect("asked before");
    if table.rows > MAX_RANGES {
        bail!("{} cells; at most {MAX_RANGES}", table.rows);
    }
    let mut cells: Vec<(Range<u64>, f64, f64)> = Vec::with_capacity(table.rows);
    for row in 0..table.rows {
        let u = table.integer(uniq, row)?;
        let d = table.real(density, row)?;
        if !(d.is_finite() && d >= 0.0) {
            bail!("row {row}: a probability density of {d}");
        }
        let Ok(u) = u64::try_from(u) else {
            bail!("row {row}: UNIQ {u}");
        };
        if !(4..16 << 58).contains(&u) {
            bail!("row {row}: UNIQ {u} names no cell");
        }
        let (depth, ipix) = cdshealpix::nested::from_uniq_ivoa(u);
        if depth > DEPTH {
            bail!("row {row}: a cell of depth {depth}");
        }
        let shift = 2 * u32::from(DEPTH - depth);
        let area_sr = 4.0 * std::f64::consts::PI / (12.0 * 4f64.powi(i32::from(depth)));
        cells.push(((ipix << shift)..((ipix + 1) << shift), d, d * area_sr));
    }
    probability_levels(cells, "multi-order sky map".to_string())
}

/// A probability map from its cells, each (range at depth 29, density
/// per steradian, probability), in any order: their total checked, each
/// given its credible level and whether it is in the 90 % region, the
/// cells checked not to overlap. Holds about 100 bytes a cell at its
/// peak (at most [`MAX_RANGES`] cells come here).
fn probability_levels(cells: Vec<(Range<u64>, f64, f64)>, kind: String) -> anyhow::Result<SkyMap> {
    let deg2_per_sr = (180.0 / std::f64::consts::PI).powi(2);
    let total: f64 = cells.iter().map(|c| c.2).sum();
    if (total - 1.0).abs() > TOTAL_TOLERANCE {
        bail!("its probabilities sum to {total}, not 1");
    }
    // Credible levels: cells by density, densest first (ties by cell),
    // each given the probability of every cell at least as dense. The
    // 90 % region is the smallest set of densest cells holding at least
    // 90 %: a cell is in it when the denser cells hold less than 90 %
    // (so one cell holding it all is in it, not outside).
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by(|&a, &b| {
        cells[b]
            .1
            .total_cmp(&cells[a].1)
            .then(cells[a].0.start.cmp(&cells[b].0.start))
    });
    let mut credible = vec![(0.0, false); cells.len()];
    let mut sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let before = sum / total;
        let mut j = i;
        while j < order.len() && cells[order[j]].1 == cells[order[i]].1 {
            sum += cells[order[j]].2;
            j += 1;
        }
        for &k in &order[i..j] {
            credible[k] = (
                (sum / total).min(1.0),
                before < INSIDE_LEVEL && cells[k].1 > 0.0,
            );
        }
        i = j;
    }
    let mut indexed: Vec<(Range<u64>, f64, f64, bool)> = cells
        .into_iter()
        .zip(credible)
        .map(|((r, d, _), (c, inside))| (r, d / deg2_per_sr, c, inside))
        .collect();
    indexed.sort_by_key(|c| c.0.start);
    for w in indexed.windows(2) {
        if w[1].0.start < w[0].0.end {
            bail!("two cells overlap (a multi-order map's cells tile the sky once)");
        }
    }
    let inside: u64 = indexed
        .iter()
        .filter(|c| c.3)
        .map(|c| c.0.end - c.0.start)
        .sum();
    let (ranges, levels) = indexed
        .into_iter()
        .map(|(r, d, c, i)| (r, (d, c, i)))
        .unzip();
    Ok(SkyMap {
        version: String::new(),
        ranges,
        levels: Some(levels),
        kind,
        area_deg2: SKY_DEG2 * inside as f64 / CELLS as f64,
    })
}

/// healpy's mark for "no value here" (`healpy.UNSEEN`), in a `D` column;
/// in an `E` column it is the nearest 32-bit float, [`UNSEEN_E`].
const UNSEEN: f64 = -1.6375e30;
const UNSEEN_E: f32 = -1.6375e30;

/// Whether a FITS table is a flat HEALPix map: ordered `RING` or `NESTED`
/// (a MOC is `NUNIQ` or `RANGE`) and saying its `NSIDE` or having a
/// `PROB` column. Such a table is then read by [`flat_map`] or refused
/// with its reason, never taken for a MOC.
fn is_flat(table: &fits::Table) -> bool {
    matches!(
        table.keyword("ORDERING").as_deref(),
        Some("RING" | "NESTED" | "NEST")
    ) && (table.keyword("NSIDE").is_some() || table.vector_column("PROB").is_some())
}

/// The column of a flat map holding each pixel's probability, and its
/// repeat (elements per row): `PROB` (what LIGO, Virgo and KAGRA's
/// pipelines write) or `PROBABILITY`; failing both, the first column
/// that is not `PIXEL`, when it is the only column of reals (what
/// `healpy.write_map` writes for one unnamed map, naming it
/// `TEMPERATURE` or `SIGNAL`). A map of several real columns and no
/// `PROB` is refused rather than guessed at: the total-of-1 check would
/// not catch a distance column taken for probabilities on every map.
fn value_column(table: &fits::Table) -> anyhow::Result<(usize, usize)> {
    let found = table
        .vector_column("PROB")
        .or_else(|| table.vector_column("PROBABILITY"))
        .or_else(|| {
            let reals: Vec<usize> = table
                .names()
                .enumerate()
                .filter(|(i, name)| *name != "PIXEL" && matches!(table.letter(*i), b'D' | b'E'))
                .map(|(i, _)| i)
                .collect();
            let first = table.names().position(|name| name != "PIXEL")?;
            (reals == [first]).then(|| (first, table.repeat(first)))
        });
    let Some((column, repeat)) = found else {
        bail!(
            "a flat HEALPix map without a PROB column (columns: {}): name the column of each \
             pixel's probability PROB",
            crate::text::shown(&table.names().collect::<Vec<_>>().join(", "), 80)
        );
    };
    if !matches!(table.letter(column), b'D' | b'E') {
        bail!("its probability column is not of reals (TFORM D or E, or ND, NE for N a row)");
    }
    if repeat == 0 {
        bail!("its probability column holds no value a row (a TFORM repeat of 0)");
    }
    Ok((column, repeat))
}

/// A flat HEALPix probability map: one value per pixel of one order,
/// `PROB` (probability per pixel, as the pipelines and healpy write it),
/// header `NSIDE` (a power of two, 1 to 2^29), `ORDERING` `RING` or
/// `NESTED`, `INDXSCHM` `IMPLICIT` (every pixel of the sphere in order;
/// the default) or `EXPLICIT` (a `PIXEL` column beside `PROB`: part of the
/// sky, pixels in any order, each once). A column may hold one value a
/// row (`TFORM` `D`, `E`) or N (`1024D`: pixel = row * N + element).
///
/// Made into the multi-order map it stands for: every pixel a NUNIQ cell
/// of order log2(NSIDE) (a RING index turned NESTED by `cdshealpix`),
/// and every four sibling cells of equal value merged into their parent,
/// again up the orders, as they come; the 4-million-cell bound applies
/// to what is left (an NSIDE-1024 map is 12.6 million pixels, but a
/// multi-order map made flat repeats each coarse cell's value in all its
/// children, which merge back).
///
/// Decided: healpy's UNSEEN (-1.6375e30, "no value") reads as 0; any other
/// negative, NaN or infinity is refused. A total further than 1 % from 1
/// is refused, not normalised: a map that does not sum to 1 is most
/// likely not a probability map (a temperature or coverage map read by
/// mistake) or cut to part of the sky, and dividing would hand filters
/// densities and credible levels its publisher never meant. Within 1 %,
/// credible levels are taken over the map's own total, as for a
/// multi-order map.
///
/// Memory: the file's bytes (read by the caller, at most
/// [`MAX_FILE_BYTES`]) are read in place, a pixel at a time, never
/// copied per pixel for an IMPLICIT map: its pixels are visited in
/// NESTED order, a RING map's value found at its RING index. The
/// merged cells take 16 bytes each, refused past [`MAX_RANGES`] (64 MB);
/// an EXPLICIT map's listed pixels are sorted first, 16 bytes each (a
/// listed pixel takes at least 8 bytes of the file, so at most 256 MiB).
/// Then [`probability_levels`] takes about 100 bytes a merged cell. Peak
/// for a real NSIDE-1024 map of doubles: its 100 MB file and about 2 MB.
fn flat_map(table: &fits::Table) -> anyhow::Result<SkyMap> {
    let ordering = table.keyword("ORDERING").unwrap_or_default();
    let ring = ordering == "RING";
    if let Some(system) = table.keyword("COORDSYS")
        && !matches!(
            system.as_str(),
            "C" | "CELESTIAL" | "EQUATORIAL" | "ICRS" | ""
        )
    {
        bail!(
            "COORDSYS '{}': this host reads maps in equatorial coordinates (COORDSYS 'C'); \
             rotate a galactic or ecliptic map first",
            crate::text::shown(&system, 16)
        );
    }
    let nside_text = table
        .keyword("NSIDE")
        .context("a flat HEALPix map without an NSIDE keyword (its resolution: NSIDE = 1024)")?;
    let nside = nside_text
        .parse::<u64>()
        .ok()
        .filter(|n| n.is_power_of_two() && n.trailing_zeros() <= u32::from(DEPTH))
        .with_context(|| {
            format!(
                "NSIDE {}: a HEALPix NSIDE is a power of two, 1 to 2^{DEPTH}",
                crate::text::shown(&nside_text, 24)
            )
        })?;
    let depth = nside.trailing_zeros() as u8;
    let pixels = cdshealpix::n_hash(depth);
    let layer = cdshealpix::nested::get(depth);
    let (value, repeat) = value_column(table)?;
    let name = table.names().nth(value).unwrap_or_default().to_string();
    // Value number `k` of the column (pixel k of the file's ordering for
    // an IMPLICIT map), as a probability.
    let probability = |k: usize| -> anyhow::Result<f64> {
        let (row, element) = (k / repeat, k % repeat);
        let v = table.real_element(value, row, element)?;
        if v == UNSEEN || v == f64::from(UNSEEN_E) {
            return Ok(0.0);
        }
        if !(v.is_finite() && v >= 0.0) {
            let at = if repeat == 1 {
                format!("row {row}")
            } else {
                format!("row {row}, element {element}")
            };
            bail!(
                "{name} {at}: a probability of {v} (a probability is a number, 0 or more; \
                 healpy's UNSEEN reads as 0)"
            );
        }
        Ok(v)
    };
    let mut merged = Merged::new(depth);
    let mut total = 0.0;
    let scheme = table
        .keyword("INDXSCHM")
        .unwrap_or_else(|| "IMPLICIT".into());
    match scheme.as_str() {
        "IMPLICIT" => {
            // Checked against the file (its rows fit in it) before any
            // pixel is visited: a huge NSIDE on a small file stops here.
            let values = table.rows.checked_mul(repeat);
            if values.map(|n| n as u64) != Some(pixels) {
                bail!(
                    "NSIDE {nside} means {pixels} pixels, but its table holds {} rows of {repeat} \
                     (INDXSCHM 'IMPLICIT' lists every pixel; a map of part of the sky is \
                     'EXPLICIT', with a PIXEL column)",
                    table.rows
                );
            }
            for nested in 0..pixels {
                let k = if ring { layer.to_ring(nested) } else { nested };
                let v = probability(k as usize)?;
                total += v;
                merged.push(nested, v)?;
            }
        }
        "EXPLICIT" => {
            let (pixel, pixel_repeat) = table.vector_column("PIXEL").context(
                "INDXSCHM 'EXPLICIT' but no PIXEL column (a map of part of the sky lists each \
                 pixel's index beside its value)",
            )?;
            if !matches!(table.letter(pixel), b'K' | b'J') || pixel_repeat != repeat {
                bail!(
                    "its PIXEL column is not of integers (TFORM K or J) as long as its {name} \
                     column"
                );
            }
            // At most the file's length over 8 bytes (a J and an E).
            let count = table.rows * repeat;
            let mut listed: Vec<(u64, f64)> = Vec::with_capacity(count);
            for k in 0..count {
                let (row, element) = (k / repeat, k % repeat);
                let p = table.integer_element(pixel, row, element)?;
                let Some(p) = u64::try_from(p).ok().filter(|&p| p < pixels) else {
                    bail!(
                        "PIXEL row {row}: pixel {p} is not one of NSIDE {nside}'s 0 to {}",
                        pixels - 1
                    );
                };
                let nested = if ring { layer.from_ring(p) } else { p };
                listed.push((nested, probability(k)?));
            }
            listed.sort_unstable_by_key(|c| c.0);
            if let Some(w) = listed.windows(2).find(|w| w[0].0 == w[1].0) {
                let p = if ring { layer.to_ring(w[0].0) } else { w[0].0 };
                bail!("PIXEL {p} is listed twice (a pixel has one value)");
            }
            for (nested, v) in listed {
                total += v;
                merged.push(nested, v)?;
            }
        }
        other => bail!(
            "INDXSCHM '{}': a flat map's pixels are IMPLICIT (all, in order) or EXPLICIT (a \
             PIXEL column)",
            crate::text::shown(other, 16)
        ),
    }
    if total <= 0.0 {
        bail!("its {name} values sum to 0: a probability map holds some probability");
    }
    let pixel_sr = 4.0 * std::f64::consts::PI / pixels as f64;
    let cells: Vec<(Range<u64>, f64, f64)> = merged
        .cells
        .into_iter()
        .map(|(uniq, v)| {
            let (d, ipix) = cdshealpix::nested::from_uniq_ivoa(uniq);
            let shift = 2 * u32::from(DEPTH - d);
            let children = 1u64 << (2 * u32::from(depth - d));
            (
                (ipix << shift)..((ipix + 1) << shift),
                v / pixel_sr,
                v * children as f64,
            )
        })
        .collect();
    let kind = format!(
        "flat HEALPix sky map (nside {nside}, {ordering}, {scheme}; equal siblings merged)"
    );
    probability_levels(cells, kind)
}

/// A flat map's pixels, pushed in NESTED order, held as NUNIQ cells:
/// whenever the last four pushed are the four children of one cell (NUNIQ
/// `4u` to `4u + 3` are the children of `u`) with the same value, they
/// are replaced by that cell, which may complete a group of its own. The
/// value kept is a pixel's (at the map's own order), whatever the cell's.
/// Never holds more than [`MAX_RANGES`] finished cells.
struct Merged {
    depth: u8,
    /// (NUNIQ, value of each of its pixels), in NESTED order.
    cells: Vec<(u64, f64)>,
}

impl Merged {
    fn new(depth: u8) -> Merged {
        Merged {
            depth,
            cells: Vec::new(),
        }
    }

    fn push(&mut self, nested: u64, value: f64) -> anyhow::Result<()> {
        let uniq = cdshealpix::nested::to_uniq_ivoa(self.depth, nested);
        self.cells.push((uniq, value));
        while let Some(at) = self.cells.len().checked_sub(4) {
            let four = &self.cells[at..];
            let first = four[0].0;
            // NUNIQ 4 to 15 are the twelve base cells: no parent.
            let siblings = first >= 16
                && first.is_multiple_of(4)
                && four
                    .iter()
                    .zip(first..)
                    .all(|(c, u)| c.0 == u && c.1 == four[0].1);
            if !siblings {
                break;
            }
            self.cells.truncate(at);
            self.cells.push((first / 4, value));
        }
        // Besides finished cells, at most three a depth wait for siblings.
        if self.cells.len() > MAX_RANGES + 3 * (usize::from(DEPTH) + 1) {
            bail!(
                "more than {MAX_RANGES} cells even after merging every four equal sibling pixels \
                 into their parent: too fine for this host; give the map's multi-order file \
                 (the .multiorder.fits the pipelines publish beside it)"
            );
        }
        Ok(())
    }
}

/// Just enough of FITS to read a binary table's columns: the primary
/// header, the first extension's header, and its rows, every size
/// checked against the bytes before use.
mod fits {
    use anyhow::{Context, bail};

    const BLOCK: usize = 2880;
    const CARD: usize = 80;
    /// Most header blocks read per header (a header of 36 cards per
    /// block; a real one has one to three).
    const MAX_HEADER_BLOCKS: usize = 64;

    /// A binary table's layout and bytes.
    pub struct Table<'a> {
        keywords: Vec<(String, String)>,
        /// Per column: name, offset in the row, type letter, repeat.
        columns: Vec<(String, usize, u8, usize)>,
        row_bytes: usize,
        pub rows: usize,
        data: &'a [u8],
    }

    /// Reads one header from `at`: its cards up to `END`, and where the
    /// data after it starts.
    fn header(bytes: &[u8], at: usize) -> anyhow::Result<(Vec<(String, String)>, usize)> {
        let mut cards = Vec::new();
        for block in 0..MAX_HEADER_BLOCKS {
            let from = at + block * BLOCK;
            let Some(b) = bytes.get(from..from + BLOCK) else {
                bail!("a header cut short");
            };
            for card in b.chunks(CARD) {
                let key = std::str::from_utf8(&card[..8])
                    .context("a header card that is not text")?
                    .trim_end()
                    .to_string();
                if key == "END" {
                    return Ok((cards, from + BLOCK));
                }
                if card.get(8..10) == Some(b"= ") {
                    let value = String::from_utf8_lossy(&card[10..]);
                    // A string value: between quotes; else up to a comment.
                    let value = match value.trim_start().strip_prefix('\'') {
                        Some(rest) => rest
                            .split_once('\'')
                            .map_or(rest, |(v, _)| v)
                            .trim_end()
                            .to_string(),
                        None => value
                            .split('/')
                            .next()
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    };
                    cards.push((key, value));
                }
            }
        }
        bail!("a header of more than {MAX_HEADER_BLOCKS} blocks");
    }

    /// A header's text as messages show it.
    fn text(t: &str) -> String {
        crate::text::shown(t, 32).into_owned()
    }

    fn number(cards: &[(String, String)], key: &str) -> anyhow::Result<usize> {
        cards
            .iter()
            .find(|(k, _)| k == key)
            .with_context(|| format!("no {key}"))?
            .1
            .parse()
            .with_context(|| format!("{key} is not a count"))
    }

    /// Bytes per element of a `TFORM` type letter.
    fn width(letter: u8) -> Option<usize> {
        Some(match letter {
            b'L' | b'B' | b'A' | b'X' => 1,
            b'I' => 2,
            b'J' | b'E' => 4,
            b'K' | b'D' | b'C' | b'P' => 8,
            b'M' | b'Q' => 16,
            _ => return None,
        })
    }

    impl<'a> Table<'a> {
        /// The first extension of `bytes`, which must be a binary table
        /// whose rows fit in the bytes.
        pub fn read(bytes: &'a [u8]) -> anyhow::Result<Table<'a>> {
            let (primary, data) = header(bytes, 0)?;
            let naxis = number(&primary, "NAXIS")?;
            if naxis > 999 {
                bail!("NAXIS {naxis} in the primary header");
            }
            // A primary array before the table: skipped, its size checked.
            let skip = if naxis == 0 {
                0
            } else {
                let bitpix: i64 = primary
                    .iter()
                    .find(|(k, _)| k == "BITPIX")
                    .and_then(|(_, v)| v.parse().ok())
                    .context("no BITPIX")?;
                let mut n = (bitpix.unsigned_abs() / 8) as usize;
                for i in 1..=naxis.min(999) {
                    n = n.saturating_mul(number(&primary, &format!("NAXIS{i}"))?);
                }
                n.div_ceil(BLOCK).saturating_mul(BLOCK)
            };
            let at = data.saturating_add(skip);
            if at >= bytes.len() {
                bail!(
                    "its primary array claims {skip} bytes, more than the file holds (a sky map's \
                     table is its first extension)"
                );
            }
            let (cards, start) = header(bytes, at)?;
            let xtension = cards.iter().find(|(k, _)| k == "XTENSION").map(|c| &c.1);
            if xtension.map(String::as_str) != Some("BINTABLE") {
                bail!("its first extension is not a binary table");
            }
            let (row_bytes, rows) = (number(&cards, "NAXIS1")?, number(&cards, "NAXIS2")?);
            let size = row_bytes
                .checked_mul(rows)
                .filter(|&n| start.checked_add(n).is_some_and(|end| end <= bytes.len()))
                .with_context(|| {
                    format!(
                        "its table claims {rows} rows of {row_bytes} bytes, more than the file holds"
                    )
                })?;
            let fields = number(&cards, "TFIELDS")?;
            if fields > 999 {
                bail!("{fields} columns");
            }
            let mut columns = Vec::with_capacity(fields);
            let mut offset = 0usize;
            for i in 1..=fields {
                let name = cards
                    .iter()
                    .find(|(k, _)| *k == format!("TTYPE{i}"))
                    .map(|c| c.1.to_ascii_uppercase())
                    .unwrap_or_default();
                let form = cards
                    .iter()
                    .find(|(k, _)| *k == format!("TFORM{i}"))
                    .with_context(|| format!("no TFORM{i}"))?
                    .1
                    .trim()
                    .to_string();
                let digits = form.bytes().take_while(u8::is_ascii_digit).count();
                let repeat: usize = if digits == 0 {
                    1
                } else {
                    form[..digits].parse().with_context(|| {
                        format!("TFORM{i} '{}': a repeat count too large", text(&form))
                    })?
                };
                let letter = *form
                    .as_bytes()
                    .get(digits)
                    .with_context(|| format!("TFORM{i} '{}': no type letter", text(&form)))?;
                let w = width(letter).with_context(|| {
                    format!(
                        "TFORM{i} '{}': not a column format this reader knows",
                        text(&form)
                    )
                })?;
                let bytes = if letter == b'X' {
                    repeat.div_ceil(8)
                } else {
                    repeat.saturating_mul(w)
                };
                columns.push((name, offset, letter, repeat));
                offset = offset.saturating_add(bytes);
            }
            if offset != row_bytes {
                bail!("its columns take {offset} bytes of a {row_bytes}-byte row");
            }
            Ok(Table {
                keywords: cards,
                columns,
                row_bytes,
                rows,
                data: &bytes[start..start + size],
            })
        }

        /// A header keyword's value.
        pub fn keyword(&self, key: &str) -> Option<String> {
            self.keywords
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        }

        /// Column `index` as (index, bits) if it holds one integer per
        /// row (`K`: 64 bits, `J`: 32).
        pub fn integer_column(&self, index: usize) -> Option<(usize, u32)> {
            let (_, _, letter, repeat) = self.columns.get(index)?;
            match (letter, repeat) {
                (b'K', 1) => Some((index, 64)),
                (b'J', 1) => Some((index, 32)),
                _ => None,
            }
        }

        /// The index of column `name` (case-insensitive), if the table
        /// has it with one element per row.
        pub fn column(&self, name: &str) -> Option<usize> {
            self.columns
                .iter()
                .position(|c| c.0.eq_ignore_ascii_case(name) && c.3 == 1)
        }

        /// The index of column `name` (case-insensitive) and its repeat
        /// count (elements per row: 1, or N for a vector column `ND`).
        pub fn vector_column(&self, name: &str) -> Option<(usize, usize)> {
            self.columns
                .iter()
                .position(|c| c.0.eq_ignore_ascii_case(name))
                .map(|i| (i, self.columns[i].3))
        }

        /// A column's elements per row (`TFORM` `1024D`: 1024).
        pub fn repeat(&self, column: usize) -> usize {
            self.columns[column].3
        }

        /// A column's `TFORM` type letter (`D`, `E`, `K`, `J`, ...).
        pub fn letter(&self, column: usize) -> u8 {
            self.columns[column].2
        }

        /// The column names, in order (upper case; empty for a column
        /// without `TTYPE`).
        pub fn names(&self) -> impl Iterator<Item = &str> {
            self.columns.iter().map(|c| c.0.as_str())
        }

        /// Element `element` of `row` in `column` (which the caller keeps
        /// below the column's repeat: a vector column's row holds
        /// `repeat` elements one after the other).
        fn cell(&self, column: usize, row: usize, element: usize) -> (&[u8], u8) {
            let (_, offset, letter, _) = self.columns[column];
            let w = width(letter).unwrap_or(1);
            let at = row * self.row_bytes + offset + element * w;
            (&self.data[at..at + w], letter)
        }

        /// An integer column's value (`K`, `J`, `I`, `B`).
        pub fn integer(&self, column: usize, row: usize) -> anyhow::Result<i64> {
            self.integer_element(column, row, 0)
        }

        /// A real column's value (`D`, `E`).
        pub fn real(&self, column: usize, row: usize) -> anyhow::Result<f64> {
            self.real_element(column, row, 0)
        }

        /// [`Table::integer`] of element `element` of a vector column.
        pub fn integer_element(
            &self,
            column: usize,
            row: usize,
            element: usize,
        ) -> anyhow::Result<i64> {
            let (b, letter) = self.cell(column, row, element);
            Ok(match letter {
                b'K' => i64::from_be_bytes(b.try_into().unwrap()),
                b'J' => i64::from(i32::from_be_bytes(b.try_into().unwrap())),
                b'I' => i64::from(i16::from_be_bytes(b.try_into().unwrap())),
                b'B' => i64::from(b[0]),
                _ => bail!("column {} is not of integers", self.columns[column].0),
            })
        }

        /// [`Table::real`] of element `element` of a vector column.
        pub fn real_element(
            &self,
            column: usize,
            row: usize,
            element: usize,
        ) -> anyhow::Result<f64> {
            let (b, letter) = self.cell(column, row, element);
            Ok(match letter {
                b'D' => f64::from_be_bytes(b.try_into().unwrap()),
                b'E' => f64::from(f32::from_be_bytes(b.try_into().unwrap())),
                _ => bail!("column {} is not of reals", self.columns[column].0),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FITS file: an empty primary header, then a binary table with
    /// the `cards` (beyond XTENSION, BITPIX, NAXIS, PCOUNT, GCOUNT) and
    /// `data`.
    fn fits(cards: &[(&str, String)], data: &[u8]) -> Vec<u8> {
        let header = |cards: &[(&str, String)]| {
            let mut h = Vec::new();
            for (k, v) in cards {
                h.extend(format!("{k:<8}= {v:<70}").bytes());
            }
            h.extend(format!("{:<80}", "END").bytes());
            h.resize(h.len().div_ceil(2880) * 2880, b' ');
            h
        };
        let mut out = header(&[
            ("SIMPLE", "T".into()),
            ("BITPIX", "8".into()),
            ("NAXIS", "0".into()),
            ("EXTEND", "T".into()),
        ]);
        let mut all = vec![
            ("XTENSION", "'BINTABLE'".to_string()),
            ("BITPIX", "8".into()),
            ("NAXIS", "2".into()),
        ];
        all.extend(cards.iter().cloned());
        out.extend(header(&all));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(2880) * 2880, 0);
        out
    }

    /// A multi-order map of (uniq, density per steradian) rows.
    fn multiorder(rows: &[(i64, f64)], claimed_rows: usize) -> Vec<u8> {
        let mut data = Vec::new();
        for (u, d) in rows {
            data.extend(u.to_be_bytes());
            data.extend(d.to_be_bytes());
        }
        fits(
            &[
                ("NAXIS1", "16".into()),
                ("NAXIS2", claimed_rows.to_string()),
                ("PCOUNT", "0".into()),
                ("GCOUNT", "1".into()),
                ("TFIELDS", "2".into()),
                ("TTYPE1", "'UNIQ'".into()),
                ("TFORM1", "'K'".into()),
                ("TTYPE2", "'PROBDENSITY'".into()),
                ("TFORM2", "'D'".into()),
                ("ORDERING", "'NUNIQ'".into()),
            ],
            &data,
        )
    }

    /// The 12 base cells (depth 0, uniq 4..16), each holding 1/12 of the
    /// probability, but cell 0 twice as dense as the others' mean.
    fn twelve() -> Vec<(i64, f64)> {
        let area = 4.0 * std::f64::consts::PI / 12.0;
        (0..12)
            .map(|i| {
                let p = if i == 0 {
                    2.0 / 12.0
                } else {
                    10.0 / 12.0 / 11.0
                };
                (4 + i, p / area)
            })
            .collect()
    }

    #[test]
    fn a_multi_order_map_gives_density_and_credible_level_anywhere() {
        let map = SkyMap::parse(&multiorder(&twelve(), 12)).unwrap();
        assert!(map.is_probability());
        // Base cell 0 holds RA 45, Dec 41.8 (its centre).
        let peak = map.at(45.0, 41.8);
        assert!(
            (peak.credible.unwrap() - 2.0 / 12.0).abs() < 1e-12,
            "{peak:?}"
        );
        let deg2 = 41_252.961_249_419_27 / 12.0;
        assert!((peak.prob.unwrap() - (2.0 / 12.0) / deg2).abs() < 1e-12);
        assert!(peak.inside);
        // Every other cell is as dense as the next: all at credible 1,
        // and all in the 90 % region, which needs them to hold 90 %.
        let other = map.at(200.0, -41.8);
        assert_eq!(other.credible, Some(1.0));
        assert!(other.inside);
        // One cell holding everything is its own 90 % region.
        let area = 4.0 * std::f64::consts::PI / 12.0;
        let mut one: Vec<(i64, f64)> = (0..12).map(|i| (4 + i, 0.0)).collect();
        one[0].1 = 1.0 / area;
        let map = SkyMap::parse(&multiorder(&one, 12)).unwrap();
        assert!(map.at(45.0, 41.8).inside);
        assert!(
            !map.at(200.0, -41.8).inside,
            "a cell of density 0 is in no region"
        );
        // No position: outside.
        assert_eq!(map.at(f64::NAN, 0.0).credible, Some(1.0));
    }

    #[test]
    fn hostile_maps_are_refused_before_anything_is_allocated_for_them() {
        let refused = |bytes: &[u8], why: &str| {
            let err = format!("{:#}", SkyMap::parse(bytes).unwrap_err());
            assert!(err.contains(why), "{err} lacks {why}");
        };
        // A table claiming more rows than the file holds.
        refused(&multiorder(&twelve(), 1 << 40), "more than the file holds");
        // Cut short.
        let whole = multiorder(&twelve(), 12);
        refused(&whole[..3000], "cut short");
        // Overlapping cells: base cell 0 and its first child.
        let mut rows = twelve();
        rows.push((16, 0.0));
        refused(&multiorder(&rows, 13), "overlap");
        // Not summing to 1, negative, not a number.
        let mut rows = twelve();
        rows[1].1 *= 3.0;
        refused(&multiorder(&rows, 12), "sum to");
        let mut rows = twelve();
        rows[2].1 = -1.0;
        refused(&multiorder(&rows, 12), "density of -1");
        rows[2].1 = f64::NAN;
        refused(&multiorder(&rows, 12), "density of NaN");
        // A UNIQ naming no cell.
        let mut rows = twelve();
        rows[0].0 = 3;
        refused(&multiorder(&rows, 12), "names no cell");
        // A header without END.
        let mut endless = b"SIMPLE  = ".to_vec();
        endless.resize(2880 * 65, b' ');
        refused(&endless, "a header");
        refused(&vec![b' '; 2880], "holds no cell");
        refused(b"", "holds no cell");
        refused(&[0xff, 0xfe], "neither FITS nor text");
    }

    /// A flat map's FITS: `columns` as (TTYPE, TFORM), rows of
    /// `row_bytes`, `claimed_rows` in NAXIS2, then the `extra` cards
    /// (ORDERING, NSIDE, INDXSCHM ...).
    fn flat(
        columns: &[(&str, &str)],
        row_bytes: usize,
        claimed_rows: usize,
        extra: &[(&str, &str)],
        data: &[u8],
    ) -> Vec<u8> {
        let mut cards = vec![
            ("NAXIS1", row_bytes.to_string()),
            ("NAXIS2", claimed_rows.to_string()),
            ("PCOUNT", "0".into()),
            ("GCOUNT", "1".into()),
            ("TFIELDS", columns.len().to_string()),
        ];
        let names = ["TTYPE1", "TTYPE2", "TTYPE3"];
        let forms = ["TFORM1", "TFORM2", "TFORM3"];
        for (i, (name, form)) in columns.iter().enumerate() {
            cards.push((names[i], format!("'{name}'")));
            cards.push((forms[i], format!("'{form}'")));
        }
        cards.push(("PIXTYPE", "'HEALPIX'".into()));
        for (k, v) in extra {
            cards.push((k, v.to_string()));
        }
        fits(&cards, data)
    }

    /// Big-endian doubles.
    fn doubles(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    /// An IMPLICIT map of one `D` a row.
    fn implicit(nside: &str, ordering: &str, values: &[f64]) -> Vec<u8> {
        flat(
            &[("PROB", "D")],
            8,
            values.len(),
            &[
                ("ORDERING", ordering),
                ("NSIDE", nside),
                ("INDXSCHM", "'IMPLICIT'"),
            ],
            &doubles(values),
        )
    }

    /// An EXPLICIT map of (PIXEL, PROB) rows.
    fn explicit(nside: &str, rows: &[(i64, f64)]) -> Vec<u8> {
        let data: Vec<u8> = rows
            .iter()
            .flat_map(|(p, v)| p.to_be_bytes().into_iter().chain(v.to_be_bytes()))
            .collect();
        flat(
            &[("PIXEL", "K"), ("PROB", "D")],
            16,
            rows.len(),
            &[
                ("ORDERING", "'NESTED'"),
                ("NSIDE", nside),
                ("INDXSCHM", "'EXPLICIT'"),
            ],
            &data,
        )
    }

    #[test]
    fn a_flat_map_reads_in_both_orderings_and_layouts_and_merges_equal_siblings() {
        // NSIDE 1: the twelve base cells, as the multi-order map of them.
        let area = 4.0 * std::f64::consts::PI / 12.0;
        let probs: Vec<f64> = twelve().iter().map(|(_, d)| d * area).collect();
        let map = SkyMap::parse(&implicit("1", "'NESTED'", &probs)).unwrap();
        let multi = SkyMap::parse(&multiorder(&twelve(), 12)).unwrap();
        for (ra, dec) in [(45.0, 41.8), (200.0, -41.8), (0.0, 90.0), (359.9, -3.0)] {
            assert_eq!(map.at(ra, dec), multi.at(ra, dec), "at {ra} {dec}");
        }
        assert!(map.kind().contains("nside 1, NESTED, IMPLICIT"), "{map:?}");
        // NSIDE 2, RING: all the probability in RING pixel 0, the first of
        // the northmost ring (z = 1 - 1/12: Dec 66.44), centred on RA 45;
        // RING pixel 1 is its neighbour at RA 135.
        let mut ring = vec![0.0; 48];
        ring[0] = 1.0;
        let pixel_deg2 = 41_252.961_249_419_27 / 48.0;
        for bytes in [
            implicit("2", "'RING'", &ring),
            // The same as 4 rows of 12 (`12D`): pixel = row * 12 + element.
            flat(
                &[("PROB", "12D")],
                96,
                4,
                &[("ORDERING", "'RING'"), ("NSIDE", "2")],
                &doubles(&ring),
            ),
        ] {
            let map = SkyMap::parse(&bytes).unwrap();
            let peak = map.at(45.0, 66.4);
            assert!(
                (peak.prob.unwrap() - 1.0 / pixel_deg2).abs() < 1e-15,
                "{peak:?}"
            );
            assert_eq!((peak.credible, peak.inside), (Some(1.0), true));
            assert_eq!(map.at(135.0, 66.4).prob, Some(0.0));
            assert!(!map.at(135.0, 66.4).inside);
            // 47 zero pixels: all but three of the NESTED base cells merge.
            assert_eq!(map.ranges(), 12 - 1 + 4, "{map:?}");
        }
        // Equal everywhere: the 48 pixels merge into the 12 base cells.
        let map = SkyMap::parse(&implicit("2", "'NESTED'", &[1.0 / 48.0; 48])).unwrap();
        assert_eq!(map.ranges(), 12);
        assert_eq!(map.at(10.0, 10.0).credible, Some(1.0));
        // EXPLICIT: rows in any order, a pixel not listed is outside; an
        // NSIDE of 2^29 costs nothing when one pixel is listed.
        let map = SkyMap::parse(&explicit("1", &[(7, 0.5), (0, 0.5)])).unwrap();
        assert!(map.at(45.0, 41.8).inside);
        assert!(!map.at(200.0, -41.8).inside);
        let last = (12i64 << 58) - 1;
        let map = SkyMap::parse(&explicit("536870912", &[(last, 1.0)])).unwrap();
        assert_eq!(map.ranges(), 1);
        // healpy's UNSEEN is 0, in doubles and in floats.
        let mut unseen = probs.clone();
        unseen[3] += unseen[5];
        unseen[5] = -1.6375e30;
        let map = SkyMap::parse(&implicit("1", "'NESTED'", &unseen)).unwrap();
        assert_eq!(map.at(90.0, 0.0).prob, Some(0.0));
        let floats: Vec<u8> = unseen
            .iter()
            .flat_map(|&v| (v as f32).to_be_bytes())
            .collect();
        let cards = [("ORDERING", "'NESTED'"), ("NSIDE", "1")];
        let map = SkyMap::parse(&flat(&[("PROB", "E")], 4, 12, &cards, &floats)).unwrap();
        assert_eq!(map.at(90.0, 0.0).prob, Some(0.0));
    }

    #[test]
    fn hostile_flat_maps_are_refused_naming_what_is_wrong() {
        let refused = |bytes: &[u8], why: &str| {
            let err = format!("{:#}", SkyMap::parse(bytes).unwrap_err());
            assert!(err.contains(why), "{err} lacks {why}");
        };
        let even = [1.0 / 12.0; 12];
        for nside in ["3", "0", "-4", "1.5", "1073741824", "18446744073709551616"] {
            refused(
                &implicit(nside, "'NESTED'", &even),
                "a HEALPix NSIDE is a power of two, 1 to 2^29",
            );
        }
        refused(
            &implicit("2", "'NESTED'", &even),
            "NSIDE 2 means 48 pixels, but its table holds 12 rows of 1",
        );
        // A huge NSIDE on a tiny file: refused by counting, nothing
        // allocated for its 3.5 * 10^18 pixels.
        refused(
            &implicit("536870912", "'RING'", &even),
            "NSIDE 536870912 means 3458764513820540928 pixels, but its table holds 12 rows",
        );
        // A table claiming more rows than the file.
        let mut big = implicit("1", "'NESTED'", &even);
        let at = big.windows(8).position(|w| w == b"NAXIS2  ").unwrap();
        big[at + 10..at + 30].copy_from_slice(format!("{:>20}", 1u64 << 40).as_bytes());
        refused(&big, "more than the file holds");
        // Values: NaN, negative, infinite, not summing to 1, all 0.
        let mut bad = even;
        bad[2] = f64::NAN;
        refused(
            &implicit("1", "'NESTED'", &bad),
            "PROB row 2: a probability of NaN",
        );
        bad[2] = -0.5;
        refused(
            &implicit("1", "'NESTED'", &bad),
            "PROB row 2: a probability of -0.5",
        );
        bad[2] = f64::INFINITY;
        refused(&implicit("1", "'NESTED'", &bad), "a probability of inf");
        refused(&implicit("1", "'NESTED'", &[0.5; 12]), "sum to 6");
        refused(&implicit("1", "'NESTED'", &[0.0; 12]), "sum to 0");
        // EXPLICIT: a pixel off the sphere, negative, listed twice.
        refused(
            &explicit("1", &[(0, 0.5), (12, 0.5)]),
            "PIXEL row 1: pixel 12 is not one of NSIDE 1's 0 to 11",
        );
        refused(&explicit("1", &[(-1, 1.0)]), "pixel -1 is not one of");
        refused(
            &explicit("1", &[(3, 0.5), (0, 0.25), (3, 0.25)]),
            "PIXEL 3 is listed twice",
        );
        // Header: no NSIDE, another scheme, other coordinates, no PROB,
        // a column of no values a row (0 bytes a row: any row count fits).
        let cards = [("ORDERING", "'RING'")];
        refused(
            &flat(&[("PROB", "D")], 8, 12, &cards, &doubles(&even)),
            "without an NSIDE keyword",
        );
        let cards = [
            ("ORDERING", "'RING'"),
            ("NSIDE", "1"),
            ("INDXSCHM", "'SPARSE'"),
        ];
        refused(
            &flat(&[("PROB", "D")], 8, 12, &cards, &doubles(&even)),
            "INDXSCHM 'SPARSE'",
        );
        let cards = [("ORDERING", "'RING'"), ("NSIDE", "1"), ("COORDSYS", "'G'")];
        refused(
            &flat(&[("PROB", "D")], 8, 12, &cards, &doubles(&even)),
            "COORDSYS 'G'",
        );
        let cards = [("ORDERING", "'RING'"), ("NSIDE", "1")];
        let two: Vec<u8> = doubles(&even)
            .chunks(8)
            .flat_map(|c| [c, c].concat())
            .collect();
        refused(
            &flat(&[("DISTMU", "D"), ("DISTSIGMA", "D")], 16, 12, &cards, &two),
            "without a PROB column (columns: DISTMU, DISTSIGMA)",
        );
        refused(
            &flat(&[("PROB", "0D")], 0, 1 << 60, &cards, &[]),
            "a TFORM repeat of 0",
        );
        refused(
            &flat(&[("PROB", "J")], 4, 12, &cards, &[0; 48]),
            "not of reals",
        );
        // The one unnamed column healpy writes is read: TEMPERATURE.
        let one = flat(&[("TEMPERATURE", "D")], 8, 12, &cards, &doubles(&even));
        assert!(SkyMap::parse(&one).unwrap().is_probability());
    }

    #[test]
    fn a_flat_map_still_too_fine_after_merging_is_refused_naming_the_multi_order_file() {
        // NSIDE 1024 (12.6 million pixels), no two neighbours equal.
        let values: Vec<u8> = (0..12u32 << 20)
            .flat_map(|i| (1e-7 * f32::from(1 + (i % 2) as u8)).to_be_bytes())
            .collect();
        let cards = [("ORDERING", "'NESTED'"), ("NSIDE", "1024")];
        let err = SkyMap::parse(&flat(&[("PROB", "E")], 4, 12 << 20, &cards, &values))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("more than 4000000 cells even after merging")
                && err.contains("give the map's multi-order file"),
            "{err}"
        );
    }

    #[test]
    fn mocs_in_json_and_ascii_say_inside_or_not() {
        // Base cell 0 whole, in both forms.
        for text in [r#"{"0":[0]}"#, "0/0"] {
            let map = SkyMap::parse(text.as_bytes()).unwrap();
            assert!(!map.is_probability());
            assert!(map.at(45.0, 41.8).inside, "{text}");
            assert!(!map.at(200.0, -41.8).inside, "{text}");
            assert_eq!(map.at(45.0, 41.8).prob, None);
            assert!((map.area_deg2() - 41_252.961_249_419_27 / 12.0).abs() < 1e-6);
        }
        // Ranges and several depths in ASCII; the same as JSON.
        let ascii = SkyMap::parse(b"1/0-3 5\n2/100").unwrap();
        let json = SkyMap::parse(br#"{"1":[0,1,2,3,5],"2":[100]}"#).unwrap();
        assert_eq!(ascii.ranges, json.ranges);
        assert_eq!(ascii.ranges.len(), 3);
        // What would read as an empty region, or cells off the sphere, is
        // refused: "outside everywhere" must not pass for a map.
        for bad in [
            &b"not a moc at all"[..],
            b"3/",
            b"{}",
            br#"{"30":[0]}"#,
            br#"{"99999999999":[0]}"#,
            br#"{"0":[12]}"#,
            br#"{"0":[-1]}"#,
            br#"{"0":[1.5]}"#,
            br#"{"s":{"0":[0]}}"#,
            b"30/0",
            b"0/12",
            b"2/5-3",
            b"5 6",
        ] {
            let err = SkyMap::parse(bad).map(|m| m.ranges.len());
            assert!(
                err.is_err(),
                "{} gave {err:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let err = format!("{:#}", SkyMap::parse(&[0x1f, 0x8b, 8, 0]).unwrap_err());
        assert!(
            err.contains("gzip-compressed: decompress it first"),
            "{err}"
        );
    }

    #[test]
    fn a_moc_in_fits_is_read_from_its_own_header_and_nothing_else() {
        // NUNIQ: base cells 0 and 1 (uniq 4, 5), with a card a lenient
        // reader takes for NAXIS2 claiming 10^15 rows.
        let mut data = Vec::new();
        for u in [4i64, 5] {
            data.extend(u.to_be_bytes());
        }
        fn cards(
            extra: &[(&'static str, String)],
            rows: &str,
            ordering: &str,
        ) -> Vec<(&'static str, String)> {
            let mut c = vec![
                ("NAXIS1", "8".to_string()),
                ("NAXIS2 Z", "1000000000000000".into()),
                ("NAXIS2", rows.into()),
                ("PCOUNT", "0".into()),
                ("GCOUNT", "1".into()),
                ("TFIELDS", "1".into()),
                ("TTYPE1", "'UNIQ'".into()),
                ("TFORM1", "'K'".into()),
                ("ORDERING", ordering.into()),
            ];
            c.extend(extra.iter().cloned());
            c
        }
        let map = SkyMap::parse(&fits(&cards(&[], "2", "'NUNIQ'"), &data)).unwrap();
        assert_eq!(map.ranges, vec![0..(2u64 << 58)]);
        assert!((map.area_deg2() - 41_252.961_249_419_27 / 6.0).abs() < 1e-6);
        // RANGE: the same two cells as one range at depth 29.
        let mut range = Vec::new();
        for v in [0i64, 2 << 58] {
            range.extend(v.to_be_bytes());
        }
        let map = SkyMap::parse(&fits(&cards(&[], "2", "'RANGE'"), &range)).unwrap();
        assert_eq!(map.ranges, vec![0..(2u64 << 58)]);
        for (extra, rows, ordering, why) in [
            (vec![], "400", "'NUNIQ'", "more than the file holds"),
            (vec![], "2", "'RING'", "a MOC is ordered NUNIQ or RANGE"),
            (
                vec![("MOCDIM", "'TIME'".to_string())],
                "2",
                "'NUNIQ'",
                "not of the sky",
            ),
        ] {
            let err = format!(
                "{:#}",
                SkyMap::parse(&fits(&cards(&extra, rows, ordering), &data)).unwrap_err()
            );
            assert!(err.contains(why), "{err} lacks {why}");
        }
    }
}
