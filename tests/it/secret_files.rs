//! Secrets from files through the binary: `<VARIABLE>_FILE` and `<key>_file` give the value
//! (trailing newline trimmed), in normal mode and in a drop-in, for every connector's required
//! secrets and URLs; both forms, or an unreadable file, stop the start (exit 2) with an error
//! naming the path, never the content.

use std::process::{Command, Output};

use crate::common::daemon::BIN;

const ID: &str = "2f0cc9a8-0b1b-4e2a-9f7d-1c2b3d4e5f60";

struct Files(std::path::PathBuf);

impl Files {
    fn new() -> Files {
        let dir = crate::common::scratch_dir("secret-files");
        Files(dir)
    }

    /// Writes `content` to `name` and returns its path.
    fn write(&self, name: &str, content: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check_config(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> (Output, String) {
    let out = Command::new(BIN)
        .current_dir(dir)
        .env_clear()
        .arg("check-config")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn env_and_yaml_files_give_the_secrets() {
    let files = Files::new();
    let token = files.write("opencti_token", "opencti-file-secret\n");
    let ipinfo = files.write("ipinfo_token", "ipinfo-file-secret\n");
    let base = [
        ("OPENCTI_URL", "http://opencti:8080"),
        ("IPINFO_ENABLED", "true"),
        ("IPINFO_CONNECTOR_ID", ID),
    ];
    let mut env = base.to_vec();
    env.extend([
        ("OPENCTI_TOKEN_FILE", token.as_str()),
        ("IPINFO_TOKEN_FILE", ipinfo.as_str()),
    ]);
    let (out, text) = check_config(&[], &env, &files.0);
    assert_eq!(out.status.code(), Some(0), "{text}");

    let yaml = files.write(
        "config.yml",
        &format!("opencti:\n  token_file: {token}\nipinfo:\n  token_file: {ipinfo}\n"),
    );
    let (out, text) = check_config(&["--config", &yaml], &base, &files.0);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("file-secret"), "{text}");
}

#[test]
fn both_forms_or_an_unreadable_file_exit_2_naming_the_path_only() {
    let files = Files::new();
    let token = files.write("opencti_token", "opencti-file-secret\n");
    let missing = files.0.join("missing").to_str().unwrap().to_string();
    let env = [
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN", "opencti-env-secret"),
        ("OPENCTI_TOKEN_FILE", token.as_str()),
        ("IPINFO_ENABLED", "true"),
        ("IPINFO_CONNECTOR_ID", ID),
        ("IPINFO_TOKEN_FILE", missing.as_str()),
    ];
    let (out, text) = check_config(&[], &env, &files.0);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("opencti.token (env OPENCTI_TOKEN and OPENCTI_TOKEN_FILE): both are set"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ipinfo.token (env IPINFO_TOKEN_FILE): cannot read the secret file {missing}"
        )),
        "{text}"
    );
    assert!(
        !text.contains("secret\n") && !text.contains("-secret"),
        "{text}"
    );
}

#[test]
fn a_drop_in_reads_the_official_names_from_files() {
    let files = Files::new();
    let token = files.write("token", "opencti-file-secret\n");
    let key = files.write("lis", "lis-file-secret\n");
    let env = [
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN_FILE", token.as_str()),
        ("CONNECTOR_ID", ID),
        ("CONFIG_LIS_APIKEY_CTI_FILE", key.as_str()),
    ];
    let (out, text) = check_config(&["--as", "lastinfosec"], &env, &files.0);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("_FILE"), "not reported as unread: {text}");
    assert!(!text.contains("file-secret"), "{text}");
    let (out, text) = check_config(
        &["--as", "lastinfosec"],
        &[
            ("OPENCTI_URL", "http://opencti:8080"),
            ("OPENCTI_TOKEN_FILE", token.as_str()),
            ("CONNECTOR_ID", ID),
            ("CONFIG_LIS_APIKEY_CTI", "lis-env-secret"),
            ("CONFIG_LIS_APIKEY_CTI_FILE", key.as_str()),
        ],
        &files.0,
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("CONFIG_LIS_APIKEY_CTI and CONFIG_LIS_APIKEY_CTI_FILE"),
        "{text}"
    );
    assert!(
        !text.contains("lis-env-secret") && !text.contains("lis-file-secret"),
        "{text}"
    );
}

#[test]
fn every_connector_s_required_secrets_and_urls_can_come_from_files() {
    use opencti_connectors::config::files::accepts_file;
    use opencti_connectors::registry::{all_keys, specs};
    let files = Files::new();
    let keys = all_keys();
    let mut env = testkit::every_connector_env();
    let mut from_files = 0;
    for spec in specs() {
        for (name, sample) in spec.required_env() {
            let key = keys.iter().find(|k| k.env[0] == name).unwrap();
            if !accepts_file(key) {
                continue;
            }
            let path = files.write(&name, &format!("{sample}\n"));
            env.retain(|(k, _)| *k != name);
            env.push((format!("{name}_FILE"), path));
            from_files += 1;
        }
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (out, text) = check_config(&[], &env, &files.0);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for spec in specs() {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{}: ", spec.section))),
            "{text}"
        );
    }
    assert!(
        text.contains(&format!(
            "configuration OK ({} connector(s) enabled)",
            specs().len()
        )),
        "{text}"
    );
    assert!(from_files >= 5, "{from_files} values from files");
}
