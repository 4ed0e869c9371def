//! The deadline where the process is its boundary: the code carries no epoch checks (it runs at
//! the speed of uninstrumented wasmtime), and a watchdog ends the process at the call's
//! deadline instead. Host calls still end at the deadline by themselves; the watchdog is for the
//! wasm code, which nothing else can stop without instrumentation.
//!
//! Two ways to watch. A process that makes many calls (a conformance or host worker) has one
//! thread watch every deadline, and runs the caller's closure there when one passes. A process
//! that makes one call and reports it (`stockade run`) arms a timer instead: starting a thread
//! was 3% of a cached run. The timer's signal handler may do only what is safe in a handler (the
//! call it interrupted may hold the allocator's lock), so it renders nothing: it writes the
//! call's peak memory and stage into an argument prepared when the timer was armed and
//! re-executes the program with it ([`Watchdog::arm_reexec`]); the new process, started
//! clean, prints the `timeout` outcome from those figures ([`TimedOut`]).

use std::ffi::{CStr, CString, OsString};
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::outcome::{Outcome, Stage, Stats};
use crate::code::Code;
use crate::budget::MemoryBudget;
use crate::policy::Limits;

/// How long after a call's deadline the watchdog fires: a host call (WASI, HTTP, a host
/// function) that is waiting at the deadline gives up by itself and reports with its full
/// figures; the promise is the timeout plus 100 ms.
pub const GRACE: Duration = Duration::from_millis(20);

/// The stage of the call in flight in this process (a disposable process makes one call at a
/// time), for the watchdog's outcome.
static STAGE: AtomicU8 = AtomicU8::new(0);

/// The stages in the order a call passes them; a stage's number is its index, in [`STAGE`] and
/// in [`TimedOut`]'s encoding.
const STAGES: [Stage; 3] = [Stage::Load, Stage::Instantiate, Stage::Call];

pub(super) fn enter(stage: Stage) {
    STAGE.store(STAGES.iter().position(|s| *s == stage).unwrap_or_default() as u8, Ordering::Relaxed);
}

/// Where the call in flight was when the watchdog fired.
pub fn stage_in_flight() -> Stage {
    STAGES[usize::from(STAGE.load(Ordering::Relaxed)).min(STAGES.len() - 1)]
}

/// Armed for one call; disarmed when dropped (the call returned in time).
pub struct Watchdog {
    by: Watcher,
}

enum Watcher {
    /// The deadline with this id on the watch thread, and who answers the call.
    Thread(u64, Arc<Answerer>),
    /// The process's interval timer.
    Timer,
}

/// Who answers a call the watch thread watches: the call itself, when it returns in time, or
/// the watchdog at the deadline. Decided once, by whichever of the two claims it first (a
/// compare-and-swap), so that a call that returns just as its deadline passes is answered
/// once, never by both: a second answer would be read as the answer to the next request.
struct Answerer(AtomicU8);

const UNDECIDED: u8 = 0;
const BY_CALL: u8 = 1;
const BY_WATCHDOG: u8 = 2;

impl Answerer {
    fn claim(&self, by: u8) -> bool {
        self.0.compare_exchange(UNDECIDED, by, Ordering::AcqRel, Ordering::Acquire).is_ok() || self.0.load(Ordering::Acquire) == by
    }
}

/// A deadline being watched, and what to do at it.
struct Armed {
    id: u64,
    at: Instant,
    answerer: Arc<Answerer>,
    expired: Box<dyn FnOnce() + Send>,
}

/// One thread watches every armed deadline of the process: arming a call costs a lock and a
/// notification, not a thread (an out-of-process worker arms one per call).
struct Watch {
    armed: Mutex<(u64, Vec<Armed>)>,
    changed: Condvar,
}

static WATCH: OnceLock<&'static Watch> = OnceLock::new();

fn watch() -> &'static Watch {
    WATCH.get_or_init(|| {
        let watch: &'static Watch = Box::leak(Box::new(Watch { armed: Mutex::new((0, Vec::new())), changed: Condvar::new() }));
        std::thread::Builder::new().name("stockade-watchdog".into()).spawn(move || watch.run()).expect("the watchdog thread starts");
        watch
    })
}

