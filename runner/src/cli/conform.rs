//! `stockade conform`: run the corpus of hostile and benign plugins and write the reports.

use std::path::PathBuf;

use anyhow::Context;
use sha2::Digest;

use stockade::conform::{self, Conformance, Digested, Partition, RunOptions, Xfails};
use stockade::report::conformance as reports;

use super::{PolicyArg, Status};

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    /// The corpus: a directory whose case directories each hold a case.toml.
    #[arg(long, value_name = "DIR", default_value = "corpus")]
    corpus: PathBuf,

    #[command(flatten)]
    policy: PolicyArg,

    /// Where the reports are written (created if missing).
    #[arg(long, value_name = "DIR", default_value = "reports")]
    report_dir: PathBuf,

    /// Cases run at once; the number of CPUs when left out.
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,

    /// Run only the K-th of N shards of the corpus (for a CI matrix; merge with --merge).
    #[arg(long, value_name = "K/N")]
    partition: Option<Partition>,

    /// Expected-failure list (TOML, `[[xfail]] case = "..." reason = "..."`); the corpus's
    /// own xfail.toml when left out.
    #[arg(long, value_name = "FILE")]
    xfail: Option<PathBuf>,

    /// Judge another plugin host: run every case through PROGRAM, an adapter that speaks the
    /// worker protocol (corpus/README.md) for that host, instead of Stockade's own worker.
    #[arg(long, value_name = "PROGRAM")]
    adapter: Option<PathBuf>,

    /// Cases one worker process runs before a fresh one replaces it (1: a process per case).
    /// Workers are replaced anyway after a fault or when they grow; left out, that is the only
    /// limit.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    cases_per_worker: Option<u64>,

    /// The compiler the workers use, over the policy's `engine.compiler` (recorded in the
    /// report's policy name and digest).
    #[arg(long, value_enum, value_name = "COMPILER")]
    compiler: Option<stockade::policy::Compiler>,

    /// How the workers enforce a call's timeout on wasm code, over the policy's
    /// `engine.deadline` (recorded in the report's policy name and digest). Under `process`
    /// (and `auto`), a case of one call runs without epoch checks and the worker's watchdog
    /// ends the worker at the deadline; a case with more calls needs the process after a
    /// timeout and runs with epochs.
    #[arg(long, value_enum, value_name = "MECHANISM")]
    deadline: Option<stockade::policy::DeadlineMechanism>,

    /// Merge the conformance.json reports of shards instead of running anything: shards 1..N of
    /// one partition, each exactly once, of the same tool, policy and corpus (anything else is
    /// refused with exit 1 and no report).
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = ["partition", "xfail", "jobs", "adapter", "cases_per_worker", "compiler", "deadline"])]
    merge: Vec<PathBuf>,
}

const AFTER_HELP: &str = "\
Examples:
  stockade conform                                   the bundled corpus, built-in default policy
  stockade conform --policy policies/registry-strict.toml --report-dir out/
  stockade conform --partition 1/4 --report-dir shard1/
  stockade conform --merge shard*/conformance.json --report-dir reports/
  stockade conform --adapter target/release/stockade-extism-adapter --report-dir reports/peers/extism/

