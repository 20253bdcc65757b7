//! An object's light curve as the host has seen it ([`History`]): the
//! detections and limits of every alert of the object consumed, merged
//! with each new packet's own previous ones, deduplicated, in time order,
//! capped in age and length; handed to filters as `history.*` columns.
//!
//! Which columns are kept, per survey, is [`HistoryPlan`]: where a
//! detection's values sit in a packet (the current one, the arrays of
//! previous ones), its time, id and band columns, and each kept column's
//! kind, so that a column reads the same type whether or not an alert
//! filled it.

use std::collections::BTreeMap;

use crate::decode::{FieldPath, FieldValue, HISTORY_PREFIX};

/// Most points kept per object by default (`memory.history_max_points`).
pub const DEFAULT_MAX_POINTS: usize = 4000;
/// The most points an operator may keep per object
/// (`memory.history_max_points`), and a stored record may hold.
pub const MAX_POINTS: usize = 100_000;
/// Oldest point kept by default, in days before the object's latest alert.
pub const DEFAULT_MAX_AGE_DAYS: f64 = 365.0;

/// A kept column's type, as filters receive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Real,
    Integer,
    Text,
}

/// One value of a point. `Copy`: a light curve's cells are copied and
/// compared on every alert of its object, and a text cell is short (a
/// band, a sign), so it is held inline rather than allocated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    Absent,
    Real(f64),
    Integer(i64),
    Text(ShortText),
}

/// A text of at most [`MAX_TEXT_BYTES`], held inline; a longer one is cut
/// at a character boundary.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortText {
    len: u8,
    bytes: [u8; MAX_TEXT_BYTES],
}

impl ShortText {
    pub fn new(text: &str) -> ShortText {
        let cut = crate::text::cut_at(text, MAX_TEXT_BYTES).as_bytes();
        let mut bytes = [0; MAX_TEXT_BYTES];
        bytes[..cut.len()].copy_from_slice(cut);
        ShortText {
            len: cut.len() as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ever filled from a `&str` cut at a character boundary.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

impl std::fmt::Debug for ShortText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl From<&str> for ShortText {
    fn from(text: &str) -> ShortText {
        ShortText::new(text)
    }
}

/// Where one survey's detections sit in its packets, and what is kept.
#[derive(Debug, Clone)]
pub struct HistoryPlan {
    pub survey: &'static str,
    /// The record of the packet's own detection: `candidate`.
    pub current: &'static str,
    /// Arrays of earlier detections and limits: `prv_candidates`.
    pub previous: &'static [&'static str],
    /// The column a point's time is in (days: JD or MJD), its id (the
    /// same detection in two packets) and its band.
    pub time: &'static str,
    /// The times a point may have (days): 1970 to 2200, as for an alert's
    /// own time; a point outside, or not a number, cannot be placed and
    /// is left out.
    pub times: (f64, f64),
    pub id: &'static str,
    pub band: &'static str,
    /// Every kept column and its kind; `time`, `id` and `band` among them.
    pub columns: Vec<(String, Kind)>,
    /// The columns' names, as stored records share them.
    names: std::sync::Arc<[String]>,
}

/// Where a survey's detections sit, and the columns kept by default
/// (what the sample filters and the common cuts read).
struct Survey {
    survey: &'static str,
    current: &'static str,
    previous: &'static [&'static str],
    time: &'static str,
    times: (f64, f64),
    id: &'static str,
    band: &'static str,
    defaults: &'static [(&'static str, Kind)],
}

/// The surveys whose history the host keeps.
const SURVEYS: &[Survey] = &[
    Survey {
        survey: "ztf",
        current: "candidate",
        previous: &["prv_candidates"],
        time: "jd",
        times: (2_440_587.5, 2_524_593.5),
        id: "candid",
        band: "fid",
        defaults: &[
            ("jd", Kind::Real),
            ("fid", Kind::Integer),
            ("magpsf", Kind::Real),
            ("sigmapsf", Kind::Real),
            ("diffmaglim", Kind::Real),
            ("isdiffpos", Kind::Text),
            ("candid", Kind::Integer),
            ("programid", Kind::Integer),
            ("rb", Kind::Real),
            ("drb", Kind::Real),
            ("ra", Kind::Real),
            ("dec", Kind::Real),
        ],
    },
    Survey {
        survey: "rubin",
        current: "diaSource",
        previous: &["prvDiaSources", "prvDiaForcedSources"],
        time: "midpointMjdTai",
        times: (40_587.0, 124_593.0),
        id: "diaSourceId",
        band: "band",
        defaults: &[
            ("midpointMjdTai", Kind::Real),
            ("band", Kind::Text),
            ("psfFlux", Kind::Real),
            ("psfFluxErr", Kind::Real),
            ("diaSourceId", Kind::Integer),
            ("diaForcedSourceId", Kind::Integer),
            ("ra", Kind::Real),
            ("dec", Kind::Real),
        ],
    },
];

