//! The one integration test binary. A module per area; `support` holds
//! the shared helpers (real data paths, building the sample filters).

mod cli;
mod decode;
mod filters;
mod fuzzing;
mod javascript;
mod kafka;
mod new;
mod python;
mod sandbox;
mod serve;
mod support;
mod uploads;
