//! Declared field paths against the schemas: before alerts run (the
//! folders given with `--schemas-from`), and after (the writer schemas of
//! the alerts that ran, and which optional paths no alert filled).

use std::collections::HashSet;

use crate::decode::{Decoder, FieldValue, PathCheck, Vocabulary};
use crate::runner::{AlertResult, Runner};
use crate::sandbox::LoadedFilter;

/// Prints a check's findings for one filter to stderr.
pub(crate) fn report(name: &str, check: &PathCheck) {
    for note in &check.notes {
        eprintln!("note: filter '{name}': {note}");
    }
    for refused in &check.refused {
        eprintln!("error: filter '{name}': {refused}");
    }
}

/// What a run saw of each filter's declared paths.
pub(crate) struct FieldWatch {
    /// The versions of the schema folders given, and the writer schemas
    /// of the alerts that ran.
    seen: Vocabulary,
    /// Whether schema folders were given (else the alerts' schemas are
    /// all there is to check against).
    folders: bool,
    fingerprints: HashSet<(u64, String)>,
    /// Per filter, per declared field: its slot among the decoder's paths,
    /// and whether some alert gave it a value.
    fields: Vec<Vec<(usize, bool)>>,
    alerts: u64,
}

impl FieldWatch {
    pub fn new(runner: &Runner, folders: Vocabulary) -> FieldWatch {
        let fields = (0..runner.filters().count())
            .map(|i| runner.slots(i).iter().map(|&slot| (slot, false)).collect())
            .collect();
        FieldWatch {
            folders: !folders.is_empty(),
            seen: folders,
            fingerprints: HashSet::new(),
            fields,
            alerts: 0,
        }
    }

    /// Notes one alert: its schema, and which fields it filled.
    pub fn observe(&mut self, result: &AlertResult, decoder: &Decoder) {
        self.alerts += 1;
        let info = &result.alert.schema;
        if self
            .fingerprints
            .insert((info.fingerprint, info.full_name.clone()))
        {
            decoder.add_schema_to(info, &mut self.seen);
        }
        for fields in &mut self.fields {
            for (slot, filled) in fields.iter_mut() {
                if !*filled && let Some(v) = result.alert.values.get(*slot) {
                    *filled = !matches!(v, FieldValue::Missing | FieldValue::Absent);
                }
            }
        }
    }

    /// After the run, for filter `i`: paths in none of the alerts'
    /// schemas (with suggestions) and optional paths that no alert
    /// filled. Both are warnings: a sample of alerts may lack the
    /// versions that have a path, which only the schema folders can tell
    /// (and with them, a path in no version was refused before the run).
    pub fn findings(&self, i: usize, filter: &LoadedFilter) -> Findings {
        let mut out = Findings::default();
        if self.alerts == 0 {
            return out;
        }
        let check = self.seen.check(&filter.manifest.survey, &filter.fields);
        let hint = if self.folders {
            ""
        } else {
            "; if it is in a version these alerts lack, check every version with --schemas-from DIR (the survey's schema folder)"
        };
        for (path, (_, filled)) in filter.fields.iter().zip(&self.fields[i]) {
            let unknown = check.refused_paths.contains(&path.text);
            if path.optional && !filled && !unknown {
                out.absent.push(format!(
                    "optional field '{}?' was absent from all {} alerts (null, or not in their schema): the filter never saw a value for it",
                    path.text, self.alerts
                ));
            }
        }
        out.unknown = check.refused.into_iter().map(|r| r + hint).collect();
        out
    }
}

/// What a run found about one filter's paths.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Findings {
    /// Paths in no schema of the alerts that ran.
    pub unknown: Vec<String>,
    /// Optional paths no alert filled.
    pub absent: Vec<String>,
}

impl Findings {
    /// Prints the warnings to stderr.
    pub fn report(&self, filter: &LoadedFilter) {
        let name = &filter.manifest.name;
        for line in self.unknown.iter().chain(&self.absent) {
            eprintln!("warning: filter '{name}': {line}");
        }
    }
}
