//! Every Kafka client bandpass makes, configured in one place: the
//! pipeline's consumer and producer, and the registry's producer, reader
//! and admin client ([`Role`]). Also the one bridge from librdkafka's log
//! to tracing ([`forward_log`], [`Logged`]), and the first connection to
//! a cluster ([`check_connection`]), which turns librdkafka's retries of
//! what retrying cannot mend (a wrong password, an untrusted certificate,
//! a missing ACL) into an error that names the cluster, the cause and the
//! key to fix.
//!
//! Two clusters ([`Cluster`]): the input's (`[kafka]`, often a survey's,
//! read-only) and the output's (`[output.kafka]`, the operator's; the
//! input's when that table is absent). The pipeline's consumer and the
//! operator's commands talk to the input cluster; everything that writes
//! (outputs, dead letters, the registry, the changelog and re-key topics)
//! and reads back what it wrote talks to the output cluster.
//!
//! Each configuration is built in three layers: the connection settings
//! of its cluster's table (brokers, security), the role's own settings,
//! and that table's `librdkafka` map. Where the map goes differs by
//! role, and is part of the contract:
//! - the pipeline's clients take the map on top of their role's settings
//!   (an operator may tune them), then one setting that is not
//!   overridable (`statistics.interval.ms`: readiness and lag need the
//!   consumer's statistics every second);
//! - the registry's clients take the map first and their role's settings
//!   on top: they need their sizes and group exactly, and only the
//!   security settings given in the map should reach them.
//!
//! Must never: create a client (that is the caller's, with its context),
//! or log: what the caller decides to say about an id stays with it.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

use crate::config::{Config, Delivery, KafkaConfig, StartPosition};

/// Which client a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The pipeline's consumer of the alert topics, in `input.group`.
    Consumer,
    /// The pipeline's producer of accepted alerts and dead letters.
    Producer,
    /// The registry's producer of records, each at most `max_message`
    /// bytes.
    RegistryProducer { max_message: usize },
    /// The registry's reader of its topic, assigned (not in a group).
    RegistryReader { max_message: usize },
    /// The admin client that creates the registry and changelog topics.
    RegistryAdmin,
    /// A reader of one changelog partition to its end (a restore),
    /// assigned, committed transactions only.
    ChangelogReader,
    /// A client of the input cluster outside the pipeline: the input
    /// topics' metadata, and the operator's commands (`produce`,
    /// `consume`, `lag`, `offsets`), which add their own keys.
    InputClient,
}

/// One of the two clusters serve may talk to (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cluster {
    /// `[kafka]`: where the alerts are read.
    Input,
    /// `[output.kafka]`, else `[kafka]`: where serve writes.
    Output,
}

impl Cluster {
    /// The cluster a role's client talks to.
    pub fn of(role: Role) -> Cluster {
        match role {
            Role::Consumer | Role::InputClient => Cluster::Input,
            _ => Cluster::Output,
        }
    }

    /// The config table that says how to reach it, for messages.
    pub fn key(self, config: &Config) -> &'static str {
        match (self, &config.output.kafka) {
            (Cluster::Output, Some(_)) => "output.kafka",
            _ => "kafka",
        }
    }

    /// Its settings.
    pub fn settings(self, config: &Config) -> &KafkaConfig {
        match (self, &config.output.kafka) {
            (Cluster::Output, Some(output)) => output,
            _ => &config.kafka,
        }
    }

    /// What it is, for messages.
    fn what(self, config: &Config) -> &'static str {
        match (self, &config.output.kafka) {
            (Cluster::Input, Some(_)) => "the input cluster",
            (Cluster::Output, Some(_)) => "the output cluster",
            _ => "the Kafka cluster",
        }
    }
}

/// The configuration of a client in `role` (see the module doc for the
/// order in which its settings are applied).
pub fn client_config(config: &Config, role: Role) -> ClientConfig {
    let cluster = Cluster::of(role);
    let mut c = connection(cluster.settings(config));
    match role {
        // Readiness and lag depend on the consumer's statistics every
        // second; the producer's would only be logged. Neither is
        // overridable by the map.
        Role::Consumer => {
            consumer(config, &mut c);
            librdkafka_map(cluster, config, &mut c);
            c.set("statistics.interval.ms", "1000");
        }
        Role::Producer => {
            producer(config, &mut c);
            librdkafka_map(cluster, config, &mut c);
            c.set("statistics.interval.ms", "0");
        }
        Role::RegistryProducer { max_message } => {
            librdkafka_map(cluster, config, &mut c);
            c.set("enable.idempotence", "true")
                // Not compressed: librdkafka's consumer guesses a
                // compressed batch's size and gives up past
                // receive.message.max.bytes, which a 19 MB Python
                // component compressed to 6 MB exceeded.
                .set("compression.type", "none")
                .set("message.max.bytes", (max_message + (1 << 20)).to_string())
                .set("message.timeout.ms", "30000");
        }
        Role::RegistryReader { max_message } => {
            librdkafka_map(cluster, config, &mut c);
            to_the_end(&mut c, "bandpass-registry-reader", max_message);
        }
        Role::RegistryAdmin | Role::InputClient => librdkafka_map(cluster, config, &mut c),
        Role::ChangelogReader => {
            librdkafka_map(cluster, config, &mut c);
            let group = format!("{}.bandpass-restore", config.input.group);
            to_the_end(&mut c, &group, crate::memory::MAX_RECORD_BYTES);
            // Under exactly-once, aborted changes are not restored.
            c.set("isolation.level", "read_committed");
        }
    }
    c
}

