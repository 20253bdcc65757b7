//! The `bandpass` command: parses arguments, starts tracing, runs the
//! command, and is the one place errors are printed.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = bandpass::cli::Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cli.log))
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    // Colours only on a terminal: logs to files and journals stay plain.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match bandpass::cli::execute(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("bandpass: {err:#}");
            ExitCode::from(2)
        }
    }
}
