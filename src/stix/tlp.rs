//! TLP marking definitions (fixed ids) and the max-TLP gate with pycti's semantics.

use serde_json::{Value, json};

/// `created` of the stix2 library's predefined TLP objects.
pub const TLP_CREATED: &str = "2017-01-20T00:00:00.000Z";

pub use crate::config::tlp::{TLP_CHOICES, Tlp};

/// The STIX side of a TLP level: its marking definition.
impl Tlp {
    /// The static marking-definition id shared by stix2, pycti and the platform.
    pub fn marking_id(self) -> &'static str {
        match self {
            Tlp::Clear => "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
            Tlp::Green => "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
            Tlp::Amber => "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
            Tlp::AmberStrict => "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37",
            Tlp::Red => "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        }
    }

    /// The TLP whose static id this is.
    pub fn from_marking_id(id: &str) -> Option<Tlp> {
        [
            Tlp::Clear,
            Tlp::Green,
            Tlp::Amber,
            Tlp::AmberStrict,
            Tlp::Red,
        ]
        .into_iter()
        .find(|t| t.marking_id() == id)
    }

    /// The marking object as the `stix2` library emits it (`TLP_WHITE` for clear); the
    /// pycti-style statement object for AMBER+STRICT, which stix2 lacks.
    pub fn stix2_object(self, now: &str) -> Value {
        let (name, level) = match self {
            Tlp::Clear => ("TLP:WHITE", "white"),
            Tlp::Green => ("TLP:GREEN", "green"),
            Tlp::Amber => ("TLP:AMBER", "amber"),
            Tlp::Red => ("TLP:RED", "red"),
            Tlp::AmberStrict => return amber_strict_object(now),
        };
        json!({
            "type": "marking-definition",
            "spec_version": "2.1",
            "id": self.marking_id(),
            "created": TLP_CREATED,
            "definition_type": "tlp",
            "name": name,
            "definition": { "tlp": level },
        })
    }

    /// The marking object as pycti's client-side export writes an entity's marking
    /// (`TLP:CLEAR` stays `clear`).
    pub fn export_object(self, now: &str) -> Value {
        if self == Tlp::AmberStrict {
            return amber_strict_object(now);
        }
        let def = self.definition();
        json!({
            "type": "marking-definition",
            "spec_version": "2.1",
            "id": self.marking_id(),
            "created": TLP_CREATED,
            "definition_type": "tlp",
            "name": def,
            "definition": { "tlp": def.trim_start_matches("TLP:").to_ascii_lowercase() },
        })
    }
}

fn amber_strict_object(now: &str) -> Value {
    json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": Tlp::AmberStrict.marking_id(),
        "created": now,
        "definition_type": "statement",
        "definition": { "statement": "custom" },
        "x_opencti_definition_type": "TLP",
        "x_opencti_definition": "TLP:AMBER+STRICT",
    })
}

/// pycti `check_max_tlp(tlp, max_tlp)`: `tlp` (an OpenCTI definition, any case) must be in
/// the allowed list of `max_tlp`. An unknown definition (custom TLP) is never allowed.
pub fn check_max_tlp(tlp: &str, max_tlp: Tlp) -> bool {
    let upper = tlp.trim().to_ascii_uppercase();
    let allowed: &[&str] = match max_tlp {
        Tlp::Clear => &["TLP:WHITE", "TLP:CLEAR"],
        Tlp::Green => &["TLP:WHITE", "TLP:CLEAR", "TLP:GREEN"],
        Tlp::Amber => &["TLP:WHITE", "TLP:CLEAR", "TLP:GREEN", "TLP:AMBER"],
        Tlp::AmberStrict => &[
            "TLP:WHITE",
            "TLP:CLEAR",
            "TLP:GREEN",
            "TLP:AMBER",
            "TLP:AMBER+STRICT",
        ],
        Tlp::Red => &[
            "TLP:WHITE",
            "TLP:CLEAR",
            "TLP:GREEN",
            "TLP:AMBER",
            "TLP:AMBER+STRICT",
            "TLP:RED",
        ],
    };
    allowed.contains(&upper.as_str())
}

/// A marking as OpenCTI's `objectMarking` returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ObjectMarking {
    #[serde(default)]
    pub standard_id: Option<String>,
    #[serde(default)]
    pub definition_type: Option<String>,
    #[serde(default)]
    pub definition: Option<String>,
}

impl ObjectMarking {
    /// A TLP marking of the entity, known by its static id.
    pub fn tlp(t: Tlp) -> Self {
        ObjectMarking {
            standard_id: Some(t.marking_id().to_string()),
            definition_type: Some("TLP".into()),
            definition: Some(t.definition().into()),
        }
    }

    /// A STIX marking-definition object as a marking: a `tlp` one (`{"tlp": "green"}`), or an
    /// OpenCTI one carrying `x_opencti_definition_type` / `x_opencti_definition`.
    pub fn from_stix(object: &Value) -> Option<Self> {
        if object.get("type").and_then(Value::as_str) != Some("marking-definition") {
            return None;
        }
        let id = object.get("id").and_then(Value::as_str).map(str::to_string);
        let text = |k: &str| object.get(k).and_then(Value::as_str);
        let (kind, definition) = match (
            text("x_opencti_definition_type"),
            text("x_opencti_definition"),
        ) {
            (Some(kind), Some(definition)) => (kind.to_string(), definition.to_string()),
            _ => match (text("definition_type"), object.pointer("/definition/tlp")) {
                (Some(kind), Some(Value::String(level))) if kind.eq_ignore_ascii_case("tlp") => (
                    "TLP".to_string(),
                    format!("TLP:{}", level.to_ascii_uppercase()),
                ),
                (Some(kind), _) => (
                    kind.to_string(),
                    text("name").unwrap_or_default().to_string(),
                ),
                _ => return None,
            },
        };
        Some(ObjectMarking {
            standard_id: id,
            definition_type: Some(kind),
            definition: Some(definition),
        })
    }