/// A reader assigned partitions to read each to its end, without commits:
/// the end of each partition is said (compaction can leave its last
/// offsets empty), and a fetch holds its largest record, `max_message`.
fn to_the_end(c: &mut ClientConfig, group: &str, max_message: usize) {
    let fetch = max_message + (1 << 20);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.message.max.bytes", fetch.to_string())
        .set("fetch.max.bytes", fetch.to_string())
        .set("receive.message.max.bytes", (fetch + (1 << 20)).to_string());
}

/// The transactional id of the pipeline's producer under exactly-once
/// delivery: `kafka.transactional_id`, else one per group and host. Two
/// exactly-once instances on one host must each set their own.
pub fn transactional_id(config: &Config) -> String {
    config.kafka.transactional_id.clone().unwrap_or_else(|| {
        format!(
            "bandpass-{}-{}",
            config.input.group,
            crate::config::hostname()
        )
    })
}

/// Where to connect and how to authenticate: a cluster's own keys.
fn connection(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", k.brokers.join(","));
    c.set("security.protocol", &k.security_protocol);
    if let Some(m) = &k.sasl_mechanism {
        c.set("sasl.mechanism", m);
    }
    if let Some(u) = &k.sasl_username {
        c.set("sasl.username", u);
    }
    if let Some(p) = &k.sasl_password {
        c.set("sasl.password", p);
    }
    if let Some(ca) = &k.ssl_ca_location {
        c.set("ssl.ca.location", ca.display().to_string());
    }
    c
}

fn librdkafka_map(cluster: Cluster, config: &Config, c: &mut ClientConfig) {
    for (k, v) in &cluster.settings(config).librdkafka {
        c.set(k, v);
    }
}

fn consumer(config: &Config, c: &mut ClientConfig) {
    let exactly_once = config.delivery == Delivery::ExactlyOnce;
    c.set("group.id", &config.input.group)
        .set(
            "enable.auto.commit",
            if exactly_once { "false" } else { "true" },
        )
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed")
        // Bounded memory: at most this much fetched ahead (librdkafka's
        // default is 64 MiB).
        .set("queued.max.messages.kbytes", "16384")
        // When that is reached, fetch again 10 ms later, not librdkafka's
        // default 1 s: with alerts of 65 KB the queue fills often, and a
        // 1 s pause each time cut throughput five-fold (docs/benchmarks.md).
        .set("fetch.queue.backoff.ms", "10")
        // A crashed instance's partitions wait this long for it (see
        // input.session_timeout); heartbeats a third of it, at most 3 s.
        .set(
            "session.timeout.ms",
            config.input.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (config.input.session_timeout.as_millis() / 3)
                .clamp(100, 3000)
                .to_string(),
        )
        .set(
            "auto.offset.reset",
            match config.input.start {
                StartPosition::Earliest | StartPosition::TimestampMs(_) => "earliest",
                StartPosition::Latest => "latest",
            },
        );
    // Static membership: restarted under the same id, this instance gets
    // its partitions back without waiting for its old session to expire.
    if let Some(id) = config.group_instance_id() {
        c.set("group.instance.id", id);
    }
}

fn producer(config: &Config, c: &mut ClientConfig) {
    c.set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // Bounded memory: when this much waits for the broker, workers
        // wait (librdkafka's default is 1 GiB).
        .set("queue.buffering.max.kbytes", "65536");
    // Object memory: a changelog record is one object's whole record.
    if config.remembers_objects() {
        c.set(
            "message.max.bytes",
            (crate::memory::MAX_RECORD_BYTES + (1 << 20)).to_string(),
        );
    }
    if config.delivery == Delivery::ExactlyOnce {
        c.set("transactional.id", transactional_id(config))
            .set("transaction.timeout.ms", "60000")
            .set("message.timeout.ms", "60000");
    } else {
        c.set("message.timeout.ms", "0");
    }
}

/// Forwards a librdkafka log line to tracing (target `librdkafka`), as
/// rdkafka does by default, except the warnings that a property of the
/// `[kafka.librdkafka]` map does not apply to this client: the map goes
/// to the consumer and the producer alike, so each start would warn about
/// every consumer-only key on the producer and the reverse.
pub fn forward_log(level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
    use rdkafka::config::RDKafkaLogLevel as L;
    if facility == "CONFWARN" && message.contains("will be ignored by this") {
        tracing::debug!(target: "librdkafka", "{facility} {message}");
        return;
    }
    // One connection lost (an idle one the broker closed, a broker
    // restarting): librdkafka reconnects by itself, and says "all
    // brokers down" through the error callback if none is left.
    if facility == "FAIL" && matches!(level, L::Error | L::Critical) {
        tracing::warn!(target: "librdkafka", "{facility} {message}");
        return;
    }
    match level {
        L::Emerg | L::Alert | L::Critical | L::Error => {
            tracing::error!(target: "librdkafka", "{facility} {message}")
        }
        L::Warning => tracing::warn!(target: "librdkafka", "{facility} {message}"),
        L::Notice | L::Info => tracing::info!(target: "librdkafka", "{facility} {message}"),
        L::Debug => tracing::debug!(target: "librdkafka", "{facility} {message}"),
    }
}

