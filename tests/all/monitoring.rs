//! The monitoring that ships in `deploy/`: the Prometheus alerting rules
//! pass `promtool check rules` and their unit tests (`promtool test
//! rules`, each alert firing for a recorded sick instance and not for
//! healthy ones), the Grafana dashboard's queries parse, and every metric
//! the rules and the dashboard name is on the `/metrics` page of a real
//! `bandpass serve`, so that neither can drift from the code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::http::admin_get;
use crate::support::kafka::{produce, unique};
use crate::support::metrics::sample;
use crate::support::processes::ServeBuilder;
use crate::support::{repo_root, ztf_alert_bytes};

fn rules_file() -> PathBuf {
    repo_root().join("deploy/prometheus/bandpass-rules.yml")
}

fn rules_tests_file() -> PathBuf {
    repo_root().join("deploy/prometheus/bandpass-rules.test.yml")
}

fn dashboard_file() -> PathBuf {
    repo_root().join("deploy/grafana/bandpass.json")
}

/// Runs Debian's promtool (scripts/test.sh installs the `prometheus`
/// package) and requires success, showing what it said otherwise.
fn promtool(args: &[&str], file: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .arg(file)
        .output()
        .expect(
            "promtool runs (scripts/test.sh installs it: apt-get install --no-install-recommends \
             prometheus)",
        );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} {} failed:\n{said}",
        args.join(" "),
        file.display()
    );
    said
}

/// Each alerting rule's name and expression, in file order, read from the
/// rules file (an `expr:` on one line, or a `|` block under it).
fn rules() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(rules_file()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut names = Vec::new();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            names.push(name.trim().to_string());
        } else if let Some(rest) = trimmed.strip_prefix("expr:") {
            let rest = rest.trim();
            if rest.starts_with('|') || rest.starts_with('>') {
                let block: Vec<&str> = lines[i + 1..]
                    .iter()
                    .take_while(|l| l.trim().is_empty() || indent(l) > indent(line))
                    .map(|l| l.trim())
                    .collect();
                exprs.push(block.join(" ").trim().to_string());
            } else {
                // A quoted scalar loses its quotes.
                let quoted = rest.len() >= 2
                    && (rest.starts_with('"') || rest.starts_with('\''))
                    && rest.ends_with(&rest[..1]);
                let expr = if quoted {
                    &rest[1..rest.len() - 1]
                } else {
                    rest
                };
                exprs.push(expr.to_string());
            }
        }
    }
    assert_eq!(
        names.len(),
        exprs.len(),
        "{}: every alert needs one expr: {names:?} vs {exprs:?}",
        rules_file().display()
    );
    assert!(exprs.iter().all(|e| !e.is_empty()), "{exprs:?}");
    names.into_iter().zip(exprs).collect()
}

/// The dashboard, parsed.
fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(dashboard_file()).unwrap();
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", dashboard_file().display()))
}

/// Every panel's title and queries (`expr` of each target).
fn panel_queries(dashboard: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    dashboard["panels"]
        .as_array()
        .expect("a panels list")
        .iter()
        .map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            let exprs = p["targets"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .map(|t| t["expr"].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            (title, exprs)
        })
        .collect()
}

/// Skips the string literal opening at `i` (with its escapes): the
/// index just past its closing quote.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    let quote = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != quote {
        i += if chars[i] == '\\' && quote != '`' {
            2
        } else {
            1
        };
    }
    i + 1
}