impl Watch {
    fn run(&self) {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            if let Some(due) = armed.1.iter().position(|a| a.at <= now) {
                let due = armed.1.swap_remove(due);
                drop(armed);
                // The call returned and claimed its answer while this thread was on its way.
                if due.answerer.claim(BY_WATCHDOG) {
                    (due.expired)();
                }
                armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
                continue;
            }
            armed = match armed.1.iter().map(|a| a.at).min() {
                Some(next) => self.changed.wait_timeout(armed, next - now).unwrap_or_else(|p| p.into_inner()).0,
                None => self.changed.wait(armed).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

impl Watchdog {
    /// Calls `expired` on the watchdog thread after `after`, unless dropped first.
    pub fn arm(after: Duration, expired: impl FnOnce() + Send + 'static) -> Watchdog {
        let watch = watch();
        let mut armed = watch.armed.lock().unwrap_or_else(|p| p.into_inner());
        armed.0 += 1;
        let id = armed.0;
        let answerer = Arc::new(Answerer(AtomicU8::new(UNDECIDED)));
        // A deadline past what the clock can represent never comes.
        if let Some(at) = Instant::now().checked_add(after) {
            armed.1.push(Armed { id, at, answerer: Arc::clone(&answerer), expired: Box::new(expired) });
            watch.changed.notify_one();
        }
        Watchdog { by: Watcher::Thread(id, answerer) }
    }

    /// Disarms the watchdog for a call that has returned, and says who answers it: `true`, the
    /// caller; `false`, the watchdog, which claimed the call at its deadline first and is
    /// answering it (the caller must then not answer). A re-executing timer is answered by the
    /// process it starts, never beside this one: always `true`.
    pub fn disarm(self) -> bool {
        match &self.by {
            Watcher::Thread(_, answerer) => answerer.claim(BY_CALL),
            Watcher::Timer => true,
        }
    }

    /// [`Watchdog::disarm`] for a watchdog whose expiry answers and then ends the process (a
    /// worker's): returns when the call is the caller's to answer, and otherwise waits for the
    /// watchdog to end the process, without answering.
    pub fn disarm_or_wait_for_the_end(self) {
        if !self.disarm() {
            loop {
                std::thread::park();
            }
        }
    }

    /// For a process that makes one call: after `after`, the program is executed again, as
    /// `argv[0] argv[1] FLAG TIMED-OUT argv[2..]` (the subcommand stays first), with the
    /// call's [`TimedOut`] figures; `budget`'s peak and the stage are read when the time comes.
    /// `None` where that cannot be done (no `/proc/self/exe`, a deadline the timer cannot
    /// hold, a timer armed already): the caller arms [`Watchdog::arm`] instead.
    pub fn arm_reexec(after: Duration, flag: &str, stats: &Stats, limits: &Limits, budget: &MemoryBudget) -> Option<Watchdog> {
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::access(EXE.as_ptr(), libc::X_OK) } != 0 {
            return None;
        }
        let mut args: Vec<OsString> = std::env::args_os().collect();
        if args.len() < 2 {
            return None;
        }
        let rest = args.split_off(2);
        let timed_out = OsString::from(TimedOut::encode(stats, limits));
        // Each argument is leaked, with the rest of what the handler reads (see below).
        let mut argv: Vec<*const libc::c_char> = args
            .into_iter()
            .chain([flag.into(), timed_out])
            .chain(rest)
            .map(|arg| CString::new(arg.into_encoded_bytes()).ok().map(|arg| arg.into_raw().cast_const()))
            .collect::<Option<_>>()?;
        let timed_out = argv[3].cast_mut().cast::<u8>();
        argv.push(std::ptr::null());
        // SAFETY: reads this thread's signal mask into a sigset_t.
        let mask = unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut mask);
            mask
        };
        let reexec = Box::leak(Box::new(Reexec {
            argv: argv.into_boxed_slice(),
            timed_out,
            budget: budget.clone(),
            mask,
        }));
        // Never freed (a one-shot process arms once): the handler may be reading it on another
        // thread while the timer is disarmed.
        if REEXEC.compare_exchange(std::ptr::null_mut(), reexec, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return None;
        }
        // SAFETY: installs a handler that only writes bytes into memory prepared above and
        // calls execve and _exit, which are async-signal-safe; every signal is blocked while it
        // runs.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_deadline as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // A SIGALRM that is not the deadline's returns from the handler: the system call
            // it interrupted goes on.
            action.sa_flags = libc::SA_RESTART;
            libc::sigfillset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGALRM, &action, std::ptr::null_mut()) != 0 {
                REEXEC.store(std::ptr::null_mut(), Ordering::Release);
                return None;
            }
        }
        // A zero value would disarm the timer: a deadline already due fires at once.
        if !set_timer(after.max(Duration::from_micros(1))) {
            REEXEC.store(std::ptr::null_mut(), Ordering::Release);
            return None;
        }
        Some(Watchdog { by: Watcher::Timer })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        match self.by {
            Watcher::Thread(id, ref answerer) => {
                // Dropped without `disarm` (the caller unwinds, say): the call has returned all
                // the same, and the watchdog must not answer for it from now on.
                answerer.claim(BY_CALL);
                let watch = watch();
                watch.armed.lock().unwrap_or_else(|p| p.into_inner()).1.retain(|a| a.id != id);
            }
            Watcher::Timer => {
                // Disarmed for the handler first: a SIGALRM from now on is not this deadline's.
                REEXEC.store(std::ptr::null_mut(), Ordering::Release);
                set_timer(Duration::ZERO);
            }
        }
    }
}

