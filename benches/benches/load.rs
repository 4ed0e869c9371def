//! Loading at scale and from cold, side by side in one run:
//!
//! - `compile`: the extism-pdk guest compiled cold by Cranelift and by Winch;
//! - `run-process`: `stockade run` as a whole process, cold (`--no-cache`, the default compiler
//!   for one-shot runs) and cached, beside the extism crate's host doing the same
//!   (`extism-run`, built from adapters/extism: `cargo build --release -p
//!   stockade-extism-adapter --bin extism-run`; skipped when it is not built);
//! - `conform`: `stockade conform` on generated trivial cases (scripts/generate-trivial-cases.py)
//!   with `--jobs 1` and `--jobs 2`, per case.
//!
//!     cargo build --release -p stockade && cargo bench -p stockade-benches --bench load

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use stockade::Policy;
use stockade::policy::Compiler;
use stockade::sandbox::{Allocation, Load, Sandbox, SandboxOptions, forget_compiled_modules};
use stockade::source::PluginFile;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const GREET: &str = "corpus/guests/extism-greet/extism-greet.wasm";

fn compile(c: &mut Criterion) {
    let policy = Policy::builtin_default();
    let file = PluginFile::read(&root().join(GREET)).unwrap();
    let mut group = c.benchmark_group("compile");
    group.sample_size(20).measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(1));
    for (id, compiler) in [("cranelift", Compiler::Cranelift), ("winch", Compiler::Winch)] {
        let options = SandboxOptions { allocation: Allocation::OnDemand, compiler: Some(compiler), runs_once: true, ..SandboxOptions::default() };
        let sandbox = Sandbox::with_options(&policy, &options).unwrap();
        group.bench_function(id, |b| {
            b.iter(|| {
                forget_compiled_modules();
                match sandbox.load(&file, &Default::default()).unwrap() {
                    Load::Ready(plugin) => assert_eq!(plugin.compiler, compiler),
                    _ => panic!("the guest loads"),
                }
            })
        });
    }
    group.finish();
}

/// The release binaries the whole-process benches run, if they are built.
fn binary(name: &str) -> Option<PathBuf> {
    let path = root().join("target/release").join(name);
    path.exists().then_some(path)
}

fn run_quietly(command: &mut Command) {
    let status = command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().unwrap();
    assert!(status.success(), "{command:?}");
}

fn run_process(c: &mut Criterion) {
    let Some(stockade) = binary("stockade") else {
        eprintln!("run-process: build target/release/stockade first");
        return;
    };
    let greet = root().join(GREET);
    let cache = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("run-process");
    group.sample_size(20).measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(1));
    let stockade_run = |extra: &[&str]| {
        let mut command = Command::new(&stockade);
        command.arg("run").arg(&greet).args(["--call", "greet", "--input", "bench"]).args(extra).env("STOCKADE_CACHE_DIR", cache.path());
        command
    };
    group.bench_function("stockade/cold", |b| b.iter(|| run_quietly(&mut stockade_run(&["--no-cache"]))));
    run_quietly(&mut stockade_run(&["--compiler", "cranelift"]));
    group.bench_function("stockade/cached", |b| b.iter(|| run_quietly(&mut stockade_run(&[]))));
    if let Some(extism) = binary("extism-run") {
        let extism_run = |extra: &[&str]| {
            let mut command = Command::new(&extism);
            command.arg(&greet).args(["greet", "bench"]).args(extra).env("XDG_CACHE_HOME", cache.path());
            command
        };
        group.bench_function("extism/cold", |b| b.iter(|| run_quietly(&mut extism_run(&["--no-cache"]))));
        run_quietly(&mut extism_run(&[]));
        group.bench_function("extism/cached", |b| b.iter(|| run_quietly(&mut extism_run(&[]))));
    } else {
        eprintln!("run-process: build target/release/extism-run for the extism figures");
    }
    group.finish();
}

fn conform(c: &mut Criterion) {
    let Some(stockade) = binary("stockade") else { return };
    const CASES: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let generated = Command::new("python3")
        .arg(root().join("scripts/generate-trivial-cases.py"))
        .arg(CASES.to_string())
        .arg(dir.path().join("corpus"))
        .status()
        .unwrap();
    assert!(generated.success());
    let mut group = c.benchmark_group("conform");
    group.sample_size(10).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(CASES));
    for jobs in ["1", "2"] {
        group.bench_function(format!("jobs-{jobs}"), |b| {
            b.iter_custom(|iterations| {
                let mut spent = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    run_quietly(
                        Command::new(&stockade)
                            .arg("conform")
                            .arg("--corpus")
                            .arg(dir.path().join("corpus"))
                            .args(["--jobs", jobs, "--report-dir"])
                            .arg(dir.path().join("reports")),
                    );
                    spent += started.elapsed();
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(load_benches, compile, run_process, conform);
criterion_main!(load_benches);
