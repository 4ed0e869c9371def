//! The call budget, checked from outside: each attack of tests/fixtures/attacks/attacks.toml
//! runs as a `stockade run` child process, and its peak RSS (wait4), wall time (the clock) and
//! bytes printed (the pipe) are held to the promise: the process stays within the policy's
//! memory limit + 64 MiB, the call ends within the timeout + 100 ms (here with a margin for a
//! busy machine, over a baseline run of a trivial plugin), and what is printed is O(the
//! output limit), in human and JSON output alike.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use stockade::Policy;

#[derive(Debug, Deserialize)]
struct Attacks {
    attack: Vec<Attack>,
}

#[derive(Debug, Deserialize)]
struct Attack {
    name: String,
    module: String,
    function: String,
    expect: String,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    fifo: Option<String>,
    policy: String,
}

/// What the operating system measured of one child process.
#[derive(Debug)]
struct Measured {
    exit: i32,
    wall: Duration,
    max_rss_bytes: u64,
    stdout: Vec<u8>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the binary and waits for it with wait4, which reports the child's own peak RSS.
#[allow(clippy::zombie_processes, reason = "the child is reaped by wait4, not Child::wait")]
fn measure(args: &[String]) -> Measured {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_stockade"));
    // Disk-fill attacks run under an outside cap too: no file may pass 256 MiB, whatever the
    // sandbox does (a write past it fails with EFBIG instead of filling the disk).
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let cap = libc::rlimit { rlim_cur: 256 << 20, rlim_max: 256 << 20 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &cap);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = command
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut out = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = out.read_to_end(&mut bytes);
        bytes
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the child is ours and not yet reaped; status and usage are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4: {}", std::io::Error::last_os_error());
    let wall = started.elapsed();
    let stdout = reader.join().expect("reader");
    let exit = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -libc::WTERMSIG(status) };
    Measured { exit, wall, max_rss_bytes: usage.ru_maxrss as u64 * 1024, stdout }
}

struct Setup {
    _scratch: tempfile::TempDir,
    _server: stockade::conform::loopback::Loopback,
    policy_path: PathBuf,
    input: Option<String>,
    policy: Policy,
}

fn setup(attack: &Attack) -> Setup {
    let scratch = tempfile::tempdir().unwrap();
    let server = stockade::conform::loopback::Loopback::start().unwrap();
    if let Some(name) = &attack.fifo {
        let path = std::ffi::CString::new(scratch.path().join(name).to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    }
    let fill = |text: &str| {
        text.replace("{scratch}", scratch.path().to_str().unwrap()).replace("{http}", &server.authority())
    };
    // The attack's keys merged over the default policy, as a corpus case's are.
    let overrides: toml::Table = toml::from_str(&fill(&attack.policy)).expect("attack policy parses");
    let origin = stockade::document::Origin::File("attacks.toml".into());
    let policy = stockade::conform::case::with_overrides(&Policy::builtin_default(), &overrides, &origin).unwrap();
    let policy_path = scratch.path().join("policy.toml");
    std::fs::write(&policy_path, toml::to_string(&policy).unwrap()).unwrap();
    Setup { input: attack.input.as_deref().map(fill), _scratch: scratch, _server: server, policy_path, policy }
}

fn run_args(module: &Path, function: &str, setup: &Setup, format: &str) -> Vec<String> {
    let mut args = vec![
        "run".to_string(),
        module.display().to_string(),
        "--call".into(),
        function.into(),
        "--policy".into(),
        setup.policy_path.display().to_string(),
        "--format".into(),
        format.into(),
    ];
    if let Some(input) = &setup.input {
        args.extend(["--input".to_string(), input.clone()]);
    }
    args
}

/// Entries a plugin created under `dir` (the policy file left out) and the bytes the file
/// system allocated for them (`st_blocks`), as `du` would count.
fn disk_use(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut entries, mut allocated) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_name() == "policy.toml" {
            continue;
        }
        let meta = entry.metadata().unwrap();
        entries += 1;
        allocated += meta.blocks() * 512;
        if meta.is_dir() {
            let (e, a) = disk_use(&entry.path());
            entries += e;
            allocated += a;
        }
    }
    (entries, allocated)
}

#[test]
fn every_attack_stays_within_the_call_budget() {
    let attacks: Attacks =
        toml::from_str(&std::fs::read_to_string(repo().join("runner/tests/fixtures/attacks/attacks.toml")).unwrap()).unwrap();
    assert!(attacks.attack.len() >= 10);
    let benign = repo().join("corpus/benign/wat-core-add/plugin.wat");
    let baseline_setup = setup(&Attack {
        name: "baseline".into(),
        module: String::new(),
        function: String::new(),
        expect: String::new(),
        input: None,
        fifo: None,
        policy: String::new(),
    });
    let mut baseline_args = run_args(&benign, "add", &baseline_setup, "json");
    baseline_args.extend(["--arg".into(), "1".into(), "--arg".into(), "2".into()]);
    let baseline = measure(&baseline_args);
    assert_eq!(baseline.exit, 0, "{}", String::from_utf8_lossy(&baseline.stdout));

    let mut failures = Vec::new();
    let mut table = String::from("attack | outcome | wall | peak RSS | printed (json / human)\n");
    for attack in &attacks.attack {
        let module = repo().join(&attack.module);
        let setup = setup(attack);
        let json = measure(&run_args(&module, &attack.function, &setup, "json"));
        // What one call left on disk, read from the file system, not from the sandbox's stats.
        let (entries, allocated) = disk_use(setup._scratch.path());
        let quota = setup.policy.limits.disk_write.get();
        if entries * 4096 > quota || allocated > quota + entries * 4096 {
            failures.push(format!(
                "{}: {entries} entries and {allocated} bytes allocated on disk; the quota is {quota}",
                attack.name
            ));
        }
        let human = measure(&run_args(&module, &attack.function, &setup, "human"));
        let document: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap_or_default();
        let outcome = document["outcome"].as_str().unwrap_or("(no JSON)").to_string();
        let limits = &setup.policy.limits;
        table.push_str(&format!(
            "{} | {outcome} | {} ms | {} MiB | {} / {} bytes\n",
            attack.name,
            json.wall.as_millis(),
            json.max_rss_bytes >> 20,
            json.stdout.len(),
            human.stdout.len()
        ));
        if outcome != attack.expect {
            failures.push(format!("{}: outcome {outcome}, expected {}", attack.name, attack.expect));
        }
        // The promise is timeout + 100 ms on a quiet machine; tests also run beside builds.
        let allowed = limits.timeout.get() + Duration::from_millis(500) + baseline.wall;
        for (format, run) in [("json", &json), ("human", &human)] {
            if run.wall > allowed {
                failures.push(format!("{} ({format}): {:?} wall; allowed {allowed:?}", attack.name, run.wall));
            }
            let rss_cap = limits.memory.get() + (64 << 20);
            if run.max_rss_bytes > rss_cap {
                failures.push(format!("{} ({format}): peak RSS {} MiB; allowed {} MiB", attack.name, run.max_rss_bytes >> 20, rss_cap >> 20));
            }
            // Output, error text and logs are each capped by the output limit; rendering may
            // escape and frame them, by a bounded factor.
            let print_cap = 8 * limits.output.get() + (64 << 10);
            if run.stdout.len() as u64 > print_cap {
                failures.push(format!("{} ({format}): printed {} bytes; allowed {print_cap}", attack.name, run.stdout.len()));
            }
        }
    }
    println!("baseline (a trivial call): {:.0?} wall, {} MiB peak RSS\n{table}", baseline.wall, baseline.max_rss_bytes >> 20);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
