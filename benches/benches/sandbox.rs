//! The sandbox beside the official `extism` host crate and raw wasmtime, in one run:
//!
//! - `instantiate`: a fresh instance of the same plugin, ready to call;
//! - `extism-call-1k`: the extism-pdk guest's `greet` with 1 KB of input (about 1 KB of output);
//! - `noop-call`: an export that returns at once.
//!
//!     cargo bench -p stockade-benches --bench sandbox

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use stockade::Policy;
use stockade::sandbox::{Input, Load, LoadOptions, Plugin, Sandbox};
use stockade::source::PluginFile;

const GREET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus/guests/extism-greet/extism-greet.wasm");
const NOOP_WAT: &str = r#"(module (memory (export "memory") 1) (func (export "noop") (result i32) (i32.const 0)))"#;

fn stockade_plugin(sandbox: &Sandbox, path: &str, raw: Vec<u8>) -> Plugin {
    stockade_plugin_with(sandbox, path, raw, &LoadOptions::default())
}

fn stockade_plugin_with(sandbox: &Sandbox, path: &str, raw: Vec<u8>, options: &LoadOptions) -> Plugin {
    let file = PluginFile::new(path, raw);
    match sandbox.load(&file, options).unwrap() {
        Load::Ready(plugin) => plugin,
        _ => panic!("{path} loads"),
    }
}

fn benches(c: &mut Criterion) {
    let wasm = std::fs::read(GREET).unwrap();
    let policy = Policy::builtin_default();
    let sandbox = Sandbox::new(&policy).unwrap();
    let greet = stockade_plugin(&sandbox, GREET, wasm.clone());
    let noop = stockade_plugin(&sandbox, "/nonexistent/noop.wat", NOOP_WAT.as_bytes().to_vec());
    let noop_fresh = stockade_plugin_with(
        &sandbox,
        "/nonexistent/noop.wat",
        NOOP_WAT.as_bytes().to_vec(),
        &LoadOptions { instance_reuse: Some(stockade::policy::InstanceReuse::PerCall), ..LoadOptions::default() },
    );

    let manifest = extism::Manifest::new([extism::Wasm::data(wasm.clone())]);
    let compiled = extism::CompiledPlugin::new(extism::PluginBuilder::new(manifest.clone())).unwrap();
    let mut extism_greet = extism::Plugin::new(&manifest, [], false).unwrap();

    let raw_engine = wasmtime::Engine::default();
    let raw_module = wasmtime::Module::new(&raw_engine, wasmtime_noop_bytes()).unwrap();
    let raw_pre = wasmtime::Linker::<()>::new(&raw_engine).instantiate_pre(&raw_module).unwrap();

    let mut group = c.benchmark_group("instantiate");
    group.sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    group.bench_function("stockade/extism-greet", |b| b.iter(|| greet.instantiate().unwrap()));
    group.bench_function("extism/extism-greet", |b| b.iter(|| extism::Plugin::new_from_compiled(&compiled).unwrap()));
    group.bench_function("stockade/noop", |b| b.iter(|| noop.instantiate().unwrap()));
    group.bench_function("wasmtime/noop", |b| {
        b.iter(|| {
            let mut store = wasmtime::Store::new(&raw_engine, ());
            raw_pre.instantiate(&mut store).unwrap()
        })
    });
    group.finish();

    let input = "x".repeat(1024);
    let mut group = c.benchmark_group("extism-call-1k");
    group.sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    group.bench_function("stockade", |b| {
        let input = Input { bytes: input.as_bytes().to_vec(), args: vec![] };
        b.iter(|| {
            let outcome = greet.call("greet", &input);
            assert_eq!(outcome.code, stockade::Code::Ok);
            outcome
        })
    });
    group.bench_function("extism", |b| b.iter(|| extism_greet.call::<&str, &str>("greet", &input).unwrap().len()));
    group.finish();

    let mut group = c.benchmark_group("noop-call");
    group.sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    {
        let mut checkout = noop.checkout().expect("an instance");
        let export = checkout.typed::<(), i32>("noop").expect("noop is () -> i32");
        group.bench_function("stockade typed (checked-out instance)", |b| b.iter(|| checkout.call(&export, ()).unwrap()));
    }
    group.bench_function("stockade (reused instance)", |b| b.iter(|| noop.call("noop", &Input::default())));
    group.bench_function("stockade (fresh instance per call)", |b| b.iter(|| noop_fresh.call("noop", &Input::default())));
    let mut store = wasmtime::Store::new(&raw_engine, ());
    let instance = raw_pre.instantiate(&mut store).unwrap();
    let func = instance.get_typed_func::<(), i32>(&mut store, "noop").unwrap();
    group.bench_function("wasmtime typed call (reused instance)", |b| b.iter(|| func.call(&mut store, ()).unwrap()));
    group.bench_function("wasmtime instantiate + typed call", |b| {
        b.iter(|| {
            let mut store = wasmtime::Store::new(&raw_engine, ());
            let instance = raw_pre.instantiate(&mut store).unwrap();
            let func = instance.get_typed_func::<(), i32>(&mut store, "noop").unwrap();
            func.call(&mut store, ()).unwrap()
        })
    });
    group.finish();
}

fn wasmtime_noop_bytes() -> Vec<u8> {
    stockade::source::wat_to_wasm(NOOP_WAT).unwrap()
}

criterion_group!(sandbox_benches, benches);
criterion_main!(sandbox_benches);
