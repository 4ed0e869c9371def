//! The host library, from a host project's side: plugins written to a directory, loaded
//! together, called from many threads, given events, reloaded while in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stockade::Code;
use stockade::document::Origin;
use stockade::host::{Host, ReloadError};
use stockade::policy::Policy;

/// An Extism plugin in text: `run` (and the same function under the names in `aliases`)
/// outputs `tag` followed by its input, or by what the host function `via` returns for the
/// input; `fail` sets `tag` as its error; `trap` traps.
fn plugin_wat(tag: &str, via: Option<&str>, aliases: &[&str]) -> String {
    let import = via.map_or(String::new(), |f| format!(r#"(import "extism:host/user" "{f}" (func $host (param i64) (result i64)))"#));
    let body = if via.is_some() { "(call $host (call $input_block))" } else { "(call $input_block)" };
    let exports: String = aliases.iter().map(|a| format!(r#"(export "{a}" (func $run))"#)).collect();
    let tag_len = tag.len();
    let escaped: String = tag.bytes().map(|b| format!("\\{b:02x}")).collect();
    format!(
        r#"(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  {import}
  (memory (export "memory") 1)
  (data (i32.const 0) "{escaped}")
  (func $input_block (result i64)
    (local $len i64) (local $h i64) (local $i i64)
    (local.set $len (call $input_length))
    (local.set $h (call $alloc (local.get $len)))
    (block (loop
      (br_if 1 (i64.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br 0)))
    (local.get $h))
  (func $tag_block (result i64)
    (local $h i64) (local $i i64)
    (local.set $h (call $alloc (i64.const {tag_len})))
    (block (loop
      (br_if 1 (i64.ge_u (local.get $i) (i64.const {tag_len})))
      (call $store_u8 (i64.add (local.get $h) (local.get $i)) (i32.load8_u (i32.wrap_i64 (local.get $i))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br 0)))
    (local.get $h))
  (func $run (export "run") (result i32)
    (local $body i64) (local $blen i64) (local $out i64) (local $i i64)
    (local.set $body {body})
    (local.set $blen (if (result i64) (i64.eqz (local.get $body)) (then (i64.const 0)) (else (call $length (local.get $body)))))
    (local.set $out (call $alloc (i64.add (i64.const {tag_len}) (local.get $blen))))
    (block (loop
      (br_if 1 (i64.ge_u (local.get $i) (i64.const {tag_len})))
      (call $store_u8 (i64.add (local.get $out) (local.get $i)) (i32.load8_u (i32.wrap_i64 (local.get $i))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br 0)))
    (local.set $i (i64.const 0))
    (block (loop
      (br_if 1 (i64.ge_u (local.get $i) (local.get $blen)))
      (call $store_u8 (i64.add (local.get $out) (i64.add (i64.const {tag_len}) (local.get $i))) (call $load_u8 (i64.add (local.get $body) (local.get $i))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br 0)))
    (call $output_set (local.get $out) (i64.add (i64.const {tag_len}) (local.get $blen)))
    (i32.const 0))
  {exports}
  (func (export "fail") (result i32) (call $error_set (call $tag_block)) (i32.const 1))
  (func (export "trap") (result i32) unreachable))"#
    )
}

/// A plugin directory `dir/name` with its module and manifest (`extra` appended to it).
fn write_plugin(dir: &Path, name: &str, version: &str, wat: &str, extra: &str) -> PathBuf {
    let at = dir.join(name);
    std::fs::create_dir_all(&at).unwrap();
    std::fs::write(at.join("plugin.wat"), wat).unwrap();
    std::fs::write(at.join("plugin.toml"), format!("name = \"{name}\"\nversion = \"{version}\"\n{extra}")).unwrap();
    at.join("plugin.wat")
}

fn policy(extra: &str) -> Policy {
    policy_timing_out_after("2s", extra)
}

fn policy_timing_out_after(timeout: &str, extra: &str) -> Policy {
    let text = format!("[policy]\nname = \"host-test\"\n[limits]\ntimeout = \"{timeout}\"\n[capabilities]\nallow = [\"log\"]\n{extra}");
    Policy::from_toml(&text, Origin::Builtin("the test policy")).unwrap()
}

#[test]
fn a_host_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Host>();
}

#[test]
fn a_directory_loads_in_order_and_is_called_with_text_json_and_the_guests_own_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_plugin(d, "parse", "1.2.0", &plugin_wat("parse:", None, &[]), "priority = 50\n");
    write_plugin(d, "optimize", "1.0.0", &plugin_wat("opt:", None, &[]), "[dependencies]\nparse = \"^1.1\"\n");
    write_plugin(d, "lint", "1.0.0", &plugin_wat("lint:", None, &[]), "after = [\"optimize\"]\n");
    write_plugin(d, "json", "1.0.0", &plugin_wat("", None, &[]), "");
    write_plugin(d, "future", "1.0.0", &plugin_wat("f:", None, &[]), "host = \"^9\"\n");
    write_plugin(d, "orphan", "1.0.0", &plugin_wat("o:", None, &[]), "[dependencies]\nmissing = \"*\"\n");
    let host = Host::builder(policy("")).build().unwrap();
    let report = host.load_dir(d).unwrap();
    assert_eq!(report.loaded, ["json", "parse", "optimize", "lint"]);
    assert_eq!(host.plugins(), report.loaded);
    let codes: Vec<(Code, &str)> = report.problems.iter().map(|p| (p.code, p.plugins[0].as_str())).collect();
    assert!(codes.contains(&(Code::HostIncompatible, "future")), "{codes:?}");
    assert!(codes.contains(&(Code::DependencyMissing, "orphan")), "{codes:?}");

    assert_eq!(host.call_str("optimize", "run", "x = 1").unwrap(), "opt:x = 1");
    assert_eq!(host.call("parse", "run", b"\x00\xff").unwrap(), b"parse:\x00\xff");
    let echoed: serde_json::Value = host.call_json("json", "run", &serde_json::json!({"a": [1, 2]})).unwrap();
    assert_eq!(echoed, serde_json::json!({"a": [1, 2]}));
    let error = host.call("lint", "fail", b"").unwrap_err();
    assert_eq!((error.code, error.message.as_str()), (Code::PluginError, "lint:"), "the guest's own message: {error}");
    assert_eq!(host.call("lint", "trap", b"").unwrap_err().code, Code::Trap);
    // A trap does not break the plugin.
    assert_eq!(host.call_str("lint", "run", "again").unwrap(), "lint:again");
    assert!(host.call("future", "run", b"").is_err(), "a plugin that did not load cannot be called");

    // Eight threads at once, over the plugin's bounded instances.
    std::thread::scope(|s| {
        for t in 0..8 {
            let host = host.clone();
            s.spawn(move || {
                for i in 0..50 {
                    let input = format!("{t}-{i}");
                    assert_eq!(host.call_str("parse", "run", &input).unwrap(), format!("parse:{input}"));
                }
            });
        }
    });
}

#[test]
fn events_go_by_priority_until_handled_and_a_failing_handler_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sub = |event: &str, exclusive: bool| format!("[[events]]\ntype = \"{event}\"\nhandler = \"on_event\"\nexclusive = {exclusive}\n");
    write_plugin(d, "first", "1.0.0", &plugin_wat(r#"{"handled":false}"#, None, &["on_event"]), &format!("priority = 1\n{}", sub("chat", false)));
    // Its handler traps: reported, and the dispatch goes on.
    let trapping = plugin_wat("x", None, &[]).replace(r#"(func (export "trap") (result i32) unreachable)"#, r#"(func (export "trap") (export "on_event") (result i32) unreachable)"#);
    write_plugin(d, "broken", "1.0.0", &trapping, &format!("priority = 2\n{}", sub("chat", false)));
    write_plugin(d, "taker", "1.0.0", &plugin_wat(r#"{"handled":true}"#, None, &["on_event"]), &format!("priority = 3\n{}", sub("chat", false)));
    write_plugin(d, "never", "1.0.0", &plugin_wat(r#"{"handled":true}"#, None, &["on_event"]), &format!("priority = 4\n{}", sub("chat", false)));
    write_plugin(d, "owner", "1.0.0", &plugin_wat(r#"{"handled":true}"#, None, &["on_event"]), &sub("login", true));
    write_plugin(d, "usurper", "1.0.0", &plugin_wat(r#"{"handled":true}"#, None, &["on_event"]), &format!("priority = 9\n{}", sub("login", true)));
    let host = Host::builder(policy("")).build().unwrap();
    let report = host.load_dir(d).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!((report.problems[0].code, report.problems[0].plugins.clone()), (Code::Conflict, vec!["usurper".to_string(), "owner".to_string()]));

    let dispatch = host.dispatch("chat", b"");
    let called: Vec<&str> = dispatch.results.iter().map(|r| r.plugin.as_str()).collect();
    assert_eq!(called, ["first", "broken", "taker"], "never is not called once taker handled it");
    assert_eq!(dispatch.handled_by.as_deref(), Some("taker"));
    assert_eq!(dispatch.results[1].outcome.as_ref().unwrap_err().code, Code::Trap);
    assert!(!dispatch.results[0].handled && dispatch.results[2].handled);

    let dispatch = host.dispatch("login", b"");
    assert_eq!(dispatch.handled_by.as_deref(), Some("owner"));
    assert!(host.dispatch("nobody-listens", b"").results.is_empty());
}

#[test]
fn host_functions_link_only_where_granted_and_see_the_calls_time() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let build = |grants: &str, register: bool| {
        let mut builder = Host::builder(policy(grants));
        if register {
            let seen = Arc::clone(&seen);
            builder = builder.function("kv_get", move |call, key| {
                seen.lock().unwrap().push(call.remaining);
                match key {
                    b"boom" => Err("no such key: boom".to_string()),
                    _ => Ok([b"value-of-", key].concat()),
                }
            });
        }
        builder.build().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = write_plugin(dir.path(), "kv", "1.0.0", &plugin_wat("", Some("kv_get"), &[]), "capabilities = [\"host:kv_get\"]\n");

    let host = build("host = [\"kv_get\"]\n", true);
    let report = host.load_files(std::slice::from_ref(&path)).unwrap();
    assert_eq!(report.loaded, ["kv"], "{:?}", report.problems);
    assert_eq!(host.call_str("kv", "run", "colour").unwrap(), "value-of-colour");
    let remaining = seen.lock().unwrap()[0];
    assert!(remaining > Duration::from_millis(500) && remaining <= Duration::from_secs(2), "{remaining:?}");
    let error = host.call("kv", "run", b"boom").unwrap_err();
    assert_eq!(error.code, Code::Trap);
    assert!(error.message.contains("no such key: boom"), "{error}");

    // Not granted by the policy: refused at load.
    let host = build("", true);
    let report = host.load_files(std::slice::from_ref(&path)).unwrap();
    assert!(report.loaded.is_empty());
    assert_eq!(report.problems[0].code, Code::CapabilityDenied, "{:?}", report.problems);
    // Granted, but the host registered no such function: refused at load, not at the call.
    let host = build("host = [\"kv_get\"]\n", false);
    let report = host.load_files(&[path]).unwrap();
    assert!(report.loaded.is_empty());
    assert_eq!(report.problems[0].code, Code::HostCallDenied, "{:?}", report.problems);
}

/// The child of the test below: a host with a host function `echo`, one plugin that allocates
/// a 160 MiB Extism block and, unless `STOCKADE_HOST_FN_CHILD` is `alloc`, hands it to `echo`
/// (whose input is the block copied out of the plugin). Prints the call's outcome.
fn host_function_child(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let call = if mode == "alloc" { "" } else { "(drop (call $echo (local.get $h)))" };
    let wat = format!(
        r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/user" "echo" (func $echo (param i64) (result i64)))
  (memory (export "memory") 1)
  (func (export "run") (result i32) (local $h i64)
    (local.set $h (call $alloc (i64.const {})))
    {call}
    (i32.const 0)))"#,
        160u64 << 20
    );
    let path = write_plugin(dir.path(), "big", "1.0.0", &wat, "capabilities = [\"host:echo\"]\n");
    let policy = policy_timing_out_after("2s\"\nmemory = \"300MiB", "host = [\"echo\"]\n");
    let host = Host::builder(policy).function("echo", |_, input| Ok(input[..16].to_vec())).build().unwrap();
    assert_eq!(host.load_files(&[path]).unwrap().loaded, ["big"]);
    match host.call("big", "run", b"") {
        Ok(_) => println!("OUTCOME ok"),
        Err(error) => println!("OUTCOME {}", error.code),
    }
}

/// A host function's input is charged to the call's memory budget before it is copied out of
/// the plugin, so a plugin cannot make the host hold a copy of its memory beyond the limit.
/// Checked from outside: the peak RSS of a host process (wait4), with and without the call.
#[test]
#[allow(clippy::zombie_processes, reason = "reaped by wait4, which std's Child cannot give the rusage of")]
fn a_host_functions_input_is_charged_before_it_is_copied_measured_from_outside() {
    if let Ok(mode) = std::env::var("STOCKADE_HOST_FN_CHILD") {
        return host_function_child(&mode);
    }
    let run = |mode: &str| -> (String, u64) {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "a_host_functions_input_is_charged_before_it_is_copied_measured_from_outside", "--nocapture", "--test-threads", "1"])
            .env("STOCKADE_HOST_FN_CHILD", mode)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut child.stdout.unwrap(), &mut text).unwrap();
        let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
        // SAFETY: waits for the child spawned above, whose handle was consumed without waiting.
        assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
        assert_eq!(libc::WEXITSTATUS(status), 0, "{text}");
        let outcome = text.lines().find_map(|l| l.split("OUTCOME ").nth(1)).unwrap_or_else(|| panic!("{text}")).to_string();
        (outcome, usage.ru_maxrss as u64 * 1024)
    };
    let (alone, alone_peak) = run("alloc");
    assert_eq!(alone, "ok", "160 MiB fits the 300 MiB limit");
    let (with_call, call_peak) = run("call");
    // Were the copy made, the host would hold 160 MiB more than the plugin alone did.
    let more = call_peak.saturating_sub(alone_peak);
    assert!(more < 64 << 20, "the call's process peaked {more} bytes above the plugin alone ({call_peak} vs {alone_peak})");
    assert_eq!(with_call, "memory-limit", "a second 160 MiB, the input's copy, does not fit");
}

#[test]
fn a_call_that_finds_every_instance_busy_waits_its_timeout_then_fails_with_busy() {
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let host = Host::builder(policy("host = [\"hold\"]\n"))
        .instances_per_plugin(1)
        .function("hold", move |call, _| {
            // Blocks until released, never past the call's deadline.
            let _ = gate.lock().unwrap().recv_timeout(call.remaining);
            Ok(Vec::new())
        })
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_plugin(dir.path(), "slow", "1.0.0", &plugin_wat("", Some("hold"), &[]), "capabilities = [\"host:hold\"]\n");
    assert_eq!(host.load_files(&[path]).unwrap().loaded, ["slow"]);
    // One call holds the only instance until its deadline; two wait for it. When it is freed
    // one of them takes it (and holds it in turn); the other has waited its whole timeout.
    std::thread::scope(|s| {
        let holder = s.spawn(|| host.call("slow", "run", b""));
        std::thread::sleep(Duration::from_millis(200));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let started = std::time::Instant::now();
                    (host.call("slow", "run", b""), started.elapsed())
                })
            })
            .collect();
        let results: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        let busy: Vec<_> = results.iter().filter(|(r, _)| matches!(r, Err(e) if e.code == Code::Busy)).collect();
        assert_eq!(busy.len(), 1, "{results:?}");
        assert!(busy[0].1 >= Duration::from_millis(1900), "it waited for an instance: {:?}", busy[0].1);
        drop(release);
        let _ = holder.join().unwrap();
    });
}

#[test]
fn reload_under_calls_from_eight_threads_fails_no_call_and_in_flight_calls_finish_on_the_old_version() {
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    // A long timeout: the call held across the reloads must not run out on a busy machine.
    let host = Host::builder(policy_timing_out_after("30s", "host = [\"hold\"]\n"))
        .instances_per_plugin(16)
        .function("hold", move |call, input| {
            if input == b"hold" {
                let _ = gate.lock().unwrap().recv_timeout(call.remaining);
            }
            Ok(input.to_vec())
        })
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = "capabilities = [\"host:hold\"]\n";
    write_plugin(dir.path(), "svc", "1.0.0", &plugin_wat("v0:", Some("hold"), &[]), manifest);
    write_plugin(dir.path(), "client", "1.0.0", &plugin_wat("c:", None, &[]), "[dependencies]\nsvc = \"^1\"\n");
    assert_eq!(host.load_dir(dir.path()).unwrap().loaded, ["svc", "client"]);

    let stop = std::sync::atomic::AtomicBool::new(false);
    let calls = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        // A call in flight across the reloads.
        let in_flight = s.spawn(|| host.call_str("svc", "run", "hold"));
        std::thread::sleep(Duration::from_millis(100));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let out = host.call_str("svc", "run", "x").expect("no call fails because of a reload");
                        assert!(out.starts_with('v') && out.ends_with(":x"), "{out}");
                        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for version in 1..=5 {
            let bytes = plugin_wat(&format!("v{version}:"), Some("hold"), &[]).into_bytes();
            std::fs::write(dir.path().join("svc/plugin.toml"), format!("name = \"svc\"\nversion = \"1.{version}.0\"\n{manifest}")).unwrap();
            host.reload("svc", bytes).unwrap();
            assert_eq!(host.call_str("svc", "run", "x").unwrap(), format!("v{version}:x"), "new calls get the new version");
            std::thread::sleep(Duration::from_millis(30));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
        release.send(()).unwrap();
        assert_eq!(in_flight.join().unwrap().unwrap(), "v0:hold", "the call in flight finished on the version it started on");
    });
    assert!(calls.load(std::sync::atomic::Ordering::Relaxed) > 8, "the threads called throughout");
    assert_eq!(host.plugin("svc").unwrap().manifest().version, semver::Version::new(1, 5, 0));
}

#[test]
fn a_host_with_a_module_cache_vets_through_its_validation_memo() {
    let cache = tempfile::tempdir().unwrap();
    let options = stockade::sandbox::SandboxOptions { cache_dir: Some(cache.path().to_path_buf()), ..stockade::sandbox::SandboxOptions::default() };
    let memos = || {
        std::fs::read_dir(cache.path()).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "validated")).count()
    };
    let dir = tempfile::tempdir().unwrap();
    write_plugin(dir.path(), "lib", "1.0.0", &plugin_wat("lib1:", None, &[]), "");
    let host = Host::builder(policy("")).sandbox_options(options.clone()).build().unwrap();
    assert_eq!(host.load_dir(dir.path()).unwrap().loaded, ["lib"]);
    assert_eq!(memos(), 1, "loading recorded the bodies' validation");
    // A second host over the same cache (a restart) loads and calls the same plugin as before.
    let again = Host::builder(policy("")).sandbox_options(options).build().unwrap();
    assert_eq!(again.load_dir(dir.path()).unwrap().loaded, ["lib"]);
    assert_eq!(again.call_str("lib", "run", "x").unwrap(), "lib1:x");
    // A reload to new bytes is a new module: recorded too.
    again.reload("lib", plugin_wat("lib2:", None, &[]).into_bytes()).unwrap();
    assert_eq!(again.call_str("lib", "run", "x").unwrap(), "lib2:x");
    assert_eq!(memos(), 2);
}

#[test]
fn a_refused_reload_keeps_the_old_version_and_says_why() {
    let host = Host::builder(policy("")).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_plugin(dir.path(), "lib", "1.0.0", &plugin_wat("lib1:", None, &[]), "");
    write_plugin(dir.path(), "app", "1.0.0", &plugin_wat("app:", None, &[]), "[dependencies]\nlib = \"^1\"\n");
    assert_eq!(host.load_dir(dir.path()).unwrap().loaded, ["lib", "app"]);
    let still_old = |host: &Host| assert_eq!(host.call_str("lib", "run", "").unwrap(), "lib1:");

    // Not a module.
    let error = host.reload("lib", b"(module (func garbage))".to_vec()).unwrap_err();
    assert!(matches!(&error, ReloadError::Refused { problems, .. } if problems[0].code == Code::Malformed), "{error}");
    still_old(&host);
    // A version that breaks a dependent.
    std::fs::write(dir.path().join("lib/plugin.toml"), "name = \"lib\"\nversion = \"2.0.0\"\n").unwrap();
    let error = host.reload("lib", plugin_wat("lib2:", None, &[]).into_bytes()).unwrap_err();
    assert!(matches!(&error, ReloadError::Refused { problems, .. } if problems[0].code == Code::DependencyIncompatible), "{error}");
    assert!(error.to_string().contains("`app` needs `lib` ^1"), "{error}");
    still_old(&host);
    // Another plugin's manifest.
    std::fs::write(dir.path().join("lib/plugin.toml"), "name = \"other\"\nversion = \"1.0.1\"\n").unwrap();
    let error = host.reload("lib", plugin_wat("lib3:", None, &[]).into_bytes()).unwrap_err();
    assert!(error.to_string().contains("named `other`"), "{error}");
    still_old(&host);
    // A plugin that is not loaded.
    assert!(matches!(host.reload("ghost", Vec::new()), Err(ReloadError::NotLoaded(_))));
    // And a good one, from the changed file.
    std::fs::write(dir.path().join("lib/plugin.toml"), "name = \"lib\"\nversion = \"1.1.0\"\n").unwrap();
    std::fs::write(dir.path().join("lib/plugin.wat"), plugin_wat("lib4:", None, &[])).unwrap();
    host.reload_file("lib", None).unwrap();
    assert_eq!(host.call_str("lib", "run", "").unwrap(), "lib4:");
}

#[test]
fn every_call_is_audited_as_json_lines_and_traced_as_a_span() {
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let audit = Shared::default();
    let traces = Shared::default();
    let host = Host::builder(policy("")).audit_log(audit.clone()).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_plugin(dir.path(), "p", "3.1.4", &plugin_wat("p:", None, &[]), "");
    host.load_dir(dir.path()).unwrap();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let traces = traces.clone();
            move || traces.clone()
        })
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        host.call("p", "run", b"12345").unwrap();
        host.call("p", "trap", b"").unwrap_err();
    });
    let audit = String::from_utf8(audit.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{audit}");
    assert_eq!(lines[0]["plugin"], "p");
    assert_eq!(lines[0]["version"], "3.1.4");
    assert_eq!(lines[0]["function"], "run");
    assert_eq!(lines[0]["input_bytes"], 5);
    assert_eq!(lines[0]["outcome"], "ok");
    assert_eq!(lines[1]["outcome"], "trap");
    assert_eq!(lines[0]["sha256"].as_str().unwrap().len(), 64);
    assert!(lines[0]["duration_ms"].as_f64().unwrap() > 0.0 && lines[0]["time"].as_str().unwrap().ends_with('Z'));
    let traces = String::from_utf8(traces.0.lock().unwrap().clone()).unwrap();
    assert!(traces.contains("plugin.call"), "{traces}");
    for field in ["plugin.name=\"p\"", "plugin.version=3.1.4", "plugin.function=\"run\"", "plugin.outcome=\"ok\"", "plugin.outcome=\"trap\"", "plugin.duration_ms="] {
        assert!(traces.contains(field), "{field} in {traces}");
    }
}

#[test]
fn stockade_plan_exits_0_when_everything_loads_1_with_problems_2_for_the_operators_errors() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stockade")).args(args).env("NO_COLOR", "1").output().unwrap();
        (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let dir = tempfile::tempdir().unwrap();
    write_plugin(dir.path(), "a", "1.0.0", &plugin_wat("a", None, &[]), "[dependencies]\nb = \"^1\"\n");
    write_plugin(dir.path(), "b", "1.3.0", &plugin_wat("b", None, &[]), "");
    let d = dir.path().to_str().unwrap();
    let (status, stdout, _) = run(&["plan", d, "--format", "json"]);
    assert_eq!(status, 0, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json, serde_json::json!({"schema": "stockade.plan/1", "order": ["b", "a"], "problems": []}));
    write_plugin(dir.path(), "c", "1.0.0", &plugin_wat("c", None, &[]), "[dependencies]\nb = \"^2\"\n");
    let (status, stdout, _) = run(&["plan", d]);
    assert_eq!(status, 1, "{stdout}");
    assert!(stdout.contains("error[dependency-incompatible]: `c` needs `b` ^2; the set has `b` 1.3.0"), "{stdout}");
    for args in [&["plan", "/no/such/dir"][..], &["plan", d, "--host-version", "x"], &["plan", d, "--policy", "/no/policy.toml"]] {
        let (status, _, stderr) = run(args);
        assert_eq!(status, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn a_watched_plugin_reloads_from_its_changed_file_once_the_file_holds_still() {
    let host = Host::builder(policy("")).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let module = write_plugin(dir.path(), "w", "1.0.0", &plugin_wat("one:", None, &[]), "");
    assert_eq!(host.load_dir(dir.path()).unwrap().loaded, ["w"]);
    let watch = host.watch(Duration::from_millis(150)).unwrap();

    // Written in two pieces with a pause shorter than the debounce: only the whole file loads.
    let text = plugin_wat("two:", None, &[]);
    let (head, tail) = text.split_at(text.len() / 2);
    std::fs::write(&module, head).unwrap();
    std::thread::sleep(Duration::from_millis(40));
    std::fs::write(&module, format!("{head}{tail}")).unwrap();
    let reloaded = watch.next_reload(Duration::from_secs(20)).expect("a reload follows the change");
    assert_eq!(reloaded.plugin, "w");
    assert!(reloaded.result.is_ok(), "{:?}", reloaded.result);
    assert_eq!(host.call_str("w", "run", "").unwrap(), "two:");

    // A broken file: refused, the old version stays.
    std::fs::write(&module, "(module (func broken").unwrap();
    let reloaded = watch.next_reload(Duration::from_secs(20)).expect("a reload follows the change");
    assert!(matches!(reloaded.result, Err(ReloadError::Refused { .. })), "{:?}", reloaded.result);
    assert_eq!(host.call_str("w", "run", "").unwrap(), "two:");
    drop(watch);
}

#[test]
fn an_extism_manifest_loads_mapped_and_what_it_cannot_express_is_refused_by_name() {
    use stockade::host::extism_manifest::ExtismMapping;
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("greeter.wat");
    std::fs::write(&module, plugin_wat("hi:", None, &[])).unwrap();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&module).unwrap()))
    };
    let manifest = dir.path().join("extism.json");
    let write = |json: serde_json::Value| std::fs::write(&manifest, json.to_string()).unwrap();
    write(serde_json::json!({
        "wasm": [{"path": "greeter.wat", "hash": digest, "name": "greeter"}],
        "memory": {"max_pages": 16, "max_var_bytes": 4096},
        "config": {"greeting": "hello"},
        "allowed_hosts": ["api.example.com"],
        "allowed_paths": {"ro:data": "/data"},
        "timeout_ms": 1500
    }));
    let mapping = ExtismMapping::read(&manifest).unwrap();
    assert_eq!(mapping.manifest.name, "greeter");
    let declared: Vec<String> = mapping.manifest.capabilities.iter().map(|c| c.to_string()).collect();
    assert_eq!(declared, ["log", "config", "vars", "http:api.example.com", "fs:ro:/data"]);
    assert_eq!(mapping.config["greeting"], "hello");
    let mapped = mapping.policy(&Policy::builtin_default()).unwrap();
    assert_eq!(mapped.capabilities.http, ["api.example.com"]);
    assert_eq!(mapped.limits.memory.get(), 16 << 16);
    assert_eq!(mapped.limits.vars.get(), 4096);
    assert_eq!(mapped.limits.timeout.get(), Duration::from_millis(1500));
    assert_eq!(mapped.capabilities.fs[0].guest, "/data");

    // A host whose policy grants what the manifest asks loads it; one that does not, refuses it.
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let data = dir.path().join("data").display().to_string();
    let text = format!(
        "[policy]\nname = \"granting\"\n[capabilities]\nallow = [\"log\", \"config\", \"vars\"]\nhttp = [\"api.example.com\"]\nfs = [{{ host = {data:?}, guest = \"/data\", mode = \"ro\" }}]\n"
    );
    let granting = Policy::from_toml(&text, Origin::Builtin("granting")).unwrap();
    let host = Host::builder(granting).build().unwrap();
    let report = host.load_extism(&manifest).unwrap();
    assert_eq!(report.loaded, ["greeter"], "{:?}", report.problems);
    assert_eq!(host.call_str("greeter", "run", "there").unwrap(), "hi:there");
    let host = Host::builder(policy("")).build().unwrap();
    let report = host.load_extism(&manifest).unwrap();
    assert!(report.loaded.is_empty());
    assert_eq!(report.problems[0].code, Code::CapabilityDenied, "{:?}", report.problems);

    for (json, field) in [
        (serde_json::json!({"wasm": [{"url": "https://example.com/p.wasm"}]}), "wasm[0].url"),
        (serde_json::json!({"wasm": [{"data": "AGFzbQ=="}]}), "wasm[0].data"),
        (serde_json::json!({"wasm": [{"path": "greeter.wat"}, {"path": "greeter.wat"}]}), "wasm"),
        (serde_json::json!({"wasm": [{"path": "greeter.wat", "hash": "00"}]}), "wasm[0].hash"),
        (serde_json::json!({"wasm": [{"path": "greeter.wat"}], "memory": {"max_http_response_bytes": 10}}), "memory.max_http_response_bytes"),
        (serde_json::json!({"wasm": [{"path": "greeter.wat"}], "allowed_sockets": true}), "allowed_sockets"),
    ] {
        write(json.clone());
        let error = ExtismMapping::read(&manifest).unwrap_err();
        assert!(error.to_string().contains(field), "{json}: {error}");
    }
}

