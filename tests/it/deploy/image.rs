//! The Dockerfile, checked without Docker: both platforms cross-compiled on the build
//! platform, the binary built with cargo-auditable, OCI labels from the manifest, one image
//! per official connector, and everything the manifest names in the build context.

use super::read;

/// One instruction, continuation lines joined, comments dropped.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// One stage: its `FROM` arguments and its instructions.
#[derive(Debug)]
struct Stage {
    /// `--platform=…`, when given.
    platform: Option<String>,
    /// The image or the earlier stage it starts from.
    base: String,
    /// `AS <name>`.
    name: Option<String>,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn args(&self, keyword: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|i| i.keyword == keyword)
            .map(|i| i.args.as_str())
            .collect()
    }

    /// The `KEY=value` pairs of its `ENV`, `ARG` or `LABEL` instructions.
    fn pairs(&self, keyword: &str) -> Vec<(String, String)> {
        self.args(keyword)
            .into_iter()
            .flat_map(shell_words)
            .map(|word| match word.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (word, String::new()),
            })
            .collect()
    }
}

/// Words as a Dockerfile splits `KEY="a b" K2=v`: blanks outside quotes, quotes removed.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn stages() -> Vec<Stage> {
    let text = read("Dockerfile");
    let mut joined: Vec<String> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body.trim_end(), true),
            None => (trimmed, false),
        };
        if open {
            let last = joined.last_mut().unwrap();
            last.push(' ');
            last.push_str(body);
        } else {
            joined.push(body.to_string());
        }
        open = continues;
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in joined {
        let (keyword, args) = line.split_once(' ').unwrap_or((&line, ""));
        if keyword == "FROM" {
            let mut words = args.split_whitespace().peekable();
            let platform = words
                .next_if(|w| w.starts_with("--platform="))
                .map(|w| w.trim_start_matches("--platform=").to_string());
            let base = words.next().unwrap().to_string();
            let name = match (words.next(), words.next()) {
                (Some(kw), Some(name)) if kw.eq_ignore_ascii_case("AS") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                platform,
                base,
                name,
                instructions: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .expect("FROM first")
                .instructions
                .push(Instruction {
                    keyword: keyword.to_string(),
                    args: args.to_string(),
                });
        }
    }
    stages
}

fn stage<'a>(stages: &'a [Stage], name: &str) -> &'a Stage {
    stages
        .iter()
        .find(|s| s.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no stage {name}"))
}

/// The package's `[package]` value of `key`.
fn manifest(key: &str) -> String {
    let manifest: toml_like::Manifest = toml_like::parse(&read("Cargo.toml"));
    manifest.package(key)
}

/// Just enough of TOML for Cargo.toml's `[package]` strings and `[[bench]]` names.
mod toml_like {
    pub struct Manifest {
        package: Vec<(String, String)>,
        pub benches: Vec<String>,
        /// Every workspace member but the root (`[workspace] members`).
        pub members: Vec<String>,
    }

    impl Manifest {
        pub fn package(&self, key: &str) -> String {
            self.package
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("Cargo.toml: no package.{key}"))
        }
    }

    pub fn parse(text: &str) -> Manifest {
        let mut section = String::new();
        let mut package = Vec::new();
        let mut benches = Vec::new();
        let mut members = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_string();
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim().trim_matches('"').to_string());
            match section.as_str() {
                "[package]" => package.push((k.to_string(), v)),
                "[[bench]]" if k == "name" => benches.push(v),
                "[workspace]" if k == "members" => members.extend(
                    v.trim_matches(['[', ']'])
                        .split(',')
                        .map(|m| m.trim().trim_matches('"').to_string())
                        .filter(|m| !m.is_empty() && m != "."),
                ),
                _ => {}
            }
        }
        Manifest {
            package,
            benches,
            members,
        }
    }
}

