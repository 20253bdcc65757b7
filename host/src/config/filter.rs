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
    /// Parameters passed to `init`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Overrides of the engine's default limits, within `max_limits`.
    #[serde(default)]
    pub limits: Option<Budget>,
    /// Loaded but not run.
    #[serde(default)]
    pub disabled: bool,
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
