//! `[[filter]]`: the filters the config file deploys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{EngineConfig, InputConfig, Invalid};
use crate::sandbox::Budget;
use crate::text::is_name;

/// One deployed filter: a `[[filter]]` entry, or one of its `sets`.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    /// Where it is written in the file, for messages: `filter[2]`, or
    /// `filter[2].sets[5]` for a parameter set.
    pub key: String,
    /// The component file.
    pub path: PathBuf,
    /// Where its accepted alerts go.
    pub output_topic: String,
    /// Deployment name, `[a-z0-9-]`: in the `bandpass-filter` header, the
    /// metrics and the logs. Defaults to the manifest's name; needed when
    /// one component is deployed twice (say, with two parameter sets).
    pub name: Option<String>,
    /// Parameters passed to `init`, as text: TOML numbers and booleans
    /// are written as the upload API writes JSON ones (`18.5`, `true`).
    pub params: BTreeMap<String, String>,
    /// Overrides of the engine's default limits, within `max_limits`.
    pub limits: Option<Budget>,
    /// Neither loaded nor run (`serve --check` lists it as disabled).
    pub disabled: bool,
}

/// A `[[filter]]` as written: one deployment, or one component with a
/// list of parameter sets, each a deployment of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterEntry {
    path: PathBuf,
    /// With `sets`: `{name}` stands for each set's name.
    output_topic: String,
    #[serde(default)]
    name: Option<String>,
    /// With `sets`: shared by every set (a set's own win).
    #[serde(default, deserialize_with = "params_as_text")]
    params: BTreeMap<String, String>,
    #[serde(default)]
    limits: Option<Budget>,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    sets: Option<Vec<ParamSet>>,
}

/// One entry of a `[[filter]]`'s `sets`: a deployment of its component
/// under its own name, with its own parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamSet {
    name: String,
    #[serde(default, deserialize_with = "params_as_text")]
    params: BTreeMap<String, String>,
    /// Else the filter's; `{name}` is the set's name in either.
    #[serde(default)]
    output_topic: Option<String>,
    /// Else the filter's.
    #[serde(default)]
    limits: Option<Budget>,
    /// Else the filter's.
    #[serde(default)]
    disabled: Option<bool>,
}

/// Most parameter sets one `[[filter]]` may list.
pub const MAX_SETS: usize = 2_000;
/// Most deployments a config may hold, sets counted one each (2,000 of
/// one Rust component on two workers: 1.2 GB resident; 10,000 exhausted
/// the kernel's 65,530 memory mappings).
pub const MAX_DEPLOYMENTS: usize = 2_000;

/// `[[filter]]`, each entry with `sets` written out as one deployment a
/// set.
pub(super) fn expand<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<FilterConfig>, D::Error> {
    use serde::de::Error;
    let entries = Vec::<FilterEntry>::deserialize(d)?;
    let mut out = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        let key = format!("filter[{i}]");
        let Some(sets) = e.sets else {
            out.push(FilterConfig {
                key,
                path: e.path,
                output_topic: e.output_topic,
                name: e.name,
                params: e.params,
                limits: e.limits,
                disabled: e.disabled,
            });
            continue;
        };
        if e.name.is_some() {
            return Err(D::Error::custom(format!(
                "{key}: a filter with `sets` takes no `name`: each set names its deployment"
            )));
        }
        if sets.is_empty() || sets.len() > MAX_SETS {
            return Err(D::Error::custom(format!(
                "{key}.sets: give between 1 and {MAX_SETS} parameter sets (it has {}); \
                 without sets, remove the key",
                sets.len()
            )));
        }
        for (j, set) in sets.into_iter().enumerate() {
            let mut params = e.params.clone();
            params.extend(set.params);
            out.push(FilterConfig {
                key: format!("{key}.sets[{j}]"),
                path: e.path.clone(),
                output_topic: set
                    .output_topic
                    .as_ref()
                    .unwrap_or(&e.output_topic)
                    .replace("{name}", &set.name),
                name: Some(set.name),
                params,
                limits: set.limits.or(e.limits),
                disabled: set.disabled.unwrap_or(e.disabled),
            });
        }
    }
    Ok(out)
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
    if filters.len() > MAX_DEPLOYMENTS {
        return Err(Invalid::new(
            "filter",
            format!(
                "{} deployments (sets counted one each); at most {MAX_DEPLOYMENTS}: every worker \
                 holds an instance of each, and past that a host runs out of memory mappings \
                 (vm.max_map_count) before memory",
                filters.len()
            ),
        ));
    }
    for f in filters {
        let key = &f.key;
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
        if !super::is_topic(&f.output_topic) {
            return Err(Invalid::new(
                format!("{key}.output_topic"),
                format!(
                    "{}{}",
                    super::not_a_topic(&f.output_topic),
                    if f.output_topic.contains('{') {
                        "; `{name}` stands for a set's name only in a filter with `sets`"
                    } else {
                        ""
                    }
                ),
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
