//! Stockade's own worker (`stockade worker`): runs the cases `conform` sends it in its sandbox,
//! one at a time, and reports each step with what it cost. It grades nothing.

use std::io::{BufRead, Write};
use std::time::Duration;

use crate::code::{Code, Severity};
use crate::sandbox::{Allocation, Input, Load, LoadOptions, Outcome, Plugin, Sandbox, SandboxOptions, Stage};
use crate::source::PluginFile;

use super::accounting::{self, DeadlineSampler, StepClock, millis};
use super::protocol::{StepReport, WORKER_PROTOCOL, WorkerRequest, WorkerResponse};

/// Ways to make the worker fail on purpose, to prove that `conform` survives a worker that
/// dies and still reports every other case. For testing the harness only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Panic before running the case.
    Panic,
    /// Abort the process.
    Abort,
    /// Hold 1 GiB of touched memory, then run the case.
    Leak,
    /// Sleep without end.
    Hang,
    /// Answer the case, then answer it again (as a watchdog that fired as the call returned
    /// once did): the second line must not be taken for the next case's answer.
    DoubleAnswer,
}

/// Serves requests from `input` until it closes, answering each on `output`. `faults` makes
/// the cases it names fail on purpose.
pub fn serve(input: impl BufRead, mut output: impl Write, faults: &[(String, Fault)]) -> std::io::Result<()> {
    let mut held = Vec::new();
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let response = match serde_json::from_str::<WorkerRequest>(&line) {
            Ok(request) => {
                let fault = faults.iter().find(|(id, _)| *id == request.id).map(|(_, fault)| *fault);
                if let Some(fault) = fault {
                    inject(fault, &mut held);
                }
                let response = execute(&request);
                if fault == Some(Fault::DoubleAnswer) {
                    answer(&mut output, &response)?;
                    let timed_out = Outcome::failed(Code::Timeout, "a second answer");
                    let mut again = response.clone();
                    again.steps.retain(|s| s.stage == Stage::Load);
                    again.steps.push(call_step(timed_out, StepClock::start()));
                    again
                } else {
                    response
                }
            }
            Err(e) => WorkerResponse {
                protocol: WORKER_PROTOCOL.into(),
                host: host(),
                not_applicable: Some(format!("the request does not parse: {e}")),
                ..WorkerResponse::default()
            },
        };
        answer(&mut output, &response)?;
        accounting::trim_heap();
    }
    Ok(())
}

/// Held while an answer is written: a watchdog that ends the process writes its own answer
/// under it, so the two never interleave.
static ANSWERING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn answer(output: &mut impl Write, response: &WorkerResponse) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(response)?;
    line.push(b'\n');
    let _answering = ANSWERING.lock().unwrap_or_else(|p| p.into_inner());
    output.write_all(&line)?;
    output.flush()
}

fn inject(fault: Fault, held: &mut Vec<Vec<u8>>) {
    match fault {
        Fault::Panic => panic!("injected fault: panic"),
        Fault::Abort => std::process::abort(),
        Fault::Leak => held.push(vec![1u8; 1 << 30]),
        Fault::Hang => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        Fault::DoubleAnswer => {}
    }
}

fn host() -> String {
    format!("stockade {} (wasmtime {})", env!("CARGO_PKG_VERSION"), crate::WASMTIME_VERSION)
}

