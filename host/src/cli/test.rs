//! `bandpass test FILTER.wasm ALERTS...`: one filter, its verdict on each
//! alert, what each cost, and a summary. The filter author's loop, on the
//! same engine and limits as production.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::format::{Table, Tally, counted, duration, outcome_cells, state_json, thousands};
use super::paths::FieldWatch;
use super::{EngineArgs, MemoryArgs, SkyArgs};
use crate::input;
use crate::runner::Runner;
use crate::sandbox::{LoadedFilter, Outcome};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The filter component (.wasm).
    pub filter: PathBuf,
    /// Alert files (.avro), directories of them, or .tar.gz archives.
    #[arg(required_unless_present = "explain", conflicts_with = "explain")]
    pub alerts: Vec<PathBuf>,
    /// Run one alert file and show what the filter received for each of
    /// its declared fields, then its verdict.
    #[arg(long, value_name = "ALERT", conflicts_with = "json")]
    pub explain: Option<PathBuf>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also print the filter's log (its stdout, stderr and log lines).
    #[arg(long)]
    pub show_log: bool,
    #[command(flatten)]
    pub memory: MemoryArgs,
    #[command(flatten)]
    pub sky: SkyArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub fn execute(args: TestArgs) -> anyhow::Result<u8> {
    let sandbox = args.engine.sandbox()?;
    let filter = args.engine.load(&sandbox, &args.filter)?;
    let filters = std::slice::from_ref(&filter);
    let host = crate::runner::HostFields {
        kept: args.memory.kept(None)?,
        sky: args.sky.sky(None)?,
    };
    let (folders, checks) = args.engine.check_paths(filters, &host)?;
    if !checks[0].refused.is_empty() {
        return Ok(2);
    }
    let mut runner = Runner::new(filters, args.engine.schema_source(), host);
    // `--explain` too: with `--state`, the alert meets what earlier runs kept.
    let timed = args.memory.attach(&mut runner, None)?;
    if let Some(alert) = &args.explain {
        return explain_one(&mut runner, &filter, alert);
    }
    let mut watch = FieldWatch::new(&runner, folders);

    let mut table = Table::new(&[
        "ALERT",
        "OBJECT",
        "CANDIDATE",
        "VERDICT",
        "FUEL",
        "TIME",
        "SCORE/TAGS/REASON",
    ]);
    let mut rows = Vec::new();
    let mut input_errors = Vec::new();
    let mut tally = Tally::default();
    // Alerts not run because the filter was quarantined by then.
    let mut unseen = 0usize;
    for item in super::ordered(&runner, &args.alerts, timed)? {
        let results = item
            .bytes
            .map_err(|e| e.to_string())
            .and_then(|bytes| runner.process(&bytes).map_err(|e| e.to_string()));
        let results = match results {
            Ok(r) => r,
            Err(why) => {
                table.row(vec![
                    item.name.clone(),
                    "-".into(),
                    "-".into(),
                    "UNREADABLE".into(),
                    "-".into(),
                    "-".into(),
                    why.clone(),
                ]);
                input_errors.push(serde_json::json!({"input": item.name, "error": why}));
                continue;
            }
        };
        for result in results {
            watch.observe(&result, runner.decoder());
            let e = &result.evaluations[0];
            tally.add(e);
            if matches!(
                e.outcome,
                Outcome::Skipped {
                    quarantined: true,
                    ..
                }
            ) {
                unseen += 1;
            }
            let (verdict, detail) = outcome_cells(e);
            table.row(vec![
                item.name.clone(),
                result.id.object_id.clone().unwrap_or_else(|| "-".into()),
                result.id.candidate_id.clone().unwrap_or_else(|| "-".into()),
                verdict,
                thousands(e.fuel),
                duration(e.nanos),
                detail,
            ]);
            rows.push(serde_json::json!({
                "input": item.name,
                "object_id": result.id.object_id,
                "candidate_id": result.id.candidate_id,
                "schema": result.alert.schema.full_name,
                "result": e,
                "state": state_json(e),
            }));
        }
    }

    if tally.alerts() == 0 && input_errors.is_empty() {
        anyhow::bail!(
            "no alert files in {}: give .avro files, folders of them or .tar.gz archives",
            shown_paths(&args.alerts)
        );
    }
    let findings = watch.findings(0, &filter);
    let memory = super::memory_report(&runner, &args.memory);
    let quarantined = filter.health.quarantined();
    let (dropped_lines, cut_bytes) = filter.log.dropped();
    if args.json {
        let doc = serde_json::json!({
            "filter": {
                "file": args.filter.display().to_string(),
                "sha256": filter.sha256,
                "manifest": filter.manifest,
            },
            "alerts": rows,
            "input_errors": input_errors,
            "summary": {
                "tally": tally,
                "stats": tally.stats(),
                "quarantined": quarantined,
                "log_lines_dropped": dropped_lines,
                "log_bytes_cut": cut_bytes,
            },
            "memory": memory,
            "paths": {"checked_against": checks[0].checked_against, "notes": checks[0].notes, "after_run": findings},
            "log": filter.log.lines(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let m = &filter.manifest;
        println!(
            "{} {} ({} alerts; {} fields) from {}\n",
            m.name,
            m.version,
            m.survey,
            m.fields.len(),
            args.filter.display()
        );
        print!("{}", table.render());
        println!(
            "\n{}: {} accepted, {} rejected, {} skipped, {} errors; {} unreadable inputs",
            counted(tally.alerts(), "alert"),
            tally.accepted,
            tally.rejected,
            tally.skipped,
            tally.errors,
            input_errors.len()
        );
        for (kind, n) in &tally.errors_by_kind {
            println!("  {n} x {kind}");
        }
        println!(
            "fuel p50 {} p99 {}; time p50 {} p99 {}",
            tally.fuel_cell(50.0),
            tally.fuel_cell(99.0),
            tally.time_cell(50.0),
            tally.time_cell(99.0),
        );
        if let Some(reason) = &quarantined {
            println!("QUARANTINED: {reason}");
            if unseen > 0 {
                println!(
                    "  the {unseen} alerts after it were not run: --quarantine-after {} runs \
                     every one of them and shows each failure",
                    tally.alerts() + 1
                );
            }
        }
        if dropped_lines + cut_bytes > 0 {
            println!(
                "log truncated: {dropped_lines} lines dropped, {cut_bytes} bytes cut (of {} written)",
                filter.log.total_bytes()
            );
        }
        super::print_memory_report(&memory);
        if args.show_log {
            println!("\nfilter log:");
            for line in filter.log.lines() {
                println!("  [{:?}] {}", line.source, line.text);
            }
        }
    }
    if !args.json {
        findings.report(&filter);
    }
    let failed = tally.errors > 0 || quarantined.is_some() || super::memory_failed(&memory);
    Ok(if failed {
        1
    } else if !input_errors.is_empty() {
        3
    } else {
        0
    })
}

/// The paths given, for a message.
fn shown_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    crate::text::shown(&shown.join(", "), 1024).into_owned()
}

/// `--explain ALERT`: each alert in the file, field by field.
fn explain_one(
    runner: &mut Runner,
    filter: &Arc<LoadedFilter>,
    alert: &Path,
) -> anyhow::Result<u8> {
    let slots = runner.slots(0).to_vec();
    let mut status = 0;
    let mut alerts = 0;
    for item in input::items(std::slice::from_ref(&alert.to_path_buf())) {
        let results = item
            .bytes
            .map_err(|e| e.to_string())
            .and_then(|bytes| runner.process(&bytes).map_err(|e| e.to_string()))
            .map_err(|why| anyhow::anyhow!("{}: {why}", item.name))?;
        for result in &results {
            if alerts > 0 {
                println!();
            }
            alerts += 1;
            print!(
                "{}",
                super::explain::explain(&item.name, filter, &slots, result)
            );
            if matches!(result.evaluations[0].outcome, Outcome::Failed(_)) {
                status = 1;
            }
        }
    }
    if alerts == 0 {
        anyhow::bail!(
            "no alert in {}: give one .avro alert file",
            crate::text::shown(&alert.display().to_string(), 1024)
        );
    }
    Ok(status)
}
