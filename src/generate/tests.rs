//! The generated files are what the registry gives, a region is generated whole from nothing, and the sample's
//! values read back as each key's default.

use std::path::{Path, PathBuf};

use super::*;
use crate::config::{Kind, SectionSpec};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_generated_files_are_up_to_date() {
    for file in generate(root()).unwrap() {
        if let Some((line, (now, wanted))) = file
            .current
            .lines()
            .zip(file.expected.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            panic!(
                "{} is stale: run scripts/regenerate (line {}: `{now}`, generated: `{wanted}`)",
                file.file,
                line + 1
            );
        }
        assert!(
            !file.is_stale(),
            "{} is stale: run scripts/regenerate (its length differs)",
            file.file
        );
    }
}

#[test]
fn emptied_regions_are_generated_whole_again() {
    // Generating is a function of the registry alone: what a region held before does not
    // matter, so a file whose regions were emptied comes back as the up-to-date file does.
    for file in generate(root()).unwrap() {
        let mut emptied = file.current.clone();
        for region in regions().into_iter().filter(|r| r.file == file.file) {
            emptied = apply(&emptied, region.place, "").unwrap();
        }
        assert!(
            emptied != file.expected,
            "{}: nothing was emptied",
            file.file
        );
        let again = regenerate(file.file, &emptied).unwrap();
        assert!(again == file.expected, "{}", file.file);
    }
}

/// A copy of the generated files (and the manifest) in a directory of its own.
fn copy() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "occ-generate-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    for file in files().into_iter().chain(["Cargo.toml"]) {
        let to = dir.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root().join(file), to).unwrap();
    }
    dir
}

#[test]
fn a_stale_file_is_named_and_rewritten() {
    let dir = copy();
    let compose = dir.join("docker-compose.yml");
    let text = std::fs::read_to_string(&compose).unwrap();
    std::fs::write(
        &compose,
        text.replace("IPINFO_ENABLED=false", "IPINFO_ENABLED=true"),
    )
    .unwrap();
    let error = check(&dir).unwrap_err().to_string();
    assert_eq!(
        error,
        "docker-compose.yml: not what the registry generates; run scripts/regenerate"
    );
    assert_eq!(write(&dir).unwrap(), ["docker-compose.yml"]);
    assert_eq!(std::fs::read_to_string(&compose).unwrap(), text);
    check(&dir).unwrap();
    assert!(write(&dir).unwrap().is_empty());
    // A lost marker is an error naming the file and the marker, and nothing is written.
    let sample = dir.join("config.yml.sample");
    let text = std::fs::read_to_string(&sample).unwrap();
    let broken = text.replace("# <<< generated: connector sections", "");
    std::fs::write(&sample, &broken).unwrap();
    let error = write(&dir).unwrap_err().to_string();
    assert!(
        error.starts_with("config.yml.sample: the line `# <<< generated: connector sections`"),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&sample).unwrap(), broken);
    std::fs::remove_dir_all(&dir).unwrap();
    // Only in the repository.
    let error = check(&std::env::temp_dir()).unwrap_err().to_string();
    assert!(
        error.contains("not the opencti-connectors repository"),
        "{error}"
    );
}

#[test]
fn a_word_list_is_replaced_on_its_line_only() {
    let text = "# a\nfor s in x y; do z; done\n### b\n  for s in old list; do install; done\nfor s in c;\n";
    let place = Place::Words {
        anchor: "### b",
        prefix: "for s in ",
    };
    assert_eq!(
        apply(text, place, "p q").unwrap(),
        "# a\nfor s in x y; do z; done\n### b\n  for s in p q; do install; done\nfor s in c;\n"
    );
    let place = Place::Words {
        anchor: "### c",
        prefix: "for s in ",
    };
    assert!(apply(text, place, "p").is_err());
}

/// The value at a dotted path of a YAML document, as text (`None` when absent).
fn at(doc: &serde_yaml::Value, path: &str) -> Option<String> {
    let mut node = doc;
    for part in path.split('.') {
        node = node.get(part)?;
    }
    Some(match node {
        serde_yaml::Value::Null => String::new(),
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other).unwrap().trim().to_string(),
    })
}

#[test]
fn the_sample_shows_every_connector_key_with_its_default() {
    let sample = sample::sections();
    let doc: serde_yaml::Value = serde_yaml::from_str(&sample).unwrap();
    for spec in registry::specs() {
        let required = required(spec);
        for key in spec.all_keys() {
            let shown = at(&doc, &key.path).unwrap_or_else(|| panic!("{} missing", key.path));
            let is_required = required.iter().any(|r| r.path == key.path);
            let wanted = if !key.default.is_empty() {
                key.default.clone()
            } else if is_required && key.kind == Kind::Secret {
                "ChangeMe".into()
            } else {
                String::new()
            };
            assert_eq!(shown, wanted, "{}", key.path);
        }
    }
    // Every line fits, its comment aligned, and names the key's variables.
    for line in sample.lines() {
        assert!(line.chars().count() <= 100, "{line}");
    }
    assert!(
        sample.contains(
            "  token: ChangeMe                   # IPinfo API token (required). [env: IPINFO_TOKEN]\n"
        ),
        "{sample}"
    );
}

/// The keys of `spec` whose checks refuse it when it is enabled with its id alone.
fn refused_unset(spec: &SectionSpec) -> Vec<String> {
    let key = |k: &str| keys::env_name(&format!("{}.{k}", spec.section));
    let env: std::collections::HashMap<String, String> = [
        ("OPENCTI_URL".into(), "http://opencti:8080".into()),
        ("OPENCTI_TOKEN".into(), "token".into()),
        (key("enabled"), "true".into()),
        (key("connector.id"), uuid::Uuid::nil().to_string()),
    ]
    .into();
    let errors = registry::Config::from_sources(None, &env)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    spec.all_keys()
        .into_iter()
        .filter(|k| errors.contains(&format!("{} (", k.path)))
        .map(|k| k.path)
        .collect()
}

#[test]
fn the_secrets_and_required_values_are_the_ones_checks_refuse_unset() {
    // The compose file and the unit give an enabled connector exactly these.
    for spec in registry::specs() {
        let declared: Vec<String> = required(spec).into_iter().map(|k| k.path).collect();
        assert_eq!(declared, refused_unset(spec), "{}", spec.section);
    }
    let paths = |section: &str| -> Vec<String> {
        let spec = registry::specs()
            .into_iter()
            .find(|s| s.section == section)
            .unwrap();
        required(spec).into_iter().map(|k| k.path).collect()
    };
    assert_eq!(paths("ipinfo"), ["ipinfo.token"]);
    assert_eq!(paths("ipsum"), Vec::<String>::new());
    assert_eq!(paths("riskiq"), ["riskiq.username", "riskiq.api_key"]);
}

#[test]
fn yaml_scalars_read_back_as_the_text() {
    for text in [
        "TLP:AMBER",
        "IPv4-Addr,IPv6-Addr",
        "0.0.0.0:9095",
        "a: b",
        "x #y",
        "#x",
        "*alias",
        "- item",
        "it's",
        "'quoted'",
        "trailing:",
        " lead",
        "http://ivre/cgi#Referer=http://ivre/",
    ] {
        let yaml = format!("k: {}\n", sample::yaml_scalar(text));
        let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(doc["k"].as_str(), Some(text), "{yaml}");
    }
}
