//! The status page (`/` on the admin port): for people, what each filter
//! is doing. One HTML page, no script, refreshed by the browser every 5 s;
//! rates come from the counters' samples of the last minute.
//!
//! Made for a hundred filters and more, on a 1280 px screen: a summary
//! per group (the config file's filters are the operator's), a line that
//! points at quarantined filters, and one table, grouped by group or as
//! one list, sorted by any column, narrowed to a group, a state or a
//! name. The view is the page's query (`/?sort=accepted&desc=1&group=hosts
//! &state=quarantined&q=bright`): links and a GET form change it, and the
//! refresh keeps it. Every parameter is checked against a bound or a list
//! before anything is built from it ([`View::parse`]); a query the page
//! does not take is refused with what it takes. Every text shown, the
//! query's included, is escaped.
//!
//! Must never: run a script in the page, or show a text it has not
//! escaped.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::metrics::{FilterCounts, FilterInfo, Snapshot};

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

/// The longest query the page reads, in bytes: every parameter at its
/// bound fits.
pub const MAX_QUERY_BYTES: usize = 512;
/// The longest name search, in bytes (a deployment name is at most
/// `<group>.<name>`, 32 + 1 + 64).
pub const MAX_SEARCH_BYTES: usize = 100;
/// What the query says for the config file's filters, which belong to
/// no group: `_` is in no group name, so no group can be taken for it.
pub const OPERATOR: &str = "_operator";
/// How the page names the config file's filters.
const OPERATOR_LABEL: &str = "operator";

/// A column of the filter table: what it is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Name,
    Group,
    Version,
    Survey,
    Topic,
    State,
    Alerts,
    Accepted,
    Rejected,
    Failed,
    Skipped,
    AlertsRate,
    AcceptedRate,
    Micros,
    Fuel,
}

impl Column {
    const ALL: [Column; 15] = [
        Column::Name,
        Column::Group,
        Column::Version,
        Column::Survey,
        Column::Topic,
        Column::State,
        Column::Alerts,
        Column::Accepted,
        Column::Rejected,
        Column::Failed,
        Column::Skipped,
        Column::AlertsRate,
        Column::AcceptedRate,
        Column::Micros,
        Column::Fuel,
    ];

    /// Its name in the query.
    pub fn key(self) -> &'static str {
        match self {
            Column::Name => "name",
            Column::Group => "group",
            Column::Version => "version",
            Column::Survey => "survey",
            Column::Topic => "topic",
            Column::State => "state",
            Column::Alerts => "alerts",
            Column::Accepted => "accepted",
            Column::Rejected => "rejected",
            Column::Failed => "failed",
            Column::Skipped => "skipped",
            Column::AlertsRate => "alerts_rate",
            Column::AcceptedRate => "accepted_rate",
            Column::Micros => "us_per_alert",
            Column::Fuel => "fuel_per_alert",
        }
    }

    /// Its heading, and what the heading's tooltip says.
    fn heading(self) -> (&'static str, &'static str) {
        match self {
            Column::Name => ("filter", "deployment name"),
            Column::Group => ("group", "the group that uploaded it"),
            Column::Version => ("version", "the filter's version"),
            Column::Survey => ("survey", "the survey whose alerts it reads"),
            Column::Topic => ("output topic", "where its accepted alerts go"),
            Column::State => ("state", "running, or quarantined after repeated failures"),
            Column::Alerts => ("alerts", "alerts evaluated"),
            Column::Accepted => ("accepted", "alerts accepted"),
            Column::Rejected => ("rejected", "alerts rejected"),
            Column::Failed => (
                "failed",
                "alerts it failed on (trap, fuel, deadline, error)",
            ),
            Column::Skipped => (
                "skipped",
                "alerts not evaluated (another survey, quarantined)",
            ),
            Column::AlertsRate => ("alerts/s", "alerts evaluated per second, last minute"),
            Column::AcceptedRate => ("acc./s", "alerts accepted per second, last minute"),
            Column::Micros => ("µs/alert", "mean wall time per alert, microseconds"),
            Column::Fuel => ("fuel/alert", "mean fuel per alert"),
        }
    }

    /// Numbers are shown largest first when first sorted by.
    fn numeric(self) -> bool {
        !matches!(
            self,
            Column::Name
                | Column::Group
                | Column::Version
                | Column::Survey
                | Column::Topic
                | Column::State
        )
    }
}

/// Which filters the table shows by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChoice {
    Running,
    Quarantined,
}

/// What the page's query asks to see, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The column rows are sorted by; ties go by name.
    pub sort: Column,
    pub desc: bool,
    /// Only this group's filters ([`OPERATOR`] for the config file's).
    pub group: Option<String>,
    pub state: Option<StateChoice>,
    /// Only filters whose name holds this, ignoring case.
    pub search: String,
    /// One list instead of a section per group.
    pub flat: bool,
}

impl Default for View {
    /// Quarantined filters first, in sections per group.
    fn default() -> View {
        View {
            sort: Column::State,
            desc: false,
            group: None,
            state: None,
            search: String::new(),
            flat: false,
        }
    }
}

/// The parameters the page takes, for the refusal that lists them.
const PARAMETERS: &str = "sort, desc (0 or 1), group (a group's name, or _operator for the \
                          config file's filters), state (running or quarantined), q (a part of \
                          the name, at most 100 bytes) and by (group or none)";

