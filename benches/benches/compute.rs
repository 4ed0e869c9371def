//! Compute inside the sandbox against native, whole process, side by side in one run: two
//! kernels from one source (corpus/guests/compute/src/kernels.rs), compiled natively into this
//! bench and to wasm as an extism-pdk plugin (corpus/guests/compute/compute.wasm):
//!
//! - `mandel`: a numeric loop (Mandelbrot, 1200², f64);
//! - `optimize`: parse → fold constants → serialize of a JSON AST (serde_json), 200 rounds over
//!   1,000 statements.
//!
//! Each is run as a whole process: `native` (this binary, starting itself to run the kernel),
//! `stockade run` with the deadline by process (no epoch checks), with epochs, and with fuel,
//! and the extism crate's host (`extism-run`); stockade's module cached (a warm-up run fills
//! the cache first). Two groups in this process split those figures: `compute-in-process` (the
//! plugin's call against the native function) and `compute-core-module` (the same kernels as a
//! plain core module, corpus/guests/compute-core, under raw wasmtime and in the sandbox); a
//! third, `compute-host`, calls the plugin through the host library in process and out of
//! process.
//!
//!     cargo build --release -p stockade && cargo build --release -p stockade-extism-adapter --bin extism-run
//!     cargo bench -p stockade-benches --bench compute

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group};

#[allow(dead_code)]
mod kernels {
    include!("../../corpus/guests/compute/src/kernels.rs");
}

const NATIVE: &str = "STOCKADE_COMPUTE_NATIVE";
const MANDEL_SIZE: u32 = 1200;
const OPTIMIZE_ROUNDS: u32 = 200;
// Small enough to pass to extism-run as one argument (Linux caps one at 128 KiB).
const OPTIMIZE_STATEMENTS: u32 = 1000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn binary(name: &str) -> Option<PathBuf> {
    let path = root().join("target/release").join(name);
    path.exists().then_some(path)
}

fn quietly(command: &mut Command) {
    let status = command.stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(status.success() || command.get_program().to_string_lossy().ends_with("extism-run"), "{command:?}");
}

fn compute(c: &mut Criterion) {
    let plugin = root().join("corpus/guests/compute/compute.wasm");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("optimize.txt");
    std::fs::write(&input, format!("{OPTIMIZE_ROUNDS}\n{}", kernels::sample_ast(OPTIMIZE_STATEMENTS))).unwrap();
    let policy = |name: &str, engine: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, format!("[policy]\nname = \"{name}\"\n[limits]\ntimeout = \"60s\"\ninput = \"64MiB\"\noutput = \"64MiB\"\nmemory = \"1GiB\"\n{engine}")).unwrap();
        path
    };
    let policies = [
        ("stockade-process", policy("process", "[engine]\ndeadline = \"process\"\ncompiler = \"cranelift\"\n")),
        ("stockade-epoch", policy("epoch", "[engine]\ndeadline = \"epoch\"\ncompiler = \"cranelift\"\n")),
        ("stockade-fuel", policy("fuel", "fuel = 100_000_000_000\n[engine]\ncompiler = \"cranelift\"\n").to_path_buf()),
    ];
    // Fuel goes in [limits]: rewrite that policy with it there.
    std::fs::write(&policies[2].1, "[policy]\nname = \"fuel\"\n[limits]\ntimeout = \"60s\"\ninput = \"64MiB\"\noutput = \"64MiB\"\nmemory = \"1GiB\"\nfuel = 100_000_000_000\n[engine]\ncompiler = \"cranelift\"\n").unwrap();
    let cache = dir.path().join("cache");
    let kernels: [(&str, String); 2] = [("mandel", MANDEL_SIZE.to_string()), ("optimize", format!("@{}", input.display()))];
    let mut group = c.benchmark_group("compute");
    group.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    for (kernel, argument) in &kernels {
        group.bench_function(format!("{kernel}/native"), |b| {
            b.iter(|| quietly(Command::new(std::env::current_exe().unwrap()).env(NATIVE, kernel).arg(&input)))
        });
        let Some(stockade) = binary("stockade") else {
            eprintln!("compute: build target/release/stockade for the sandbox figures");
            continue;
        };
        for (id, policy) in &policies {
            let run = || {
                let mut command = Command::new(&stockade);
                command.args(["run"]).arg(&plugin).args(["--call", kernel, "--input", argument, "--policy"]).arg(policy).env("STOCKADE_CACHE_DIR", &cache);
                command
            };
            quietly(&mut run());
            group.bench_function(format!("{kernel}/{id}"), |b| b.iter(|| quietly(&mut run())));
        }
        match binary("extism-run") {
            Some(extism) => {
                let extism_input = if kernel == &"mandel" { argument.clone() } else { std::fs::read_to_string(&input).unwrap() };
                let run = || {
                    let mut command = Command::new(&extism);
                    command.arg(&plugin).arg(kernel).arg(&extism_input);
                    command
                };
                quietly(&mut run());
                group.bench_function(format!("{kernel}/extism"), |b| b.iter(|| quietly(&mut run())));
            }
            None => eprintln!("compute: build target/release/extism-run for the extism figures"),
        }
    }
    group.finish();
}

