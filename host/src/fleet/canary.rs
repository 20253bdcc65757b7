//! The canary run every upload goes through before it is registered: the
//! filter, loaded with its parameters and limits, runs on real alerts the
//! operator chose (`admin.uploads.canary_alerts`).
//!
//! Refused: a declared field (optional or not) in no schema version of the
//! filter's survey, those of `admin.uploads.schema_dirs` and of the
//! canary alerts, with the nearest real paths; any failure on any alert (out of fuel, over the
//! deadline or the memory cap, a trap, an error the filter returned); no
//! alert of the filter's survey to try it on; accepting more than
//! `max_accept_fraction` of them; a median time per alert over
//! `max_time_fraction` of its deadline, or over its mean time (the filter
//! would hold the workers from every other filter; `serve` quarantines
//! it for that).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;

use crate::config::UploadsConfig;
use crate::decode::{Decoder, SchemaInfo, SchemaSource, Vocabulary};
use crate::runner::Runner;
use crate::sandbox::{LoadedFilter, Outcome, Verdict};

/// The canary alerts, read once at start.
pub struct Canary {
    /// (name, message) for each alert file.
    alerts: Vec<(String, Bytes)>,
    /// The schema versions of `admin.uploads.schema_dirs` and of the
    /// canary alerts.
    vocabulary: Vocabulary,
    max_accept_fraction: f64,
    max_time_fraction: f64,
}

/// What a filter did on the canary alerts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CanaryReport {
    /// Alerts of its survey it was run on.
    pub alerts: usize,
    pub accepted: usize,
    pub max_fuel: u64,
    pub max_micros: u64,
    /// The median time per alert.
    pub median_micros: u64,
}

