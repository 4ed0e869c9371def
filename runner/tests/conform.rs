//! `stockade conform`: the bundled corpus passes, a case broken on purpose fails with its
//! reason in every report, the reports validate, and shards merge into the whole.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_tool_error, code, stderr, stockade};

const FIXTURE_CORPUS: &str = "tests/fixtures/conform";

/// One `conform` run at a time: each runs its cases in parallel already, and a dozen corpora at
/// once on two cores would measure the machine rather than the cases.
static ONE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn conform(corpus: &str, report_dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["conform", "--corpus", corpus, "--report-dir", report_dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let _turn = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    stockade(&args)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn json(dir: &Path, name: &str) -> serde_json::Value {
    serde_json::from_str(&read(dir, name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const REPORTS: [&str; 6] =
    ["conformance.json", "conformance.xml", "conformance.md", "conformance.html", "findings.sarif", "attestation.intoto.json"];

#[test]
fn the_bundled_corpus_passes_under_the_default_policy() {
    let dir = tempfile::tempdir().unwrap();
    let out = conform("../corpus", dir.path(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 0, "{stdout}{}", stderr(&out));
    let report = json(dir.path(), "conformance.json");
    let summary = &report["summary"];
    assert_eq!(summary["failed"], 0, "{stdout}");
    assert!(summary["total"].as_u64().unwrap() >= 60, "at least 60 cases");
    let classes = summary["classes"].as_object().unwrap();
    assert!(classes.len() > 20, "at least 20 attack classes besides benign: {:?}", classes.keys());
    assert_schema_valid(&report);
    // Benign plugins from two source languages must pass with the right output.
    let cases = report["cases"].as_array().unwrap();
    for language in ["rust", "assemblyscript"] {
        assert!(
            cases.iter().any(|c| c["class"] == "benign" && c["id"].as_str().unwrap().starts_with(&format!("benign/{language}"))),
            "a benign {language} case"
        );
    }
}

/// The fixture corpus: two passing cases, a load refusal, one broken on purpose, one listed
/// as an expected failure.
fn fixture_run() -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let out = conform(FIXTURE_CORPUS, dir.path(), &["--jobs", "2"]);
    (dir, out)
}

#[test]
fn a_case_broken_on_purpose_fails_the_run_and_every_report_says_which_and_why() {
    let (dir, out) = fixture_run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 1, "{stdout}{}", stderr(&out));
    assert!(stdout.contains("FAIL broken/traps"), "{stdout}");
    let why = "expected ok at call, got trap at call";
    assert!(stdout.contains(why), "{stdout}");
    for name in REPORTS {
        let text = read(dir.path(), name);
        assert!(text.contains("broken/traps"), "{name} names the case");
        if name != "attestation.intoto.json" {
            assert!(text.contains(why), "{name} says why");
        }
    }
    let attestation = json(dir.path(), "attestation.intoto.json");
    assert_eq!(attestation["predicate"]["result"], "FAILED");
    assert_eq!(attestation["predicate"]["failedTests"], serde_json::json!(["broken/traps"]));
    assert_eq!(attestation["predicate"]["warnedTests"], serde_json::json!(["broken/known-issue"]));
    // The attestation binds the report that says why, by digest.
    let report_digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(read(dir.path(), "conformance.json")))
    };
    let configuration = attestation["predicate"]["configuration"].as_array().unwrap();
    assert!(configuration.iter().any(|c| c["name"] == "conformance.json" && c["digest"]["sha256"] == report_digest.as_str()));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !REPORTS.contains(&name.as_str()))
        .collect();
    assert!(leftovers.is_empty(), "nothing half-written is left behind: {leftovers:?}");
}

#[test]
fn the_json_report_validates_against_its_published_schema() {
    let (dir, _) = fixture_run();
    let report = json(dir.path(), "conformance.json");
    assert_schema_valid(&report);
    // The schema is not a formality: a report with a field of the wrong type fails it.
    let mut broken = report.clone();
    broken["cases"][0]["verdict"] = serde_json::json!("maybe");
    assert!(!schema().is_valid(&broken));
}

fn schema() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("../reports/conformance.schema.json").unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the published schema is a valid JSON Schema")
}

