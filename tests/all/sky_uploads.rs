//! A group's own watchlists and sky maps, uploaded to a running fleet of
//! two instances on a real broker (docs/design/sky.md, section 3): each
//! reaches both instances through the registry, is read only by the
//! group's filters, is replaced between two alerts with the version that
//! decided in every output's headers, expires, and every bad upload is
//! refused with its reason before anything is kept.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::cli::text;
use crate::sky::ztf_alerts_on_sky;
use crate::support::http::{admin_request, bearer, call, until, upload};
use crate::support::kafka::{consume, produce_keyed, unique};
use crate::support::{component, data_dir};
use crate::uploads::{Fleet, HOSTS_TOKEN, RIVALS_TOKEN};

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// `PUT` of a file's bytes at `path`.
fn put(admin: SocketAddr, token: &str, path: &str, bytes: &[u8]) -> (u16, String) {
    admin_request(
        admin,
        "PUT",
        path,
        &bearer(token),
        Some(("text/csv", bytes)),
    )
}

/// A watchlist with a target of 2 arcseconds on each alert of `which`,
/// named `<prefix>-<index>`.
fn targets_on(alerts: &[Alert], which: &[usize], prefix: &str) -> Vec<u8> {
    let mut csv = String::from("name,ra,dec,radius_arcsec\n");
    for &i in which {
        let (ra, dec) = alerts[i].1;
        csv.push_str(&format!("{prefix}-{i},{ra:?},{dec:?},2\n"));
    }
    csv.into_bytes()
}

/// A shared alert: its file, position and whether it is positive.
type Alert = (String, (f64, f64), bool);

/// The alerts watched-targets accepts with targets on the alerts of
/// `which` (positive ones within 2 arcseconds of one, by brute force; the
/// sky tests check `bandpass test` against the same), sorted: one per
/// alert, as many as the stream holds.
fn accepted(alerts: &[Alert], which: &[usize]) -> Vec<Vec<u8>> {
    let near = |(ra, dec): (f64, f64), (ra2, dec2): (f64, f64)| {
        let cos = dec.to_radians().sin() * dec2.to_radians().sin()
            + dec.to_radians().cos() * dec2.to_radians().cos() * (ra - ra2).to_radians().cos();
        cos.min(1.0).acos().to_degrees() * 3600.0 <= 2.0
    };
    let mut out: Vec<Vec<u8>> = alerts
        .iter()
        .filter(|(_, at, positive)| *positive && which.iter().any(|&i| near(*at, alerts[i].1)))
        .map(|(file, _, _)| std::fs::read(file).unwrap())
        .collect();
    out.sort();
    out
}

/// `bandpass ARGS --to ADMIN --group hosts` with the group's token.
fn as_hosts(admin: SocketAddr, args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::support::bandpass_bin())
        .args(args)
        .args(["--to", &format!("http://{admin}"), "--group", "hosts"])
        .env("BANDPASS_TOKEN", HOSTS_TOKEN)
        .output()
        .unwrap()
}

/// Every real ZTF alert once, keyed `<batch>-<n>`.
fn batch(name: &str) -> Vec<(String, Vec<u8>)> {
    crate::support::ztf_alert_bytes()
        .into_iter()
        .enumerate()
        .map(|(i, a)| (format!("{name}-{i}"), a))
        .collect()
}

/// Waits until `admin` decides with the watchlist's record of `version`.
fn in_effect(admin: SocketAddr, path: &str, version: &str) {
    until(
        admin,
        path,
        HOSTS_TOKEN,
        &format!("{admin} never used version {version} of {path}"),
        |s, body| {
            s == 200 && {
                let v = json(body);
                v["version"] == version && v["in_effect"] == true
            }
        },
    );
}