impl View {
    /// Reads the page's query (`None`: no `?` at all). An empty value is
    /// the parameter's default, as a form sends it for "all"; a parameter
    /// the page does not take, given twice or with a value it does not
    /// take is refused, naming it and what it may be.
    pub fn parse(query: Option<&str>) -> Result<View, String> {
        let mut view = View::default();
        let Some(query) = query else {
            return Ok(view);
        };
        if query.len() > MAX_QUERY_BYTES {
            return Err(format!(
                "the query is {} bytes; the page reads at most {MAX_QUERY_BYTES}",
                query.len()
            ));
        }
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            let value = decode(value)?;
            if seen.contains(&key) {
                return Err(format!("'{}' is given twice", shown(&key)));
            }
            seen.push(key.clone());
            let refused = |what: &str| {
                Err(format!(
                    "{key}={}: {what}",
                    shown(&value),
                    key = shown(&key)
                ))
            };
            match key.as_str() {
                "sort" if value.is_empty() => {}
                "sort" => match Column::ALL.iter().find(|c| c.key() == value) {
                    Some(c) => view.sort = *c,
                    None => {
                        let keys: Vec<&str> = Column::ALL.iter().map(|c| c.key()).collect();
                        return refused(&format!("sort by one of {}", keys.join(", ")));
                    }
                },
                "desc" => match value.as_str() {
                    "" | "0" => view.desc = false,
                    "1" => view.desc = true,
                    _ => return refused("0 (ascending) or 1 (descending)"),
                },
                "group" if value.is_empty() => {}
                "group" => {
                    if value != OPERATOR && !crate::text::is_name(&value, 32) {
                        return refused(&format!(
                            "a group's name (lowercase letters, digits and dashes, at most 32) \
                             or {OPERATOR} for the config file's filters"
                        ));
                    }
                    view.group = Some(value);
                }
                "state" => match value.as_str() {
                    "" => view.state = None,
                    "running" => view.state = Some(StateChoice::Running),
                    "quarantined" => view.state = Some(StateChoice::Quarantined),
                    _ => return refused("running or quarantined"),
                },
                "q" => {
                    if value.len() > MAX_SEARCH_BYTES {
                        return Err(format!(
                            "q is {} bytes: a name search is at most {MAX_SEARCH_BYTES}",
                            value.len()
                        ));
                    }
                    view.search = value;
                }
                "by" => match value.as_str() {
                    "" | "group" => view.flat = false,
                    "none" => view.flat = true,
                    _ => return refused("group (a section per group) or none (one list)"),
                },
                _ => {
                    return Err(format!(
                        "the page takes no parameter '{}': it takes {PARAMETERS}",
                        shown(&key)
                    ));
                }
            }
        }
        Ok(view)
    }

    /// The page's address for this view: only what differs from the
    /// default, each value percent-encoded (not yet HTML-escaped).
    pub fn href(&self) -> String {
        let mut parts: Vec<(&str, String)> = Vec::new();
        if self.sort != Column::State {
            parts.push(("sort", self.sort.key().to_string()));
        }
        if self.desc {
            parts.push(("desc", "1".into()));
        }
        if let Some(g) = &self.group {
            parts.push(("group", g.clone()));
        }
        match self.state {
            Some(StateChoice::Running) => parts.push(("state", "running".into())),
            Some(StateChoice::Quarantined) => parts.push(("state", "quarantined".into())),
            None => {}
        }
        if !self.search.is_empty() {
            parts.push(("q", self.search.clone()));
        }
        if self.flat {
            parts.push(("by", "none".into()));
        }
        let mut out = String::from("/");
        for (i, (k, v)) in parts.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(k);
            out.push('=');
            out.push_str(&encode(v));
        }
        out
    }

    /// This view sorted by `column`: the other way if it is sorted by it
    /// already, else numbers largest first and texts from A.
    fn sorted_by(&self, column: Column) -> View {
        let desc = if self.sort == column {
            !self.desc
        } else {
            column.numeric()
        };
        View {
            sort: column,
            desc,
            ..self.clone()
        }
    }

    fn shows(&self, row: &Row) -> bool {
        let group_ok = self.group.as_deref().is_none_or(|g| g == row.group_key());
        let state_ok = match self.state {
            None => true,
            Some(StateChoice::Quarantined) => row.counts.quarantined,
            Some(StateChoice::Running) => !row.counts.quarantined,
        };
        let name_ok = self.search.is_empty()
            || row
                .info
                .name
                .to_lowercase()
                .contains(&self.search.to_lowercase());
        group_ok && state_ok && name_ok
    }
}

/// A query's text as a refusal shows it: cut, controls made visible
/// (escaped as HTML where the page shows it).
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    crate::text::shown(text, 64)
}

/// A query component's text: `+` is a space, `%XX` a byte; the bytes
/// must be UTF-8.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!(
                            "'{}' in the query: % must be followed by two hex digits",
                            shown(text)
                        )
                    })?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| format!("'{}' in the query is not UTF-8 once decoded", shown(text)))
}

/// `text` for a query value: every byte but letters, digits and `-._~`
/// as `%XX`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One filter's line, with what is derived from its counters.
struct Row<'a> {
    info: &'a FilterInfo,
    counts: &'a FilterCounts,
    alerts_rate: Option<f64>,
    accepted_rate: Option<f64>,
    micros: Option<f64>,
    fuel: Option<f64>,
}