/// How loud an error librdkafka reports outside any call (its error
/// callback) is: the end of a partition is how a reader knows it has
/// read it all (not logged); a connection lost or refused, which
/// librdkafka retries by itself, and a topic not there (yet) are
/// warnings; the rest, all brokers down among them, are errors.
pub fn error_level(error: &rdkafka::error::KafkaError) -> Option<tracing::Level> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};
    let code = match error {
        KafkaError::PartitionEOF(_) => return None,
        other => other.rdkafka_error_code(),
    };
    match code {
        Some(C::PartitionEOF) => None,
        Some(
            C::BrokerTransportFailure
            | C::Resolve
            | C::UnknownTopicOrPartition
            | C::UnknownTopic
            | C::UnknownPartition
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::RequestTimedOut
            | C::MessageTimedOut,
        ) => Some(tracing::Level::WARN),
        _ => Some(tracing::Level::ERROR),
    }
}

/// Logs an error from librdkafka's error callback at [`error_level`].
pub fn forward_error(error: &rdkafka::error::KafkaError, reason: &str) {
    match error_level(error) {
        None => {}
        Some(tracing::Level::WARN) => {
            tracing::warn!(target: "librdkafka", error = %error, "{reason}")
        }
        Some(_) => tracing::error!(target: "librdkafka", error = %error, "{reason}"),
    }
}

/// The context of a client that only logs (the registry's): its log
/// goes through [`forward_log`], so a SASL or TLS problem with the
/// registry shows in the log as the pipeline's do.
pub struct Logged;

impl ClientContext for Logged {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        forward_error(&error, reason);
    }
}

impl ConsumerContext for Logged {}

/// A topic the host keeps its own records in.
pub struct Internal<'a> {
    pub topic: &'a str,
    /// Compacted (the latest record per key is kept), else deleted by age
    /// (the broker's retention).
    pub compacted: bool,
    /// Partitions to create it with (an existing one keeps its own).
    pub partitions: i32,
    /// Its `max.message.bytes`, when the host's records can be large.
    pub max_message: Option<usize>,
    /// What it is, for messages ("registry topic").
    pub what: &'a str,
    /// What a deleting topic would lose, when it must be compacted.
    pub lost: &'a str,
    /// The config key that names another.
    pub key: &'a str,
}

/// Creates `spec.topic` if it is missing; an existing one must be
/// compacted if `spec.compacted`, and one whose `max.message.bytes` is
/// below the need is warned about. Returns its partition count.
pub fn ensure_topic(config: &Config, spec: &Internal<'_>) -> anyhow::Result<i32> {
    use anyhow::Context;
    use rdkafka::admin::{
        AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication,
    };
    use rdkafka::error::RDKafkaErrorCode;
    let Internal {
        topic,
        what,
        key,
        lost,
        compacted,
        ..
    } = spec;
    let admin: AdminClient<Logged> = client_config(config, Role::RegistryAdmin)
        .create_with_context(Logged)
        .with_context(|| format!("creating a Kafka admin client for the {what}"))?;
    let max = spec.max_message.map(|m| m.to_string());
    let policy = if *compacted { "compact" } else { "delete" };
    let mut new = NewTopic::new(topic, spec.partitions, TopicReplication::Fixed(-1))
        .set("cleanup.policy", policy);
    if let Some(max) = &max {
        new = new.set("max.message.bytes", max);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = runtime
        .block_on(admin.create_topics([&new], &options))
        .with_context(|| format!("creating {what} {topic}"))?;
    // Not created (say, no permission to create topics): fine if it exists.
    let mut refused = None;
    for result in created {
        match result {
            Ok(_) => {
                tracing::info!(%topic, partitions = spec.partitions, policy, "{what} created");
                return partitions_of(config, topic);
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => refused = Some(code),
        }
    }
    let described = runtime
        .block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options))
        .ok()
        .and_then(|mut r| r.pop())
        .and_then(Result::ok);
    let needs = match &max {
        Some(max) => format!("cleanup.policy={policy}, max.message.bytes={max}"),
        None => format!("cleanup.policy={policy}"),
    };
    let Some(described) = described else {
        anyhow::bail!(
            "cannot create {what} {topic} ({}) nor read its configuration: create it ({needs}) and let this instance describe it, or name another in {key}",
            refused.map_or("it exists".to_string(), |c| c.to_string())
        );
    };
    let value = |name: &str| described.get(name).and_then(|e| e.value.clone());
    let policy = value("cleanup.policy").unwrap_or_default();
    let policies: Vec<&str> = policy.split(',').map(str::trim).collect();
    if *compacted && policies != ["compact"] {
        anyhow::bail!(
            "{what} {topic} has cleanup.policy={policy}: it must be compact (and only compact: \
             \"delete\" drops old segments), or {lost}; set it, or name another topic in {key}"
        );
    }
    if let Some(needed) = spec.max_message {
        let limit: usize = value("max.message.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if limit < needed {
            tracing::warn!(
                %topic,
                limit,
                needed,
                "the {what}'s max.message.bytes is below what the host may write to it: larger records will be refused when written; raise it"
            );
        }
    }
    partitions_of(config, topic)
}

