//! `stockade bench`: a plugin's load, instantiation and call figures, measured by the clock and
//! the process's RSS, and the gate host projects release on: maximums per figure (a budget)
//! and regressions against an earlier run (a baseline).
//!
//! Noise: every time figure is a median (loads and instantiation over [`ROUNDS`]-many rounds
//! and more, calls over `--iterations` calls after a warm-up), and a figure regresses only when
//! it is over the baseline by the allowed ratio *and* by its figure's minimum absolute
//! difference ([`FIGURES`]), so that a few microseconds of jitter on a fast plugin are not a
//! regression. `call-p99` is reported and can be budgeted, but is not compared with a
//! baseline: the tail of a thousand calls moves with whatever else the machine does.
//! `instructions` (fuel consumed by one call) does not depend on the machine at all.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::code::Code;
use crate::policy::{Compiler, Policy};
use crate::sandbox::{Allocation, Input, Load, LoadOptions, Sandbox, SandboxError, SandboxOptions, forget_compiled_modules};
use crate::source::PluginFile;

pub const BENCH_SCHEMA: &str = "stockade.bench/1";

/// Rounds of the load and instantiation figures (each a median).
pub const ROUNDS: usize = 7;

/// What a figure is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Nanoseconds,
    Bytes,
    Count,
}

/// One figure: its name in reports and budgets, its unit, the smallest change that can count
/// as a regression, and whether baselines compare it.
pub struct Figure {
    pub name: &'static str,
    pub unit: Unit,
    pub min_regression: u64,
    pub compared_with_baseline: bool,
    pub meaning: &'static str,
}

pub const FIGURES: &[Figure] = &[
    Figure { name: "cold-load", unit: Unit::Nanoseconds, min_regression: 2_000_000, compared_with_baseline: true, meaning: "vet, compile and link, nothing cached" },
    Figure { name: "cached-load", unit: Unit::Nanoseconds, min_regression: 500_000, compared_with_baseline: true, meaning: "vet and link, compiled code from the disk cache" },
    Figure { name: "instantiate", unit: Unit::Nanoseconds, min_regression: 20_000, compared_with_baseline: true, meaning: "a fresh instance, ready to call" },
    Figure { name: "call-p50", unit: Unit::Nanoseconds, min_regression: 2_000, compared_with_baseline: true, meaning: "median call on a reused instance" },
    Figure { name: "call-p99", unit: Unit::Nanoseconds, min_regression: 20_000, compared_with_baseline: false, meaning: "99th percentile call" },
    Figure { name: "peak-rss", unit: Unit::Bytes, min_regression: 4 << 20, compared_with_baseline: true, meaning: "the process's peak RSS while calling (VmHWM)" },
    Figure { name: "instructions", unit: Unit::Count, min_regression: 0, compared_with_baseline: true, meaning: "wasm instructions of one call (fuel consumed)" },
];

fn figure(name: &str) -> Option<&'static Figure> {
    FIGURES.iter().find(|f| f.name == name)
}

/// `stockade.bench/1`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BenchReport {
    pub schema: String,
    pub plugin: String,
    pub sha256: String,
    pub function: String,
    pub policy: String,
    pub compiler: Compiler,
    pub iterations: u32,
    pub host: String,
    /// By figure name ([`FIGURES`]); nanoseconds, bytes or a count.
    pub figures: BTreeMap<String, u64>,
}

/// What to measure.
pub struct BenchOptions<'a> {
    pub policy: &'a Policy,
    pub load: LoadOptions,
    pub function: &'a str,
    pub input: Input,
    pub iterations: u32,
    /// The compiler of the cold load (the cached load is always Cranelift's code).
    pub compiler: Option<Compiler>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The plugin did not load or its call did not return normally: nothing to measure.
    #[error("{0}")]
    Plugin(String),
    #[error("cannot make a temporary cache directory: {0}")]
    Io(#[from] std::io::Error),
}

