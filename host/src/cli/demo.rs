//! `bandpass demo`: the embedded default. Generates synthetic ZTF-shaped
//! alerts, runs the sample filters over them on the production engine,
//! and shows what each accepted, next to what the generator drew.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;

use super::EngineArgs;
use super::format::{Table, Tally, thousands};
use crate::demo::{self, Mix, Population};
use crate::runner::Runner;
use crate::sandbox::{LoadedFilter, Outcome, Verdict};

/// The sample filters the demo runs, by component file stem.
pub const DEMO_FILTERS: &[&str] = &[
    "bright_transients",
    "asteroids",
    "fast_risers",
    "nuclear_transients",
    "rubin_bright",
];

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder holding the built sample filters; by default the
    /// `sample-filters` build output of this source tree.
    #[arg(long, value_name = "DIR")]
    pub filters: Option<PathBuf>,
    /// How many alerts to generate.
    #[arg(long, default_value_t = 2000)]
    pub alerts: usize,
    /// Seed of the generator (the same seed gives the same alerts).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Accepted alerts listed per filter.
    #[arg(long, default_value_t = 5)]
    pub show: usize,
    /// Write the alerts as files instead of running the filters: `--alerts`
    /// ZTF-shaped ones to DIR/ztf and as many Rubin-shaped ones to
    /// DIR/rubin, each kind of source in turn and named by it
    /// (`fast-riser-3.avro`), for `bandpass test` to show accept paths on.
    #[arg(long, value_name = "DIR")]
    pub write: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

fn default_filter_dirs() -> Vec<PathBuf> {
    let built = "sample-filters/target/wasm32-wasip2/release";
    vec![
        PathBuf::from(built),
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(built),
    ]
}

/// Most alerts `--write` writes per survey.
const MAX_WRITTEN: usize = 100_000;

pub fn execute(args: DemoArgs) -> anyhow::Result<u8> {
    if let Some(dir) = &args.write {
        return write_alerts(dir, args.alerts, args.seed);
    }
    let dirs = args
        .filters
        .clone()
        .map(|d| vec![d])
        .unwrap_or_else(default_filter_dirs);
    let dir = dirs
        .iter()
        .find(|d| d.join(format!("{}.wasm", DEMO_FILTERS[0])).exists())
        .with_context(|| {
            format!(
                "no built sample filters in {}: run scripts/demo.sh, which builds them, \
                 or build them with scripts/build-filters.sh",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        })?;

    let sandbox = args.engine.sandbox()?;
    let mut filters: Vec<Arc<LoadedFilter>> = Vec::new();
    let load_start = Instant::now();
    for name in DEMO_FILTERS {
        filters.push(
            args.engine
                .load(&sandbox, &dir.join(format!("{name}.wasm")))?,
        );
    }
    let load_time = load_start.elapsed();

    let alerts = demo::generate(args.alerts, args.seed)?;
    let mut runner = Runner::new(&filters, args.engine.schema_source(), Default::default());
    let mut tallies = vec![Tally::default(); filters.len()];
    let mut drawn: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); filters.len()];
    let mut shown: Vec<Vec<String>> = vec![Vec::new(); filters.len()];
    let started = Instant::now();
    for alert in &alerts {
        let results = runner
            .process(&Bytes::copy_from_slice(&alert.bytes))
            .context("a generated alert did not decode (a bug in the generator)")?;
        for result in results {
            for (i, e) in result.evaluations.iter().enumerate() {
                tallies[i].add(e);
                if let Outcome::Verdict(Verdict::Accept { score, tags, .. }) = &e.outcome {
                    *drawn[i]
                        .entry(population_name(alert.population))
                        .or_default() += 1;
                    if shown[i].len() < args.show {
                        shown[i].push(format!(
                            "{}  score {}  tags {}  (drawn as {})",
                            result.id.object_id.as_deref().unwrap_or("-"),
                            score
                                .map(|s| format!("{s:.3}"))
                                .unwrap_or_else(|| "-".into()),
                            if tags.is_empty() {
                                "-".into()
                            } else {
                                crate::text::joined_tags(tags)
                            },
                            population_name(alert.population),
                        ));
                    }
                }
            }
        }
    }
    let elapsed = started.elapsed();

    println!(
        "bandpass demo: {} synthetic ZTF-shaped alerts (seed {}) through {} sample filters from {}\n",
        thousands(alerts.len() as u64),
        args.seed,
        filters.len(),
        dir.display()
    );
    let mut table = Table::new(&[
        "FILTER",
        "ACCEPTED",
        "REJECTED",
        "SKIPPED",
        "ERRORS",
        "FUEL p50",
        "TIME p50",
        "ACCEPTED WERE DRAWN AS",
    ]);
    for ((f, t), d) in filters.iter().zip(&tallies).zip(&drawn) {
        table.row(vec![
            f.name.clone(),
            thousands(t.accepted),
            thousands(t.rejected),
            thousands(t.skipped),
            thousands(t.errors),
            t.fuel_cell(50.0),
            t.time_cell(50.0),
            d.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    print!("{}", table.render());
    for (f, lines) in filters.iter().zip(&shown) {
        if lines.is_empty() {
            continue;
        }
        println!(
            "\n{} ({}) accepted, for example:",
            f.name, f.manifest.description
        );
        for l in lines {
            println!("  {l}");
        }
    }
    println!(
        "\nfilters loaded in {:.0} ms; {} alerts decoded once and filtered {} times in {:.0} ms ({}/s)",
        load_time.as_secs_f64() * 1e3,
        thousands(alerts.len() as u64),
        thousands((alerts.len() * filters.len()) as u64),
        elapsed.as_secs_f64() * 1e3,
        thousands((alerts.len() as f64 / elapsed.as_secs_f64().max(1e-9)) as u64),
    );
    println!(
        "next: `bandpass test <filter.wasm> ../shared/data/ztf/alerts` runs a filter on real alerts"
    );
    let failed = tallies.iter().any(|t| t.errors > 0);
    Ok(u8::from(failed))
}

fn population_name(p: Population) -> String {
    format!("{p:?}")
        .chars()
        .flat_map(|c| {
            if c.is_uppercase() {
                vec!['-', c.to_ascii_lowercase()]
            } else {
                vec![c]
            }
        })
        .skip(1)
        .collect()
}

/// `--write DIR`: the generated alerts as files, one per alert.
fn write_alerts(dir: &Path, count: usize, seed: u64) -> anyhow::Result<u8> {
    if count > MAX_WRITTEN {
        anyhow::bail!("--alerts {count} with --write: at most {MAX_WRITTEN} files per survey");
    }
    for survey in ["ztf", "rubin"] {
        let alerts = demo::generate_for(survey, count, seed, Mix::EachInTurn)?;
        let folder = dir.join(survey);
        if std::fs::read_dir(&folder).is_ok_and(|mut d| d.next().is_some()) {
            anyhow::bail!(
                "{} already holds files: remove it, or give another --write folder",
                folder.display()
            );
        }
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        for (i, alert) in alerts.iter().enumerate() {
            let file = folder.join(format!("{}-{i}.avro", alert.population.name()));
            std::fs::write(&file, &alert.bytes)
                .with_context(|| format!("cannot write {}", file.display()))?;
        }
        println!("{count} synthetic {survey} alerts in {}", folder.display());
    }
    Ok(0)
}
