//! IPinfo's API plans (`ipinfo.api`): where each one is asked and how its answer reads.
//!
//! - `legacy`: `GET <base>/<ip>/json` (`https://ipinfo.io`), the shape the official connector
//!   understands: `country` is a code, `loc` is "lat,lon", `org` is "AS15169 Google LLC" or
//!   there is an `asn` object, privacy flags in `privacy`.
//! - `lite`: `GET <base>/lite/<ip>` (`https://api.ipinfo.io`): `asn`, `as_name`, `country_code`;
//!   no city, no coordinates, no privacy.
//! - `lookup` (Core and Plus): `GET <base>/lookup/<ip>` (`https://api.ipinfo.io`): `geo`
//!   (`city`, `country_code`, `latitude`, `longitude`), `as` (`asn`, `name`), `is_hosting`, and
//!   on Plus `anonymous` (`is_vpn`, `is_proxy`, `is_tor`, `is_relay`, `name`).
//!
//! [`to_legacy`] rewrites a `lite` or `lookup` answer into the legacy shape, so one mapping
//! gives the same objects and ids for the same facts.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The default base URL of the `lite` and `lookup` plans.
pub const API_BASE_URL: &str = "https://api.ipinfo.io";

/// Which IPinfo API the connector asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `ipinfo.io/<ip>/json`, as the official connector.
    #[default]
    Legacy,
    /// The free `api.ipinfo.io/lite/<ip>`.
    Lite,
    /// Core and Plus: `api.ipinfo.io/lookup/<ip>`.
    Lookup,
}

impl Api {
    /// The path segments after the base URL for `ip`.
    pub fn segments(self, ip: &str) -> [&str; 2] {
        match self {
            Api::Legacy => [ip, "json"],
            Api::Lite => ["lite", ip],
            Api::Lookup => ["lookup", ip],
        }
    }
}

/// `body` in the legacy shape. Legacy answers, error bodies and bogon answers pass unchanged.
pub fn to_legacy(api: Api, body: Value) -> Value {
    let Value::Object(answer) = body else {
        return body;
    };
    if answer.contains_key("error") || answer.contains_key("bogon") {
        return Value::Object(answer);
    }
    match api {
        Api::Legacy => Value::Object(answer),
        Api::Lite => from_lite(&answer),
        Api::Lookup => from_lookup(&answer),
    }
}

fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

fn flag(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).and_then(Value::as_bool) == Some(true)
}

/// The legacy `asn` object, when there is an AS handle.
fn asn_object(handle: Option<&str>, name: Option<&str>) -> Option<Value> {
    let handle = handle?;
    let mut asn = json!({ "asn": handle });
    if let Some(name) = name {
        asn["name"] = json!(name);
    }
    Some(asn)
}

fn from_lite(answer: &Map<String, Value>) -> Value {
    let mut legacy = Map::new();
    copy(answer, "ip", &mut legacy, "ip");
    copy(answer, "country_code", &mut legacy, "country");
    if let Some(asn) = asn_object(text(answer, "asn"), text(answer, "as_name")) {
        legacy.insert("asn".into(), asn);
    }
    Value::Object(legacy)
}

fn from_lookup(answer: &Map<String, Value>) -> Value {
    let empty = Map::new();
    let geo = answer
        .get("geo")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let asys = answer
        .get("as")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut legacy = Map::new();
    copy(answer, "ip", &mut legacy, "ip");
    copy(geo, "city", &mut legacy, "city");
    copy(geo, "country_code", &mut legacy, "country");
    let lat = geo.get("latitude").and_then(Value::as_f64);
    let lon = geo.get("longitude").and_then(Value::as_f64);
    if let (Some(lat), Some(lon)) = (lat, lon) {
        // f64's Display is the shortest text that parses back to the same number.
        legacy.insert("loc".into(), json!(format!("{lat},{lon}")));
    }
    if let Some(asn) = asn_object(text(asys, "asn"), text(asys, "name")) {
        legacy.insert("asn".into(), asn);
    }
    if let Some(privacy) = privacy(answer) {
        legacy.insert("privacy".into(), privacy);
    }
    Value::Object(legacy)
}

/// The legacy `privacy` object from Core's `is_hosting` and Plus's `anonymous`.
fn privacy(answer: &Map<String, Value>) -> Option<Value> {
    let anonymous = answer.get("anonymous").and_then(Value::as_object);
    if anonymous.is_none() && !answer.contains_key("is_hosting") {
        return None;
    }
    let empty = Map::new();
    let anonymous = anonymous.unwrap_or(&empty);
    Some(json!({
        "vpn": flag(anonymous, "is_vpn"),
        "proxy": flag(anonymous, "is_proxy"),
        "tor": flag(anonymous, "is_tor"),
        "relay": flag(anonymous, "is_relay"),
        "hosting": flag(answer, "is_hosting"),
        "service": text(anonymous, "name").unwrap_or(""),
    }))
}

fn copy(from: &Map<String, Value>, key: &str, to: &mut Map<String, Value>, as_key: &str) {
    if let Some(v) = from.get(key).filter(|v| v.is_string()) {
        to.insert(as_key.into(), v.clone());
    }
}