/// Runs one case: each module loaded, then each call made, stopping at the first module that
/// does not load.
pub fn execute(request: &WorkerRequest) -> WorkerResponse {
    let mut response = WorkerResponse { protocol: WORKER_PROTOCOL.into(), id: request.id.clone(), host: host(), ..WorkerResponse::default() };
    if request.protocol != WORKER_PROTOCOL {
        response.not_applicable = Some(format!("protocol `{}`; this worker speaks {WORKER_PROTOCOL}", request.protocol));
        return response;
    }
    let started = StepClock::start();
    let failed_before_loading = |message: String, response: &mut WorkerResponse| {
        response.steps.push(StepReport {
            error: Some(message),
            ..StepReport::measured(&started, Code::Ok, Stage::Load)
        });
    };
    let mut policy = match request.policy() {
        Ok(policy) => policy,
        Err(message) => {
            failed_before_loading(format!("the policy: {message}"), &mut response);
            return response;
        }
    };
    // Each case compiles its own modules: its verdict (a compile timeout, the compile's
    // memory) must not depend on which cases this worker ran before it.
    crate::sandbox::forget_compiled_modules();
    // The process can be the deadline's boundary for a case of one call: the watchdog ends the
    // worker at the deadline, and nothing of the case is left to run. A case with more calls
    // needs the process after a timeout (recovery, one plugin's timeout beside another's): it
    // runs with epochs whatever the policy says.
    let one_call = request.calls.len() == 1 && request.calls[0].repeat <= 1;
    if !one_call && policy.engine.deadline == crate::policy::DeadlineMechanism::Process {
        policy.engine.deadline = crate::policy::DeadlineMechanism::Epoch;
    }
    let sandbox = match Sandbox::with_options(&policy, &sandbox_options(one_call)) {
        Ok(sandbox) => sandbox,
        Err(e) => {
            failed_before_loading(format!("cannot create the sandbox: {e}"), &mut response);
            return response;
        }
    };
    let options = LoadOptions {
        manifest: request.manifest.as_ref().map(Into::into),
        config: request.config.clone(),
        skip_static_check: request.skip_static_check,
        ..LoadOptions::default()
    };
    let mut plugins: Vec<Plugin> = Vec::new();
    for module in &request.modules {
        let measure = StepClock::start();
        let load = PluginFile::read_within(std::path::Path::new(module), sandbox.policy().limits.module_size.get()).map_err(|e| e.to_string()).and_then(|file| {
            sandbox.load(&file, &options).map_err(|e| format!("cannot load {module}: {e}"))
        });
        let (step, plugin) = match load {
            // Not the plugin's doing: reported as an error with code `ok`, which no
            // expectation of a refusal matches.
            Err(message) => (StepReport { error: Some(message), ..StepReport::measured(&measure, Code::Ok, Stage::Load) }, None),
            Ok(load) => load_step(load, measure),
        };
        response.steps.push(step);
        match plugin {
            Some(plugin) => plugins.push(plugin),
            None => return response,
        }
    }
    for call in &request.calls {
        let Some(plugin) = plugins.get(call.module) else {
            response.not_applicable = Some(format!("call `{}` names module {}, which is not loaded", call.function, call.module));
            return response;
        };
        let input = Input { bytes: call.input_bytes(), args: call.args.clone() };
        for _ in 0..call.repeat.max(1) {
            let measure = StepClock::start();
            let deadline = DeadlineSampler::arm(policy.limits.timeout.get());
            let watchdog = plugin.deadline_by_process().then(|| {
                let mut answered = response.clone();
                plugin.watchdog(&input, move |outcome| {
                    answered.steps.push(call_step(outcome, measure));
                    answered.retiring = true;
                    let _ = answer(&mut std::io::stdout(), &answered);
                    std::process::exit(0);
                })
            });
            let outcome = plugin.call(&call.function, &input);
            // One answer per request: the watchdog's, if it claimed the call at the deadline.
            if let Some(watchdog) = watchdog {
                watchdog.disarm_or_wait_for_the_end();
            }
            let after_deadline = deadline.disarm();
            let mut step = call_step(outcome, measure);
            step.cpu_after_deadline_ms = Some(millis(after_deadline));
            response.steps.push(step);
        }
    }
    response
}

/// Every case of a worker shares the engines of its policy's configuration (built once per
/// worker), not the modules they compiled. A case runs its plugins once, so under `auto` they
/// are compiled by Winch; nothing is written to the disk cache, so that one run's grading does
/// not depend on what an earlier run left there.
fn sandbox_options(disposable_process: bool) -> SandboxOptions {
    // The supervisor runs a worker per job: each compiles serially (see `serial_compile`).
    SandboxOptions { allocation: WORKER_ALLOCATION, runs_once: true, disposable_process, serial_compile: true, ..SandboxOptions::default() }
}

/// Instances a worker holds at once: one case at a time, each of its plugins with its idle
/// instances and the one calling.
const WORKER_ALLOCATION: Allocation = Allocation::Pooling { instances: 64 };

fn load_step(load: Load, measure: StepClock) -> (StepReport, Option<Plugin>) {
    match load {
        Load::Ready(plugin) => {
            let findings = plugin.vetting().findings.iter().map(|f| f.code).collect();
            (StepReport { findings, ..StepReport::measured(&measure, Code::Ok, Stage::Load) }, Some(plugin))
        }
        Load::Refused(vetting) => {
            let findings: Vec<Code> = vetting.findings.iter().map(|f| f.code).collect();
            let refused_by: Vec<Code> =
                vetting.findings.iter().filter(|f| f.severity == Severity::Error).map(|f| f.code).collect();
            let code = refused_by.first().copied().unwrap_or(Code::Ok);
            (StepReport { findings, refused_by, ..StepReport::measured(&measure, code, Stage::Load) }, None)
        }
        Load::Failed(outcome) => (StepReport { error: outcome.error.clone(), ..StepReport::measured(&measure, outcome.code, outcome.stage) }, None),
    }
}

fn call_step(outcome: Outcome, measure: StepClock) -> StepReport {
    StepReport { error: outcome.error.clone(), ..StepReport::measured(&measure, outcome.code, outcome.stage) }
        .with_output(outcome.output.as_deref())
}
