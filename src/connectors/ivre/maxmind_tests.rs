//! `maxmind://` over the small GeoLite2 files of `tests/fixtures/ivre/mmdb` (see its README):
//! the answers equal IVRE's recorded `/ipdata` answers, bad files are clear errors, and a
//! replaced file is picked up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::fixtures::fixture_json;

const FILES: [&str; 3] = [
    "GeoLite2-City.mmdb",
    "GeoLite2-Country.mmdb",
    "GeoLite2-ASN.mmdb",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ivre/mmdb")
}

/// A scratch directory, removed with its files when dropped.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh directory holding a copy of the three files.
fn copy() -> Scratch {
    let dir = std::env::temp_dir().join(format!("ivre-mmdb-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in FILES {
        std::fs::copy(fixtures().join(f), dir.join(f)).unwrap();
    }
    Scratch(dir)
}

/// Replaces `name` in `dir` as GeoLite2 updaters do: a new file renamed over the old one.
fn replace(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn answers_are_ivre_s_recorded_ipdata_answers_without_tags() {
    let data = MaxMindData::open(&fixtures(), Duration::from_secs(60)).unwrap();
    for (addr, file) in [
        ("198.51.100.10", "ipdata_198.51.100.10.json"),
        ("203.0.113.50", "ipdata_203.0.113.50.json"),
        ("2001:db8::10", "ipdata_2001-db8--10.json"),
        ("8.8.8.8", "ipdata_8.8.8.8.json"),
    ] {
        let mut recorded = fixture_json("ivre", file);
        // IVRE adds tags from its own lists (reserved ranges, CDNs, TOR), not from MaxMind.
        recorded.as_object_mut().unwrap().remove("tags");
        let answer = data.ipdata(ip(addr)).unwrap().expect("known");
        assert_eq!(answer, recorded, "{addr}");
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&answer), keys(&recorded), "{addr}: IVRE's key order");
    }
    // 10.0.0.1 is known to IVRE by its tags only; 1.1.1.1 not at all.
    assert_eq!(
        fixture_json("ivre", "ipdata_10.0.0.1.json")
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["tags"]
    );
    for unknown in ["10.0.0.1", "1.1.1.1", "::1"] {
        assert_eq!(data.ipdata(ip(unknown)).unwrap(), None, "{unknown}");
    }
}

#[test]
fn a_missing_file_is_an_error_naming_its_path() {
    for missing in FILES {
        let dir = copy();
        std::fs::remove_file(dir.join(missing)).unwrap();
        let err = MaxMindData::open(&dir, Duration::ZERO).unwrap_err();
        let path = dir.join(missing);
        assert!(
            err.contains(&format!("`{}`", path.display())) && err.contains("No such file"),
            "{err}"
        );
    }
    let err = MaxMindData::open(Path::new("/nonexistent/geoip"), Duration::ZERO).unwrap_err();
    assert!(err.contains("/nonexistent/geoip/"), "{err}");
}

#[test]
fn a_file_of_another_database_type_is_an_error() {
    let dir = copy();
    let city = std::fs::read(fixtures().join("GeoLite2-City.mmdb")).unwrap();
    replace(&dir, "GeoLite2-Country.mmdb", &city);
    let err = MaxMindData::open(&dir, Duration::ZERO).unwrap_err();
    assert!(
        err.contains(
            "GeoLite2-Country.mmdb` is a GeoLite2-City database; expected GeoLite2-Country"
        ),
        "{err}"
    );
}