/// Most history columns kept per survey: each is a cell of every point of
/// every object, on disk and read with each of its alerts.
pub const MAX_COLUMNS: usize = 64;
/// Longest history column name, in bytes.
const MAX_COLUMN_NAME: usize = 64;

/// The history the host keeps: per survey, its plan. The default is the
/// code's; an operator changes a survey's columns with
/// `memory.history.<survey>.columns` (serve, `run --config`), an author
/// with `--history-columns <survey>=...` (`test`, `run`).
#[derive(Debug, Clone)]
pub struct Kept {
    plans: Vec<std::sync::Arc<HistoryPlan>>,
    /// What an operator or author sets to keep another column, with
    /// `{survey}` in it: said in every refusal.
    setting: &'static str,
}

impl Default for Kept {
    fn default() -> Kept {
        Kept {
            plans: SURVEYS
                .iter()
                .map(|s| {
                    std::sync::Arc::new(
                        s.plan(
                            s.defaults
                                .iter()
                                .map(|(c, k)| ((*c).to_string(), *k))
                                .collect(),
                        ),
                    )
                })
                .collect(),
            setting: CONFIG_SETTING,
        }
    }
}

/// Where a serve config keeps another column.
pub const CONFIG_SETTING: &str = "memory.history.{survey}.columns";
/// Where `test` and `run` keep another column.
pub const FLAG_SETTING: &str = "--history-columns {survey}=...";

impl Survey {
    fn plan(&self, columns: Vec<(String, Kind)>) -> HistoryPlan {
        HistoryPlan {
            names: columns.iter().map(|(c, _)| c.clone()).collect(),
            survey: self.survey,
            current: self.current,
            previous: self.previous,
            time: self.time,
            times: self.times,
            id: self.id,
            band: self.band,
            columns,
        }
    }

    /// A column named in a setting: `name` (a default column's kind is
    /// known) or `name:real`, `name:integer`, `name:text`.
    fn column(&self, spec: &str) -> Result<(String, Kind), String> {
        let (name, kind) = match spec.split_once(':') {
            Some((n, k)) => (n, Some(k)),
            None => (spec, None),
        };
        if name.is_empty()
            || name.len() > MAX_COLUMN_NAME
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!(
                "'{}' is not a column name: 1 to {MAX_COLUMN_NAME} of A-Z, a-z, 0-9 and '_' \
                 (a field of {}'s '{}' record), then ':real', ':integer' or ':text' where the \
                 host does not know its type",
                crate::text::shown(spec, 80),
                self.survey,
                self.current
            ));
        }
        let known = self.defaults.iter().find(|(c, _)| *c == name).map(|c| c.1);
        let kind = match kind {
            None => known.ok_or_else(|| {
                format!(
                    "'{name}': say its type, as '{name}:real', '{name}:integer' or \
                     '{name}:text' (the host knows the types of {} only)",
                    self.defaults
                        .iter()
                        .map(|(c, _)| *c)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
            Some(k) => {
                let kind = match k {
                    "real" => Kind::Real,
                    "integer" => Kind::Integer,
                    "text" => Kind::Text,
                    other => {
                        return Err(format!(
                            "'{name}': '{}' is not a type: real, integer or text",
                            crate::text::shown(other, 40)
                        ));
                    }
                };
                if let Some(known) = known.filter(|k| *k != kind) {
                    return Err(format!(
                        "'{name}' is {} in {}'s schemas, not {k}",
                        known.name(),
                        self.survey
                    ));
                }
                kind
            }
        };
        Ok((name.to_string(), kind))
    }
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Real => "real",
            Kind::Integer => "integer",
            Kind::Text => "text",
        }
    }
}

