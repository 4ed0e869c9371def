//! Hot reload from changed files: the plugins' directories watched (notify), changes debounced,
//! and a module reloaded only once its content hash holds still across the debounce, so that a
//! file caught half-written is not loaded (and if it were, vetting would refuse it and the old
//! version would stay).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::Watcher as _;

use super::{Host, HostError, ReloadError};

/// What one reload triggered by a file change came to.
#[derive(Debug)]
pub struct Reloaded {
    pub plugin: String,
    pub result: Result<(), ReloadError>,
}

/// Watching; stops when dropped.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
    reloads: mpsc::Receiver<Reloaded>,
    stop: mpsc::Sender<()>,
}

impl Watch {
    /// The next reload the watch made, waiting up to `timeout`.
    pub fn next_reload(&self, timeout: Duration) -> Option<Reloaded> {
        self.reloads.recv_timeout(timeout).ok()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

impl Host {
    /// Watches the files of every loaded plugin (its module and the `plugin.toml` beside it)
    /// and reloads a plugin `debounce` after its files last changed, once its module's content
    /// hash is the same at both ends of a further `debounce`. Each reload's result is logged
    /// (tracing) and given to [`Watch::next_reload`].
    pub fn watch(&self, debounce: Duration) -> Result<Watch, HostError> {
        let (events, changes) = mpsc::channel::<notify::Result<notify::Event>>();
        let mut watcher = notify::recommended_watcher(events).map_err(|e| watch_error(Path::new("."), e))?;
        let mut watched: BTreeMap<PathBuf, String> = BTreeMap::new();
        let mut dirs = std::collections::BTreeSet::new();
        for (name, loaded) in self.current() {
            let module = absolute(&loaded.path);
            if let Some(dir) = module.parent() {
                watched.insert(dir.join(crate::manifest::MANIFEST_FILE), name.clone());
                dirs.insert(dir.to_path_buf());
            }
            watched.insert(module, name);
        }
        for dir in &dirs {
            watcher.watch(dir, notify::RecursiveMode::NonRecursive).map_err(|e| watch_error(dir, e))?;
        }
        let (reported, reloads) = mpsc::channel();
        let (stop, stopped) = mpsc::channel();
        let host = self.clone();
        std::thread::Builder::new()
            .name("stockade-watch".into())
            .spawn(move || {
                let mut pending: BTreeMap<String, Instant> = BTreeMap::new();
                loop {
                    if stopped.try_recv().is_ok() {
                        return;
                    }
                    match changes.recv_timeout(debounce / 4) {
                        Ok(Ok(event)) => {
                            for path in &event.paths {
                                if let Some(name) = watched.get(&absolute(path)) {
                                    pending.insert(name.clone(), Instant::now());
                                }
                            }
                        }
                        Ok(Err(error)) => tracing::warn!("watching plugin files: {error}"),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    let due: Vec<String> = pending.iter().filter(|(_, at)| at.elapsed() >= debounce).map(|(n, _)| n.clone()).collect();
                    for name in due {
                        pending.remove(&name);
                        let Some(loaded) = host.plugin(&name) else { continue };
                        if !holds_still(&loaded.path, debounce) {
                            // Still being written: try again once it settles.
                            pending.insert(name, Instant::now());
                            continue;
                        }
                        let result = host.reload_file(&name, None);
                        match &result {
                            Ok(()) => tracing::info!(plugin.name = %name, "reloaded from its changed file"),
                            Err(error) => tracing::warn!(plugin.name = %name, "not reloaded, the old version stays: {error}"),
                        }
                        let _ = reported.send(Reloaded { plugin: name, result });
                    }
                }
            })
            .map_err(|e| HostError::Directory { path: "the watch thread".into(), error: e })?;
        Ok(Watch { _watcher: watcher, reloads, stop })
    }
}

/// Whether the file's SHA-256 is the same before and after `wait` (and it can be read).
fn holds_still(path: &Path, wait: Duration) -> bool {
    let digest = |path: &Path| {
        use sha2::Digest;
        crate::source::read_regular(path, crate::source::MAX_MODULE_BYTES).ok().map(sha2::Sha256::digest)
    };
    let before = digest(path);
    std::thread::sleep(wait);
    before.is_some() && before == digest(path)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn watch_error(path: &Path, error: notify::Error) -> HostError {
    HostError::Directory { path: path.display().to_string(), error: std::io::Error::other(error.to_string()) }
}