Every case runs in a worker process (`stockade worker`, or the --adapter), measured from
outside: peak RSS (wait4, or VmHWM reset per case), CPU (wait4 or /proc/PID/stat) and wall
time (this process's clock). A worker that crashes or passes its hard caps fails that case
with `crash`, `hang` or `host-rss-exceeded`, and the run goes on.

Reports (written atomically into --report-dir):
  conformance.json          canonical; its JSON Schema is reports/conformance.schema.json
  conformance.xml           JUnit XML (Jenkins dialect), one suite per attack class
  conformance.md            for a pull request or an audit file
  conformance.html          one self-contained page with a chart
  findings.sarif            SARIF 2.1.0, one result per case
  attestation.intoto.json   in-toto Statement, test-result predicate

Exit status:
  0  every case behaved as expected
  1  a case failed, or an expected failure passed, or --merge was given an incomplete or
     mismatched set of shards
  2  the tool could not do its job (unreadable corpus or case, malformed policy, bad arguments)";

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        let conformance = if self.merge.is_empty() {
            self.run_corpus()?
        } else {
            match merge(&self.merge)? {
                Ok(merged) => merged,
                // The reports were read, and do not make a whole run: the evidence is refused.
                Err(refusal) => {
                    anstream::eprintln!("error: cannot merge: {refusal}");
                    return Ok(Status::Findings);
                }
            }
        };
        let written = reports::write_all(&conformance, &self.report_dir)
            .with_context(|| format!("cannot write the reports into {}", self.report_dir.display()))?;
        let mut out = reports::terminal_summary(&conformance, super::stdout_colored());
        out.push_str(&format!(
            "reports: {}\n",
            written.iter().map(|p| stockade::text::display_path(p)).collect::<Vec<_>>().join(", ")
        ));
        anstream::print!("{out}");
        Ok(if conformance.summary.holds() { Status::Ok } else { Status::Findings })
    }

    fn run_corpus(&self) -> anyhow::Result<Conformance> {
        let (mut policy, mut policy_text) = self.policy.load_with_text()?;
        let mut name = policy.name().to_string();
        if let Some(compiler) = self.compiler {
            policy.engine.compiler = compiler;
            record_override(&mut name, &mut policy_text, "compiler", &compiler);
        }
        // The digest names what the policy trusts, not just the paths it names: the keys and
        // trusted root as they were read.
        if policy.signatures.signers.is_some() || policy.signatures.trusted_root.is_some() {
            let read = toml::to_string(&policy.signatures)?;
            policy_text.push_str(&format!("\n# [signatures] as read:\n# {}\n", read.trim_end().replace('\n', "\n# ")));
        }
        if let Some(deadline) = self.deadline {
            policy.engine.deadline = deadline;
            record_override(&mut name, &mut policy_text, "deadline", &deadline);
        }
        let policy_digest = Digested { name, sha256: hex::encode(sha2::Sha256::digest(policy_text)) };
        let xfail_path = self.xfail.clone().or_else(|| {
            let default = self.corpus.join(conform::XFAIL_FILE);
            default.exists().then_some(default)
        });
        let xfails = match &xfail_path {
            Some(path) => Xfails::read(path)?,
            None => Xfails::default(),
        };
        let jobs = self.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if jobs == 0 {
            anyhow::bail!("--jobs must be at least 1");
        }
        let progress = indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} cases {msg}")
                .expect("the progress template is valid")
                .progress_chars("=> "),
        );
        let on_case_done = |case: &conform::CaseResult| {
            if case.verdict.is_failure() {
                progress.println(format!("FAIL {}", case.id));
            }
            progress.set_message(case.id.clone());
            progress.inc(1);
        };
        let worker = match &self.adapter {
            Some(program) => conform::WorkerCommand { program: program.clone(), args: Vec::new() },
            None => conform::WorkerCommand {
                program: std::env::current_exe().context("cannot find this program to start its workers")?,
                args: vec!["worker".into()],
            },
        };
        let options = RunOptions {
            worker,
            adapter: self.adapter.as_ref().map(|p| stockade::text::display_path(p)),
            cases_per_worker: self.cases_per_worker.map(|n| n as usize),
            corpus: &self.corpus,
            policy: &policy,
            policy_digest,
            xfails,
            partition: self.partition,
            jobs,
            on_case_done: &on_case_done,
        };
        let cases = conform::plan(&options)?;
        progress.set_length(cases.len() as u64);
        let conformance = conform::run(&options, &cases)?;
        progress.finish_and_clear();
        Ok(conformance)
    }
}

/// Reads the shards' reports (an unreadable one is a tool error) and merges them (an
/// incomplete or mismatched set is a refusal).
fn merge(paths: &[PathBuf]) -> anyhow::Result<Result<Conformance, conform::MergeError>> {
    let mut parts = Vec::new();
    for path in paths {
        let text = stockade::source::read_regular_text(path, stockade::source::MAX_DOCUMENT_BYTES).with_context(|| format!("cannot read {}", path.display()))?;
        let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        let part: Conformance = stockade::document::from_json(&text, stockade::document::Origin::File(path.display().to_string()))?;
        if part.schema != conform::CONFORMANCE_SCHEMA {
            anyhow::bail!("{}: schema `{}`, expected `{}`", path.display(), part.schema, conform::CONFORMANCE_SCHEMA);
        }
        parts.push((part, path.display().to_string(), digest));
    }
    Ok(conform::merge(parts))
}

/// A command-line override of the policy, recorded in the policy's name as reports show it and
/// in the text its digest is taken of, so that a report says what the cases ran under.
fn record_override(name: &mut String, policy_text: &mut String, flag: &str, value: &impl clap::ValueEnum) {
    let value = value.to_possible_value().expect("every choice has a name");
    let value = value.get_name();
    name.push_str(&format!(" ({flag} {value})"));
    policy_text.push_str(&format!("\n# --{flag} {value}\n"));
}
