//! Fixtures: the shared ones under `../shared/` (beside the repository) and the project's
//! own, constructed ones under `tests/fixtures/`. The one reader of the unit tests
//! (`crate::fixtures`) and, through the `fixtures` feature, of `tests/support` (testkit).

/// Path of a file under `../shared/`.
pub fn shared(path: &str) -> String {
    format!("{}/../shared/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// The text of `shared/fixtures/<connector>/<name>`.
pub fn fixture(connector: &str, name: &str) -> String {
    let path = shared(&format!("fixtures/{connector}/{name}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// `shared/fixtures/<connector>/<name>` parsed as JSON.
pub fn fixture_json(connector: &str, name: &str) -> serde_json::Value {
    let text = fixture(connector, name);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {connector}/{name}: {e}"))
}

/// `tests/fixtures/<connector>/<name>` (the project's own, constructed fixtures) as text.
pub fn constructed(connector: &str, name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/{connector}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// `tests/fixtures/<connector>/<name>` parsed as JSON.
pub fn constructed_json(connector: &str, name: &str) -> serde_json::Value {
    serde_json::from_str(&constructed(connector, name))
        .unwrap_or_else(|e| panic!("fixture tests/fixtures/{connector}/{name}: {e}"))
}
