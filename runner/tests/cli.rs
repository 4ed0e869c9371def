//! The command as a registry's CI runs it: exit codes, one-line errors, never a panic.

mod common;

use common::{assert_tool_error, code, stderr, stockade};

use std::path::Path;

fn vet_json(path: &Path) -> (i32, serde_json::Value) {
    let out = stockade(&["vet", "--format", "json", path.to_str().unwrap()]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    (code(&out), json)
}

#[test]
fn a_plugins_broken_artifacts_are_findings() {
    let dir = tempfile::tempdir().unwrap();
    let good = stockade::source::wat_to_wasm("(module (func (export \"run\") (result i32) i32.const 7))").unwrap();

    let truncated = dir.path().join("truncated.wasm");
    std::fs::write(&truncated, &good[..good.len() - 4]).unwrap();
    let random = dir.path().join("random.wasm");
    // Deterministic noise: no test that fails one run in a thousand.
    let noise: Vec<u8> = (0u32..4096).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&random, noise).unwrap();
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"").unwrap();

    for path in [&truncated, &random, &empty] {
        let (exit, json) = vet_json(path);
        assert_eq!(exit, 1, "{json}");
        assert_eq!(json["verdict"], "fail");
        assert_eq!(json["findings"][0]["code"], "malformed", "{json}");
        assert!(json["findings"][0]["offset"].is_u64(), "malformed carries the offset: {json}");
    }

    let (exit, json) = vet_json(&common::fixture_module("malformed-wat"));
    assert_eq!((exit, json["findings"][0]["code"].as_str()), (1, Some("malformed")));
    assert_eq!(json["findings"][0]["offset"], 64);

    for (fixture, line, field) in [("manifest-wrong-type", 6, "limits.memory"), ("manifest-unknown-field", 4, "capabilites")] {
        let (exit, json) = vet_json(&common::fixture_module(fixture));
        assert_eq!(exit, 1);
        let finding = &json["findings"][0];
        assert_eq!(finding["code"], "manifest-invalid");
        let message = finding["message"].as_str().unwrap();
        assert!(message.contains(&format!("plugin.toml:{line}:")), "{message}");
        assert!(message.contains(field), "{message}");
    }
}

#[test]
fn the_operators_broken_inputs_are_tool_errors() {
    let dir = tempfile::tempdir().unwrap();
    let module = common::fixture_module("benign-extism");
    let module = module.to_str().unwrap();

    let wrong_type = dir.path().join("wrong-type.toml");
    std::fs::write(&wrong_type, "[policy]\nname = \"p\"\n[limits]\nmemory = [1]\n").unwrap();
    let out = stockade(&["vet", "--policy", wrong_type.to_str().unwrap(), module]);
    assert_tool_error(&out, "wrong-type.toml:4:10: field `limits.memory`");

    let unknown_field = dir.path().join("unknown-field.toml");
    std::fs::write(&unknown_field, "[policy]\nname = \"p\"\ncolour = \"red\"\n").unwrap();
    let out = stockade(&["vet", "--policy", unknown_field.to_str().unwrap(), module]);
    assert_tool_error(&out, "unknown field `colour`");

    let out = stockade(&["vet", "--policy", "no/such/policy.toml", module]);
    assert_tool_error(&out, "cannot read policy no/such/policy.toml");

    let out = stockade(&["vet", "no/such/plugin.wasm"]);
    assert_tool_error(&out, "cannot read no/such/plugin.wasm");

    let out = stockade(&["vet", "--manifest", "no/such/plugin.toml", module]);
    assert_tool_error(&out, "cannot read no/such/plugin.toml");

    let out = stockade(&["vet", "--format", "xml", module]);
    assert_tool_error(&out, "invalid value 'xml' for '--format <FORMAT>'");

    let out = stockade(&["vet"]);
    assert_tool_error(&out, "required");

    let out = stockade(&["vet", "--manifest", "x.toml", module, module]);
    assert_tool_error(&out, "--manifest names the manifest of one plugin");

    let out = stockade(&["explain", "no-such-code"]);
    assert_tool_error(&out, "unknown code `no-such-code`");
}

#[test]
fn exit_status_follows_the_verdict() {
    let pass = stockade(&["vet", common::fixture_module("benign-extism").to_str().unwrap()]);
    assert_eq!(code(&pass), 0, "{}", stderr(&pass));
    // Warnings alone do not fail.
    let warn = stockade(&["vet", common::fixture_module("unused-capability").to_str().unwrap()]);
    assert_eq!(code(&warn), 0);
    let fail = stockade(&["vet", common::fixture_module("capability-denied").to_str().unwrap()]);
    assert_eq!(code(&fail), 1);
    // With several plugins: JSON Lines, and one failure fails the run.
    let both = stockade(&[
        "vet",
        "--format",
        "json",
        "--jobs",
        "2",
        common::fixture_module("benign-extism").to_str().unwrap(),
        common::fixture_module("capability-denied").to_str().unwrap(),
    ]);
    assert_eq!(code(&both), 1);
    let lines: Vec<serde_json::Value> =
        String::from_utf8(both.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["verdict"], "pass");
    assert_eq!(lines[1]["verdict"], "fail");
}

