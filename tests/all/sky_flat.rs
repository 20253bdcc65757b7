//! Flat (single-order) HEALPix sky maps: the shared multi-order
//! gravitational-wave map made flat by `tests/py/sky_flat_maps.py` (nside
//! 256 and 1024, RING and NESTED, one value a row and 1024 a row, one
//! EXPLICIT map of part of the sky, healpy's UNSEEN in two of them),
//! written to a temporary directory, answers through `bandpass map at`
//! as an independent reading of each file's own pixels does, and merges
//! back to the cells that reading counts.

use crate::cli::{bandpass, text};
use crate::sky::{map_at, python_script, sky_dir};

/// How close `bandpass map at` must come to the oracle. Densities:
/// the same division of the same value, in another order (relative
/// 1e-12). Credible levels: sums of up to 12.6 million probabilities
/// in other orders (1e-9). Inside the 90 % region: exactly, except where
/// what the denser pixels hold is within 1e-9 of 0.9, where summing in
/// another order may decide either way.
const DENSITY: f64 = 1e-12;
const CREDIBLE: f64 = 1e-9;

#[test]
fn flat_maps_answer_as_an_independent_reading_of_their_pixels_at_thousands_of_points() {
    let dir = tempfile::tempdir().unwrap();
    let run = python_script(
        "sky_flat_maps.py",
        &[
            sky_dir().as_os_str(),
            dir.path().as_os_str(),
            "4000".as_ref(),
            "15".as_ref(),
        ],
    );
    let out = text(&run.stdout);
    let mut lines = out.lines();
    let meta: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let expected: Vec<serde_json::Value> =
        lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(expected.len() > 5000, "{}", expected.len());
    let positions: Vec<(f64, f64)> = expected
        .iter()
        .map(|e| (e["ra"].as_f64().unwrap(), e["dec"].as_f64().unwrap()))
        .collect();
    let maps = meta["maps"].as_object().unwrap();
    assert_eq!(maps.len(), 5, "{meta}");
    for (name, about) in maps {
        let file = dir.path().join(name);
        let got = map_at(&file, &positions);
        assert_eq!(got.len(), expected.len(), "{name}");
        let (mut in_region, mut undecided) = (0, 0);
        for (e, g) in expected.iter().zip(&got) {
            let want = e[name].as_array().unwrap();
            let (prob, credible, inside, before) = (
                want[0].as_f64().unwrap(),
                want[1].as_f64().unwrap(),
                want[2].as_bool().unwrap(),
                want[3].as_f64().unwrap(),
            );
            let (p, c): (f64, f64) = (g["prob"].parse().unwrap(), g["credible"].parse().unwrap());
            let at = format!("{name} at {} {}", e["ra"], e["dec"]);
            assert!(
                (p - prob).abs() <= DENSITY * prob,
                "{at}: density {p} where {prob}"
            );
            assert!(
                (c - credible).abs() <= CREDIBLE,
                "{at}: credible {c} where {credible}"
            );
            if (before - 0.9).abs() < CREDIBLE {
                undecided += 1;
            } else {
                assert_eq!(g["inside"] == "true", inside, "{at}");
            }
            in_region += usize::from(inside);
        }
        // Both answers occur, and the boundary cases are few.
        assert!(
            in_region > 100 && in_region < expected.len() - 1000,
            "{name}: {in_region} positions in the 90% region"
        );
        assert!(undecided < 10, "{name}: {undecided} on the boundary");

        // What the file is, as an operator checks it: the cells left
        // after merging equal siblings are the oracle's count.
        let info = bandpass(&["map", "info", file.to_str().unwrap()]);
        assert!(text(&info.stderr).is_empty(), "{}", text(&info.stderr));
        let said = format!(
            "flat HEALPix sky map (nside {}, {}, {}; equal siblings merged), {} ranges of cells",
            about["nside"],
            about["ordering"].as_str().unwrap(),
            about["scheme"].as_str().unwrap(),
            about["cells"]
        );
        assert!(text(&info.stdout).contains(&said), "{}", text(&info.stdout));
    }
    // The nside-1024 map of doubles made from the 19,200-cell multi-order
    // map merges back to about as many cells (its order-11 cells became
    // order-10 pixels: 18,236 cells of order 10 and coarser, and 241
    // parents of the 964 order-11 cells).
    let cells = maps["flat1024_ring_vector.fits"]["cells"].as_u64().unwrap();
    assert_eq!(cells, 18_477);
}
