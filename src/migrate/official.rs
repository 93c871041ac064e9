//! What the daemon knows of the official connector images: which it recognises, the section
//! each becomes, and which of the daemon's keys an official variable sets.

use super::*;

/// One official connector image, as the daemon knows it: a section's
/// [`crate::config::OfficialImage`] with the section's name.
#[derive(Debug, Clone, Copy)]
pub struct Official {
    /// The image's name after `opencti/connector-` (`riskiq-passive-total`).
    pub image: &'static str,
    /// The daemon section it becomes.
    pub section: &'static str,
    /// The connector id the official image registers with when `CONNECTOR_ID` is unset (its
    /// settings' default). Only a UUID is kept: the daemon's ids are UUIDs.
    pub default_id: Option<&'static str>,
    /// Variables the official code reads from another place of its `config.yml` than the one
    /// rule (`<section>.<key>` ↔ `<SECTION>_<KEY>`) says: `(name by the rule, name read)`.
    pub file_names: &'static [(&'static str, &'static str)],
}

impl Official {
    /// `image`, which `spec`'s section runs as.
    fn of(spec: &crate::config::SectionSpec, image: crate::config::OfficialImage) -> Self {
        Official {
            image: image.image,
            section: spec.section,
            default_id: image.default_id,
            file_names: image.file_names,
        }
    }
}

/// The official connectors' images and the daemon section each one becomes, in registry
/// order, from each section's description.
pub static RECOGNISED: std::sync::LazyLock<Vec<Official>> = std::sync::LazyLock::new(|| {
    crate::registry::specs()
        .into_iter()
        .filter_map(|spec| spec.official.map(|o| Official::of(spec, o)))
        .collect()
});

/// Every section as the drop-in mode (`run --as`) runs it: as its official image, or, for a
/// connector of the daemon's own, as an image named after its section, read by the daemon's
/// names and pycti's `CONNECTOR_*` ones alone.
pub static DROP_IN: std::sync::LazyLock<Vec<Official>> = std::sync::LazyLock::new(|| {
    crate::registry::specs()
        .into_iter()
        .map(|spec| {
            let own = crate::config::OfficialImage {
                image: spec.section,
                default_id: None,
                file_names: &[],
            };
            Official::of(spec, spec.official.unwrap_or(own))
        })
        .collect()
});

/// How the drop-in mode runs `section` ([`DROP_IN`]).
pub fn drop_in(section: &str) -> Option<&'static Official> {
    DROP_IN.iter().find(|o| o.section == section)
}

/// The official image that `section` stands in for.
pub fn official(section: &str) -> Option<&'static Official> {
    RECOGNISED.iter().find(|o| o.section == section)
}

/// The slug of the official connector `section` stands in for, as its manifest names it
/// (the same as its image's name: `riskiq-passive-total` for `riskiq`), sent at registration
/// to OpenCTI 7; `None` for a section that stands in for no official connector.
pub fn manifest_slug(section: &str) -> Option<&'static str> {
    official(section).map(|o| o.image)
}

/// The key an official connector's variable `name` sets, for a service of `section`:
/// `OPENCTI_*` (and the other shared names) the global key of that name, `CONNECTOR_<KEY>`
/// `<section>.connector.<key>`, and any other name the section key that accepts it
/// (`IPINFO_TOKEN`, `CONNECTOR_IPSUM_API_KEY`, `CONFIG_LIS_APIKEY_CTI`). `None`: no equivalent.
pub fn official_key<'a>(keys: &'a [KeySpec], section: &str, name: &str) -> Option<&'a KeySpec> {
    // Every section's, official image or not: a section key is never a shared name.
    let in_a_section = |k: &KeySpec| {
        DROP_IN
            .iter()
            .any(|o| k.path.starts_with(&format!("{}.", o.section)))
    };
    keys.iter()
        .find(|k| !in_a_section(k) && k.env.iter().any(|e| e == name))
        .or_else(|| {
            let rest = name.strip_prefix(CONNECTOR_PREFIX)?;
            let path = format!("{section}.connector.{}", rest.to_ascii_lowercase());
            keys.iter().find(|k| k.path == path)
        })
        .or_else(|| {
            keys.iter().find(|k| {
                k.path.starts_with(&format!("{section}.")) && k.env.iter().any(|e| e == name)
            })
        })
}

/// The prefix of pycti's connector settings (`CONNECTOR_ID`, `CONNECTOR_SCOPE`, …).
pub const CONNECTOR_PREFIX: &str = "CONNECTOR_";

/// The names an official connector of `section` sets `key` by, besides the daemon's own:
/// `CONNECTOR_<KEY>` for `<section>.connector.<key>` (the inverse of [`official_key`]'s rule).
pub fn official_names(key: &KeySpec, section: &str) -> Vec<String> {
    key.path
        .strip_prefix(&format!("{section}.connector."))
        .filter(|rest| !rest.contains('.'))
        .map(|rest| vec![format!("{CONNECTOR_PREFIX}{}", rest.to_ascii_uppercase())])
        .unwrap_or_default()
}