/// The kernels alone, in this process: the native function against the plugin's call in a
/// sandbox compiled without epoch checks (what a run's process or an out-of-process worker
/// runs), so that the whole-process figures can be split into the code and the process.
fn in_process(c: &mut Criterion) {
    use stockade::sandbox::{Input, Load, LoadOptions, Sandbox, SandboxOptions};
    let policy = stockade::Policy::from_toml(
        "[policy]\nname = \"in-process\"\n[limits]\ntimeout = \"60s\"\ninput = \"64MiB\"\noutput = \"64MiB\"\nmemory = \"1GiB\"\n[engine]\ndeadline = \"process\"\ncompiler = \"cranelift\"\n",
        stockade::document::Origin::Builtin("the bench policy"),
    )
    .unwrap();
    // This bench process may be ended at a deadline: no call here comes near one.
    let options = SandboxOptions { disposable_process: true, ..SandboxOptions::default() };
    let sandbox = Sandbox::with_options(&policy, &options).unwrap();
    let file = stockade::source::PluginFile::read(&root().join("corpus/guests/compute/compute.wasm")).unwrap();
    let Load::Ready(plugin) = sandbox.load(&file, &LoadOptions::default()).unwrap() else { panic!("the compute plugin loads") };
    assert!(plugin.deadline_by_process());
    let mut group = c.benchmark_group("compute-in-process");
    group.sample_size(10).measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(1));
    group.bench_function("mandel/native", |b| b.iter(|| kernels::mandelbrot(MANDEL_SIZE)));
    let input = Input { bytes: MANDEL_SIZE.to_string().into_bytes(), args: Vec::new() };
    group.bench_function("mandel/sandbox-no-epochs", |b| b.iter(|| assert_eq!(plugin.call("mandel", &input).code, stockade::Code::Ok)));
    let ast = kernels::sample_ast(OPTIMIZE_STATEMENTS);
    group.bench_function("optimize/native", |b| b.iter(|| kernels::optimize_rounds(&ast, OPTIMIZE_ROUNDS)));
    let input = Input { bytes: format!("{OPTIMIZE_ROUNDS}\n{ast}").into_bytes(), args: Vec::new() };
    group.bench_function("optimize/sandbox-no-epochs", |b| b.iter(|| assert_eq!(plugin.call("optimize", &input).code, stockade::Code::Ok)));
    group.finish();
}