fn median(mut samples: Vec<u64>) -> u64 {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn load(sandbox: &Sandbox, file: &PluginFile, options: &LoadOptions) -> Result<crate::sandbox::Plugin, BenchError> {
    match sandbox.load(file, options)? {
        Load::Ready(plugin) => Ok(plugin),
        Load::Refused(vetting) => {
            let codes: Vec<&str> = vetting.findings.iter().filter(|f| f.severity == crate::Severity::Error).map(|f| f.code.as_str()).collect();
            Err(BenchError::Plugin(format!("the plugin is refused by vetting ({})", codes.join(", "))))
        }
        Load::Failed(outcome) => Err(BenchError::Plugin(format!(
            "the plugin does not load: {}: {}",
            outcome.code,
            outcome.error.unwrap_or_default()
        ))),
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed().as_nanos() as u64)
}

/// Measures `file`'s figures in this process.
pub fn measure(file: &PluginFile, options: &BenchOptions<'_>) -> Result<BenchReport, BenchError> {
    let mut figures = BTreeMap::new();
    let one_shot = |compiler, cache_dir| SandboxOptions { allocation: Allocation::OnDemand, cache_dir, compiler, runs_once: true };
    let compiler = options.compiler.unwrap_or(options.policy.engine.compiler);

    let mut cold = Vec::new();
    for _ in 0..ROUNDS {
        forget_compiled_modules();
        let sandbox = Sandbox::with_options(options.policy, &one_shot(options.compiler, None))?;
        cold.push(timed(|| load(&sandbox, file, &options.load)).1);
    }
    figures.insert("cold-load".to_string(), median(cold));

    let cache = tempfile::tempdir()?;
    let cached_options = one_shot(Some(Compiler::Cranelift), Some(cache.path().to_path_buf()));
    let mut cached = Vec::new();
    let mut plugin = None;
    for _ in 0..=ROUNDS {
        forget_compiled_modules();
        let sandbox = Sandbox::with_options(options.policy, &cached_options)?;
        let (loaded, ns) = timed(|| load(&sandbox, file, &options.load));
        let loaded = loaded?;
        // The first round compiles into the cache; the rest read it.
        if loaded.module_source == crate::sandbox::cache::Source::Disk {
            cached.push(ns);
        }
        plugin = Some(loaded);
    }
    let plugin = plugin.expect("at least one round");
    if cached.is_empty() {
        return Err(BenchError::Plugin("the compiled module could not be cached".into()));
    }
    figures.insert("cached-load".to_string(), median(cached));

    let rounds = (options.iterations as usize).clamp(ROUNDS, 200);
    let mut instantiate = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let (made, ns) = timed(|| plugin.instantiate());
        made.map_err(|o| BenchError::Plugin(format!("instantiation ends with `{}`: {}", o.code, o.error.unwrap_or_default())))?;
        instantiate.push(ns);
    }
    figures.insert("instantiate".to_string(), median(instantiate));

    let call = |plugin: &crate::sandbox::Plugin| {
        let outcome = plugin.call(options.function, &options.input);
        if outcome.code != Code::Ok {
            return Err(BenchError::Plugin(format!(
                "`{}` ends with `{}`: {}",
                options.function,
                outcome.code,
                outcome.error.unwrap_or_default()
            )));
        }
        Ok(outcome)
    };
    for _ in 0..10.min(options.iterations) {
        call(&plugin)?;
    }
    let process = crate::conform::accounting::Proc::new(std::process::id() as i32);
    let _ = process.reset_peak_rss();
    let mut calls = Vec::with_capacity(options.iterations as usize);
    for _ in 0..options.iterations.max(1) {
        let (outcome, ns) = timed(|| call(&plugin));
        outcome?;
        calls.push(ns);
    }
    calls.sort_unstable();
    figures.insert("call-p50".to_string(), percentile(&calls, 0.5));
    figures.insert("call-p99".to_string(), percentile(&calls, 0.99));
    if let Ok((peak, _)) = process.rss() {
        figures.insert("peak-rss".to_string(), peak);
    }

    // Fuel counts instructions the same on every machine: one call with fuel metered.
    let mut metered = options.policy.clone();
    metered.limits.fuel = Some(metered.limits.fuel.unwrap_or(1_000_000_000_000_000));
    let sandbox = Sandbox::with_options(&metered, &one_shot(Some(Compiler::Cranelift), None))?;
    if let Some(instructions) = call(&load(&sandbox, file, &options.load)?)?.stats.instructions {
        figures.insert("instructions".to_string(), instructions);
    }

    Ok(BenchReport {
        schema: BENCH_SCHEMA.to_string(),
        plugin: crate::report::display_path(&file.path),
        sha256: file.sha256(),
        function: options.function.to_string(),
        policy: options.policy.name().to_string(),
        compiler,
        iterations: options.iterations,
        host: format!("stockade {} (wasmtime {})", env!("CARGO_PKG_VERSION"), crate::WASMTIME_VERSION),
        figures,
    })
}

