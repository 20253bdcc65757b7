//! The status page of `bandpass serve` with a hundred filters, against
//! the real broker and rendered by headless Chromium at 1280 px: it fits
//! the window, groups the filters by group, sorts and narrows them as
//! its query says, and shows tenant text and the query inert.
//!
//! Chromium is driven over its DevTools pipe (`--remote-debugging-pipe`:
//! commands in on fd 3, answers out on fd 4, each a JSON text ended by a
//! NUL byte), so that the test measures the page as laid out in the
//! browser (widths, what each cell holds) without a script in the page.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::component;
use crate::support::http::{admin_get, upload};
use crate::support::kafka::{produce, unique};
use crate::support::metrics::sample;
use crate::support::processes::{chromium, terminate};
use crate::support::{filters_dir, ztf_alert_bytes};
use crate::uploads::{Fleet, HOSTS_TOKEN, RIVALS_TOKEN};

/// The window the page must fit.
const WIDTH: u64 = 1280;

/// Headless Chromium on its DevTools pipe, with one page open.
struct Browser {
    child: Child,
    commands: ChildStdin,
    answers: Receiver<Value>,
    /// Events read while waiting for an answer.
    events: Vec<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium with a window `width` wide and opens a page in it.
    fn start(width: u64) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // The shell hands the child's stdin and stdout to Chromium as
        // fds 3 and 4, where the pipe protocol expects them.
        let script = format!(
            "exec chromium --headless --no-sandbox --disable-gpu --no-first-run \
             --remote-debugging-pipe --user-data-dir='{}' \
             --window-size={width},900 3<&0 4>&1 </dev/null >/dev/null 2>/dev/null",
            profile.path().display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs chromium (scripts/test.sh installs it: apt-get install chromium)");
        let commands = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (send, answers) = channel();
        std::thread::spawn(move || {
            let mut message = Vec::new();
            while out.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                if message.last() == Some(&0) {
                    message.pop();
                }
                match serde_json::from_slice(&message) {
                    Ok(value) => {
                        if send.send(value).is_err() {
                            return;
                        }
                    }
                    Err(e) => panic!("not JSON from Chromium ({e})"),
                }
                message.clear();
            }
        });
        let mut browser = Browser {
            child,
            commands,
            answers,
            events: Vec::new(),
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().unwrap().to_string();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.call("Page.enable", json!({}));
        browser
    }

    /// Sends `method` (to the page, once one is attached) and returns its
    /// result; events that come first are kept.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            command["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&command).unwrap();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .and_then(|()| self.commands.flush())
            .unwrap_or_else(|e| panic!("Chromium's pipe closed ({e}) before {method}"));
        loop {
            let message = self.receive(method);
            if message["id"] == id {
                assert!(message.get("error").is_none(), "{method} failed: {message}");
                return message["result"].clone();
            }
            self.events.push(message);
        }
    }

    fn receive(&mut self, waiting_for: &str) -> Value {
        self.answers
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| {
                panic!("no word from Chromium in 60 s waiting for {waiting_for} ({e})")
            })
    }

    /// Loads `url` and waits for its load event.
    fn open(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({"url": url}));
        let loaded = |e: &Value| e["method"] == "Page.loadEventFired";
        while !self.events.iter().any(loaded) {
            let event = self.receive("the page's load event");
            self.events.push(event);
        }
    }

    /// What `expression` (JavaScript run in the page, returning a JSON
    /// text) gives.
    fn evaluate(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        let text = result["result"]["value"]
            .as_str()
            .unwrap_or_else(|| panic!("no text from {expression}: {result}"));
        serde_json::from_str(text).unwrap()
    }
}

/// What the test reads from the laid-out page: the window and document
/// widths, the rightmost edge of any cell, the filter cells (other than
/// the output topic, which is cut with its full text in the tooltip) and
/// headings whose content does not fit them, the rows with the section
/// they are in and their cells' text, the sections, elements a tenant or
/// the query could have injected, and the search box's value.
const MEASURE: &str = r#"(() => {
  const d = document.documentElement;
  const all = [...document.querySelectorAll('td, th')];
  const rows = [];
  let section = null;
  for (const tr of document.querySelectorAll('#filters tbody tr')) {
    if (tr.classList.contains('group')) { section = tr.dataset.group; continue; }
    if (!tr.dataset.filter) continue;
    rows.push({name: tr.dataset.filter, section, cells: [...tr.cells].map(c => c.textContent)});
  }
  return JSON.stringify({
    innerWidth: window.innerWidth,
    clientWidth: d.clientWidth,
    scrollWidth: d.scrollWidth,
    height: d.scrollHeight,
    right: Math.max(...all.map(c => c.getBoundingClientRect().right)),
    overflowing: [...document.querySelectorAll('#filters td:not(.topic), #filters thead th')]
      .filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent),
    rows,
    sections: [...document.querySelectorAll('#filters tr.group')].map(r => r.dataset.group),
    injected: document.querySelectorAll('u, script, img').length,
    search: document.querySelector('input[name=q]').value,
    headings: [...document.querySelectorAll('#filters thead th')].map(c => c.textContent),
  });
})()"#;

