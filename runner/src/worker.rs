//! The one worker layer: every child process Stockade starts to do sandbox work (conformance
//! workers, the host's out-of-process plugins, the background compile that fills the module
//! cache) is started, spoken to and ended here.
//!
//! - **Started with limits**: the kernel's limits ([`ProcessLimits`]) are set between fork and
//!   exec, so they bind the child before it reads a byte of its request.
//! - **One framing**: one JSON object a line each way. Every line read is bounded; a longer
//!   one is a fault of the worker, never held whole. A request too big for the pipe is written
//!   from a thread, so a worker that stops reading cannot block whoever watches it.
//! - **One answer discipline**: each request carries an id, each answer the id of the request
//!   it answers; an answer to anything else (a late second answer) is dropped, never taken for
//!   the request in flight. The protocols on top (`stockade.worker/1`, corpus/README.md;
//!   `stockade.plugin-worker/1`, [`crate::host::process`]) say what the ids are.
//! - **Reaped by `wait4`**: a worker that ends or is ended is waited for, with its resource
//!   usage ([`Ended`]): the figures a conformance case is graded on.
//! - **One policy wire form** ([`policy_to_wire`], [`policy_from_wire`]): the policy as a
//!   policy file says it, in JSON, read back with every range and rule checked.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::policy::Policy;

/// How to start a worker: a program and its arguments.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// Kernel limits a worker runs under, set before it executes.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessLimits {
    /// No core dumps: an abort is a finding, not a file of gigabytes.
    pub no_core_dumps: bool,
    /// `RLIMIT_FSIZE`: a write past it ends the worker with SIGXFSZ.
    pub file_size: Option<u64>,
    /// `RLIMIT_DATA`: what the worker may allocate.
    pub data: Option<u64>,
    /// An alarm this many seconds after it starts (it survives exec; SIGALRM ends the worker).
    pub alarm_seconds: Option<u32>,
}

/// The command that starts `command` under `limits`; the caller sets its standard streams.
pub fn command(command: &WorkerCommand, limits: ProcessLimits) -> Command {
    let mut builder = Command::new(&command.program);
    builder.args(&command.args).env("RUST_BACKTRACE", "0");
    // SAFETY: setrlimit, sigprocmask, signal and alarm are async-signal-safe and touch only the
    // child's own state.
    unsafe {
        use std::os::unix::process::CommandExt;
        builder.pre_exec(move || {
            let set = |resource, value: u64| {
                let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
                if libc::setrlimit(resource, &limit) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
            };
            if limits.no_core_dumps {
                set(libc::RLIMIT_CORE, 0)?;
            }
            if let Some(bytes) = limits.file_size {
                set(libc::RLIMIT_FSIZE, bytes)?;
            }
            if let Some(bytes) = limits.data {
                set(libc::RLIMIT_DATA, bytes)?;
            }
            if let Some(seconds) = limits.alarm_seconds {
                // Whatever the parent did with SIGALRM, the child is ended by it.
                let mut alarm: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut alarm);
                libc::sigaddset(&mut alarm, libc::SIGALRM);
                libc::sigprocmask(libc::SIG_UNBLOCK, &alarm, std::ptr::null_mut());
                libc::signal(libc::SIGALRM, libc::SIG_DFL);
                libc::alarm(seconds);
            }
            Ok(())
        });
    }
    builder
}

/// What [`Worker::next_line`] found instead of a line.
#[derive(Debug)]
pub enum NoLine {
    /// Nothing within the time given; the worker may still answer.
    Timeout,
    /// The worker closed its output without a (whole) line.
    Ended,
    /// Its output failed, or a line passed the bound.
    Failed(std::io::Error),
}

impl std::fmt::Display for NoLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoLine::Timeout => write!(f, "no answer"),
            NoLine::Ended => write!(f, "the worker ended without answering"),
            NoLine::Failed(e) => write!(f, "the worker's output failed: {e}"),
        }
    }
}