#[test]
fn corrupt_files_are_errors_never_panics() {
    let asn = std::fs::read(fixtures().join("GeoLite2-ASN.mmdb")).unwrap();
    let mut flipped = asn.clone();
    // The search tree's first node pointing past the data section.
    flipped[..6].fill(0xff);
    for bytes in [
        b"not a database".to_vec(),
        Vec::new(),
        asn[..asn.len() / 2].to_vec(),
        asn[asn.len() / 2..].to_vec(),
        flipped,
    ] {
        let dir = copy();
        replace(&dir, "GeoLite2-ASN.mmdb", &bytes);
        match MaxMindData::open(&dir, Duration::ZERO) {
            Err(err) => assert!(err.contains("GeoLite2-ASN.mmdb"), "{err}"),
            // Opened (the metadata is intact): lookups answer or fail, with the path.
            Ok(data) => {
                for addr in ["198.51.100.10", "8.8.8.8", "2001:db8::10", "1.1.1.1"] {
                    if let Err(err) = data.ipdata(ip(addr)) {
                        assert!(err.contains("GeoLite2-ASN.mmdb"), "{err}");
                    }
                }
            }
        }
    }
}

#[test]
fn a_replaced_file_is_picked_up_and_a_bad_replacement_keeps_the_previous_copy() {
    let dir = copy();
    let data = MaxMindData::open(&dir, Duration::ZERO).unwrap();
    let as_name = |data: &MaxMindData| {
        data.ipdata(ip("198.51.100.10")).unwrap().unwrap()["as_name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(as_name(&data), "Example Documentation Network");
    assert!(data.describe().contains("GeoLite2-ASN built 2025-07-02"));

    let next = std::fs::read(fixtures().join("next/GeoLite2-ASN.mmdb")).unwrap();
    replace(&dir, "GeoLite2-ASN.mmdb", &next);
    assert_eq!(as_name(&data), "Example Documentation Network (renamed)");
    assert!(data.describe().contains("GeoLite2-ASN built 2025-07-09"));

    // Half-written, then gone: the copy in memory goes on answering.
    replace(&dir, "GeoLite2-ASN.mmdb", &next[..next.len() / 3]);
    assert_eq!(as_name(&data), "Example Documentation Network (renamed)");
    std::fs::remove_file(dir.join("GeoLite2-ASN.mmdb")).unwrap();
    assert_eq!(as_name(&data), "Example Documentation Network (renamed)");
    // The next good file is taken.
    std::fs::copy(
        fixtures().join("GeoLite2-ASN.mmdb"),
        dir.join("GeoLite2-ASN.mmdb"),
    )
    .unwrap();
    assert_eq!(as_name(&data), "Example Documentation Network");
}

#[test]
fn files_are_checked_at_most_once_per_interval() {
    let dir = copy();
    let data = MaxMindData::open(&dir, Duration::from_secs(3600)).unwrap();
    let next = std::fs::read(fixtures().join("next/GeoLite2-ASN.mmdb")).unwrap();
    replace(&dir, "GeoLite2-ASN.mmdb", &next);
    let answer = data.ipdata(ip("198.51.100.10")).unwrap().unwrap();
    assert_eq!(answer["as_name"], "Example Documentation Network");
}

#[test]
fn the_build_dates_of_the_three_files_are_described() {
    let data = MaxMindData::open(&fixtures(), Duration::from_secs(60)).unwrap();
    assert_eq!(
        data.describe(),
        format!(
            "maxmind://{}: GeoLite2-ASN built 2025-07-02, GeoLite2-Country built 2025-07-01, \
             GeoLite2-City built 2025-07-01",
            fixtures().display()
        )
    );
}

#[test]
fn maxmind_urls_name_an_absolute_directory() {
    assert_eq!(directory("https://ivre.example.com/cgi"), None);
    assert_eq!(directory("mongodb:///ivre"), None);
    assert_eq!(
        directory("maxmind:///usr/share/ivre/geoip"),
        Some(Ok(PathBuf::from("/usr/share/ivre/geoip")))
    );
    assert_eq!(
        directory(" MaxMind:///var/lib/GeoIP/ "),
        Some(Ok(PathBuf::from("/var/lib/GeoIP/")))
    );
    assert_eq!(
        directory("maxmind:///srv/geo ip#x"),
        Some(Ok(PathBuf::from("/srv/geo ip")))
    );
    for relative in ["maxmind://geoip", "maxmind://", "maxmind://host/dir"] {
        let err = directory(relative).unwrap().unwrap_err();
        assert!(err.contains("absolute directory"), "{relative}: {err}");
    }
}