impl Row<'_> {
    fn group_key(&self) -> &str {
        self.info.group.as_deref().unwrap_or(OPERATOR)
    }

    fn group_label(&self) -> &str {
        self.info.group.as_deref().unwrap_or(OPERATOR_LABEL)
    }

    /// The order of `column`, ascending; quarantined before running.
    fn cmp_by(&self, other: &Row, column: Column) -> Ordering {
        let number = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            // A figure not known yet (no alerts, no earlier sample) is
            // smaller than any.
            (a, b) => a.is_some().cmp(&b.is_some()),
        };
        let (a, b) = (self.counts, other.counts);
        match column {
            Column::Name => self.info.name.cmp(&other.info.name),
            Column::Group => group_order(self.info.group.as_deref(), other.info.group.as_deref()),
            Column::Version => self.info.version.cmp(&other.info.version),
            Column::Survey => self.info.survey.cmp(&other.info.survey),
            Column::Topic => self.info.output_topic.cmp(&other.info.output_topic),
            Column::State => b.quarantined.cmp(&a.quarantined),
            Column::Alerts => a.alerts.cmp(&b.alerts),
            Column::Accepted => a.accepted.cmp(&b.accepted),
            Column::Rejected => a.rejected.cmp(&b.rejected),
            Column::Failed => a.failed.cmp(&b.failed),
            Column::Skipped => a.skipped.cmp(&b.skipped),
            Column::AlertsRate => number(self.alerts_rate, other.alerts_rate),
            Column::AcceptedRate => number(self.accepted_rate, other.accepted_rate),
            Column::Micros => number(self.micros, other.micros),
            Column::Fuel => number(self.fuel, other.fuel),
        }
    }
}

/// Groups in the order the page lists them: the operator's first, then
/// by name.
fn group_order(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => a.cmp(b),
    }
}

/// The rows of `now` with their rates against `before`, sorted as `view`
/// says (ties by name), all of them: the summary counts every filter.
fn rows<'a>(now: &'a Snapshot, before: Option<&'a Snapshot>, view: &View) -> Vec<Row<'a>> {
    let seconds = before
        .map(|b| now.at.duration_since(b.at).as_secs_f64())
        .filter(|s| *s >= 1.0);
    let then: HashMap<&str, &FilterCounts> = before
        .map(|b| {
            b.filters
                .iter()
                .map(|(i, c)| (i.name.as_str(), c))
                .collect()
        })
        .unwrap_or_default();
    let mut rows: Vec<Row> = now
        .filters
        .iter()
        .map(|(info, counts)| {
            let rate = |pick: fn(&FilterCounts) -> u64| {
                let s = seconds?;
                let earlier = then.get(info.name.as_str()).map_or(0, |c| pick(c));
                Some(pick(counts).saturating_sub(earlier) as f64 / s)
            };
            let per_alert =
                |total: u64| (counts.alerts > 0).then(|| total as f64 / counts.alerts as f64);
            Row {
                info,
                counts,
                alerts_rate: rate(|c| c.alerts),
                accepted_rate: rate(|c| c.accepted),
                micros: per_alert(counts.nanos).map(|n| n / 1e3),
                fuel: per_alert(counts.fuel),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        let by = a.cmp_by(b, view.sort);
        let by = if view.desc { by.reverse() } else { by };
        by.then_with(|| a.info.name.cmp(&b.info.name))
    });
    rows
}

/// A count as the table shows it: in full up to 99,999, else in three
/// figures with k, M or G (the full count in the tooltip).
fn count(n: u64) -> String {
    if n < 100_000 {
        return n.to_string();
    }
    format!("<span title=\"{n}\">{}</span>", compact(n as f64))
}

/// `x` in at most four characters and a unit: 123k, 4.56M, 7.8G.
fn compact(x: f64) -> String {
    let (value, unit) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(scale, _)| x >= *scale)
        .map_or((x, ""), |(scale, unit)| (x / scale, unit));
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$}{unit}")
}

/// A rate or a mean: one decimal below 1,000, else [`compact`]; a dash
/// when not known yet.
fn figure(x: Option<f64>) -> String {
    match x {
        None => "–".to_string(),
        Some(x) if x < 1000.0 => format!("{x:.1}"),
        Some(x) => compact(x),
    }
}

/// The number of table columns, for rows that span them all.
fn columns(view: &View) -> usize {
    if view.flat { 15 } else { 14 }
}

/// One group's line of the summary.
#[derive(Default)]
struct GroupSum {
    filters: usize,
    quarantined: usize,
    alerts: u64,
    accepted: u64,
    alerts_rate: Option<f64>,
}

/// Each group's sums, in [`group_order`].
fn sums<'a>(rows: &[Row<'a>]) -> BTreeMap<GroupKey<'a>, GroupSum> {
    let mut out: BTreeMap<GroupKey, GroupSum> = BTreeMap::new();
    for r in rows {
        let s = out.entry(GroupKey(r.info.group.as_deref())).or_default();
        s.filters += 1;
        s.quarantined += usize::from(r.counts.quarantined);
        s.alerts += r.counts.alerts;
        s.accepted += r.counts.accepted;
        if let Some(rate) = r.alerts_rate {
            *s.alerts_rate.get_or_insert(0.0) += rate;
        }
    }
    out
}

/// A group in [`group_order`].
#[derive(PartialEq, Eq)]
struct GroupKey<'a>(Option<&'a str>);

impl Ord for GroupKey<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        group_order(self.0, other.0)
    }
}

