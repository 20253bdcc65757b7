//! The synthetic alert generator behind `bandpass demo`.
//!
//! Makes ZTF-shaped alerts with the project's own schema
//! (`schemas/demo-alert.avsc`), one Avro container file per alert as ZTF
//! publishes them, drawn from a few populations with plausible values:
//! bogus subtractions, known asteroids, nuclear transients in galaxies,
//! fast-rising transients, variable stars and ordinary faint sources.
//! And Rubin-shaped ones (`schemas/demo-rubin-alert.avsc`, the Rubin
//! fields filters read most) from the same populations. Deterministic for
//! a given seed.
//!
//! Must never: be mistaken for real data; the schema says it is simulated.

use apache_avro::types::Value;
use apache_avro::{Schema, Writer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The demo alert schema, embedded.
pub const SCHEMA: &str = include_str!("../../schemas/demo-alert.avsc");
/// The Rubin-shaped demo alert schema, embedded.
pub const RUBIN_SCHEMA: &str = include_str!("../../schemas/demo-rubin-alert.avsc");

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
    /// A short name, for file names and reports.
    pub fn name(self) -> &'static str {
        match self {
            Population::Bogus => "bogus",
            Population::Asteroid => "asteroid",
            Population::Nuclear => "nuclear",
            Population::FastRiser => "fast-riser",
            Population::VariableStar => "variable-star",
            Population::Ordinary => "ordinary",
        }
    }

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

/// How the populations are mixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Drawn at random in the demo's proportions (a night's stream).
    Drawn,
    /// Each population in turn, so that a few alerts hold every kind.
    EachInTurn,
}

const POPULATIONS: [Population; 6] = [
    Population::Bogus,
    Population::Asteroid,
    Population::Nuclear,
    Population::FastRiser,
    Population::VariableStar,
    Population::Ordinary,
];

/// Generates `count` ZTF-shaped alerts from `seed`.
pub fn generate(count: usize, seed: u64) -> anyhow::Result<Vec<DemoAlert>> {
    generate_with(SCHEMA, alert, count, seed, Mix::Drawn)
}

/// Generates `count` alerts of `survey` (`ztf` or `rubin`) from `seed`.
pub fn generate_for(
    survey: &str,
    count: usize,
    seed: u64,
    mix: Mix,
) -> anyhow::Result<Vec<DemoAlert>> {
    match survey {
        "ztf" => generate_with(SCHEMA, alert, count, seed, mix),
        "rubin" => generate_with(RUBIN_SCHEMA, rubin_alert, count, seed, mix),
        other => anyhow::bail!("no synthetic alerts of survey '{other}': ztf or rubin"),
    }
}

