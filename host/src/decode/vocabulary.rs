//! The vocabulary: every field path of every schema version the host
//! knows, per survey, to check a filter's declared paths before any alert
//! runs (a typo is refused with the nearest real paths, and a path that
//! some versions lack is named with those versions).
//!
//! Owns: reading schema folders (`--schemas-from DIR`,
//! `admin.uploads.schema_dirs`) into path sets, and the check of a list
//! of declared paths against them. The writer schemas of alerts in hand
//! join through [`Vocabulary::add_alert_schema`].
//!
//! Must never: read without bound (folders are walked to a stated depth
//! and entry count, links followed within them, files read to
//! `MAX_SCHEMA_FILE_BYTES`), or suggest `?` for a path that exists in no
//! version (that would hide the typo).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use super::FieldPath;
use super::schema::{Node, Schema, SchemaError, Siblings, parse, read_schema_file};

/// Deepest folder below a schema folder that is read.
pub const MAX_DEPTH: usize = 4;
/// Most directory entries looked at under one schema folder.
pub const MAX_ENTRIES: usize = 10_000;
/// Most schema versions kept (all surveys together).
pub const MAX_VERSIONS: usize = 512;
/// Most "did you mean" suggestions per path.
const SUGGESTIONS: usize = 3;
/// Most refused paths that get suggestions (each costs a scan of every
/// known path).
const SUGGESTED_PATHS: usize = 16;

/// The paths of one schema version.
#[derive(Debug, Clone)]
struct Version {
    survey: String,
    /// The schema's version (`3.5`, `9.0`), or its full name if it has
    /// none.
    label: String,
    /// Every path a filter can declare, with its type label.
    paths: BTreeMap<String, String>,
}

/// Every known schema version's paths, per survey.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    versions: Vec<Version>,
    /// Schema files that could not be read or parsed, each a sentence
    /// naming the file (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<String>,
}

/// Most unreadable schema files named.
const MAX_PROBLEMS: usize = 20;

/// What the check of one filter's paths found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PathCheck {
    /// The versions checked against (`ztf 3.5`), in order.
    pub checked_against: Vec<String>,
    /// Paths in no known version: each a whole sentence, with "did you
    /// mean" where something is near.
    pub refused: Vec<String>,
    /// The path of each refused sentence, in the same order (without its
    /// `?`), for callers that act on the path itself.
    #[serde(skip)]
    pub refused_paths: Vec<String>,
    /// Paths some versions lack: each a whole sentence naming them.
    pub notes: Vec<String>,
}

impl PathCheck {
    /// Whether any version of the survey was known (else nothing was
    /// checked).
    pub fn checked(&self) -> bool {
        !self.checked_against.is_empty()
    }
}

impl Vocabulary {
    pub fn new() -> Vocabulary {
        Vocabulary::default()
    }

    /// Whether no version is known.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Reads every alert schema under `dir` (a survey's schema folder
    /// such as `ztf/schema`, or one version's folder). In each directory,
    /// every `.avsc` file is parsed with its siblings; a file whose root
    /// type another file of that directory defines inside itself is a
    /// part (ZTF's `candidate.avsc`), not an alert schema, and a schema
    /// with no version is an example, not a survey's. Returns how many
    /// versions were added; the error names the folder and what to do.
    pub fn add_dir(&mut self, dir: &Path) -> Result<usize, String> {
        let meta = std::fs::metadata(dir).map_err(|e| {
            format!(
                "schema folder {} cannot be read ({e}): give a folder of .avsc files, such as a survey's schema folder",
                dir.display()
            )
        })?;
        if !meta.is_dir() {
            return Err(format!(
                "{} is not a folder: give a folder of .avsc files, such as a survey's schema folder",
                dir.display()
            ));
        }
        let before = self.versions.len();
        let mut entries = 0;
        self.walk(dir, dir, 0, &mut entries)?;
        let added = self.versions.len() - before;
        if added == 0 {
            return Err(format!(
                "schema folder {} holds no alert schema with a version (looked {MAX_DEPTH} folders deep for .avsc files)",
                dir.display()
            ));
        }
        Ok(added)
    }

