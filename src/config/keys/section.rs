//! The keys every connector section has (`enabled`, the `connector` block, the kind's own),
//! with the section's own keys in their places.

use super::{ConnectorKind, KeyDef, KeySpec, Kind, SectionSpec, ranges};

/// The common keys of a connector section.
pub(super) fn section_keys(spec: &SectionSpec) -> Vec<KeySpec> {
    use Kind::*;
    let s = spec.section;
    let p = |k: &str| format!("{s}.{k}");
    let mut keys = vec![
        KeySpec::new(&p("enabled"), &[], Bool, "false", "Run this connector."),
        KeySpec::new(
            &p("connector.id"),
            &[],
            Uuid,
            "",
            "Connector id (a UUID, stable across restarts). Required when enabled.",
        ),
        KeySpec::new(
            &p("connector.name"),
            &[],
            Str,
            spec.default_name,
            "Display name in OpenCTI.",
        ),
        KeySpec::new(
            &p("connector.scope"),
            &[],
            Scope,
            spec.default_scope,
            "Comma-separated entity types.",
        ),
        KeySpec::new(
            &p("connector.confidence_level"),
            &[],
            Int(ranges::CONFIDENCE),
            "",
            "Accepted for compatibility; ignored (confidence comes from the connector user).",
        ),
        KeySpec::new(
            &p("connector.log_level"),
            &[],
            Str,
            "",
            "Log level for this connector's events (overrides log.level).",
        ),
        KeySpec::new(
            &p("connector.queue_protocol"),
            &[],
            Str,
            "api",
            "`api` (stixBundlePush) or `amqp` (push exchange, per-object messages).",
        ),
    ];
    match spec.kind {
        ConnectorKind::Enrichment {
            default_auto,
            default_concurrency,
            ..
        } => keys.extend([
            KeySpec::new(
                &p("connector.auto"),
                &[],
                Bool,
                if default_auto { "true" } else { "false" },
                "Enrich automatically on creation.",
            ),
            KeySpec::new(
                &p("connector.auto_update"),
                &[],
                Bool,
                "false",
                "Enrich automatically on update (OpenCTI ≥ 6.8.9).",
            ),
            KeySpec::new(
                &p("connector.concurrency"),
                &[],
                Int(ranges::CONCURRENCY),
                &default_concurrency.to_string(),
                "Requests processed at once (the queue prefetch).",
            ),
        ]),
        ConnectorKind::Import { default_period } => keys.extend([
            KeySpec::new(
                &p("connector.duration_period"),
                &[],
                Duration(ranges::PERIOD),
                &super::IsoDuration(default_period).to_string(),
                "Interval between runs (ISO-8601); the first run starts at start-up.",
            ),
            KeySpec::new(
                &p("connector.queue_threshold"),
                &[],
                Float(ranges::QUEUE_THRESHOLD),
                "500",
                "A run is skipped (buffering) while the connector's push queue holds more than this many MB.",
            ),
        ]),
    }
    // `api_base_url` second, as every section has it, then the rest.
    let own = |k: &&KeyDef| k.key == "api_base_url";
    let spec_key = |k: &KeyDef| KeySpec {
        required: k.required,
        sample: k.sample.into(),
        ..KeySpec::new(&p(k.key), k.env_aliases, k.kind, k.default, k.doc)
    };
    keys.splice(1..1, spec.keys.iter().filter(own).map(spec_key));
    keys.extend(spec.keys.iter().filter(|k| !own(k)).map(spec_key));
    keys
}
