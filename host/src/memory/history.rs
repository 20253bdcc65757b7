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

/// One value of a point.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Absent,
    Real(f64),
    Integer(i64),
    Text(String),
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
    pub columns: &'static [(&'static str, Kind)],
}

/// The surveys whose history the host keeps, and their columns.
pub const PLANS: &[HistoryPlan] = &[
    HistoryPlan {
        survey: "ztf",
        current: "candidate",
        previous: &["prv_candidates"],
        time: "jd",
        times: (2_440_587.5, 2_524_593.5),
        id: "candid",
        band: "fid",
        columns: &[
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
    HistoryPlan {
        survey: "rubin",
        current: "diaSource",
        previous: &["prvDiaSources", "prvDiaForcedSources"],
        time: "midpointMjdTai",
        times: (40_587.0, 124_593.0),
        id: "diaSourceId",
        band: "band",
        columns: &[
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

/// The plan of `survey`, if the host keeps its history.
pub fn plan_of(survey: &str) -> Option<&'static HistoryPlan> {
    PLANS.iter().find(|p| p.survey == survey)
}

/// The column a `history.` path names, if it is one.
pub fn column_of(path: &FieldPath) -> Option<&str> {
    path.text.strip_prefix(HISTORY_PREFIX)
}

/// Why a filter's declared history columns cannot be given: each path the
/// host keeps no column for, with a sentence naming what it keeps.
pub fn refusals(survey: &str, fields: &[FieldPath]) -> Vec<(String, String)> {
    let plans: Vec<&HistoryPlan> = match survey {
        "any" => PLANS.iter().collect(),
        s => plan_of(s).into_iter().collect(),
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
                    "declared field '{}': the host keeps no history of {survey} alerts (it keeps {})",
                    field.text,
                    PLANS.iter().map(|p| p.survey).collect::<Vec<_>>().join(" and ")
                ),
            ));
            continue;
        }
        if !plans
            .iter()
            .any(|p| p.columns.iter().any(|(c, _)| *c == column))
        {
            let kept: Vec<String> = plans
                .iter()
                .map(|p| {
                    let names: Vec<&str> = p.columns.iter().map(|(c, _)| *c).collect();
                    format!("{}: {}", p.survey, names.join(", "))
                })
                .collect();
            let near = crate::decode::nearest(
                column,
                plans.iter().flat_map(|p| p.columns.iter().map(|(c, _)| *c)),
                3,
            );
            let hint = match near.first() {
                Some(n) => format!(": did you mean 'history.{n}'?"),
                None => String::new(),
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
    }
    out
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
    Cell::Text(crate::text::cut_at(t, MAX_TEXT_BYTES).to_string())
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
                [self.time, self.id, self.band].contains(c) || declared.iter().any(|d| d == c)
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
        self.columns.iter().position(|(c, _)| *c == column)
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
                    Some(Cell::Text(b)) => xxhash_rust::xxh3::xxh3_64(b.as_bytes()),
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
        let same = stored.columns.len() == self.columns.len()
            && stored
                .columns
                .iter()
                .zip(self.columns)
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
            columns: self.columns.iter().map(|(c, _)| (*c).to_string()).collect(),
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
                        Cell::Text(t) => Some(t.clone()),
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

    fn ztf() -> &'static HistoryPlan {
        plan_of("ztf").unwrap()
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
        for (c, _) in plan.columns {
            values.push(match *c {
                "jd" => FieldValue::Real(BASE + current.0),
                "fid" => FieldValue::Integer(current.1),
                "magpsf" => FieldValue::Real(current.2),
                "candid" => current.3.map_or(FieldValue::Absent, FieldValue::Integer),
                "isdiffpos" => FieldValue::Text("t".into()),
                _ => FieldValue::Missing,
            });
        }
        for (c, _) in plan.columns {
            values.push(match *c {
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
            days(plan, &h),
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
        let names: Vec<&str> = read.iter().map(|&i| plan.columns[i].0).collect();
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
            days(plan, &h),
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
        assert_eq!(long, Cell::Text("x".repeat(MAX_TEXT_BYTES)));
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
        let refused = refusals("ztf", &misspelt);
        assert!(
            refused[0].1.ends_with("did you mean 'history.magpsf'?"),
            "{refused:?}"
        );
        assert!(refused[1].1.contains("names no column"), "{refused:?}");
        let refused = refusals("ztf", &fields);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].0, "history.fwhm");
        assert!(
            refused[0].1.contains("'history.fwhm'") && refused[0].1.contains("ztf: jd, fid"),
            "{refused:?}"
        );
        assert!(refusals("any", &fields[..1]).is_empty());
        let none = refusals("atlas", &fields[..1]);
        assert!(none[0].1.contains("no history of atlas alerts"), "{none:?}");
    }
}
