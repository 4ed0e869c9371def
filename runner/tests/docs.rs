//! The reference pages made from the code's own tables: a page per finding code (from the code
//! catalog) and the capability catalog. The committed pages must be what the tables make now;
//! `STOCKADE_BLESS=1 cargo test -p stockade --test docs` writes them.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use stockade::Code;
use stockade::capability::{Abi, CATALOG, Family, Maps, Names};
use stockade::code::Stage;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src")
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Static => "static: `vet`, before anything is compiled",
        Stage::Runtime => "runtime: `run`, `conform` and the host library's calls",
        Stage::Plan => "plan: `stockade plan` and the host library's loading",
    }
}

fn code_page(code: Code) -> String {
    let overridable = if code.overridable() { "yes, in the policy's `[severity]` table" } else { "no" };
    format!(
        "# `{code}`\n\n{summary}\n\n| | |\n|---|---|\n| stage | {stage} |\n| default severity | `{severity}` |\n| overridable | {overridable} |\n\n{explanation}\n\n\
         The same text, in a terminal: `stockade explain {code}`.\n\n<!-- Generated from runner/src/code.rs by runner/tests/docs.rs: edit the catalog, not this page. -->\n",
        code = code.as_str(),
        summary = code.summary(),
        stage = stage_name(code.stage()),
        severity = code.default_severity().as_str(),
        explanation = code.explanation(),
    )
}

fn codes_index() -> String {
    let mut page = String::from(
        "# Codes\n\nEvery finding and outcome has a stable kebab-case code, a default severity and an \
         explanation. A policy's `[severity]` table overrides the severity of the codes that allow it.\n",
    );
    for stage in [Stage::Static, Stage::Runtime, Stage::Plan] {
        let _ = write!(page, "\n## {}\n\n| code | severity | summary |\n|---|---|---|\n", stage_name(stage));
        for code in Code::ALL.iter().filter(|c| c.stage() == stage) {
            let _ = writeln!(page, "| [`{0}`]({0}.md) | `{1}` | {2} |", code.as_str(), code.default_severity().as_str(), code.summary());
        }
    }
    page.push_str("\n<!-- Generated from runner/src/code.rs by runner/tests/docs.rs. -->\n");
    page
}

fn catalog_page() -> String {
    let mut page = String::from(
        "# The capability catalog\n\nEvery import a plugin may have maps to a capability through this one table \
         (`runner/src/capability.rs`). Rows are tried in order and the first match wins. An import in no row is \
         `unknown-import`; a row marked *kernel* is part of the plugin ABI and needs no capability.\n\n\
         ## Capabilities\n\n| capability | grants |\n|---|---|\n",
    );
    for family in Family::ALL {
        let name = if family.is_scoped() { format!("`{}:…`", family.as_str()) } else { format!("`{}`", family.as_str()) };
        let _ = writeln!(page, "| {name} | {} |", family.grants());
    }
    page.push_str("\n## Imports\n\n| ABI | module or interface | functions | capability | type |\n|---|---|---|---|---|\n");
    for row in CATALOG {
        let abi = match row.abi {
            Abi::Extism => "Extism",
            Abi::WasiPreview1 => "WASI preview 1",
            Abi::Component => "component",
        };
        let names = match row.names {
            Names::Exact(name) => format!("`{name}`"),
            Names::Prefix(prefix) => format!("`{prefix}*`"),
            Names::Any => "any".to_string(),
        };
        let maps = match row.maps {
            Maps::Core => "*kernel*".to_string(),
            Maps::To(family) => format!("`{}`", family.as_str()),
            Maps::HostFunction => "`host:NAME`".to_string(),
        };
        let signature = row.signature.map_or(String::new(), |(params, results)| {
            let list = |types: &[wasmparser::ValType]| types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" ");
            format!("`({}) -> ({})`", list(params), list(results))
        });
        let _ = writeln!(page, "| {abi} | `{}` | {names} | {maps} | {signature} |", row.module);
    }
    page.push_str("\n<!-- Generated from runner/src/capability.rs by runner/tests/docs.rs. -->\n");
    page
}