/// A running worker: its input, a thread reading its output a bounded line at a time, and the
/// end of what it wrote to stderr. Dropped, it is killed and reaped.
pub struct Worker {
    child: Child,
    pid: i32,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Disconnects when the worker's stderr reaches its end.
    stderr_done: mpsc::Receiver<()>,
    reaped: Option<Ended>,
}

/// How much of a worker's stderr is kept, from the end, to say why it died.
const STDERR_TAIL: usize = 2048;

impl Worker {
    /// Starts a worker under `limits`; a line it writes longer than `max_line` bytes is a
    /// fault.
    pub fn spawn(worker: &WorkerCommand, limits: ProcessLimits, max_line: u64) -> std::io::Result<Worker> {
        let mut child = command(worker, limits)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start it as a worker: {e}")))?;
        let pid = child.id() as i32;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr_pipe = child.stderr.take().expect("stderr is piped");
        let (send, lines) = mpsc::channel();
        std::thread::Builder::new().name(format!("worker-{pid}-out")).spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                match read_line_within(&mut reader, max_line) {
                    Ok(None) => return,
                    Ok(Some(line)) => {
                        if send.send(Ok(line)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = send.send(Err(e));
                        return;
                    }
                }
            }
        })?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::clone(&stderr);
        let (stderr_closed, stderr_done) = mpsc::channel::<()>();
        std::thread::Builder::new().name(format!("worker-{pid}-err")).spawn(move || {
            // Dropped at the end of the pipe: what the worker said last is all in `tail`.
            let _closed = stderr_closed;
            let mut pipe = stderr_pipe;
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    return;
                }
                let mut kept = tail.lock().unwrap_or_else(|e| e.into_inner());
                kept.extend_from_slice(&buffer[..n]);
                if kept.len() > STDERR_TAIL {
                    let cut = kept.len() - STDERR_TAIL;
                    kept.drain(..cut);
                }
            }
        })?;
        let stdin = child.stdin.take();
        Ok(Worker { child, pid, stdin, lines, stderr, stderr_done, reaped: None })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends one request, a line of JSON.
    pub fn send(&mut self, request: &impl serde::Serialize) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        let stdin = self.stdin.as_mut().ok_or_else(|| std::io::Error::other("the worker's input is closed"))?;
        // A pipe holds 64 KiB: a longer request is written from a thread, so that a worker that
        // stops reading cannot block the watch that ends it.
        if line.len() < 32 << 10 {
            stdin.write_all(&line)?;
            return stdin.flush();
        }
        let mut stdin = self.stdin.take().expect("checked above");
        let (done, result) = mpsc::channel();
        std::thread::spawn(move || {
            let outcome = stdin.write_all(&line).and_then(|()| stdin.flush());
            let _ = done.send((stdin, outcome));
        });
        match result.recv_timeout(Duration::from_secs(5)) {
            Ok((stdin, outcome)) => {
                self.stdin = Some(stdin);
                outcome
            }
            Err(_) => Err(std::io::Error::other("the worker did not read its request within 5 s")),
        }
    }

    /// The next line the worker wrote, within `within`.
    pub fn next_line(&self, within: Duration) -> Result<Vec<u8>, NoLine> {
        match self.lines.recv_timeout(within) {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(e)) => Err(NoLine::Failed(e)),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(NoLine::Timeout),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(NoLine::Ended),
        }
    }

    /// The answer to request `id` by `deadline`, parsed: an answer to any other request is
    /// passed to `dropped` (which may refuse to go on, with why) and never returned.
    pub fn answer_to<A: serde::de::DeserializeOwned, I: PartialEq>(
        &self,
        id: &I,
        id_of: impl Fn(&A) -> Option<I>,
        deadline: Instant,
        mut dropped: impl FnMut(&A) -> Result<(), String>,
    ) -> Result<A, String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NoLine::Timeout.to_string());
            }
            let line = self.next_line(left).map_err(|e| e.to_string())?;
            let answer: A = serde_json::from_slice(&line).map_err(|e| format!("the worker's answer does not parse: {e}"))?;
            if id_of(&answer).as_ref() == Some(id) {
                return Ok(answer);
            }
            dropped(&answer)?;
        }
    }

    /// Closes the worker's input: a worker of either protocol ends at the end of its input.
    pub fn close_input(&mut self) {
        self.stdin.take();
    }

    /// Waits for a worker that is ending (its input closed, or its output) to end, for at most
    /// two seconds, and kills it after that.
    pub fn end(&mut self) -> Ended {
        if let Some(ended) = self.reaped {
            return ended;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match reap(self.pid, false) {
                Ok(Some(ended)) => return *self.reaped.insert(ended),
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(_) => return *self.reaped.insert(Ended::default()),
            }
        }
        self.kill()
    }

    /// Kills the worker and reaps it.
    pub fn kill(&mut self) -> Ended {
        if let Some(ended) = self.reaped {
            return ended;
        }
        let _ = self.child.kill();
        *self.reaped.insert(reap(self.pid, true).ok().flatten().unwrap_or_default())
    }

    /// How the worker ended, with the end of what it printed to stderr (escaped).
    pub fn why(&self, ended: &Ended) -> String {
        // Its last words may still be in the pipe (a busy machine keeps the reading thread
        // waiting), so they are waited for, briefly (a child of the worker could hold the pipe
        // open).
        let _ = self.stderr_done.recv_timeout(Duration::from_secs(1));
        let stderr = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&stderr);
        // The last lines that say something: a panic's message and location, not its advice.
        let said: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("note: ")).collect();
        let last = said[said.len().saturating_sub(2)..].join(" / ");
        if last.is_empty() { ended.describe() } else { format!("{} (stderr: {})", ended.describe(), crate::text::escape::line(&last)) }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The next line (without its newline), `None` at the end of the stream, or an error for a
