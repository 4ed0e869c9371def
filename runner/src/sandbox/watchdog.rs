//! The deadline where the process is its boundary: the code carries no epoch checks (it runs at
//! the speed of uninstrumented wasmtime), and a watchdog thread ends the process at the call's
//! deadline instead. Host calls still end at the deadline by themselves; the watchdog is for the
//! wasm code, which nothing else can stop without instrumentation.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::time::Duration;

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
    disarm: Option<mpsc::Sender<()>>,
}

impl Watchdog {
    /// Calls `expired` on a thread of its own after `after`, unless dropped first.
    pub fn arm(after: Duration, expired: impl FnOnce() + Send + 'static) -> Watchdog {
        let (disarm, disarmed) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("stockade-watchdog".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = disarmed.recv_timeout(after) {
                    expired();
                }
            })
            .expect("the watchdog thread starts");
        Watchdog { disarm: Some(disarm) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(disarm) = self.disarm.take() {
            let _ = disarm.send(());
        }
    }
}