impl Canary {
    /// Reads the alert files of `uploads.canary_alerts` (relative to
    /// `config_dir`); each must decode as an alert.
    /// How many alerts it holds.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    pub fn load(config_dir: &Path, uploads: &UploadsConfig) -> anyhow::Result<Canary> {
        let decoder = Decoder::new(Vec::new(), SchemaSource::None);
        let mut alerts = Vec::new();
        let mut vocabulary = Vocabulary::new();
        let paths: Vec<_> = uploads
            .canary_alerts
            .iter()
            .map(|p| config_dir.join(p))
            .collect();
        for item in crate::input::items(&paths) {
            let bytes = item
                .bytes
                .map_err(|e| anyhow::anyhow!(e))
                .with_context(|| format!("admin.uploads.canary_alerts: {}", item.name))?;
            let decoded = decoder.decode(&bytes).with_context(|| {
                format!(
                    "admin.uploads.canary_alerts: {} is not a self-describing Avro alert file",
                    item.name
                )
            })?;
            // Their schemas join the vocabulary once, not per upload.
            for alert in &decoded {
                decoder.add_schema_to(&alert.schema, &mut vocabulary);
            }
            alerts.push((item.name, bytes));
        }
        if alerts.is_empty() {
            anyhow::bail!("admin.uploads.canary_alerts: no alert files found there");
        }
        for dir in &uploads.schema_dirs {
            vocabulary
                .add_dir(&config_dir.join(dir))
                .map_err(|e| anyhow::anyhow!("admin.uploads.schema_dirs: {e}"))?;
        }
        Ok(Canary {
            alerts,
            vocabulary,
            max_accept_fraction: uploads.max_accept_fraction,
            max_time_fraction: uploads.max_time_fraction,
        })
    }

    /// Checks `filter`'s fields against the schemas of the canary alerts
    /// of its survey, then runs it on each of them, stopping at the first
    /// failure; the error says why it is refused. `host`: the history
    /// columns serve keeps and its catalogues.
    pub fn try_filter(
        &self,
        filter: &Arc<LoadedFilter>,
        host: crate::runner::HostFields,
    ) -> Result<CanaryReport, String> {
        let mut runner = Runner::new(std::slice::from_ref(filter), SchemaSource::None, host);
        let survey = &filter.manifest.survey;
        let mut schemas: BTreeMap<(String, u64), Arc<SchemaInfo>> = BTreeMap::new();
        let mut alerts = Vec::new();
        for (name, bytes) in &self.alerts {
            let decoded = runner
                .decoder()
                .decode(bytes)
                .map_err(|e| format!("canary alert {name} did not decode: {e}"))?;
            for alert in decoded {
                if filter.accepts_survey(&alert.schema.survey) {
                    let info = alert.schema.clone();
                    schemas
                        .entry((info.full_name.clone(), info.fingerprint))
                        .or_insert(info);
                    alerts.push((name, alert));
                }
            }
        }
        if alerts.is_empty() {
            return Err(format!(
                "the canary alerts have no alert of survey '{survey}' to try this filter on: ask the operator to add some to admin.uploads.canary_alerts"
            ));
        }
        // A field no schema has is the clearest reason, so it comes first:
        // checked against every version the operator's schema folders
        // hold and the canary alerts' own schemas.
        let check = self.vocabulary.check(survey, &filter.fields);
        if let (Some(first), Some(path)) = (check.refused.first(), check.refused_paths.first()) {
            // Where the path reaches something that is not a value (a
            // record, a map, two arrays), the schema says so.
            let why = schemas
                .values()
                .find_map(|info| runner.decoder().check_path(info, path).err())
                .filter(|why| !why.contains("has no field"))
                .map(|why| format!(" ({why})"))
                .unwrap_or_default();
            return Err(format!(
                "{first}{why}{}",
                if check.refused.len() > 1 {
                    format!(
                        "; and {} more declared fields like it",
                        check.refused.len() - 1
                    )
                } else {
                    String::new()
                }
            ));
        }
        let mut report = CanaryReport {
            alerts: alerts.len(),
            accepted: 0,
            max_fuel: 0,
            max_micros: 0,
            median_micros: 0,
        };
        let mut micros = Vec::with_capacity(alerts.len());
        for (name, alert) in alerts {
            let result = runner.evaluate(alert);
            let e = &result.evaluations[0];
            report.max_fuel = report.max_fuel.max(e.fuel);
            report.max_micros = report.max_micros.max(e.nanos / 1000);
            micros.push(e.nanos / 1000);
            match &e.outcome {
                Outcome::Verdict(Verdict::Accept { .. }) => report.accepted += 1,
                Outcome::Verdict(Verdict::Reject) => {}
                Outcome::Failed(f) => {
                    let kind = serde_json::to_value(f.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default();
                    return Err(format!(
                        "failed on canary alert {name} ({kind}): {}",
                        f.message
                    ));
                }
                // Quarantined during the canary (too slow for its mean
                // time): judged below on the alerts it ran, whose time
                // per alert says more than the quarantine, when over.
                Outcome::Skipped {
                    quarantined: true, ..
                } => {
                    micros.pop();
                    break;
                }
                Outcome::Skipped { reason, .. } => {
                    return Err(format!("skipped canary alert {name}: {reason}"));
                }
            }
        }
        report.median_micros = crate::runner::percentile(&micros, 50.0);
        let limits = &filter.limits;
        let allowed_micros = ((limits.deadline_ms as f64 * self.max_time_fraction * 1e3) as u64)
            .min(limits.mean_ms * 1000);
        if report.median_micros > allowed_micros {
            return Err(format!(
                "took {:.1} ms per canary alert (median), over the {:.1} ms allowed: {:.0}% of its \
                 {} ms deadline (admin.uploads.max_time_fraction) or its mean time of {} ms, \
                 whichever is less. A filter this slow would hold the workers from every other \
                 filter: make it faster",
                report.median_micros as f64 / 1e3,
                allowed_micros as f64 / 1e3,
                self.max_time_fraction * 100.0,
                limits.deadline_ms,
                limits.mean_ms
            ));
        }
        // Whether an alert was skipped for it or the last it ran did it.
        if let Some(reason) = filter.health.quarantined() {
            return Err(format!(
                "was quarantined after {} canary alerts: {reason}",
                micros.len()
            ));
        }
        let fraction = report.accepted as f64 / report.alerts as f64;
        if fraction > self.max_accept_fraction {
            return Err(format!(
                "accepted {} of {} canary alerts ({:.0}%), more than the {:.0}% allowed (admin.uploads.max_accept_fraction): a filter must select, not forward the stream",
                report.accepted,
                report.alerts,
                fraction * 100.0,
                self.max_accept_fraction * 100.0
            ));
        }
        Ok(report)
    }
}