/// The same core module (corpus/guests/compute-core: the kernels with no plugin ABI) under raw
/// wasmtime 48 with its default configuration (Cranelift, no epoch checks, no fuel) and in
/// Stockade's sandbox, with and without epoch checks, beside the native function: how close the
/// sandbox's code is to raw wasmtime's, and wasmtime's to LLVM's.
fn core_module(c: &mut Criterion) {
    use stockade::sandbox::{Input, Load, LoadOptions, Sandbox, SandboxOptions};
    let path = root().join("corpus/guests/compute-core/compute-core.wasm");
    let bytes = std::fs::read(&path).unwrap();
    let engine = wasmtime::Engine::default();
    let module = wasmtime::Module::new(&engine, &bytes).unwrap();
    let mut store = wasmtime::Store::new(&engine, ());
    let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
    let mandel = instance.get_typed_func::<u32, u64>(&mut store, "mandel").unwrap();
    let optimize = instance.get_typed_func::<(u32, u32), u64>(&mut store, "optimize").unwrap();

    let sandbox = |deadline: &str| {
        let policy = stockade::Policy::from_toml(
            &format!("[policy]\nname = \"{deadline}\"\n[limits]\ntimeout = \"60s\"\nmemory = \"1GiB\"\n[engine]\ndeadline = \"{deadline}\"\ncompiler = \"cranelift\"\n"),
            stockade::document::Origin::Builtin("the bench policy"),
        )
        .unwrap();
        // This bench process may be ended at a deadline: no call here comes near one.
        let options = SandboxOptions { disposable_process: true, ..SandboxOptions::default() };
        let file = stockade::source::PluginFile::new(&path, bytes.clone());
        let Load::Ready(plugin) = Sandbox::with_options(&policy, &options).unwrap().load(&file, &LoadOptions::default()).unwrap() else {
            panic!("the core module loads")
        };
        assert_eq!(plugin.deadline_by_process(), deadline == "process");
        plugin
    };
    let (no_epochs, epochs) = (sandbox("process"), sandbox("epoch"));
    let call = |plugin: &stockade::sandbox::Plugin, function: &str, args: &[u32]| {
        let input = Input { bytes: Vec::new(), args: args.iter().map(u32::to_string).collect() };
        let outcome = plugin.call(function, &input);
        assert_eq!(outcome.code, stockade::Code::Ok, "{outcome:?}");
    };

    let mut group = c.benchmark_group("compute-core-module");
    group.sample_size(10).measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(1));
    let expected = kernels::mandelbrot(MANDEL_SIZE);
    assert_eq!(mandel.call(&mut store, MANDEL_SIZE).unwrap(), expected, "the same kernel");
    group.bench_function("mandel/native", |b| b.iter(|| kernels::mandelbrot(MANDEL_SIZE)));
    group.bench_function("mandel/raw-wasmtime", |b| b.iter(|| mandel.call(&mut store, MANDEL_SIZE).unwrap()));
    group.bench_function("mandel/sandbox-no-epochs", |b| b.iter(|| call(&no_epochs, "mandel", &[MANDEL_SIZE])));
    group.bench_function("mandel/sandbox-epochs", |b| b.iter(|| call(&epochs, "mandel", &[MANDEL_SIZE])));
    let native = || kernels::optimize_rounds(&kernels::sample_ast(OPTIMIZE_STATEMENTS), OPTIMIZE_ROUNDS).len() as u64;
    assert_eq!(optimize.call(&mut store, (OPTIMIZE_STATEMENTS, OPTIMIZE_ROUNDS)).unwrap(), native(), "the same kernel");
    group.bench_function("optimize/native", |b| b.iter(native));
    group.bench_function("optimize/raw-wasmtime", |b| b.iter(|| optimize.call(&mut store, (OPTIMIZE_STATEMENTS, OPTIMIZE_ROUNDS)).unwrap()));
    group.bench_function("optimize/sandbox-no-epochs", |b| b.iter(|| call(&no_epochs, "optimize", &[OPTIMIZE_STATEMENTS, OPTIMIZE_ROUNDS])));
    group.bench_function("optimize/sandbox-epochs", |b| b.iter(|| call(&epochs, "optimize", &[OPTIMIZE_STATEMENTS, OPTIMIZE_ROUNDS])));
    group.finish();
}

