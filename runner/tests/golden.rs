//! Golden tests of the command line, in the style of wasm-tools' `tests/cli`: each
//! `tests/golden/NAME.test` holds command lines, run in order from the crate's directory; what
//! each printed (exit status, stdout, stderr) is compared with `tests/golden/NAME.out`.
//! `STOCKADE_BLESS=1 cargo test -p stockade --test golden` writes the `.out` files.
//!
//! A `.test` file's lines:
//! - `stockade ARGS...`: runs the binary (arguments split at spaces; `%TMP%` is a directory of
//!   the test's own, and is written back as `%TMP%` in what is compared);
//! - `redact: REGEX`: replaces each match in what later commands print with `[redacted]`
//!   (measured times and sizes, keys made at random), keeping what a group named `keep` matched;
//! - `validate: PATH`: the JSON file at PATH validates against the schema its `schema` names;
//! - `# ...`: a comment.
//!
//! Every JSON document a command prints (a whole stdout, or each line of JSON Lines) is
//! validated against `reports/NAME.schema.json`, NAME from its `"schema": "stockade.NAME/V"`.

use std::path::{Path, PathBuf};

use regex::Regex;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Figures no two runs share, in every test: times with their unit, and the measured bytes in
/// JSON reports.
fn default_redactions() -> Vec<Regex> {
    [
        r"\b\d+(\.\d+)?(ns|µs|ms|s)\b",
        r#"(?P<keep>"(wall_ns|compile_ns|instantiate_ns|peak_memory_bytes)":)\d+"#,
        r"(?P<keep>peak memory +)\d+(\.\d+)? [KMG]?i?B",
    ]
    .iter()
    .map(|r| Regex::new(r).unwrap())
    .collect()
}

fn redact(text: &str, tmp: &Path, redactions: &[Regex]) -> String {
    let mut text = text.replace(&tmp.display().to_string(), "%TMP%");
    for regex in redactions {
        text = regex
            // What a group named `keep` matched stays (a label, a JSON key), so the shape shows.
            .replace_all(&text, |caps: &regex::Captures| format!("{}[redacted]", caps.name("keep").map_or("", |k| k.as_str())))
            .into_owned();
    }
    text
}

fn schema_for(id: &str) -> jsonschema::Validator {
    let name = id.strip_prefix("stockade.").and_then(|rest| rest.split('/').next()).unwrap_or_else(|| panic!("schema id `{id}`"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../reports/{name}.schema.json"));
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: not a JSON Schema: {e}", path.display()))
}

/// Validates a JSON document that names its schema; returns whether it named one.
fn validate(document: &serde_json::Value, context: &str) -> bool {
    let Some(id) = document.get("schema").and_then(|s| s.as_str()) else { return false };
    let validator = schema_for(id);
    let errors: Vec<String> = validator.iter_errors(document).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{context}: does not validate against {id}:\n{}\n{document}", errors.join("\n"));
    true
}

/// Validates what a command printed, as one document or as JSON Lines; the number of
/// documents that named a schema.
fn validate_stdout(stdout: &str, context: &str) -> usize {
    if let Ok(document) = serde_json::from_str::<serde_json::Value>(stdout) {
        return usize::from(validate(&document, context));
    }
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|document| validate(document, context))
        .count()
}

fn run_test(test: &Path) -> String {
    let tmp = tempfile::tempdir().unwrap();
    // The test's own redactions first: they know the shape of what they redact (a figure with
    // its padding), which a default one would have cut in two.
    let mut redactions = Vec::new();
    let mut transcript = String::new();
    for line in std::fs::read_to_string(test).unwrap().lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let line = line.replace("%TMP%", &tmp.path().display().to_string());
        if let Some(regex) = line.strip_prefix("redact: ") {
            redactions.push(Regex::new(regex).unwrap_or_else(|e| panic!("{}: {e}", test.display())));
        } else if let Some(path) = line.strip_prefix("validate: ") {
            let document: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap();
            assert!(validate(&document, path), "{path} names no schema");
        } else if let Some(args) = line.strip_prefix("stockade ") {
            let args: Vec<&str> = args.split(' ').filter(|a| !a.is_empty()).collect();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_stockade"))
                .args(&args)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("NO_COLOR", "1")
                .env("STOCKADE_CACHE_DIR", tmp.path().join("cache"))
                .env("XDG_STATE_HOME", tmp.path().join("state"))
                .env_remove("STOCKADE_LOG")
                .output()
                .expect("the binary runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            // A tool error (2) prints nothing on stdout; a command that did its job prints its report.
            if args.iter().any(|a| *a == "json") && out.status.code() != Some(2) {
                assert!(validate_stdout(&stdout, &line) > 0, "{line}: printed no document naming its schema:\n{stdout}");
            }
            let status = out.status.code().map_or_else(|| format!("{:?}", out.status), |c| c.to_string());
            let all: Vec<Regex> = redactions.iter().cloned().chain(default_redactions()).collect();
            transcript.push_str(&redact(&format!("$ {line}\nstatus: {status}\n--- stdout\n{stdout}--- stderr\n{stderr}"), tmp.path(), &all));
            if !transcript.ends_with('\n') {
                transcript.push('\n');
            }
            transcript.push('\n');
        } else {
            panic!("{}: a line this harness does not know: {line}", test.display());
        }
    }
    transcript
}

#[test]
fn golden_cli() {
    let bless = std::env::var_os("STOCKADE_BLESS").is_some_and(|v| v == "1");
    let mut tests: Vec<PathBuf> = std::fs::read_dir(golden_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "test")).collect();
    tests.sort();
    assert!(!tests.is_empty());
    let mut differ = Vec::new();
    for test in &tests {
        let actual = run_test(test);
        let expected_path = test.with_extension("out");
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            eprintln!("--- {} differs; expected:\n{expected}\n--- actual:\n{actual}", expected_path.display());
            differ.push(test.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(differ.is_empty(), "golden output differs (STOCKADE_BLESS=1 cargo test -p stockade --test golden to accept): {differ:?}");
}

/// Every subcommand an operator can call has a golden test: a new one without its golden output
/// fails here.
#[test]
fn every_subcommand_has_golden_output() {
    let mut text = String::new();
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "test") {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_stockade")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        // A command's line is indented by two; its wrapped description by more.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 11, "{commands:?}");
    let invoked = |c: &str| text.lines().any(|l| l.trim() == format!("stockade {c}") || l.starts_with(&format!("stockade {c} ")));
    let missing: Vec<&&str> = commands.iter().filter(|c| !invoked(c)).collect();
    assert!(missing.is_empty(), "subcommands without a golden test: {missing:?}");
}
