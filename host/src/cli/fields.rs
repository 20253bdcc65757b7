//! `bandpass fields ALERT`: every field path a filter can declare for
//! alerts of that alert's schema, with its Avro type.

use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;

use crate::decode::{Decoder, SchemaSource};

#[derive(Debug, Args)]
pub struct FieldsArgs {
    /// One alert file (.avro container file, or a wire-format message
    /// with --schemas).
    pub alert: PathBuf,
    /// Directory of schemas for wire-format messages.
    #[arg(long, value_name = "DIR")]
    pub schemas: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn execute(args: FieldsArgs) -> anyhow::Result<u8> {
    let source = args.schemas.map(SchemaSource::Dir).unwrap_or_default();
    let decoder = Decoder::new(Vec::new(), source);
    let bytes = std::fs::read(&args.alert)
        .with_context(|| format!("cannot read {}", args.alert.display()))?;
    let alerts = decoder
        .decode(&Bytes::from(bytes))
        .with_context(|| format!("{} does not decode", args.alert.display()))?;
    let schema = &alerts[0].schema;
    let fields = decoder
        .schema_fields(schema)
        .context("the schema was decoded but is no longer cached (a bug)")?;
    if args.json {
        let doc = serde_json::json!({
            "schema": schema.full_name,
            "survey": schema.survey,
            "version": schema.version,
            "fields": fields.iter().map(|(p, t)| serde_json::json!({"path": p, "type": t})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    println!(
        "{} (survey {}, version {}): {} fields; a path through an array is a column",
        schema.full_name,
        schema.survey,
        schema.version.as_deref().unwrap_or("unknown"),
        fields.len()
    );
    let width = fields.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    for (path, ty) in &fields {
        println!("  {path:<width$}  {ty}");
    }
    Ok(0)
}