impl PartialOrd for GroupKey<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl GroupKey<'_> {
    fn key(&self) -> &str {
        self.0.unwrap_or(OPERATOR)
    }
    fn label(&self) -> &str {
        self.0.unwrap_or(OPERATOR_LABEL)
    }
}

/// The page's style: a fixed table as wide as the window, whose columns
/// share it by percentage; long names wrap, long topics wrap on two
/// lines at most, cut there with the full text in the tooltip.
const STYLE: &str = "body{font:13px/1.35 system-ui,sans-serif;margin:12px 16px;color:#1d1d1d}\
h1{font-size:20px;margin:0 0 6px}p{margin:4px 0}a{color:#1a4f8b}\
table{border-collapse:collapse}td,th{border:1px solid #d6d6d6;padding:2px 5px;vertical-align:top}\
th{background:#f1f1f1;font-weight:600;text-align:left}\
#filters{width:100%;table-layout:fixed;font-size:12px}#filters td{overflow-wrap:anywhere}\
#filters td,#filters th{padding:2px 4px}\
#filters th a{color:inherit;text-decoration:none;display:block}\
#filters td.topic div{display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:2;\
overflow:hidden}\
#filters tbody tr:nth-child(even) td{background:#f8f8f8}\
#filters tr.group th{background:#e4ecf5;font-weight:600;white-space:normal}\
#groups{margin:6px 0 8px}#groups td,#groups th{padding:2px 8px}\
.n{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#176317}.bad{color:#a31515;font-weight:bold}\
form{margin:8px 0;display:flex;gap:10px;align-items:center;flex-wrap:wrap}\
.sorted{background:#e0e0e0}.muted{color:#666}";

/// The page for `now` as `view` asks, with rates against `before` when
/// there is one.
pub fn render(now: &Snapshot, before: Option<&Snapshot>, view: &View) -> String {
    let all = rows(now, before, view);
    let sums = sums(&all);
    let (state, state_class) = match &now.ready {
        Ok(()) => ("ready".to_string(), "ok"),
        Err(reason) => (format!("not ready: {reason}"), "bad"),
    };
    let mut page = String::with_capacity(4096 + all.len() * 700);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>bandpass status</title>\
         <style>{STYLE}</style></head><body>\n\
         <h1>bandpass</h1>\n<p id=\"state\" class=\"{state_class}\">{state}</p>\n\
         <p id=\"totals\">messages consumed {consumed}, produced {produced}, dead letters {dead}, \
         produce errors {errors}; {assigned} partitions assigned, lag {lag}</p>\n",
        state = escape(&state),
        consumed = now.consumed,
        produced = now.produced,
        dead = now.dead_letters,
        errors = now.produce_errors,
        assigned = now.assigned,
        lag = now.lag,
    );
    if let Some(m) = &now.memory {
        let _ = writeln!(
            page,
            "<p id=\"memory\">object memory: {} objects, store {:.1} MB, {} changelog records \
             written, {} restored, {} partitions restoring ({} records to read), {} store \
             failures, {} misrouted alerts, {} alerts out of order</p>",
            m.objects,
            m.store_bytes as f64 / 1e6,
            m.changes,
            m.restored,
            m.restoring,
            m.restore_remaining,
            m.failures,
            m.misrouted,
            m.out_of_order
        );
    }
    summary(&mut page, &sums, all.len(), view);
    form(&mut page, &sums, view);
    table(&mut page, &all, &sums, view);
    page.push_str(
        "<p class=\"muted\">Rates over the last minute; the page refreshes every 5 s and keeps \
         its view. Machine-readable: <a href=\"/metrics\">/metrics</a>, \
         <a href=\"/readyz\">/readyz</a>.</p>\n</body></html>\n",
    );
    page
}

/// The problems line and the table of groups.
fn summary(page: &mut String, sums: &BTreeMap<GroupKey, GroupSum>, total: usize, view: &View) {
    let quarantined: usize = sums.values().map(|s| s.quarantined).sum();
    if quarantined > 0 {
        let problems = View {
            state: Some(StateChoice::Quarantined),
            group: None,
            search: String::new(),
            ..view.clone()
        };
        let _ = writeln!(
            page,
            "<p id=\"problems\" class=\"bad\">{quarantined} of {total} filters quarantined: \
             <a href=\"{}\">show only them</a></p>",
            escape(&problems.href())
        );
    }
    if sums.is_empty() {
        return;
    }
    page.push_str(
        "<table id=\"groups\"><thead><tr><th>group</th><th>filters</th><th>running</th>\
         <th>quarantined</th><th>alerts</th><th>accepted</th><th>alerts/s</th></tr></thead><tbody>\n",
    );
    let mut all = GroupSum::default();
    for (key, s) in sums {
        let only = View {
            group: Some(key.key().to_string()),
            ..view.clone()
        };
        let quarantined = if s.quarantined > 0 {
            let problems = View {
                state: Some(StateChoice::Quarantined),
                ..only.clone()
            };
            format!(
                "<a class=\"bad\" href=\"{}\">{}</a>",
                escape(&problems.href()),
                s.quarantined
            )
        } else {
            "0".to_string()
        };
        let _ = writeln!(
            page,
            "<tr data-group=\"{key}\"><td><a href=\"{href}\">{label}</a></td><td class=\"n\">{filters}</td>\
             <td class=\"n\">{running}</td><td class=\"n\">{quarantined}</td><td class=\"n\">{alerts}</td>\
             <td class=\"n\">{accepted}</td><td class=\"n\">{rate}</td></tr>",
            key = escape(key.key()),
            href = escape(&only.href()),
            label = escape(key.label()),
            filters = s.filters,
            running = s.filters - s.quarantined,
            alerts = count(s.alerts),
            accepted = count(s.accepted),
            rate = figure(s.alerts_rate),
        );
        all.filters += s.filters;
        all.quarantined += s.quarantined;
        all.alerts += s.alerts;
        all.accepted += s.accepted;
        if let Some(r) = s.alerts_rate {
            *all.alerts_rate.get_or_insert(0.0) += r;
        }
    }
    let everyone = View {
        group: None,
        ..view.clone()
    };
    let _ = writeln!(
        page,
        "<tr id=\"all-groups\"><th><a href=\"{href}\">all</a></th><th class=\"n\">{filters}</th>\
         <th class=\"n\">{running}</th><th class=\"n\">{quarantined}</th><th class=\"n\">{alerts}</th>\
         <th class=\"n\">{accepted}</th><th class=\"n\">{rate}</th></tr>\n</tbody></table>",
        href = escape(&everyone.href()),
        filters = all.filters,
        running = all.filters - all.quarantined,
        quarantined = all.quarantined,
        alerts = count(all.alerts),
        accepted = count(all.accepted),
        rate = figure(all.alerts_rate),
    );
}