fn assert_schema_valid(report: &serde_json::Value) {
    let validator = schema();
    let errors: Vec<String> = validator.iter_errors(report).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_junit_report_parses_with_a_failure_and_a_skip() {
    let (dir, _) = fixture_run();
    let text = read(dir.path(), "conformance.xml");
    let document = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("5"));
    assert_eq!(root.attribute("failures"), Some("1"));
    assert_eq!(root.attribute("skipped"), Some("1"));
    let testcases: Vec<_> = document.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(testcases.len(), 5);
    let failed = testcases.iter().find(|t| t.attribute("name") == Some("broken/traps")).unwrap();
    let failure = failed.children().find(|n| n.has_tag_name("failure")).expect("a <failure>");
    assert!(failure.attribute("message").unwrap().contains("expected ok at call, got trap at call"));
    let skipped = testcases.iter().find(|t| t.attribute("name") == Some("broken/known-issue")).unwrap();
    assert!(skipped.children().any(|n| n.has_tag_name("skipped")));
}

#[test]
fn the_sarif_report_has_one_rule_per_code_and_a_result_per_case() {
    let (dir, _) = fixture_run();
    let sarif = json(dir.path(), "findings.sarif");
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), stockade::Code::ALL.len());
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    for result in results {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"], "ruleIndex points at its rule");
        let kind = result["kind"].as_str().unwrap();
        assert!(kind == "fail" || result["level"] == "none", "a passing result has level none: {result}");
    }
    let suppressed = results.iter().filter(|r| r.get("suppressions").is_some()).count();
    assert_eq!(suppressed, 1, "the expected failure is suppressed with its reason");
}

#[test]
fn the_html_report_is_self_contained_with_a_chart() {
    let (dir, _) = fixture_run();
    let html = read(dir.path(), "conformance.html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg") && html.contains("<rect"), "a chart");
    for external in ["<script", "src=\"http", "href=\"http", "@import"] {
        assert!(!html.contains(external), "no external resources or scripts: {external}");
    }
    roxmltree::Document::parse_with_options(
        &html.replacen("<!DOCTYPE html>", "", 1).replace("<br>", "<br/>").replace("<meta charset=\"utf-8\">", "<meta charset=\"utf-8\"/>").replace(
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>",
        ),
        roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() },
    )
    .expect("the page's elements are balanced");
}

