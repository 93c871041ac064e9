//! IVRE's data purpose from MaxMind's GeoLite2 files (`db_url_data: maxmind:///dir`), without
//! an IVRE web server: `GeoLite2-City.mmdb`, `GeoLite2-Country.mmdb` and `GeoLite2-ASN.mmdb`
//! read locally, and the `/ipdata/<ip>` answer built from them as IVRE's `MaxMindDBData`
//! builds it (`ivre/db/maxmind.py`: `as_byip`, then `country_byip`, then `location_byip`
//! over it, English names).
//!
//! Files replaced on disk (GeoLite2 is published weekly) are picked up without a restart:
//! at most every `ivre.maxmind_check_interval` a lookup compares each file's modification
//! time and size with those of the copy in memory, and re-opens the ones that changed. A
//! replacement that does not open (half-written, corrupt, another database type) is logged
//! and the previous copy kept until the next check.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use maxminddb::{Reader, geoip2};
use serde_json::{Map, Value, json};

/// The three files, in IVRE's merge order (AS, then country, then city over it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Asn,
    Country,
    City,
}

const DBS: [Db; 3] = [Db::Asn, Db::Country, Db::City];

impl Db {
    /// The database type MaxMind writes in the file's metadata (and its file name).
    fn database_type(self) -> &'static str {
        match self {
            Db::Asn => "GeoLite2-ASN",
            Db::Country => "GeoLite2-Country",
            Db::City => "GeoLite2-City",
        }
    }
}

/// What tells a replaced file from the copy in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// One file in memory.
struct Opened {
    db: Db,
    path: PathBuf,
    reader: Reader<Vec<u8>>,
    stamp: Stamp,
}

impl Opened {
    /// Reads `db`'s file in `dir`; the error names the path and says what is wrong.
    fn open(dir: &Path, db: Db) -> Result<Opened, String> {
        let path = dir.join(format!("{}.mmdb", db.database_type()));
        let shown = path.display();
        let stamp = stamp(&path).map_err(|e| format!("`{shown}`: {e}"))?;
        let bytes = std::fs::read(&path).map_err(|e| format!("`{shown}`: {e}"))?;
        let reader = Reader::from_source(bytes)
            .map_err(|e| format!("`{shown}` is not a MaxMind DB file: {e}"))?;
        let found = &reader.metadata().database_type;
        if !found.eq_ignore_ascii_case(db.database_type()) {
            return Err(format!(
                "`{shown}` is a {found} database; expected {}",
                db.database_type()
            ));
        }
        Ok(Opened {
            db,
            path,
            reader,
            stamp,
        })
    }

    /// The record for `ip`, `None` when the file has none (or none for this IP version).
    fn lookup<'a, T: serde::Deserialize<'a>>(&'a self, ip: IpAddr) -> Result<Option<T>, String> {
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return Ok(None);
        }
        let fail = |e: maxminddb::MaxMindDbError| {
            format!("MaxMind lookup in `{}` failed: {e}", self.path.display())
        };
        self.reader.lookup(ip).map_err(fail)?.decode().map_err(fail)
    }

    /// `GeoLite2-City built 2025-07-01`.
    fn describe(&self) -> String {
        let epoch = self.reader.metadata().build_epoch;
        let built = i64::try_from(epoch)
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| format!("at epoch {epoch}"));
        format!("{} built {built}", self.reader.metadata().database_type)
    }
}

struct State {
    /// In [`DBS`] order.
    dbs: [Arc<Opened>; 3],
    checked: Instant,
}

/// The GeoLite2 files of one directory, kept fresh.
pub struct MaxMindData {
    dir: PathBuf,
    check_every: Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for MaxMindData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "maxmind://{}", self.dir.display())
    }
}

/// The directory of a `maxmind://` URL (`None`: another scheme). As IVRE, only the path
/// counts, as written; it must be absolute (`maxmind:///var/lib/GeoIP`).
pub fn directory(url: &str) -> Option<Result<PathBuf, String>> {
    let url = url.trim();
    let scheme = url.get(..10)?;
    if !scheme.eq_ignore_ascii_case("maxmind://") {
        return None;
    }
    let rest = &url[10..];
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    Some(if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(format!(
            "`{url}`: maxmind:// takes an absolute directory, e.g. maxmind:///var/lib/GeoIP"
        ))
    })
}

