//! `[kafka]`: how to reach the brokers (also the shape of
//! `[output.kafka]`, the cluster serve writes to when it is another).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::Invalid;

/// Connection to a Kafka cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// `security.protocol`: `plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`.
    #[serde(default = "default_security_protocol")]
    pub security_protocol: String,
    /// `sasl.mechanism`, e.g. `PLAIN`, `SCRAM-SHA-512`.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// SASL password; write `"${ENV_VAR}"` to keep it out of the file.
    #[serde(default)]
    pub sasl_password: Option<String>,
    /// CA certificate file for SSL.
    #[serde(default)]
    pub ssl_ca_location: Option<PathBuf>,
    /// Exactly-once only: the producer's `transactional.id`. Defaults to
    /// `bandpass-<group>-<hostname>`, stable across restarts so that a
    /// restarted instance fences its predecessor and aborts its open
    /// transaction at once. Two exactly-once instances on one host must
    /// each set their own.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// Any librdkafka property, applied last (overrides the above).
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Its rules; `table` is where it is in the file (`kafka`,
    /// `output.kafka`).
    pub(super) fn check(&self, table: &str) -> Result<(), Invalid> {
        if self.brokers.is_empty() {
            return Err(Invalid::new(
                format!("{table}.brokers"),
                "name at least one broker (host:port)".into(),
            ));
        }
        Ok(())
    }
}

fn default_security_protocol() -> String {
    "plaintext".into()
}
