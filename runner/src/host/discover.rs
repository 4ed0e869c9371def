//! Finding the plugins of a directory and vetting each, so that the planner gets candidates
//! and refusals: one loader for `stockade plan` and [`super::Host`].

use std::path::{Path, PathBuf};

use crate::code::Severity;
use crate::source::PluginFile;
use crate::vet::{self, VetOptions, Vetting};

use super::plan::{Candidate, Problem, Refused};

/// The module files of a plugin directory: each subdirectory holding `plugin.wasm` or
/// `plugin.wat` (with `plugin.toml` beside it, or an embedded manifest), and each `.wasm` or
/// `.wat` file directly in it (with an embedded manifest). Sorted, so that a plan is the same
/// on every machine.
pub fn plugin_paths(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if let Some(module) = ["plugin.wasm", "plugin.wat"].iter().map(|n| path.join(n)).find(|p| p.is_file()) {
                found.push(module);
            }
        } else if path.extension().is_some_and(|e| e == "wasm" || e == "wat") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// A plugin that vetting passed, with what it was vetted from.
pub struct Vetted {
    pub file: PluginFile,
    pub vetting: Vetting,
}

/// What vetting a set of plugins came to: the candidates for the planner, each with what it
/// was vetted from, and the refusals.
pub type VettedSet = (Vec<(Candidate, Vetted)>, Vec<Refused>);

/// Vets every plugin as `options` say (the host's policy and version): those that pass (and
/// have a manifest) are candidates, the others refusals with their codes, a file that cannot be
/// read among them.
pub fn vet_all(paths: &[PathBuf], options: &VetOptions<'_>) -> VettedSet {
    let mut candidates = Vec::new();
    let mut refused = Vec::new();
    for path in paths {
        let origin = path.display().to_string();
        // A file of the set that cannot be read as a plugin (a FIFO, a device, a link loop, no
        // permission) is refused on its own; the rest of the set is planned.
        let vetted = PluginFile::read_to_report(path, options.policy.limits.module_size.get()).and_then(|file| Ok((vet::vet(&file, options)?, file)));
        let (vetting, file) = match vetted {
            Ok(vetted) => vetted,
            Err(error) => {
                let name = fallback_name(path);
                // Escaped where it is shown, as every problem's message is.
                let message = format!("`{name}` ({origin}) cannot be read as a plugin: {}", error.source);
                refused.push(Refused { name: name.clone(), problem: Problem { code: crate::code::Code::PluginUnreadable, message, plugins: vec![name] } });
                continue;
            }
        };
        let name = vetting.manifest.manifest().map(|m| m.name.clone()).unwrap_or_else(|| fallback_name(path));
        if let Some(problem) = refusal(&name, &origin, &vetting) {
            refused.push(Refused { name, problem });
            continue;
        }
        match vetting.manifest.manifest().cloned() {
            Some(manifest) => candidates.push((Candidate { origin, manifest }, Vetted { file, vetting })),
            None => refused.push(Refused {
                name: name.clone(),
                problem: Problem {
                    code: crate::code::Code::ManifestInvalid,
                    message: format!("`{name}` ({origin}) has no manifest: a plugin loaded with others names itself and its version in one"),
                    plugins: vec![name],
                },
            }),
        }
    }
    (candidates, refused)
}

/// Why vetting refused the plugin `name` (from `origin`), if it did: one problem with the first
/// error's code, naming every error code. The host's loading and reloading both say it so.
pub fn refusal(name: &str, origin: &str, vetting: &Vetting) -> Option<Problem> {
    let errors: Vec<_> = vetting.findings.iter().filter(|f| f.severity == Severity::Error).collect();
    let first = errors.first()?;
    let codes: Vec<String> = errors.iter().map(|f| format!("`{}`", f.code)).collect();
    Some(Problem {
        code: first.code,
        message: format!("`{name}` ({origin}) was refused by vetting: {}; first: {}", codes.join(", "), first.message),
        plugins: vec![name.to_string()],
    })
}

/// A plugin without a manifest is named after its directory (`name/plugin.wasm`) or its file.
fn fallback_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if stem == "plugin"
        && let Some(dir) = path.parent().and_then(Path::file_name)
    {
        return dir.to_string_lossy().into_owned();
    }
    stem
}
