//! What the operating system says a process cost: the only figures a case is graded on.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// User + system CPU of this whole process, every thread (`getrusage(RUSAGE_SELF)`).
pub fn own_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given and touches nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32).saturating_mul(1000))
}

/// A live process's figures from /proc (Linux).
pub struct Proc {
    pid: i32,
}

impl Proc {
    pub fn new(pid: i32) -> Proc {
        Proc { pid }
    }

    /// Resets the peak RSS (`VmHWM`) to the current RSS, so that the next peak is the next
    /// case's own: writing 5 to clear_refs.
    pub fn reset_peak_rss(&self) -> std::io::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
    }

    /// `VmHWM` and `VmRSS`, in bytes.
    pub fn rss(&self) -> std::io::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kib| kib * 1024)
                .ok_or_else(|| std::io::Error::other(format!("no {name} in /proc/{}/status", self.pid)))
        };
        Ok((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// The current RSS, cheaply (`statm`), for watching a case while it runs.
    pub fn current_rss(&self) -> std::io::Result<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid))?;
        let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        Ok(pages * page_size())
    }

    /// User and system CPU so far, every thread (`/proc/PID/stat`, in clock ticks).
    pub fn cpu(&self) -> std::io::Result<(Duration, Duration)> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // The command name, field 2, may hold spaces and parentheses: count from the last `)`.
        let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state is field 3, utime 14, stime 15 (1-based).
        let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        let hz = clock_ticks();
        let to_duration = |ticks: u64| Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz);
        Ok((to_duration(tick(11)), to_duration(tick(12))))
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u64
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf reads a constant.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64
}

/// A duration in milliseconds, to the microsecond, as reports give them.
pub fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// Hands the memory the allocator keeps back to the system, so that the next case's peak RSS
/// starts from what is live rather than what the last case freed.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory at the top of glibc's arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The clock and the CPU accounting at a step's start.
#[derive(Clone, Copy)]
pub struct StepClock {
    wall: Instant,
    cpu: Duration,
}

impl StepClock {
    pub fn start() -> StepClock {
        StepClock { wall: Instant::now(), cpu: own_cpu() }
    }

    /// Wall time and CPU (every thread of the process) since the start.
    pub fn read(&self) -> (Duration, Duration) {
        (self.wall.elapsed(), own_cpu().saturating_sub(self.cpu))
    }
}

/// Reads the process's CPU at a call's deadline, from a thread that sleeps until then, so
/// that the CPU spent after it can be told from the CPU spent before.
///
/// One sampler thread serves the whole process (a worker makes one call at a time; starting a
/// thread per call cost more than a small case's call): arming sets its deadline, disarming
/// clears it.
pub struct DeadlineSampler(());

#[derive(Default)]
struct SamplerSlot {
    deadline: Option<Instant>,
    sample: Option<Duration>,
}

static SAMPLER: std::sync::LazyLock<Arc<(Mutex<SamplerSlot>, Condvar)>> = std::sync::LazyLock::new(|| {
    let shared = Arc::new((Mutex::new(SamplerSlot::default()), Condvar::new()));
    let theirs = shared.clone();
    let started = std::thread::Builder::new().name("deadline-sampler".into()).spawn(move || {
        let (slot, wake) = &*theirs;
        let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            guard = match guard.deadline {
                None => wake.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        guard.sample = Some(own_cpu());
                        guard.deadline = None;
                        guard
                    } else {
                        wake.wait_timeout(guard, deadline - now).unwrap_or_else(|e| e.into_inner()).0
                    }
                }
            };
        }
    });
    if let Err(e) = started {
        tracing::warn!("cannot start the deadline sampler: {e}");
    }
    shared
});

impl DeadlineSampler {
    pub fn arm(timeout: Duration) -> DeadlineSampler {
        let (slot, wake) = &**SAMPLER;
        let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
        *guard = SamplerSlot { deadline: Some(Instant::now() + timeout), sample: None };
        wake.notify_all();
        DeadlineSampler(())
    }

    /// The CPU spent since the deadline; zero when the call ended before it.
    pub fn disarm(self) -> Duration {
        let now = own_cpu();
        let (slot, wake) = &**SAMPLER;
        let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
        guard.deadline = None;
        let at_deadline = guard.sample.take();
        wake.notify_all();
        at_deadline.map_or(Duration::ZERO, |at| now.saturating_sub(at))
    }
}
