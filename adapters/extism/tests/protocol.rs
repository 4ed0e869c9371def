//! The adapter speaks the worker protocol: a case in, Extism's outcome out, and a case it
//! cannot express answered as not applicable.

use std::io::Write;
use std::process::{Command, Stdio};

fn exchange(requests: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stockade-extism-adapter"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the adapter starts");
    let mut stdin = child.stdin.take().unwrap();
    for request in requests {
        writeln!(stdin, "{request}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn request(module: &str, overrides: serde_json::Value, call: serde_json::Value) -> serde_json::Value {
    let mut policy: serde_json::Value =
        serde_json::to_value(toml::from_str::<toml::Table>(stockade::policy::DEFAULT_POLICY_TOML).unwrap()).unwrap();
    if let Some(timeout) = overrides.pointer("/limits/timeout") {
        policy["limits"]["timeout"] = timeout.clone();
    }
    let module = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus").join(module);
    serde_json::json!({
        "protocol": "stockade.worker/1", "id": "test", "dir": "/",
        "policy": policy, "policy-overrides": overrides,
        "modules": [module.canonicalize().unwrap()], "calls": [call],
    })
}

#[test]
fn a_spinning_export_is_stopped_and_arguments_are_not_applicable() {
    let spin = request(
        "cpu/loop-in-export/plugin.wat",
        serde_json::json!({"limits": {"timeout": "300ms"}}),
        serde_json::json!({"module": 0, "function": "spin", "input": "", "input-repeat": 1, "repeat": 1}),
    );
    let with_args = request(
        "cpu/loop-in-export/plugin.wat",
        serde_json::json!({}),
        serde_json::json!({"module": 0, "function": "spin", "input": "", "input-repeat": 1, "args": ["1"], "repeat": 1}),
    );
    let inexpressible = request(
        "cpu/loop-in-export/plugin.wat",
        serde_json::json!({"limits": {"output": "1KiB"}}),
        serde_json::json!({"module": 0, "function": "spin", "input": "", "input-repeat": 1, "repeat": 1}),
    );
    let answers = exchange(&[spin, with_args, inexpressible]);
    assert_eq!(answers.len(), 3);
    assert!(answers[0]["host"].as_str().unwrap().starts_with("extism"));
    let steps = answers[0]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["code"], "ok", "{}", answers[0]);
    assert_eq!(steps[1]["code"], "timeout", "{}", answers[0]);
    assert!(steps[1]["wall-ms"].as_f64().unwrap() >= 300.0);
    assert!(answers[1]["not-applicable"].as_str().unwrap().contains("arguments"), "{}", answers[1]);
    assert!(answers[2]["not-applicable"].as_str().unwrap().contains("limits.output"), "{}", answers[2]);
}
