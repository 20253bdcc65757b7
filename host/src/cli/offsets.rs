//! An operator's view of a consumer group's place in its topics, with
//! the serve config's Kafka settings (SASL and TLS as serve uses them):
//! - `bandpass lag --config F [--group G]`: per input partition, the
//!   group's committed offset, the end, and the lag between them;
//! - `bandpass offsets --config F --to earliest|latest|TIME [--group G]
//!   [--dry-run]`: moves the group's committed offsets (a replay of a
//!   night), refused while the group has live members (a running serve
//!   would overwrite them).
//!
//! Neither joins the group: they read and commit as an outside client.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::format::{Table, thousands};
use crate::config::Config;
use crate::kafka::{Cluster, Logged, Role, client_config};

#[derive(Debug, Args)]
pub struct LagArgs {
    /// The serve config: its [kafka] settings, input topics and group.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Another consumer group than the config's input.group.
    #[arg(long)]
    pub group: Option<String>,
}

#[derive(Debug, Args)]
pub struct OffsetsArgs {
    /// The serve config: its [kafka] settings, input topics and group.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Another consumer group than the config's input.group.
    #[arg(long)]
    pub group: Option<String>,
    /// Where to: `earliest`, `latest`, or a time (UTC, such as
    /// `2026-12-05T18:00:00Z`, or milliseconds since 1970): each
    /// partition's first message at or after it.
    #[arg(long, value_name = "WHERE")]
    pub to: String,
    /// Say what would be committed, and commit nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// How long a call to the brokers may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A client of `group` that does not join it (nor commits by itself),
/// on the input cluster, once a first connection to it worked and the
/// group's committed offsets of the input topics could be read (see
/// [`crate::kafka::check_connection`]). Without a group, a client that
/// only reads assigned partitions, unchecked: librdkafka's assignments
/// still want a group id, and it is `input.group`'s, which a read-only
/// principal may look up where another name would be refused (it is
/// neither joined nor committed to).
pub(super) fn client(config: &Config, group: Option<&str>) -> anyhow::Result<BaseConsumer<Logged>> {
    let topics: &[String] = if group.is_some() {
        &config.input.topics
    } else {
        &[]
    };
    crate::kafka::check_connection(config, Cluster::Input, topics, group)?;
    let mut c = client_config(config, Role::InputClient);
    c.set("enable.auto.commit", "false")
        .set("group.id", group.unwrap_or(&config.input.group));
    c.create_with_context(Logged)
        .context("creating a Kafka client")
}

/// Every partition of `topics`; an error names one that does not exist.
pub(super) fn partitions(
    topics: &[String],
    client: &BaseConsumer<Logged>,
) -> anyhow::Result<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    let mut named = Vec::new();
    for topic in topics {
        match topic.strip_prefix('^') {
            // A pattern: every topic of the brokers it matches, as the
            // consumer subscribes to them.
            Some(_) => {
                let pattern = regex_lite::Regex::new(topic)
                    .with_context(|| format!("input topic pattern {topic}"))?;
                let metadata = client
                    .fetch_metadata(None, TIMEOUT)
                    .context("listing the brokers' topics")?;
                let matching: Vec<String> = metadata
                    .topics()
                    .iter()
                    .map(|t| t.name().to_string())
                    .filter(|name| !name.starts_with("__") && pattern.is_match(name))
                    .collect();
                if matching.is_empty() {
                    anyhow::bail!("no topic on the brokers matches the input pattern {topic}");
                }
                named.extend(matching);
            }
            None => named.push(topic.clone()),
        }
    }
    for topic in &named {
        let count = crate::kafka::partition_count(client.client(), topic)?;
        if count == 0 {
            anyhow::bail!("topic {topic} does not exist on the brokers");
        }
        for p in 0..count as i32 {
            list.add_partition(topic, p);
        }
    }
    Ok(list)
}