/// The GET form that narrows the table; the sort rides along hidden.
fn form(page: &mut String, sums: &BTreeMap<GroupKey, GroupSum>, view: &View) {
    let selected = |on: bool| if on { " selected" } else { "" };
    let mut groups = format!(
        "<option value=\"\"{}>all</option>",
        selected(view.group.is_none())
    );
    let mut listed = false;
    for key in sums.keys() {
        let on = view.group.as_deref() == Some(key.key());
        listed |= on;
        let _ = write!(
            groups,
            "<option value=\"{}\"{}>{}</option>",
            escape(key.key()),
            selected(on),
            escape(key.label())
        );
    }
    // A group with no filter running here stays chosen.
    if let (Some(g), false) = (&view.group, listed) {
        let _ = write!(
            groups,
            "<option value=\"{g}\" selected>{g}</option>",
            g = escape(g)
        );
    }
    let state = view.state;
    let _ = writeln!(
        page,
        "<form id=\"view\" method=\"get\" action=\"/\">\
         <label>name <input type=\"search\" name=\"q\" value=\"{q}\" maxlength=\"{max}\" size=\"28\" \
         placeholder=\"part of a filter's name\"></label>\
         <label>group <select name=\"group\">{groups}</select></label>\
         <label>state <select name=\"state\"><option value=\"\"{s_all}>all</option>\
         <option value=\"running\"{s_run}>running</option>\
         <option value=\"quarantined\"{s_q}>quarantined</option></select></label>\
         <label>rows <select name=\"by\"><option value=\"group\"{by_group}>by group</option>\
         <option value=\"none\"{by_none}>one list</option></select></label>\
         <input type=\"hidden\" name=\"sort\" value=\"{sort}\">\
         <input type=\"hidden\" name=\"desc\" value=\"{desc}\">\
         <button type=\"submit\">show</button> <a href=\"/\">reset</a></form>",
        q = escape(&view.search),
        max = MAX_SEARCH_BYTES,
        s_all = selected(state.is_none()),
        s_run = selected(state == Some(StateChoice::Running)),
        s_q = selected(state == Some(StateChoice::Quarantined)),
        by_group = selected(!view.flat),
        by_none = selected(view.flat),
        sort = view.sort.key(),
        desc = u8::from(view.desc),
    );
}

/// The filter table: the rows `view` shows, a section per group unless
/// it asks for one list.
fn table(page: &mut String, all: &[Row], sums: &BTreeMap<GroupKey, GroupSum>, view: &View) {
    let shown: Vec<&Row> = all.iter().filter(|r| view.shows(r)).collect();
    let _ = writeln!(
        page,
        "<p id=\"showing\">{} of {} filters shown{}</p>",
        shown.len(),
        all.len(),
        if view.flat { "" } else { ", by group" }
    );
    let cols: Vec<Column> = Column::ALL
        .into_iter()
        .filter(|c| view.flat || *c != Column::Group)
        .collect();
    // Widths in percent: the numbers' columns are as wide as a heading
    // needs; the name takes what is left.
    page.push_str("<table id=\"filters\"><colgroup>");
    for c in &cols {
        let width = match c {
            Column::Name if view.flat => 19.0,
            Column::Name => 25.0,
            Column::Group => 6.0,
            Column::Version => 4.5,
            Column::Survey => 4.0,
            Column::Topic => 10.5,
            Column::State => 7.5,
            _ => 5.35,
        };
        let _ = write!(page, "<col style=\"width:{width}%\">");
    }
    page.push_str("</colgroup><thead><tr>");
    for c in &cols {
        let (label, tip) = c.heading();
        let arrow = match (view.sort == *c, view.desc) {
            (false, _) => "",
            (true, false) => " ▲",
            (true, true) => " ▼",
        };
        let class = match (c.numeric(), view.sort == *c) {
            (true, true) => " class=\"n sorted\"",
            (true, false) => " class=\"n\"",
            (false, true) => " class=\"sorted\"",
            (false, false) => "",
        };
        let _ = write!(
            page,
            "<th{class} title=\"{tip}; sort by it\"><a href=\"{href}\" data-sort=\"{key}\">{label}{arrow}</a></th>",
            href = escape(&view.sorted_by(*c).href()),
            key = c.key(),
        );
    }
    page.push_str("</tr></thead><tbody>\n");
    if view.flat {
        for r in &shown {
            row(page, r, view);
        }
    } else {
        for key in sums.keys() {
            let members: Vec<&&Row> = shown
                .iter()
                .filter(|r| r.group_key() == key.key())
                .collect();
            if members.is_empty() {
                continue;
            }
            let quarantined = members.iter().filter(|r| r.counts.quarantined).count();
            let _ = writeln!(
                page,
                "<tr class=\"group\" data-group=\"{key}\"><th colspan=\"{n}\">{label}: {count} \
                 filter{s}{problems}</th></tr>",
                key = escape(key.key()),
                n = cols.len(),
                label = escape(key.label()),
                count = members.len(),
                s = if members.len() == 1 { "" } else { "s" },
                problems = if quarantined > 0 {
                    format!(", <span class=\"bad\">{quarantined} quarantined</span>")
                } else {
                    String::new()
                },
            );
            for r in members {
                row(page, r, view);
            }
        }
    }
    if all.is_empty() {
        let _ = writeln!(
            page,
            "<tr><td colspan=\"{}\">no filter deployed</td></tr>",
            columns(view)
        );
    } else if shown.is_empty() {
        let _ = writeln!(
            page,
            "<tr><td colspan=\"{}\" id=\"none-match\">no filter matches: <a href=\"/\">show all</a></td></tr>",
            columns(view)
        );
    }
    page.push_str("</tbody></table>\n");
}