/// Creates each of `topics` that does not exist, as `[output]` says
/// (partitions, replication, retention; the broker's defaults where it
/// says none), once per process; returns those it created. A topic it
/// cannot create (no permission, a broker refusing) is fine if it
/// exists; if not, the error names it and what to do. With
/// `output.create_topics = false`, nothing is asked.
pub fn ensure_outputs(config: &Config, topics: &[&str]) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::error::RDKafkaErrorCode;
    static ENSURED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let output = &config.output;
    let mut wanted: Vec<&str> = topics
        .iter()
        .copied()
        .filter(|t| !ENSURED.lock().unwrap().iter().any(|e| e == t))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    if !output.create_topics || wanted.is_empty() {
        return Ok(Vec::new());
    }
    // One client for the process, made at serve's start (the config's
    // topics): not one per upload, whose threads would each leave the
    // allocator an arena of their own.
    static ADMIN: std::sync::OnceLock<AdminClient<Logged>> = std::sync::OnceLock::new();
    let admin = match ADMIN.get() {
        Some(admin) => admin,
        None => {
            let made: AdminClient<Logged> = client_config(config, Role::RegistryAdmin)
                .create_with_context(Logged)
                .context("creating a Kafka admin client for the output topics")?;
            ADMIN.get_or_init(|| made)
        }
    };
    let retention = output.retention.map(|r| r.as_millis().to_string());
    let new: Vec<NewTopic<'_>> = wanted
        .iter()
        .map(|t| {
            let topic = NewTopic::new(
                t,
                output.partitions.unwrap_or(-1),
                TopicReplication::Fixed(output.replication_factor.unwrap_or(-1)),
            );
            match &retention {
                Some(ms) => topic.set("retention.ms", ms),
                None => topic,
            }
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = runtime
        .block_on(admin.create_topics(&new, &options))
        .context("creating the output topics")?;
    let mut created = Vec::new();
    for result in results {
        let topic = match result {
            Ok(topic) => {
                tracing::info!(
                    %topic,
                    partitions = ?output.partitions,
                    replication_factor = ?output.replication_factor,
                    "output topic created"
                );
                created.push(topic.clone());
                topic
            }
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => topic,
            Err((topic, code)) => {
                let count = partitions_of_now(config, &topic)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", place(config, Cluster::Output)))?;
                if count == 0 {
                    anyhow::bail!(
                        "{}: cannot create output topic {topic} ({code}) and it does not exist: \
                         create it, grant bandpass the right to create topics, or set \
                         output.create_topics = false where the broker creates topics on \
                         first use",
                        place(config, Cluster::Output)
                    );
                }
                topic
            }
        };
        ENSURED.lock().unwrap().push(topic);
    }
    Ok(created)
}

/// A client that reads topics' metadata.
fn metadata_client(config: &Config) -> anyhow::Result<rdkafka::consumer::BaseConsumer<Logged>> {
    use anyhow::Context;
    client_config(config, Role::RegistryAdmin)
        .create_with_context(Logged)
        .context("creating a Kafka client to read topic metadata")
}

/// How many partitions `topic` has, as `client` (a consumer's or a
/// producer's) reads it now (0: it does not exist); an error when the
/// principal may not see it.
pub fn partition_count<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
) -> anyhow::Result<usize> {
    use anyhow::Context;
    let metadata = client
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("reading the metadata of topic {topic}"))?;
    let refused = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .filter_map(|t| t.error())
        .map(rdkafka::error::RDKafkaErrorCode::from)
        .find(|c| *c == rdkafka::error::RDKafkaErrorCode::TopicAuthorizationFailed);
    if let Some(code) = refused {
        anyhow::bail!(
            "this client's principal is not allowed to see topic {topic} ({code}): grant it \
             Describe there, with Read to consume it or Write to produce to it \
             (docs/operators.md, \"Secure clusters\")"
        );
    }
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .sum())
}

/// How many partitions `topic` has now (0: it does not exist).
fn partitions_of_now(config: &Config, topic: &str) -> anyhow::Result<usize> {
    use rdkafka::consumer::Consumer;
    partition_count(metadata_client(config)?.client(), topic)
}

