//! Reading what `bandpass serve` reports: its Prometheus page and its
//! status page, on the admin port.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::http::admin_get;

/// The value of one sample in a Prometheus text page (`name{labels}`
/// exactly as written), or `None`.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A filter's failure counts by kind, from a metrics page.
pub fn failure_kinds(page: &str, filter: &str) -> BTreeMap<String, f64> {
    let prefix = format!("bandpass_filter_failures_total{{filter=\"{filter}\",kind=\"");
    page.lines()
        .filter_map(|l| {
            let (kind, value) = l.strip_prefix(&prefix)?.split_once("\"} ")?;
            Some((kind.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The sum of one series over instances' `/metrics`.
pub fn total(admins: &[SocketAddr], series: &str) -> f64 {
    admins
        .iter()
        .map(|a| sample(&admin_get(*a, "/metrics").1, series).unwrap_or(0.0))
        .sum()
}

/// The version the status page shows for `deployment`, if it runs.
pub fn on_status_page(admin: SocketAddr, deployment: &str) -> Option<String> {
    let page = admin_get(admin, "/").1;
    let row = format!("<tr data-filter=\"{deployment}\"><td class=\"name\">{deployment}</td><td>");
    let at = page.find(&row)? + row.len();
    Some(page[at..].split('<').next()?.to_string())
}