/// One filter's row.
fn row(page: &mut String, r: &Row, view: &View) {
    let c = r.counts;
    let (state, class) = if c.quarantined {
        ("quarantined", "bad")
    } else {
        ("running", "ok")
    };
    let group = if view.flat {
        format!("<td>{}</td>", escape(r.group_label()))
    } else {
        String::new()
    };
    // The name and version cells open the row as tools read them
    // (`<tr data-filter="N"><td class="name">N</td><td>V`).
    let _ = writeln!(
        page,
        "<tr data-filter=\"{name}\"><td class=\"name\">{name}</td>{group}<td>{version}</td>\
         <td>{survey}</td><td class=\"topic\" title=\"{topic}\"><div>{topic}</div></td>\
         <td class=\"{class}\">{state}</td>\
         <td class=\"n alerts\">{alerts}</td><td class=\"n accepted\">{accepted}</td>\
         <td class=\"n\">{rejected}</td><td class=\"n failed\">{failed}</td><td class=\"n\">{skipped}</td>\
         <td class=\"n\">{alerts_rate}</td><td class=\"n\">{accepted_rate}</td>\
         <td class=\"n\">{micros}</td><td class=\"n\">{fuel}</td></tr>",
        name = escape(&r.info.name),
        version = escape(&r.info.version),
        survey = escape(&r.info.survey),
        topic = escape(&r.info.output_topic),
        alerts = count(c.alerts),
        accepted = count(c.accepted),
        rejected = count(c.rejected),
        failed = count(c.failed),
        skipped = count(c.skipped),
        alerts_rate = figure(r.alerts_rate),
        accepted_rate = figure(r.accepted_rate),
        micros = figure(r.micros),
        fuel = match r.fuel {
            None => "–".to_string(),
            Some(f) if f < 100_000.0 => format!("{f:.0}"),
            Some(f) => compact(f),
        },
    );
}