/// A config deployment's name: 60 characters, long enough to wrap.
fn long_name(kind: &str, i: usize) -> String {
    let name =
        format!("{kind}-{i:03}-a-deployment-with-a-long-descriptive-name-for-the-status-page");
    let name = name[..60].to_string();
    assert_eq!(name.len(), 60);
    name
}

/// bright-transients with its manifest's version `0.1.0` rewritten (same
/// length) to markup: what a tenant's component may report.
fn hostile_version_component() -> Vec<u8> {
    let mut bytes = component("bright_transients");
    let marker = b"bright-transients0.1.0ztf";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("bright-transients' name, version and survey side by side in its data");
    bytes[at + 17..at + 22].copy_from_slice(HOSTILE_VERSION.as_bytes());
    bytes
}

const HOSTILE_VERSION: &str = "\"><u>";

#[test]
fn a_hundred_filters_fit_1280_px_grouped_sorted_and_narrowed_by_the_query() {
    let fleet = Fleet::new("status-page");
    let outputs: Vec<String> = (0..4)
        .map(|i| unique(&format!("status-page-output-topic-with-a-long-name-{i}")))
        .collect();
    // 96 filters from the config: two that panic on every alert (so
    // quarantined), the rest bright-transients (at several thresholds)
    // and fast-risers.
    let mut config = fleet.member("serve", "").cache_dir(&fleet.file("cache"));
    let mut config_names = Vec::new();
    for i in 0..96 {
        let stem = match i {
            17 | 60 => "hostile_panic",
            i if i % 2 == 0 => "bright_transients",
            _ => "fast_risers",
        };
        let name = long_name(&stem.replace('_', "-"), i);
        // bright-transients at five real-bogus thresholds, which accept
        // 13, 10, 5, 1 and 0 of the 18 alerts.
        let params = if stem == "bright_transients" {
            let min_real = [0.0, 0.3, 0.5, 0.9, 0.99][i / 2 % 5];
            format!("params = {{ max_mag = 25, min_ndethist = 0, min_real = {min_real} }}\n")
        } else {
            String::new()
        };
        config = config.filter_with(
            &filters_dir().join(format!("{stem}.wasm")),
            &outputs[i % outputs.len()],
            &format!("name = \"{name}\"\n{params}"),
        );
        config_names.push(name);
    }
    let config = config.write();
    let admin = config.admin_addr();
    let mut serve = config.start();
    // Four uploads, two in each group; one reports a version of markup.
    let mut uploads = Vec::new();
    for (token, group, what, bytes) in [
        (
            HOSTS_TOKEN,
            "hosts",
            "bright",
            component("bright_transients"),
        ),
        (HOSTS_TOKEN, "hosts", "risers", component("fast_risers")),
        (RIVALS_TOKEN, "rivals", "risers", component("fast_risers")),
        (
            RIVALS_TOKEN,
            "rivals",
            "odd-version",
            hostile_version_component(),
        ),
    ] {
        let name = unique(&format!("status-{what}"));
        let (status, body) = upload(admin, token, group, &name, &bytes, None);
        assert_eq!(status, 201, "{group}/{name}: {body}");
        uploads.push((group, format!("{group}.{name}")));
    }
    let hostile = uploads[3].1.clone();
    let names: Vec<String> = config_names
        .iter()
        .cloned()
        .chain(uploads.iter().map(|(_, n)| n.clone()))
        .collect();
    assert_eq!(names.len(), 100);

    // Alerts flow until every filter has seen each, evaluated or skipped.
    const COPIES: usize = 3;
    let alerts = ztf_alert_bytes();
    let every = (COPIES * alerts.len()) as f64;
    for _ in 0..COPIES {
        produce(&fleet.input, &alerts);
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let page = admin_get(admin, "/metrics").1;
        let seen = |name: &str| {
            [
                "bandpass_filter_alerts_total",
                "bandpass_filter_skipped_total",
            ]
            .iter()
            .map(|m| sample(&page, &format!("{m}{{filter=\"{name}\"}}")).unwrap_or(0.0))
            .sum::<f64>()
        };
        let behind: Vec<&String> = names.iter().filter(|n| seen(n) < every).collect();
        if behind.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} filters never saw the {every} alerts, {} among them",
            behind.len(),
            behind[0]
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let mut browser = Browser::start(WIDTH);
    let mut look = |query: &str| {
        browser.open(&format!("http://{admin}/{query}"));
        browser.evaluate(MEASURE)
    };
    let row_names = |page: &Value| -> Vec<String> {
        page["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let quarantined = [
        long_name("hostile-panic", 17),
        long_name("hostile-panic", 60),
    ];

    // 1. Every filter, by group, quarantined first: and it fits.
    let page = look("");
    assert_eq!(page["innerWidth"], WIDTH, "measured at {WIDTH} px");
    assert!(
        page["scrollWidth"].as_u64() <= page["clientWidth"].as_u64()
            && page["right"].as_f64().unwrap() <= page["clientWidth"].as_f64().unwrap(),
        "the page is wider than {WIDTH} px: {} wide, a cell ends at {}",
        page["scrollWidth"],
        page["right"]
    );
    assert_eq!(
        page["overflowing"],
        json!([]),
        "cells or headings whose text does not fit"
    );
    let shown = row_names(&page);
    assert_eq!(shown.len(), 100);
    let mut sorted = shown.clone();
    sorted.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(sorted, expected, "each filter once");
    assert_eq!(page["sections"], json!(["_operator", "hosts", "rivals"]));
    for r in page["rows"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        let group = uploads
            .iter()
            .find(|(_, n)| n == name)
            .map_or("_operator", |(g, _)| g);
        assert_eq!(r["section"], group, "{name} in its group's section");
    }
    assert_eq!(shown[..2], quarantined, "quarantined first");
    let state_of = |r: &Value| r["cells"][4].as_str().unwrap().to_string();
    assert!(
        page["rows"].as_array().unwrap()[..2]
            .iter()
            .all(|r| state_of(r) == "quarantined")
    );
    // The tenant's markup is text in its cell, not an element.
    let odd = page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == hostile.as_str())
        .unwrap();
    assert_eq!(odd["cells"][1], HOSTILE_VERSION, "{odd}");
    assert_eq!(page["injected"], 0);

    // The screenshot, full height, at 1280 px.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page-1280.png");
    let height = page["height"].as_u64().unwrap();
    chromium(&[
        &format!("--screenshot={}", shot.display()),
        &format!("--window-size={WIDTH},{height}"),
        "--hide-scrollbars",
        &format!("http://{admin}/"),
    ]);
    let png = std::fs::read(&shot).expect("Chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 50_000,
        "{} bytes",
        png.len()
    );
    println!(
        "the status page with 100 filters at {WIDTH} px: {}",
        shot.display()
    );

    // 2. One list, most accepted first, ties by name; still fits.
    let page = look("?by=none&sort=accepted&desc=1");
    assert!(page["scrollWidth"].as_u64() <= page["clientWidth"].as_u64());
    assert_eq!(page["sections"], json!([]));
    assert!(page["headings"][1].as_str().unwrap().starts_with("group"));
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 100);
    let accepted = |r: &Value| r["cells"][7].as_str().unwrap().parse::<u64>().unwrap();
    let keys: Vec<(u64, &str)> = rows
        .iter()
        .map(|r| (accepted(r), r["name"].as_str().unwrap()))
        .collect();
    assert!(
        keys.windows(2)
            .all(|w| w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1)),
        "{keys:?}"
    );
    let mut counts: Vec<u64> = keys.iter().map(|k| k.0).collect();
    counts.dedup();
    assert!(
        counts.len() >= 3,
        "filters that accept differently: {keys:?}"
    );
    assert_eq!(accepted(&rows[99]), 0, "the fewest last: {keys:?}");

    // 3. Narrowed: by state, by group, by name, and both.
    let page = look("?state=quarantined");
    assert_eq!(row_names(&page), quarantined);
    let page = look("?group=hosts");
    assert_eq!(
        row_names(&page),
        [uploads[0].1.clone(), uploads[1].1.clone()]
    );
    let page = look("?q=FAST-RISERS&group=_operator");
    let risers = row_names(&page);
    assert_eq!(risers.len(), 47, "{risers:?}");
    assert!(risers.iter().all(|n| n.starts_with("fast-risers-")));

    // 4. A hostile search is shown as typed and matches nothing.
    let search = "\"><u>x</u><script>document.title=1</script>";
    let encoded: String = search.bytes().map(|b| format!("%{b:02X}")).collect();
    let page = look(&format!("?q={encoded}"));
    assert_eq!(page["search"], search);
    assert_eq!(page["injected"], 0);
    assert_eq!(row_names(&page), Vec::<String>::new());

    // 5. A query the page does not take is refused, saying what it takes.
    let (status, body) = admin_get(admin, "/?sort=colour");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("sort=colour: sort by one of name"), "{body}");

    drop(browser);
    assert!(terminate(&mut serve).success());
}
