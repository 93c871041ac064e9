//! The layout stays as the README's "Layout" says: no file under `src/` over 400 lines, and
//! the library's top-level modules depend on each other one way (no import cycles).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 400;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> (PathBuf, Vec<PathBuf>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    (root, files)
}

#[test]
fn no_file_under_src_is_over_400_lines() {
    let (root, files) = src();
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > MAX_LINES)
                .then(|| format!("{} ({lines})", f.strip_prefix(&root).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

/// The top-level module a library file belongs to (`src/opencti/ops/work.rs` → `opencti`);
/// `None` for the crate root and the binary (`main.rs`, `cli/`), which are not modules of
/// the library.
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(root).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let module = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(module, "lib" | "main" | "cli")).then(|| module.to_string())
}

/// Whether a file holds unit tests only (`tests.rs`, `tests/…`, `*_tests.rs`).
fn is_test_file(root: &Path, file: &Path) -> bool {
    let relative = file
        .strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    relative
        .split('/')
        .any(|part| part == "tests" || part == "tests.rs")
        || relative.ends_with("_tests.rs")
}

/// Every `crate::<module>` a file's code names (before its `#[cfg(test)]` tail), with the
/// line of the first mention.
fn uses(text: &str) -> BTreeMap<String, usize> {
    let mut found = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let name: String = rest[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.entry(name).or_insert(number + 1);
            }
            rest = &rest[at + 7..];
        }
    }
    found
}

#[test]
fn the_library_s_modules_have_no_import_cycle() {
    let (root, files) = src();
    // module -> (module it names -> where, first seen)
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(&root, file) else {
            continue;
        };
        if is_test_file(&root, file) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let edges = graph.entry(module.clone()).or_default();
        for (used, line) in uses(&text) {
            if used != module {
                let place = format!("{}:{line}", file.strip_prefix(&root).unwrap().display());
                edges.entry(used).or_insert(place);
            }
        }
    }
    // A depth-first search that reports the first cycle with where each step is made.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
                .collect();
            panic!("import cycle: {}", steps.join(", "));
        }
    }
}
