//! `bandpass map`: what a sky map file holds, and what it says at
//! positions, as a filter's `map.<name>.*` fields would receive it
//! (docs/design/sky.md, section 3).

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::sky::map::SkyMap;

#[derive(Debug, Args)]
pub struct MapArgs {
    #[command(subcommand)]
    pub command: MapCommand,
}

#[derive(Debug, Subcommand)]
pub enum MapCommand {
    /// What a map file is: a region (MOC) or a probability map, its
    /// cells, its area.
    Info(MapInfoArgs),
    /// What a map says at positions: inside, and for a probability map
    /// the density (per square degree) and the credible level.
    At(MapAtArgs),
}

#[derive(Debug, Args)]
pub struct MapInfoArgs {
    /// A MOC (FITS, JSON or ASCII) or a probability map (FITS: multi-order,
    /// or flat HEALPix with a PROB column).
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct MapAtArgs {
    /// A MOC (FITS, JSON or ASCII) or a probability map (FITS: multi-order,
    /// or flat HEALPix with a PROB column).
    pub file: PathBuf,
    /// Positions as RA DEC pairs, degrees; none: read `RA DEC` lines
    /// from stdin.
    #[arg(allow_negative_numbers = true)]
    pub positions: Vec<f64>,
}

pub fn execute(args: MapArgs) -> anyhow::Result<u8> {
    match args.command {
        MapCommand::Info(a) => {
            let map = SkyMap::open(&a.file)?;
            println!(
                "map {}: {}, {} ranges of cells; {} {:.3} square degrees",
                crate::sky::catalog::shown(&a.file),
                map.kind(),
                map.ranges(),
                if map.is_probability() {
                    "its 90% region covers"
                } else {
                    "it covers"
                },
                map.area_deg2()
            );
            Ok(0)
        }
        MapCommand::At(a) => {
            let map = SkyMap::open(&a.file)?;
            if a.positions.len() % 2 == 1 {
                anyhow::bail!(
                    "give positions as RA DEC pairs: {} numbers",
                    a.positions.len()
                );
            }
            let show = |ra: f64, dec: f64| {
                if crate::sky::radians(ra, dec).is_none() {
                    println!("{ra} {dec} not a position: a filter receives absent values");
                    return;
                }
                let answer = map.at(ra, dec);
                match (answer.prob, answer.credible) {
                    (Some(p), Some(c)) => {
                        println!(
                            "{ra} {dec} inside={} prob={p:e} credible={c}",
                            answer.inside
                        )
                    }
                    _ => println!("{ra} {dec} inside={}", answer.inside),
                }
            };
            if !a.positions.is_empty() {
                for p in a.positions.chunks(2) {
                    show(p[0], p[1]);
                }
                return Ok(0);
            }
            for (i, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line?;
                let mut parts = line.split_whitespace().map(str::parse::<f64>);
                match (parts.next(), parts.next()) {
                    (Some(Ok(ra)), Some(Ok(dec))) => show(ra, dec),
                    (None, _) => continue,
                    _ => anyhow::bail!(
                        "stdin line {}: '{}' is not RA DEC",
                        i + 1,
                        crate::text::shown(&line, 80)
                    ),
                }
            }
            Ok(0)
        }
    }
}