    /// Whether this is a TLP marking (whatever its level).
    pub fn is_tlp(&self) -> bool {
        self.definition_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("TLP"))
    }
}

/// The max-TLP gate over every TLP marking known for an entity: allowed only when each is at
/// or under `max`, so the most restrictive one decides (pycti's connectors let the last one
/// decide). A TLP the daemon does not know (`TLP:EX:…`) is never allowed; an entity with no
/// TLP marking is TLP:CLEAR.
pub fn allows(markings: &[ObjectMarking], max: Tlp) -> bool {
    markings.iter().filter(|m| m.is_tlp()).all(|m| {
        m.definition
            .as_deref()
            .is_some_and(|d| check_max_tlp(d, max))
    })
}

/// The most restrictive TLP marking known (an unknown one counts as the most restrictive),
/// for messages and logs.
pub fn highest(markings: &[ObjectMarking]) -> Option<String> {
    let rank = |d: &str| Tlp::parse(d).map_or(usize::MAX, |t| t as usize);
    markings
        .iter()
        .filter(|m| m.is_tlp())
        .filter_map(|m| m.definition.as_deref())
        .max_by_key(|d| rank(d))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_lists_follow_pycti() {
        assert!(check_max_tlp("TLP:WHITE", Tlp::Clear));
        assert!(check_max_tlp("tlp:clear", Tlp::Clear));
        assert!(!check_max_tlp("TLP:GREEN", Tlp::Clear));
        assert!(check_max_tlp("TLP:AMBER", Tlp::Amber));
        assert!(!check_max_tlp("TLP:AMBER+STRICT", Tlp::Amber));
        assert!(check_max_tlp("TLP:AMBER+STRICT", Tlp::AmberStrict));
        assert!(!check_max_tlp("TLP:RED", Tlp::AmberStrict));
        assert!(check_max_tlp("TLP:RED", Tlp::Red));
        assert!(!check_max_tlp("TLP:EX:CHINA", Tlp::Red));
    }

    #[test]
    fn unknown_tlp_values_do_not_parse() {
        assert_eq!(Tlp::parse("ChangeMe"), None);
        assert_eq!(Tlp::parse("AMBER"), None);
        assert_eq!(Tlp::parse_level("amber+strict"), Some(Tlp::AmberStrict));
        assert_eq!(Tlp::parse_level("white"), Some(Tlp::Clear));
    }

    #[test]
    fn levels_are_ordered_clear_green_amber_amber_strict_red() {
        let order = [
            Tlp::Clear,
            Tlp::Green,
            Tlp::Amber,
            Tlp::AmberStrict,
            Tlp::Red,
        ];
        for pair in order.windows(2) {
            assert!(pair[0] < pair[1], "{:?} < {:?}", pair[0], pair[1]);
            // Each level allows itself and what is below it, and nothing above.
            assert!(check_max_tlp(pair[0].definition(), pair[1]));
            assert!(!check_max_tlp(pair[1].definition(), pair[0]));
        }
    }

    #[test]
    fn the_most_restrictive_tlp_marking_decides_whatever_the_order() {
        let m = |t: &str, d: &str| ObjectMarking {
            standard_id: None,
            definition_type: Some(t.into()),
            definition: Some(d.into()),
        };
        let red_then_green = [
            m("TLP", "TLP:RED"),
            m("PAP", "PAP:GREEN"),
            m("TLP", "TLP:GREEN"),
        ];
        let green_then_red = [m("TLP", "TLP:GREEN"), m("TLP", "TLP:RED")];
        for markings in [&red_then_green[..], &green_then_red[..]] {
            assert!(!allows(markings, Tlp::Amber));
            assert!(allows(markings, Tlp::Red));
            assert_eq!(highest(markings).as_deref(), Some("TLP:RED"));
        }
        assert!(allows(&[m("PAP", "PAP:RED")], Tlp::Clear), "not a TLP");
        assert!(allows(&[], Tlp::Clear), "no TLP marking is TLP:CLEAR");
        let custom = [m("TLP", "TLP:GREEN"), m("TLP", "TLP:EX:CHINA")];
        assert!(
            !allows(&custom, Tlp::Red),
            "an unknown TLP is never allowed"
        );
        assert_eq!(highest(&custom).as_deref(), Some("TLP:EX:CHINA"));
    }

    #[test]
    fn stix_marking_objects_read_as_markings() {
        let green = Tlp::Green.stix2_object(TLP_CREATED);
        assert_eq!(
            ObjectMarking::from_stix(&green),
            Some(ObjectMarking::tlp(Tlp::Green))
        );
        let strict = Tlp::AmberStrict.export_object(TLP_CREATED);
        assert_eq!(
            ObjectMarking::from_stix(&strict),
            Some(ObjectMarking::tlp(Tlp::AmberStrict))
        );
        let white = Tlp::Clear.stix2_object(TLP_CREATED);
        assert_eq!(
            ObjectMarking::from_stix(&white).and_then(|m| m.definition),
            Some("TLP:WHITE".into())
        );
        assert_eq!(ObjectMarking::from_stix(&json!({"type": "note"})), None);
    }
}
