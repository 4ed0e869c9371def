//! The `stockade` command.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => error.exit(), // --help, --version
        Err(error) => {
            // clap's usage errors span several lines; DESIGN promises one.
            let text = error.render().to_string();
            let line: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:"))
                .collect();
            eprintln!("{}", line.join(" "));
            return ExitCode::from(cli::EXIT_TOOL_ERROR);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("STOCKADE_LOG"))
        .with_writer(std::io::stderr)
        .init();
    match args.command.run() {
        Ok(status) => status.into(),
        Err(error) => {
            // One line on stderr: the context chain, outermost first, joined.
            eprintln!("error: {}", format!("{error:#}").replace('\n', " "));
            ExitCode::from(cli::EXIT_TOOL_ERROR)
        }
    }
}
