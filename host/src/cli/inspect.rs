//! `bandpass inspect FILTER.wasm`: validate a component as a host would
//! before running it, and show what it is.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::EngineArgs;
use super::format::thousands;
use crate::decode::{FieldPath, PathCheck};
use crate::sandbox::CONTRACT_VERSION;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The filter component (.wasm).
    pub filter: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub fn execute(args: InspectArgs) -> anyhow::Result<u8> {
    let sandbox = args.engine.sandbox()?;
    let bytes = std::fs::read(&args.filter)
        .with_context(|| format!("cannot read filter {}", args.filter.display()))?;
    let report = sandbox
        .inspect(&bytes)
        .with_context(|| format!("filter {} refused", args.filter.display()))?;
    let vocabulary = args.engine.vocabulary()?;
    let check = match &report.manifest {
        Some(m) => {
            let fields: Vec<FieldPath> = m
                .fields
                .iter()
                .filter_map(|f| FieldPath::parse(f).ok())
                .collect();
            vocabulary.check(&m.survey, &fields)
        }
        None => PathCheck::default(),
    };
    let status = if check.refused.is_empty() { 0 } else { 2 };
    if args.json {
        let mut doc = serde_json::to_value(&report)?;
        doc["paths"] = serde_json::to_value(&check)?;
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(status);
    }
    if status == 0 {
        println!("{}: a valid bandpass filter", args.filter.display());
    } else {
        let n = check.refused.len();
        println!(
            "{}: a valid component, but {n} of its declared fields {} in no known schema version (below)",
            args.filter.display(),
            if n == 1 { "is" } else { "are" }
        );
    }
    println!("  size       {} bytes", thousands(report.size as u64));
    println!("  sha256     {}", report.sha256);
    println!(
        "  contract   bandpass:filter@{} (host speaks {CONTRACT_VERSION}, and runs 0.2.0, 0.3.0 and 0.4.0)",
        report.contract
    );
    if let Some(m) = &report.manifest {
        println!("  name       {} {}", m.name, m.version);
        println!("  survey     {}", m.survey);
        println!("  about      {}", m.description);
        match &m.state {
            Some(s) => println!(
                "  state      format '{}', at most {} bytes per object",
                crate::text::shown(&s.format, 64),
                thousands(u64::from(s.max_bytes))
            ),
            None => println!("  state      none"),
        }
        if m.crossmatches.is_empty() {
            println!("  xmatch     none");
        }
        for c in &m.crossmatches {
            println!(
                "  xmatch     '{}': catalogue '{}', within {} arcseconds, at most {} rows",
                c.name, c.catalog, c.radius_arcsec, c.max_rows
            );
        }
        println!("  fields     {}", m.fields.len());
        for f in &m.fields {
            println!("    {f}");
        }
    }
    println!("  imports    {}", report.imports.len());
    for i in &report.imports {
        println!("    {i}");
    }
    println!("  exports    {}", report.exports.join(", "));
    if check.checked() {
        println!(
            "  paths      checked against {}",
            check.checked_against.join(", ")
        );
    } else if vocabulary.is_empty() {
        println!("  paths      not checked against the survey's schemas (give --schemas-from DIR)");
    } else {
        println!(
            "  paths      not checked: the schema folders given hold no {} schema (they hold {})",
            report.manifest.as_ref().map_or("", |m| m.survey.as_str()),
            vocabulary.check("any", &[]).checked_against.join(", ")
        );
    }
    if let Some(m) = &report.manifest {
        super::paths::report(&m.name, &check);
    }
    Ok(status)
}
