//! `stockade bench`: measure a plugin, and gate a release on the figures.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use stockade::bench::{self, BenchOptions, BenchReport, Budget, FIGURES, OverBound};
use stockade::sandbox::LoadOptions;

use super::{CallArgs, HumanOrJson, LoadArgs, Status};

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    #[command(flatten)]
    target: CallArgs,

    #[command(flatten)]
    load: LoadArgs,

    /// The compiler of the cold load (the cached load is Cranelift's code).
    #[arg(long, value_enum, value_name = "COMPILER")]
    compiler: Option<stockade::policy::Compiler>,

    /// Calls measured (after 10 to warm up).
    #[arg(long, short = 'n', value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    iterations: u32,

    /// Maximums per figure (TOML: `call-p50 = "20us"`, `peak-rss = "64MiB"`, `instructions = 100000`).
    #[arg(long, value_name = "FILE")]
    budget: Option<PathBuf>,

    /// An earlier `stockade bench --format json` of the same plugin function and policy.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,

    /// How much worse than the baseline a figure may be, in percent.
    #[arg(long, value_name = "PERCENT", default_value = "10%", value_parser = parse_percent, requires = "baseline")]
    max_regression: f64,

    /// Check only these figures against the budget and the baseline (repeatable): a CI on a
    /// shared machine gates on `instructions` and `peak-rss`, which its neighbours do not move.
    #[arg(long = "only", value_name = "FIGURE", value_parser = clap::builder::PossibleValuesParser::new(FIGURES.iter().map(|f| f.name)))]
    only: Vec<String>,

    #[arg(long, short = 'f', value_enum, default_value_t = HumanOrJson::Human)]
    format: HumanOrJson,

    /// Measure one round of calls of the module cached in DIR and print it as JSON: what
    /// `bench` runs in a new process per round.
    #[arg(long, value_name = "DIR", hide = true)]
    call_round: Option<PathBuf>,
}

const AFTER_HELP: &str = "\
Examples:
  stockade bench plugin.wasm --call transform --input @sample.json
  stockade bench plugin.wasm --call transform --format json > baseline.json
  stockade bench plugin.wasm --call transform --baseline baseline.json --max-regression 10%
  stockade bench plugin.wasm --call transform --budget benches/plugin-budget.toml
  stockade bench plugin.wasm --call transform --baseline baseline.json --only instructions

Figures: cold-load (vet, compile, link; nothing cached), cached-load (from the disk cache),
instantiate, call-p50 and call-p99 (on a reused instance), peak-rss (the process's VmHWM while
calling: measured, not configured) and instructions (fuel of one call, the same on every
machine). Time figures are measured in rounds (loads 7, calls 5, each call round on a fresh
load and instance); a figure is the median of all its samples, and the JSON report keeps its
spread (the lowest and highest round).

Against a baseline a figure regresses when it is over by more than --max-regression, by more
than its minimum difference (cold-load 2ms, cached-load 0.5ms, instantiate 20us, call-p50
2us, peak-rss 4MiB, instructions 0), and its best round is worse than the baseline's worst
round by more than --max-regression: noise overlaps the baseline, a slower plugin does not.
call-p99 is not compared (budget it instead).

Exit status:
  0  measured, and within the budget and the baseline
  1  a figure is over its budget or regressed against the baseline (each is named), or the
     plugin is refused or its call does not return normally
  2  the tool could not do its job (unreadable plugin, policy, budget or baseline; bad arguments)";

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix('%').unwrap_or(text).trim();
    match number.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p / 100.0),
        _ => Err(format!("`{text}` is not a percentage such as 10%")),
    }
}

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        let policy = self.load.policy.load()?;
        let file = super::read_plugin_to_report(&self.target.plugin, &policy)?;
        let options = BenchOptions {
            policy: &policy,
            load: LoadOptions { manifest: self.load.manifest.clone(), ..LoadOptions::default() },
            function: &self.target.call,
            input: self.target.input(policy.limits.input.get())?,
            iterations: self.iterations,
            compiler: self.compiler,
        };
        if let Some(cache) = &self.call_round {
            let round = bench::measure_call_round(&file, &options, cache).map_err(|e| anyhow::anyhow!("{e}"))?;
            writeln!(std::io::stdout().lock(), "{}", serde_json::to_string(&round)?)?;
            return Ok(Status::Ok);
        }
        let budget = match &self.budget {
            Some(path) => {
                let text = stockade::source::read_regular_text(path, stockade::source::MAX_DOCUMENT_BYTES).with_context(|| format!("cannot read the budget {}", path.display()))?;
                Some(Budget::from_toml(&text).with_context(|| format!("the budget {}", path.display()))?)
            }
            None => None,
        };
        let baseline: Option<BenchReport> = match &self.baseline {
            Some(path) => {
                let text = stockade::source::read_regular_text(path, stockade::source::MAX_DOCUMENT_BYTES).with_context(|| format!("cannot read the baseline {}", path.display()))?;
                Some(stockade::document::from_json(&text, stockade::document::Origin::File(path.display().to_string()))?)
            }
            None => None,
        };
        let report = match bench::measure(&file, &options, &call_round_in_new_process) {
            Ok(report) => report,
            Err(bench::BenchError::Plugin(message)) => {
                anstream::eprintln!("error: {}", stockade::text::escape::line(&message));
                return Ok(Status::Findings);
            }
            Err(other) => return Err(other.into()),
        };
        let mut over: Vec<OverBound> = budget.map(|b| b.check(&report)).unwrap_or_default();
        if let Some(baseline) = &baseline {
            let path = self.baseline.as_ref().expect("read above").display();
            over.extend(bench::regressions(&report, baseline, self.max_regression).map_err(|e| anyhow::anyhow!("the baseline {path}: {e}"))?);
        }
        if !self.only.is_empty() {
            over.retain(|problem| self.only.contains(&problem.figure));
        }
        let checked = self.budget.is_some() || self.baseline.is_some();
        let text = match self.format {
            HumanOrJson::Json => format!("{}\n", stockade::report::bench::json(&report, checked.then_some(&over[..]))),
            HumanOrJson::Human => stockade::report::bench::human(&report, &over),
        };
        let mut out = anstream::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(if over.is_empty() { Status::Ok } else { Status::Findings })
    }
}

/// Runs one round of calls in a new process: this command again, with `--call-round`. Where
/// code and data land in memory is fixed for a process's life and moves a call's time by up to
/// 2x, so rounds in one process would all share one placement.
fn call_round_in_new_process(cache: &std::path::Path) -> Result<bench::CallRound, bench::BenchError> {
    let failed = |message: String| bench::BenchError::Plugin(format!("a round of calls failed: {message}"));
    let exe = std::env::current_exe().map_err(|e| failed(format!("cannot find this program: {e}")))?;
    let output = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .arg("--call-round")
        .arg(cache)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(stderr.lines().next().unwrap_or("no message").trim_start_matches("error: ").to_string()));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| failed(format!("unreadable result: {e}")))
}