/// line longer than `max` bytes (which is not read further) or cut off by the end.
pub fn read_line_within(reader: &mut impl BufRead, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let read = Read::take(&mut *reader, max.saturating_add(1)).read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Some(line));
    }
    if line.len() as u64 > max {
        return Err(std::io::Error::other(format!("an answer line longer than {max} bytes")));
    }
    Err(std::io::Error::other("an answer cut off by the end of its output"))
}

/// A process's figures as `wait4` reports them when it has ended.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ended {
    /// The raw wait status.
    pub status: i32,
    pub peak_rss_bytes: u64,
    pub user_cpu: Duration,
    pub system_cpu: Duration,
}

impl Ended {
    /// How it ended, in words.
    pub fn describe(&self) -> String {
        let status = self.status;
        if libc::WIFEXITED(status) {
            format!("exited with status {}", libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            let name = match signal {
                libc::SIGABRT => " (SIGABRT: an abort)",
                libc::SIGKILL => " (SIGKILL: the OOM killer, or a cap)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGXFSZ => " (SIGXFSZ: past the file-size cap)",
                libc::SIGALRM => " (SIGALRM: past its alarm)",
                _ => "",
            };
            format!("was killed by signal {signal}{name}")
        } else {
            format!("ended with wait status {status:#x}")
        }
    }
}

/// Reaps `pid` if it has ended (`block`: wait until it has), with its resource usage.
pub fn reap(pid: i32, block: bool) -> std::io::Result<Option<Ended>> {
    let mut status = 0;
    // SAFETY: wait4 writes the status and the rusage it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        let reaped = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if reaped == pid {
            return Ok(Some(Ended {
                status,
                // ru_maxrss is in KiB on Linux.
                peak_rss_bytes: (usage.ru_maxrss.max(0) as u64) * 1024,
                user_cpu: timeval(usage.ru_utime),
                system_cpu: timeval(usage.ru_stime),
            }));
        }
        if reaped == 0 {
            return Ok(None);
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32).saturating_mul(1000))
}