    fn walk(
        &mut self,
        top: &Path,
        dir: &Path,
        depth: usize,
        entries: &mut usize,
    ) -> Result<(), String> {
        let mut files = Vec::new();
        let mut subdirs = Vec::new();
        let listing = std::fs::read_dir(dir)
            .map_err(|e| format!("schema folder {} cannot be read: {e}", dir.display()))?;
        for entry in listing.flatten() {
            *entries += 1;
            if *entries > MAX_ENTRIES {
                return Err(format!(
                    "schema folder {} holds over {MAX_ENTRIES} entries within {MAX_DEPTH} folders: \
                     give the survey's schema folder itself",
                    top.display()
                ));
            }
            let path = entry.path();
            // Links are followed (a deployed schema folder is often made
            // of them); the depth and entry bounds stop a loop.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                subdirs.push(path);
            } else if meta.is_file() && path.extension().is_some_and(|e| e == "avsc") {
                files.push(path);
            }
        }
        files.sort();
        subdirs.sort();
        let mut parsed: Vec<Schema> = Vec::new();
        for file in &files {
            let text = match read_schema_file(file) {
                Ok(text) => text,
                Err(e) => {
                    self.problem(format!("schema file {} not read: {e}", file.display()));
                    continue;
                }
            };
            let mut siblings = Siblings {
                dir,
                texts: Vec::new(),
            };
            match parse(&text, Some(&mut siblings)) {
                Ok(schema) => parsed.push(schema),
                Err(e) => self.problem(format!(
                    "schema file {} is not a usable Avro schema: {}",
                    file.display(),
                    match e {
                        SchemaError::Invalid(why) => why,
                        SchemaError::RootNotRecord(what) => {
                            format!("its root is {what}, not a record")
                        }
                    }
                )),
            }
        }
        // The named types each schema defines below its root.
        let inner: Vec<HashSet<&str>> = parsed.iter().map(inner_names).collect();
        // One alert schema per version in a folder: of the roots that
        // give the same version (Rubin's folders also hold schemas no
        // alert references, such as ssObject), the alert is the one with
        // the most paths, since it holds the others.
        let mut roots: Vec<(String, String, BTreeMap<String, String>)> = Vec::new();
        for (i, schema) in parsed.iter().enumerate() {
            let name = schema.full_name();
            let part = inner
                .iter()
                .enumerate()
                .any(|(j, names)| j != i && names.contains(name));
            let Some(label) = schema.version().filter(|_| !part) else {
                continue;
            };
            let survey = schema.survey();
            let paths: BTreeMap<String, String> = schema.leaf_paths().into_iter().collect();
            match roots.iter_mut().find(|r| r.0 == survey && r.1 == label) {
                Some(root) if root.2.len() < paths.len() => root.2 = paths,
                Some(_) => {}
                None => roots.push((survey, label, paths)),
            }
        }
        for (survey, label, paths) in roots {
            self.insert(survey, label, paths);
        }
        if depth < MAX_DEPTH {
            for sub in subdirs {
                self.walk(top, &sub, depth + 1, entries)?;
            }
        }
        Ok(())
    }

    /// Adds the writer schema of an alert in hand.
    pub(crate) fn add_alert_schema(&mut self, schema: &Schema) {
        let label = schema
            .version()
            .unwrap_or_else(|| schema.full_name().to_string());
        self.add(schema, label);
    }

    fn add(&mut self, schema: &Schema, label: String) {
        let paths = schema.leaf_paths().into_iter().collect();
        self.insert(schema.survey(), label, paths);
    }

    fn problem(&mut self, sentence: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(sentence);
        }
    }

    fn insert(&mut self, survey: String, label: String, paths: BTreeMap<String, String>) {
        if self.versions.len() >= MAX_VERSIONS {
            return;
        }
        if self
            .versions
            .iter()
            .any(|v| v.survey == survey && v.label == label && v.paths == paths)
        {
            return;
        }
        self.versions.push(Version {
            survey,
            label,
            paths,
        });
    }

    /// The versions known of `survey` (all of them for `any`), sorted.
    fn of(&self, survey: &str) -> Vec<&Version> {
        let mut v: Vec<&Version> = self
            .versions
            .iter()
            .filter(|v| survey == "any" || v.survey == survey)
            .collect();
        v.sort_by(|a, b| {
            (a.survey.as_str(), version_key(&a.label))
                .cmp(&(b.survey.as_str(), version_key(&b.label)))
        });
        v
    }

    /// Checks a filter's declared paths against every known version of
    /// its survey.
    pub fn check(&self, survey: &str, fields: &[FieldPath]) -> PathCheck {
        let versions = self.of(survey);
        let mut out = PathCheck {
            checked_against: versions.iter().fold(Vec::new(), |mut seen, v| {
                let label = format!("{} {}", v.survey, v.label);
                if !seen.contains(&label) {
                    seen.push(label);
                }
                seen
            }),
            ..PathCheck::default()
        };
        if versions.is_empty() {
            return out;
        }
        let labels = |vs: &[&&Version]| -> String {
            let mut shown: Vec<String> = Vec::new();
            for v in vs {
                let l = if survey == "any" {
                    format!("{} {}", v.survey, v.label)
                } else {
                    v.label.clone()
                };
                if !shown.contains(&l) {
                    shown.push(l);
                }
            }
            if shown.len() > 12 {
                let n = shown.len();
                format!(
                    "{}, ..., {} ({n} versions)",
                    shown[..3].join(", "),
                    shown[n - 3..].join(", ")
                )
            } else {
                shown.join(", ")
            }
        };
        let every: BTreeSet<&str> = versions
            .iter()
            .flat_map(|v| v.paths.keys().map(String::as_str))
            .collect();
        let mut suggested = 0;
        for field in fields.iter().filter(|f| !super::is_host_path(&f.text)) {
            let (with, without): (Vec<&&Version>, Vec<&&Version>) = versions
                .iter()
                .partition(|v| v.paths.contains_key(&field.text));
            if with.is_empty() {
                let mut sentence = format!(
                    "declared field '{}{}' is in no {survey} schema version known here ({})",
                    field.text,
                    if field.optional { "?" } else { "" },
                    labels(&without)
                );
                if suggested < SUGGESTED_PATHS {
                    suggested += 1;
                    let near = nearest(&field.text, every.iter().copied(), SUGGESTIONS);
                    if near.is_empty() {
                        sentence.push_str(": check its spelling with `bandpass fields ALERT`");
                    } else {
                        let near: Vec<String> = near.iter().map(|p| format!("'{p}'")).collect();
                        sentence.push_str(&format!(": did you mean {}?", near.join(" or ")));
                    }
                }
                out.refused.push(sentence);
                out.refused_paths.push(field.text.clone());
            } else if !without.is_empty() {
                let sentence = if field.optional {
                    format!(
                        "optional field '{}?' is absent from {survey} versions {} (the filter receives absent there)",
                        field.text,
                        labels(&without)
                    )
                } else {
                    format!(
                        "field '{}' is absent from {survey} versions {}: alerts of those versions fail with unknown-field; declare it '{}?' if the filter can decide without it",
                        field.text,
                        labels(&without),
                        field.text
                    )
                };
                out.notes.push(sentence);
            }
        }
        out
    }
}

