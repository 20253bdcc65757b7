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
//! Owns: reading MOCs (FITS in both orderings, JSON, ASCII: the CDS `moc`
//! crate) and multi-order maps (their `UNIQ` and `PROBDENSITY` columns,
//! read here from the FITS binary table), checking them (every count
//! against the file's length before anything is allocated, cells
//! disjoint, probabilities not negative and summing to 1), and answering.
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
pub const MAX_FILE_BYTES: u64 = 512 << 20;
/// A map of more ranges or cells is refused.
pub const MAX_RANGES: usize = 20_000_000;
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
    /// The smallest credible level whose region holds the position: 0 at
    /// the map's peak, 1 outside it (probability maps only).
    pub credible: Option<f64>,
}

/// A region or probability map, held as ranges at depth 29.
pub struct SkyMap {
    /// Sorted, disjoint cell ranges.
    ranges: Vec<Range<u64>>,
    /// For a probability map, per range: its density (per square degree)
    /// and credible level.
    levels: Option<Vec<(f64, f64)>>,
    /// What the file was: `MOC (FITS)`, `multi-order sky map`, ...
    kind: &'static str,
    /// The fraction of the sky it covers (a region), or of its 90 %
    /// region (a probability map), in square degrees.
    area_deg2: f64,
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
        let size = super::catalog::regular_file(path)?.len();
        if size > MAX_FILE_BYTES {
            bail!(
                "{}: {size} bytes; a map file may have at most {MAX_FILE_BYTES}",
                super::catalog::shown(path)
            );
        }
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read {}", super::catalog::shown(path)))?;
        SkyMap::parse(&bytes).with_context(|| {
            format!(
                "{} is not a sky map this host reads (an IVOA MOC in FITS, JSON or ASCII, or a \
                 multi-order HEALPix probability map in FITS)",
                super::catalog::shown(path)
            )
        })
    }

    /// [`SkyMap::open`] on bytes. The `moc` crate's readers run under
    /// `catch_unwind`: a file that makes one panic is refused, not a
    /// crash of the host.
    pub fn parse(bytes: &[u8]) -> anyhow::Result<SkyMap> {
        std::panic::catch_unwind(|| SkyMap::parse_unguarded(bytes)).unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the MOC reader stopped on it (a malformed file)"
            ))
        })
    }

    fn parse_unguarded(bytes: &[u8]) -> anyhow::Result<SkyMap> {
        if bytes.starts_with(b"SIMPLE  =") {
            let table = fits::Table::read(bytes)?;
            if table.column("PROBDENSITY").is_some() {
                return probability_map(&table);
            }
            return moc_fits(bytes, &table);
        }
        let text = std::str::from_utf8(bytes).context("neither FITS nor text")?;
        if text.trim_start().starts_with('{') {
            let moc = moc::deser::json::from_json_aladin::<u64, moc::qty::Hpx<u64>>(text)
                .map_err(|e| anyhow::anyhow!("MOC JSON: {e}"))?;
            use moc::moc::{CellMOCIntoIterator, CellMOCIterator};
            return region(
                ranges_of(moc.into_cell_moc_iter().ranges(), 0)?,
                "MOC (JSON)",
            );
        }
        // Only what IVOA MOC ASCII holds reaches the parser (it panics on
        // some other inputs, caught above); its error's text is not shown,
        // for the same reason.
        let ascii = text.contains('/')
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || b"/- \t\r\n".contains(&b));
        if !ascii {
            bail!("not a MOC in JSON, nor in ASCII (`depth/cells ...`)");
        }
        let moc = moc::deser::ascii::from_ascii_ivoa::<u64, moc::qty::Hpx<u64>>(text)
            .map_err(|_| anyhow::anyhow!("not a MOC in JSON, nor in ASCII (`depth/cells ...`)"))?;
        use moc::moc::{CellOrCellRangeMOCIntoIterator, CellOrCellRangeMOCIterator};
        region(
            ranges_of(moc.into_cellcellrange_moc_iter().ranges(), 0)?,
            "MOC (ASCII)",
        )
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
                let (prob, credible) = levels[i - 1];
                Answer {
                    inside: credible <= INSIDE_LEVEL,
                    prob: Some(prob),
                    credible: Some(credible),
                }
            }
        }
    }

    /// Whether it is a probability map (it has `prob` and `credible`).
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

