use std::collections::HashMap;

use super::*;
use crate::config::keys::KeySpec;

fn table() -> Vec<KeySpec> {
    crate::config::keys::global_keys()
}

fn dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("secret-files-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_file_gives_the_value_without_its_trailing_newline() {
    let dir = dir();
    let path = dir.join("token");
    std::fs::write(&path, "s3cret \r\n\n").unwrap();
    let path = path.to_str().unwrap();
    let out = expand_env(&env(&[("OPENCTI_TOKEN_FILE", path)]), &table()).unwrap();
    assert_eq!(
        out.get("OPENCTI_TOKEN").map(String::as_str),
        Some("s3cret ")
    );
    assert!(!out.contains_key("OPENCTI_TOKEN_FILE"));
    // Any name of the key: the proxies' lowercase ones too.
    let out = expand_env(&env(&[("https_proxy_FILE", path)]), &table()).unwrap();
    assert_eq!(out.get("https_proxy").map(String::as_str), Some("s3cret "));
    // Not for keys that hold no secret.
    let out = expand_env(&env(&[("LOG_LEVEL_FILE", path)]), &table()).unwrap();
    assert!(!out.contains_key("LOG_LEVEL"));

    let yaml = format!("opencti:\n  token_file: {path}\n");
    let mut root: Mapping = serde_yaml::from_str(&yaml).unwrap();
    let mut errors = Vec::new();
    expand_yaml(&mut root, &table(), &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        serde_yaml::to_string(&root).unwrap(),
        "opencti:\n  token: 's3cret '\n"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn both_forms_or_an_unreadable_file_are_errors_naming_the_path_only() {
    let dir = dir();
    let path = dir.join("token");
    std::fs::write(&path, "hunter2\n").unwrap();
    let path = path.to_str().unwrap();
    let errors = expand_env(
        &env(&[("OPENCTI_TOKEN", "hunter2"), ("OPENCTI_TOKEN_FILE", path)]),
        &table(),
    )
    .unwrap_err();
    assert_eq!(
        errors,
        ["opencti.token (env OPENCTI_TOKEN and OPENCTI_TOKEN_FILE): both are set; set one"]
    );
    let missing = dir.join("missing");
    let missing = missing.to_str().unwrap();
    let errors = expand_env(&env(&[("MQ_PASS_FILE", missing)]), &table()).unwrap_err();
    assert!(
        errors[0].starts_with(&format!(
            "mq.pass (env MQ_PASS_FILE): cannot read the secret file {missing}: "
        )),
        "{errors:?}"
    );
    let errors = expand_env(&env(&[("MQ_PASS_FILE", "/dev/zero")]), &table()).unwrap_err();
    assert!(errors[0].contains("larger than 64 KiB"), "{errors:?}");
    std::fs::write(dir.join("binary"), [0xff, 0xfe, b'h']).unwrap();
    let binary = dir.join("binary");
    let errors = expand_env(
        &env(&[("MQ_PASS_FILE", binary.to_str().unwrap())]),
        &table(),
    )
    .unwrap_err();
    assert!(errors[0].contains("not UTF-8"), "{errors:?}");

    let yaml = format!("opencti:\n  token: hunter2\n  token_file: {path}\n");
    let mut root: Mapping = serde_yaml::from_str(&yaml).unwrap();
    let mut errors = Vec::new();
    expand_yaml(&mut root, &table(), &mut errors);
    assert_eq!(
        errors,
        ["opencti.token and opencti.token_file: both are set; set one"]
    );
    let mut root: Mapping = serde_yaml::from_str("opencti:\n  token_file: [1]\n").unwrap();
    let mut errors = Vec::new();
    expand_yaml(&mut root, &table(), &mut errors);
    assert_eq!(errors, ["opencti.token_file: expected the path of a file"]);
    for e in &errors {
        assert!(!e.contains("hunter2"));
    }
    let _ = std::fs::remove_dir_all(dir);
}
