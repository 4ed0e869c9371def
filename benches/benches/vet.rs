//! Static vet throughput beside bare wasmparser validation of the same modules, with the same
//! feature set (the default policy's). The goal (docs/src/performance.md): vet within 1.2x of validation.
//!
//! Modules: the guest plugins in corpus/guests, and the npm modules that
//! scripts/fetch-third-party-wasm.sh puts in target/third-party-wasm (when present).
//!
//!     cargo bench -p stockade-benches --bench vet

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use stockade::Policy;
use stockade::source::PluginFile;
use stockade::vet::VetOptions;

fn modules() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut paths: Vec<PathBuf> = vec![
        root.join("corpus/guests/wasi-hello/wasi-hello.wasm"),
        root.join("corpus/guests/extism-greet/extism-greet.wasm"),
    ];
    // One module per npm package, the largest-but-bounded ones, to keep the run short.
    for name in ["sql.js/dist_sql-wasm.wasm", "@resvg_resvg-wasm/index_bg.wasm", "esbuild-wasm/esbuild.wasm"] {
        let path = root.join("target/third-party-wasm").join(name);
        if path.exists() {
            paths.push(path);
        }
    }
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("bench module is readable"))
        })
        .collect()
}

fn vet_beside_validation(c: &mut Criterion) {
    // The default policy with the most segments any policy allows: esbuild's Go runtime has
    // 98,450 data segments, which the default's 10,000 refuses from the count (a run of it
    // would take hundreds of megabytes); the bench times validating the whole module.
    let mut policy = Policy::builtin_default();
    policy.limits.segments = 100_000;
    let features = policy.features.wasm_features();
    let options = VetOptions::new(&policy);
    let mut group = c.benchmark_group("vet");
    group.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for (name, bytes) in modules() {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("wasmparser-validate", &name), &bytes, |b, bytes| {
            b.iter(|| wasmparser::Validator::new_with_features(features).validate_all(bytes).unwrap())
        });
        // What `wasm-tools validate` does: the sections in order, then the function bodies in
        // parallel, each with its own validator.
        group.bench_with_input(BenchmarkId::new("wasmparser-parallel-validate", &name), &bytes, |b, bytes| {
            b.iter(|| parallel_validate(bytes, features))
        });
        group.bench_with_input(BenchmarkId::new("stockade-analyze", &name), &bytes, |b, bytes| {
            b.iter(|| stockade::analyze::analyze(bytes, &policy.features).unwrap())
        });
        // The whole decision, as `stockade vet` makes it: hashing, manifest lookup, findings.
        let file = PluginFile::new(PathBuf::from("/nonexistent/bench").join(&name), bytes.clone());
        group.bench_with_input(BenchmarkId::new("stockade-vet", &name), &file, |b, file| {
            b.iter(|| stockade::vet(file, &options).unwrap())
        });
    }
    group.finish();
}

fn parallel_validate(bytes: &[u8], features: wasmparser::WasmFeatures) {
    use rayon::prelude::*;
    let mut validator = wasmparser::Validator::new_with_features(features);
    let mut bodies = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::ValidPayload::Func(func, body) = validator.payload(&payload.unwrap()).unwrap() {
            bodies.push((func, body));
        }
    }
    bodies.into_par_iter().for_each_init(wasmparser::FuncValidatorAllocations::default, |allocations, (func, body)| {
        let mut validator = func.into_validator(std::mem::take(allocations));
        validator.validate(&body).unwrap();
        *allocations = validator.into_allocations();
    });
}

criterion_group!(benches, vet_beside_validation);
criterion_main!(benches);
