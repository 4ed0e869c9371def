//! The library's top-level modules form layers: no two of them use each other, directly or
//! through others. Read from the sources (what `crate::MODULE` paths each module's code, not its
//! comments or tests, names), so a new cycle fails here, naming the modules and files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

fn sources(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            sources(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Module → the modules it uses → a file where it does.
fn uses() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".rs").to_string())
        .filter(|m| !["lib", "main", "cli"].contains(&m.as_str()))
        .collect();
    // The crate root's re-exports, by the module that defines them.
    let reexports = [("Code", "code"), ("Severity", "code"), ("Policy", "policy"), ("Finding", "vet"), ("VetOptions", "vet"), ("Vetting", "vet")];
    let path = Regex::new(r"crate::([A-Za-z_]+)").unwrap();
    let comment = Regex::new(r"//[^\n]*").unwrap();
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for module in &modules {
        let mut files = Vec::new();
        let file = src.join(format!("{module}.rs"));
        let root = if file.exists() { file } else { src.join(module) };
        sources(&root, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            let code = comment.replace_all(code, "");
            for name in path.captures_iter(&code).map(|c| c[1].to_string()) {
                let used = reexports.iter().find(|(n, _)| *n == name).map_or(name.clone(), |(_, m)| m.to_string());
                if used != *module && modules.contains(&used) {
                    graph.entry(module.clone()).or_default().entry(used).or_insert_with(|| file.clone());
                }
            }
        }
    }
    graph
}

#[test]
fn no_two_modules_use_each_other() {
    let graph = uses();
    // Each module's path back to itself, if any, by a depth-first search.
    fn back_to(start: &str, at: &str, graph: &BTreeMap<String, BTreeMap<String, PathBuf>>, path: &mut Vec<String>, seen: &mut BTreeSet<String>) -> bool {
        for next in graph.get(at).into_iter().flat_map(|m| m.keys()) {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if back_to(start, next, graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut cycles = Vec::new();
    for module in graph.keys() {
        let mut path = vec![module.clone()];
        if back_to(module, module, &graph, &mut path, &mut BTreeSet::new()) {
            path.push(module.clone());
            let steps: Vec<String> = path.windows(2).map(|w| format!("{} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]].display())).collect();
            cycles.push(steps.join(", "));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

/// The leaves stay leaves: what every layer uses depends on none of the layers above.
#[test]
fn the_leaf_modules_use_no_layer_above_them() {
    let graph = uses();
    for leaf in ["code", "units", "document", "capability", "text", "fault", "atomic", "features"] {
        let used: Vec<&String> = graph.get(leaf).into_iter().flat_map(|m| m.keys()).filter(|m| !["code", "units", "document", "text"].contains(&m.as_str())).collect();
        assert!(used.is_empty(), "`{leaf}` uses {used:?}");
    }
}
