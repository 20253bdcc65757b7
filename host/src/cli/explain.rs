//! `bandpass test FILTER.wasm --explain ALERT`: what the filter received
//! for one alert, field by field, and what it decided. The values are the
//! ones the contract sent (after the decoder, before the SDK), so a
//! surprise here is in the data or the path, and not in the filter's code.

use std::fmt::Write as _;

use crate::decode::FieldValue;
use crate::runner::AlertResult;
use crate::sandbox::{LoadedFilter, Outcome, Verdict};
use crate::text::shown;

/// Most column elements shown per field; the length is always shown.
const SHOWN_ELEMENTS: usize = 8;
/// Longest text shown per value.
const SHOWN_TEXT_BYTES: usize = 80;

/// The explanation of one alert's evaluation by `filter`, whose fields
/// sit at `slots` among the alert's values.
pub(crate) fn explain(
    name: &str,
    filter: &LoadedFilter,
    slots: &[usize],
    result: &AlertResult,
) -> String {
    let mut out = String::new();
    let schema = &result.alert.schema;
    let _ = writeln!(
        out,
        "{} {} on {} ({} {}; object {}, candidate {})",
        filter.manifest.name,
        filter.manifest.version,
        shown(name, 256),
        schema.full_name,
        schema.version.as_deref().unwrap_or("(no version)"),
        result.id.object_id.as_deref().unwrap_or("-"),
        result.id.candidate_id.as_deref().unwrap_or("-"),
    );
    let _ = writeln!(out, "\nreceived:");
    let width = filter
        .fields
        .iter()
        .map(|f| f.text.len() + usize::from(f.optional))
        .max()
        .unwrap_or(0);
    for (field, &slot) in filter.fields.iter().zip(slots) {
        let declared = if field.optional {
            format!("{}?", field.text)
        } else {
            field.text.clone()
        };
        let value = match result.alert.values.get(slot) {
            // A cross-match's columns are absent only for want of a
            // position: nothing in the alert was null.
            Some(FieldValue::Absent)
                if field.text.starts_with(crate::decode::XMATCH_PREFIX)
                    || field.text.starts_with(crate::decode::MAP_PREFIX)
                    || field.text.starts_with(crate::decode::WATCH_PREFIX) =>
            {
                "absent (the alert has no position: no search was run)".into()
            }
            Some(v) => described(v),
            None => "(not decoded)".into(),
        };
        let _ = writeln!(out, "  {declared:<width$}  {value}");
    }
    let e = &result.evaluations[0];
    let _ = writeln!(out, "\nverdict:");
    match &e.outcome {
        Outcome::Verdict(Verdict::Reject) => {
            let _ = writeln!(out, "  reject");
        }
        Outcome::Verdict(Verdict::Accept {
            score,
            tags,
            annotations,
        }) => {
            let _ = writeln!(
                out,
                "  accept, score {}",
                score.map_or("none".into(), |s| format!("{s:?}"))
            );
            let tags: Vec<String> = tags.iter().map(|t| shown(t, 256).into_owned()).collect();
            let _ = writeln!(out, "  tags   {}", tags.join(", "));
            for (k, v) in annotations {
                let _ = writeln!(out, "  note   {} = {}", shown(k, 256), shown(v, 256));
            }
        }
        Outcome::Failed(f) => {
            let _ = writeln!(out, "  ERROR {}: {}", f.kind.name(), f.message);
        }
        Outcome::Skipped { reason, .. } => {
            let _ = writeln!(out, "  skipped: {reason}");
        }
    }
    if filter.manifest.state.is_some() {
        let change = match &e.state {
            crate::sandbox::StateChange::Keep => "unchanged".to_string(),
            crate::sandbox::StateChange::Set(b) => format!(
                "set to {} ({} bytes)",
                shown(&String::from_utf8_lossy(b), 1024),
                b.len()
            ),
            crate::sandbox::StateChange::Forget => "forgotten".to_string(),
        };
        let _ = writeln!(out, "  state  {change}");
    }
    let _ = writeln!(out, "  fuel {}, time {} µs", e.fuel, e.nanos / 1000);
    out
}

/// A value as the filter received it: its kind, then the value.
fn described(value: &FieldValue) -> String {
    match value {
        FieldValue::Missing => "absent (this alert's schema has no such path)".into(),
        FieldValue::Absent => "absent (null in this alert)".into(),
        FieldValue::Boolean(b) => format!("boolean  {b}"),
        FieldValue::Integer(i) => format!("integer  {i}"),
        FieldValue::Real(r) => format!("real     {r:?}"),
        FieldValue::Text(t) => format!("text     \"{}\"", shown(t, SHOWN_TEXT_BYTES)),
        FieldValue::Bytes(b) => format!("bytes    {} bytes", b.len()),
        FieldValue::Booleans(c) => column("booleans", c, |b| b.to_string()),
        FieldValue::Integers(c) => column("integers", c, |i| i.to_string()),
        FieldValue::Reals(c) => column("reals", c, |r| format!("{r:?}")),
        FieldValue::Texts(c) => column("texts", c, |t| {
            format!("\"{}\"", shown(t, SHOWN_TEXT_BYTES))
        }),
    }
}

/// A column: its kind and length, then its first elements (`null` where
/// an element is null).
fn column<T>(kind: &str, values: &[Option<T>], show: impl Fn(&T) -> String) -> String {
    let mut shown: Vec<String> = values
        .iter()
        .take(SHOWN_ELEMENTS)
        .map(|v| v.as_ref().map_or("null".into(), &show))
        .collect();
    if values.len() > SHOWN_ELEMENTS {
        shown.push(format!("... {} more", values.len() - SHOWN_ELEMENTS));
    }
    format!("{kind}[{}]  {}", values.len(), shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_say_their_kind_and_columns_their_length() {
        assert_eq!(described(&FieldValue::Real(18.5)), "real     18.5");
        assert_eq!(
            described(&FieldValue::Text("t\x1b[2J".into())),
            "text     \"t\\u{1b}[2J\""
        );
        let long: Vec<Option<f64>> = (0..10).map(|i| (i != 1).then_some(i as f64)).collect();
        assert_eq!(
            described(&FieldValue::Reals(long)),
            "reals[10]  0.0, null, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, ... 2 more"
        );
        assert!(described(&FieldValue::Missing).contains("schema has no such path"));
    }
}
