//! The README stays true: its test command is the one CI runs. (Its configuration table and
//! the other parts generated from the registry: `generate::tests`.)

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
