//! The status page (`/` on the admin port): for people, what each filter
//! is doing. One HTML page, no script, refreshed by the browser every 5 s;
//! rates come from the counters' samples of the last minute.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::metrics::{FilterCounts, Snapshot};

/// How far back the rates look.
const WINDOW: Duration = Duration::from_secs(60);
/// How often the counters are sampled for the rates.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Samples of the counters over the last [`WINDOW`].
#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Snapshot>>,
}

impl History {
    pub fn record(&self, snapshot: Snapshot) {
        let mut samples = self.samples.lock().unwrap();
        while samples
            .front()
            .is_some_and(|s| snapshot.at.duration_since(s.at) > WINDOW)
        {
            samples.pop_front();
        }
        samples.push_back(snapshot);
    }

    /// The oldest sample of the window, to take rates against.
    pub fn oldest(&self) -> Option<Snapshot> {
        self.samples.lock().unwrap().front().cloned()
    }
}

/// The page for `now`, with rates against `before` when there is one.
pub fn render(now: &Snapshot, before: Option<&Snapshot>) -> String {
    let seconds = before
        .map(|b| now.at.duration_since(b.at).as_secs_f64())
        .filter(|s| *s >= 1.0);
    let rate = |name: &str, pick: fn(&FilterCounts) -> u64, current: &FilterCounts| {
        let (Some(b), Some(s)) = (before, seconds) else {
            return "–".to_string();
        };
        let then = b
            .filters
            .iter()
            .find(|(info, _)| info.name == name)
            .map_or(0, |(_, c)| pick(c));
        format!("{:.1}", pick(current).saturating_sub(then) as f64 / s)
    };
    let (state, state_class) = match &now.ready {
        Ok(()) => ("ready".to_string(), "ok"),
        Err(reason) => (format!("not ready: {reason}"), "bad"),
    };
    let mut rows = String::new();
    for (info, c) in &now.filters {
        let per_alert = |total: u64| match c.alerts {
            0 => "–".to_string(),
            n => format!("{:.0}", total as f64 / n as f64),
        };
        let (filter_state, class) = if c.quarantined {
            ("quarantined", "bad")
        } else {
            ("running", "ok")
        };
        let _ = writeln!(
            rows,
            "<tr data-filter=\"{name}\"><td class=\"name\">{name}</td><td>{version}</td><td>{survey}</td>\
             <td>{topic}</td><td class=\"{class}\">{filter_state}</td>\
             <td class=\"n alerts\">{alerts}</td><td class=\"n accepted\">{accepted}</td>\
             <td class=\"n\">{rejected}</td><td class=\"n failed\">{failed}</td><td class=\"n\">{skipped}</td>\
             <td class=\"n\">{alerts_rate}</td><td class=\"n\">{accepted_rate}</td>\
             <td class=\"n\">{micros}</td><td class=\"n\">{fuel}</td></tr>",
            name = escape(&info.name),
            version = escape(&info.version),
            survey = escape(&info.survey),
            topic = escape(&info.output_topic),
            alerts = c.alerts,
            accepted = c.accepted,
            rejected = c.rejected,
            failed = c.failed,
            skipped = c.skipped,
            alerts_rate = rate(&info.name, |c| c.alerts, c),
            accepted_rate = rate(&info.name, |c| c.accepted, c),
            micros = match c.alerts {
                0 => "–".to_string(),
                n => format!("{:.1}", c.nanos as f64 / n as f64 / 1e3),
            },
            fuel = per_alert(c.fuel),
        );
    }
    if now.filters.is_empty() {
        rows.push_str("<tr><td colspan=\"14\">no filter deployed</td></tr>\n");
    }
    let memory = now.memory.as_ref().map_or(String::new(), |m| {
        format!(
            "<p id=\"memory\">object memory: {} objects, store {:.1} MB, {} changelog records \
             written, {} restored, {} partitions restoring ({} records to read), {} store \
             failures, {} misrouted alerts, {} alerts out of order</p>\n",
            m.objects,
            m.store_bytes as f64 / 1e6,
            m.changes,
            m.restored,
            m.restoring,
            m.restore_remaining,
            m.failures,
            m.misrouted,
            m.out_of_order
        )
    });
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>bandpass status</title>\
         <style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.3em .6em}}th{{background:#f3f3f3}}.n{{text-align:right}}\
         .ok{{color:#176317}}.bad{{color:#a31515;font-weight:bold}}</style></head><body>\n\
         <h1>bandpass</h1>\n<p id=\"state\" class=\"{state_class}\">{state}</p>\n\
         <p id=\"totals\">messages consumed {consumed}, produced {produced}, dead letters {dead}, \
         produce errors {errors}; {assigned} partitions assigned, lag {lag}</p>\n{memory}\
         <table id=\"filters\"><thead><tr><th>filter</th><th>version</th><th>survey</th><th>output topic</th>\
         <th>state</th><th>alerts</th><th>accepted</th><th>rejected</th><th>failed</th><th>skipped</th>\
         <th>alerts/s</th><th>accepted/s</th><th>µs/alert</th><th>fuel/alert</th></tr></thead><tbody>\n\
         {rows}</tbody></table>\n<p>Rates over the last minute; the page refreshes every 5 s. \
         Machine-readable: <a href=\"/metrics\">/metrics</a>, <a href=\"/readyz\">/readyz</a>.</p>\n\
         </body></html>\n",
        state = escape(&state),
        consumed = now.consumed,
        produced = now.produced,
        dead = now.dead_letters,
        errors = now.produce_errors,
        assigned = now.assigned,
        lag = now.lag,
    )
}

/// Text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::FilterInfo;
    use std::time::Instant;

    fn snapshot(at: Instant, alerts: u64) -> Snapshot {
        Snapshot {
            at,
            filters: vec![(
                FilterInfo {
                    name: "bright".into(),
                    version: "1.0.0".into(),
                    survey: "ztf".into(),
                    output_topic: "out<script>".into(),
                },
                FilterCounts {
                    alerts,
                    accepted: alerts / 2,
                    ..FilterCounts::default()
                },
            )],
            consumed: alerts,
            produced: 0,
            produce_errors: 0,
            dead_letters: 0,
            lag: 0,
            assigned: 1,
            ready: Err("no broker <up>".into()),
            memory: None,
        }
    }

    #[test]
    fn shows_each_filter_with_its_counts_rates_and_escaped_text() {
        let start = Instant::now();
        let page = render(
            &snapshot(start + Duration::from_secs(10), 100),
            Some(&snapshot(start, 50)),
        );
        assert!(page.contains("<td class=\"name\">bright</td>"), "{page}");
        assert!(page.contains("<td class=\"n alerts\">100</td>"), "{page}");
        assert!(
            page.contains("<td class=\"n\">5.0</td>"),
            "alerts/s: {page}"
        );
        assert!(page.contains("out&lt;script&gt;"), "{page}");
        assert!(page.contains("not ready: no broker &lt;up&gt;"), "{page}");
        assert!(!page.contains("<script>"));
        assert!(!page.contains("object memory"), "off: not shown");
    }

    #[test]
    fn shows_object_memory_when_serve_keeps_it() {
        let mut now = snapshot(Instant::now(), 10);
        now.memory = Some(crate::metrics::MemorySnapshot {
            store_bytes: 2_500_000,
            objects: 12,
            restoring: 2,
            restore_remaining: 1500,
            restored: 40,
            changes: 7,
            failures: 0,
            misrouted: 3,
            out_of_order: 4,
        });
        let page = render(&now, None);
        assert!(
            page.contains(
                "object memory: 12 objects, store 2.5 MB, 7 changelog records written, 40 restored, \
                 2 partitions restoring (1500 records to read), 0 store failures, 3 misrouted alerts, 4 alerts out of \
                 order"
            ),
            "{page}"
        );
    }

    #[test]
    fn keeps_a_minute_of_samples() {
        let history = History::default();
        let start = Instant::now();
        for i in 0..20 {
            history.record(snapshot(start + SAMPLE_EVERY * i, u64::from(i)));
        }
        let oldest = history.oldest().unwrap();
        assert_eq!(oldest.at, start + SAMPLE_EVERY * 7, "the last 60 s only");
    }
}