/// Sets the process's one-shot interval timer to `after` (zero disarms it); false where the
/// deadline is past what it holds or the call fails.
fn set_timer(after: Duration) -> bool {
    let Ok(seconds) = libc::time_t::try_from(after.as_secs()) else { return false };
    let value = libc::timeval { tv_sec: seconds, tv_usec: after.subsec_micros().into() };
    let timer = libc::itimerval { it_interval: libc::timeval { tv_sec: 0, tv_usec: 0 }, it_value: value };
    // SAFETY: a valid itimerval; the old value is not asked for.
    unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) == 0 }
}

/// What the timer's handler executes: this process's program, whatever its path now.
const EXE: &CStr = c"/proc/self/exe";

/// What the timer's handler needs, prepared when it was armed.
struct Reexec {
    /// NULL-terminated; one entry points at `timed_out`.
    argv: Box<[*const libc::c_char]>,
    /// [`TimedOut`]'s encoding, NUL-terminated: its first [`PEAK_DIGITS`] + 1 bytes are
    /// written by the handler.
    timed_out: *mut u8,
    budget: MemoryBudget,
    mask: libc::sigset_t,
}

/// Set while a call is armed; a SIGALRM outside one is not the deadline's.
static REEXEC: AtomicPtr<Reexec> = AtomicPtr::new(std::ptr::null_mut());

unsafe extern "C" {
    static environ: *const *const libc::c_char;
}

extern "C" fn on_deadline(_signal: libc::c_int) {
    let reexec = REEXEC.load(Ordering::Acquire);
    if reexec.is_null() {
        return;
    }
    // SAFETY: never freed; the handler is the only writer of `timed_out` from here on, and
    // only atomics are read. The signal mask survives execve: the new process starts with the
    // mask this one had when the timer was armed, not with the handler's, which blocks every
    // signal.
    unsafe {
        let reexec = &*reexec;
        let figures = std::slice::from_raw_parts_mut(reexec.timed_out, PEAK_DIGITS + 1);
        write_digits(&mut figures[..PEAK_DIGITS], reexec.budget.peak());
        figures[PEAK_DIGITS] = b'0' + STAGE.load(Ordering::Relaxed);
        libc::pthread_sigmask(libc::SIG_SETMASK, &reexec.mask, std::ptr::null_mut());
        libc::execve(EXE.as_ptr(), reexec.argv.as_ptr(), environ);
    }
    const FAILED: &[u8] = b"error: the call ran past its timeout, and the process watchdog could not report it\n";
    // SAFETY: write and _exit are async-signal-safe.
    unsafe {
        libc::write(2, FAILED.as_ptr().cast(), FAILED.len());
        libc::_exit(1);
    }
}

