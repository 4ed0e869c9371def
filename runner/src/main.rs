//! The `stockade` command: one module per subcommand (`cli/`), each a clap `Opts` with `run()`.

use std::process::ExitCode;

use clap::Parser;

mod cli;

// std's runtime set-up is relied on: closed standard descriptors are opened on `/dev/null`
// (no file this process opens becomes its standard output), SIGPIPE is ignored (a write to a
// closed pipe is an error, not the end of the process), a panic exits with 101.
fn main() -> ExitCode {
    ExitCode::from(run())
}

fn run() -> u8 {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => error.exit(), // --help, --version
        Err(error) => {
            // clap's usage errors span several lines; the CLI promises one.
            let text = error.render().to_string();
            let line: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:"))
                .collect();
            eprintln!("{}", line.join(" "));
            return cli::EXIT_TOOL_ERROR;
        }
    };
    // The command's own diagnostics are its output; tracing is for `STOCKADE_LOG=...` (the
    // CLI emits nothing at the error level a filter would pass by default). Setting up a
    // subscriber is a measurable part of a cached `run`, so it is done only when asked for.
    if std::env::var_os("STOCKADE_LOG").is_some_and(|v| !v.is_empty()) {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("STOCKADE_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    args.global.apply();
    match args.command.run() {
        Ok(status) => status.code(),
        Err(error) => {
            // One line on stderr: the context chain, outermost first, joined.
            eprintln!("error: {}", format!("{error:#}").replace('\n', " "));
            cli::EXIT_TOOL_ERROR
        }
    }
}