#[test]
fn both_platforms_are_cross_compiled_on_the_build_platform() {
    let stages = stages();
    let build = stage(&stages, "build");
    assert_eq!(
        build.platform.as_deref(),
        Some("$BUILDPLATFORM"),
        "the build stage runs on the build machine (no emulation)"
    );
    let args: Vec<String> = build.pairs("ARG").into_iter().map(|(k, _)| k).collect();
    assert!(args.contains(&"TARGETARCH".to_string()) && args.contains(&"BUILDARCH".to_string()));
    let run = build.args("RUN").join("\n");
    let env = build.pairs("ENV");
    for (arch, triple, gcc) in [
        ("amd64", "x86_64-unknown-linux-gnu", "x86_64-linux-gnu-gcc"),
        (
            "arm64",
            "aarch64-unknown-linux-gnu",
            "aarch64-linux-gnu-gcc",
        ),
    ] {
        assert!(
            run.contains(&format!("{arch}) triple={triple}")),
            "TARGETARCH {arch} builds {triple}"
        );
        let upper = triple.to_uppercase().replace('-', "_");
        let linker = format!("CARGO_TARGET_{upper}_LINKER");
        let cc = format!("CC_{}", triple.replace('-', "_"));
        for variable in [&linker, &cc] {
            assert!(
                env.iter().any(|(k, v)| k == variable && v == gcc),
                "{variable}={gcc} in the build stage's ENV"
            );
        }
    }
    // The cross toolchain is installed only when the architectures differ, then the target.
    assert!(run.contains("if [ \"$TARGETARCH\" != \"$BUILDARCH\" ]"));
    assert!(run.contains("\"gcc-$gnu\" \"libc6-dev-$TARGETARCH-cross\""));
    assert!(run.contains("rustup target add \"$triple\""));
    assert!(run.contains("--target \"$triple\""));
    // jemalloc cannot probe the page size when cross-compiled: arm64 gets 64 KiB pages.
    assert!(
        run.contains(
            "if [ \"$TARGETARCH\" = arm64 ]; then export JEMALLOC_SYS_WITH_LG_PAGE=16; fi"
        )
    );
    // The runtime stage takes the target platform's image of the pinned index.
    let daemon = stage(&stages, "daemon");
    assert_eq!(daemon.platform, None);
}

#[test]
fn the_binary_is_built_with_cargo_auditable() {
    let stages = stages();
    let build = stage(&stages, "build");
    let run = build.args("RUN").join("\n");
    assert!(
        run.contains("cargo install cargo-auditable --locked --version "),
        "a pinned cargo-auditable"
    );
    assert!(run.contains("cargo auditable build --release --locked"));
    assert!(
        !run.contains("cargo build"),
        "every build is an auditable one"
    );
    // Stripped by the release profile, which keeps the `.dep-v0` section (an external
    // `strip` would need the target's binutils).
    assert!(
        build
            .pairs("ENV")
            .contains(&("CARGO_PROFILE_RELEASE_STRIP".into(), "symbols".into()))
    );
    let daemon = stage(&stages, "daemon");
    assert!(
        daemon
            .args("COPY")
            .contains(&"--from=build /opencti-connectors /usr/local/bin/opencti-connectors")
    );
}

#[test]
fn the_image_carries_the_oci_labels_of_the_manifest() {
    let stages = stages();
    let daemon = stage(&stages, "daemon");
    let labels = daemon.pairs("LABEL");
    let label = |key: &str| {
        labels
            .iter()
            .find(|(k, _)| k == &format!("org.opencontainers.image.{key}"))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no label {key}"))
    };
    assert_eq!(label("title"), manifest("name"));
    assert_eq!(label("description"), manifest("description"));
    assert_eq!(label("licenses"), manifest("license"));
    // Version, revision and source come from the build: `--build-arg`.
    let args = daemon.pairs("ARG");
    for (label_key, arg) in [
        ("version", "VERSION"),
        ("revision", "REVISION"),
        ("source", "SOURCE"),
    ] {
        assert_eq!(label(label_key), format!("${arg}"));
        assert!(args.iter().any(|(k, _)| k == arg), "ARG {arg}");
    }
    let version = args.iter().find(|(k, _)| k == "VERSION").unwrap();
    assert_eq!(
        version.1,
        manifest("version"),
        "the default VERSION is the crate's"
    );
}