/// `n` in decimal, right-aligned and zero-padded to the slice's width (which holds any u64).
fn write_digits(out: &mut [u8], mut n: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Digits of the peak in [`TimedOut`]'s encoding: any u64.
const PEAK_DIGITS: usize = 20;

/// The figures of a call the timer ended, as the re-executed process receives them: the peak
/// memory and the stage, written by the handler, then the rest of the call's [`Stats`] and
/// the limits it ran under, known when the timer was armed (the process that reports reads
/// nothing again: a policy given as a pipe could not be).
#[derive(Debug, PartialEq)]
pub struct TimedOut {
    pub stats: Stats,
    pub stage: Stage,
    pub limits: Limits,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KnownWhenArmed<S, L> {
    stats: S,
    limits: L,
}

impl TimedOut {
    fn encode(stats: &Stats, limits: &Limits) -> String {
        let json = serde_json::to_string(&KnownWhenArmed { stats, limits }).expect("stats and limits serialize");
        format!("{}0{json}", "0".repeat(PEAK_DIGITS))
    }

    /// `None` for text this module did not write.
    pub fn decode(text: &str) -> Option<TimedOut> {
        let (peak, rest) = text.split_at_checked(PEAK_DIGITS)?;
        let (stage, json) = rest.split_at_checked(1)?;
        let KnownWhenArmed::<Stats, Limits> { mut stats, limits } = serde_json::from_str(json).ok()?;
        stats.peak_memory_bytes = peak.parse().ok()?;
        let stage = *STAGES.get(usize::from(stage.parse::<u8>().ok()?))?;
        Some(TimedOut { stats, stage, limits })
    }

    /// The `timeout` outcome it reports.
    pub fn outcome(&self) -> Outcome {
        let timeout = self.limits.timeout.get();
        let message = format!("the call ran past its timeout of {timeout:?}: ended by the process watchdog (the code carries no epoch checks)");
        Outcome::failed(Code::Timeout, message).with_stats(self.stats.clone()).at(self.stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_the_handler_writes_decode_as_they_were() {
        let stats = Stats { compile_ns: 1234, input_bytes: 5, wall_ns: 7, compiler: Some(crate::policy::Compiler::Winch), module_from: Some(super::super::cache::Source::Disk), ..Stats::default() };
        let text = crate::policy::DEFAULT_POLICY_TOML.replacen("timeout = \"5s\"", "timeout = \"300ms\"", 1);
        let limits = crate::Policy::from_toml(&text, crate::document::Origin::Builtin("test")).unwrap().limits;
        assert_eq!(limits.timeout.get(), Duration::from_millis(300), "the policy was changed");
        let mut encoded = TimedOut::encode(&stats, &limits).into_bytes();
        write_digits(&mut encoded[..PEAK_DIGITS], u64::MAX);
        encoded[PEAK_DIGITS] = b'2';
        let decoded = TimedOut::decode(std::str::from_utf8(&encoded).unwrap()).unwrap();
        assert_eq!(decoded, TimedOut { stats: Stats { peak_memory_bytes: u64::MAX, ..stats.clone() }, stage: Stage::Call, limits: limits.clone() });
        // As armed, before the handler writes: a peak of 0 at the load stage.
        let armed = TimedOut::decode(&TimedOut::encode(&stats, &limits)).unwrap();
        assert_eq!((armed.stats.peak_memory_bytes, armed.stage), (0, Stage::Load));
        for garbage in ["", "12", &"9".repeat(21), &format!("{}3{{}}", "0".repeat(20)), &format!("{}1not json", "0".repeat(20))] {
            assert_eq!(TimedOut::decode(garbage), None, "{garbage}");
        }
    }
}