/// Skips the group opening with `open` at `i`, nested groups and strings
/// inside it included: the index just past its `close`.
fn skip_group(chars: &[char], mut i: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(chars, i);
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

/// The metric names a PromQL expression reads: its identifiers that are
/// not functions, keywords, label names (in `{}` and in `by (...)` and
/// the like), durations, numbers, strings or Grafana variables (`$x`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Operators, and the aggregations (which may take `by (...)` before
    // their parenthesis).
    const KEYWORDS: [&str; 20] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "atan2",
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_group(&chars, i, '{', '}');
        } else if c == '[' {
            i = skip_group(&chars, i, '[', ']');
        } else if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '$' || c.is_ascii_digit() || c == '.' {
            // A variable, a number or a duration: skip the whole token.
            i += 1;
            while i < chars.len() && (word(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if word(c) {
            let start = i;
            while i < chars.len() && word(chars[i]) {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if LABEL_LISTS.contains(&ident.as_str()) {
                if next == Some(&'(') {
                    let open = i + chars[i..].iter().position(|&c| c == '(').unwrap();
                    i = skip_group(&chars, open, '(', ')');
                }
            } else if next == Some(&'(') || KEYWORDS.contains(&ident.as_str()) {
                // A function call or a keyword.
            } else {
                names.insert(ident);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql_and_nothing_else() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (filter, le) (rate(bandpass_filter_seconds_bucket\
         {instance=~\"$instance\", filter=~\"a\\\"} b\"}[$__rate_interval]))) > 1e-3 \
         and on (job, instance) up{job=\"bandpass\"} == 0 unless ignoring(kind) \
         foo:bar offset 5m or count(max by (x) (gauge_a) > 0) or vector(0)",
    );
    let want: BTreeSet<String> = ["bandpass_filter_seconds_bucket", "up", "foo:bar", "gauge_a"]
        .map(String::from)
        .into();
    assert_eq!(names, want);
}

#[test]
fn the_alerting_rules_pass_promtool_and_each_is_unit_tested_firing_and_not() {
    promtool(&["check", "rules"], &rules_file());
    let said = promtool(&["test", "rules"], &rules_tests_file());
    assert!(said.contains("SUCCESS"), "{said}");
    let names: Vec<String> = rules().into_iter().map(|(name, _)| name).collect();
    // What issue 16 asks the rules to watch, beside the usual two.
    for wanted in [
        "BandpassInstanceDown",
        "BandpassNoConsumerProgress",
        "BandpassFilterQuarantined",
        "BandpassDeadLettersRising",
        "BandpassProduceErrors",
        "BandpassCommittedLagRising",
        "BandpassRestoreRunningLong",
        "BandpassRegistryBehind",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "no {wanted} in {names:?}"
        );
    }
    // Each rule has a unit test that expects it to fire (an `exp_labels`
    // under its name) and one that expects it not to (`exp_alerts: []`).
    let tests = std::fs::read_to_string(rules_tests_file()).unwrap();
    for name in &names {
        let cases: Vec<&str> = tests
            .split("- eval_time:")
            .filter(|case| case.contains(&format!("alertname: {name}\n")))
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_annotations:")),
            "no test of {name} firing (with its annotations) in {}",
            rules_tests_file().display()
        );
        assert!(
            cases.iter().any(|c| c.contains("exp_alerts: []")),
            "no test of {name} not firing in {}",
            rules_tests_file().display()
        );
    }
}

#[test]
fn every_dashboard_panel_has_a_query_promql_accepts() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for wanted in ["datasource", "instance", "filter"] {
        assert!(variables.contains(&wanted), "no ${wanted} in {variables:?}");
    }
    let panels = panel_queries(&dashboard);
    assert!(panels.len() >= 10, "{panels:?}");
    // Each query as a recording rule, which promtool parses: Grafana's
    // range variable becomes a duration; $instance and $filter are
    // inside regular expressions, which they keep valid.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, (title, exprs)) in panels.iter().enumerate() {
        let panel = &dashboard["panels"][n];
        assert!(
            !exprs.is_empty() && exprs.iter().all(|e| !e.trim().is_empty()),
            "panel {title:?} has a target without a query"
        );
        for key in ["x", "y", "w", "h"] {
            assert!(
                panel["gridPos"][key].is_u64(),
                "panel {title:?}: gridPos.{key}"
            );
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {title:?} reads the chosen data source"
        );
        for (m, expr) in exprs.iter().enumerate() {
            let expr = expr.replace("$__rate_interval", "5m");
            rules.push_str(&format!(
                "      - record: dashboard:panel{n}:query{m}\n        expr: {}\n",
                serde_json::to_string(&expr).unwrap()
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, rules).unwrap();
    promtool(&["check", "rules"], &file);
}

/// Every metric name the page declares (from its `# TYPE` lines), as
/// series are named: counters with `_total`, histograms by their
/// `_bucket`, `_sum` and `_count`, info metrics with `_info`.
fn exposed_names(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

#[test]
fn every_metric_the_rules_and_the_dashboard_read_is_on_a_running_serves_page() {
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for (alert, expr) in rules() {
        for name in metric_names(&expr) {
            wanted.insert((name, format!("rule {alert}")));
        }
    }
    let dashboard = dashboard();
    for (title, exprs) in panel_queries(&dashboard) {
        for expr in exprs {
            for name in metric_names(&expr) {
                wanted.insert((name, format!("panel {title:?}")));
            }
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(query) = variable["definition"].as_str() else {
            continue;
        };
        if let Some(inner) = query.strip_prefix("label_values(") {
            // label_values(SELECTOR, LABEL): the metric is the selector's.
            let selector = &inner[..inner.rfind(',').unwrap()];
            for name in metric_names(selector) {
                wanted.insert((name, format!("variable {}", variable["name"])));
            }
        }
    }
    // The two metrics of issue 16 the rules are written for, whatever
    // the files say.
    for name in [
        "bandpass_consumer_committed_lag",
        "bandpass_registry_behind_records",
    ] {
        wanted.insert((name.to_string(), "issue 16".to_string()));
    }

    // A serve with a filter, uploads on (the registry's series) and
    // real alerts consumed.
    let dir = tempfile::tempdir().unwrap();
    let input = unique("monitoring-alerts");
    let alerts = ztf_alert_bytes();
    produce(&input, &alerts);
    let serve = ServeBuilder::new(
        dir.path().join("bandpass.toml"),
        &input,
        &unique("monitoring-group"),
    )
    .filter("bright_transients", &unique("monitoring-out"))
    .admin_with(&crate::uploads::admin_keys(
        &unique("monitoring-registry"),
        "",
    ))
    .log(&dir.path().join("serve.log"))
    .write();
    let _running = serve.start();
    // Families with labels appear with their first series (the
    // committed lag once the group has committed, about a second after
    // the alerts are done): read the page until every name is there and
    // the alerts are evaluated, or say what is missing after a minute.
    let series = "bandpass_filter_alerts_total{filter=\"bright-transients\"}";
    // Prometheus's own series for each target.
    let prometheus_own = ["up"];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, page) = admin_get(serve.admin_addr(), "/metrics");
        assert_eq!(status, 200, "{page}");
        let exposed = exposed_names(&page);
        let missing: Vec<String> = wanted
            .iter()
            .filter(|(name, _)| !exposed.contains(name) && !prometheus_own.contains(&name.as_str()))
            .map(|(name, user)| format!("{name} (read by {user})"))
            .collect();
        let evaluated = sample(&page, series) == Some(alerts.len() as f64);
        if missing.is_empty() && evaluated {
            // The page's names are read as series are named.
            assert!(exposed.contains("bandpass_filter_seconds_bucket"));
            assert!(!exposed.contains("bandpass_filter_seconds"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after a minute, serve has {} the {} alerts, and the monitoring in deploy/ reads \
             metrics its page does not have:\n  {}\nserve's page:\n{page}",
            if evaluated {
                "evaluated"
            } else {
                "not evaluated"
            },
            alerts.len(),
            missing.join("\n  ")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