#[test]
fn there_is_an_image_for_each_official_connector_and_the_default_runs_them_all() {
    let stages = stages();
    for spec in opencti_connectors::registry::specs() {
        let s = stage(&stages, spec.section);
        assert_eq!(s.base, "daemon", "{}", spec.section);
        assert!(
            s.pairs("ENV").contains(&(
                opencti_connectors::dropin::AS_ENV.into(),
                spec.section.into()
            )),
            "{}: ENV {}={}",
            spec.section,
            opencti_connectors::dropin::AS_ENV,
            spec.section
        );
        assert!(
            s.pairs("LABEL").contains(&(
                "org.opencontainers.image.title".into(),
                format!("opencti-connectors-{}", spec.section)
            )),
            "{}",
            spec.section
        );
    }
    // The last stage is the default target: the full daemon, with no connector chosen.
    let last = stages.last().unwrap();
    assert_eq!((last.base.as_str(), &last.name), ("daemon", &None));
    assert!(last.instructions.is_empty());
    let daemon = stage(&stages, "daemon");
    assert!(
        !daemon
            .pairs("ENV")
            .iter()
            .any(|(k, _)| k == "DAEMON_LISTEN" || k == opencti_connectors::dropin::AS_ENV),
        "the listen address follows the configuration, pycti's metrics port in a drop-in"
    );
    let health = daemon.args("HEALTHCHECK").join(" ");
    assert!(
        health.ends_with("CMD [\"/usr/local/bin/opencti-connectors\", \"healthcheck\"]"),
        "{health}: no fixed --url, the subcommand finds the port"
    );
}

#[test]
fn the_build_context_holds_what_the_manifest_names() {
    let stages = stages();
    let build = stage(&stages, "build");
    let copies = build.args("COPY");
    let manifest = toml_like::parse(&read("Cargo.toml"));
    assert!(!manifest.benches.is_empty());
    // Cargo refuses a manifest whose declared benches are missing, even to build the binary.
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(|l| l.trim().trim_end_matches('/').to_string())
        .collect();
    for bench in &manifest.benches {
        let path = format!("benches/{bench}.rs");
        assert!(
            std::path::Path::new(&format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).exists(),
            "{path}"
        );
        assert!(copies.contains(&"benches ./benches"), "COPY benches");
        assert!(
            !ignored.contains(&"benches".to_string()),
            ".dockerignore drops benches"
        );
    }
    for needed in ["Cargo.toml Cargo.lock ./", "src ./src"] {
        assert!(copies.contains(&needed), "COPY {needed}");
    }
    // A workspace member (the test support crate, a path dev-dependency) is loaded with the
    // manifest too: copied, and kept in the context by an exception to `.dockerignore`.
    assert!(!manifest.members.is_empty());
    for member in &manifest.members {
        let copy = format!("{member} ./{member}");
        assert!(copies.contains(&copy.as_str()), "COPY {copy}");
        let dropped = ignored
            .iter()
            .any(|i| *member == *i || member.starts_with(&format!("{i}/")));
        assert!(
            !dropped || ignored.contains(&format!("!{member}")),
            ".dockerignore drops {member}"
        );
    }
}

#[test]
fn the_sbom_script_covers_every_platform_the_image_is_built_for() {
    let script = read("scripts/sbom");
    let targets: Vec<&str> = script
        .lines()
        .find_map(|l| l.strip_prefix("TARGETS=("))
        .and_then(|l| l.strip_suffix(')'))
        .expect("TARGETS=(…)")
        .split_whitespace()
        .collect();
    let stages = stages();
    let run = stage(&stages, "build").args("RUN").join("\n");
    let built: Vec<&str> = run
        .split("triple=")
        .skip(1)
        .filter_map(|rest| rest.split(';').next())
        .filter(|t| t.ends_with("-linux-gnu"))
        .collect();
    assert_eq!(
        targets, built,
        "one SBOM per platform the Dockerfile builds"
    );
    assert!(script.contains("--spec-version 1.5") && script.contains("--describe binaries"));
    assert!(script.contains("cargo install cargo-cyclonedx --locked --version"));
    assert!(read("deploy/check").contains("scripts/sbom target/sbom"));
}