#[test]
fn a_group_s_watchlist_reaches_every_instance_is_replaced_between_alerts_and_stays_its_own() {
    let alerts = ztf_alerts_on_sky();
    assert_eq!(alerts.len(), 18);
    // Targets on three objects first, then on three others.
    let (first, second) = ([1, 2, 3], [5, 6, 7]);
    let (v1, v2) = (
        targets_on(&alerts, &first, "first"),
        targets_on(&alerts, &second, "second"),
    );
    let (want1, want2) = (accepted(&alerts, &first), accepted(&alerts, &second));
    assert!(!want1.is_empty() && !want2.is_empty());
    assert!(want1.iter().all(|a| !want2.contains(a)));

    let fleet = Fleet::new("skyup");
    // A config filter beside the uploads, on its own topic: the witness
    // that a batch was decided.
    let witness = unique("skyup-witness");
    let risers = crate::support::offline_accepts("fast_risers").len();
    assert!(risers > 0);
    let [(a, mut serve_a), (b, mut serve_b)] = fleet.two_witnessed(&witness);
    let name = unique("watched");
    let filter_path = format!("/v1/groups/hosts/filters/{name}");
    let list_path = "/v1/groups/hosts/watchlists/targets";
    let watched = component("watched_targets");

    // The filter needs the list: before it exists, its upload is refused
    // saying so and how to add it.
    let (status, body) = upload(a, HOSTS_TOKEN, "hosts", &name, &watched, None);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("your group has no watchlist 'targets'")
            && body.contains("bandpass upload --watchlist targets=FILE"),
        "{body}"
    );

    // 1. The list, uploaded to A; then the filter. Both run on B too.
    let (status, body) = put(a, HOSTS_TOKEN, list_path, &v1);
    assert_eq!(status, 201, "{body}");
    let first = json(&body);
    let version1 = first["version"].as_str().unwrap().to_string();
    assert_eq!(version1.len(), 12);
    assert_eq!(first["in_use"]["targets"], 3, "{body}");
    assert_eq!(first["in_effect"], true, "{body}");
    let (status, body) = upload(a, HOSTS_TOKEN, "hosts", &name, &watched, None);
    assert_eq!(status, 201, "{body}");
    in_effect(b, list_path, &version1);
    until(
        b,
        &filter_path,
        HOSTS_TOKEN,
        "B never ran the filter",
        |s, body| s == 200 && json(body)["state"] == "running",
    );

    // 2. Another group's filter cannot read it, nor learn that it exists:
    // refused as if no group had one; nor can another group's token see
    // or change it.
    let (status, body) = upload(a, RIVALS_TOKEN, "rivals", &name, &watched, None);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains(
            "your group has no watchlist 'targets' and the operator publishes none (it has none)"
        ),
        "{body}"
    );
    assert!(!body.contains("hosts"), "{body}");
    let (status, _) = call(a, "GET", list_path, RIVALS_TOKEN);
    assert_eq!(status, 403);
    let (status, _) = put(a, RIVALS_TOKEN, list_path, &v2);
    assert_eq!(status, 403);

    // 3. Alerts: what serve produces is what `bandpass test` accepts with
    // the same list, each output naming the list's version.
    let output = format!("bandpass.hosts.{name}");
    produce_keyed(&fleet.input, &batch("one"));
    let got = consume(&output, want1.len(), Duration::from_secs(90));
    assert_eq!(got.len(), want1.len());
    let mut payloads: Vec<Vec<u8>> = got.iter().map(|(p, _)| p.clone()).collect();
    payloads.sort();
    assert!(
        payloads == want1,
        "serve accepted other alerts than the targets imply"
    );
    for (_, headers) in &got {
        assert_eq!(
            headers.get("bandpass-sky").map(String::as_str),
            Some(format!("watch.targets={version1}").as_str()),
            "{headers:?}"
        );
        assert!(
            headers["bandpass-tags"].starts_with("first-"),
            "{headers:?}"
        );
    }

    // 4. A new version through B replaces it on A between two alerts:
    // every output's tags come from the version its header names.
    let (status, body) = put(b, HOSTS_TOKEN, list_path, &v2);
    assert_eq!(status, 200, "{body}");
    let version2 = json(&body)["version"].as_str().unwrap().to_string();
    assert_ne!(version1, version2);
    in_effect(a, list_path, &version2);
    produce_keyed(&fleet.input, &batch("two"));
    let all = consume(&output, want1.len() + want2.len(), Duration::from_secs(90));
    assert_eq!(all.len(), want1.len() + want2.len());
    let mut by_version: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (payload, headers) in &all {
        let version = headers["bandpass-sky"].clone();
        let tag_of = if version.ends_with(&version1) {
            "first-"
        } else {
            "second-"
        };
        assert!(headers["bandpass-tags"].starts_with(tag_of), "{headers:?}");
        by_version.entry(version).or_default().push(payload.clone());
    }
    for (version, want) in [(&version1, &want1), (&version2, &want2)] {
        let got = by_version
            .get_mut(&format!("watch.targets={version}"))
            .unwrap();
        got.sort();
        assert!(got == want, "version {version} decided other alerts");
    }

    // 5. Bad uploads are refused with the reason, and change nothing.
    let bad: [(&[u8], u16, &str); 5] = [
        (
            b"name,ra,dec,radius_arcsec\nok,10,20,2\nbad,NaN,20,2\n",
            422,
            "target 2 ('bad'): ra NaN, dec 20 is no position",
        ),
        (
            b"name,ra,dec,radius_arcsec\nwide,10,20,600\n",
            422,
            "radius 600 arcseconds; it must be above 0 and at most 60",
        ),
        (b"", 400, "the body is empty"),
        (
            &[0u8; 2 << 20],
            413,
            "larger than the 1048576 bytes group 'hosts' may upload",
        ),
        (b"\x1f\x8b\x08gzip", 422, "decompress it first"),
    ];
    for (i, (bytes, status, reason)) in bad.iter().enumerate() {
        let path = if i == 4 {
            "/v1/groups/hosts/maps/gw"
        } else {
            list_path
        };
        let (got, body) = put(a, HOSTS_TOKEN, path, bytes);
        assert_eq!((got, body.contains(reason)), (*status, true), "{body}");
    }
    for (path, status, reason) in [
        (
            "/v1/groups/hosts/watchlists/Bad.Name",
            400,
            "is not a watchlist name",
        ),
        (
            "/v1/groups/hosts/watchlists/x?expires_in=9d",
            400,
            "unknown unit 'd'",
        ),
        (
            "/v1/groups/hosts/watchlists/x?colour=red",
            400,
            "takes only expires_in",
        ),
    ] {
        let (got, body) = put(a, HOSTS_TOKEN, path, &v1);
        assert_eq!(
            (got, body.contains(reason)),
            (status, true),
            "{path}: {body}"
        );
    }
    // Paths and methods the API does not have are refused in JSON too;
    // the author's command checks a name before sending it.
    for (method, path, status, reason) in [
        (
            "PUT",
            "/v1/groups/hosts/watchlists/",
            404,
            "no such path in the filter API",
        ),
        ("POST", list_path, 405, "this path does not take POST"),
    ] {
        let (got, body) = admin_request(
            a,
            method,
            path,
            &bearer(HOSTS_TOKEN),
            Some(("text/csv", &v1)),
        );
        assert_eq!(got, status, "{body}");
        assert!(
            json(&body)["error"].as_str().unwrap().contains(reason),
            "{body}"
        );
    }
    let out = as_hosts(a, &["upload", "--watchlist", "T/x=targets.csv"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("'T/x' is not a name"),
        "{}",
        text(&out.stderr)
    );
    let (_, body) = call(a, "GET", list_path, HOSTS_TOKEN);
    assert_eq!(json(&body)["version"], version2.as_str(), "{body}");

    // 6. The group's quota: three files at most.
    let map = std::fs::read(data_dir().join("sky/bayestar.multiorder.fits")).unwrap();
    let (status, body) = put(a, HOSTS_TOKEN, "/v1/groups/hosts/maps/gw", &map);
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        json(&body)["in_use"]["kind"],
        "multi-order sky map",
        "{body}"
    );
    // The author's command does the same.
    let spare = fleet.file("spare.csv");
    std::fs::write(&spare, &v1).unwrap();
    let out = as_hosts(
        a,
        &[
            "upload",
            "--watchlist",
            &format!("spare={}", spare.display()),
            "--expires-in",
            "2h",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!(
            "hosts/watchlists/spare: uploaded version {}, 3 targets; your filters read it as \
             watch.spare.*",
            &bandpass::sandbox::sha256_hex(&v1)[..12]
        )
    );
    let (status, body) = put(a, HOSTS_TOKEN, "/v1/groups/hosts/watchlists/more", &v1);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("already has 3 other watchlists and sky maps (0 of them expired), its quota (max_sky_files = 3)"),
        "{body}"
    );
    let (status, body) = call(a, "GET", "/v1/groups/hosts/watchlists", HOSTS_TOKEN);
    assert_eq!(status, 200);
    let names: Vec<Value> = json(&body)["watchlists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].clone())
        .collect();
    assert_eq!(names, ["spare", "targets"]);
    let out = as_hosts(a, &["filters"]);
    let listed = text(&out.stdout);
    for line in [
        "watch.spare",
        "watch.targets",
        "map.gw",
        "in 1h ",
        "3 targets",
    ] {
        assert!(listed.contains(line), "{line}: {listed}");
    }

    // 7. Expired, the list reads absent: the filter runs and accepts
    // nothing. It counts in the quota until deleted or replaced (the
    // registry keeps its record until then).
    let (status, body) = put(a, HOSTS_TOKEN, &format!("{list_path}?expires_in=1s"), &v1);
    assert_eq!(status, 200, "{body}");
    until(
        a,
        list_path,
        HOSTS_TOKEN,
        "the list never expired",
        |s, body| s == 200 && json(body)["expired"] == true && json(body)["in_use"].is_null(),
    );
    until(
        b,
        list_path,
        HOSTS_TOKEN,
        "the list never expired on B",
        |s, body| s == 200 && json(body)["in_use"].is_null(),
    );
    let (status, body) = put(a, HOSTS_TOKEN, "/v1/groups/hosts/watchlists/more", &v1);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("(1 of them expired)"), "{body}");
    produce_keyed(&fleet.input, &batch("three"));
    // The witness saw the third batch decided: by then so was it for
    // the watched filter.
    let witnessed = consume(&witness, 3 * risers, Duration::from_secs(90));
    assert_eq!(witnessed.len(), 3 * risers);
    let (_, body) = call(a, "GET", &filter_path, HOSTS_TOKEN);
    assert_eq!(json(&body)["state"], "running", "{body}");

    // 8. Deleted, it is gone on both; the filter still runs.
    let (status, body) = call(a, "DELETE", list_path, HOSTS_TOKEN);
    assert_eq!(status, 200, "{body}");
    until(
        b,
        list_path,
        HOSTS_TOKEN,
        "B kept the deleted list",
        |s, _| s == 404,
    );
    // Once B has applied the deletion, the filter runs there still.
    until(
        b,
        &filter_path,
        HOSTS_TOKEN,
        "B stopped the filter",
        |s, body| s == 200 && json(body)["state"] == "running",
    );
    let total = consume(&output, all.len() + 1, Duration::from_secs(3));
    assert_eq!(total.len(), all.len(), "an expired list still gave targets");

    // The operator sees every group's filters; a group may not.
    let all = |token: &str| {
        std::process::Command::new(crate::support::bandpass_bin())
            .args(["filters", "--all", "--to", &format!("http://{a}")])
            .env("BANDPASS_TOKEN", token)
            .output()
            .unwrap()
    };
    let out = all(crate::uploads::OPERATOR_TOKEN);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("hosts ") && l.contains(&name)),
        "{listed}"
    );
    let out = all(HOSTS_TOKEN);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("only the operator lists every group's filters"),
        "{}",
        text(&out.stderr)
    );

    // 9. The author's command disables, enables and deletes the filter.
    for (flag, said) in [
        ("--disable", "disabled (disabled)"),
        ("--enable", "enabled (running)"),
        ("--delete", "deleted"),
    ] {
        let out = as_hosts(a, &["filters", &name, flag]);
        assert!(out.status.success(), "{flag}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), format!("hosts/{name}: {said}"));
    }
    until(
        b,
        &filter_path,
        HOSTS_TOKEN,
        "B kept the deleted filter",
        |s, _| s == 404,
    );
    let out = as_hosts(a, &["filters", &name, "--delete"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("refused (404)"),
        "{}",
        text(&out.stderr)
    );

    assert!(crate::support::processes::terminate(&mut serve_a).success());
    assert!(crate::support::processes::terminate(&mut serve_b).success());
}
