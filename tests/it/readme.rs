//! The README stays true: its configuration table is exactly the loader's key table.

#[test]
fn readme_config_table_matches_the_key_table() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- config-table:start -->\n")
        .expect("start marker")
        + "<!-- config-table:start -->\n".len();
    let end = readme
        .find("<!-- config-table:end -->")
        .expect("end marker");
    assert_eq!(
        &readme[start..end],
        opencti_connectors::registry::markdown_table(),
        "regenerate with `cargo run -q -- config-table`"
    );
}

#[test]
fn readme_test_command_is_the_one_ci_runs() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    let command = "cargo nextest run --locked --no-fail-fast";
    assert!(readme.contains(command));
    assert!(ci.lines().any(|l| l.trim() == command));
}
