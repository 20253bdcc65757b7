//! The synthetic alert generator behind `bandpass demo`.
//!
//! Makes ZTF-shaped alerts with the project's own schema
//! (`schemas/demo-alert.avsc`), one Avro container file per alert as ZTF
//! publishes them, drawn from a few populations with plausible values:
//! bogus subtractions, known asteroids, nuclear transients in galaxies,
//! fast-rising transients, variable stars and ordinary faint sources.
//! Deterministic for a given seed.
//!
//! Must never: be mistaken for real data; the schema says it is simulated.

use apache_avro::types::Value;
use apache_avro::{Schema, Writer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The demo alert schema, embedded.
pub const SCHEMA: &str = include_str!("../../schemas/demo-alert.avsc");

/// The kinds of source the generator draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Population {
    Bogus,
    Asteroid,
    Nuclear,
    FastRiser,
    VariableStar,
    Ordinary,
}

impl Population {
    fn draw(rng: &mut StdRng) -> Population {
        match rng.random_range(0..100) {
            0..30 => Population::Bogus,
            30..45 => Population::Asteroid,
            45..57 => Population::Nuclear,
            57..67 => Population::FastRiser,
            67..80 => Population::VariableStar,
            _ => Population::Ordinary,
        }
    }
}

/// One generated alert: the message bytes and what it was drawn as.
pub struct DemoAlert {
    pub bytes: Vec<u8>,
    pub population: Population,
}

/// Generates `count` alerts from `seed`.
pub fn generate(count: usize, seed: u64) -> anyhow::Result<Vec<DemoAlert>> {
    let schema = Schema::parse_str(SCHEMA)?;
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let population = Population::draw(&mut rng);
            let value = alert(&mut rng, i, population);
            // The sync marker comes from the seed too, so that the same
            // seed gives the same bytes.
            let marker: [u8; 16] = rng.random();
            let mut writer = Writer::builder()
                .schema(&schema)
                .writer(Vec::new())
                .marker(marker)
                .build()?;
            writer.append_value(value)?;
            Ok(DemoAlert {
                bytes: writer.into_inner()?,
                population,
            })
        })
        .collect()
}

/// Julian date of the simulated night.
const NIGHT_JD: f64 = 2_461_000.75;

fn some(v: Value) -> Value {
    Value::Union(1, Box::new(v))
}

fn none() -> Value {
    Value::Union(0, Box::new(Value::Null))
}

fn f(v: f64) -> Value {
    some(Value::Float(v as f32))
}