impl Kept {
    /// The defaults with each survey in `columns` keeping the columns
    /// listed instead (see [`Survey::column`] for a column's form). The
    /// error is a sentence naming the survey and the column; `setting`
    /// ([`CONFIG_SETTING`], [`FLAG_SETTING`]) is what it and later
    /// refusals name.
    pub fn with_columns<'a>(
        columns: impl IntoIterator<Item = (&'a str, &'a [String])>,
        setting: &'static str,
    ) -> Result<Kept, String> {
        let mut kept = Kept {
            setting,
            ..Kept::default()
        };
        for (survey, specs) in columns {
            let key = setting.replace("{survey}", survey);
            let Some((i, s)) = SURVEYS.iter().enumerate().find(|(_, s)| s.survey == survey) else {
                return Err(format!(
                    "{}: the host keeps the history of {} alerts only",
                    setting.replace("{survey}", &crate::text::shown(survey, 40)),
                    SURVEYS
                        .iter()
                        .map(|s| s.survey)
                        .collect::<Vec<_>>()
                        .join(" and ")
                ));
            };
            if specs.len() > MAX_COLUMNS {
                return Err(format!(
                    "{key}: {} columns; at most {MAX_COLUMNS} (each is a cell of every point \
                     of every object, read with each of its alerts)",
                    specs.len()
                ));
            }
            let mut cols: Vec<(String, Kind)> = Vec::new();
            for spec in specs {
                let col = s.column(spec).map_err(|e| format!("{key}: {e}"))?;
                if cols.iter().any(|(c, _)| *c == col.0) {
                    return Err(format!("{key}: '{}' is listed twice", col.0));
                }
                cols.push(col);
            }
            let missing: Vec<&str> = [s.time, s.id, s.band]
                .into_iter()
                .filter(|n| !cols.iter().any(|(c, _)| c == n))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "{key}: must keep {} ({}, {} and {} place each point in time and tell \
                     two detections apart)",
                    missing.join(", "),
                    s.time,
                    s.id,
                    s.band
                ));
            }
            kept.plans[i] = std::sync::Arc::new(s.plan(cols));
        }
        Ok(kept)
    }

    /// Every survey's plan.
    pub fn plans(&self) -> &[std::sync::Arc<HistoryPlan>] {
        &self.plans
    }

    /// The plan of `survey`, if the host keeps its history.
    pub fn plan_of(&self, survey: &str) -> Option<&std::sync::Arc<HistoryPlan>> {
        self.plans.iter().find(|p| p.survey == survey)
    }

    /// What keeps another column of `survey`.
    pub fn setting(&self, survey: &str) -> String {
        self.setting.replace("{survey}", survey)
    }
}

/// The column a `history.` path names, if it is one.
pub fn column_of(path: &FieldPath) -> Option<&str> {
    path.text.strip_prefix(HISTORY_PREFIX)
}

impl Kept {
    /// Why a filter's declared history columns cannot be given: each path
    /// the host keeps no column for, with a sentence naming what it keeps
    /// and the setting that would keep it.
    pub fn refusals(&self, survey: &str, fields: &[FieldPath]) -> Vec<(String, String)> {
        let plans: Vec<&HistoryPlan> = match survey {
            "any" => self.plans.iter().map(|p| &**p).collect(),
            s => self.plan_of(s).into_iter().map(|p| &**p).collect(),
        };
        let mut out = Vec::new();
        for field in fields {
            if field.text == "history" {
                out.push((
                    field.text.clone(),
                    "declared field 'history' names no column: declare each one read, such as \
                     'history.jd'"
                        .to_string(),
                ));
                continue;
            }
            let Some(column) = column_of(field) else {
                continue;
            };
            if plans.is_empty() {
                out.push((
                    field.text.clone(),
                    format!(
                        "declared field '{}': the host keeps no history of {} alerts (it keeps {})",
                        crate::text::shown(&field.text, 256),
                        crate::text::shown(survey, 64),
                        self.plans
                            .iter()
                            .map(|p| p.survey)
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                ));
                continue;
            }
            if plans
                .iter()
                .any(|p| p.columns.iter().any(|(c, _)| c == column))
            {
                continue;
            }
            let kept: Vec<String> = plans
                .iter()
                .map(|p| {
                    let names: Vec<&str> = p.columns.iter().map(|(c, _)| c.as_str()).collect();
                    format!("{}: {}", p.survey, names.join(", "))
                })
                .collect();
            let near = crate::decode::nearest(
                column,
                plans
                    .iter()
                    .flat_map(|p| p.columns.iter().map(|(c, _)| c.as_str())),
                3,
            );
            let hint = match near.first() {
                Some(n) => format!(": did you mean 'history.{n}'?"),
                None => format!(
                    ": the host keeps it if {} lists it (with its type where the host does \
                     not know it, as '{}:real')",
                    self.setting(if plans.len() == 1 {
                        plans[0].survey
                    } else {
                        "<survey>"
                    }),
                    crate::text::shown(column, 64)
                ),
            };
            out.push((
                field.text.clone(),
                format!(
                    "declared field '{}' is not a history column the host keeps ({}){hint}",
                    crate::text::shown(&field.text, 256),
                    kept.join("; ")
                ),
            ));
        }
        out
    }
}

/// One detection or limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Its time, in the survey's days (JD, MJD).
    pub time: f64,
    /// One cell per column of the plan, in its order.
    pub cells: Vec<Cell>,
}