/// How many partitions `topic` has (waiting a little for a topic just
/// created to show in the metadata).
pub fn partitions_of(config: &Config, topic: &str) -> anyhow::Result<i32> {
    use rdkafka::consumer::Consumer;
    let client = metadata_client(config)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let count = partition_count(client.client(), topic)?;
        if count > 0 {
            return Ok(count as i32);
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("topic {topic} has no partitions after 30 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How long the first connection to a cluster may take before it is
/// reported as unreachable (a problem that retrying cannot mend is
/// reported as soon as librdkafka says it).
const CONNECT_WAIT: Duration = Duration::from_secs(20);

/// Connects to `cluster` as `config` says and reads its metadata, so
/// that a problem retrying cannot mend stops the caller at once with an
/// error naming the cluster, the cause and the keys to fix, instead of
/// librdkafka's retries for ever: a wrong user or password, a mechanism
/// the brokers do not offer, a certificate not signed by the configured
/// CA, the wrong `security_protocol`. Then each of `topics` must be
/// visible to the principal (`Describe`), and, with `group`, so must the
/// group's committed offsets of them (the group's `Describe`).
pub fn check_connection(
    config: &Config,
    cluster: Cluster,
    topics: &[String],
    group: Option<&str>,
) -> anyhow::Result<()> {
    use rdkafka::consumer::Consumer;
    let role = match cluster {
        Cluster::Input => Role::InputClient,
        Cluster::Output => Role::RegistryAdmin,
    };
    let mut c = client_config(config, role);
    c.set("enable.auto.commit", "false");
    // Only with a group to check: a consumer with a group id looks its
    // coordinator up at once, which a principal without rights on that
    // group is refused.
    if let Some(group) = group {
        c.set("group.id", group);
    }
    let client: rdkafka::consumer::BaseConsumer<Watched> =
        c.create_with_context(Watched::default()).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot make a Kafka client ({e}): check the keys of [{}]",
                place(config, cluster),
                cluster.key(config)
            )
        })?;
    // Until an attempt works, or librdkafka says why none can, or the
    // wait is over; its errors reach the context through a poll.
    let attempt = |about: &str, what: &mut dyn FnMut() -> bool| -> anyhow::Result<bool> {
        let deadline = std::time::Instant::now() + CONNECT_WAIT;
        loop {
            let done = what();
            while let Some(event) = client.poll(Duration::ZERO) {
                if let Err(e) = event {
                    client.context().saw(&e, "");
                }
            }
            if let Some(seen) = client.context().seen() {
                // The group's coordinator is looked up from the start.
                let about = match group {
                    Some(g) if seen.group_refused => group_about(g),
                    _ => about.to_string(),
                };
                anyhow::bail!(
                    "{}: {}",
                    place(config, cluster),
                    seen.explain(config, cluster, &about)
                );
            }
            if done {
                return Ok(true);
            }
            if std::time::Instant::now() > deadline {
                return Ok(false);
            }
        }
    };
    let mut last = None;
    let connected = attempt("the cluster", &mut || {
        let fetched = client.fetch_metadata(None, Duration::from_millis(500));
        let ok = fetched.is_ok();
        if let Err(e) = fetched {
            last = Some(e.to_string());
        }
        ok
    });
    anyhow::ensure!(
        connected?,
        "{}: no answer within {CONNECT_WAIT:?} ({}): check that the brokers run and that \
         [{}] brokers and security_protocol are theirs",
        place(config, cluster),
        last.unwrap_or_default(),
        cluster.key(config)
    );
    let mut partitions = rdkafka::TopicPartitionList::new();
    // A pattern (`^...`) names no one topic to look at.
    for topic in topics.iter().filter(|t| !t.starts_with('^')) {
        let count = partition_count(client.client(), topic)
            .map_err(|e| anyhow::anyhow!("{}: {e}", place(config, cluster)))?;
        for p in 0..count as i32 {
            partitions.add_partition(topic, p);
        }
    }
    if let Some(group) = group
        && partitions.count() > 0
    {
        let read = attempt(&group_about(group), &mut || {
            client
                .committed_offsets(partitions.clone(), Duration::from_secs(1))
                .is_ok()
        });
        anyhow::ensure!(
            read?,
            "{}: cannot read consumer group {}'s committed offsets within {CONNECT_WAIT:?}: \
             check that the brokers run",
            place(config, cluster),
            crate::text::shown(group, 200)
        );
    }
    Ok(())
}

/// What a refusal on `group` is about, for messages.
fn group_about(group: &str) -> String {
    format!(
        "consumer group {} (Read on it is needed)",
        crate::text::shown(group, 200)
    )
}

/// "the input cluster (kafka.brokers 127.0.0.1:9093, sasl_ssl, user
/// reader)": where a connection went, for messages.
fn place(config: &Config, cluster: Cluster) -> String {
    let k = cluster.settings(config);
    let user = match &k.sasl_username {
        Some(u) => format!(", user {}", crate::text::shown(u, 64)),
        None => String::new(),
    };
    format!(
        "{} ({}.brokers {}, {}{user})",
        cluster.what(config),
        cluster.key(config),
        crate::text::shown(&k.brokers.join(","), 200),
        crate::text::shown(&k.security_protocol, 32)
    )
}

/// Whether the brokers refused a request for want of an ACL: retrying
/// will not mend it.
pub fn is_refusal(error: &KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(
            C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::TransactionalIdAuthorizationFailed
        )
    )
}