#[test]
fn shipped_policies_work_from_the_command_line() {
    let module = common::fixture_module("benign-extism");
    for (policy, exit) in [("default", 0), ("registry-strict", 1), ("permissive-dev", 0)] {
        let path = format!("../policies/{policy}.toml");
        let out = stockade(&["vet", "--policy", &path, module.to_str().unwrap()]);
        assert_eq!(code(&out), exit, "{policy}: {}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn sarif_is_what_code_scanning_expects() {
    let out = stockade(&[
        "vet",
        "--format",
        "sarif",
        common::fixture_module("capability-denied").to_str().unwrap(),
        common::fixture_module("manifest-unknown-field").to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 1);
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let static_codes = stockade::Code::ALL.iter().filter(|c| c.stage() == stockade::code::Stage::Static).count();
    assert_eq!(rules.len(), static_codes, "one rule per static code");
    for result in run["results"].as_array().unwrap() {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"], "ruleIndex points at its rule");
        assert!(result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].is_string());
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
    }
    let manifest_result = run["results"].as_array().unwrap().iter().find(|r| r["ruleId"] == "manifest-invalid").unwrap();
    let location = &manifest_result["locations"][0]["physicalLocation"];
    assert!(location["artifactLocation"]["uri"].as_str().unwrap().ends_with("plugin.toml"));
    assert_eq!(location["region"]["startLine"], 4);
}

#[test]
fn explain_lists_and_explains_every_code() {
    let out = stockade(&["explain"]);
    assert_eq!(code(&out), 0);
    let listing = String::from_utf8(out.stdout).unwrap();
    for code in stockade::Code::ALL {
        assert!(listing.contains(code.as_str()), "{code} missing from the listing");
        let out = stockade(&["explain", code.as_str()]);
        assert_eq!(self::code(&out), 0);
        assert!(String::from_utf8(out.stdout).unwrap().contains(code.explanation().split_whitespace().next().unwrap()));
    }
}

#[test]
fn help_has_examples_and_exit_status() {
    for sub in ["vet", "inspect", "explain", "run", "conform"] {
        let out = stockade(&[sub, "--help"]);
        assert_eq!(code(&out), 0);
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Examples:") && help.contains("Exit status:"), "{sub}: {help}");
    }
}

#[test]
fn inspect_reports_the_import_table() {
    let out = stockade(&["inspect", "../corpus/guests/extism-greet/extism-greet.wasm"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("extism:host/env.config_get"), "{text}");
    assert!(text.contains("plugin.toml"), "the manifest beside it is found: {text}");
    let out = stockade(&["inspect", "--format", "json", common::fixture_module("malformed-wat").to_str().unwrap()]);
    assert_eq!(code(&out), 1, "nothing to inspect in an undecodable module");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema"], "stockade.inspect/1");
}

#[test]
fn run_follows_the_json_contract() {
    let greet = "../corpus/guests/extism-greet/extism-greet.wasm";
    let out = stockade(&["run", greet, "--call", "greet", "--input", "world", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema"], "stockade.run/1");
    assert_eq!(json["outcome"], "ok");
    assert_eq!(json["output"], "Hello, world!");
    for stat in ["peak_memory_bytes", "wall_ns", "compile_ns", "instantiate_ns"] {
        assert!(json["stats"][stat].is_u64(), "{stat}: {json}");
    }

    // A plugin that fails vetting is not run.
    let out = stockade(&["run", "../corpus/guests/wasi-hello/wasi-hello.wasm", "--call", "_start", "--format", "json"]);
    assert_eq!(code(&out), 1);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "refused");
    assert_eq!(json["findings"][0]["code"], "capability-denied");

    // Input from a file; a missing input file is the operator's error.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "file").unwrap();
    let at = format!("@{}", input.display());
    let out = stockade(&["run", greet, "--call", "greet", "--input", &at, "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["output"], "Hello, file!");
    let out = stockade(&["run", greet, "--call", "greet", "--input", "@no/such/input"]);
    assert_tool_error(&out, "cannot read input file no/such/input");
}

#[test]
fn run_reports_a_contained_plugin_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("spin.wat");
    std::fs::write(&module, r#"(module (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0)))"#).unwrap();
    let policy = dir.path().join("fast.toml");
    std::fs::write(&policy, "[policy]\nname = \"fast\"\n[limits]\ntimeout = \"100ms\"\n").unwrap();
    let out = stockade(&["run", module.to_str().unwrap(), "--call", "spin", "--policy", policy.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("timeout: `spin`"), "{text}");
    assert!(text.contains("(over the limit)"), "the value over its limit is marked: {text}");
}

/// `stockade run --format json` with a cache directory; the outcome document.
fn run_cached(plugin: &str, cache: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["run", plugin, "--call", "greet", "--input", "cache", "--format", "json", "--cache-dir", cache.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = stockade(&args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["output"], "Hello, cache!");
    json
}

/// The cache's files of one kind: `cwasm` (compiled modules) or `validated` (validation memos).
fn cache_files(cache: &Path, extension: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(cache) else { return Vec::new() };
    entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == extension)).collect()
}

fn artifacts(cache: &Path) -> Vec<std::path::PathBuf> {
    cache_files(cache, "cwasm")
}

#[test]
fn run_caches_cranelifts_code_and_trusts_only_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let greet = "../corpus/guests/extism-greet/extism-greet.wasm";
    let cranelift = ["--compiler", "cranelift"];
    let from = |json: &serde_json::Value| (json["stats"]["module_from"].as_str().unwrap().to_string(), json["stats"]["compiler"].as_str().unwrap().to_string());
    assert_eq!(from(&run_cached(greet, &cache, &cranelift)), ("compiled".into(), "cranelift".into()));
    assert_eq!(from(&run_cached(greet, &cache, &cranelift)), ("disk".into(), "cranelift".into()));
    assert_eq!(artifacts(&cache).len(), 1, "one compiled artifact, reused by the second run");

    // Another engine configuration (fuel on) never picks up this engine's artifact.
    let fueled = dir.path().join("fuel.toml");
    let text = stockade::policy::DEFAULT_POLICY_TOML.replace("# fuel = 1_000_000_000", "fuel = 1_000_000_000");
    assert!(text.contains("\nfuel = "));
    std::fs::write(&fueled, text).unwrap();
    let fueled = ["--compiler", "cranelift", "--policy", fueled.to_str().unwrap()];
    assert_eq!(from(&run_cached(greet, &cache, &fueled)).0, "compiled");
    assert_eq!(artifacts(&cache).len(), 2);

    // Tampered and planted artifacts are compiled afresh, never deserialized.
    for path in artifacts(&cache) {
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    assert_eq!(from(&run_cached(greet, &cache, &cranelift)).0, "compiled", "tampered");
    for path in artifacts(&cache) {
        std::fs::write(&path, b"not an artifact this cache wrote").unwrap();
    }
    assert_eq!(from(&run_cached(greet, &cache, &cranelift)).0, "compiled", "planted");

    // --no-cache neither reads nor writes: every run compiles.
    for _ in 0..2 {
        let out = stockade(&["run", greet, "--call", "greet", "--no-cache", "--compiler", "cranelift", "--format", "json"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["stats"]["module_from"], "compiled");
    }
    let out = stockade(&["run", greet, "--call", "greet", "--no-cache", "--cache-dir", "x"]);
    assert_eq!(code(&out), 2, "the two contradict each other");
}

/// What a cache fault prints: one warning line on stderr, and the run goes on uncached.
fn run_uncached_with_warning(cache: &Path, env: &[(&str, &Path)], mentions: &str) {
    let greet = "../corpus/guests/extism-greet/extism-greet.wasm";
    for _ in 0..2 {
        let args = ["run", greet, "--call", "greet", "--input", "cache", "--format", "json", "--compiler", "cranelift", "--cache-dir", cache.to_str().unwrap()];
        let started = std::time::Instant::now();
        let out = common::stockade_with_env(&args, env);
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "a cache fault must not stall the run");
        let err = stderr(&out);
        assert_eq!(code(&out), 0, "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("warning: the module cache was not used") && err.contains(mentions), "`{mentions}` not in: {err}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((json["outcome"].as_str(), json["stats"]["module_from"].as_str()), (Some("ok"), Some("compiled")), "never trusted: {json}");
    }
}

/// The cache is only ever an optimisation: a directory that cannot be created, one someone
/// else could write, a key that is not this user's secret (readable by others, a link to a
/// device, the wrong size, planted by another user) make the run uncached, with one warning
/// line, and nothing in them is trusted.
#[test]
fn a_cache_that_cannot_be_trusted_is_not_used_and_the_run_goes_on() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let env = [("XDG_STATE_HOME", state.as_path())];
    let key_dir = state.join("stockade");
    let key = key_dir.join("cache.key");
    let mode = |path: &Path, mode| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();

    // Cannot be created: a file stands where a parent directory should be.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    run_uncached_with_warning(&file.join("cache"), &env, file.join("cache").to_str().unwrap());

    // Writable by others: created by someone else in advance, as a trap.
    let open = dir.path().join("world-writable");
    std::fs::create_dir(&open).unwrap();
    mode(&open, 0o777);
    run_uncached_with_warning(&open, &env, "writable by others");

    let cache = dir.path().join("cache");
    // The key as this user makes it: owner-only, in a directory of its own, outside the cache.
    let out = common::stockade_with_env(&["run", "../corpus/guests/extism-greet/extism-greet.wasm", "--call", "greet", "--cache-dir", cache.to_str().unwrap()], &env);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&key_dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(std::fs::read_dir(&cache).unwrap().flatten().all(|e| !e.file_name().to_string_lossy().contains("key")), "no key beside the artifacts");

    // A key others may read is no secret.
    mode(&key, 0o644);
    run_uncached_with_warning(&cache, &env, "cache.key");
    // A key of the wrong size, or a link (here to a device that never ends).
    std::fs::remove_file(&key).unwrap();
    std::fs::write(&key, [7u8; 31]).unwrap();
    mode(&key, 0o600);
    run_uncached_with_warning(&cache, &env, "not 32");
    std::fs::remove_file(&key).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &key).unwrap();
    run_uncached_with_warning(&cache, &env, "link");
    std::fs::remove_file(&key).unwrap();
    // A key directory someone else could write.
    mode(&key_dir, 0o777);
    run_uncached_with_warning(&cache, &env, "writable by others");
    mode(&key_dir, 0o700);

    // Planted by another user, directory, key and all: owned by them, so not used (as root,
    // the test can make files another user's).
    if is_root() {
        let foreign = dir.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
        run_uncached_with_warning(&foreign, &env, "owned by uid 65534");
        std::fs::write(&key, [1u8; 32]).unwrap();
        mode(&key, 0o600);
        std::os::unix::fs::chown(&key, Some(65534), Some(65534)).unwrap();
        run_uncached_with_warning(&cache, &env, "owned by uid 65534");
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// A plugin whose directory grant reaches the cache directory or the key's directory
/// (containing it or inside it, read-only or read-write, with the cache on or off) is refused
/// at load: it could read the key, or write code a later run would execute.
#[test]
fn a_plugin_granted_a_directory_reaching_the_cache_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let env = [("XDG_STATE_HOME", state.as_path())];
    let cache = dir.path().join("work").join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let apart = dir.path().join("apart");
    std::fs::create_dir_all(&apart).unwrap();
    let run = |grant: &Path, mode: &str, cache_args: &[&str]| {
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, format!("[policy]\nname = \"p\"\n[capabilities]\nallow = [\"stdio\"]\n[[capabilities.fs]]\nhost = \"{}\"\nguest = \"/data\"\nmode = \"{mode}\"\n", grant.display())).unwrap();
        let mut args = vec!["run", "../corpus/filesystem/open.wat", "--call", "open", "--input", "x", "--format", "json", "--policy", policy.to_str().unwrap()];
        args.extend_from_slice(cache_args);
        let out = common::stockade_with_env(&args, &env);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
        (code(&out), json)
    };
    let with_cache = ["--cache-dir", cache.to_str().unwrap()];
    for (grant, mode, args) in [
        (dir.path().join("work"), "rw", &with_cache[..]),
        (dir.path().join("work"), "ro", &with_cache[..]),
        (cache.clone(), "ro", &with_cache[..]),
        (cache.join("sub"), "rw", &with_cache[..]),
        // Through `..`: the grant resolves into the cache.
        (apart.join("..").join("work"), "rw", &with_cache[..]),
        // The key's directory, whose parent does not exist yet, and with the cache off.
        (state.clone(), "rw", &["--no-cache"][..]),
        (dir.path().to_path_buf(), "ro", &["--no-cache"][..]),
    ] {
        let (exit, json) = run(&grant, mode, args);
        assert_eq!((exit, json["outcome"].as_str(), json["stage"].as_str()), (1, Some("grant-exposes-cache"), Some("load")), "{} {mode}: {json}", grant.display());
    }
    // A grant apart from both runs (the file is not there: WASI's `noent`, 44).
    let (exit, json) = run(&apart, "rw", &with_cache);
    assert_eq!((exit, json["outcome"].as_str(), json["output"].as_str()), (0, Some("ok"), Some("44")), "{json}");
}

fn memos(cache: &Path) -> Vec<std::path::PathBuf> {
    cache_files(cache, "validated")
}

/// A cached run takes the bodies' validation from the cache's memo; the vetting must be the one
/// a full validation gives, and a memo the cache did not write must never stand in for one.
/// Locals count in the compile budget, but the validation memo keeps what validation counted:
/// cached runs of a module with many locals read the memo, never write it again, and vet it
/// the same each time (the cost once grew by the locals at every cached run, the memo being
/// rewritten with it each time).
#[test]
fn cached_runs_of_a_module_with_locals_neither_rewrite_the_memo_nor_drift() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let module = dir.path().join("locals.wat");
    std::fs::write(&module, r#"(module (func (export "run") (result i32) (local i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (i32.const 7)))"#).unwrap();
    let run = || {
        let out = stockade(&["run", module.to_str().unwrap(), "--call", "run", "--format", "json", "--compiler", "cranelift", "--cache-dir", cache.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    };
    run();
    let memo = memos(&cache).remove(0);
    let written = std::fs::read(&memo).unwrap();
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&memo).unwrap().set_modified(long_ago).unwrap();
    for _ in 0..3 {
        run();
    }
    assert_eq!(std::fs::read(&memo).unwrap(), written, "the memo is what the first run wrote");
    assert_eq!(std::fs::metadata(&memo).unwrap().modified().unwrap(), long_ago, "and was not written again");
    let vetted = |args: &[&str]| {
        let mut all = vec!["vet", module.to_str().unwrap(), "--format", "json"];
        all.extend_from_slice(args);
        serde_json::from_slice::<serde_json::Value>(&stockade(&all).stdout).unwrap()["findings"].clone()
    };
    assert_eq!(vetted(&[]), serde_json::json!([]));
}

#[test]
fn a_cached_run_reuses_only_validation_the_cache_itself_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    // Two bodies over a tight compile-cost limit, so the memo's counts decide findings.
    let heavy = dir.path().join("heavy.wat");
    std::fs::write(&heavy, r#"(module
        (func (export "a") (result i32) (loop (loop (loop (nop)))) (i32.const 1))
        (func (export "b") (result i32) (block (block (nop))) (i32.const 2)))"#).unwrap();
    let policy = dir.path().join("tight.toml");
    let text = stockade::policy::DEFAULT_POLICY_TOML.replace("function-control-flow = 8000", "function-control-flow = 5");
    assert!(text.contains("function-control-flow = 5 "));
    std::fs::write(&policy, text).unwrap();
    let run = |module: &Path| {
        let out = stockade(&["run", module.to_str().unwrap(), "--call", "b", "--format", "json", "--compiler", "cranelift",
            "--cache-dir", cache_arg, "--policy", policy.to_str().unwrap()]);
        (code(&out), serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out))))
    };
    let full = stockade(&["vet", heavy.to_str().unwrap(), "--format", "json", "--policy", policy.to_str().unwrap()]);
    let full: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    let (first_code, first) = run(&heavy);
    assert_eq!(first_code, 1, "function a is over the limit: {first}");
    assert_eq!(memos(&cache).len(), 1, "the first run records its validation");
    let (second_code, second) = run(&heavy);
    assert_eq!((second_code, &second), (first_code, &first), "the memo gives the same vetting");
    assert_eq!(second["findings"], full["findings"], "and the one `vet` gives: {second}");

    // A memo whose bytes changed is not believed: the bodies are validated again (and the memo
    // written afresh), with the same result.
    let memo = memos(&cache).remove(0);
    let mut bytes = std::fs::read(&memo).unwrap();
    let cost = bytes.windows(2).position(|w| w == b"[[").unwrap() + 2;
    bytes[cost] = if bytes[cost] == b'1' { b'2' } else { b'1' };
    std::fs::write(&memo, &bytes).unwrap();
    let (tampered_code, tampered) = run(&heavy);
    assert_eq!((tampered_code, &tampered), (first_code, &first));
    assert_ne!(std::fs::read(&memo).unwrap(), bytes, "rewritten");

    // A body that does not validate, with a good module's memo planted under its digest: the
    // memo names the module it was written for, so the broken one is still refused as invalid.
    let broken = dir.path().join("broken.wasm");
    let mut wasm = stockade::source::wat_to_wasm(r#"(module (func (export "b") (result i32) (i32.const 2)))"#).unwrap();
    let at = wasm.windows(2).rposition(|w| w == [0x41, 0x02]).unwrap();
    wasm[at] = 0x42; // i32.const 2 becomes i64.const 2: the body's result type no longer fits
    std::fs::write(&broken, &wasm).unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
    let name = memo.file_name().unwrap().to_str().unwrap();
    let planted = cache.join(format!("{digest}{}", &name[64..]));
    std::fs::copy(&memo, &planted).unwrap();
    let (broken_code, broken) = run(&broken);
    assert_eq!(broken_code, 1);
    let codes: Vec<_> = broken["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect();
    assert_eq!(codes, ["invalid"], "{broken}");
}

#[test]
fn a_cold_run_uses_winch_and_leaves_cranelifts_code_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let greet = "../corpus/guests/extism-greet/extism-greet.wasm";
    let first = run_cached(greet, &cache, &[]);
    assert_eq!(first["stats"]["compiler"], "winch", "{first}");
    assert_eq!(first["stats"]["module_from"], "compiled");
    // The background compile finishes on its own time; a busy machine may take seconds.
    let waited = std::time::Instant::now();
    while artifacts(&cache).is_empty() && waited.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let later = run_cached(greet, &cache, &[]);
    assert_eq!((later["stats"]["compiler"].as_str(), later["stats"]["module_from"].as_str()), (Some("cranelift"), Some("disk")), "{later}");
}

#[test]
fn operator_values_out_of_range_are_tool_errors_with_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let module = common::fixture_module("benign-extism");
    let module = module.to_str().unwrap();
    // Each once panicked (Instant + Duration overflow) or would have allocated without bound.
    for (body, field) in [
        ("timeout = \"500000000000y\"", "wrong.toml:4:11: field `limits.timeout`"),
        ("memory = \"16EiB\"", "field `limits.memory`"),
        ("stack = \"1KiB\"", "field `limits.stack`"),
        ("fuel = 0", "field `limits.fuel`"),
        ("compile-timeout = \"0s\"", "field `limits.compile-timeout`"),
        ("instance-reuse = \"sometimes\"", "field `limits.instance-reuse`"),
    ] {
        let policy = dir.path().join("wrong.toml");
        std::fs::write(&policy, format!("[policy]\nname = \"p\"\n[limits]\n{body}\n")).unwrap();
        let out = stockade(&["run", module, "--call", "greet", "--policy", policy.to_str().unwrap()]);
        assert_tool_error(&out, field);
        assert!(stderr(&out).contains("out of range") || body.contains("sometimes"), "{}", stderr(&out));
    }
    let manifest = dir.path().join("plugin.toml");
    std::fs::write(&manifest, "name = \"x\"\nversion = \"1.0.0\"\n[limits]\ntimeout = \"900000000y\"\n").unwrap();
    let out = stockade(&["vet", "--manifest", manifest.to_str().unwrap(), module]);
    assert_eq!(code(&out), 1, "a plugin's own manifest out of range is a finding");
    assert!(String::from_utf8_lossy(&out.stdout).contains("manifest-invalid"));

    // A corpus case is the operator's input too.
    for (body, field) in [
        ("repeat = 0", "field `call[0].repeat`"),
        ("input-repeat = 99999999999999", "field `call[0].input-repeat`"),
    ] {
        let corpus = tempfile::tempdir().unwrap();
        let case = corpus.path().join("c");
        std::fs::create_dir(&case).unwrap();
        std::fs::write(case.join("plugin.wat"), "(module (func (export \"f\")))").unwrap();
        std::fs::write(case.join("case.toml"), format!("class = \"x\"\ndescription = \"x\"\n[[call]]\nfunction = \"f\"\nexpect = \"ok\"\ninput = \"x\"\n{body}\n")).unwrap();
        let out = stockade(&["conform", "--corpus", corpus.path().to_str().unwrap(), "--report-dir", dir.path().to_str().unwrap()]);
        assert_tool_error(&out, field);
    }
    let corpus = tempfile::tempdir().unwrap();
    let case = corpus.path().join("c");
    std::fs::create_dir(&case).unwrap();
    std::fs::write(case.join("plugin.wat"), "(module (func (export \"f\")))").unwrap();
    std::fs::write(case.join("case.toml"), "class = \"x\"\ndescription = \"x\"\n[[call]]\nfunction = \"f\"\nexpect = \"ok\"\ninput = \"xxxx\"\ninput-repeat = 1073741824\n").unwrap();
    let out = stockade(&["conform", "--corpus", corpus.path().to_str().unwrap(), "--report-dir", dir.path().to_str().unwrap()]);
    assert_tool_error(&out, "the input repeated is 4294967296 bytes");
}

#[test]
fn text_from_a_plugin_is_escaped_for_the_terminal() {
    let forged = Path::new("tests/fixtures/rendering/forged-import.wat");
    let out = stockade(&["vet", forged.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(!text.contains('\u{1b}'), "an escape reached the terminal:\n{text}");
    assert!(!text.lines().any(|l| l.starts_with("PASS")), "a forged PASS line:\n{text}");
    assert!(text.contains("env.x\\n\\e[32mPASS"), "{text}");
    // JSON stays exact: the name as the module has it.
    let (_, json) = vet_json(forged);
    assert_eq!(json["findings"][0]["import"]["name"], "x\n\u{1b}[32mPASS\u{1b}[0m everything is fine\u{1b}[2J");

    let escapes = "tests/fixtures/rendering/escapes.wat";
    let out = stockade(&["run", escapes, "--call", "run"]);
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'), "{text:?}");
    assert!(!text.lines().any(|l| l.starts_with("PASS")), "{text}");
    assert!(text.contains("  | PASS for") && text.contains("[warn] \\e]0;owned\\x07"), "{text}");
    let out = stockade(&["run", escapes, "--call", "run", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["output"].as_str().unwrap().starts_with("\u{1b}]0;owned\u{7}"), "JSON output is exact");
    let out = stockade(&["inspect", forged.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'));
}

/// A core module whose `work` export loops `n` times.
fn looping_plugin(dir: &Path, name: &str, n: u32) -> std::path::PathBuf {
    let path = dir.join(name);
    let wat = format!(
        r#"(module (func (export "work") (result i32) (local $i i32)
             (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
                      (br_if $l (i32.lt_u (local.get $i) (i32.const {n}))))
             (local.get $i)))"#
    );
    std::fs::write(&path, wat).unwrap();
    path
}

#[test]
fn bench_gates_a_release_on_its_baseline_and_budget() {
    let dir = tempfile::tempdir().unwrap();
    let fast = looping_plugin(dir.path(), "fast.wat", 100_000);
    let slow = looping_plugin(dir.path(), "slow.wat", 300_000);
    let bench = |plugin: &Path, extra: &[&str]| {
        let mut args = vec!["bench", plugin.to_str().unwrap(), "--call", "work", "--iterations", "50"];
        args.extend_from_slice(extra);
        stockade(&args)
    };
    let out = bench(&fast, &["--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["schema"], "stockade.bench/1");
    for figure in ["cold-load", "cached-load", "instantiate", "call-p50", "call-p99", "peak-rss", "instructions"] {
        assert!(report["figures"][figure].as_u64().is_some_and(|v| v > 0), "{figure}: {report}");
    }
    let baseline = dir.path().join("baseline.json");
    std::fs::write(&baseline, &out.stdout).unwrap();

    // The same plugin against its own baseline passes, and three times the work is caught,
    // with the figures over named. Gated on instructions, which tests running beside this
    // one cannot move (timing figures are gated on a quiet machine: see the README).
    let gate = ["--baseline", baseline.to_str().unwrap(), "--only", "instructions"];
    let out = bench(&fast, &gate);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    let out = bench(&slow, &gate);
    assert_eq!(code(&out), 1);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("over: instructions is"), "{text}");

    let budget = dir.path().join("budget.toml");
    std::fs::write(&budget, "instructions = 1000\npeak-rss = \"4GiB\"\n").unwrap();
    let out = bench(&fast, &["--budget", budget.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stdout).contains("over: instructions is"));

    std::fs::write(&budget, "call-p50 = \"fast\"\n").unwrap();
    assert_tool_error(&bench(&fast, &["--budget", budget.to_str().unwrap()]), "call-p50");
    std::fs::write(&budget, "speed = 1\n").unwrap();
    assert_tool_error(&bench(&fast, &["--budget", budget.to_str().unwrap()]), "not a figure");
    std::fs::write(&baseline, "{}").unwrap();
    assert_eq!(code(&bench(&fast, &["--baseline", baseline.to_str().unwrap()])), 2);
}

/// A file far over `module-size` is refused by its size without being held in memory: the
/// child's peak RSS, read by `wait4` from outside it, stays far below the file's length.
#[test]
#[allow(clippy::zombie_processes, reason = "reaped by wait4, which also gives its rusage")]
fn an_oversized_module_is_refused_without_being_read_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.wasm");
    // Sparse: 256 MiB long, nothing on disk; the default policy allows 20 MiB.
    std::fs::File::create(&path).unwrap().set_len(256 << 20).unwrap();
    let (status, text, peak_bytes) = vet_measured_from_outside(&[path.to_str().unwrap()]);
    assert_eq!(status, 1, "{text}");
    assert!(text.contains("module-too-large"), "{text}");
    assert!(peak_bytes < 100 << 20, "peak RSS {peak_bytes} bytes vetting a 256 MiB file");
}

/// `stockade vet --format json ARGS…` in a child: its exit status, its output and its peak RSS
/// as the kernel counts it (wait4), not as Stockade does.
#[allow(clippy::zombie_processes, reason = "reaped by wait4, which std's Child cannot give the rusage of")]
fn vet_measured_from_outside(args: &[&str]) -> (i32, String, u64) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(["vet", "--format", "json"])
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for the child spawned above, whose handle was consumed without waiting.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    (libc::WEXITSTATUS(status), text, usage.ru_maxrss as u64 * 1024)
}

/// A signature file is the plugin's own artifact: one of 1 GiB beside the module is refused
/// after its first MiB, not read whole (the process's peak RSS, from outside).
#[test]
fn an_oversized_signature_file_is_refused_without_being_read_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("plugin.wat");
    std::fs::write(&module, "(module)").unwrap();
    std::fs::File::create(dir.path().join("plugin.wat.sigstore.json")).unwrap().set_len(1 << 30).unwrap();
    let key = dir.path().join("registry.pub");
    std::fs::write(&key, stockade::signature::generate_key_pair().unwrap().1).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[policy]\nname = \"p\"\n[signatures]\nrequired = true\n[signatures.signers]\nanyOf = [{ pubKey = { key = \"registry.pub\" } }]\n").unwrap();
    let (status, text, peak_bytes) = vet_measured_from_outside(&["--policy", policy.to_str().unwrap(), module.to_str().unwrap()]);
    assert_eq!(status, 1, "{text}");
    assert!(text.contains("signature-invalid") && text.contains("over 1048576 bytes"), "{text}");
    assert!(peak_bytes < 100 << 20, "peak RSS {peak_bytes} bytes beside a 1 GiB signature file");
}

/// Where the process is the boundary (`stockade run`, `engine.deadline` auto or "process"), the
/// code carries no epoch checks and a watchdog ends the process at the deadline: the outcome is
/// the same `timeout`, at the stage the call reached, in the same JSON shape as an epoch's.
#[test]
fn a_timeout_from_the_process_watchdog_reads_like_one_from_an_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let spin = dir.path().join("spin.wat");
    std::fs::write(&spin, r#"(module (func (export "spin") (loop (br 0))))"#).unwrap();
    let spin_at_start = dir.path().join("start.wat");
    std::fs::write(&spin_at_start, r#"(module (func $spin (loop (br 0))) (start $spin) (func (export "spin")))"#).unwrap();
    let policy = |deadline: &str| {
        let path = dir.path().join(format!("{deadline}.toml"));
        std::fs::write(&path, format!("[policy]\nname = \"t\"\n[limits]\ntimeout = \"300ms\"\n[engine]\ndeadline = \"{deadline}\"\n")).unwrap();
        path
    };
    let run = |module: &Path, deadline: &str| {
        let started = std::time::Instant::now();
        let out = stockade(&["run", module.to_str().unwrap(), "--call", "spin", "--format", "json", "--policy", policy(deadline).to_str().unwrap()]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
        (code(&out), json, started.elapsed())
    };
    let keys = |json: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
        keys.extend(json["stats"].as_object().unwrap().keys().map(|k| format!("stats.{k}")));
        keys.sort();
        keys
    };
    for (module, stage) in [(&spin, "call"), (&spin_at_start, "instantiate")] {
        let (status, by_process, took) = run(module, "process");
        assert_eq!((status, by_process["outcome"].as_str(), by_process["stage"].as_str()), (1, Some("timeout"), Some(stage)), "{by_process}");
        assert!(by_process["error"].as_str().unwrap().contains("process watchdog"), "{by_process}");
        // A bound a busy machine keeps: it ended, and not at the policy's default 5 s.
        assert!(took < std::time::Duration::from_secs(4), "{took:?}");
        let (status, by_epoch, _) = run(module, "epoch");
        assert_eq!((status, by_epoch["outcome"].as_str(), by_epoch["stage"].as_str()), (1, Some("timeout"), Some(stage)), "{by_epoch}");
        assert_eq!(keys(&by_process), keys(&by_epoch), "the same shape:\n{by_process}\n{by_epoch}");
    }
    // `auto` is the process for a run; the two mechanisms compile different code, so each has
    // its own cache entry.
    let (_, auto, _) = run(&spin, "auto");
    assert!(auto["error"].as_str().unwrap().contains("process watchdog"), "{auto}");
    // The peak is the one the call reached before the deadline, read when the watchdog fired.
    let grow = dir.path().join("grow.wat");
    std::fs::write(&grow, r#"(module (memory 1) (func (export "spin") (drop (memory.grow (i32.const 15))) (loop (br 0))))"#).unwrap();
    for deadline in ["process", "epoch"] {
        let (status, json, _) = run(&grow, deadline);
        assert_eq!((status, json["outcome"].as_str()), (1, Some("timeout")), "{json}");
        let peak = json["stats"]["peak_memory_bytes"].as_u64().unwrap();
        assert!(peak >= 16 << 16, "{deadline}: peak {peak} under 16 pages: {json}");
    }
}

/// The process watchdog's report reads nothing again: a policy given through a pipe, read once
/// when the run started, still gives the report its limits.
#[test]
fn a_process_watchdog_report_needs_no_second_reading_of_the_policy() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let spin = dir.path().join("spin.wat");
    std::fs::write(&spin, r#"(module (func (export "spin") (loop (br 0))))"#).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(["run", spin.to_str().unwrap(), "--call", "spin", "--policy", "/dev/stdin"])
        .env("NO_COLOR", "1")
        .env("STOCKADE_CACHE_DIR", dir.path().join("cache"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let policy = "[policy]\nname = \"piped\"\n[limits]\ntimeout = \"300ms\"\nmemory = \"3MiB\"\n[engine]\ndeadline = \"process\"\n";
    child.stdin.take().unwrap().write_all(policy.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 1, "{text}{}", stderr(&out));
    assert!(text.starts_with("timeout: `spin`: the call ran past its timeout of 300ms: ended by the process watchdog"), "{text}");
    assert!(text.contains("of 3MiB"), "the piped policy's memory limit: {text}");
}

/// The process watchdog reads nothing of the command line: a global option, before or after
/// the subcommand, leaves a timeout a timeout (a watchdog that re-executed the program with
/// figures spliced in at a fixed argument turned it into a usage error).
#[test]
fn a_global_option_leaves_the_process_watchdogs_timeout_a_timeout() {
    // The golden tests' spinning plugin and 300 ms policy with the deadline by process.
    let (spin, policy) = ("tests/golden/spin.wat", "tests/golden/short-timeout.toml");
    let before = ["--color", "never", "run", spin, "--call", "spin", "--policy", policy, "--format", "json"];
    let after = ["run", "--color", "always", spin, "--call", "spin", "--policy", policy, "--format", "json"];
    for args in [&before[..], &after[..]] {
        let out = stockade(args);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stderr(&out)));
        assert_eq!((code(&out), json["outcome"].as_str(), json["stage"].as_str()), (1, Some("timeout"), Some("call")), "{args:?}: {json}");
        assert!(json["error"].as_str().unwrap().contains("process watchdog"), "{json}");
    }
    // The watchdog has no entry point of its own on the command line.
    let out = stockade(&["run", spin, "--call", "spin", "--timed-out", "12"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(stderr(&out).trim_end().lines().count(), 1, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

/// `--color always` colours a pipe and `--color never` a would-be terminal's output: the flag,
/// not the descriptor, decides.
#[test]
fn the_global_color_option_decides_colour() {
    let wat = "../corpus/guests/extism-greet/extism-greet.wasm";
    let always = stockade(&["--color", "always", "vet", wat]);
    let never = stockade(&["vet", wat, "--color", "never"]);
    assert_eq!((code(&always), code(&never)), (0, 0), "{}{}", stderr(&always), stderr(&never));
    assert!(always.stdout.contains(&0x1b), "{}", String::from_utf8_lossy(&always.stdout));
    assert!(!never.stdout.contains(&0x1b), "{}", String::from_utf8_lossy(&never.stdout));
    let bad = stockade(&["--color", "sometimes", "vet", wat]);
    assert_eq!(code(&bad), 2);
    assert_eq!(stderr(&bad).trim_end().lines().count(), 1, "{}", stderr(&bad));
}

/// The process starts as any Rust program does (std's `main`), and what the CLI relies on from
/// that start holds: with its standard descriptors closed, a run neither fails nor writes its
/// files' bytes where its output would have been, and a reader that goes away early makes a
/// write error, not a death by SIGPIPE.
#[test]
fn closed_standard_descriptors_and_a_closed_pipe_are_handled() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let dir = tempfile::tempdir().unwrap();
    let greet = "../corpus/guests/extism-greet/extism-greet.wasm";
    // Standard output alone closed: a file opened without std's set-up would take descriptor
    // 1 and get the report (an error where it was opened read-only, a corrupt file where not).
    for closed in [&[1][..], &[0, 1, 2]] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_stockade"));
        command
            .args(["run", greet, "--call", "greet", "--input", "world", "--format", "json"])
            .env("STOCKADE_CACHE_DIR", dir.path().join("cache"))
            .stderr(std::process::Stdio::piped());
        let closed = closed.to_vec();
        // SAFETY: close is async-signal-safe, and the child closes only its own descriptors.
        unsafe {
            command.pre_exec(move || {
                for fd in &closed {
                    libc::close(*fd);
                }
                Ok(())
            });
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{:?}: {}", out.status, stderr(&out));
    }
    // The cache the closed-descriptor runs filled is whole: a run from it succeeds.
    let out = common::stockade_with_env(&["run", greet, "--call", "greet", "--input", "world"], &[("STOCKADE_CACHE_DIR", &dir.path().join("cache"))]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello, world"), "{}", String::from_utf8_lossy(&out.stdout));

    // A reader that closes the pipe at once: the writer gets EPIPE and exits with a status, not
    // a signal.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(["explain"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), None, "killed by a signal: {status:?}");
}

/// A cold `run` compiles with Winch and leaves a background process (started through the
/// worker layer, the policy in its wire form) compiling Cranelift's code into the cache; a
/// later run gets that code from the disk.
#[test]
fn a_cold_run_fills_the_cache_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let greet = "../corpus/guests/extism-greet/extism-greet.wasm";
    let run = || {
        let out = common::stockade_with_env(&["run", greet, "--call", "greet", "--input", "w", "--format", "json"], &[("STOCKADE_CACHE_DIR", &dir.path().join("cache"))]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (json["stats"]["compiler"].as_str().unwrap().to_string(), json["stats"]["module_from"].as_str().unwrap().to_string())
    };
    assert_eq!(run(), ("winch".to_string(), "compiled".to_string()));
    // A bound a busy machine keeps: the fill compiles one small module.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (compiler, from) = run();
        if from == "disk" {
            assert_eq!(compiler, "cranelift");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the cache was not filled within 60 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
