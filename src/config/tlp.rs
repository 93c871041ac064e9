//! The Traffic Light Protocol levels as settings name them (`max_tlp`, `tlp_level`); their
//! STIX marking definitions are [`crate::stix::tlp`]'s.

/// A Traffic Light Protocol level. `Clear` also stands for the legacy `TLP:WHITE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tlp {
    Clear,
    Green,
    Amber,
    AmberStrict,
    Red,
}

/// The values a `max_tlp` / `tlp_level` setting accepts, for error messages.
pub const TLP_CHOICES: &str =
    "TLP:CLEAR, TLP:WHITE, TLP:GREEN, TLP:AMBER, TLP:AMBER+STRICT, TLP:RED";

impl Tlp {
    /// Parses an OpenCTI TLP definition (`TLP:GREEN`), case-insensitively. `TLP:WHITE` is
    /// `Clear`. Anything else (including custom `TLP:EX:...`) is `None`.
    pub fn parse(s: &str) -> Option<Tlp> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "TLP:CLEAR" | "TLP:WHITE" => Tlp::Clear,
            "TLP:GREEN" => Tlp::Green,
            "TLP:AMBER" => Tlp::Amber,
            "TLP:AMBER+STRICT" => Tlp::AmberStrict,
            "TLP:RED" => Tlp::Red,
            _ => return None,
        })
    }

    /// Parses the short level names of importer settings (`white`, `clear`, `green`,
    /// `amber`, `amber+strict`, `red`), with or without the `TLP:` prefix.
    pub fn parse_level(s: &str) -> Option<Tlp> {
        let upper = s.trim().to_ascii_uppercase();
        let full = if upper.starts_with("TLP:") {
            upper
        } else {
            format!("TLP:{upper}")
        };
        Tlp::parse(&full)
    }

    /// The OpenCTI definition, e.g. `TLP:AMBER+STRICT`.
    pub fn definition(self) -> &'static str {
        match self {
            Tlp::Clear => "TLP:CLEAR",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        }
    }
}
