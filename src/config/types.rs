//! Small typed config values: redacted secrets, ISO-8601 durations, scopes, queue protocol.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::tlp::{TLP_CHOICES, Tlp};

/// A secret (token, API key). Debug and Display never show it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(**redacted**)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**redacted**")
    }
}

/// A URL setting. It may carry credentials (`https://user:pass@proxy:3128`, IVRE's
/// `#X-API-Key=…` fragment, a `?key=` query), so Debug and Display hide the password of its
/// userinfo, its query and its fragment.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct UrlSetting(String);

impl UrlSetting {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL with its userinfo password, query and fragment replaced by `**redacted**`.
    pub fn redacted(&self) -> String {
        const HIDDEN: &str = "**redacted**";
        // Text that is no URL with a host (`opencti:8080`, `user:pass@proxy`) may still hold
        // credentials: keep what follows the last `@`, and hide any query or fragment.
        let by_hand = |text: &str| {
            let (head, tail) = match text.find(['?', '#']) {
                Some(i) => (&text[..i], format!("{}{HIDDEN}", &text[i..=i])),
                None => (text, String::new()),
            };
            match head.rsplit_once('@') {
                Some((_, host)) => format!("{HIDDEN}@{host}{tail}"),
                None => format!("{head}{tail}"),
            }
        };
        match reqwest::Url::parse(&self.0) {
            Ok(url) if url.cannot_be_a_base() => by_hand(&self.0),
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some(HIDDEN));
                }
                if url.query().is_some() {
                    url.set_query(Some(HIDDEN));
                }
                if url.fragment().is_some() {
                    url.set_fragment(Some(HIDDEN));
                }
                if url.as_str() == self.0.trim_end_matches('/') || url.as_str() == self.0 {
                    self.0.clone()
                } else {
                    url.to_string()
                }
            }
            Err(_) => by_hand(&self.0),
        }
    }
}

impl std::ops::Deref for UrlSetting {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for UrlSetting {
    fn from(s: &str) -> Self {
        UrlSetting(s.to_string())
    }
}

impl From<String> for UrlSetting {
    fn from(s: String) -> Self {
        UrlSetting(s)
    }
}

impl fmt::Debug for UrlSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for UrlSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// An ISO-8601 duration (`PT40S`, `PT1H`, `P1D`, `P1W`; `P1M` = 30 days, `P1Y` = 365 days)
/// or a plain number of seconds, as pycti / pydantic accept them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsoDuration(pub Duration);

impl IsoDuration {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(secs) = t.parse::<u64>() {
            return Ok(IsoDuration(Duration::from_secs(secs)));
        }
        let err = || format!("`{s}` is not an ISO-8601 duration (e.g. PT30S, PT1H, P1D)");
        let upper = t.to_ascii_uppercase();
        let rest = upper.strip_prefix('P').ok_or_else(err)?;
        if rest.is_empty() {
            return Err(err());
        }
        let (date, time) = match rest.split_once('T') {
            Some((d, t)) => {
                if t.is_empty() {
                    return Err(err());
                }
                (d, Some(t))
            }
            None => (rest, None),
        };
        let mut total = 0f64;
        let mut parse_part = |part: &str, units: &[(char, f64)]| -> Result<(), String> {
            let mut num = String::new();
            let mut allowed = units.iter();
            for c in part.chars() {
                if c.is_ascii_digit() || c == '.' || c == ',' {
                    num.push(if c == ',' { '.' } else { c });
                    continue;
                }
                // Units must come in order, each at most once.
                let factor = allowed.find(|(u, _)| *u == c).ok_or_else(err)?.1;
                let n: f64 = num.parse().map_err(|_| err())?;
                total += n * factor;
                num.clear();
            }
            if num.is_empty() { Ok(()) } else { Err(err()) }
        };
        parse_part(
            date,
            &[
                ('Y', 365.0 * 86400.0),
                ('M', 30.0 * 86400.0),
                ('W', 7.0 * 86400.0),
                ('D', 86400.0),
            ],
        )?;
        if let Some(time) = time {
            parse_part(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
        }
        Duration::try_from_secs_f64(total)
            .map(IsoDuration)
            .map_err(|_| format!("`{s}` is too long a duration"))
    }
}

/// The shortest ISO-8601 form: `P1D`, `PT6H`, `PT1H30M`, `PT0.5S`.
impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let millis = self.0.subsec_millis();
        let (days, rest) = (secs / 86400, secs % 86400);
        let (hours, minutes, seconds) = (rest / 3600, rest % 3600 / 60, rest % 60);
        f.write_str("P")?;
        if days > 0 {
            write!(f, "{days}D")?;
        }
        if rest == 0 && millis == 0 && days > 0 {
            return Ok(());
        }
        f.write_str("T")?;
        if hours > 0 {
            write!(f, "{hours}H")?;
        }
        if minutes > 0 {
            write!(f, "{minutes}M")?;
        }
        match (seconds, millis) {
            (0, 0) if hours > 0 || minutes > 0 => Ok(()),
            (s, 0) => write!(f, "{s}S"),
            (s, ms) => write!(f, "{s}.{ms:03}S"),
        }
    }
}

impl<'de> Deserialize<'de> for IsoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_yaml::Value::deserialize(d)?;
        let s = match v {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            _ => {
                return Err(serde::de::Error::custom(
                    "expected an ISO-8601 duration such as PT1H",
                ));
            }
        };
        IsoDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A TLP level setting (`TLP:AMBER`, case-insensitive; `TLP:WHITE` = `TLP:CLEAR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlpSetting(pub Tlp);

impl<'de> Deserialize<'de> for TlpSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Tlp::parse(&s).map(TlpSetting).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not a TLP; expected one of: {TLP_CHOICES}"
            ))
        })
    }
}

/// A TLP level as IPsum's reference spells it (`white`, `green`, `amber+strict`; any case,
/// `TLP:` optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlpLevel(pub Tlp);

/// The values [`TlpLevel`] accepts.
pub const TLP_LEVEL_CHOICES: &str = "white, clear, green, amber, amber+strict, red";

impl<'de> Deserialize<'de> for TlpLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Tlp::parse_level(&s).map(TlpLevel).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not a TLP level; expected one of: {TLP_LEVEL_CHOICES}"
            ))
        })
    }
}

/// A connector scope: a comma-separated string (`IPv4-Addr,IPv6-Addr`) or a YAML list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(pub Vec<String>);

impl Scope {
    pub fn parse(s: &str) -> Self {
        Scope(
            s.split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        )
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::One(s) => Scope::parse(&s),
            Raw::Many(v) => Scope(v.into_iter().map(|s| s.trim().to_string()).collect()),
        })
    }
}

/// How bundles reach OpenCTI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueProtocol {
    /// `stixBundlePush` through the shared GraphQL client.
    #[default]
    Api,
    /// Per-object messages on the push exchange with publisher confirms.
    Amqp,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Parses a boolean the obvious way (true/false, yes/no, on/off, 1/0; any case).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