fn generate_with(
    schema: &str,
    make: fn(&mut StdRng, usize, Population) -> Value,
    count: usize,
    seed: u64,
    mix: Mix,
) -> anyhow::Result<Vec<DemoAlert>> {
    let schema = Schema::parse_str(schema)?;
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let population = match mix {
                Mix::Drawn => Population::draw(&mut rng),
                Mix::EachInTurn => POPULATIONS[i % POPULATIONS.len()],
            };
            let value = make(&mut rng, i, population);
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

/// Modified Julian date (TAI) of the simulated Rubin night.
const NIGHT_MJD_TAI: f64 = 61_000.1;
/// The AB zero point of a flux in nJy.
const AB_ZERO_POINT_NJY: f64 = 31.4;
const RUBIN_BANDS: [&str; 6] = ["u", "g", "r", "i", "z", "y"];

/// What every detection of one simulated Rubin object shares.
struct RubinObject {
    id: i64,
    band: &'static str,
    /// Relative flux error.
    err: f64,
    /// Reliability score.
    real: f64,
    position: (f64, f64),
}

/// One Rubin DIA source of `o`.
fn rubin_source(
    o: &RubinObject,
    id: i64,
    mjd: f64,
    mag: f64,
    sso: Option<i64>,
    saturated: bool,
) -> Value {
    let RubinObject {
        id: object,
        band,
        err,
        real,
        position: (ra, dec),
    } = *o;
    let flux = 10f64.powf((AB_ZERO_POINT_NJY - mag) / 2.5);
    let flux_err = flux * err;
    let long = |v: Option<i64>| v.map_or_else(none, |v| some(Value::Long(v)));
    Value::Record(vec![
        ("diaSourceId".into(), Value::Long(id)),
        ("visit".into(), Value::Long(id / 1000)),
        ("detector".into(), Value::Int((id % 189) as i32)),
        ("diaObjectId".into(), long(Some(object))),
        ("ssObjectId".into(), long(sso)),
        ("midpointMjdTai".into(), Value::Double(mjd)),
        ("ra".into(), Value::Double(ra)),
        ("dec".into(), Value::Double(dec)),
        ("band".into(), some(Value::String(band.into()))),
        ("psfFlux".into(), f(flux)),
        ("psfFluxErr".into(), f(flux_err)),
        ("snr".into(), f(flux / flux_err)),
        ("reliability".into(), f(real)),
        ("isNegative".into(), some(Value::Boolean(false))),
        (
            "pixelFlags_saturatedCenter".into(),
            some(Value::Boolean(saturated)),
        ),
    ])
}

fn rubin_alert(rng: &mut StdRng, i: usize, pop: Population) -> Value {
    let id = 4_000_000_000_000 + i as i64 * 10;
    let object = 5_000_000_000_000 + i as i64;
    let mjd = NIGHT_MJD_TAI + rng.random_range(0.0..0.3);
    let band = RUBIN_BANDS[rng.random_range(1..5)];
    let position = (rng.random_range(0.0..360.0), rng.random_range(-90.0..10.0));
    let real = match pop {
        Population::Bogus => rng.random_range(0.0..0.3),
        _ => rng.random_range(0.6..1.0),
    };
    let mag: f64 = match pop {
        Population::FastRiser | Population::Nuclear => rng.random_range(19.0..22.5),
        Population::VariableStar => rng.random_range(16.0..21.0),
        _ => rng.random_range(21.5..24.8),
    };
    // Relative flux error: smaller for brighter sources.
    let err = 0.01 * 10f64.powf((mag - 20.0) / 5.0) * rng.random_range(0.8..1.2);
    let sso = (pop == Population::Asteroid).then(|| rng.random_range(1..1_000_000));
    let saturated = pop == Population::VariableStar && rng.random_bool(0.3);
    let o = RubinObject {
        id: object,
        band,
        err,
        real,
        position,
    };
    let history: Vec<Value> = match pop {
        Population::Asteroid | Population::Bogus => Vec::new(),
        _ => (1..=rng.random_range(1..6))
            .map(|k| {
                let dt = k as f64 * rng.random_range(1.0..3.0);
                let rise = if pop == Population::FastRiser {
                    0.5 * dt
                } else {
                    rng.random_range(-0.2..0.3)
                };
                rubin_source(&o, id - k, mjd - dt, mag + rise, None, false)
            })
            .collect(),
    };
    let sources = history.len() as i32 + 1;
    let source = rubin_source(&o, id, mjd, mag, sso, saturated);
    Value::Record(vec![
        ("alertId".into(), Value::Long(id)),
        ("diaSource".into(), source),
        (
            "prvDiaSources".into(),
            if history.is_empty() {
                none()
            } else {
                some(Value::Array(history))
            },
        ),
        (
            "diaObject".into(),
            some(Value::Record(vec![
                ("diaObjectId".into(), Value::Long(object)),
                ("ra".into(), Value::Double(position.0)),
                ("dec".into(), Value::Double(position.1)),
                ("nDiaSources".into(), Value::Int(sources)),
            ])),
        ),
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
        let r = generate_for("rubin", 12, 7, Mix::EachInTurn).unwrap();
        let again = generate_for("rubin", 12, 7, Mix::EachInTurn).unwrap();
        assert!(r.iter().zip(&again).all(|(x, y)| x.bytes == y.bytes));
        assert!(
            r.iter()
                .zip(POPULATIONS.iter().cycle())
                .all(|(x, p)| x.population == *p)
        );
    }
}
