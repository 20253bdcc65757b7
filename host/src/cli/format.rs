//! Small formatting helpers for the command reports.

use crate::runner::percentile;
use crate::sandbox::{Evaluation, Outcome, Verdict};

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Nanoseconds as a short human duration.
pub fn duration(nanos: u64) -> String {
    match nanos {
        n if n < 10_000 => format!("{:.2} µs", n as f64 / 1e3),
        n if n < 10_000_000 => format!("{:.1} µs", n as f64 / 1e3),
        n if n < 10_000_000_000 => format!("{:.1} ms", n as f64 / 1e6),
        n => format!("{:.1} s", n as f64 / 1e9),
    }
}

/// Longest cell of a [`Table`], in bytes: a failure message (guest text
/// in it is already cut to 1 KiB) with room for its wording.
const MAX_CELL_BYTES: usize = 2048;

/// A column-aligned plain-text table.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row. A cell may hold text a filter wrote: it is shown as
    /// `text::shown` shows it, one line with its control characters
    /// visible, so that no cell can add a row or steer the terminal.
    pub fn row(&mut self, cells: Vec<String>) {
        let cells = cells
            .into_iter()
            .map(|cell| crate::text::shown_owned(cell, MAX_CELL_BYTES))
            .collect();
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A verdict or failure in a few words, for a table cell.
/// `n` things: `1 alert`, `2 alerts`.
pub fn counted(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{} {thing}s", thousands(n))
    }
}

pub fn outcome_cells(e: &Evaluation) -> (String, String) {
    let (verdict, detail) = verdict_cells(e);
    let state = match &e.state {
        crate::sandbox::StateChange::Keep => return (verdict, detail),
        crate::sandbox::StateChange::Set(b) => {
            format!("state set ({})", counted(b.len() as u64, "byte"))
        }
        crate::sandbox::StateChange::Forget => "state forgotten".into(),
    };
    let detail = detail.trim_end();
    let sep = if detail.is_empty() { "" } else { "; " };
    (verdict, format!("{detail}{sep}{state}"))
}

/// What an evaluation's state change did, for a report: `null` for none.
pub fn state_json(e: &Evaluation) -> serde_json::Value {
    match &e.state {
        crate::sandbox::StateChange::Keep => serde_json::Value::Null,
        // `set`: for reading (JSON states are text); `hex`: the bytes
        // exactly, whatever they are.
        crate::sandbox::StateChange::Set(b) => serde_json::json!({
            "set": crate::text::shown(&String::from_utf8_lossy(b), 65_536),
            "hex": hex::encode(b),
            "bytes": b.len(),
        }),
        crate::sandbox::StateChange::Forget => serde_json::json!("forget"),
    }
}

fn verdict_cells(e: &Evaluation) -> (String, String) {
    match &e.outcome {
        Outcome::Verdict(Verdict::Reject) => ("reject".into(), String::new()),
        Outcome::Verdict(Verdict::Accept { score, tags, .. }) => {
            let score = score.map(|s| format!("{s:.3} ")).unwrap_or_default();
            let tags = crate::text::joined_tags(tags);
            ("accept".into(), format!("{score}{tags}"))
        }
        Outcome::Failed(f) => ("ERROR".into(), format!("{}: {}", f.kind.name(), f.message)),
        Outcome::Skipped { reason, .. } => ("skip".into(), reason.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_read_as_expected() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn a_cell_cannot_add_a_row_or_reach_the_terminal() {
        let mut table = Table::new(&["alert", "verdict"]);
        table.row(vec!["1\n2  accept".into(), "reject\x1b[1A".into()]);
        assert_eq!(
            table.render(),
            "alert         verdict\n1\\n2  accept  reject\\u{1b}[1A\n"
        );
    }
}

/// Counts of one filter's outcomes over a run.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Tally {
    pub accepted: u64,
    pub rejected: u64,
    pub skipped: u64,
    pub errors: u64,
    /// Errors by kind (`out-of-fuel`, `panic`, ...).
    pub errors_by_kind: std::collections::BTreeMap<String, u64>,
    #[serde(skip)]
    pub fuel: Vec<u64>,
    #[serde(skip)]
    pub nanos: Vec<u64>,
}

impl Tally {
    /// The alerts counted, whatever became of them.
    pub fn alerts(&self) -> u64 {
        self.accepted + self.rejected + self.skipped + self.errors
    }

    pub fn add(&mut self, e: &Evaluation) {
        match &e.outcome {
            Outcome::Verdict(Verdict::Accept { .. }) => self.accepted += 1,
            Outcome::Verdict(Verdict::Reject) => self.rejected += 1,
            Outcome::Skipped { .. } => self.skipped += 1,
            Outcome::Failed(f) => {
                self.errors += 1;
                *self
                    .errors_by_kind
                    .entry(f.kind.name().to_string())
                    .or_default() += 1;
            }
        }
        if !matches!(e.outcome, Outcome::Skipped { .. }) {
            self.fuel.push(e.fuel);
            self.nanos.push(e.nanos);
        }
    }

    /// The `p`-th percentile of fuel, for a table cell ("-" if none ran).
    pub fn fuel_cell(&self, p: f64) -> String {
        if self.fuel.is_empty() {
            return "-".into();
        }
        thousands(percentile(&self.fuel, p))
    }

    /// The `p`-th percentile of call time, for a table cell.
    pub fn time_cell(&self, p: f64) -> String {
        if self.nanos.is_empty() {
            return "-".into();
        }
        duration(percentile(&self.nanos, p))
    }

    /// Fuel and time percentiles over the alerts the filter ran on.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "fuel_p50": percentile(&self.fuel, 50.0),
            "fuel_p99": percentile(&self.fuel, 99.0),
            "nanos_p50": percentile(&self.nanos, 50.0),
            "nanos_p99": percentile(&self.nanos, 99.0),
        })
    }
}
