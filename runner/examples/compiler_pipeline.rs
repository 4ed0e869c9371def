//! A compiler pipeline on `stockade::Host`: parse → optimizers → linters → code generator,
//! each stage a plugin built by an ordinary toolchain (Rust with extism-pdk; the linter in
//! AssemblyScript with @extism/as-pdk), found by the events its manifest subscribes to, and the
//! optimizer hot-reloaded to a new version while four threads keep compiling.
//!
//!     cargo run --release --example compiler_pipeline
//!
//! The plugins' sources and the script that rebuilds them are in examples/compiler-pipeline/.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use stockade::Policy;
use stockade::host::{CallError, Host};

/// The program every run compiles: `total = a * 0` is what the second optimizer folds.
pub const SOURCE: &str = "a = 1 + 2\ntotal = a * 0\nanswer = 6 * 7\n";

/// One compilation: the code and the linters' warnings.
pub fn compile(host: &Host, source: &str) -> Result<(String, String), CallError> {
    let stage = |event: &str| host.subscribers(event);
    let mut program = String::new();
    for (plugin, handler) in stage("parse") {
        program = host.call_str(&plugin, &handler, source)?;
    }
    for (plugin, handler) in stage("optimize") {
        program = host.call_str(&plugin, &handler, &program)?;
    }
    let mut warnings = String::new();
    for (plugin, handler) in stage("lint") {
        warnings.push_str(&host.call_str(&plugin, &handler, &program)?);
    }
    let mut code = String::new();
    for (plugin, handler) in stage("codegen") {
        code = host.call_str(&plugin, &handler, &program)?;
    }
    Ok((code, warnings))
}

/// Loads the pipeline from `dir`, compiles, then reloads the optimizer to version 2 while four
/// threads compile without pause. Returns the compilations made during the reload and the code
/// compiled after it.
pub fn run(dir: &Path, say: &mut dyn FnMut(String)) -> Result<(usize, String), Box<dyn std::error::Error>> {
    let host = Host::builder(Policy::builtin_default()).build()?;
    let report = host.load_dir(&dir.join("plugins"))?;
    for problem in &report.problems {
        say(format!("not loaded: {}: {}", problem.code, problem.message));
    }
    say(format!("loaded, in order: {}", report.loaded.join(", ")));
    let (code, warnings) = compile(&host, SOURCE)?;
    say(format!("code:\n{code}warnings:\n{warnings}"));

    let v2 = std::fs::read(dir.join("constfold-v2.wasm"))?;
    let stop = AtomicBool::new(false);
    let compiled = AtomicUsize::new(0);
    std::thread::scope(|s| -> Result<(), Box<dyn std::error::Error>> {
        for _ in 0..4 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    compile(&host, SOURCE).expect("no compilation fails across the reload");
                    compiled.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_millis(200));
        let before = host.plugin("constfold").map(|p| p.manifest().version.to_string()).unwrap_or_default();
        host.reload("constfold", v2)?;
        let after = host.plugin("constfold").map(|p| p.manifest().version.to_string()).unwrap_or_default();
        say(format!("reloaded constfold {before} -> {after} while compiling"));
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        Ok(())
    })?;
    let (code, _) = compile(&host, SOURCE)?;
    say(format!("{} compilations ran across the reload; code now:\n{code}", compiled.load(Ordering::Relaxed)));
    Ok((compiled.load(Ordering::Relaxed), code))
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/compiler-pipeline");
    run(&dir, &mut |line| println!("{line}"))?;
    Ok(())
}
