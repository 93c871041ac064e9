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
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let ci = std::fs::read_to_string(format!("{root}/.ci/run")).unwrap();
    // The README's test command: the one line of the code block after "Run the tests".
    let after = &readme[readme
        .find("Run the tests")
        .expect("a Run the tests paragraph")..];
    let block = &after[after.find("```sh\n").expect("a sh block") + 6..];
    let command = block[..block.find("```").unwrap()].trim();
    assert_eq!(command, "scripts/test");
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run runs the README's test command"
    );
    // The script runs the whole suite, then the broker-alarm test on its own.
    let script = std::fs::read_to_string(format!("{root}/scripts/test")).unwrap();
    for step in [
        "cargo nextest run --locked --no-fail-fast",
        "cargo nextest run --locked --profile broker-alarm",
    ] {
        assert!(script.contains(step), "scripts/test runs `{step}`");
    }
}
