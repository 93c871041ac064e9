//! A section's default values, read from its key table: the text the README shows for a key
//! is the value a field takes when nothing sets it (`#[derive(Keys)]` calls [`field`]).

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::keys::SectionSpec;
use super::loader::env_value;

/// The default of `spec`'s field `name`: its key's default text, or the defaults of its
/// nested keys (`cache.ttl`, `cache.capacity` for the field `cache`), read as an environment
/// value of the key's kind would be. An empty default leaves the key unset (`None`, or the
/// nested block's own default).
///
/// # Panics
///
/// When a default in the table does not read as the field's type: a mistake in the table,
/// which every test that loads a configuration meets before a release could.
pub fn field<T: DeserializeOwned>(spec: &SectionSpec, name: &str) -> T {
    let text = |default: &str, kind| {
        if default.is_empty() {
            Ok(Value::Null)
        } else {
            env_value(kind, default)
        }
    };
    let prefix = format!("{name}.");
    let mut nested = Mapping::new();
    let mut value = None;
    let mut problem = None;
    for key in spec.keys {
        let read = if key.key == name {
            text(key.default, key.kind).map(|v| value = Some(v))
        } else if let Some(sub) = key.key.strip_prefix(&prefix) {
            text(key.default, key.kind).map(|v| {
                if !v.is_null() {
                    nested.insert(Value::String(sub.to_string()), v);
                }
            })
        } else {
            Ok(())
        };
        if let Err(e) = read {
            problem.get_or_insert(format!("{}: {e}", key.key));
        }
    }
    let value = value.unwrap_or(Value::Mapping(nested));
    let invalid = |e: &dyn std::fmt::Display| -> ! {
        panic!(
            "the default of {}.{name} in the key table is not valid: {e}",
            spec.section
        )
    };
    if let Some(e) = problem {
        invalid(&e)
    }
    serde_yaml::from_value(value).unwrap_or_else(|e| invalid(&e))
}

#[cfg(test)]
mod tests {
    use opencti_connectors_macros::Keys;
    use serde::Deserialize;

    use super::super::keys::{ConnectorKind, KeyDef, Kind, Range, SectionSpec};
    use super::super::{IsoDuration, Secret, TlpSetting};

    static SPEC: SectionSpec = SectionSpec {
        section: "made_up",
        kind: ConnectorKind::Import {
            default_period: std::time::Duration::from_secs(60),
        },
        default_name: "Made up",
        default_scope: "made_up",
        official: None,
        keys: MadeUp::KEYS,
    };

    #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Nested {
        ttl: Option<IsoDuration>,
        size: u64,
        left: Option<String>,
    }

    const LIMIT: KeyDef = KeyDef {
        key: "limit",
        kind: Kind::Int(Range::new(0, 9)),
        default: "3",
        doc: "Shared.",
        ..KeyDef::EMPTY
    };

    /// A section made up for the test.
    #[derive(Debug, Deserialize, Keys)]
    #[serde(deny_unknown_fields, default)]
    #[keys(spec = SPEC)]
    struct MadeUp {
        enabled: bool,
        /// The token; required.
        #[key(kind = Kind::Secret, env = ["A", "B"], required, sample = "t")]
        token: Option<Secret>,
        /// Highest TLP,
        /// on two lines.
        #[key(kind = Kind::Tlp, default = "TLP:GREEN")]
        max_tlp: TlpSetting,
        #[key(like = LIMIT, default = "5")]
        limit: i64,
        #[key(group = [
            KeyDef { key: "nested.ttl", kind: Kind::Str, default: "PT1M", ..KeyDef::EMPTY },
            KeyDef { key: "nested.size", kind: Kind::Int(Range::new(0, 9)), default: "4", ..KeyDef::EMPTY },
            KeyDef { key: "nested.left", ..KeyDef::EMPTY },
        ])]
        nested: Nested,
    }

    #[test]
    fn the_struct_is_the_key_table() {
        let keys: Vec<_> = MadeUp::KEYS.iter().map(|k| k.key).collect();
        assert_eq!(
            keys,
            [
                "token",
                "max_tlp",
                "limit",
                "nested.ttl",
                "nested.size",
                "nested.left"
            ]
        );
        let token = MadeUp::KEYS[0];
        assert_eq!(token.env_aliases, ["A", "B"]);
        assert!(token.required);
        assert_eq!((token.sample, token.doc), ("t", "The token; required."));
        assert_eq!(MadeUp::KEYS[1].doc, "Highest TLP, on two lines.");
        // `like` takes the shared key's kind and doc, the field's own default.
        let limit = MadeUp::KEYS[2];
        assert_eq!((limit.default, limit.doc), ("5", "Shared."));
        assert_eq!(limit.kind, LIMIT.kind);
    }

    #[test]
    fn defaults_are_read_from_the_table() {
        let d = MadeUp::default();
        assert!(!d.enabled);
        assert!(d.token.is_none());
        assert_eq!(d.max_tlp.0, crate::stix::Tlp::Green);
        assert_eq!(d.limit, 5);
        assert_eq!(
            d.nested,
            Nested {
                ttl: Some(IsoDuration(std::time::Duration::from_secs(60))),
                size: 4,
                left: None,
            }
        );
    }

    #[test]
    #[should_panic(expected = "the default of made_up.bad in the key table is not valid")]
    fn a_default_that_does_not_read_is_a_mistake_named_at_once() {
        static BAD: SectionSpec = SectionSpec {
            keys: &[KeyDef {
                key: "bad",
                kind: Kind::Int(Range::new(0, 9)),
                default: "many",
                ..KeyDef::EMPTY
            }],
            ..SPEC
        };
        let _: u64 = super::field(&BAD, "bad");
    }
}
