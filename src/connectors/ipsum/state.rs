//! The importer's state, kept in OpenCTI between runs: when it last ran, the SHA-256 of the
//! feed it last imported and that feed's validators (for a conditional download).

use serde::Serialize;
use serde_json::{Map, Value};

use super::feed::Download;

const LAST_RUN: &str = "last_run";
const FEED_SHA256: &str = "feed_sha256";
const ETAG: &str = "etag";
const LAST_MODIFIED: &str = "last_modified";

/// The state, written as `{"last_run", "feed_sha256", "etag", "last_modified"}` in that
/// order (each only when set), then every other key as it was read: a state written by
/// another version keeps what this one does not know.
///
/// Read leniently ([`IpsumState::read`]): a known key whose value is not a string (a state
/// edited by hand) reads as absent and is kept as it was until this version writes the key.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IpsumState {
    /// When the last run started, `%Y-%m-%d %H:%M:%S` UTC (the reference's format).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_run: Option<String>,
    /// The SHA-256 (hex) of the last feed imported: the same feed again is not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    feed_sha256: Option<String>,
    /// That feed's `ETag`, sent back as `If-None-Match`.
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    /// That feed's `Last-Modified`, sent back as `If-Modified-Since`.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_modified: Option<String>,
    /// Every other key, in the order read; also a known key whose value is not a string.
    /// Never a key of a field that is set (the setters remove it).
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl IpsumState {
    /// The state the runtime hands over (`None`, or an object: see
    /// `runtime::state::parse_state`); anything else is no state. Never fails: a value of the
    /// wrong type reads as absent.
    pub fn read(stored: Option<Value>) -> Self {
        let mut state = IpsumState::default();
        let Some(Value::Object(stored)) = stored else {
            return state;
        };
        for (key, value) in stored {
            let field = match key.as_str() {
                LAST_RUN => &mut state.last_run,
                FEED_SHA256 => &mut state.feed_sha256,
                ETAG => &mut state.etag,
                LAST_MODIFIED => &mut state.last_modified,
                _ => {
                    state.extra.insert(key, value);
                    continue;
                }
            };
            match value {
                Value::String(text) => *field = Some(text),
                other => {
                    state.extra.insert(key, other);
                }
            }
        }
        state
    }

    /// The state as the runtime keeps it.
    pub fn to_value(&self) -> Value {
        // Strings and JSON values under string keys: serialising cannot fail.
        serde_json::to_value(self).expect("the IPsum state serialises")
    }

    /// When the last run started, as stored (a value that is not a string shown as JSON).
    pub fn last_run_shown(&self) -> Option<String> {
        self.last_run
            .clone()
            .or_else(|| self.extra.get(LAST_RUN).map(Value::to_string))
    }

    /// The SHA-256 of the last feed imported.
    pub fn feed_sha256(&self) -> Option<&str> {
        self.feed_sha256.as_deref()
    }

    /// The last feed's `ETag`.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The last feed's `Last-Modified`.
    pub fn last_modified(&self) -> Option<&str> {
        self.last_modified.as_deref()
    }

    /// A run started at `last_run`.
    pub fn started(&mut self, last_run: String) {
        self.extra.shift_remove(LAST_RUN);
        self.last_run = Some(last_run);
    }

    /// `download` was imported: its digest and validators replace the previous ones (a
    /// validator the server did not send is removed).
    pub fn imported(&mut self, download: &Download) {
        for key in [FEED_SHA256, ETAG, LAST_MODIFIED] {
            self.extra.shift_remove(key);
        }
        self.feed_sha256 = Some(download.sha256.clone());
        self.etag = download.etag.clone();
        self.last_modified = download.last_modified.clone();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn download(etag: Option<&str>, last_modified: Option<&str>) -> Download {
        Download {
            body: String::new(),
            etag: etag.map(str::to_string),
            last_modified: last_modified.map(str::to_string),
            sha256: "ab12".into(),
        }
    }

    #[test]
    fn a_state_is_written_in_a_fixed_order_with_the_unknown_keys_last() {
        let mut state = IpsumState::read(None);
        state.started("2026-01-01 00:00:00".into());
        assert_eq!(
            state.to_value().to_string(),
            r#"{"last_run":"2026-01-01 00:00:00"}"#
        );
        state.imported(&download(
            Some("\"v1\""),
            Some("Thu, 01 Jan 2026 00:00:00 GMT"),
        ));
        let written = state.to_value().to_string();
        assert_eq!(
            written,
            r#"{"last_run":"2026-01-01 00:00:00","feed_sha256":"ab12","etag":"\"v1\"","last_modified":"Thu, 01 Jan 2026 00:00:00 GMT"}"#
        );
        // Read back, it is written the same; without validators, they go.
        let mut again = IpsumState::read(Some(serde_json::from_str(&written).unwrap()));
        assert_eq!(again.to_value().to_string(), written);
        again.imported(&download(None, None));
        assert_eq!(
            again.to_value(),
            json!({"last_run": "2026-01-01 00:00:00", "feed_sha256": "ab12"})
        );
    }

    #[test]
    fn unknown_keys_survive_a_round_trip_in_their_order() {
        let stored = json!({
            "zeta": 1,
            "etag": "\"v1\"",
            "alpha": {"nested": [1, 2]},
            "last_run": "2025-12-31 18:00:00",
        });
        let mut state = IpsumState::read(Some(stored));
        assert_eq!(state.etag(), Some("\"v1\""));
        state.started("2026-01-01 00:00:00".into());
        state.imported(&download(None, Some("lm")));
        assert_eq!(
            state.to_value().to_string(),
            r#"{"last_run":"2026-01-01 00:00:00","feed_sha256":"ab12","last_modified":"lm","zeta":1,"alpha":{"nested":[1,2]}}"#
        );
    }

    #[test]
    fn a_malformed_state_reads_as_absent_and_is_kept_until_rewritten() {
        let stored = json!({
            "last_run": 1767225600,
            "feed_sha256": 5,
            "etag": null,
            "last_modified": ["x"],
            "other": true,
        });
        let mut state = IpsumState::read(Some(stored.clone()));
        assert_eq!(
            (state.feed_sha256(), state.etag(), state.last_modified()),
            (None, None, None)
        );
        assert_eq!(state.last_run_shown().as_deref(), Some("1767225600"));
        assert_eq!(state.to_value(), stored, "nothing read is lost");
        state.started("2026-01-01 00:00:00".into());
        assert_eq!(
            state.to_value().to_string(),
            r#"{"last_run":"2026-01-01 00:00:00","feed_sha256":5,"etag":null,"last_modified":["x"],"other":true}"#
        );
        state.imported(&download(Some("e"), None));
        assert_eq!(
            state.to_value().to_string(),
            r#"{"last_run":"2026-01-01 00:00:00","feed_sha256":"ab12","etag":"e","other":true}"#
        );
        for not_an_object in [json!([1]), json!("text"), Value::Null] {
            assert_eq!(IpsumState::read(Some(not_an_object)), IpsumState::default());
        }
    }
}
