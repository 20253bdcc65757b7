//! The `bandpass` command: parses arguments, starts tracing, runs the
//! command, and is the one place errors are printed.

use std::io::IsTerminal;
use std::process::ExitCode;

use bandpass::cli::LogFormat;
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = bandpass::cli::Cli::parse();
    if !matches!(cli.command, bandpass::cli::Command::Serve(_)) {
        die_quietly_on_a_closed_pipe();
    }
    // The object store's own log says at WARN what is routine (a journal
    // recovered on every reopen): only its errors are shown.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{},fjall=error,lsm_tree=error", cli.log)))
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colours only on a terminal: logs to files and journals stay plain.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
    match bandpass::cli::execute(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("bandpass: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// The offline commands print their reports to stdout, often into `head`
/// or `less`: a reader that closes the pipe ends them quietly, as it ends
/// other Unix tools, instead of making `println!` panic. `serve` keeps
/// Rust's default (SIGPIPE ignored), where a closed socket is an error it
/// handles rather than the end of the process.
fn die_quietly_on_a_closed_pipe() {
    // SAFETY: called on the main thread before any other thread exists;
    // restores the signal's default disposition, nothing else.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
