//! `stockade run`: vet a plugin, then call one export in the sandbox.

use std::io::Write;

use stockade::Code;
use stockade::report;
use stockade::policy::{Compiler, Limits};
use stockade::sandbox::cache::Source;
use stockade::sandbox::{Load, LoadOptions, Outcome, Sandbox};

use super::{CallArgs, CompileArgs, HumanOrJson, LoadArgs, Status};

#[derive(clap::Parser)]
#[command(after_help = AFTER_HELP)]
pub struct Opts {
    #[command(flatten)]
    target: CallArgs,

    /// Configuration the plugin reads with `config_get` (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,

    #[command(flatten)]
    load: LoadArgs,

    #[command(flatten)]
    compile: CompileArgs,

    #[arg(long, short = 'f', value_enum, default_value_t = HumanOrJson::Human)]
    format: HumanOrJson,
}

const AFTER_HELP: &str = "\
Examples:
  stockade run corpus/guests/extism-greet/extism-greet.wasm --call greet --input world
  stockade run plugin.wasm --call lint --input @source.txt --format json
  stockade run math.wat --call add --arg 2 --arg 3
  stockade run plugin.wasm --call transform --no-cache --compiler cranelift

Compiled modules are cached in the user's cache directory (STOCKADE_CACHE_DIR, else
~/.cache/stockade on Linux), authenticated before use with a key kept in the user's state
directory (~/.local/state/stockade), and bounded in size, each with what
validating its function bodies found, so that a cached run does not validate every body
again (`stockade vet` always does). A module that is not cached yet is compiled by Winch
(fast to compile) for this run while a background process compiles it with Cranelift into the
cache, so that later runs get optimized code at once.

Exit status:
  0  the call returned normally (outcome `ok`)
  1  the plugin was refused by vetting, or the call ended with another outcome
  2  the tool could not do its job (unreadable path, malformed policy, bad arguments)";

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

impl Opts {
    pub fn run(self) -> anyhow::Result<Status> {
        let policy = self.load.policy.load()?;
        let input = self.target.input(policy.limits.input.get())?;
        let sandbox = Sandbox::with_options(&policy, &self.compile.sandbox_options())?;
        let file = super::read_plugin(&self.target.plugin, &policy)?;
        let options = LoadOptions { manifest: self.load.manifest.clone(), config: self.config.iter().cloned().collect(), ..LoadOptions::default() };
        // Standard output is locked only once the call is over: the watchdog prints through it.
        let outcome = match sandbox.load(&file, &options)? {
            Load::Refused(vetting) => {
                let mut out = anstream::stdout().lock();
                match self.format {
                    HumanOrJson::Human => write!(out, "{}", report::human::vetting(&vetting, super::stdout_colored()))?,
                    HumanOrJson::Json => writeln!(out, "{}", report::run::refused_json(&vetting))?,
                }
                return Ok(Status::Findings);
            }
            Load::Failed(outcome) => outcome,
            Load::Ready(plugin) => {
                // Without epoch checks in the code, the process is the deadline: at the call's
                // timeout the watchdog thread prints the `timeout` outcome as this command would
                // print it, and ends the process.
                let watchdog = plugin.deadline_by_process().then(|| {
                    let (format, function, limits, colored) = (self.format, self.target.call.clone(), policy.limits.clone(), super::stdout_colored());
                    plugin.watchdog(&input, move |outcome| {
                        let text = render(format, &outcome, &function, &limits, colored);
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
                        std::process::exit(i32::from(super::EXIT_FINDINGS));
                    })
                });
                let outcome = plugin.call(&self.target.call, &input);
                // A watchdog thread that claimed the call at its deadline prints its outcome.
                if let Some(watchdog) = watchdog {
                    watchdog.disarm_or_wait_for_the_end();
                }
                if plugin.compiler == Compiler::Winch && plugin.module_source == Source::Compiled {
                    self.compile.fill_cache_in_background(&self.target.plugin, file.cache_key(), &policy);
                }
                // The process ends after the report, and the kernel takes its memory back in
                // one piece: unmapping the instance first was a system call for nothing (and a
                // TLB shootdown where a watchdog thread runs).
                std::mem::forget(plugin);
                outcome
            }
        };
        if let Some(warning) = sandbox.cache_warning() {
            eprintln!("warning: the module cache was not used: {}", stockade::text::escape::line(&warning));
        }
        self.report(&outcome, &policy.limits)
    }

    fn report(&self, outcome: &Outcome, limits: &Limits) -> anyhow::Result<Status> {
        let mut out = anstream::stdout().lock();
        out.write_all(render(self.format, outcome, &self.target.call, limits, super::stdout_colored()).as_bytes())?;
        out.flush()?;
        Ok(if outcome.code == Code::Ok { Status::Ok } else { Status::Findings })
    }
}

/// The call's report as this command prints it.
fn render(format: HumanOrJson, outcome: &Outcome, function: &str, limits: &Limits, colored: bool) -> String {
    match format {
        HumanOrJson::Human => report::run::human(outcome, function, limits, colored),
        HumanOrJson::Json => format!("{}\n", report::run::json(outcome)),
    }
}
