//! The deadline where the process is its boundary: the code carries no epoch checks (it runs at
//! the speed of uninstrumented wasmtime), and a watchdog ends the process at the call's
//! deadline instead. Host calls still end at the deadline by themselves; the watchdog is for the
//! wasm code, which nothing else can stop without instrumentation.
//!
//! One thread watches every deadline of the process, and runs the caller's closure there when
//! one passes; the closure answers for the call and ends the process. It is a thread, not a
//! timer signal: a signal handler may do almost nothing (the call it interrupts may hold the
//! allocator's lock), so it could not report, only start another process to do so.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::outcome::{Outcome, Stage, Stats};
use crate::code::Code;

/// How long after a call's deadline the watchdog fires: a host call (WASI, HTTP, a host
/// function) that is waiting at the deadline gives up by itself and reports with its full
/// figures; the promise is the timeout plus 100 ms.
pub const GRACE: Duration = Duration::from_millis(20);

/// The stage of the call in flight in this process (a disposable process makes one call at a
/// time), for the watchdog's outcome.
static STAGE: AtomicU8 = AtomicU8::new(0);

/// The stages in the order a call passes them; a stage's number in [`STAGE`] is its index.
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
    /// The deadline's id on the watch thread.
    id: u64,
    answerer: Arc<Answerer>,
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
        Watchdog { id, answerer }
    }

    /// Disarms the watchdog for a call that has returned, and says who answers it: `true`, the
    /// caller; `false`, the watchdog, which claimed the call at its deadline first and is
    /// answering it (the caller must then not answer).
    pub fn disarm(self) -> bool {
        self.answerer.claim(BY_CALL)
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
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Dropped without `disarm` (the caller unwinds, say): the call has returned all the
        // same, and the watchdog must not answer for it from now on.
        self.answerer.claim(BY_CALL);
        watch().armed.lock().unwrap_or_else(|p| p.into_inner()).1.retain(|a| a.id != self.id);
    }
}

/// The `timeout` outcome of a call the watchdog ended: its figures (the peak memory read when
/// the deadline passed) and the stage it had reached.
pub(super) fn timeout_outcome(stats: Stats, stage: Stage, timeout: std::time::Duration) -> Outcome {
    let message = format!("the call ran past its timeout of {timeout:?}: ended by the process watchdog (the code carries no epoch checks)");
    Outcome::failed(Code::Timeout, message).with_stats(stats).at(stage)
}
