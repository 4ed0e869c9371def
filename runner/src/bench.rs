//! `stockade bench`: a plugin's load, instantiation and call figures, measured by the clock and
//! the process's RSS, and the gate host projects release on: maximums per figure (a budget)
//! and regressions against an earlier run (a baseline).
//!
//! Noise: every time figure is measured in rounds ([`ROUNDS`]; the calls in [`CALL_ROUNDS`]
//! rounds, each on a fresh load of the cached module and a fresh instance, in a new process
//! under `stockade bench`: where code and data land in memory is fixed for a process's life and
//! moved a call's time by up to 2x here, so rounds in one process would share one placement). A
//! figure is the median over all its samples; its spread is the lowest and highest round.
//! Against a baseline a figure regresses only when all three hold: it is over the baseline's
//! figure by more than the allowed ratio, by more than the figure's minimum absolute difference
//! ([`FIGURES`]), and its spread lies wholly above the baseline's (its best round is worse than
//! the baseline's worst, widened by the ratio). A figure moved by the machine's noise overlaps
//! its baseline; a plugin made slower does not. `call-p99` is reported and can be budgeted,
//! but is not compared with a baseline: the tail moves with whatever else the machine does.
//! `instructions` (fuel consumed by one call) does not depend on the machine at all.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::code::Code;
use crate::policy::{Compiler, Policy};
use crate::sandbox::{Allocation, Input, Load, LoadOptions, Sandbox, SandboxError, SandboxOptions, forget_compiled_modules};
use crate::source::PluginFile;

pub const BENCH_SCHEMA: &str = "stockade.bench/1";

/// Rounds of the load and instantiation figures.
pub const ROUNDS: usize = 7;

/// Rounds of the call figures, each on a fresh load and instance.
pub const CALL_ROUNDS: usize = 5;

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
    /// The lowest and highest round of each time figure (see the module's notes on noise).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub spread: BTreeMap<String, [u64; 2]>,
}

/// A figure's samples, grouped by round.
#[derive(Default)]
struct Rounds(Vec<Vec<u64>>);

impl Rounds {
    fn round(&mut self, samples: Vec<u64>) {
        if !samples.is_empty() {
            self.0.push(samples);
        }
    }

    /// Every sample, sorted.
    fn all(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self.0.iter().flatten().copied().collect();
        all.sort_unstable();
        all
    }

    /// The median over all samples, and the lowest and highest round (by its median).
    fn summary(&self) -> Option<(u64, [u64; 2])> {
        let rounds: Vec<u64> = self.0.iter().map(|round| median(round.clone())).collect();
        let all = self.all();
        if all.is_empty() {
            return None;
        }
        Some((median(all), [*rounds.iter().min()?, *rounds.iter().max()?]))
    }
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

/// Measures `file`'s figures: the loads in this process, each round of calls by `run_round`
/// given the directory the compiled module is cached in ([`measure_call_round`] here, or in a
/// new process each, as `stockade bench` does).
pub fn measure(
    file: &PluginFile,
    options: &BenchOptions<'_>,
    run_round: &dyn Fn(&std::path::Path) -> Result<CallRound, BenchError>,
) -> Result<BenchReport, BenchError> {
    let mut figures = BTreeMap::new();
    let mut spread = BTreeMap::new();
    let mut record = |name: &str, rounds: &Rounds| {
        if let Some((value, range)) = rounds.summary() {
            figures.insert(name.to_string(), value);
            spread.insert(name.to_string(), range);
        }
    };
    let one_shot = |compiler, cache_dir| SandboxOptions { allocation: Allocation::OnDemand, cache_dir, compiler, runs_once: true, ..SandboxOptions::default() };
    let compiler = options.compiler.unwrap_or(options.policy.engine.compiler);

    let mut cold = Rounds::default();
    for _ in 0..ROUNDS {
        forget_compiled_modules();
        let sandbox = Sandbox::with_options(options.policy, &one_shot(options.compiler, None))?;
        let (loaded, ns) = timed(|| load(&sandbox, file, &options.load));
        loaded?;
        cold.round(vec![ns]);
    }
    record("cold-load", &cold);

    let cache = tempfile::tempdir()?;
    let cached_options = one_shot(Some(Compiler::Cranelift), Some(cache.path().to_path_buf()));
    // A load from the disk cache: the module's code mapped afresh, as in a new process.
    let load_cached = || -> Result<(crate::sandbox::Plugin, u64), BenchError> {
        forget_compiled_modules();
        let sandbox = Sandbox::with_options(options.policy, &cached_options)?;
        let (loaded, ns) = timed(|| load(&sandbox, file, &options.load));
        Ok((loaded?, ns))
    };
    // The first load compiles into the cache; the rest read it.
    load_cached()?;
    let mut cached = Rounds::default();
    for _ in 0..ROUNDS {
        let (plugin, ns) = load_cached()?;
        if plugin.module_source != crate::sandbox::cache::Source::Disk {
            return Err(BenchError::Plugin("the compiled module could not be cached".into()));
        }
        cached.round(vec![ns]);
    }
    record("cached-load", &cached);

    let (mut instantiate, mut calls, mut peak_rss) = (Rounds::default(), Rounds::default(), None::<u64>);
    for _ in 0..CALL_ROUNDS {
        let round = run_round(cache.path())?;
        instantiate.round(round.instantiate);
        calls.round(round.calls);
        peak_rss = peak_rss.max(round.peak_rss);
    }
    record("instantiate", &instantiate);
    record("call-p50", &calls);
    figures.insert("call-p99".to_string(), percentile(&calls.all(), 0.99));
    if let Some(peak) = peak_rss {
        figures.insert("peak-rss".to_string(), peak);
    }

    // Fuel counts instructions the same on every machine: one call with fuel metered.
    let mut metered = options.policy.clone();
    metered.limits.fuel = Some(metered.limits.fuel.unwrap_or(1_000_000_000_000_000));
    let sandbox = Sandbox::with_options(&metered, &one_shot(Some(Compiler::Cranelift), None))?;
    if let Some(instructions) = call(&load(&sandbox, file, &options.load)?, options)?.stats.instructions {
        figures.insert("instructions".to_string(), instructions);
    }

    Ok(BenchReport {
        schema: BENCH_SCHEMA.to_string(),
        plugin: crate::text::display_path(&file.path),
        sha256: file.sha256().to_string(),
        function: options.function.to_string(),
        policy: options.policy.name().to_string(),
        compiler,
        iterations: options.iterations,
        host: format!("stockade {} (wasmtime {})", env!("CARGO_PKG_VERSION"), crate::WASMTIME_VERSION),
        figures,
        spread,
    })
}

/// One round of calls: instantiations and calls of a fresh load from the disk cache, and the
/// process's peak RSS while calling.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CallRound {
    pub instantiate: Vec<u64>,
    pub calls: Vec<u64>,
    pub peak_rss: Option<u64>,
}

