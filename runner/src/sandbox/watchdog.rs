//! The deadline where the process is its boundary: the code carries no epoch checks (it runs at
//! the speed of uninstrumented wasmtime), and a watchdog thread ends the process at the call's
//! deadline instead. Host calls still end at the deadline by themselves; the watchdog is for the
//! wasm code, which nothing else can stop without instrumentation.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::outcome::Stage;

/// How long after a call's deadline the watchdog fires: a host call (WASI, HTTP, a host
/// function) that is waiting at the deadline gives up by itself and reports with its full
/// figures; the promise is the timeout plus 100 ms.
pub const GRACE: Duration = Duration::from_millis(20);

/// The stage of the call in flight in this process (a disposable process makes one call at a
/// time), for the watchdog's outcome.
static STAGE: AtomicU8 = AtomicU8::new(0);

pub(super) fn enter(stage: Stage) {
    STAGE.store(
        match stage {
            Stage::Load => 0,
            Stage::Instantiate => 1,
            Stage::Call => 2,
        },
        Ordering::Relaxed,
    );
}

/// Where the call in flight was when the watchdog fired.
pub fn stage_in_flight() -> Stage {
    match STAGE.load(Ordering::Relaxed) {
        0 => Stage::Load,
        1 => Stage::Instantiate,
        _ => Stage::Call,
    }
}

/// Armed for one call; disarmed when dropped (the call returned in time).
pub struct Watchdog {
    id: u64,
}

/// A deadline being watched, and what to do at it.
struct Armed {
    id: u64,
    at: Instant,
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
                let expired = armed.1.swap_remove(due).expired;
                drop(armed);
                expired();
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
        // A deadline past what the clock can represent never comes.
        if let Some(at) = Instant::now().checked_add(after) {
            armed.1.push(Armed { id, at, expired: Box::new(expired) });
            watch.changed.notify_one();
        }
        Watchdog { id }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let watch = watch();
        watch.armed.lock().unwrap_or_else(|p| p.into_inner()).1.retain(|a| a.id != self.id);
    }
}