/// The plugin through the host library, as a host project runs it: in process (epoch checks in
/// the code, the host's deadline) and out of process (a pool of `stockade plugin-worker`
/// processes, compiled without them: a runaway call costs its worker), beside the native
/// function. What a host gains by moving a compute-heavy plugin out of process.
fn through_the_host(c: &mut Criterion) {
    use stockade::host::{Host, process::WorkerCommand};
    let Some(stockade) = binary("stockade") else {
        eprintln!("compute-host: build target/release/stockade for the out-of-process figures");
        return;
    };
    let policy = || {
        stockade::Policy::from_toml(
            "[policy]\nname = \"host\"\n[limits]\ntimeout = \"60s\"\ninput = \"64MiB\"\noutput = \"64MiB\"\nmemory = \"1GiB\"\n[engine]\ncompiler = \"cranelift\"\n",
            stockade::document::Origin::Builtin("the bench policy"),
        )
        .unwrap()
    };
    let plugin = root().join("corpus/guests/compute/compute.wasm");
    let near = Host::builder(policy()).build().unwrap();
    let worker = WorkerCommand { program: stockade, args: vec!["plugin-worker".into()] };
    let far = Host::builder(policy()).out_of_process("compute", worker).build().unwrap();
    for host in [&near, &far] {
        assert_eq!(host.load_files(std::slice::from_ref(&plugin)).unwrap().loaded, ["compute"]);
    }
    let mandel_input = MANDEL_SIZE.to_string().into_bytes();
    let optimize_input = format!("{OPTIMIZE_ROUNDS}\n{}", kernels::sample_ast(OPTIMIZE_STATEMENTS)).into_bytes();
    let expected = kernels::mandelbrot(MANDEL_SIZE).to_string().into_bytes();
    assert_eq!((near.call("compute", "mandel", &mandel_input).unwrap(), far.call("compute", "mandel", &mandel_input).unwrap()), (expected.clone(), expected));

    let mut group = c.benchmark_group("compute-host");
    group.sample_size(10).measurement_time(Duration::from_secs(6)).warm_up_time(Duration::from_secs(1));
    group.bench_function("mandel/native", |b| b.iter(|| kernels::mandelbrot(MANDEL_SIZE)));
    group.bench_function("mandel/in-process", |b| b.iter(|| near.call("compute", "mandel", &mandel_input).unwrap()));
    group.bench_function("mandel/out-of-process", |b| b.iter(|| far.call("compute", "mandel", &mandel_input).unwrap()));
    let ast = kernels::sample_ast(OPTIMIZE_STATEMENTS);
    group.bench_function("optimize/native", |b| b.iter(|| kernels::optimize_rounds(&ast, OPTIMIZE_ROUNDS)));
    group.bench_function("optimize/in-process", |b| b.iter(|| near.call("compute", "optimize", &optimize_input).unwrap()));
    group.bench_function("optimize/out-of-process", |b| b.iter(|| far.call("compute", "optimize", &optimize_input).unwrap()));
    group.finish();
}

criterion_group!(compute_benches, compute, in_process, core_module, through_the_host);

fn main() {
    if let Some(kernel) = std::env::var_os(NATIVE) {
        let out = match kernel.to_str() {
            Some("mandel") => kernels::mandelbrot(MANDEL_SIZE).to_string(),
            _ => {
                let path = std::env::args().nth(1).expect("the input file");
                let text = std::fs::read_to_string(path).unwrap();
                let (rounds, ast) = text.split_once('\n').unwrap();
                kernels::optimize_rounds(ast, rounds.parse().unwrap()).len().to_string()
            }
        };
        println!("{out}");
        return;
    }
    compute_benches();
    Criterion::default().configure_from_args().final_summary();
}