/// An object's points, in time order, one per detection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub points: Vec<Point>,
}

/// Longest text a history cell keeps, in bytes (a band, a sign: a few
/// bytes in every survey); longer is cut, so that a record's size is
/// bounded by its points and columns whatever an alert holds.
pub const MAX_TEXT_BYTES: usize = 32;

fn text_cell(t: &str) -> Cell {
    Cell::Text(ShortText::new(t))
}

/// A cell of `kind` from a decoded value (an integer where a real is kept
/// is widened; any other mismatch is absent).
fn cell(kind: Kind, value: Option<&FieldValue>) -> Cell {
    match (kind, value) {
        (Kind::Real, Some(FieldValue::Real(r))) => Cell::Real(*r),
        (Kind::Real, Some(FieldValue::Integer(i))) => Cell::Real(*i as f64),
        (Kind::Integer, Some(FieldValue::Integer(i))) => Cell::Integer(*i),
        (Kind::Text, Some(FieldValue::Text(t))) => text_cell(t),
        _ => Cell::Absent,
    }
}

/// Element `i` of a column value, as a cell of `kind`.
fn element(kind: Kind, column: Option<&FieldValue>, i: usize) -> Cell {
    match (kind, column) {
        (Kind::Real, Some(FieldValue::Reals(c))) => c[i].map_or(Cell::Absent, Cell::Real),
        (Kind::Real, Some(FieldValue::Integers(c))) => {
            c[i].map_or(Cell::Absent, |v| Cell::Real(v as f64))
        }
        (Kind::Integer, Some(FieldValue::Integers(c))) => c[i].map_or(Cell::Absent, Cell::Integer),
        (Kind::Text, Some(FieldValue::Texts(c))) => c[i].as_deref().map_or(Cell::Absent, text_cell),
        _ => Cell::Absent,
    }
}

fn column_len(value: Option<&FieldValue>) -> usize {
    match value {
        Some(FieldValue::Reals(c)) => c.len(),
        Some(FieldValue::Integers(c)) => c.len(),
        Some(FieldValue::Texts(c)) => c.len(),
        Some(FieldValue::Booleans(c)) => c.len(),
        _ => 0,
    }
}

