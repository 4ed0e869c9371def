//! The parent's side of the worker protocol: starts worker processes, hands each a case, and
//! measures it from outside (peak RSS, CPU, wall) while enforcing hard caps. A worker that
//! panics, aborts, is killed, hangs or balloons takes only its own case down.

use std::time::{Duration, Instant};

use crate::code::Code;
use crate::worker::{Ended, NoLine, ProcessLimits, Worker as Process, WorkerCommand};

use super::accounting::Proc;
use super::protocol::{WORKER_PROTOCOL, WorkerRequest, WorkerResponse};

/// Every worker runs under these, whatever host it drives: no core dumps (an abort is a
/// finding, not a 2 GB file), and no file past 256 MiB (a host without disk quotas cannot fill
/// the disk; a write past it ends the worker with SIGXFSZ).
const FILE_SIZE_CAP: u64 = 256 << 20;
/// How often a running case's RSS and wall clock are looked at.
const WATCH_INTERVAL: Duration = Duration::from_millis(5);
/// A worker whose RSS between cases has grown this much past what it held after its first case
/// is replaced, so that what one case left behind is not counted against the next.
const RECYCLE_GROWTH: u64 = 32 << 20;
/// A response line longer than this is a fault of the worker.
const MAX_RESPONSE: u64 = 512 << 20;
/// Answers to other requests a worker may write during one case before it is taken for broken
/// (each is dropped and recorded; a worker that floods them would otherwise never be timed out).
const MAX_DROPPED_ANSWERS: usize = 16;

/// The hard caps of one case: past them the worker is killed.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    pub wall: Duration,
    pub rss_bytes: u64,
}

/// The case's figures as the operating system measured them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    pub peak_rss_bytes: u64,
    pub user_cpu: Duration,
    pub system_cpu: Duration,
    pub wall: Duration,
    /// The figures are `wait4`'s for a worker that ran this case alone; otherwise /proc's for
    /// this case's span of a longer-lived worker (peak RSS reset before it).
    pub by_wait4: bool,
}

/// How a case came back.
pub enum Ran {
    /// The worker's answer to this case, and a description of each line it wrote while the
    /// case ran that answered another request (dropped, not believed).
    Answered(WorkerResponse, Vec<String>),
    /// The worker crashed, hung or passed its RSS cap: `crash`, `hang` or `host-rss-exceeded`.
    Fault { code: Code, message: String },
}

/// Runs cases, one at a time, in worker processes it keeps (up to `cases_per_worker` cases
/// each; `None`: until one faults or grows).
pub struct Supervisor {
    command: WorkerCommand,
    cases_per_worker: Option<usize>,
    worker: Option<Worker>,
}

impl Supervisor {
    pub fn new(command: WorkerCommand, cases_per_worker: Option<usize>) -> Supervisor {
        Supervisor { command, cases_per_worker, worker: None }
    }

    /// Runs one case. An error is the tool's (the worker cannot be started at all).
    pub fn run(&mut self, request: &WorkerRequest, caps: Caps) -> std::io::Result<(Ran, Figures)> {
        let mut worker = match self.worker.take() {
            Some(worker) => worker,
            None => Worker::spawn(&self.command)?,
        };
        let last_case = self.cases_per_worker.is_some_and(|n| worker.cases + 1 >= n);
        let (ran, figures, alive) = worker.run(request, caps, last_case);
        if alive {
            worker.cases += 1;
            if !last_case && !worker.grown() {
                self.worker = Some(worker);
            } else {
                worker.retire();
            }
        }
        Ok((ran, figures))
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.retire();
        }
    }
}

/// A worker process and what is known of its size.
struct Worker {
    process: Process,
    proc: Proc,
    cases: usize,
    /// RSS after the first case: the worker's settled size.
    settled_rss: Option<u64>,
    /// RSS after the last case.
    last_rss: u64,
}

impl Worker {
    fn spawn(command: &WorkerCommand) -> std::io::Result<Worker> {
        let limits = ProcessLimits { no_core_dumps: true, file_size: Some(FILE_SIZE_CAP), ..ProcessLimits::default() };
        let process = Process::spawn(command, limits, MAX_RESPONSE)?;
        let proc = Proc::new(process.pid());
        Ok(Worker { process, proc, cases: 0, settled_rss: None, last_rss: 0 })
    }