#[path = "../examples/compiler_pipeline.rs"]
mod compiler_pipeline;

/// The example host, run as it is: four plugins from two toolchains in order, a compilation
/// through every stage, and the optimizer reloaded while four threads compile.
#[test]
fn the_example_compiler_pipeline_compiles_and_hot_reloads_while_compiling() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/compiler-pipeline");
    let mut said = Vec::new();
    let (compiled, code) = compiler_pipeline::run(&dir, &mut |line| said.push(line)).unwrap();
    let said = said.join("\n");
    assert!(said.contains("loaded, in order: codegen, parse, constfold, lint"), "{said}");
    assert!(said.contains("short name `a`") && said.contains("multiplication by zero"), "the AssemblyScript linter ran: {said}");
    assert!(said.contains("reloaded constfold 1.0.0 -> 1.1.0"), "{said}");
    assert!(compiled > 0, "compilations ran across the reload");
    assert_eq!(code, "push 3\nstore a\npush 0\nstore total\npush 42\nstore answer\n", "the new optimizer folded `a * 0`");
}

#[test]
fn a_host_refuses_the_process_deadline_and_keeps_epochs_under_auto() {
    let process = Policy::from_toml("[policy]\nname = \"p\"\n[engine]\ndeadline = \"process\"\n", Origin::Builtin("process")).unwrap();
    let error = Host::builder(process).build().err().expect("a long-lived host cannot be ended at a deadline");
    assert!(error.to_string().contains("deadline = \"process\""), "{error}");
    // Under auto, a host's plugins carry epoch checks: a loop still ends at the timeout.
    let host = Host::builder(policy_timing_out_after("200ms", "")).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wat = plugin_wat("", None, &[]).replace(r#"(func (export "trap") (result i32) unreachable)"#, r#"(func (export "trap") (result i32) (loop (br 0)) unreachable)"#);
    write_plugin(dir.path(), "spinner", "1.0.0", &wat, "");
    host.load_dir(dir.path()).unwrap();
    assert_eq!(host.call("spinner", "trap", b"").unwrap_err().code, Code::Timeout);
}

/// A plugin out of process: its calls run in worker processes (`stockade plugin-worker`)
/// without epoch checks; a call that overruns ends with its worker, which the next call
/// replaces.
#[test]
fn an_out_of_process_plugin_is_called_and_a_runaway_call_costs_only_its_worker() {
    let worker = stockade::host::process::WorkerCommand { program: env!("CARGO_BIN_EXE_stockade").into(), args: vec!["plugin-worker".into()] };
    let host = Host::builder(policy_timing_out_after("500ms", "host = [\"kv_get\"]\n"))
        .out_of_process("far", worker.clone())
        .out_of_process("far-kv", worker)
        .function("kv_get", |_, key| Ok(key.to_vec()))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wat = plugin_wat("far:", None, &[]).replace(r#"(func (export "trap") (result i32) unreachable)"#, r#"(func (export "trap") (result i32) (loop (br 0)) unreachable)"#);
    write_plugin(dir.path(), "far", "1.0.0", &wat, "");
    write_plugin(dir.path(), "far-kv", "1.0.0", &plugin_wat("", Some("kv_get"), &[]), "capabilities = [\"host:kv_get\"]\n");
    let report = host.load_dir(dir.path()).unwrap();
    assert_eq!(report.loaded, ["far"], "{:?}", report.problems);
    assert_eq!(report.problems[0].code, Code::HostCallDenied, "host functions stay in the host's process: {:?}", report.problems);

    assert_eq!(host.call_str("far", "run", "x").unwrap(), "far:x");
    let started = std::time::Instant::now();
    let error = host.call("far", "trap", b"").unwrap_err();
    assert_eq!(error.code, Code::Timeout, "{error}");
    assert!(error.message.contains("process watchdog"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // The next calls get a new worker.
    for i in 0..3 {
        assert_eq!(host.call_str("far", "run", &i.to_string()).unwrap(), format!("far:{i}"));
    }
    let error = host.call("far", "fail", b"").unwrap_err();
    assert_eq!((error.code, error.message.as_str()), (Code::PluginError, "far:"));

    // An error text as long as the output limit allows (a million NUL bytes, which JSON
    // escapes to six bytes each) comes back cut, with its length: the worker's answer line
    // is bounded, not 6 MB the host would hold.
    let big = r#"(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (memory (export "memory") 1)
  (func (export "run") (result i32) (call $error_set (call $alloc (i64.const 1000000))) (i32.const 1)))"#;
    write_plugin(dir.path(), "loud", "1.0.0", big, "");
    let worker = stockade::host::process::WorkerCommand { program: env!("CARGO_BIN_EXE_stockade").into(), args: vec!["plugin-worker".into()] };
    let host = Host::builder(policy("")).out_of_process("loud", worker).build().unwrap();
    assert_eq!(host.load_files(&[dir.path().join("loud/plugin.wat")]).unwrap().loaded, ["loud"]);
    let error = host.call("loud", "run", b"").unwrap_err();
    assert_eq!(error.code, Code::PluginError, "{error}");
    assert!(error.message.len() < 64 << 10 && error.message.ends_with("(1000000 bytes)"), "{} bytes", error.message.len());
}

/// A worker that answers each call twice, a stale `timeout` for another call first (as a
/// watchdog that fired just as a call returned once did) and then the right answer: the host
/// takes only the answer that carries its call's id.
#[test]
fn an_out_of_process_call_takes_only_the_answer_to_itself() {
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: no python3 to write the worker in");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("double-answer.py");
    std::fs::write(
        &program,
        r#"#!/usr/bin/env python3
import json, sys
load = sys.stdin.readline()
print(json.dumps({"loaded": True}), flush=True)
for line in sys.stdin:
    call = json.loads(line)
    print(json.dumps({"id": call["id"] + 1000, "code": "timeout", "error": "a stale answer"}), flush=True)
    print(json.dumps({"id": call["id"], "code": "ok", "output": call["input"]}), flush=True)
"#,
    )
    .unwrap();
    std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let worker = stockade::host::process::WorkerCommand { program, args: Vec::new() };
    let host = Host::builder(policy("")).out_of_process("twice", worker).build().unwrap();
    write_plugin(dir.path(), "twice", "1.0.0", &plugin_wat("", None, &[]), "");
    assert_eq!(host.load_files(&[dir.path().join("twice/plugin.wat")]).unwrap().loaded, ["twice"]);
    for i in 0..3 {
        assert_eq!(host.call_str("twice", "run", &format!("call {i}")).unwrap(), format!("call {i}"));
    }
}