impl HistoryPlan {
    /// The columns an alert must read when filters declared `declared`:
    /// those, and the time, id and band that place and tell apart each
    /// point; as indexes into [`HistoryPlan::columns`], in its order. The
    /// others are not decoded (a point's other cells stay as stored).
    pub fn read(&self, declared: &[String]) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, (c, _))| {
                [self.time, self.id, self.band].contains(&c.as_str())
                    || declared.iter().any(|d| d == c)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The decoder paths of the columns `read`, in order: for each source
    /// (the current record, then each previous array), each column,
    /// optional (not every schema version has every column).
    pub fn paths(&self, read: &[usize]) -> Vec<String> {
        std::iter::once(self.current)
            .chain(self.previous.iter().copied())
            .flat_map(|source| {
                read.iter()
                    .map(move |&i| format!("{source}.{}?", self.columns[i].0))
            })
            .collect()
    }

    fn index(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|(c, _)| c == column)
    }

    /// The packet's points: `values` are the decoded values of
    /// [`HistoryPlan::paths`]`(read)`, in order; the columns not `read`
    /// are absent. A point with no time is left out (it cannot be placed).
    pub fn packet_points(&self, read: &[usize], values: &[FieldValue]) -> Vec<Point> {
        let n = read.len();
        let time = self.index(self.time).expect("the time is a kept column");
        let mut points = Vec::new();
        let mut current = vec![Cell::Absent; self.columns.len()];
        for (&c, v) in read.iter().zip(&values[..n]) {
            current[c] = cell(self.columns[c].1, Some(v));
        }
        for s in 0..self.previous.len() {
            let source = &values[n * (s + 1)..n * (s + 2)];
            let len = source
                .iter()
                .map(|v| column_len(Some(v)))
                .max()
                .unwrap_or(0);
            for i in 0..len {
                let mut cells = vec![Cell::Absent; self.columns.len()];
                for (&c, v) in read.iter().zip(source) {
                    if column_len(Some(v)) == len {
                        cells[c] = element(self.columns[c].1, Some(v), i);
                    }
                }
                if let Cell::Real(t) = cells[time]
                    && self.placed(t)
                {
                    points.push(Point { time: t, cells });
                }
            }
        }
        if let Cell::Real(t) = current[time]
            && self.placed(t)
        {
            points.push(Point {
                time: t,
                cells: current,
            });
        }
        points
    }

    /// Whether a point at `t` can be placed: a number within [`Self::times`].
    fn placed(&self, t: f64) -> bool {
        (self.times.0..=self.times.1).contains(&t)
    }

    /// What tells two points apart: the id where there is one, else the
    /// time and band (a band's text hashed: two bands of one time that
    /// collide would be taken for one point, at odds of 2^-64).
    fn key(&self, p: &Point) -> (bool, u64, u64) {
        let cell = |name| self.index(name).map(|i| &p.cells[i]);
        match cell(self.id) {
            Some(Cell::Integer(id)) => (false, *id as u64, 0),
            _ => (
                true,
                p.time.to_bits(),
                match cell(self.band) {
                    Some(Cell::Integer(b)) => *b as u64,
                    Some(Cell::Text(b)) => xxhash_rust::xxh3::xxh3_64(b.as_str().as_bytes()),
                    _ => 0,
                },
            ),
        }
    }

    /// `stored` merged with a packet's points: one point per detection (a
    /// packet's copy fills in or replaces the stored one's cells, and
    /// leaves those it did not read), in time order, none older than
    /// `max_age_days` before the latest, at most `max_points` (the oldest
    /// dropped first).
    pub fn merge(
        &self,
        stored: History,
        packet: Vec<Point>,
        max_age_days: f64,
        max_points: usize,
    ) -> History {
        let mut by_key: BTreeMap<(bool, u64, u64), Point> = BTreeMap::new();
        for p in stored.points.into_iter().chain(packet) {
            match by_key.entry(self.key(&p)) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(p);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let kept = e.get_mut();
                    for (old, new) in kept.cells.iter_mut().zip(p.cells) {
                        if new != Cell::Absent {
                            *old = new;
                        }
                    }
                }
            }
        }
        let mut points: Vec<Point> = by_key.into_values().collect();
        points.sort_by(|a, b| a.time.total_cmp(&b.time));
        if let Some(latest) = points.last().map(|p| p.time) {
            points.retain(|p| latest - p.time <= max_age_days);
        }
        if points.len() > max_points {
            points.drain(..points.len() - max_points);
        }
        History { points }
    }

    /// A stored history in this plan's columns (a column the store lacks
    /// is absent; one the plan no longer keeps is left out).
    pub fn adopt(&self, stored: super::StoredHistory) -> History {
        let same = std::sync::Arc::ptr_eq(&stored.columns, &self.names)
            || stored.columns.len() == self.columns.len()
                && stored
                    .columns
                    .iter()
                    .zip(&self.columns)
                    .all(|(a, (b, _))| a == b);
        if same {
            return History {
                points: stored.points,
            };
        }
        let from: Vec<Option<usize>> = self
            .columns
            .iter()
            .map(|(c, _)| stored.columns.iter().position(|s| s == c))
            .collect();
        let points = stored
            .points
            .into_iter()
            .map(|p| Point {
                time: p.time,
                cells: from
                    .iter()
                    .map(|i| {
                        i.and_then(|i| p.cells.get(i).cloned())
                            .unwrap_or(Cell::Absent)
                    })
                    .collect(),
            })
            .collect();
        History { points }
    }

    /// `history` as the store keeps it.
    pub fn stored(&self, history: History) -> super::StoredHistory {
        super::StoredHistory {
            columns: self.names.clone(),
            points: history.points,
        }
    }

    /// The column `name` of `history`, as filters receive it; `None` if
    /// the plan does not keep it.
    pub fn column(&self, history: &History, name: &str) -> Option<FieldValue> {
        let i = self.index(name)?;
        let cells = history.points.iter().map(|p| &p.cells[i]);
        Some(match self.columns[i].1 {
            Kind::Real => FieldValue::Reals(
                cells
                    .map(|c| match c {
                        Cell::Real(r) => Some(*r),
                        _ => None,
                    })
                    .collect(),
            ),
            Kind::Integer => FieldValue::Integers(
                cells
                    .map(|c| match c {
                        Cell::Integer(i) => Some(*i),
                        _ => None,
                    })
                    .collect(),
            ),
            Kind::Text => FieldValue::Texts(
                cells
                    .map(|c| match c {
                        Cell::Text(t) => Some(t.as_str().to_string()),
                        _ => None,
                    })
                    .collect(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ztf() -> std::sync::Arc<HistoryPlan> {
        Kept::default().plan_of("ztf").unwrap().clone()
    }

    /// Test times are days after this JD (a point must be placeable).
    const BASE: f64 = 2_460_000.0;

    /// The `jd` column of `h`, in days after [`BASE`].
    fn days(plan: &HistoryPlan, h: &History) -> Vec<Option<f64>> {
        let Some(FieldValue::Reals(jd)) = plan.column(h, "jd") else {
            panic!("a real column")
        };
        jd.into_iter().map(|j| j.map(|j| j - BASE)).collect()
    }

    /// A ZTF packet: the current detection and previous ones, as the
    /// decoder gives the plan's paths.
    fn packet(
        current: (f64, i64, f64, Option<i64>),
        previous: &[(f64, i64, Option<f64>, Option<i64>)],
    ) -> Vec<FieldValue> {
        let plan = ztf();
        let mut values = Vec::new();
        for (c, _) in &plan.columns {
            values.push(match c.as_str() {
                "jd" => FieldValue::Real(BASE + current.0),
                "fid" => FieldValue::Integer(current.1),
                "magpsf" => FieldValue::Real(current.2),
                "candid" => current.3.map_or(FieldValue::Absent, FieldValue::Integer),
                "isdiffpos" => FieldValue::Text("t".into()),
                _ => FieldValue::Missing,
            });
        }
        for (c, _) in &plan.columns {
            values.push(match c.as_str() {
                "jd" => FieldValue::Reals(previous.iter().map(|p| Some(BASE + p.0)).collect()),
                "fid" => FieldValue::Integers(previous.iter().map(|p| Some(p.1)).collect()),
                "magpsf" => FieldValue::Reals(previous.iter().map(|p| p.2).collect()),
                "candid" => FieldValue::Integers(previous.iter().map(|p| p.3).collect()),
                _ => FieldValue::Missing,
            });
        }
        values
    }

    fn points(values: &[FieldValue]) -> Vec<Point> {
        let all: Vec<usize> = (0..ztf().columns.len()).collect();
        ztf().packet_points(&all, values)
    }

    #[test]
    fn packets_merge_into_one_time_ordered_light_curve_without_repeats() {
        let plan = ztf();
        // Night 1: a detection after a limit.
        let night1 = points(&packet((10.0, 1, 19.0, Some(100)), &[(9.0, 1, None, None)]));
        let h = plan.merge(History::default(), night1, 365.0, 4000);
        // Night 2's packet repeats night 1's detection and limit.
        let night2 = points(&packet(
            (11.0, 2, 18.5, Some(200)),
            &[
                (9.0, 1, None, None),
                (10.0, 1, Some(19.0), Some(100)),
                (10.5, 2, None, None),
            ],
        ));
        let h = plan.merge(h, night2, 365.0, 4000);
        assert_eq!(
            days(&plan, &h),
            [Some(9.0), Some(10.0), Some(10.5), Some(11.0)]
        );
        let Some(FieldValue::Reals(mag)) = plan.column(&h, "magpsf") else {
            panic!()
        };
        assert_eq!(mag, [None, Some(19.0), None, Some(18.5)]);
        let Some(FieldValue::Texts(sign)) = plan.column(&h, "isdiffpos") else {
            panic!()
        };
        // Each night's own detection has its sign; night 2's copy of night
        // 1's, without one, does not erase it.
        assert_eq!(sign, [None, Some("t".into()), None, Some("t".into())]);
        assert!(plan.column(&h, "nope").is_none());
    }

    #[test]
    fn only_the_declared_columns_and_what_places_a_point_are_read() {
        let plan = ztf();
        let read = plan.read(&["magpsf".into()]);
        let names: Vec<&str> = read.iter().map(|&i| plan.columns[i].0.as_str()).collect();
        assert_eq!(names, ["jd", "fid", "magpsf", "candid"]);
        let paths = plan.paths(&read);
        assert_eq!(
            paths[..4],
            [
                "candidate.jd?",
                "candidate.fid?",
                "candidate.magpsf?",
                "candidate.candid?"
            ]
        );
        assert_eq!(paths.len(), 8, "the current record and prv_candidates");
        // Night 1 read every column; night 2 reads only jd, fid, magpsf and
        // candid: night 1's point keeps its isdiffpos.
        let h = plan.merge(
            History::default(),
            points(&packet((10.0, 1, 19.0, Some(100)), &[])),
            365.0,
            4000,
        );
        let all = packet(
            (11.0, 1, 18.0, Some(200)),
            &[(10.0, 1, Some(19.0), Some(100))],
        );
        let n = plan.columns.len();
        let mut some: Vec<FieldValue> = read.iter().map(|&c| all[c].clone()).collect();
        some.extend(read.iter().map(|&c| all[n + c].clone()));
        let h = plan.merge(h, plan.packet_points(&read, &some), 365.0, 4000);
        let Some(FieldValue::Texts(sign)) = plan.column(&h, "isdiffpos") else {
            panic!()
        };
        assert_eq!(
            sign,
            [Some("t".to_string()), None],
            "night 2 did not read it"
        );
        let Some(FieldValue::Reals(mag)) = plan.column(&h, "magpsf") else {
            panic!()
        };
        assert_eq!(mag, [Some(19.0), Some(18.0)]);
    }

    #[test]
    fn the_oldest_points_go_first_past_the_age_and_length_caps() {
        let plan = ztf();
        let many: Vec<(f64, i64, Option<f64>, Option<i64>)> = (0..10)
            .map(|d| (d as f64 * 100.0, 1, Some(18.0), Some(d)))
            .collect();
        let h = plan.merge(
            History::default(),
            points(&packet((1000.0, 1, 17.0, Some(99)), &many)),
            365.0,
            4000,
        );
        assert_eq!(
            days(&plan, &h),
            [Some(700.0), Some(800.0), Some(900.0), Some(1000.0)],
            "a year back"
        );
        let h = plan.merge(h, Vec::new(), 365.0, 2);
        assert_eq!(h.points.len(), 2);
        assert_eq!(h.points[0].time, BASE + 900.0);
    }

    #[test]
    fn a_point_with_a_time_that_cannot_be_placed_is_left_out_and_erases_nothing() {
        let plan = ztf();
        let night = |jd: f64, candid| points(&packet((jd, 1, 18.0, Some(candid)), &[]));
        let h = plan.merge(History::default(), night(0.5, 1), 365.0, 4000);
        // Not a number, infinite, past 2200, before 1970 (days after BASE).
        for bad in [f64::NAN, f64::INFINITY, 1e9, 70_000.0, -BASE - 5.0] {
            assert!(night(bad, 2).is_empty(), "{bad}");
        }
        let h = plan.merge(h, night(1e9, 2), 365.0, 4000);
        let h = plan.merge(h, night(1.5, 3), 365.0, 4000);
        assert_eq!(h.points.len(), 2);
        // Text cells are cut.
        let long = cell(Kind::Text, Some(&FieldValue::Text("x".repeat(200_000))));
        assert_eq!(long, Cell::Text("x".repeat(MAX_TEXT_BYTES).as_str().into()));
    }

    #[test]
    fn a_history_column_the_host_does_not_keep_is_refused_naming_what_it_keeps() {
        let fields: Vec<FieldPath> = [
            "history.jd",
            "history.magpsf?",
            "history.fwhm",
            "candidate.jd",
        ]
        .iter()
        .map(|p| FieldPath::parse(p).unwrap())
        .collect();
        let misspelt = [
            FieldPath::parse("history.magpfs").unwrap(),
            FieldPath::parse("history").unwrap(),
        ];
        let kept = Kept::default();
        let refused = kept.refusals("ztf", &misspelt);
        assert!(
            refused[0].1.ends_with("did you mean 'history.magpsf'?"),
            "{refused:?}"
        );
        assert!(refused[1].1.contains("names no column"), "{refused:?}");
        let refused = kept.refusals("ztf", &fields);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].0, "history.fwhm");
        assert!(
            refused[0].1.contains("'history.fwhm'") && refused[0].1.contains("ztf: jd, fid"),
            "{refused:?}"
        );
        assert!(kept.refusals("any", &fields[..1]).is_empty());
        let none = kept.refusals("atlas", &fields[..1]);
        assert!(none[0].1.contains("no history of atlas alerts"), "{none:?}");
    }

    #[test]
    fn an_operator_keeps_other_columns_and_a_wrong_list_is_refused_naming_the_key() {
        let list = |cols: &[&str]| cols.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let ok = list(&["jd", "fid", "candid", "magpsf", "fwhm:real", "nid:integer"]);
        let kept = Kept::with_columns([("ztf", ok.as_slice())], CONFIG_SETTING).unwrap();
        let ztf = kept.plan_of("ztf").unwrap();
        assert_eq!(ztf.columns.len(), 6);
        assert!(ztf.columns.contains(&("fwhm".to_string(), Kind::Real)));
        // Rubin keeps its defaults.
        assert_eq!(kept.plan_of("rubin").unwrap().columns.len(), 8);
        // A filter reading a column no longer kept is refused, naming the
        // key; one reading a new column is not.
        let fields: Vec<FieldPath> = ["history.fwhm", "history.isdiffpos", "history.sky"]
            .iter()
            .map(|p| FieldPath::parse(p).unwrap())
            .collect();
        let refused = kept.refusals("ztf", &fields);
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused[0].1.contains("memory.history.ztf.columns lists it")
                && refused[0].1.contains("'isdiffpos:real'"),
            "{refused:?}"
        );
        // The new column is read from the packet as a real.
        let read = ztf.read(&["fwhm".to_string()]);
        assert_eq!(ztf.paths(&read)[3], "candidate.fwhm?");

        for (survey, cols, says) in [
            (
                "atlas",
                list(&["jd"]),
                "memory.history.atlas.columns: the host keeps",
            ),
            ("ztf", list(&["jd", "fid"]), "must keep candid"),
            ("ztf", list(&["jd", "fid", "candid", "fwhm"]), "'fwhm:real'"),
            (
                "ztf",
                list(&["jd", "fid", "candid", "fwhm:float"]),
                "not a type",
            ),
            (
                "ztf",
                list(&["jd", "fid:real", "candid"]),
                "'fid' is integer",
            ),
            ("ztf", list(&["jd", "fid", "candid", "jd"]), "listed twice"),
            (
                "ztf",
                list(&["jd", "fid", "candid", "a.b:real"]),
                "not a column name",
            ),
            (
                "ztf",
                list(&["jd", "fid", "candid", ""]),
                "not a column name",
            ),
        ] {
            let e = Kept::with_columns([(survey, cols.as_slice())], CONFIG_SETTING).unwrap_err();
            assert!(e.contains(says), "{survey} {cols:?}: {e}");
            assert!(e.starts_with("memory.history."), "{e}");
        }
        let many: Vec<String> = ["jd", "fid", "candid"]
            .iter()
            .map(|c| c.to_string())
            .chain((0..MAX_COLUMNS).map(|i| format!("c{i}:real")))
            .collect();
        let e = Kept::with_columns([("ztf", many.as_slice())], FLAG_SETTING).unwrap_err();
        assert!(
            e.starts_with("--history-columns ztf=...: 67 columns"),
            "{e}"
        );
    }
}