pub fn lag(args: LagArgs) -> anyhow::Result<u8> {
    let config = Config::load(&args.config)?;
    let group = args.group.as_deref().unwrap_or(&config.input.group);
    let client = client(&config, Some(group))?;
    let all = partitions(&config.input.topics, &client)?;
    let committed = client
        .committed_offsets(all, TIMEOUT)
        .with_context(|| format!("reading group {group}'s committed offsets"))?;
    let mut table = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]);
    let mut total: i64 = 0;
    for e in committed.elements() {
        let (low, high) = client
            .fetch_watermarks(e.topic(), e.partition(), TIMEOUT)
            .with_context(|| format!("reading the end of {}/{}", e.topic(), e.partition()))?;
        // Nothing committed: the group would start from its reset
        // point; counted from the partition's start.
        let (shown, from) = match e.offset() {
            Offset::Offset(o) => (thousands(o.max(0) as u64), o),
            _ => ("none".to_string(), low),
        };
        let lag = (high - from).max(0);
        total += lag;
        table.row(vec![
            e.topic().to_string(),
            e.partition().to_string(),
            shown,
            thousands(high.max(0) as u64),
            thousands(lag as u64),
        ]);
    }
    print!("{}", table.render());
    println!("group {group}: {} messages behind", thousands(total as u64));
    Ok(0)
}

/// Where `--to` points.
enum Target {
    Earliest,
    Latest,
    Time(i64),
}

/// Times before this (1973-03-03, milliseconds) are taken for a slip:
/// a count of seconds since 1970 given for milliseconds reads as January
/// 1970, which would replay everything.
const EARLIEST_TIME_MS: i64 = 100_000_000_000;

fn target(text: &str) -> anyhow::Result<Target> {
    let ms = match text.trim() {
        "earliest" => return Ok(Target::Earliest),
        "latest" => return Ok(Target::Latest),
        t if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
            t.parse().context("--to: milliseconds too large")?
        }
        t => utc_millis(t).ok_or_else(|| {
            anyhow::anyhow!(
                "--to '{}': give earliest, latest, a UTC time such as 2026-12-05T18:00:00Z, \
                 or milliseconds since 1970",
                crate::text::shown(t, 64)
            )
        })?,
    };
    if ms < EARLIEST_TIME_MS {
        anyhow::bail!(
            "--to {}: that is before 1973 (in milliseconds since 1970); a count of seconds? \
             Give milliseconds ({}), a UTC time such as 2026-12-05T18:00:00Z, or earliest",
            crate::text::shown(text.trim(), 64),
            ms.saturating_mul(1000)
        );
    }
    Ok(Target::Time(ms))
}

