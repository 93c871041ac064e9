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

/// Every `crate::<module>` a file's code names, grouped imports (`crate::{a, b::c}`, over
/// several lines too) included, with the line of the first mention. Comments are left out,
/// and so is what `#[cfg(test)]` marks: the item after it, and an inline `mod tests { … }`
/// with the rest of the file.
fn uses(text: &str) -> BTreeMap<String, usize> {
    // The code alone, its lines kept (a comment becomes an empty rest of line).
    let mut code = String::new();
    let mut test_item = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            test_item = true;
        } else if test_item {
            test_item = false;
            if trimmed.contains("mod ") && trimmed.trim_end().ends_with('{') {
                break;
            }
        } else {
            code.push_str(line.split("//").next().unwrap_or_default());
        }
        code.push('\n');
    }
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeMap::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::").map(|i| from + i) {
        let line = code[..at].matches('\n').count() + 1;
        let after = &code[at + 7..];
        let names = match after.strip_prefix('{') {
            // The group's top-level parts, each up to its first `::`.
            Some(group) => {
                let (mut depth, mut parts, mut part) = (0, Vec::new(), String::new());
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => parts.push(std::mem::take(&mut part)),
                        _ => part.push(c),
                    }
                }
                parts.push(part);
                parts.iter().map(|p| ident(p)).collect()
            }
            None => vec![ident(after)],
        };
        for name in names.into_iter().filter(|n| !n.is_empty() && n != "self") {
            found.entry(name).or_insert(line);
        }
        from = at + 7;
    }
    found
}

#[test]
fn the_import_reader_sees_every_form() {
    let text = "use crate::config::{self, Kind};
use crate::{dropin, registry::specs};
use crate::{
    // a comment naming crate::metrics
    stix::Tlp,
    upstream::{http, cache},
};
fn f() { crate::oneshot::run(); }
#[cfg(test)]
use crate::fixtures;
#[cfg(test)]
mod tests {
    use crate::amqp;
}
";
    let found: Vec<(String, usize)> = uses(text).into_iter().collect();
    let want: Vec<(String, usize)> = [
        ("config", 1),
        ("dropin", 2),
        ("oneshot", 8),
        ("registry", 2),
        ("stix", 3),
        ("upstream", 3),
    ]
    .into_iter()
    .map(|(m, l)| (m.to_string(), l))
    .collect();
    assert_eq!(found, want);
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