/// A problem librdkafka retries for ever although waiting cannot mend
/// it, with librdkafka's words for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub said: String,
    /// A refusal on the consumer group (not a topic, not the cluster).
    pub group_refused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// SASL: wrong user or password, or a mechanism not offered.
    Authentication,
    /// TLS: the brokers' certificate is not trusted, or names another host.
    Tls,
    /// Plain text spoken to a TLS listener, or the reverse.
    Protocol,
    /// A request refused for want of an ACL (a topic, a group).
    Refused,
}

impl Problem {
    /// The problem `error` (with librdkafka's words for it, if any) is.
    pub fn of(error: &KafkaError, said: &str) -> Option<Problem> {
        use rdkafka::error::RDKafkaErrorCode as C;
        let kind = match error.rdkafka_error_code() {
            Some(C::Authentication | C::SaslAuthenticationFailed) => ProblemKind::Authentication,
            _ if is_refusal(error) => ProblemKind::Refused,
            _ => return Problem::in_words(said),
        };
        let said = if said.is_empty() {
            error.to_string()
        } else {
            said.to_string()
        };
        Some(Problem {
            kind,
            said,
            group_refused: error.rdkafka_error_code() == Some(C::GroupAuthorizationFailed),
        })
    }

    /// The problem a line of librdkafka's log reports, if any.
    pub fn in_words(said: &str) -> Option<Problem> {
        let kind = if said.contains("SASL authentication error")
            || said.contains("Unsupported SASL mechanism")
        {
            ProblemKind::Authentication
        } else if said.contains("SSL handshake failed") || said.contains("certificate verify") {
            ProblemKind::Tls
        } else if said.contains("security.protocol") {
            ProblemKind::Protocol
        } else {
            return None;
        };
        Some(Problem {
            kind,
            said: said.to_string(),
            group_refused: false,
        })
    }

    /// What it means for `cluster`, and what to change; `about` is what
    /// was asked for (a consumer group), for a refusal.
    fn explain(&self, config: &Config, cluster: Cluster, about: &str) -> String {
        let key = cluster.key(config);
        let k = cluster.settings(config);
        let said = crate::text::shown(&self.said, 400);
        match self.kind {
            ProblemKind::Authentication => format!(
                "authentication failed ({said}): check {key}.sasl_username and \
                 {key}.sasl_password, and that {key}.sasl_mechanism ({}) is one the brokers \
                 offer",
                crate::text::shown(k.sasl_mechanism.as_deref().unwrap_or("not set"), 64)
            ),
            ProblemKind::Tls => format!(
                "the TLS handshake failed ({said}): {key}.ssl_ca_location ({}) must hold the \
                 certificate authority that signed the brokers' certificates, and those must \
                 name the host given in {key}.brokers",
                k.ssl_ca_location
                    .as_ref()
                    .map_or("not set: the system's CAs".to_string(), |p| p
                        .display()
                        .to_string())
            ),
            ProblemKind::Protocol => format!(
                "the brokers do not speak {} there ({said}): set {key}.security_protocol to \
                 the protocol of the listener {key}.brokers names",
                crate::text::shown(&k.security_protocol, 32)
            ),
            ProblemKind::Refused => format!(
                "{} is not allowed to use {about} ({said}): grant it the ACLs it needs \
                 (docs/operators.md, \"Secure clusters\")",
                match &k.sasl_username {
                    Some(u) => format!("user {}", crate::text::shown(u, 64)),
                    None => "this client's principal".to_string(),
                }
            ),
        }
    }
}

/// The context of [`check_connection`]'s client: logs as [`Logged`]
/// does, and keeps the first [`Problem`] librdkafka reports, in its
/// log or as an error.
#[derive(Default)]
struct Watched {
    seen: std::sync::Mutex<Option<Problem>>,
}

impl Watched {
    fn saw(&self, error: &KafkaError, said: &str) {
        if let Some(problem) = Problem::of(error, said) {
            self.seen.lock().unwrap().get_or_insert(problem);
        }
    }

    fn seen(&self) -> Option<Problem> {
        self.seen.lock().unwrap().clone()
    }
}

impl ClientContext for Watched {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        if let Some(problem) = Problem::in_words(message) {
            self.seen.lock().unwrap().get_or_insert(problem);
        }
        forward_log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.saw(&error, reason);
        tracing::debug!(target: "librdkafka", error = %error, "{reason}");
    }
}