/// The line of SUMMARY.md the code pages are listed under: what follows it is generated.
const CODES_ENTRY: &str = "- [Codes](codes/README.md)\n";

/// SUMMARY.md as written by hand up to the codes' entry, then a nested entry per code.
fn summary() -> String {
    let written = std::fs::read_to_string(docs().join("SUMMARY.md")).unwrap_or_default();
    let head = written.find(CODES_ENTRY).map_or(written.as_str(), |at| &written[..at]);
    let mut summary = format!("{head}{CODES_ENTRY}");
    for code in Code::ALL {
        let _ = writeln!(summary, "  - [{0}](codes/{0}.md)", code.as_str());
    }
    summary
}

/// Each page the tables make, by its path under docs/src.
fn generated() -> Vec<(PathBuf, String)> {
    let mut pages = vec![
        (PathBuf::from("SUMMARY.md"), summary()),
        (PathBuf::from("codes/README.md"), codes_index()),
        (PathBuf::from("reference/catalog.md"), catalog_page()),
    ];
    pages.extend(Code::ALL.iter().map(|code| (PathBuf::from(format!("codes/{}.md", code.as_str())), code_page(*code))));
    pages
}

#[test]
fn the_generated_reference_pages_are_current() {
    let bless = std::env::var_os("STOCKADE_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (path, text) in generated() {
        let full = docs().join(&path);
        if bless {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, &text).unwrap();
        } else if std::fs::read_to_string(&full).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(stale.is_empty(), "stale or missing (STOCKADE_BLESS=1 cargo test -p stockade --test docs): {stale:?}");
    // A page for a code that no longer exists would be served as current.
    let expected: std::collections::BTreeSet<String> = Code::ALL.iter().map(|c| format!("{}.md", c.as_str())).chain(["README.md".to_string()]).collect();
    let present: std::collections::BTreeSet<String> =
        std::fs::read_dir(docs().join("codes")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(present, expected, "docs/src/codes holds exactly a page per code");
}

/// The book's table of contents reaches every page, a generated one included.
#[test]
fn the_summary_links_every_page() {
    let summary = std::fs::read_to_string(docs().join("SUMMARY.md")).unwrap();
    let mut missing = Vec::new();
    let mut pages = Vec::new();
    collect_pages(&docs(), &docs(), &mut pages);
    for page in pages {
        if page != "SUMMARY.md" && !summary.contains(&format!("]({page})")) {
            missing.push(page);
        }
    }
    assert!(missing.is_empty(), "pages docs/src/SUMMARY.md does not link: {missing:?}");
}

fn collect_pages(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_pages(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}

/// The book builds, with no warning from mdBook (a broken link or include is a warning). With
/// STOCKADE_MDBOOK naming the mdbook binary (CI's `scripts/install-mdbook.sh`) it must; without
/// it, an mdbook on PATH is used and the test skips where there is none.
#[test]
fn the_book_builds() {
    let mdbook = match std::env::var_os("STOCKADE_MDBOOK") {
        Some(path) => PathBuf::from(path),
        None if std::process::Command::new("mdbook").arg("--version").output().is_ok() => PathBuf::from("mdbook"),
        None => {
            eprintln!("skipped: no mdbook (scripts/install-mdbook.sh installs it)");
            return;
        }
    };
    let out_dir = tempfile::tempdir().unwrap();
    let book = docs().parent().unwrap().to_path_buf();
    let out = std::process::Command::new(&mdbook)
        .args(["build", "--dest-dir"])
        .arg(out_dir.path())
        .arg(&book)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", mdbook.display()));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mdbook build failed:\n{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "mdbook warned:\n{log}");
    for page in ["index.html", "codes/timeout.html", "reference/catalog.html", "threat-model.html"] {
        assert!(out_dir.path().join(page).is_file(), "{page} was not built:\n{log}");
    }
}
