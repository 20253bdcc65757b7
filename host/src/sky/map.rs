//! Sky maps: regions of the sky (IVOA MOCs: survey footprints) and
//! probability maps (the multi-order HEALPix maps gravitational-wave
//! pipelines publish), asked at one position (docs/design/sky.md,
//! section 3).
//!
//! Both are held the same way: sorted, disjoint ranges of nested HEALPix
//! cells at depth 29 (about 0.4 milliarcseconds), so that one binary
//! search answers whether a position is inside, and, for a probability
//! map, its density and the smallest credible region holding it.
//!
//! Owns: reading MOCs (FITS in both orderings, JSON, ASCII) and
//! multi-order maps (their `UNIQ` and `PROBDENSITY` columns), with a
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
    kind: &'static str,
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
    /// Reads `path`: a MOC (FITS, JSON or ASCII) or a multi-order
    /// probability map (FITS with `ORDERING = 'NUNIQ'` and a
    /// `PROBDENSITY` column), told apart by their contents.
    pub fn open(path: &Path) -> anyhow::Result<SkyMap> {
        let bytes = super::catalog::read_bounded(path, MAX_FILE_BYTES, "a map file")?;
        SkyMap::parse(&bytes).with_context(|| {
            format!(
                "{} is not a sky map this host reads (an IVOA MOC in FITS, JSON or ASCII, or a \
                 multi-order HEALPix probability map in FITS)",
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

    pub fn kind(&self) -> &'static str {
        self.kind
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

fn region(ranges: Vec<Range<u64>>, kind: &'static str) -> anyhow::Result<SkyMap> {
    let cells: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    Ok(SkyMap {
        version: String::new(),
        area_deg2: SKY_DEG2 * cells as f64 / CELLS as f64,
        ranges,
        levels: None,
        kind,
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
            "a PROBDENSITY table whose ORDERING is not 'NUNIQ' (a flat HEALPix map): not read yet"
        );
    }
    let uniq = table.column("UNIQ").context("no UNIQ column")?;
    let density = table.column("PROBDENSITY").expect("asked before");
    if table.rows > MAX_RANGES {
        bail!("{} cells; at most {MAX_RANGES}", table.rows);
    }
    let deg2_per_sr = (180.0 / std::f64::consts::PI).powi(2);
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
        kind: "multi-order sky map",
        area_deg2: SKY_DEG2 * inside as f64 / CELLS as f64,
    })
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

        fn cell(&self, column: usize, row: usize) -> (&[u8], u8) {
            let (_, offset, letter, _) = self.columns[column];
            let at = row * self.row_bytes + offset;
            let w = width(letter).unwrap_or(1);
            (&self.data[at..at + w], letter)
        }

        /// An integer column's value (`K`, `J`, `I`, `B`).
        pub fn integer(&self, column: usize, row: usize) -> anyhow::Result<i64> {
            let (b, letter) = self.cell(column, row);
            Ok(match letter {
                b'K' => i64::from_be_bytes(b.try_into().unwrap()),
                b'J' => i64::from(i32::from_be_bytes(b.try_into().unwrap())),
                b'I' => i64::from(i16::from_be_bytes(b.try_into().unwrap())),
                b'B' => i64::from(b[0]),
                _ => bail!("column {} is not of integers", self.columns[column].0),
            })
        }

        /// A real column's value (`D`, `E`).
        pub fn real(&self, column: usize, row: usize) -> anyhow::Result<f64> {
            let (b, letter) = self.cell(column, row);
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