/// Timings and the start time differ between runs; everything else is stable.
fn stable_markdown(text: &str) -> String {
    let mut in_highest = false;
    text.lines()
        .filter(|line| {
            // The costliest cases change order between runs: the table is left out, its note kept.
            if line.starts_with("## ") {
                in_highest = *line == "## Highest cost";
            }
            !in_highest || line.is_empty() || line.starts_with("## ") || line.starts_with("Note: ")
        })
        .map(|line| {
            if line.starts_with("| started |") {
                "| started | [time] |".to_string()
            } else if line.starts_with("| duration |") {
                "| duration | [duration] |".to_string()
            } else {
                // The peak RSS and CPU cells that end each case's row.
                match line.strip_suffix(" ms |").and_then(|l| l.rsplit_once(" MiB | ")).and_then(|(l, _)| l.rsplit_once(" | ")) {
                    Some((row, _)) if line.starts_with("| `") => format!("{row} | [rss] | [cpu] |"),
                    _ => line.to_string(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn markdown_and_json_reports_snapshot() {
    let (dir, _) = fixture_run();
    insta::assert_snapshot!("conformance_md", stable_markdown(&read(dir.path(), "conformance.md")));
    insta::assert_json_snapshot!("conformance_json", json(dir.path(), "conformance.json"), {
        ".started_at" => "[time]",
        ".duration_ms" => "[duration]",
        ".cases[].duration_ms" => "[duration]",
        ".cases[].host.peak_rss_bytes" => "[rss]",
        ".cases[].host.user_cpu_ms" => "[cpu]",
        ".cases[].host.system_cpu_ms" => "[cpu]",
        ".cases[].host.wall_ms" => "[duration]",
        ".cases[].steps[].wall_ms" => "[duration]",
        ".cases[].steps[].cpu_ms" => "[cpu]",
        ".cases[].steps[].cpu_after_deadline_ms" => "[cpu]",
    });
}

#[test]
fn shards_merge_into_the_whole_run() {
    let whole = tempfile::tempdir().unwrap();
    conform(FIXTURE_CORPUS, whole.path(), &[]);
    let mut shard_reports: Vec<PathBuf> = Vec::new();
    let shards: Vec<_> = (1..=2).map(|_| tempfile::tempdir().unwrap()).collect();
    for (k, shard) in shards.iter().enumerate() {
        let partition = format!("{}/2", k + 1);
        conform(FIXTURE_CORPUS, shard.path(), &["--partition", &partition]);
        let part = json(shard.path(), "conformance.json");
        assert_eq!(part["partition"], partition.as_str());
        shard_reports.push(shard.path().join("conformance.json"));
    }
    let merged_dir = tempfile::tempdir().unwrap();
    let mut args = vec!["conform", "--report-dir", merged_dir.path().to_str().unwrap(), "--merge"];
    args.extend(shard_reports.iter().map(|p| p.to_str().unwrap()));
    let out = stockade(&args);
    assert_eq!(code(&out), 1, "the merged run still holds the broken case: {}", stderr(&out));
    let (merged, whole_json) = (json(merged_dir.path(), "conformance.json"), json(whole.path(), "conformance.json"));
    assert_eq!(merged["summary"], whole_json["summary"]);
    let ids = |r: &serde_json::Value| r["cases"].as_array().unwrap().iter().map(|c| c["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&merged), ids(&whole_json));
    assert!(merged.get("partition").is_none());
    let shards = merged["shards"].as_array().unwrap();
    assert_eq!(shards.iter().map(|s| s["partition"].as_str().unwrap()).collect::<Vec<_>>(), ["1/2", "2/2"]);
    let attestation = read(merged_dir.path(), "attestation.intoto.json");
    assert!(attestation.contains("shard 1/2") && attestation.contains("shard 2/2"), "{attestation}");

    // An incomplete set, a shard twice, or a whole run among shards is refused (exit 1), and
    // no report is written.
    let never = "/nonexistent-never-written";
    let (one, two) = (shard_reports[0].to_str().unwrap(), shard_reports[1].to_str().unwrap());
    let whole_report = whole.path().join("conformance.json");
    for (args, says) in [
        (vec![one], "shard 2/2 is missing"),
        (vec![one, one], "shard 1/2 is given 2 times"),
        (vec![one, two, whole_report.to_str().unwrap()], "is not a shard of a partitioned run"),
    ] {
        let mut all = vec!["conform", "--report-dir", never, "--merge"];
        all.extend(args);
        let out = stockade(&all);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert!(!Path::new(never).exists());
    }
}

#[test]
fn a_broken_corpus_or_arguments_are_tool_errors() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(corpus.join("bad")).unwrap();
    std::fs::write(corpus.join("bad/case.toml"), "class = \"cpu\"\ndescription = \"x\"\n[[call]]\nfunction = \"f\"\nexpect = \"sometimes\"\n").unwrap();
    std::fs::write(corpus.join("bad/plugin.wat"), "(module)").unwrap();
    let reports = dir.path().join("reports");
    let out = conform(corpus.to_str().unwrap(), &reports, &[]);
    assert_tool_error(&out, "bad/case.toml:5");
    assert!(!reports.exists(), "no report is written when the corpus cannot be read");

    std::fs::write(corpus.join("bad/case.toml"), "class = \"cpu\"\ndescription = \"x\"\nmodule = \"gone.wat\"\nexpect-load = \"malformed\"\n").unwrap();
    assert_tool_error(&conform(corpus.to_str().unwrap(), &reports, &[]), "gone.wat does not exist");

    assert_tool_error(&conform("/nonexistent/corpus", &reports, &[]), "/nonexistent/corpus");
    assert_tool_error(&conform(FIXTURE_CORPUS, &reports, &["--partition", "3/2"]), "K must be between 1 and N");
    assert_tool_error(&conform(FIXTURE_CORPUS, &reports, &["--jobs", "0"]), "--jobs");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_tool_error(&conform(empty.to_str().unwrap(), &reports, &[]), "no cases");
    // A worker that cannot be started is the operator's mistake, not a crash of every case.
    assert_tool_error(&conform(FIXTURE_CORPUS, &reports, &["--adapter", "/nonexistent/adapter"]), "cannot start it as a worker");
    assert!(!reports.exists());
    assert_tool_error(&conform(FIXTURE_CORPUS, &reports, &["--cases-per-worker", "0"]), "--cases-per-worker");
}

/// The tools the reports' readers use, when installed (scripts/install-report-tools.sh).
/// With STOCKADE_REPORT_TOOLS=1 (CI) a missing tool fails the test instead of skipping it.
fn report_tool(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    let found = candidates.iter().map(PathBuf::from).find(|p| p.is_file());
    if found.is_none() {
        assert!(std::env::var_os("STOCKADE_REPORT_TOOLS").is_none(), "{name} is not installed (scripts/install-report-tools.sh)");
        eprintln!("skipped: {name} is not installed (scripts/install-report-tools.sh)");
    }
    found
}

#[test]
fn sarif_reports_pass_the_official_sarif_validator() {
    let Some(multitool) = report_tool("the SARIF multitool", &["../target/tools/node_modules/.bin/sarif-multitool-linux"]) else {
        return;
    };
    let (dir, _) = fixture_run();
    let vet_sarif = dir.path().join("vet.sarif");
    let vet = stockade(&["vet", "--format", "sarif", "tests/fixtures/vet/unknown-import/plugin.wat"]);
    std::fs::write(&vet_sarif, &vet.stdout).unwrap();
    let broken = dir.path().join("broken.sarif");
    std::fs::write(&broken, r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": [{"level": "bogus"}]}]}"#).unwrap();
    let validate = |path: &Path| {
        let out = std::process::Command::new(&multitool)
            .args(["validate", path.to_str().unwrap(), "--output"])
            .arg(dir.path().join("validation.sarif"))
            .args(["--log", "ForceOverwrite"])
            .output()
            .expect("the multitool runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("1 files scanned"), "{text}{}", String::from_utf8_lossy(&out.stderr));
        text.lines().filter(|l| l.contains(": error ")).map(str::to_string).collect::<Vec<_>>()
    };
    assert!(!validate(&broken).is_empty(), "the validator catches a schema violation");
    for path in [dir.path().join("findings.sarif"), vet_sarif] {
        let errors = validate(&path);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let Some(chromium) = report_tool("Chromium", &["/usr/bin/chromium", "/usr/bin/chromium-browser"]) else { return };
    let (dir, _) = fixture_run();
    let page = std::path::absolute(dir.path().join("conformance.html")).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let screenshot = dir.path().join("conformance.png");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let png = std::fs::read(&screenshot)
        .unwrap_or_else(|e| panic!("no screenshot ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(png.len() > 20_000, "a rendered page, not a blank one: {} bytes", png.len());
    // Kept for people to look at: target/conformance-screenshot.png.
    let _ = std::fs::copy(&screenshot, "../target/conformance-screenshot.png");
}

#[test]
fn load_expectations_are_exact() {
    // Two memories under a policy without multi-memory: refused with feature-denied *and*
    // memory-too-large. Expecting the first alone is not enough.
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("corpus/instances/two-memories");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(case.join("plugin.wat"), "(module (memory 1) (memory 1))").unwrap();
    let write = |extra: &str| {
        std::fs::write(
            case.join("case.toml"),
            format!("class = \"instances\"\ndescription = \"x\"\nexpect-load = \"feature-denied\"\n{extra}"),
        )
        .unwrap()
    };
    let corpus = dir.path().join("corpus");
    let reports = dir.path().join("reports");
    write("");
    let out = conform(corpus.to_str().unwrap(), &reports, &[]);
    assert_eq!(code(&out), 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("but also with `memory-too-large`"));
    write("allowed-load-errors = [\"memory-too-large\"]\n");
    let out = conform(corpus.to_str().unwrap(), &reports, &[]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
}

/// A corpus of the fixture's passing case, copied under the names of the faults to inject,
/// and a case whose RSS bound is below what any worker holds.
fn fault_corpus() -> tempfile::TempDir {
    let corpus = tempfile::tempdir().unwrap();
    let source = Path::new(FIXTURE_CORPUS).join("benign/add");
    for (id, extra) in [
        ("benign/add", ""),
        ("faults/panic", ""),
        ("faults/abort", ""),
        ("faults/leak", ""),
        // Hard wall cap: 1 s compile timeout + 2 s, and one call of 1 s + 1 s: 5 s.
        ("faults/hang", "[policy]\nlimits.compile-timeout = \"1s\"\nlimits.timeout = \"1s\"\n"),
        ("faults/rss-bound", "max-host-rss = \"4MiB\"\n"),
    ] {
        let dir = corpus.path().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(source.join("plugin.wat"), dir.join("plugin.wat")).unwrap();
        let case = read(&source, "case.toml").replace("class = \"benign\"", &format!("class = \"{}\"", id.split('/').next().unwrap()));
        // Top-level keys go before the first table.
        let (top, tables): (String, String) = if extra.starts_with('[') { (String::new(), extra.into()) } else { (extra.into(), String::new()) };
        std::fs::write(dir.join("case.toml"), format!("{top}{case}\n{tables}")).unwrap();
    }
    corpus
}

#[test]
fn a_worker_that_dies_or_balloons_fails_only_its_own_case_and_every_report_is_written() {
    let corpus = fault_corpus();
    let adapter = corpus.path().join("faulty-worker.sh");
    // The test-only switch of `stockade worker`, behind an adapter: the shipped `conform` has no
    // way to inject a fault.
    std::fs::write(
        &adapter,
        format!(
            "#!/bin/sh\nexec '{}' worker --fault-on faults/panic=panic --fault-on faults/abort=abort --fault-on faults/leak=leak --fault-on faults/hang=hang\n",
            env!("CARGO_BIN_EXE_stockade")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&adapter, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = conform(corpus.path().to_str().unwrap(), dir.path(), &["--adapter", adapter.to_str().unwrap(), "--jobs", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 1, "{stdout}{}", stderr(&out));
    let report = json(dir.path(), "conformance.json");
    assert_schema_valid(&report);
    let case = |id: &str| report["cases"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("{id}: {report}")).clone();
    assert_eq!(case("benign/add")["verdict"], "pass", "{stdout}");
    for (id, fault, says) in [
        ("faults/panic", "crash", "exited with status 101"),
        ("faults/abort", "crash", "SIGABRT"),
        ("faults/leak", "host-rss-exceeded", "hard cap"),
        ("faults/hang", "hang", "hard cap of 5s"),
        ("faults/rss-bound", "host-rss-exceeded", "RSS"),
    ] {
        let c = case(id);
        assert_eq!(c["verdict"], "fail", "{id}: {c}");
        assert_eq!(c["fault"], fault, "{id}: {c}");
        assert!(c["problems"][0].as_str().unwrap().contains(says), "{id}: {c}");
    }
    assert!(stdout.contains("injected fault: panic"), "the panic's message is reported: {stdout}");
    // The leak is stopped near its cap (2 x 52 MiB), long before the 1 GiB it asks for.
    let leak_rss = case("faults/leak")["host"]["peak_rss_bytes"].as_u64().unwrap();
    assert!(leak_rss < 512 << 20, "{leak_rss}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "the hang was cut off: {:?}", started.elapsed());
    for name in REPORTS {
        assert!(read(dir.path(), name).contains("faults/hang"), "{name}");
    }
}

/// A worker that answers a case twice (as a watchdog firing just as the call returned once
/// did): the second line reaches the supervisor while the next case runs. It carries the first
/// case's id, so it is dropped and recorded, and the next case is graded on its own answer
/// (taken as that case's, the stale `timeout` failed it).
#[test]
fn a_second_answer_to_one_case_is_never_taken_for_the_next_cases() {
    let corpus = tempfile::tempdir().unwrap();
    let source = Path::new(FIXTURE_CORPUS).join("benign/add");
    for id in ["a-first/double-answer", "b-then/add"] {
        let dir = corpus.path().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(source.join("plugin.wat"), dir.join("plugin.wat")).unwrap();
        std::fs::copy(source.join("case.toml"), dir.join("case.toml")).unwrap();
    }
    let adapter = corpus.path().join("double-answer.sh");
    std::fs::write(&adapter, format!("#!/bin/sh\nexec '{}' worker --fault-on a-first/double-answer=double-answer\n", env!("CARGO_BIN_EXE_stockade"))).unwrap();
    std::fs::set_permissions(&adapter, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One job: both cases go to the same worker, one after the other.
    let out = conform(corpus.path().to_str().unwrap(), dir.path(), &["--adapter", adapter.to_str().unwrap(), "--jobs", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 0, "{stdout}{}", stderr(&out));
    let report = json(dir.path(), "conformance.json");
    let case = |id: &str| report["cases"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("{id}: {report}")).clone();
    assert_eq!(case("a-first/double-answer")["verdict"], "pass", "{report}");
    let then = case("b-then/add");
    assert_eq!(then["verdict"], "pass", "{then}");
    let notes = then["notes"].to_string();
    assert!(notes.contains("dropped an answer to `a-first/double-answer`"), "recorded: {then}");
}

/// Another host's words are not bounded by Stockade's limits: an adapter that answers every
/// step with 8 MiB of error text and output. The reports keep a bounded excerpt of each (before
/// this, 60 MiB of Extism's error text made the peer reports a gigabyte).
#[test]
fn a_hosts_ballooning_words_are_shortened_in_every_report() {
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: no python3 to write the adapter in");
        return;
    }
    let corpus = fault_corpus();
    let adapter = corpus.path().join("verbose-worker.py");
    std::fs::write(
        &adapter,
        r#"#!/usr/bin/env python3
import json, sys
for line in sys.stdin:
    request = json.loads(line)
    words = "x" * (8 << 20)
    steps = [{"code": "trap", "stage": "load", "error": words, "wall-ms": 1.0, "cpu-ms": 1.0}]
    print(json.dumps({"protocol": request["protocol"], "id": request["id"], "host": "verbose 1.0", "steps": steps}), flush=True)
"#,
    )
    .unwrap();
    std::fs::set_permissions(&adapter, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = conform(corpus.path().to_str().unwrap(), dir.path(), &["--adapter", adapter.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.stdout.len() < 64 << 10, "the summary: {} bytes", out.stdout.len());
    for name in REPORTS {
        let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
        // Six cases, each with its 8 MiB error: a few KiB each, not megabytes.
        assert!(size < 256 << 10, "{name}: {size} bytes");
    }
    assert!(read(dir.path(), "conformance.json").contains("8388608 bytes"), "the excerpt says how long the text was");
}
