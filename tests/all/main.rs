//! The one integration test binary. A module per area; `support` holds
//! the shared helpers (real data paths, building the sample filters) and,
//! in its submodules, the harness of the tests that run `bandpass serve`:
//! the process and its config, the admin port's HTTP, metrics, Kafka.

mod admission;
mod cli;
mod decode;
mod determinism;
mod filters;
mod fuzzing;
mod javascript;
mod kafka;
mod memory;
mod monitoring;
mod new;
mod python;
mod quickstart;
mod sandbox;
mod secure;
mod serve;
mod sky;
mod sky_flat;
mod sky_uploads;
mod status_page;
mod support;
mod uploads;