/// The full names of the named types a schema defines, other than its
/// root.
fn inner_names(schema: &Schema) -> HashSet<&str> {
    schema
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as u32 != schema.root)
        .filter_map(|(_, n)| match n {
            Node::Record { name, .. } | Node::Enum { name, .. } | Node::Fixed { name, .. } => {
                Some(name.as_str())
            }
            _ => None,
        })
        .collect()
}

/// A sort key that orders `3.10` after `3.9` and `4.01` after `3.5`.
fn version_key(label: &str) -> Vec<(u64, String)> {
    label
        .split(['.', '_'])
        .map(|part| (part.parse::<u64>().unwrap_or(u64::MAX), part.to_string()))
        .collect()
}

/// Up to `n` of `candidates` nearest to `wanted`: within a few edits of
/// the whole path (a transposition counts one), or with the same last
/// segment under another parent. Nearest first, then alphabetical.
pub fn nearest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<&'a str> {
    let max = (wanted.chars().count() / 4).clamp(1, 3);
    let wanted_lower = wanted.to_lowercase();
    let last = wanted_lower.rsplit('.').next().unwrap_or("");
    let mut scored: Vec<(usize, &str)> = Vec::new();
    for c in candidates {
        let lower = c.to_lowercase();
        let distance = if lower == wanted_lower {
            0
        } else if lower.rsplit('.').next() == Some(last) {
            1
        } else if lower.len().abs_diff(wanted_lower.len()) > max {
            continue;
        } else {
            match edits(&wanted_lower, &lower, max) {
                Some(d) => d,
                None => continue,
            }
        };
        scored.push((distance, c));
    }
    scored.sort();
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

