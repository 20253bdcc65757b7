//! An upload's admission, in-process and without a broker: the
//! decision `bandpass serve`'s upload route asks for
//! (`fleet::Admission::decide`), with real components and the real
//! canary alerts, against a fleet held in memory. The same refusals
//! through HTTP and Kafka are in `uploads.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bandpass::config::Config;
use bandpass::fleet::admission::Roster;
use bandpass::fleet::canary::Canary;
use bandpass::fleet::{Admission, Admitted, Denial, Entry, Policy, Rule, Upload};
use bandpass::sandbox::{Sandbox, SandboxOptions};

use crate::support::{component, data_dir};

/// A fleet in memory: its rules and the filters it holds.
struct InMemory {
    policy: Arc<Policy>,
    entries: BTreeMap<String, Entry>,
}

impl Roster for InMemory {
    fn policy(&self) -> Arc<Policy> {
        self.policy.clone()
    }

    fn entries(&self) -> BTreeMap<String, Entry> {
        self.entries.clone()
    }

    fn sky(&self) -> Arc<bandpass::sky::Sky> {
        Default::default()
    }
}

fn config() -> Config {
    let text = format!(
        r#"
        [kafka]
        brokers = ["127.0.0.1:9092"]
        [input]
        topics = ["ztf_alerts"]
        group = "bandpass"
        [admin]
        listen = "127.0.0.1:9464"
        [admin.uploads]
        canary_alerts = ["{}"]
        [[admin.group]]
        name = "hosts"
        token_sha256 = "{}"
        max_filters = 1
        "#,
        data_dir().join("ztf/alerts").display(),
        "0".repeat(64)
    );
    Config::parse(&text, Path::new("bandpass.toml"), |_| None).unwrap()
}

/// An admission over `entries`; compiled in-process (no cache: the
/// killable compile child is `bandpass compile`, not this test binary).
fn admission(entries: BTreeMap<String, Entry>) -> Arc<Admission> {
    let config = config();
    let uploads = &config.admin.as_ref().unwrap().uploads;
    let sandbox = Arc::new(
        Sandbox::new(SandboxOptions {
            cache: None,
            ..SandboxOptions::default()
        })
        .unwrap(),
    );
    let canary = Canary::load(Path::new("/"), uploads).unwrap();
    let fleet = Arc::new(InMemory {
        policy: Arc::new(Policy::of(&config)),
        entries,
    });
    Arc::new(Admission::new(fleet, sandbox, canary, uploads, None))
}

fn upload(name: &str, manifest: Option<&str>, component: Vec<u8>) -> Upload {
    Upload {
        group: "hosts".into(),
        name: name.into(),
        by: "hosts".into(),
        manifest: manifest.map(str::to_string),
        component,
    }
}

fn decide(admission: &Arc<Admission>, upload: Upload) -> Result<Admitted, Denial> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(admission.decide(upload))
}

fn refused(admission: &Arc<Admission>, upload: Upload) -> (Rule, String) {
    match decide(admission, upload) {
        Ok(admitted) => panic!("admitted: {:?}", admitted.record),
        Err(denial) => (denial.rule, denial.reason),
    }
}

#[test]
fn a_real_filter_is_admitted_with_its_own_manifest_and_canary_report() {
    let admission = admission(BTreeMap::new());
    let bright = component("bright_transients");
    let admitted = decide(
        &admission,
        upload("bright", Some(r#"{"params": {"max_mag": 19.5}}"#), bright),
    )
    .unwrap();
    let record = &admitted.record;
    assert_eq!(record.output_topic(), "bandpass.hosts.bright");
    assert_eq!(record.version, admitted.filter.manifest.version);
    assert_eq!(record.survey, "ztf");
    assert_eq!(record.params["max_mag"], "19.5");
    assert_eq!(record.sha256, admitted.filter.sha256);
    assert_eq!(admitted.report.alerts, 18, "every canary alert is ZTF");
    assert!(!admitted.replaces);
}

#[test]
fn each_refusal_names_its_rule_and_says_why() {
    let admission = admission(BTreeMap::new());
    let bright = component("bright_transients");
    let cases: [(Option<&str>, Vec<u8>, Rule, &str); 6] = [
        (Some("{"), bright.clone(), Rule::Malformed, "manifest: "),
        (
            Some(r#"{"name": "other"}"#),
            bright.clone(),
            Rule::Malformed,
            "differs from the path's 'bright'",
        ),
        (
            Some(r#"{"output_topic": "mine"}"#),
            bright.clone(),
            Rule::NotAllowed,
            "produces to 'bandpass.hosts.bright'",
        ),
        (
            Some(r#"{"limits": {"fuel": 99000000000}}"#),
            bright.clone(),
            Rule::NotAllowed,
            "over group 'hosts''s maximum",
        ),
        (
            None,
            b"not wasm".to_vec(),
            Rule::Refused,
            "component refused",
        ),
        (
            Some(r#"{"version": "9.9.9"}"#),
            bright,
            Rule::Malformed,
            "version '9.9.9' differs from the component's own",
        ),
    ];
    for (manifest, bytes, rule, text) in cases {
        let (got, reason) = refused(&admission, upload("bright", manifest, bytes));
        assert_eq!(got, rule, "{reason}");
        assert!(reason.contains(text), "'{text}' not in: {reason}");
    }
}

#[test]
fn a_group_at_its_quota_may_replace_a_filter_but_not_add_one() {
    let admission = admission(BTreeMap::new());
    let existing = decide(
        &admission,
        upload("bright", None, component("bright_transients")),
    )
    .unwrap();
    let entry = Entry {
        record: existing.record.clone(),
        component: existing.component.clone().into(),
        offset: (0, 0),
    };
    drop(existing);
    let full = self::admission([(entry.record.key(), entry)].into());
    let (rule, reason) = refused(
        &full,
        upload("another", None, component("bright_transients")),
    );
    assert_eq!(rule, Rule::NotAllowed);
    assert!(reason.contains("quota (max_filters = 1)"), "{reason}");
    let replaced = decide(
        &full,
        upload("bright", None, component("bright_transients")),
    )
    .unwrap();
    assert!(replaced.replaces);
}

#[test]
fn a_canary_failure_refuses_the_upload() {
    let admission = admission(BTreeMap::new());
    let (rule, reason) = refused(
        &admission,
        upload(
            "loop",
            Some(r#"{"limits": {"fuel": 5000000}}"#),
            component("hostile_infinite_loop"),
        ),
    );
    assert_eq!(rule, Rule::Refused);
    assert!(reason.starts_with("canary: "), "{reason}");
}