/// The page answering a query it does not take: why, and the way back.
pub fn refusal(why: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>bandpass status: query refused</title></head><body>\n\
         <h1>bandpass</h1>\n<p id=\"refused\">This view cannot be shown: {}.</p>\n\
         <p><a href=\"/\">The status page, every filter</a></p>\n</body></html>\n",
        escape(why)
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
    use std::time::Instant;

    fn info(name: &str, group: Option<&str>) -> FilterInfo {
        FilterInfo {
            name: name.into(),
            version: "1.0.0".into(),
            survey: "ztf".into(),
            output_topic: format!("out-{name}"),
            group: group.map(str::to_string),
        }
    }

    fn snapshot(at: Instant, alerts: u64) -> Snapshot {
        Snapshot {
            at,
            filters: vec![(
                FilterInfo {
                    output_topic: "out<script>".into(),
                    ..info("bright", None)
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

    /// Six filters in three groups: (name, group, accepted, quarantined).
    fn fleet() -> Snapshot {
        let filters = [
            ("zeta", None, 5, false),
            ("alpha", None, 50, false),
            ("hosts.bright", Some("hosts"), 7, true),
            ("hosts.faint", Some("hosts"), 70, false),
            ("rivals.bright-too", Some("rivals"), 0, false),
            ("rivals.<b>x</b>", Some("rivals"), 9, true),
        ]
        .into_iter()
        .map(|(name, group, accepted, quarantined)| {
            (
                info(name, group),
                FilterCounts {
                    alerts: 100,
                    accepted,
                    quarantined,
                    ..FilterCounts::default()
                },
            )
        })
        .collect();
        Snapshot {
            filters,
            ready: Ok(()),
            ..snapshot(Instant::now(), 0)
        }
    }

    fn view(query: &str) -> View {
        View::parse(Some(query)).unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// The filters' names in the order the page lists them.
    fn order(page: &str) -> Vec<String> {
        page.split("<tr data-filter=\"")
            .skip(1)
            .map(|r| r.split('"').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn shows_each_filter_with_its_counts_rates_and_escaped_text() {
        let start = Instant::now();
        let page = render(
            &snapshot(start + Duration::from_secs(10), 100),
            Some(&snapshot(start, 50)),
            &View::default(),
        );
        assert!(
            page.contains(
                "<tr data-filter=\"bright\"><td class=\"name\">bright</td><td>1.0.0</td>"
            ),
            "{page}"
        );
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
        let page = render(&now, None, &View::default());
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

    #[test]
    fn reads_every_parameter_of_the_query() {
        assert_eq!(View::parse(None), Ok(View::default()));
        assert_eq!(view(""), View::default());
        let v = view(
            "sort=accepted_rate&desc=1&group=ztf-team&state=quarantined&q=Bright+one%21&by=none",
        );
        assert_eq!(
            v,
            View {
                sort: Column::AcceptedRate,
                desc: true,
                group: Some("ztf-team".into()),
                state: Some(StateChoice::Quarantined),
                search: "Bright one!".into(),
                flat: true,
            }
        );
        // What a form sends for "all": empty values are the defaults.
        assert_eq!(
            view("q=&group=&state=&by=group&sort=state&desc=0"),
            View::default()
        );
        assert_eq!(view("group=_operator").group.as_deref(), Some(OPERATOR));
        // Every column can be sorted by, and its link reads back.
        for c in Column::ALL {
            let v = View::default().sorted_by(c);
            assert_eq!(view(v.href().trim_start_matches("/?")), v, "{c:?}");
        }
        // A view's address reads back as the same view, whatever its search.
        let odd = View {
            search: "a&b=c%d+e ü<\"'>".into(),
            group: Some("hosts".into()),
            ..v
        };
        assert_eq!(view(odd.href().trim_start_matches("/?")), odd);
        assert_eq!(View::default().href(), "/");
    }

    #[test]
    fn refuses_a_query_it_does_not_take_saying_what_it_takes() {
        let refused = |q: &str| View::parse(Some(q)).unwrap_err();
        let why = refused("sort=colour");
        assert!(
            why.contains("sort=colour") && why.contains("accepted_rate"),
            "{why}"
        );
        assert!(refused("colour=red").contains("no parameter 'colour'"));
        assert!(refused("colour=red").contains("state (running or quarantined)"));
        assert!(refused("desc=yes").contains("0 (ascending) or 1"));
        assert!(refused("state=sleeping").contains("running or quarantined"));
        assert!(refused("by=survey").contains("group"));
        assert!(refused("sort=name&sort=state").contains("'sort' is given twice"));
        // A group is a group's name or the operator's marker, nothing else.
        for bad in ["Hosts", "a/b", "<b>", &"g".repeat(33), "operator%00"] {
            assert!(
                refused(&format!("group={bad}")).contains("a group's name"),
                "{bad}"
            );
        }
        assert!(view(&format!("group={}", "g".repeat(32))).group.is_some());
        // Bounds: the search, and the query as a whole before it is read.
        assert!(
            view(&format!("q={}", "a".repeat(MAX_SEARCH_BYTES)))
                .search
                .len()
                == 100
        );
        assert!(
            refused(&format!("q={}", "a".repeat(MAX_SEARCH_BYTES + 1))).contains("at most 100")
        );
        let long = format!("q=a{}", "&".repeat(MAX_QUERY_BYTES));
        assert!(refused(&long).contains("at most 512"), "{}", refused(&long));
        // Bad encodings.
        assert!(refused("q=%zz").contains("two hex digits"));
        assert!(refused("q=%4").contains("two hex digits"));
        assert!(refused("q=%ff%fe").contains("not UTF-8"));
        // A hostile key or value is cut and shown inert in the refusal.
        let why = refused(&format!("%3Cscript%3E{}=1", "x".repeat(500 - 20)));
        assert!(why.len() < 400, "{why}");
        let page = refusal(&why);
        assert!(
            page.contains("&lt;script&gt;") && !page.contains("<script>"),
            "{page}"
        );
        let why = refused("state=%1b%5b31m");
        assert!(why.contains("\\u{1b}"), "controls made visible: {why}");
    }

    #[test]
    fn sorts_by_any_column_ties_by_name_and_puts_quarantined_first_by_default() {
        let now = fleet();
        let page = render(&now, None, &view("by=none"));
        assert_eq!(
            order(&page),
            [
                "hosts.bright",
                "rivals.&lt;b&gt;x&lt;/b&gt;",
                "alpha",
                "hosts.faint",
                "rivals.bright-too",
                "zeta"
            ],
            "quarantined first, then by name"
        );
        let page = render(&now, None, &view("by=none&sort=accepted&desc=1"));
        assert_eq!(
            order(&page),
            [
                "hosts.faint",
                "alpha",
                "rivals.&lt;b&gt;x&lt;/b&gt;",
                "hosts.bright",
                "zeta",
                "rivals.bright-too"
            ]
        );
        let page = render(&now, None, &view("by=none&sort=accepted"));
        assert_eq!(order(&page)[0], "rivals.bright-too");
        let page = render(&now, None, &view("by=none&sort=name&desc=1"));
        assert_eq!(order(&page)[0], "zeta");
        // The sorted column's heading says which way; its link turns it.
        assert!(page.contains("data-sort=\"name\">filter ▼</a>"), "{page}");
        assert!(
            page.contains("href=\"/?sort=name&amp;by=none\" data-sort=\"name\""),
            "{page}"
        );
        // Another column's link sorts numbers largest first.
        assert!(
            page.contains("href=\"/?sort=failed&amp;desc=1&amp;by=none\""),
            "{page}"
        );
    }

    #[test]
    fn groups_rows_under_their_group_the_operators_first_and_sums_each_group() {
        let now = fleet();
        let page = render(&now, None, &View::default());
        assert_eq!(
            order(&page),
            [
                "alpha",
                "zeta",
                "hosts.bright",
                "hosts.faint",
                "rivals.&lt;b&gt;x&lt;/b&gt;",
                "rivals.bright-too"
            ],
            "within a group, quarantined first"
        );
        let table = page.split("<table id=\"filters\">").nth(1).unwrap();
        let sections: Vec<&str> = table
            .split("<tr class=\"group\" data-group=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
            .collect();
        assert_eq!(sections, ["_operator", "hosts", "rivals"]);
        assert!(table.contains(">operator: 2 filters</th>"), "{table}");
        assert!(
            table.contains(">hosts: 2 filters, <span class=\"bad\">1 quarantined</span></th>"),
            "{table}"
        );
        // The summary: a line per group and the totals, the problems named.
        assert!(
            page.contains(
                "<tr data-group=\"hosts\"><td><a href=\"/?group=hosts\">hosts</a></td>\
                 <td class=\"n\">2</td><td class=\"n\">1</td>\
                 <td class=\"n\"><a class=\"bad\" href=\"/?group=hosts&amp;state=quarantined\">1</a></td>\
                 <td class=\"n\">200</td><td class=\"n\">77</td>"
            ),
            "{page}"
        );
        assert!(
            page.contains("<th class=\"n\">6</th><th class=\"n\">4</th><th class=\"n\">2</th>"),
            "{page}"
        );
        assert!(
            page.contains("2 of 6 filters quarantined: <a href=\"/?state=quarantined\">"),
            "{page}"
        );
        // In one list, the group is a column.
        let flat = render(&now, None, &view("by=none"));
        assert!(!flat.contains("<tr class=\"group\""));
        assert!(flat.contains("<td class=\"name\">alpha</td><td>operator</td><td>1.0.0</td>"));
    }

    #[test]
    fn shows_only_the_rows_a_group_a_state_or_a_name_picks() {
        let now = fleet();
        let shown = |q: &str| order(&render(&now, None, &view(q)));
        assert_eq!(shown("group=hosts"), ["hosts.bright", "hosts.faint"]);
        assert_eq!(shown("group=_operator"), ["alpha", "zeta"]);
        assert_eq!(
            shown("state=quarantined"),
            ["hosts.bright", "rivals.&lt;b&gt;x&lt;/b&gt;"]
        );
        assert_eq!(shown("state=running&group=rivals"), ["rivals.bright-too"]);
        assert_eq!(
            shown("q=BRIGHT"),
            ["hosts.bright", "rivals.bright-too"],
            "any case"
        );
        assert_eq!(shown("q=%3Cb%3E"), ["rivals.&lt;b&gt;x&lt;/b&gt;"]);
        let page = render(&now, None, &view("q=nothing&group=nobody"));
        assert!(order(&page).is_empty());
        assert!(
            page.contains("id=\"none-match\">no filter matches"),
            "{page}"
        );
        assert!(
            page.contains("<p id=\"showing\">0 of 6 filters shown"),
            "{page}"
        );
        assert!(
            page.contains("<option value=\"nobody\" selected>nobody</option>"),
            "the chosen group stays chosen: {page}"
        );
        // The summary still counts every filter.
        assert!(page.contains("<tr data-group=\"rivals\">"), "{page}");
    }

    #[test]
    fn escapes_every_text_a_tenant_or_the_query_supplies() {
        let mut now = fleet();
        now.filters[0].0.version = "<img src=x onerror=alert(1)>".into();
        now.filters[0].0.survey = "\"><b>".into();
        let hostile = "\"><script>alert('q')</script>";
        let v = View {
            search: hostile.into(),
            ..View::default()
        };
        let page = render(&now, None, &v);
        assert!(!page.contains("<script>") && !page.contains("<img") && !page.contains("<b>"));
        assert!(
            page.contains(
                "name=\"q\" value=\"&quot;&gt;&lt;script&gt;alert(&#39;q&#39;)&lt;/script&gt;\""
            ),
            "{page}"
        );
        // Links carry the search percent-encoded, then escaped.
        assert!(
            page.contains("?sort=name&amp;q=%22%3E%3Cscript%3Ealert%28%27q%27%29%3C%2Fscript%3E\""),
            "{page}"
        );
        let page = render(&now, None, &View::default());
        assert!(
            page.contains("<td>&lt;img src=x onerror=alert(1)&gt;</td>"),
            "{page}"
        );
        assert!(page.contains("rivals.&lt;b&gt;x&lt;/b&gt;"), "{page}");
        assert!(!page.contains("<b>"));
    }

    #[test]
    fn writes_large_numbers_compactly_with_the_full_count_in_the_tooltip() {
        assert_eq!(count(99_999), "99999");
        assert_eq!(count(123_456), "<span title=\"123456\">123k</span>");
        assert_eq!(compact(4_560_000.0), "4.56M");
        assert_eq!(compact(78_900_000_000.0), "78.9G");
        assert_eq!(figure(Some(12.345)), "12.3");
        assert_eq!(figure(Some(2500.0)), "2.50k");
        assert_eq!(figure(None), "–");
    }
}
