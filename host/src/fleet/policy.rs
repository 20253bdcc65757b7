//! Who may run what: the one set of rules an upload and a record read
//! from the registry topic both face ([`Policy::admit`]).
//!
//! The rules, in the order they are checked (the first that fails is the
//! one reported): the output topic is not one the service uses otherwise;
//! the group is configured here; the filter's name is a name; its limits
//! are within the group's maximum; and, for a new upload only, the group
//! is within its quota of filters and its time budget.
//!
//! Must never: apply the quota or the time budget to a record already
//! on the topic. Those are checked when a filter is uploaded; a SIGHUP
//! that lowers `max_filters` stops no running filter.

use std::collections::BTreeMap;
use std::time::Duration;

use super::record::{Entry, Record};
use crate::config::{Config, EngineConfig, GroupConfig};
use crate::sandbox::{Budget, Limits};
use crate::text::is_name;

/// The rules of one configuration (replaced whole on SIGHUP).
#[derive(Debug, Clone)]
pub struct Policy {
    groups: Vec<GroupConfig>,
    /// Topics no upload may produce to.
    reserved: Vec<String>,
    /// `engine.limits` (an upload's defaults), `engine.max_limits` (the
    /// maximum of a group that sets none) and the time budget's default.
    engine: EngineConfig,
}

/// What a group already has, for the rules an upload faces on top.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Whether the upload replaces a filter of the same name.
    pub replaces: bool,
    /// The group's filters, this one not counted.
    pub others: usize,
    /// Their `mean_time` limits, added.
    pub others_mean_time: Duration,
}

/// Why something is refused: which rule, and a reason that says what to
/// do. Shown to the uploader (the admin API picks the HTTP status from
/// the rule) and in the log and status of a record refused here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub rule: Rule,
    pub reason: String,
}

/// The kinds of refusal, each with the HTTP status the admin API answers
/// it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The group is not configured here (404).
    UnknownGroup,
    /// Something sent is not well formed: a name, the manifest (400).
    Malformed,
    /// The output topic is one the service uses otherwise (409).
    TopicTaken,
    /// Over a limit the operator set: the group's maximum limits, quota
    /// or time budget; or asking for what is derived (403).
    NotAllowed,
    /// Larger than allowed (413).
    TooLarge,
    /// The component is not one this host runs, or failed a check (422).
    Refused,
    /// Another upload is being checked: try again later (503).
    Busy,
    /// The check itself crashed (500).
    Crashed,
}