fn call(plugin: &crate::sandbox::Plugin, options: &BenchOptions<'_>) -> Result<crate::sandbox::Outcome, BenchError> {
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
}

/// Measures one round of calls in this process, the module coming from the disk cache `cache`
/// (filled by [`measure`]): its share of the iterations, after ten calls to warm up.
pub fn measure_call_round(file: &PluginFile, options: &BenchOptions<'_>, cache: &std::path::Path) -> Result<CallRound, BenchError> {
    let sandbox_options = SandboxOptions {
        allocation: Allocation::OnDemand,
        cache_dir: Some(cache.to_path_buf()),
        compiler: Some(Compiler::Cranelift),
        runs_once: true,
        // Measured as a host runs it (not a disposable process): epochs, whatever the policy
        // allows a one-shot run.
        ..SandboxOptions::default()
    };
    let sandbox = Sandbox::with_options(options.policy, &sandbox_options)?;
    let plugin = load(&sandbox, file, &options.load)?;
    let calls_per_round = (options.iterations.max(1) as usize).div_ceil(CALL_ROUNDS);
    let mut round = CallRound::default();
    for _ in 0..calls_per_round.clamp(ROUNDS, 40) {
        let (made, ns) = timed(|| plugin.instantiate());
        made.map_err(|o| BenchError::Plugin(format!("instantiation ends with `{}`: {}", o.code, o.error.unwrap_or_default())))?;
        round.instantiate.push(ns);
    }
    for _ in 0..10.min(calls_per_round) {
        call(&plugin, options)?;
    }
    let process = crate::conform::accounting::Proc::new(std::process::id() as i32);
    let _ = process.reset_peak_rss();
    for _ in 0..calls_per_round {
        let (outcome, ns) = timed(|| call(&plugin, options));
        outcome?;
        round.calls.push(ns);
    }
    round.peak_rss = process.rss().ok().map(|(peak, _)| peak);
    Ok(round)
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

/// The figures over `baseline` by more than `max_regression` (0.10 for 10%), by more than
/// their minimum difference, and with their spread above the baseline's (see the module's
/// notes on noise). A baseline of another plugin, function or policy is refused.
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
        // Without a spread (counts, sizes, or a report that has none) a figure is its own.
        let best_round = report.spread.get(figure.name).map_or(value, |[low, _]| *low);
        let base_worst = baseline.spread.get(figure.name).map_or(base, |[_, high]| *high);
        let outside_spread = best_round as f64 > base_worst as f64 * (1.0 + max_regression);
        if value > bound && value - base > figure.min_regression && outside_spread {
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
