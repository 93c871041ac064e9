//! Every key: read by the loader, listed in the sample, named in errors by its section field and variables; log levels per connector.

use super::*;

#[test]
fn every_key_in_the_table_is_read_by_the_loader() {
    // Setting each key through each of its environment names must be accepted: the overlay
    // writes the value at the key's path, so an unknown-field error here would mean the table
    // names a key the config structs do not have. Every connector is enabled, so each value
    // also passes its section's checks.
    for key in all_keys() {
        // A number: the upper end of its range (`numbers_outside_their_range_…` tries both).
        let upper = match key.kind {
            Kind::Int(r) => r.max.to_string(),
            Kind::Float(r) => r.max.to_string(),
            Kind::Duration(r) => IsoDuration(r.max).to_string(),
            _ => String::new(),
        };
        let generic = match key.kind {
            Kind::Bool => "true",
            // The retry budget must fit twice under the default consumer timeout.
            Kind::Duration(_) if key.path == "daemon.max_retry_duration" => "PT12M",
            Kind::Int(_) | Kind::Float(_) | Kind::Duration(_) => upper.as_str(),
            Kind::Tlp => "TLP:GREEN",
            Kind::Uuid => ID,
            Kind::Url => "http://example.test:1234",
            Kind::Scope => "IPv4-Addr",
            Kind::Str | Kind::Secret => match key.path.as_str() {
                "log.format" => "json",
                "log.level" => "debug",
                "daemon.listen" => "127.0.0.1:0",
                p if p.ends_with("queue_protocol") => "amqp",
                p if p.ends_with("log_level") => "debug",
                _ => "value",
            },
        };
        // A section's own key: the valid value its definition gives, when it gives one.
        let sample = Some(key.sample.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or(generic);
        for name in &key.env {
            let result = Config::from_sources(None, &every_connector_env(&[(name, sample)]));
            assert!(
                result.is_ok(),
                "{} = {sample} via {name}: {:?}",
                key.path,
                result.err()
            );
        }
    }
}

#[test]
fn sample_config_parses_and_lists_every_key() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yml.sample")).unwrap();
    for key in all_keys() {
        assert!(
            loader::has_path(&text, &key.path).unwrap(),
            "config.yml.sample lacks {}",
            key.path
        );
    }
    // The sample's placeholders are valid once the required values are filled in.
    Config::from_sources(Some(&text), &env(&ipinfo_env())).unwrap();
}

#[test]
fn a_connector_log_level_applies_inside_its_spans_only() {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let mut pairs = ipinfo_env();
    pairs.push(("LOG_LEVEL", "warn"));
    pairs.push(("IPINFO_CONNECTOR_LOG_LEVEL", "debug"));
    let config = Config::from_sources(None, &env(&pairs)).unwrap();
    assert_eq!(
        config.log_filter(),
        "warn,reqwest=info,hyper=info,hyper_util=info,h2=info,rustls=info,lapin=info,amq_protocol=info,lapin::channel=off,[{connector=ipinfo}]=debug"
    );
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(config.log_filter()).unwrap())
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("enrichment", connector = "ipinfo")
            .in_scope(|| tracing::debug!("inside-ipinfo"));
        tracing::info_span!("enrichment", connector = "riskiq")
            .in_scope(|| tracing::debug!("inside-riskiq"));
        tracing::debug!("outside");
        tracing::warn!("warned");
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("inside-ipinfo"), "{out}");
    assert!(
        !out.contains("inside-riskiq") && !out.contains("outside"),
        "{out}"
    );
    assert!(out.contains("warned"));
}

#[test]
fn every_section_field_is_named_as_its_spec() {
    // The YAML section, the env prefix and the error prefix all come from the spec's name;
    // the Config field must be spelt the same for the file's section to reach it.
    for spec in specs() {
        let yaml = format!("{}:\n  enabled: false\n", spec.section);
        assert!(
            Config::from_sources(Some(&yaml), &HashMap::new()).is_ok(),
            "no Config field named {}",
            spec.section
        );
    }
    let names: Vec<&str> = specs().iter().map(|s| s.section).collect();
    // The README's order for the first five, wherever a connector added later goes.
    let first_five = ["ipinfo", "ipsum", "riskiq", "lastinfosec", "ivre"];
    let known: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| first_five.contains(n))
        .collect();
    assert_eq!(known, first_five, "{names:?}");
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "one section per name: {names:?}");
}

#[test]
fn section_errors_name_the_key_and_every_env_name() {
    let mut e = ipinfo_env();
    e.push(("LASTINFOSEC_ENABLED", "true"));
    e.push((
        "LASTINFOSEC_CONNECTOR_ID",
        "7c4e2a10-3b5d-4e6f-8a9b-0c1d2e3f4a5b",
    ));
    let err = Config::from_sources(None, &env(&e))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lastinfosec.api_key_cti (env LASTINFOSEC_API_KEY_CTI or CONFIG_LIS_APIKEY_CTI): required when lastinfosec.enabled is true"),
        "{err}"
    );
}