/// The optimal-string-alignment distance between `a` and `b` (insert,
/// delete, substitute, swap two neighbours), or None past `max`.
fn edits(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(row[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            row[j] = d;
        }
        if row.iter().min().is_some_and(|&m| m > max) {
            return None;
        }
        before = std::mem::replace(&mut prev, row);
    }
    Some(prev[b.len()]).filter(|&d| d <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(paths: &[&str]) -> Vec<FieldPath> {
        paths.iter().map(|p| FieldPath::parse(p).unwrap()).collect()
    }

    fn schema(version: &str, extra: &str) -> Schema {
        let text = format!(
            r#"{{"type":"record","name":"alert","namespace":"ztf","version":"{version}","fields":[
                {{"name":"objectId","type":"string"}},
                {{"name":"candidate","type":{{"type":"record","name":"candidate","namespace":"ztf.alert","fields":[
                    {{"name":"magpsf","type":"float"}},
                    {{"name":"drb","type":["null","float"]}}{extra}
                ]}}}}
            ]}}"#
        );
        parse(text.as_bytes(), None).unwrap()
    }

    #[test]
    fn a_typo_is_refused_with_the_nearest_paths_and_never_told_to_add_a_question_mark() {
        let mut v = Vocabulary::new();
        v.add_alert_schema(&schema("3.3", ""));
        let check = v.check("ztf", &fields(&["candidate.magpfs", "candidate.dbr?"]));
        assert_eq!(check.checked_against, ["ztf 3.3"]);
        assert_eq!(check.refused.len(), 2, "{check:?}");
        assert!(
            check.refused[0].contains("'candidate.magpfs'")
                && check.refused[0].contains("did you mean 'candidate.magpsf'?"),
            "{check:?}"
        );
        assert!(
            check.refused[1].contains("did you mean 'candidate.drb'?"),
            "{check:?}"
        );
        assert!(
            check.refused.iter().all(|r| !r.contains("declare it")),
            "never told to add '?': {check:?}"
        );
    }

    #[test]
    fn a_path_some_versions_lack_names_them() {
        let mut v = Vocabulary::new();
        v.add_alert_schema(&schema("4.02", r#",{"name":"new_score","type":"float"}"#));
        v.add_alert_schema(&schema("3.3", ""));
        v.add_alert_schema(&schema("3.10", ""));
        let check = v.check("ztf", &fields(&["candidate.new_score", "candidate.magpsf"]));
        assert!(check.refused.is_empty(), "{check:?}");
        assert_eq!(check.checked_against, ["ztf 3.3", "ztf 3.10", "ztf 4.02"]);
        assert_eq!(check.notes.len(), 1, "{check:?}");
        assert!(
            check.notes[0].contains("absent from ztf versions 3.3, 3.10")
                && check.notes[0].contains("declare it 'candidate.new_score?'"),
            "{check:?}"
        );
    }

    #[test]
    fn an_unknown_survey_is_not_checked_and_any_takes_every_survey() {
        let mut v = Vocabulary::new();
        v.add_alert_schema(&schema("3.3", ""));
        let none = v.check("rubin", &fields(&["diaSource.psfFlux"]));
        assert!(!none.checked() && none.refused.is_empty());
        let any = v.check("any", &fields(&["objectId", "nothing.here"]));
        assert_eq!(any.refused.len(), 1, "{any:?}");
    }

    #[test]
    fn nearest_counts_a_swap_as_one_edit_and_matches_a_last_segment() {
        let paths = [
            "candidate.magpsf",
            "candidate.sigmapsf",
            "prv_candidates.magpsf",
            "objectId",
        ];
        assert_eq!(nearest("candidate.magpfs", paths, 3), ["candidate.magpsf"]);
        assert_eq!(
            nearest("candidate.sigmpsf", paths, 3),
            ["candidate.sigmapsf", "candidate.magpsf"]
        );
        assert_eq!(
            nearest("magpsf", paths, 3),
            ["candidate.magpsf", "prv_candidates.magpsf"]
        );
        assert_eq!(nearest("objectid", paths, 3), ["objectId"]);
        assert!(nearest("something.else.entirely", paths, 3).is_empty());
    }

    #[test]
    fn the_real_schema_folders_give_every_version_and_no_parts() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
        let mut v = Vocabulary::new();
        let ztf = v.add_dir(&root.join("ztf/schema")).unwrap();
        let rubin = v.add_dir(&root.join("rubin/schema")).unwrap();
        assert_eq!(ztf, 9, "{:?}", v.check("ztf", &[]).checked_against);
        assert!(rubin >= 14, "{:?}", v.check("rubin", &[]).checked_against);
        // Rubin's folders also hold schemas no alert references
        // (ssObject from 10.0): the alert alone is the version.
        let rubin_check = v.check("rubin", &fields(&["diaSource.snr", "diaSource.ssObjectId"]));
        assert!(rubin_check.notes.is_empty(), "{rubin_check:?}");
        let labels = &rubin_check.checked_against;
        let distinct: std::collections::BTreeSet<&String> = labels.iter().collect();
        assert_eq!(distinct.len(), labels.len(), "{labels:?}");
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        let check = v.check(
            "ztf",
            &fields(&[
                "candidate.magpsf",
                "fp_hists.forcediffimflux",
                "prv_candidates.magpsf",
            ]),
        );
        assert!(check.refused.is_empty(), "{check:?}");
        assert!(
            check
                .notes
                .iter()
                .any(|n| n.contains("fp_hists.forcediffimflux") && n.contains("3.5")),
            "{check:?}"
        );
        // Linked folders are read; a link back to an ancestor ends at the
        // depth bound.
        let linked = tempfile::tempdir().unwrap();
        let link = |to: &Path, name: &str| {
            std::os::unix::fs::symlink(to, linked.path().join(name)).unwrap()
        };
        link(&root.join("ztf/schema/v4.02"), "v4.02");
        link(linked.path(), "loop");
        let mut through_links = Vocabulary::new();
        assert!(through_links.add_dir(linked.path()).is_ok());
        assert_eq!(
            through_links.check("ztf", &[]).checked_against,
            ["ztf 4.02"]
        );
        let err = Vocabulary::new()
            .add_dir(&root.join("no-such-folder"))
            .unwrap_err();
        assert!(err.contains("no-such-folder"), "{err}");
    }
}