impl ConsumerContext for Watched {}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A config with every connection key, exactly-once delivery, an
    /// admin port (so a default group instance id), and a map that
    /// overrides a key of each role.
    const CONFIG: &str = r#"
        delivery = "exactly-once"
        [kafka]
        brokers = ["b1:9092", "b2:9092"]
        security_protocol = "sasl_ssl"
        sasl_mechanism = "SCRAM-SHA-512"
        sasl_username = "bandpass"
        sasl_password = "s3cret"
        ssl_ca_location = "/etc/ca.pem"
        [kafka.librdkafka]
        "linger.ms" = "50"
        "fetch.queue.backoff.ms" = "20"
        "statistics.interval.ms" = "5"
        "group.id" = "from-the-map"
        "message.timeout.ms" = "1"
        "socket.keepalive.enable" = "true"
        [input]
        topics = ["ztf_alerts"]
        group = "night"
        start = "earliest"
        session_timeout = "6s"
        [admin]
        listen = "127.0.0.1:8088"
        [[filter]]
        path = "bright_transients.wasm"
        output_topic = "bright"
    "#;

    fn config() -> Config {
        Config::parse(CONFIG, Path::new("bandpass.toml"), |_| None).unwrap()
    }

    fn keys(role: Role) -> Vec<(String, String)> {
        // Every key, with its value as given (`config_map` hides
        // passwords).
        let c = client_config(&config(), role);
        c.config_map()
            .into_keys()
            .map(|k| (k.to_string(), c.get(k).unwrap().to_string()))
            .collect()
    }

    fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.sort();
        all
    }

    const CONNECTION: [(&str, &str); 6] = [
        ("bootstrap.servers", "b1:9092,b2:9092"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.password", "s3cret"),
        ("sasl.username", "bandpass"),
        ("security.protocol", "sasl_ssl"),
        ("ssl.ca.location", "/etc/ca.pem"),
    ];

    fn with_connection(role: &[(&str, &str)]) -> Vec<(String, String)> {
        expect(&[&CONNECTION[..], role].concat())
    }

    #[test]
    fn the_consumer_takes_the_map_over_its_own_keys_but_not_over_statistics() {
        let host = crate::config::hostname();
        let instance = format!("{host}-8088");
        assert_eq!(
            keys(Role::Consumer),
            with_connection(&[
                ("auto.commit.interval.ms", "1000"),
                ("auto.offset.reset", "earliest"),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "false"),
                ("fetch.queue.backoff.ms", "20"),
                ("group.id", "from-the-map"),
                ("group.instance.id", &instance),
                ("heartbeat.interval.ms", "2000"),
                ("isolation.level", "read_committed"),
                ("linger.ms", "50"),
                ("message.timeout.ms", "1"),
                ("queued.max.messages.kbytes", "16384"),
                ("session.timeout.ms", "6000"),
                ("socket.keepalive.enable", "true"),
                ("statistics.interval.ms", "1000"),
            ])
        );
    }

    #[test]
    fn the_producer_takes_the_map_over_its_own_keys_but_not_over_statistics() {
        let transactional = format!("bandpass-night-{}", crate::config::hostname());
        assert_eq!(
            keys(Role::Producer),
            with_connection(&[
                ("enable.idempotence", "true"),
                ("fetch.queue.backoff.ms", "20"),
                ("group.id", "from-the-map"),
                ("linger.ms", "50"),
                ("message.timeout.ms", "1"),
                ("queue.buffering.max.kbytes", "65536"),
                ("socket.keepalive.enable", "true"),
                ("statistics.interval.ms", "0"),
                ("transaction.timeout.ms", "60000"),
                ("transactional.id", &transactional),
            ])
        );
    }

    /// The map's keys that no registry role sets itself.
    const MAP_ONLY: [(&str, &str); 4] = [
        ("fetch.queue.backoff.ms", "20"),
        ("linger.ms", "50"),
        ("socket.keepalive.enable", "true"),
        ("statistics.interval.ms", "5"),
    ];

    #[test]
    fn the_registry_producer_keeps_its_own_keys_over_the_map() {
        assert_eq!(
            keys(Role::RegistryProducer { max_message: 1000 }),
            with_connection(
                &[
                    &MAP_ONLY[..],
                    &[
                        ("compression.type", "none"),
                        ("enable.idempotence", "true"),
                        ("group.id", "from-the-map"),
                        ("message.max.bytes", "1049576"),
                        ("message.timeout.ms", "30000"),
                    ]
                ]
                .concat()
            )
        );
    }

    #[test]
    fn the_registry_reader_keeps_its_own_keys_over_the_map() {
        assert_eq!(
            keys(Role::RegistryReader { max_message: 1000 }),
            with_connection(
                &[
                    &MAP_ONLY[..],
                    &[
                        ("enable.auto.commit", "false"),
                        ("enable.auto.offset.store", "false"),
                        ("enable.partition.eof", "true"),
                        ("fetch.max.bytes", "1049576"),
                        ("fetch.message.max.bytes", "1049576"),
                        ("group.id", "bandpass-registry-reader"),
                        ("message.timeout.ms", "1"),
                        ("receive.message.max.bytes", "2098152"),
                    ]
                ]
                .concat()
            )
        );
    }

    #[test]
    fn the_registry_admin_takes_the_connection_and_the_map() {
        assert_eq!(
            keys(Role::RegistryAdmin),
            with_connection(
                &[
                    &MAP_ONLY[..],
                    &[("group.id", "from-the-map"), ("message.timeout.ms", "1")]
                ]
                .concat()
            )
        );
    }

    /// `CONFIG` at least once, with an output cluster of its own.
    fn two_clusters() -> Config {
        let text = CONFIG.replace("delivery = \"exactly-once\"", "")
            + "[output.kafka]\nbrokers = [\"o1:9092\"]\nsecurity_protocol = \"sasl_ssl\"\n\
               sasl_username = \"operator\"\n[output.kafka.librdkafka]\n\"linger.ms\" = \"7\"\n";
        Config::parse(&text, Path::new("bandpass.toml"), |_| None).unwrap()
    }

    #[test]
    fn with_an_output_cluster_what_writes_goes_there_and_what_reads_the_input_stays() {
        let config = two_clusters();
        for role in [Role::Consumer, Role::InputClient] {
            let c = client_config(&config, role);
            assert_eq!(
                c.get("bootstrap.servers"),
                Some("b1:9092,b2:9092"),
                "{role:?}"
            );
            assert_eq!(c.get("sasl.username"), Some("bandpass"), "{role:?}");
            assert_eq!(c.get("fetch.queue.backoff.ms"), Some("20"), "{role:?}");
        }
        for role in [
            Role::Producer,
            Role::RegistryProducer { max_message: 1000 },
            Role::RegistryReader { max_message: 1000 },
            Role::RegistryAdmin,
            Role::ChangelogReader,
        ] {
            let c = client_config(&config, role);
            assert_eq!(c.get("bootstrap.servers"), Some("o1:9092"), "{role:?}");
            assert_eq!(c.get("sasl.username"), Some("operator"), "{role:?}");
            // Nothing of the input cluster's: no password, no map.
            assert_eq!(c.get("sasl.password"), None, "{role:?}");
            assert_eq!(c.get("ssl.ca.location"), None, "{role:?}");
            assert_eq!(c.get("fetch.queue.backoff.ms"), None, "{role:?}");
            assert_eq!(c.get("linger.ms"), Some("7"), "{role:?}");
        }
    }

    #[test]
    fn librdkafka_s_words_for_what_retrying_cannot_mend_are_recognised() {
        let kind = |said: &str| Problem::in_words(said).map(|p| p.kind);
        assert_eq!(
            kind(
                "sasl_ssl://h:9093/bootstrap: SASL authentication error: Authentication failed \
                 during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
            ),
            Some(ProblemKind::Authentication)
        );
        assert_eq!(
            kind(
                "sasl_ssl://h:9093/bootstrap: SSL handshake failed: error:0A000086:SSL \
                 routines::certificate verify failed"
            ),
            Some(ProblemKind::Tls)
        );
        assert_eq!(
            kind("h:9093/bootstrap: Connect to ipv4#127.0.0.1:9093 failed: Connection refused"),
            None
        );
        let refused = KafkaError::MessageConsumption(
            rdkafka::error::RDKafkaErrorCode::GroupAuthorizationFailed,
        );
        assert_eq!(
            Problem::of(&refused, "").map(|p| p.kind),
            Some(ProblemKind::Refused)
        );
    }

    #[test]
    fn exactly_once_is_refused_across_two_clusters_and_allowed_on_one() {
        let two = format!("{CONFIG}[output.kafka]\nbrokers = [\"o1:9092\"]\n");
        let refused = Config::parse(&two, Path::new("bandpass.toml"), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("output.kafka") && refused.contains("exactly-once"),
            "{refused}"
        );
        // The same brokers (another principal, say) are one cluster.
        let one = format!(
            "{CONFIG}[output.kafka]\nbrokers = [\"b2:9092\", \"b1:9092\"]\nsasl_username = \"w\"\n"
        );
        Config::parse(&one, Path::new("bandpass.toml"), |_| None).unwrap();
        // The transactional id is [kafka]'s alone.
        let misplaced =
            format!("{CONFIG}[output.kafka]\nbrokers = [\"b1:9092\"]\ntransactional_id = \"t\"\n");
        let refused = Config::parse(&misplaced, Path::new("bandpass.toml"), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("output.kafka.transactional_id"),
            "{refused}"
        );
    }

    #[test]
    fn at_least_once_needs_no_transactional_id_and_never_times_a_produce_out() {
        let text = CONFIG
            .replace("delivery = \"exactly-once\"", "")
            .replace("\"message.timeout.ms\" = \"1\"\n", "");
        let config = Config::parse(&text, Path::new("bandpass.toml"), |_| None).unwrap();
        let producer = client_config(&config, Role::Producer);
        assert_eq!(producer.get("transactional.id"), None);
        assert_eq!(producer.get("message.timeout.ms"), Some("0"));
        let consumer = client_config(&config, Role::Consumer);
        assert_eq!(consumer.get("enable.auto.commit"), Some("true"));
    }

    #[test]
    fn librdkafka_errors_are_as_loud_as_what_an_operator_must_do_about_them() {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};
        use tracing::Level;
        for (error, level) in [
            (KafkaError::PartitionEOF(3), None),
            (KafkaError::Global(C::PartitionEOF), None),
            (
                KafkaError::Global(C::BrokerTransportFailure),
                Some(Level::WARN),
            ),
            (
                KafkaError::Global(C::UnknownTopicOrPartition),
                Some(Level::WARN),
            ),
            (KafkaError::Global(C::AllBrokersDown), Some(Level::ERROR)),
            (
                KafkaError::Global(C::SaslAuthenticationFailed),
                Some(Level::ERROR),
            ),
            (
                KafkaError::Global(C::TopicAuthorizationFailed),
                Some(Level::ERROR),
            ),
            (KafkaError::Global(C::Fatal), Some(Level::ERROR)),
        ] {
            assert_eq!(error_level(&error), level, "{error}");
        }
    }
}