fn alert(rng: &mut StdRng, i: usize, pop: Population) -> Value {
    let candid = 3_000_000_000_000_000_000 + i as i64;
    let jd = NIGHT_JD + rng.random_range(0.0..0.3);
    let fid = rng.random_range(1..=2);
    let ra = rng.random_range(0.0..360.0);
    let dec = rng.random_range(-30.0..90.0);
    let real = pop != Population::Bogus;
    let (rb, drb) = if real {
        (rng.random_range(0.55..1.0), rng.random_range(0.7..1.0))
    } else {
        (rng.random_range(0.0..0.4), rng.random_range(0.0..0.3))
    };
    let mag: f64 = match pop {
        Population::Asteroid => rng.random_range(17.0..20.5),
        Population::VariableStar => rng.random_range(14.0..18.0),
        _ => rng.random_range(16.5..20.8),
    };
    // Variable stars fade below their reference half the time; other
    // sources are negative differences one time in ten.
    let negative_odds = if pop == Population::VariableStar {
        0.5
    } else {
        0.1
    };
    let isdiffpos = if rng.random_bool(negative_odds) {
        "f"
    } else {
        "t"
    };
    let (ssdistnr, ssmagnr, ssname) = if pop == Population::Asteroid {
        let d = rng.random_range(0.0..4.0);
        let name = format!("{}", rng.random_range(1000..600_000));
        (
            d,
            mag + rng.random_range(-0.3..0.3),
            some(Value::String(name)),
        )
    } else {
        (-999.0, -999.0, none())
    };
    let (sgscore1, distpsnr1, distnr) = match pop {
        Population::Nuclear => (
            rng.random_range(0.0..0.2),
            rng.random_range(0.0..0.8),
            rng.random_range(0.0..0.6),
        ),
        Population::VariableStar => (
            rng.random_range(0.9..1.0),
            rng.random_range(0.0..0.5),
            rng.random_range(0.0..0.5),
        ),
        _ => (
            rng.random_range(0.0..1.0),
            rng.random_range(1.0..20.0),
            rng.random_range(1.0..15.0),
        ),
    };
    // The light curve: previous detections over the last days.
    let history: Vec<(f64, i32, f64)> = match pop {
        Population::Asteroid | Population::Bogus => Vec::new(),
        Population::FastRiser => {
            let rate = rng.random_range(0.4..1.5); // mag/day, brightening
            (1..=rng.random_range(2..6))
                .map(|k| {
                    let dt = k as f64 * rng.random_range(0.8..1.2);
                    (jd - dt, fid, mag + rate * dt)
                })
                .collect()
        }
        Population::VariableStar => (1..=rng.random_range(10..25))
            .map(|k| {
                let dt = k as f64 * 1.7;
                (
                    jd - dt,
                    rng.random_range(1..=2),
                    mag + rng.random_range(-0.5..0.5),
                )
            })
            .collect(),
        _ => (1..=rng.random_range(0..6))
            .map(|k| {
                let dt = k as f64 * rng.random_range(1.0..4.0);
                (
                    jd - dt,
                    rng.random_range(1..=2),
                    mag + rng.random_range(-0.2..0.3),
                )
            })
            .collect(),
    };
    let ndethist = history.len() as i32
        + 1
        + if pop == Population::VariableStar {
            80
        } else {
            0
        };
    let jdstarthist = history.iter().map(|h| h.0).fold(jd, f64::min);

    let candidate = Value::Record(vec![
        ("jd".into(), Value::Double(jd)),
        ("fid".into(), Value::Int(fid)),
        ("pid".into(), Value::Long(candid / 1000)),
        ("diffmaglim".into(), f(20.5 + rng.random_range(0.0..0.8))),
        ("programid".into(), Value::Int(1)),
        ("candid".into(), Value::Long(candid)),
        ("isdiffpos".into(), Value::String(isdiffpos.into())),
        ("nid".into(), some(Value::Int(3000))),
        ("rcid".into(), some(Value::Int(rng.random_range(0..64)))),
        ("field".into(), some(Value::Int(rng.random_range(200..900)))),
        ("ra".into(), Value::Double(ra)),
        ("dec".into(), Value::Double(dec)),
        ("magpsf".into(), Value::Float(mag as f32)),
        ("sigmapsf".into(), Value::Float(rng.random_range(0.02..0.2))),
        ("chipsf".into(), f(rng.random_range(0.5..3.0))),
        ("magap".into(), f(mag + rng.random_range(-0.1..0.1))),
        ("sigmagap".into(), f(rng.random_range(0.02..0.2))),
        ("distnr".into(), f(distnr)),
        ("magnr".into(), f(mag + rng.random_range(-1.0..2.0))),
        ("sigmagnr".into(), f(rng.random_range(0.01..0.1))),
        ("sharpnr".into(), f(rng.random_range(-0.1..0.1))),
        ("sky".into(), f(rng.random_range(-1.0..1.0))),
        ("fwhm".into(), f(rng.random_range(1.5..4.0))),
        ("classtar".into(), f(rng.random_range(0.0..1.0))),
        ("elong".into(), f(rng.random_range(1.0..1.6))),
        (
            "nbad".into(),
            some(Value::Int(if real { 0 } else { rng.random_range(0..5) })),
        ),
        ("rb".into(), f(rb)),
        ("ssdistnr".into(), f(ssdistnr)),
        ("ssmagnr".into(), f(ssmagnr)),
        ("ssnamenr".into(), ssname),
        ("sumrat".into(), f(rng.random_range(0.6..1.0))),
        ("magapbig".into(), f(mag + rng.random_range(-0.1..0.1))),
        ("ranr".into(), some(Value::Double(ra))),
        ("decnr".into(), some(Value::Double(dec))),
        ("sgmag1".into(), f(mag + rng.random_range(-1.0..1.0))),
        ("srmag1".into(), f(mag + rng.random_range(-1.0..1.0))),
        ("sgscore1".into(), f(sgscore1)),
        ("distpsnr1".into(), f(distpsnr1)),
        ("ndethist".into(), Value::Int(ndethist)),
        (
            "ncovhist".into(),
            Value::Int(ndethist + rng.random_range(0..200)),
        ),
        ("jdstarthist".into(), some(Value::Double(jdstarthist))),
        ("jdendhist".into(), some(Value::Double(jd))),
        ("tooflag".into(), some(Value::Int(0))),
        (
            "objectidps1".into(),
            some(Value::Long(rng.random_range(1..i64::MAX))),
        ),
        ("drb".into(), f(drb)),
        ("drbversion".into(), some(Value::String("d6_m7".into()))),
    ]);
    let prv: Vec<Value> = history
        .iter()
        .map(|&(pjd, pfid, pmag)| {
            Value::Record(vec![
                ("jd".into(), Value::Double(pjd)),
                ("fid".into(), Value::Int(pfid)),
                ("pid".into(), Value::Long(candid / 1000 - 1)),
                ("diffmaglim".into(), f(20.5)),
                ("candid".into(), some(Value::Long(candid - 1))),
                ("isdiffpos".into(), some(Value::String("t".into()))),
                ("ra".into(), some(Value::Double(ra))),
                ("dec".into(), some(Value::Double(dec))),
                ("magpsf".into(), f(pmag)),
                ("sigmapsf".into(), f(0.08)),
                ("rb".into(), f(rb)),
                ("drb".into(), f(drb)),
            ])
        })
        .collect();
    let prv_candidates = if prv.is_empty() {
        none()
    } else {
        some(Value::Array(prv))
    };
    Value::Record(vec![
        ("schemavsn".into(), Value::String("demo-1".into())),
        ("publisher".into(), Value::String("bandpass demo".into())),
        (
            "objectId".into(),
            Value::String(format!("ZTF26demo{:05}", i)),
        ),
        ("candid".into(), Value::Long(candid)),
        ("candidate".into(), candidate),
        ("prv_candidates".into(), prv_candidates),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_the_same_alerts_for_the_same_seed() {
        let a = generate(20, 7).unwrap();
        let b = generate(20, 7).unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| x.bytes == y.bytes));
        assert!(a.iter().all(|x| x.bytes.starts_with(b"Obj\x01")));
        let c = generate(20, 8).unwrap();
        assert!(a.iter().zip(&c).any(|(x, y)| x.bytes != y.bytes));
    }
}
