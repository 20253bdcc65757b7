//! The filter's own log: the one capability a filter has.
//!
//! Each call writes one line through the host's `log` import. The host
//! bounds the volume per filter and drops (and counts) the excess, so log
//! what helps an author debug, not one line per alert in production.
//!
//! ```rust,no_run
//! use bandpass_sdk::log;
//! # let (rate, dt) = (0.5, 2.0);
//!
//! log::info("loaded");
//! log::debug!("rise {rate:.2} mag/day over {dt:.1} d");
//! ```
//!
//! `println!` and `eprintln!` also reach the filter's log, through WASI
//! stdout and stderr, but without a level.

use crate::bindings::bandpass::filter::log as wit;

/// Severity of a log line.
pub use wit::Level;

/// Writes one line at `level`.
pub fn write(level: Level, message: &str) {
    wit::log(level, message);
}

/// Writes one line at debug level.
pub fn debug(message: &str) {
    write(Level::Debug, message);
}

/// Writes one line at info level.
pub fn info(message: &str) {
    write(Level::Info, message);
}

/// Writes one line at warn level.
pub fn warn(message: &str) {
    write(Level::Warn, message);
}

/// Writes one line at error level.
pub fn error(message: &str) {
    write(Level::Error, message);
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bandpass_log_debug {
    ($($arg:tt)+) => { $crate::log::debug(&::std::format!($($arg)+)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bandpass_log_info {
    ($($arg:tt)+) => { $crate::log::info(&::std::format!($($arg)+)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bandpass_log_warn {
    ($($arg:tt)+) => { $crate::log::warn(&::std::format!($($arg)+)) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bandpass_log_error {
    ($($arg:tt)+) => { $crate::log::error(&::std::format!($($arg)+)) };
}

/// Formats and writes one line at debug level: `log::debug!("x = {x}")`.
#[doc(inline)]
pub use crate::__bandpass_log_debug as debug;
/// Formats and writes one line at error level: `log::error!("x = {x}")`.
#[doc(inline)]
pub use crate::__bandpass_log_error as error;
/// Formats and writes one line at info level: `log::info!("x = {x}")`.
#[doc(inline)]
pub use crate::__bandpass_log_info as info;
/// Formats and writes one line at warn level: `log::warn!("x = {x}")`.
#[doc(inline)]
pub use crate::__bandpass_log_warn as warn;
