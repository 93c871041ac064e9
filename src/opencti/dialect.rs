//! Which OpenCTI the daemon speaks to: the platform's version, read from `about`, decides
//! between two dialects of the same protocol.
//!
//! - **6.x** (6.8.10 and anything the daemon cannot place): exactly the operations and
//!   messages of pycti 6.8.10. A 6.8 platform refuses unknown input fields and arguments.
//! - **7.x** (a major version of 7 or more, such as `7.261026.0`): what pycti 7.261026.0
//!   adds: `version` and `slug` at registration, `isMultiPartWork` on `workAdd`,
//!   `"no_split": false` in AMQP bundle messages, and an `addExpectations` answered
//!   `WORK_NOT_ALIVE` taken as "the work is gone" rather than as a failure.
//!
//! Every `about` the client reads records the version ([`VersionCell`]), so it is read at
//! start-up and again each time the platform answers after an outage. Until a version is
//! known, or when it does not parse, the daemon speaks 6.x (and warns): those operations
//! are valid on both platforms, a 7.x platform only loses the multi-part work tracking.

use std::sync::RwLock;

use serde::Serialize;

/// The daemon's own version, sent at registration on 7.x (the platform refuses a `version`
/// that is no semver; Cargo's is one).
pub const DAEMON_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `workAdd` with the 7.x `isMultiPartWork` argument (pycti 7.261026.0's text).
pub const WORK_ADD_MULTIPART: &str = "mutation workAdd($connectorId: String!, $friendlyName: String, $isMultiPartWork: Boolean) { workAdd(connectorId: $connectorId, friendlyName: $friendlyName, isMultiPartWork: $isMultiPartWork) { id } }";

/// The error name a 7.x platform answers for a work that no longer exists.
pub const WORK_NOT_ALIVE: &str = "WORK_NOT_ALIVE";

/// The protocol dialect the daemon speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenCTI 6.x (pycti 6.8.10), and any platform whose version is unknown.
    V6,
    /// OpenCTI 7.x and later (pycti 7.261026.0).
    V7,
}

impl Dialect {
    /// The dialect for a platform version: 7.x from major 7 on, else 6.x (a version that
    /// does not parse included).
    pub fn of(version: &str) -> Dialect {
        match major(version) {
            Some(m) if m >= 7 => Dialect::V7,
            _ => Dialect::V6,
        }
    }

    /// `6.x` or `7.x`, as logs and `check-config --online` say it.
    pub fn label(self) -> &'static str {
        match self {
            Dialect::V6 => "6.x",
            Dialect::V7 => "7.x",
        }
    }

    /// Every operation text the client sends in this dialect.
    pub fn operations(self) -> Vec<&'static str> {
        let all = super::client::OPERATIONS.iter().copied();
        match self {
            Dialect::V6 => all.collect(),
            Dialect::V7 => all
                .map(|op| {
                    if op == super::client::WORK_ADD {
                        WORK_ADD_MULTIPART
                    } else {
                        op
                    }
                })
                .collect(),
        }
    }
}

/// The major number of an `about.version` (`7` of `7.261026.0`, `6` of `6.8.10`): the
/// digits before the first dot (or the end). `None` when they are not all digits.
pub fn major(version: &str) -> Option<u64> {
    let head = version.trim().split('.').next()?;
    if head.is_empty() || !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    head.parse().ok()
}

/// What 7.x adds to the `registerConnector` input (flattened into it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Register7x {
    /// The daemon's version ([`DAEMON_VERSION`]).
    pub version: String,
    /// The official connector's manifest slug; `null` when unknown, as pycti sends it.
    pub slug: Option<String>,
}

impl Register7x {
    /// The 7.x fields of a connector whose official counterpart's manifest slug is `slug`
    /// (`crate::migrate::manifest_slug`), `None` in the 6.x dialect.
    pub fn with_slug(slug: Option<&str>, dialect: Dialect) -> Option<Register7x> {
        (dialect == Dialect::V7).then(|| Register7x {
            version: DAEMON_VERSION.to_string(),
            slug: slug.map(str::to_string),
        })
    }
}

/// The platform version the client last read, shared by every clone of the client.
#[derive(Debug, Default)]
pub struct VersionCell {
    version: RwLock<Option<String>>,
}

impl VersionCell {
    /// The version last read, if any.
    pub fn get(&self) -> Option<String> {
        self.version
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The dialect to speak now: 6.x until a version is known.
    pub fn dialect(&self) -> Dialect {
        self.get().as_deref().map_or(Dialect::V6, Dialect::of)
    }

    /// Records the version `about` answered; says so when it is new or changed (a platform
    /// upgraded during an outage), and warns when it does not parse.
    pub fn record(&self, version: &str) {
        let previous = {
            let mut slot = self.version.write().unwrap_or_else(|e| e.into_inner());
            if slot.as_deref() == Some(version) {
                return;
            }
            slot.replace(version.to_string())
        };
        let dialect = Dialect::of(version).label();
        // The version is the platform's text: shown bounded, never trusted to be short.
        let shown: String = version.chars().take(64).collect();
        if major(version).is_none() {
            tracing::warn!(version = %shown, dialect, "OpenCTI's version does not parse; speaking the 6.x dialect, which every platform accepts.");
        } else if let Some(previous) = previous {
            let previous: String = previous.chars().take(64).collect();
            tracing::info!(version = %shown, %previous, dialect, "OpenCTI's version changed.");
        } else {
            tracing::info!(version = %shown, dialect, "OpenCTI's version read.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_major_number_decides_the_dialect() {
        for (version, major_seen, dialect) in [
            ("6.8.10", Some(6), Dialect::V6),
            ("7.261026.0", Some(7), Dialect::V7),
            ("7", Some(7), Dialect::V7),
            (" 8.0.0 ", Some(8), Dialect::V7),
            ("5.12.33", Some(5), Dialect::V6),
            ("", None, Dialect::V6),
            ("v7.1.0", None, Dialect::V6),
            ("7a.1", None, Dialect::V6),
            (".7", None, Dialect::V6),
            ("99999999999999999999999.1", None, Dialect::V6),
            ("nightly", None, Dialect::V6),
        ] {
            assert_eq!(major(version), major_seen, "{version:?}");
            assert_eq!(Dialect::of(version), dialect, "{version:?}");
        }
    }

    #[test]
    fn the_dialect_is_6x_until_a_version_is_read_and_follows_it() {
        let cell = VersionCell::default();
        assert_eq!(cell.dialect(), Dialect::V6);
        cell.record("7.261026.0");
        assert_eq!(cell.dialect(), Dialect::V7);
        cell.record("6.8.10");
        assert_eq!(cell.dialect(), Dialect::V6);
        cell.record(&"é".repeat(10_000));
        assert_eq!(cell.dialect(), Dialect::V6, "garbage: 6.x, no panic");
    }

    #[test]
    fn the_daemon_version_is_semver() {
        let parts: Vec<&str> = DAEMON_VERSION.split(['.', '-', '+']).collect();
        assert!(parts.len() >= 3, "{DAEMON_VERSION}");
        assert!(
            parts[..3]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
            "{DAEMON_VERSION}"
        );
    }

    #[test]
    fn only_the_7x_operations_carry_is_multi_part_work() {
        let v6 = Dialect::V6.operations();
        let v7 = Dialect::V7.operations();
        assert_eq!(v6.len(), v7.len());
        assert!(v6.iter().all(|op| !op.contains("isMultiPartWork")));
        assert!(v7.contains(&WORK_ADD_MULTIPART));
    }
}
