//! Every section of the registry: what its `enabling_env` gives loads and builds that
//! connector, and each key it marks `required` is needed, so `required` (and the samples of
//! the tests that enable every connector) stay true to the section's `check`.

use super::*;
use crate::config::ConnectorKind;
use crate::connectors::Hosted;

/// OpenCTI's URL and token plus what enables `spec` with its required values.
fn enabling(spec: &SectionSpec) -> HashMap<String, String> {
    crate::fixtures::OPENCTI_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(spec.enabling_env())
        .collect()
}

#[test]
fn each_section_s_enabling_env_loads_and_builds_its_connector_alone() {
    for spec in specs() {
        let section = spec.section;
        let config = Config::from_sources(None, &enabling(spec))
            .unwrap_or_else(|e| panic!("{section}: {e}"));
        assert_eq!(config.enabled_sections(), [section]);
        let built = build_all(&config).unwrap_or_else(|e| panic!("{section}: {e}"));
        assert_eq!(built.len(), 1, "{section}");
        let (settings, hosted) = &built[0];
        assert_eq!(settings.key, section);
        assert_eq!(settings.name, spec.default_name, "{section}");
        assert!(
            matches!(
                (spec.kind, hosted),
                (ConnectorKind::Enrichment { .. }, Hosted::Enrichment(_))
                    | (ConnectorKind::Import { .. }, Hosted::Import(_))
            ),
            "{section} builds a connector of its kind"
        );
    }
}

#[test]
fn without_any_one_required_value_a_section_is_refused_naming_that_key() {
    let mut required = 0;
    for spec in specs() {
        for key in spec.keys.iter().filter(|k| k.required) {
            required += 1;
            let path = format!("{}.{}", spec.section, key.key);
            assert!(
                !key.sample.is_empty(),
                "{path} is required: its sample stands for the user's value"
            );
            let mut env = enabling(spec);
            assert!(
                env.remove(&crate::config::keys::env_name(&path)).is_some(),
                "{path}: enabling_env sets it"
            );
            let err = Config::from_sources(None, &env)
                .and_then(|c| build_all(&c).map(|built| built.len()))
                .expect_err(&path)
                .to_string();
            assert!(err.contains(&format!("{path} (env ")), "{path}: {err}");
        }
    }
    // IPinfo's token, RiskIQ's user and key, LastInfoSec's key and IVRE's URL at least.
    assert!(required >= 5, "{required} required keys");
}