/// A policy as a worker receives it: what a policy file would say, as JSON (TOML's tables,
/// with no nulls for the keys left out).
pub fn policy_to_wire(policy: &Policy) -> Result<serde_json::Value, String> {
    let table = toml::Table::try_from(policy).map_err(|e| format!("the policy does not serialize: {e}"))?;
    serde_json::to_value(table).map_err(|e| format!("the policy does not serialize: {e}"))
}

/// A policy from its wire form, read as Stockade reads a policy file (every range and rule
/// checked); `origin` names the sender in errors.
pub fn policy_from_wire(wire: &serde_json::Value, origin: &'static str) -> Result<Policy, String> {
    let table: toml::Table = serde_json::from_value(wire.clone()).map_err(|e| format!("{origin}: {e}"))?;
    let text = toml::to_string(&table).map_err(|e| format!("{origin}: {e}"))?;
    Policy::from_toml(&text, crate::document::Origin::Builtin(origin)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_past_its_bound_is_refused_without_being_read_whole() {
        let text = format!("short\n{}\n", "x".repeat(100));
        let mut reader = std::io::Cursor::new(text.into_bytes());
        assert_eq!(read_line_within(&mut reader, 10).unwrap().as_deref(), Some(&b"short"[..]));
        let error = read_line_within(&mut reader, 10).unwrap_err();
        assert!(error.to_string().contains("longer than 10 bytes"), "{error}");
        assert_eq!(reader.position(), 6 + 11, "one byte past the bound was read, not the line");
        let mut exact = std::io::Cursor::new(b"0123456789\n".to_vec());
        assert_eq!(read_line_within(&mut exact, 10).unwrap().as_deref(), Some(&b"0123456789"[..]));
        assert_eq!(read_line_within(&mut exact, 10).unwrap(), None);
        let mut cut = std::io::Cursor::new(b"no newline".to_vec());
        assert!(read_line_within(&mut cut, 100).unwrap_err().to_string().contains("cut off"));
    }

    #[test]
    fn a_policy_survives_its_wire_form() {
        let text = crate::policy::DEFAULT_POLICY_TOML.replacen("timeout = \"5s\"", "timeout = \"300ms\"", 1);
        let policy = Policy::from_toml(&text, crate::document::Origin::Builtin("test")).unwrap();
        let back = policy_from_wire(&policy_to_wire(&policy).unwrap(), "the test").unwrap();
        assert_eq!(policy_to_wire(&back).unwrap(), policy_to_wire(&policy).unwrap());
        assert_eq!(back.limits.timeout.get(), Duration::from_millis(300));
        let error = policy_from_wire(&serde_json::json!({"limits": {"timeout": "0s"}}), "the test").unwrap_err();
        assert!(error.contains("timeout"), "{error}");
    }

    #[test]
    fn limits_bind_the_worker_before_it_runs() {
        let shell = WorkerCommand { program: "/bin/sh".into(), args: vec!["-c".into(), "ulimit -f; ulimit -c; ulimit -d; echo '{}'".into()] };
        let limits = ProcessLimits { no_core_dumps: true, file_size: Some(1 << 20), data: Some(512 << 20), alarm_seconds: Some(30) };
        let out = command(&shell, limits).stderr(Stdio::null()).output().unwrap();
        // The shell's ulimit speaks in 512-byte blocks for -f and KiB for -d.
        assert_eq!(String::from_utf8_lossy(&out.stdout), "2048\n0\n524288\n{}\n");
        let sleeper = WorkerCommand { program: "/bin/sleep".into(), args: vec!["30".into()] };
        let mut child = command(&sleeper, ProcessLimits { alarm_seconds: Some(1), ..ProcessLimits::default() }).spawn().unwrap();
        let started = Instant::now();
        let ended = reap(child.id() as i32, true).unwrap().unwrap();
        let _ = child.wait();
        assert!(ended.describe().contains("SIGALRM"), "{}", ended.describe());
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
