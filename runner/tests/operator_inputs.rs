//! Files the operator names, and files that travel with a plugin, as an adversary would lay
//! them out: FIFOs with no writer, devices that never end, sparse files of gigabytes, link
//! loops. Every command opens them without blocking and reads within a bound: a FIFO or a
//! device is refused at once (exit 2 for the operator's own inputs, a finding or a refusal for
//! the plugin's), and nothing is read whole before a limit is checked.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::stderr;

/// A generous bound: what is tested is "ends", not "is fast" (a blocked open waits forever).
const ENDS_WITHIN: Duration = Duration::from_secs(60);

/// Runs the binary with `stdin`, killing it if it has not ended within [`ENDS_WITHIN`] (its
/// output is read meanwhile, so a long one cannot stall it on a full pipe).
fn run(args: &[&str], stdin: Stdio) -> std::process::Output {
    let child = Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("STOCKADE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("module-cache"))
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(ENDS_WITHIN) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("`stockade {}` did not end within {ENDS_WITHIN:?}", args.join(" "));
        }
    }
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success());
}

fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// Exit 2 and one line that names what is wrong.
fn assert_refused(out: &std::process::Output, mentions: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(mentions), "`{mentions}` not in: {err}");
}

#[test]
fn the_operators_files_are_refused_when_they_would_block_or_never_end() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap();
    let greet = "../corpus/guests/extism-greet/extism-greet.wasm";
    let none = || Stdio::null();

    assert_refused(&run(&["run", greet, "--call", "greet", "--input", "@/dev/zero"], none()), "not a regular file");
    assert_refused(&run(&["run", greet, "--call", "greet", "--input", &format!("@{fifo}")], none()), "a FIFO");
    assert_refused(&run(&["run", greet, "--call", "greet", "--policy", "/dev/zero"], none()), "a device");
    // A policy may come through a pipe (`--policy /dev/stdin`): one nobody writes reads as
    // empty at once, which is no policy.
    assert_refused(&run(&["vet", "--policy", fifo, greet], none()), "policy");
    assert_refused(&run(&["vet", fifo], none()), "a FIFO");
    assert_refused(&run(&["vet", "--manifest", "/dev/zero", greet], none()), "a device");
    assert_refused(&run(&["verify", greet, "--key", fifo], none()), "a FIFO");
    assert_refused(&run(&["verify", greet, "--key", "/dev/zero"], none()), "a device");
    let sparse_policy = dir.path().join("big-policy.toml");
    sparse(&sparse_policy, 2 << 30);
    assert_refused(&run(&["vet", "--policy", sparse_policy.to_str().unwrap(), greet], none()), "over");

    // A policy whose signer's key is a FIFO: the operator's error, named by its field.
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, format!("[policy]\nname = \"p\"\n[signatures]\nrequired = true\n[signatures.signers]\nanyOf = [{{ pubKey = {{ key = \"{fifo}\" }} }}]\n")).unwrap();
    assert_refused(&run(&["vet", "--policy", policy.to_str().unwrap(), greet], none()), "pubKey");

    // Standard input that never ends is read up to the input limit and a byte: the call is
    // `input-too-large`, and the process does not hold the stream.
    let out = run(&["run", greet, "--call", "greet", "--input", "-", "--format", "json"], Stdio::from(std::fs::File::open("/dev/zero").unwrap()));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "input-too-large", "{json}");
}

/// The plugin's own files: a 2 GiB sparse `plugin.toml`, a FIFO or a device in its place, are
/// findings about the plugin (`manifest-invalid`), read within a bound or not at all.
#[test]
fn a_plugins_manifest_that_would_block_or_never_end_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let module = stockade::source::wat_to_wasm("(module (func (export \"run\") (result i32) i32.const 7))").unwrap();
    for (name, make) in [
        ("sparse", Box::new(|p: &Path| sparse(p, 2 << 30)) as Box<dyn Fn(&Path)>),
        ("fifo", Box::new(|p: &Path| mkfifo(p))),
        ("device", Box::new(|p: &Path| std::os::unix::fs::symlink("/dev/zero", p).unwrap())),
        ("dangling", Box::new(|p: &Path| std::os::unix::fs::symlink("nowhere", p).unwrap())),
    ] {
        let plugin = dir.path().join(name);
        std::fs::create_dir(&plugin).unwrap();
        std::fs::write(plugin.join("plugin.wasm"), &module).unwrap();
        make(&plugin.join("plugin.toml"));
        let out = run(&["vet", "--format", "json", plugin.join("plugin.wasm").to_str().unwrap()], Stdio::null());
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["findings"][0]["code"], "manifest-invalid", "{name}: {json}");
    }
}

/// `plan` of a directory that holds a FIFO and a link loop named like modules beside a real
/// plugin: each of the two is refused on its own (`plugin-unreadable`), and the plugin is
/// planned.
#[test]
fn plan_refuses_what_is_not_a_plugin_file_and_plans_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let lint = dir.path().join("lint");
    std::fs::create_dir(&lint).unwrap();
    for file in ["plugin.wat", "plugin.toml"] {
        std::fs::copy(Path::new("tests/fixtures/plan/lint").join(file), lint.join(file)).unwrap();
    }
    std::fs::write(lint.join("plugin.toml"), "name = \"lint\"\nversion = \"1.0.0\"\nexports = [\"run\"]\n").unwrap();
    mkfifo(&dir.path().join("x.wasm"));
    std::os::unix::fs::symlink("loop.wasm", dir.path().join("loop.wasm")).unwrap();
    let out = run(&["plan", dir.path().to_str().unwrap(), "--format", "json"], Stdio::null());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(json["order"], serde_json::json!(["lint"]), "{json}");
    let codes: Vec<&str> = json["problems"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["plugin-unreadable", "plugin-unreadable"], "{json}");
}

/// What a command prints is bounded whatever the module holds: 190 imports whose names are
/// each 100 KB of control characters (escaped, four times that) once made
/// `vet` print 228 MB. Every format prints each name cut, with its length.
#[test]
fn what_vet_and_inspect_print_of_huge_names_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let name = "\u{1}".repeat(100_000);
    let mut module = wasm_encoder::Module::new();
    let mut types = wasm_encoder::TypeSection::new();
    types.ty().function([], []);
    module.section(&types);
    let mut imports = wasm_encoder::ImportSection::new();
    for i in 0..190 {
        imports.import(&format!("m{i}"), &name, wasm_encoder::EntityType::Function(0));
    }
    module.section(&imports);
    let path = dir.path().join("names.wasm");
    std::fs::write(&path, module.finish()).unwrap();
    let path = path.to_str().unwrap();
    for args in [
        vec!["vet", path],
        vec!["vet", "--format", "json", path],
        vec!["vet", "--format", "sarif", path],
        vec!["inspect", path],
        vec!["inspect", "--format", "json", path],
    ] {
        let out = run(&args, Stdio::null());
        assert!(matches!(out.status.code(), Some(0 | 1)), "{args:?}: {}", stderr(&out));
        // 190 findings, each quoting a name cut to 1024 characters (escaped, at most 4 bytes
        // each) in its message and its fields: a few megabytes at most, not hundreds.
        let printed = out.stdout.len() + out.stderr.len();
        assert!(printed < 8 << 20, "{args:?} printed {printed} bytes");
        assert!(String::from_utf8_lossy(&out.stdout).contains("(100000 bytes)"), "{args:?}: the cut says how long the name was");
    }
}