/// A figure over its bound, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OverBound {
    pub figure: String,
    pub value: u64,
    pub bound: u64,
    pub message: String,
}

/// Maximums per figure: a TOML table of figure names to durations (`"5ms"`), sizes
/// (`"64MiB"`) or counts.
#[derive(Clone, Debug, Default)]
pub struct Budget(pub BTreeMap<String, u64>);

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("{0}")]
    Toml(String),
    #[error("`{key}`: {message}")]
    Value { key: String, message: String },
}

impl Budget {
    pub fn from_toml(text: &str) -> Result<Budget, BudgetError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| BudgetError::Toml(e.to_string().trim().replace('\n', " ")))?;
        let mut maximums = BTreeMap::new();
        for (key, value) in table {
            let bad = |message: String| BudgetError::Value { key: key.clone(), message };
            let Some(figure) = figure(&key) else {
                let known: Vec<_> = FIGURES.iter().map(|f| f.name).collect();
                return Err(bad(format!("not a figure; the figures are {}", known.join(", "))));
            };
            let parsed = match (figure.unit, &value) {
                (_, toml::Value::Integer(n)) if *n >= 0 => *n as u64,
                (Unit::Nanoseconds, toml::Value::String(s)) => {
                    s.parse::<crate::units::Span>().map_err(|e| bad(e.to_string()))?.get().as_nanos() as u64
                }
                (Unit::Bytes, toml::Value::String(s)) => s.parse::<crate::units::Bytes>().map_err(|e| bad(e.to_string()))?.get(),
                _ => return Err(bad(format!("expected {}", describe_unit(figure.unit)))),
            };
            maximums.insert(key, parsed);
        }
        Ok(Budget(maximums))
    }

    pub fn check(&self, report: &BenchReport) -> Vec<OverBound> {
        let mut over = Vec::new();
        for (name, &bound) in &self.0 {
            let Some(&value) = report.figures.get(name) else { continue };
            if value > bound {
                let unit = figure(name).map_or(Unit::Count, |f| f.unit);
                let message = format!("{name} is {}, over its budget of {}", show(value, unit), show(bound, unit));
                over.push(OverBound { figure: name.clone(), value, bound, message });
            }
        }
        over
    }
}

fn describe_unit(unit: Unit) -> &'static str {
    match unit {
        Unit::Nanoseconds => "a duration such as \"5ms\" (or nanoseconds)",
        Unit::Bytes => "a size such as \"64MiB\" (or bytes)",
        Unit::Count => "a count",
    }
}

/// A figure for people.
pub fn show(value: u64, unit: Unit) -> String {
    match unit {
        Unit::Nanoseconds => format!("{:.1?}", Duration::from_nanos(value)),
        Unit::Bytes => format!("{:.1} MiB", value as f64 / (1 << 20) as f64),
        Unit::Count => value.to_string(),
    }
}

pub fn unit_of(name: &str) -> Unit {
    figure(name).map_or(Unit::Count, |f| f.unit)
}

/// The figures over `baseline` by more than `max_regression` (0.10 for 10%) and by more than
/// their minimum difference. A baseline of another plugin, function or policy is refused.
pub fn regressions(report: &BenchReport, baseline: &BenchReport, max_regression: f64) -> Result<Vec<OverBound>, String> {
    if baseline.schema != BENCH_SCHEMA {
        return Err(format!("the baseline's schema is `{}`, not {BENCH_SCHEMA}", baseline.schema));
    }
    if (baseline.function.as_str(), baseline.policy.as_str()) != (report.function.as_str(), report.policy.as_str()) {
        return Err(format!(
            "the baseline measured `{}` under policy `{}`; this run `{}` under `{}`",
            baseline.function, baseline.policy, report.function, report.policy
        ));
    }
    let mut over = Vec::new();
    for figure in FIGURES.iter().filter(|f| f.compared_with_baseline) {
        let (Some(&value), Some(&base)) = (report.figures.get(figure.name), baseline.figures.get(figure.name)) else { continue };
        let bound = ((base as f64) * (1.0 + max_regression)).ceil() as u64;
        if value > bound && value - base > figure.min_regression {
            let ratio = value as f64 / base.max(1) as f64;
            let message = format!(
                "{} is {} against {} in the baseline ({ratio:.2}x; at most {:.0}% more is allowed)",
                figure.name,
                show(value, figure.unit),
                show(base, figure.unit),
                max_regression * 100.0
            );
            over.push(OverBound { figure: figure.name.to_string(), value, bound, message });
        }
    }
    Ok(over)
}
