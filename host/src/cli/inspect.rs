//! `bandpass inspect FILTER.wasm`: validate a component as a host would
//! before running it, and show what it is.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::EngineArgs;
use super::format::thousands;
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    println!("{}: a valid bandpass filter", args.filter.display());
    println!("  size       {} bytes", thousands(report.size as u64));
    println!("  sha256     {}", report.sha256);
    println!(
        "  contract   bandpass:filter@{} (host speaks {CONTRACT_VERSION})",
        report.contract
    );
    if let Some(m) = &report.manifest {
        println!("  name       {} {}", m.name, m.version);
        println!("  survey     {}", m.survey);
        println!("  about      {}", m.description);
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
    Ok(0)
}
