//! bandpass: runs untrusted WebAssembly alert filters over astronomical
//! alert streams. See the repository README and `docs/`.
//!
//! Modules, in the order data flows through them:
//! - [`input`]: alert files, directories and `.tar.gz` archives;
//! - [`decode`]: framing, cached writer schemas, the projection decoder;
//! - [`sandbox`]: the wasmtime engine, validation, budgets, failures;
//! - [`runner`]: one decode per alert, every filter on it;
//! - [`cli`]: the `bandpass` commands; [`demo`]: synthetic alerts;
//! - [`config`]: the service's configuration file; [`kafka`]: every
//!   Kafka client's settings and log; [`deploy`]: which filters run, and
//!   how a new set reaches the pipeline; [`pipeline`]: the
//!   Kafka loop of `bandpass serve`; [`admin`]: its HTTP port (health,
//!   metrics, status page, the filter API); [`fleet`]: the uploaded
//!   filters a fleet shares through a compacted topic, and their canary; [`text`]: how any
//!   text a tenant wrote is bounded and escaped wherever it is shown.

pub mod admin;
pub mod cli;
pub mod config;
pub mod decode;
pub mod demo;
pub mod deploy;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod input;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod runner;
pub mod sandbox;
pub mod text;
pub mod units;
