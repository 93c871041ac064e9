//! Fixtures: the shared ones under `../shared/` (beside the repository), the project's own,
//! constructed ones under `tests/fixtures/`, and the environments that enable the registry's
//! connectors. The one reader of the unit tests (`crate::fixtures`) and, through the
//! `fixtures` feature, of `tests/support` (testkit).

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

/// OpenCTI's URL and token, as the tests that load a whole configuration give them.
pub const OPENCTI_ENV: [(&str, &str); 2] = [
    ("OPENCTI_URL", "http://opencti:8080"),
    ("OPENCTI_TOKEN", "opencti-token"),
];

/// Every connector of the registry enabled with what it requires (each section's
/// [`SectionSpec::enabling_env`](crate::config::SectionSpec::enabling_env)), after
/// [`OPENCTI_ENV`]: the environment of the tests whose claim is about every connector, so
/// that a connector added to the registry is in them with no other edit.
pub fn every_connector_env() -> Vec<(String, String)> {
    OPENCTI_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(
            crate::registry::specs()
                .into_iter()
                .flat_map(|spec| spec.enabling_env()),
        )
        .collect()
}

/// Each connector's `api_base_url` variable set to `<base>/<section>`: every upstream on one
/// fake server, told apart by the path.
pub fn upstreams_at(base: &str) -> Vec<(String, String)> {
    crate::registry::specs()
        .into_iter()
        .filter_map(|spec| {
            let path = format!("{}.api_base_url", spec.section);
            let key = spec.all_keys().into_iter().find(|k| k.path == path)?;
            Some((key.env[0].clone(), format!("{base}/{}", spec.section)))
        })
        .collect()
}