impl Denial {
    pub fn new(rule: Rule, reason: impl Into<String>) -> Denial {
        Denial {
            rule,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl Usage {
    /// `group`'s use of its quota and time budget, `name` not counted.
    pub fn of(entries: &BTreeMap<String, Entry>, group: &str, name: &str) -> Usage {
        let mut usage = Usage::default();
        for e in entries.values().filter(|e| e.record.group == group) {
            if e.record.name == name {
                usage.replaces = true;
            } else {
                usage.others += 1;
                usage.others_mean_time += Duration::from_millis(e.record.limits.mean_ms);
            }
        }
        usage
    }
}

impl Policy {
    pub fn of(config: &Config) -> Policy {
        Policy {
            groups: config
                .admin
                .as_ref()
                .map(|a| a.groups.clone())
                .unwrap_or_default(),
            reserved: reserved_topics(config),
            engine: config.engine.clone(),
        }
    }

    /// The settings of `group`, if it is configured here.
    pub fn group(&self, group: &str) -> Result<&GroupConfig, Denial> {
        self.groups.iter().find(|g| g.name == group).ok_or_else(|| {
            Denial::new(
                Rule::UnknownGroup,
                format!(
                    "group '{group}' is not configured here: groups are defined in [[admin.group]]"
                ),
            )
        })
    }

    /// The limits an upload that names none gets (`engine.limits`).
    pub fn default_limits(&self) -> Budget {
        self.engine.limits
    }

    /// Whether `record` may run here; with `usage`, whether it may be
    /// uploaded (quota and time budget too).
    pub fn admit(&self, record: &Record, usage: Option<&Usage>) -> Result<(), Denial> {
        let topic = record.output_topic();
        if self.reserved.contains(&topic) {
            return Err(Denial::new(
                Rule::TopicTaken,
                format!(
                    "'{topic}' is already an input, dead-letter, registry or configured output \
                     topic of this service: give the filter another name"
                ),
            ));
        }
        let group = self.group(&record.group)?;
        check_name(&record.name)?;
        let max = group.max_limits.unwrap_or(self.engine.max_limits);
        let asked = Budget::of(&record.limits);
        if !asked.within(&max) {
            return Err(Denial::new(
                Rule::NotAllowed,
                format!(
                    "its limits ({}) are over group '{}''s maximum ({})",
                    asked.describe(),
                    group.name,
                    max.describe()
                ),
            ));
        }
        // The budgets no manifest can set are the host's own: a record
        // written to the topic some other way may not raise them.
        let settable = asked.to_limits();
        if record.limits != settable {
            return Err(Denial::new(
                Rule::NotAllowed,
                format!(
                    "its limits set {}, which only the host sets: write filters through the \
                     admin API",
                    host_set_differences(&record.limits, &settable)
                ),
            ));
        }
        let Some(usage) = usage else {
            return Ok(());
        };
        if !usage.replaces && usage.others >= group.max_filters {
            return Err(Denial::new(
                Rule::NotAllowed,
                format!(
                    "group '{}' has {} filters, its quota (max_filters = {}): delete one, or ask \
                     the operator for more",
                    group.name, usage.others, group.max_filters
                ),
            ));
        }
        let budget = group.time_budget(&self.engine);
        let together = usage.others_mean_time + Duration::from_millis(record.limits.mean_ms);
        if together > budget {
            return Err(Denial::new(
                Rule::NotAllowed,
                format!(
                    "group '{}''s filters would together take up to {together:?} per alert, over \
                     its time_budget of {budget:?} (each filter's limits.mean_time, added): ask \
                     for less mean_time, delete a filter, or ask the operator for more",
                    group.name
                ),
            ));
        }
        Ok(())
    }

    /// Whether a record read from the registry topic may run here: the
    /// rules every upload faced (a record may have been written to the
    /// topic some other way, or under another config), and a component
    /// that is the one its record names. The reason is shown in the log
    /// and the filter's status.
    pub fn runnable(&self, entry: &Entry) -> Result<(), String> {
        self.admit(&entry.record, None).map_err(|denial| {
            crate::text::shown_owned(denial.reason, crate::text::MAX_REASON_BYTES)
        })?;
        entry.intact()
    }
}

/// `name = value` of each field of `limits` that differs from `host`'s.
fn host_set_differences(limits: &Limits, host: &Limits) -> String {
    let (Ok(serde_json::Value::Object(asked)), Ok(serde_json::Value::Object(own))) =
        (serde_json::to_value(limits), serde_json::to_value(host))
    else {
        return "budgets".into();
    };
    asked
        .iter()
        .filter(|(k, v)| own.get(*k) != Some(v))
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `name` can name a filter.
pub fn check_name(name: &str) -> Result<(), Denial> {
    if is_name(name, 64) {
        return Ok(());
    }
    Err(Denial::new(
        Rule::Malformed,
        format!(
            "'{name}' is not a filter name: use lowercase letters, digits and dashes (at most 64)"
        ),
    ))
}

/// The topics no upload may produce to: the inputs, the dead-letter and
/// registry topics, and the config's output topics.
pub fn reserved_topics(config: &Config) -> Vec<String> {
    let mut out = config.input.topics.clone();
    out.push(config.dead_letter_topic.clone());
    if let Some(admin) = &config.admin {
        out.push(admin.uploads.registry_topic.clone());
    }
    out.extend(config.filters.iter().map(|f| f.output_topic.clone()));
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const CONFIG: &str = r#"
        [kafka]
        brokers = ["127.0.0.1:9092"]
        [input]
        topics = ["ztf_alerts"]
        group = "bandpass"
        [[filter]]
        path = "bright_transients.wasm"
        output_topic = "bandpass.hosts.taken"
        [admin]
        listen = "127.0.0.1:9464"
        [[admin.group]]
        name = "hosts"
        token_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
        max_filters = 2
        time_budget = "30ms"
        [admin.uploads]
        canary_alerts = ["alerts"]
    "#;

    fn policy() -> Policy {
        Policy::of(&Config::parse(CONFIG, Path::new("bandpass.toml"), |_| None).unwrap())
    }

    fn record(change: impl FnOnce(&mut Record)) -> Record {
        let mut r = Record {
            group: "hosts".into(),
            name: "bright".into(),
            enabled: true,
            params: BTreeMap::new(),
            limits: Limits {
                mean_ms: 10,
                ..Limits::default()
            },
            version: "0.1.0".into(),
            survey: "ztf".into(),
            description: String::new(),
            sha256: String::new(),
            uploaded_by: "hosts".into(),
            uploaded_at_ms: 1,
        };
        change(&mut r);
        r
    }

    fn denied(record: Record, usage: Option<&Usage>) -> (Rule, String) {
        let d = policy().admit(&record, usage).unwrap_err();
        (d.rule, d.reason)
    }

    #[test]
    fn a_record_within_every_rule_is_admitted_with_or_without_usage() {
        let p = policy();
        assert_eq!(p.admit(&record(|_| {}), None), Ok(()));
        let usage = Usage {
            replaces: false,
            others: 1,
            others_mean_time: Duration::from_millis(20),
        };
        assert_eq!(p.admit(&record(|_| {}), Some(&usage)), Ok(()));
    }

    #[test]
    fn each_rule_refuses_with_its_kind_and_says_why() {
        let (rule, why) = denied(record(|r| r.name = "taken".into()), None);
        assert_eq!(rule, Rule::TopicTaken);
        assert!(
            why.contains("'bandpass.hosts.taken' is already an input"),
            "{why}"
        );
        let (rule, why) = denied(record(|r| r.group = "late".into()), None);
        assert_eq!(rule, Rule::UnknownGroup);
        assert!(why.contains("group 'late' is not configured here"), "{why}");
        let (rule, why) = denied(record(|r| r.name = "A/b".into()), None);
        assert_eq!(rule, Rule::Malformed);
        assert!(why.contains("'A/b' is not a filter name"), "{why}");
        let over = |r: &mut Record| r.limits.fuel_per_alert = 10_000_000_001;
        let (rule, why) = denied(record(over), None);
        assert_eq!(rule, Rule::NotAllowed);
        assert!(why.contains("over group 'hosts''s maximum"), "{why}");
    }

    #[test]
    fn a_record_may_not_raise_a_budget_only_the_host_sets() {
        let (rule, why) = denied(record(|r| r.limits.instances = 10_000), None);
        assert_eq!(rule, Rule::NotAllowed);
        assert!(why.contains("instances = 10000"), "{why}");
        assert!(why.contains("only the host sets"), "{why}");
    }

    #[test]
    fn the_topic_is_checked_before_the_group_and_the_group_before_the_name() {
        let both = record(|r| {
            r.group = "late".into();
            r.name = "A".into();
        });
        assert_eq!(denied(both, None).0, Rule::UnknownGroup);
    }

    #[test]
    fn quota_and_time_budget_apply_to_an_upload_only() {
        let full = Usage {
            replaces: false,
            others: 2,
            others_mean_time: Duration::from_millis(20),
        };
        let (rule, why) = denied(record(|_| {}), Some(&full));
        assert_eq!(rule, Rule::NotAllowed);
        assert!(why.contains("quota (max_filters = 2)"), "{why}");
        // A replacement does not count against the quota.
        let replacing = Usage {
            replaces: true,
            others: 1,
            others_mean_time: Duration::from_millis(20),
        };
        assert_eq!(policy().admit(&record(|_| {}), Some(&replacing)), Ok(()));
        let slow = Usage {
            replaces: true,
            others: 1,
            others_mean_time: Duration::from_millis(25),
        };
        let (rule, why) = denied(record(|_| {}), Some(&slow));
        assert_eq!(rule, Rule::NotAllowed);
        assert!(why.contains("over its time_budget of 30ms"), "{why}");
        // A record on the topic is never refused for either.
        assert_eq!(policy().admit(&record(|_| {}), None), Ok(()));
    }

    #[test]
    fn usage_counts_the_group_s_other_filters_and_their_mean_times() {
        let entry = |group: &str, name: &str, mean_ms| {
            let r = record(|r| {
                r.group = group.into();
                r.name = name.into();
                r.limits.mean_ms = mean_ms;
            });
            (
                r.key(),
                Entry {
                    record: r,
                    component: bytes::Bytes::new(),
                    offset: (0, 0),
                },
            )
        };
        let entries: BTreeMap<String, Entry> = [
            entry("hosts", "a", 5),
            entry("hosts", "b", 7),
            entry("rivals", "c", 100),
        ]
        .into();
        assert_eq!(
            Usage::of(&entries, "hosts", "a"),
            Usage {
                replaces: true,
                others: 1,
                others_mean_time: Duration::from_millis(7),
            }
        );
        assert_eq!(Usage::of(&entries, "hosts", "new").others, 2);
    }

    /// The follower refuses a record for the very reason an upload of it
    /// is refused: both ask `Policy::admit`.
    #[test]
    fn a_record_is_refused_here_as_its_upload_would_be() {
        let policy = policy();
        let component = bytes::Bytes::from_static(b"\0asm component");
        let entry = |change: &dyn Fn(&mut Record)| Entry {
            record: record(|r| {
                r.sha256 = crate::sandbox::sha256_hex(&component);
                change(r);
            }),
            component: component.clone(),
            offset: (0, 0),
        };
        assert_eq!(policy.runnable(&entry(&|_| {})).err(), None);
        let refused: [&dyn Fn(&mut Record); 5] = [
            &|r| r.name = "taken".into(),
            &|r| r.group = "rivals".into(),
            &|r| r.name = "a/b".into(),
            &|r| r.limits.memory_bytes = usize::MAX,
            &|r| r.limits.handles += 1,
        ];
        for change in refused {
            let entry = entry(change);
            let upload = policy
                .admit(&entry.record, Some(&Usage::default()))
                .unwrap_err();
            assert_eq!(policy.runnable(&entry).err(), Some(upload.reason));
        }
        let tampered = entry(&|r| r.sha256 = "ab".into());
        assert!(policy.runnable(&tampered).unwrap_err().contains("sha256"));
    }
}