/// Ranges at the MOC index type's own depth, moved to depth 29; sorted,
/// disjoint and within the sphere, else an error. `shift` is twice the
/// depths between (0 for `u64`). Never trusts the iterator's size hint.
fn ranges_of<T: moc::idx::Idx>(
    ranges: impl Iterator<Item = Range<T>>,
    shift: u32,
) -> anyhow::Result<Vec<Range<u64>>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in ranges {
        if out.len() >= MAX_RANGES {
            bail!("more than {MAX_RANGES} ranges");
        }
        let (start, end) = (r.start.to_u64(), r.end.to_u64());
        let (start, end) = (
            start.checked_shl(shift).filter(|s| s >> shift == start),
            end.checked_shl(shift).filter(|e| e >> shift == end),
        );
        let (Some(start), Some(end)) = (start, end) else {
            bail!("a range past the sphere's cells");
        };
        if start >= end || end > CELLS {
            bail!("a range [{start}, {end}) that is empty or past the sphere's cells");
        }
        match out.last_mut() {
            Some(last) if start < last.end => bail!("ranges out of order or overlapping"),
            Some(last) if start == last.end => last.end = end,
            _ => out.push(start..end),
        }
    }
    Ok(out)
}

fn region(ranges: Vec<Range<u64>>, kind: &'static str) -> anyhow::Result<SkyMap> {
    let cells: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    Ok(SkyMap {
        area_deg2: SKY_DEG2 * cells as f64 / CELLS as f64,
        ranges,
        levels: None,
        kind,
    })
}

/// A MOC in FITS, through the `moc` crate, after [`fits::Table::read`]
/// checked that its table fits in the file.
fn moc_fits(bytes: &[u8], _table: &fits::Table) -> anyhow::Result<SkyMap> {
    use moc::deser::fits::{MocIdxType, MocQtyType, MocType, from_fits_ivoa};
    use moc::moc::{CellMOCIntoIterator, CellMOCIterator};
    use moc::qty::{Hpx, MocQty};
    fn shift<T: moc::idx::Idx>() -> u32 {
        2 * u32::from(DEPTH - Hpx::<T>::MAX_DEPTH)
    }
    macro_rules! read {
        ($moc:expr, $t:ty) => {
            match $moc {
                MocQtyType::Hpx(MocType::Ranges(r)) => ranges_of(r, shift::<$t>()),
                MocQtyType::Hpx(MocType::Cells(c)) => {
                    ranges_of(c.into_cell_moc_iter().ranges(), shift::<$t>())
                }
                _ => bail!("a MOC of time or frequency, not of the sky"),
            }
        };
    }
    let reader = std::io::BufReader::new(bytes);
    let ranges = match from_fits_ivoa(reader).map_err(|e| anyhow::anyhow!("MOC FITS: {e}"))? {
        MocIdxType::U16(m) => read!(m, u16)?,
        MocIdxType::U32(m) => read!(m, u32)?,
        MocIdxType::U64(m) => read!(m, u64)?,
    };
    region(ranges, "MOC (FITS)")
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
    // each given the probability of every cell at least as dense.
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by(|&a, &b| {
        cells[b]
            .1
            .total_cmp(&cells[a].1)
            .then(cells[a].0.start.cmp(&cells[b].0.start))
    });
    let mut credible = vec![0.0; cells.len()];
    let mut sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && cells[order[j]].1 == cells[order[i]].1 {
            sum += cells[order[j]].2;
            j += 1;
        }
        for &k in &order[i..j] {
            credible[k] = (sum / total).min(1.0);
        }
        i = j;
    }
    let mut indexed: Vec<(Range<u64>, f64, f64)> = cells
        .into_iter()
        .zip(credible)
        .map(|((r, d, _), c)| (r, d / deg2_per_sr, c))
        .collect();
    indexed.sort_by_key(|c| c.0.start);
    for w in indexed.windows(2) {
        if w[1].0.start < w[0].0.end {
            bail!("two cells overlap (a multi-order map's cells tile the sky once)");
        }
    }
    let inside: u64 = indexed
        .iter()
        .filter(|c| c.2 <= INSIDE_LEVEL)
        .map(|c| c.0.end - c.0.start)
        .sum();
    let (ranges, levels) = indexed.into_iter().map(|(r, d, c)| (r, (d, c))).unzip();
    Ok(SkyMap {
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
                    form[..digits].parse().context("a TFORM repeat")?
                };
                let letter = *form.as_bytes().get(digits).context("an empty TFORM")?;
                let w = width(letter).with_context(|| format!("TFORM{i} '{form}'"))?;
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
        // Every other cell is as dense as the next: all at credible 1.
        let other = map.at(200.0, -41.8);
        assert_eq!(other.credible, Some(1.0));
        assert!(!other.inside);
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
        refused(&vec![b' '; 2880], "not a MOC");
        refused(b"", "not a MOC");
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
        assert!(SkyMap::parse(b"not a moc at all").is_err());
        assert!(SkyMap::parse(b"3/").is_err() || SkyMap::parse(b"3/").is_ok());
    }
}