impl MaxMindData {
    /// Opens the three files of `dir`: a missing or unreadable file, or one of another
    /// database type, is an error naming its path.
    pub fn open(dir: &Path, check_every: Duration) -> Result<MaxMindData, String> {
        let [asn, country, city] = DBS.map(|db| Opened::open(dir, db));
        Ok(MaxMindData {
            dir: dir.to_path_buf(),
            check_every,
            state: Mutex::new(State {
                dbs: [Arc::new(asn?), Arc::new(country?), Arc::new(city?)],
                checked: Instant::now(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent state (whole Arcs swapped).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The files to read, re-opening those replaced on disk when a check is due.
    fn current(&self) -> [Arc<Opened>; 3] {
        let mut state = self.lock();
        if state.checked.elapsed() < self.check_every {
            return state.dbs.clone();
        }
        // Claim the check, then stat and re-open without the lock: lookups go on meanwhile.
        state.checked = Instant::now();
        let dbs = state.dbs.clone();
        drop(state);
        let mut fresh = Vec::new();
        for (i, opened) in dbs.iter().enumerate() {
            let shown = opened.path.display();
            match stamp(&opened.path) {
                Ok(now) if now == opened.stamp => {}
                Ok(_) => match Opened::open(&self.dir, opened.db) {
                    Ok(new) => {
                        tracing::info!(connector = "ivre", path = %shown, database = %new.describe(), "Re-opened a replaced MaxMind file.");
                        fresh.push((i, Arc::new(new)));
                    }
                    Err(error) => {
                        tracing::warn!(connector = "ivre", %error, "A replaced MaxMind file does not open; the previous copy stays in use.");
                    }
                },
                Err(error) => {
                    tracing::warn!(connector = "ivre", path = %shown, %error, "A MaxMind file is gone; the previous copy stays in use.");
                }
            }
        }
        let mut state = self.lock();
        for (i, new) in fresh {
            state.dbs[i] = new;
        }
        state.dbs.clone()
    }

    /// IVRE's `/ipdata/<ip>` answer for `ip`, `None` when no file knows it.
    pub fn ipdata(&self, ip: IpAddr) -> Result<Option<Value>, String> {
        let [asn, country, city] = self.current();
        Ok(infos(
            asn.lookup(ip)?,
            country.lookup(ip)?,
            city.lookup::<geoip2::City>(ip)?,
        ))
    }

    /// `maxmind:///dir: GeoLite2-ASN built …, GeoLite2-Country built …, GeoLite2-City built …`.
    pub fn describe(&self) -> String {
        let dbs = self.current();
        let each: Vec<String> = dbs.iter().map(|o| o.describe()).collect();
        format!("{self:?}: {}", each.join(", "))
    }
}

/// A non-empty string.
fn some(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// `<prefix>_code` and `<prefix>_name` of a country (when set and not empty).
fn put_country(m: &mut Map<String, Value>, prefix: &str, c: &geoip2::country::Country<'_>) {
    if let Some(code) = some(c.iso_code) {
        m.insert(format!("{prefix}_code"), json!(code));
    }
    if let Some(name) = some(c.names.english) {
        m.insert(format!("{prefix}_name"), json!(name));
    }
}

/// IVRE's `infos_byip` over the three records (without its `tags`, which come from IVRE's
/// own lists, not from MaxMind, and which the connector does not read).
pub fn infos(
    asn: Option<geoip2::Asn<'_>>,
    country: Option<geoip2::Country<'_>>,
    city: Option<geoip2::City<'_>>,
) -> Option<Value> {
    let mut m = Map::new();
    if let Some(asn) = asn {
        if let Some(n) = asn.autonomous_system_number {
            m.insert("as_num".into(), json!(n));
        }
        if let Some(name) = asn.autonomous_system_organization {
            m.insert("as_name".into(), json!(name));
        }
    }
    if let Some(country) = country {
        put_country(&mut m, "country", &country.country);
    }
    if let Some(city) = city {
        if !city.subdivisions.is_empty() {
            let codes: Vec<Option<&str>> = city.subdivisions.iter().map(|s| s.iso_code).collect();
            let names: Vec<Option<&str>> =
                city.subdivisions.iter().map(|s| s.names.english).collect();
            m.insert("region_code".into(), json!(codes));
            m.insert("region_name".into(), json!(names));
        }
        if let Some(code) = some(city.continent.code) {
            m.insert("continent_code".into(), json!(code));
        }
        if let Some(name) = some(city.continent.names.english) {
            m.insert("continent_name".into(), json!(name));
        }
        put_country(&mut m, "country", &city.country);
        put_country(&mut m, "registered_country", &city.registered_country);
        if let Some(name) = some(city.city.names.english) {
            m.insert("city".into(), json!(name));
        }
        if let Some(code) = some(city.postal.code) {
            m.insert("postal_code".into(), json!(code));
        }
        let loc = &city.location;
        if !loc.is_empty() {
            if let (Some(lat), Some(lon)) = (loc.latitude, loc.longitude) {
                m.insert("coordinates".into(), json!([lat, lon]));
            }
            m.insert(
                "coordinates_accuracy_radius".into(),
                json!(loc.accuracy_radius),
            );
        }
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

#[cfg(test)]
#[path = "maxmind_tests.rs"]
mod tests;