/// Days in month `m` (1 to 12) of year `y`.
fn days_in(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` as milliseconds since 1970.
fn utc_millis(t: &str) -> Option<i64> {
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.split(':');
    let (hh, mm, ss): (i64, i64, i64) = (
        h.next()?.parse().ok()?,
        h.next()?.parse().ok()?,
        h.next()?.parse().ok()?,
    );
    if d.next().is_some()
        || h.next().is_some()
        || !(1..=12).contains(&m)
        || !(1..=days_in(y, m)).contains(&day)
        || hh > 23
        || mm > 59
        || ss > 60
        || frac.is_empty()
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let millis: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    // Days from 1970-01-01 to the date (the proleptic Gregorian
    // calendar, by whole 400-year eras).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + millis)
}

pub fn offsets(args: OffsetsArgs) -> anyhow::Result<u8> {
    let config = Config::load(&args.config)?;
    let group = args.group.as_deref().unwrap_or(&config.input.group);
    let target = target(&args.to)?;
    let client = client(&config, Some(group))?;
    // Live members would overwrite what is committed here (and the
    // broker refuses a commit from outside a live group).
    let groups = client
        .fetch_group_list(Some(group), TIMEOUT)
        .with_context(|| format!("reading group {group}"))?;
    if let Some(g) = groups.groups().iter().find(|g| !g.members().is_empty()) {
        let members: Vec<String> = g
            .members()
            .iter()
            .map(|m| format!("{} on {}", m.client_id(), m.client_host()))
            .collect();
        anyhow::bail!(
            "group {group} has {} live members ({}): stop them (the serve instances of this \
             group) first, then move its offsets. A stopped serve with a group instance id \
             stays a member until its session times out (input.session_timeout, {:?} here): \
             try again after it",
            members.len(),
            members.join(", "),
            config.input.session_timeout
        );
    }
    let all = partitions(&config.input.topics, &client)?;
    let mut moved = TopicPartitionList::new();
    match target {
        Target::Time(ms) => {
            let mut asked = TopicPartitionList::new();
            for e in all.elements() {
                asked.add_partition_offset(e.topic(), e.partition(), Offset::Offset(ms))?;
            }
            let found = client
                .offsets_for_times(asked, TIMEOUT)
                .context("finding the offsets at that time")?;
            for e in found.elements() {
                let offset = match e.offset() {
                    Offset::Offset(o) => o,
                    // No message at or after it: the end.
                    _ => {
                        client
                            .fetch_watermarks(e.topic(), e.partition(), TIMEOUT)?
                            .1
                    }
                };
                moved.add_partition_offset(e.topic(), e.partition(), Offset::Offset(offset))?;
            }
        }
        Target::Earliest | Target::Latest => {
            for e in all.elements() {
                let (low, high) = client.fetch_watermarks(e.topic(), e.partition(), TIMEOUT)?;
                let offset = if matches!(target, Target::Earliest) {
                    low
                } else {
                    high
                };
                moved.add_partition_offset(e.topic(), e.partition(), Offset::Offset(offset))?;
            }
        }
    }
    let before = client.committed_offsets(moved.clone(), TIMEOUT)?;
    let mut table = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "TO"]);
    for (e, b) in moved.elements().iter().zip(before.elements()) {
        let was = match b.offset() {
            Offset::Offset(o) => thousands(o.max(0) as u64),
            _ => "none".to_string(),
        };
        let to = match e.offset() {
            Offset::Offset(o) => thousands(o.max(0) as u64),
            _ => "?".to_string(),
        };
        table.row(vec![
            e.topic().to_string(),
            e.partition().to_string(),
            was,
            to,
        ]);
    }
    print!("{}", table.render());
    if args.dry_run {
        println!("group {group}: nothing committed (--dry-run)");
        return Ok(0);
    }
    client
        .commit(&moved, CommitMode::Sync)
        .with_context(|| format!("committing group {group}'s offsets"))?;
    println!("group {group}: offsets committed; its next start reads from there");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_read_as_milliseconds_since_1970() {
        assert_eq!(utc_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(utc_millis("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        assert_eq!(
            utc_millis("2026-12-05T18:00:00.25Z"),
            Some(1_796_493_600_250)
        );
        assert_eq!(utc_millis("2024-02-29T23:59:59Z"), Some(1_709_251_199_000));
        for bad in [
            "2026-12-05 18:00:00Z",
            "2026-13-05T18:00:00Z",
            "2026-12-05T18:00:00",
            "2026-12-05T25:00:00Z",
            "2026-12-05T18:00:00.Z",
            "2026-02-30T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "yesterday",
        ] {
            assert_eq!(utc_millis(bad), None, "{bad}");
        }
        assert!(matches!(target("earliest"), Ok(Target::Earliest)));
        assert!(matches!(
            target("1796493600000"),
            Ok(Target::Time(1_796_493_600_000))
        ));
        // Seconds for milliseconds, and times before 1973: refused.
        for early in ["1764100800", "1900-01-01T00:00:00Z", "0"] {
            let why = target(early).err().unwrap().to_string();
            assert!(why.contains("before 1973"), "{why}");
        }
        let why = target("1764100800").err().unwrap().to_string();
        assert!(why.contains("(1764100800000)"), "{why}");
        let why = target("last tuesday").err().unwrap().to_string();
        assert!(why.contains("give earliest, latest, a UTC time"), "{why}");
    }
}