    /// Runs one case: (how it came back, its figures, whether the worker is still usable).
    fn run(&mut self, request: &WorkerRequest, caps: Caps, last_case: bool) -> (Ran, Figures, bool) {
        let fault = |code, message: String| Ran::Fault { code, message };
        let _ = self.proc.reset_peak_rss();
        let cpu_before = self.proc.cpu().unwrap_or_default();
        let started = Instant::now();
        let mut dropped = Vec::new();
        if let Err(e) = self.process.send(request) {
            let ended = self.process.end();
            return (fault(Code::Crash, format!("the worker would not take the case ({e}); it {}", self.process.why(&ended))), self.ended_figures(&ended, started, cpu_before), false);
        }
        loop {
            match self.process.next_line(WATCH_INTERVAL) {
                Ok(answer) => {
                    let wall = started.elapsed();
                    let response = match serde_json::from_slice::<WorkerResponse>(&answer) {
                        Ok(response) if response.protocol == WORKER_PROTOCOL => response,
                        Ok(response) => {
                            let ended = self.process.kill();
                            let message = format!("the worker answered in protocol `{}`, not {WORKER_PROTOCOL}", response.protocol);
                            return (fault(Code::Crash, message), self.ended_figures(&ended, started, cpu_before), false);
                        }
                        Err(e) => {
                            let ended = self.process.kill();
                            return (fault(Code::Crash, format!("the worker's answer does not parse: {e}")), self.ended_figures(&ended, started, cpu_before), false);
                        }
                    };
                    if response.id.is_empty() {
                        let ended = self.process.kill();
                        return (fault(Code::Crash, "the worker's answer does not say which request it answers (no `id`)".into()), self.ended_figures(&ended, started, cpu_before), false);
                    }
                    if response.id != request.id {
                        // A late second answer to an earlier case (a watchdog and a call that
                        // both answered): never this case's answer.
                        let id = crate::text::escape::line(&response.id);
                        dropped.push(format!("dropped an answer to `{}` that came while `{}` ran", crate::text::shorten(&id, 200), request.id));
                        if dropped.len() > MAX_DROPPED_ANSWERS {
                            let ended = self.process.kill();
                            let message = format!("the worker wrote more than {MAX_DROPPED_ANSWERS} answers to other requests while this case ran");
                            return (fault(Code::Crash, message), self.ended_figures(&ended, started, cpu_before), false);
                        }
                        continue;
                    }
                    if last_case || response.retiring {
                        // The worker ran this case alone (or last, or it ends after it: its
                        // watchdog ended a call): wait4 has its exact figures.
                        self.process.close_input();
                        let ended = self.process.end();
                        let mut figures = self.ended_figures(&ended, started, cpu_before);
                        figures.wall = wall;
                        return (Ran::Answered(response, dropped), figures, false);
                    }
                    let (peak, now) = self.proc.rss().unwrap_or_default();
                    let (user, system) = self.proc.cpu().unwrap_or_default();
                    self.settled_rss.get_or_insert(now);
                    self.last_rss = now;
                    let figures = Figures {
                        peak_rss_bytes: peak,
                        user_cpu: user.saturating_sub(cpu_before.0),
                        system_cpu: system.saturating_sub(cpu_before.1),
                        wall,
                        by_wait4: false,
                    };
                    return (Ran::Answered(response, dropped), figures, true);
                }
                Err(NoLine::Failed(e)) => {
                    let ended = self.process.end();
                    return (fault(Code::Crash, format!("{e}; the worker {}", self.process.why(&ended))), self.ended_figures(&ended, started, cpu_before), false);
                }
                Err(NoLine::Ended) => {
                    let ended = self.process.end();
                    let message = format!("the worker {} without answering", self.process.why(&ended));
                    return (fault(Code::Crash, message), self.ended_figures(&ended, started, cpu_before), false);
                }
                Err(NoLine::Timeout) => {
                    if started.elapsed() > caps.wall {
                        let ended = self.process.kill();
                        let message = format!("no answer within the hard cap of {:?}; the worker was killed", caps.wall);
                        return (fault(Code::Hang, message), self.ended_figures(&ended, started, cpu_before), false);
                    }
                    let rss = self.proc.current_rss().unwrap_or(0);
                    if rss > caps.rss_bytes {
                        let ended = self.process.kill();
                        let message = format!(
                            "the worker's RSS reached {} past the hard cap of {}; it was killed",
                            bytesize::ByteSize(rss).display().iec(),
                            bytesize::ByteSize(caps.rss_bytes).display().iec()
                        );
                        return (fault(Code::HostRssExceeded, message), self.ended_figures(&ended, started, cpu_before), false);
                    }
                }
            }
        }
    }

    fn grown(&self) -> bool {
        self.settled_rss.is_some_and(|settled| self.last_rss > settled.saturating_add(RECYCLE_GROWTH))
    }

    /// `wait4`'s figures; for a worker that ran earlier cases, its CPU from before this case
    /// taken off (its peak RSS was reset before this case, which `wait4` honours).
    fn ended_figures(&self, ended: &Ended, started: Instant, cpu_before: (Duration, Duration)) -> Figures {
        let (user_before, system_before) = if self.cases > 0 { cpu_before } else { Default::default() };
        Figures {
            peak_rss_bytes: ended.peak_rss_bytes,
            user_cpu: ended.user_cpu.saturating_sub(user_before),
            system_cpu: ended.system_cpu.saturating_sub(system_before),
            wall: started.elapsed(),
            by_wait4: true,
        }
    }

    /// Closes the worker's input and lets it end; kills it if it will not.
    fn retire(mut self) {
        self.process.close_input();
        self.process.end();
    }
}
