//! `[[filter]]`: the filters the config file deploys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{EngineConfig, InputConfig, Invalid};
use crate::sandbox::Budget;
use crate::text::is_name;

/// One deployed filter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The component file.
    pub path: PathBuf,
    /// Where its accepted alerts go.
    pub output_topic: String,
    /// Deployment name, `[a-z0-9-]`: in the `bandpass-filter` header, the
    /// metrics and the logs. Defaults to the manifest's name; needed when
    /// one component is deployed twice (say, with two parameter sets).
    #[serde(default)]
    pub name: Option<String>,
    /// Parameters passed to `init`, as text: TOML numbers and booleans
    /// are written as the upload API writes JSON ones (`18.5`, `true`).
    #[serde(default, deserialize_with = "params_as_text")]
    pub params: BTreeMap<String, String>,
    /// Overrides of the engine's default limits, within `max_limits`.
    #[serde(default)]
    pub limits: Option<Budget>,
    /// Loaded but not run.
    #[serde(default)]
    pub disabled: bool,
}

/// `params`, each value as the text `init` receives: a string as it is,
/// a number or boolean as the upload API writes a JSON one, so that the
/// same parameters give the same text by either way.
fn params_as_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, toml::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let text = match v {
                toml::Value::String(t) => t,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(x) => serde_json::Number::from_f64(x)
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "params.{k}: {x} is not a number a filter can be given"
                        ))
                    })?
                    .to_string(),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "params.{k}: give a string, a number or true/false, not {}",
                        other.type_str()
                    )));
                }
            };
            Ok((k, text))
        })
        .collect()
}

/// The rules of each `[[filter]]`, against the input and dead-letter
/// topics and the engine's maximum limits.
pub(super) fn check(
    filters: &[FilterConfig],
    input: &InputConfig,
    dead_letter_topic: &str,
    engine: &EngineConfig,
) -> Result<(), Invalid> {
    let max = engine.max_limits;
    for (i, f) in filters.iter().enumerate() {
        let key = format!("filter[{i}]");
        if let Some(name) = &f.name
            && !is_name(name, 64)
        {
            return Err(Invalid::new(
                format!("{key}.name"),
                format!(
                    "'{name}' is not a name: use lowercase letters, digits and dashes (at most 64)"
                ),
            ));
        }
        if f.output_topic.is_empty() {
            return Err(Invalid::new(
                format!("{key}.output_topic"),
                "must not be empty".into(),
            ));
        }
        if input.topics.contains(&f.output_topic) || f.output_topic == dead_letter_topic {
            return Err(Invalid::new(
                format!("{key}.output_topic"),
                format!(
                    "'{}' is an input or the dead-letter topic: it would loop",
                    f.output_topic
                ),
            ));
        }
        let limits = f.limits.unwrap_or(engine.limits);
        if !limits.within(&max) {
            return Err(Invalid::new(
                format!("{key}.limits"),
                format!("over engine.max_limits ({})", max.describe()),
            ));
        }
    }
    Ok(())
}
