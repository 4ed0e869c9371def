//! The `stockade` command.
//!
//! The process starts at C's `main`, not at std's wrapper around a Rust `main`: before calling
//! `main`, that wrapper asks glibc for the main thread's stack bounds, which glibc finds by
//! reading and parsing `/proc/self/maps` (`pthread_getattr_np`), to print a friendlier message
//! on a stack overflow. That was 90 µs of every process, 4% of a cached `stockade run`. What
//! else the wrapper does and this command relies on is done here: standard descriptors that
//! are closed are opened on `/dev/null` (so that no file this process opens becomes its
//! standard output), SIGPIPE is ignored (a write to a closed pipe or socket is an error, not
//! the end of the process), a panic ends the process with status 101, and standard output is
//! flushed at exit. A stack overflow still ends the process, by SIGSEGV, without the message.

// The test harness brings its own `main`.
#![cfg_attr(not(test), no_main)]

use clap::Parser;

mod cli;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod math;

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: std::ffi::c_int, _argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    // SAFETY: called once, first, on the only thread.
    unsafe { prepare_process() };
    // std's wrapper exits with 101 after a panic in `main` (the hook has printed it).
    let code = std::panic::catch_unwind(run).unwrap_or(101);
    // Flushes standard output, as returning from std's `main` would.
    std::process::exit(i32::from(code))
}

/// What std's runtime does before `main` that this command needs (see the module's comment).
#[cfg(not(test))]
unsafe fn prepare_process() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    // SAFETY: three valid pollfd entries; a zero timeout never blocks.
    let polled = loop {
        match unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } {
            -1 if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            result => break result != -1,
        }
    };
    // Where poll cannot tell (std falls back the same way), each descriptor is asked in turn.
    let closed = |fd: &libc::pollfd| match polled {
        true => fd.revents & libc::POLLNVAL != 0,
        // SAFETY: F_GETFD only reads the descriptor's flags.
        false => (unsafe { libc::fcntl(fd.fd, libc::F_GETFD) }) == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF),
    };
    for fd in fds.iter().filter(|fd| closed(fd)) {
        // The lowest free descriptor is the closed one.
        // SAFETY: a constant path; the descriptor is kept for the life of the process.
        if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } != fd.fd {
            std::process::abort();
        }
    }
    // SAFETY: setting a signal's disposition to ignore.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

// Under test the harness's `main` runs instead.
#[cfg_attr(test, allow(dead_code))]
fn run() -> u8 {
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
    match args.command.run() {
        Ok(status) => status.code(),
        Err(error) => {
            // One line on stderr: the context chain, outermost first, joined.
            eprintln!("error: {}", format!("{error:#}").replace('\n', " "));
            cli::EXIT_TOOL_ERROR
        }
    }
}
