//! The IPsum feed → STIX, pure: the parser (bare IPs in `levels/N.txt`, `IP<TAB>count` with
//! `#` comments in `ipsum.txt`; CIDRs expanded host by host up to a bound, private ranges
//! skipped, junk skipped and counted instead of stopping the import), the count → score rule
//! and the three objects of each IP.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::opencti::prepared::Prepared;
use crate::opencti::split::is_supported_id;
use crate::stix::{ExternalReference, Indicator, Observable, Relationship, Tlp, to_object};

/// The largest network expanded host by host (a /16); larger ones are skipped as junk.
pub const MAX_EXPANSION: u128 = 65_536;

/// One IP to import, with its blacklist count when the feed has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedIp {
    pub ip: IpAddr,
    pub count: Option<u32>,
}

/// What a parse skipped, counted as the feed is read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// `#` comment lines.
    pub comments: usize,
    /// Blank lines.
    pub blank: usize,
    /// Lines (or networks) in private / reserved ranges.
    pub private: usize,
    /// Lines that are neither an address, a network nor a comment (first few kept for logs).
    pub junk: usize,
    pub junk_examples: Vec<String>,
}

impl Tally {
    /// Lines not imported (comments and blanks are not "skipped": they carry no IP).
    pub fn skipped(&self) -> usize {
        self.private + self.junk
    }

    fn junk(&mut self, line: &str, why: &str) {
        self.junk += 1;
        if self.junk_examples.len() < 5 {
            self.junk_examples.push(format!(
                "{why}: {:?}",
                line.chars().take(80).collect::<String>()
            ));
        }
    }
}

/// A whole feed parsed at once (tests, benchmarks); runs read a [`Feed`] lazily.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub ips: Vec<FeedIp>,
    pub tally: Tally,
}

impl std::ops::Deref for Parsed {
    type Target = Tally;
    fn deref(&self) -> &Tally {
        &self.tally
    }
}

/// Python's `is_private` ranges (3.12.4+), with their exceptions.
const PRIVATE: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.0.170/31",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::1/128",
    "::/128",
    "::ffff:0:0/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
];
const NOT_PRIVATE: &[&str] = &[
    "192.0.0.9/32",
    "192.0.0.10/32",
    "2001:1::1/128",
    "2001:1::2/128",
    "2001:3::/32",
    "2001:4:112::/48",
    "2001:20::/28",
    "2001:30::/28",
];

fn nets(list: &[&str]) -> Vec<IpNet> {
    // The lists above are constant and valid.
    list.iter()
        .map(|s| s.parse().expect("valid network literal"))
        .collect()
}

/// Whether an address is in a private / reserved range (Python's `is_private`).
pub fn is_private(ip: IpAddr) -> bool {
    thread_local! {
        static TABLES: (Vec<IpNet>, Vec<IpNet>) = (nets(PRIVATE), nets(NOT_PRIVATE));
    }
    TABLES.with(|(private, exceptions)| {
        private.iter().any(|n| n.contains(&ip)) && !exceptions.iter().any(|n| n.contains(&ip))
    })
}

/// Hosts of a network as Python's `hosts()` yields them, one at a time.
fn hosts(net: IpNet) -> Box<dyn Iterator<Item = IpAddr> + Send> {
    match net {
        IpNet::V4(n) if n.prefix_len() >= 31 => Box::new(
            n.subnets(32)
                .into_iter()
                .flatten()
                .map(|s| IpAddr::V4(s.addr())),
        ),
        IpNet::V4(n) => Box::new(n.hosts().map(IpAddr::V4)),
        IpNet::V6(n) if n.prefix_len() >= 127 => Box::new(
            n.subnets(128)
                .into_iter()
                .flatten()
                .map(|s| IpAddr::V6(s.addr())),
        ),
        // All but the subnet-router anycast (network) address.
        IpNet::V6(n) => Box::new(n.hosts().skip(1).map(IpAddr::V6)),
    }
}

/// A feed body read line by line, networks expanded host by host as the IPs are taken: only
/// the current line and network are in memory, whatever the feed expands to.
pub struct Feed<'a> {
    lines: std::str::Lines<'a>,
    expanding: Option<(Box<dyn Iterator<Item = IpAddr> + Send>, Option<u32>)>,
    /// What was skipped so far.
    pub tally: Tally,
}

impl<'a> Feed<'a> {
    pub fn new(body: &'a str) -> Self {
        Feed {
            lines: body.lines(),
            expanding: None,
            tally: Tally::default(),
        }
    }

    /// One line: an IP to return, a network to expand (set in `self.expanding`), or nothing.
    fn line(&mut self, raw: &str) -> Option<FeedIp> {
        let line = raw.trim();
        if line.is_empty() {
            self.tally.blank += 1;
            return None;
        }
        if line.starts_with('#') {
            self.tally.comments += 1;
            return None;
        }
        let mut fields = line.split_whitespace();
        let target = fields.next().unwrap_or_default();
        let count = match fields.next().map(str::parse::<u32>) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                self.tally.junk(line, "count is not a number");
                return None;
            }
        };
        if fields.next().is_some() {
            self.tally.junk(line, "unexpected extra fields");
            return None;
        }
        if let Ok(ip) = target.parse::<IpAddr>() {
            if is_private(ip) {
                self.tally.private += 1;
                return None;
            }
            return Some(FeedIp { ip, count });
        }
        let Ok(net) = target.parse::<IpNet>() else {
            self.tally.junk(line, "not an IP address or network");
            return None;
        };
        if net.trunc() != net {
            self.tally.junk(line, "network with host bits set");
            return None;
        }
        let size: u128 = match net {
            IpNet::V4(n) => 1u128 << (32 - n.prefix_len()),
            IpNet::V6(n) => 1u128
                .checked_shl(u32::from(128 - n.prefix_len()))
                .unwrap_or(u128::MAX),
        };
        if size > MAX_EXPANSION {
            self.tally.junk(line, "network too large to expand");
            return None;
        }
        if is_private(net.network()) && is_private(net.broadcast()) {
            self.tally.private += 1;
            return None;
        }
        self.expanding = Some((hosts(net), count));
        None
    }
}

impl Iterator for Feed<'_> {
    type Item = FeedIp;

    fn next(&mut self) -> Option<FeedIp> {
        loop {
            if let Some((hosts, count)) = &mut self.expanding {
                match hosts.next() {
                    Some(ip) => return Some(FeedIp { ip, count: *count }),
                    None => self.expanding = None,
                }
            }
            let raw = self.lines.next()?;
            if let Some(ip) = self.line(raw) {
                return Some(ip);
            }
        }
    }
}

/// Parses a whole feed body at once.
pub fn parse(body: &str) -> Parsed {
    let mut feed = Feed::new(body);
    let ips = feed.by_ref().collect();
    Parsed {
        ips,
        tally: feed.tally,
    }
}

/// The score of an IP seen on `count` blacklists: the configured default at count 5 (the
/// recommended level), 10 points per count above or below, within 10..=100.
pub fn score_for(count: Option<u32>, default: u8) -> u8 {
    match count {
        None => default,
        Some(c) => (i64::from(default) + (i64::from(c) - 5) * 10).clamp(10, 100) as u8,
    }
}

/// What every object of a run shares.
#[derive(Debug, Clone)]
pub struct Marks {
    pub author_id: String,
    pub tlp: Tlp,
    /// The score at count 5, or of every IP when the feed has no counts.
    pub default_score: u8,
}

/// The external reference every object carries.
fn external_reference() -> ExternalReference {
    ExternalReference {
        source_name: "IPsum".into(),
        description: Some(
            "All lists are automatically retrieved and parsed on a daily (24h) basis.".into(),
        ),
        url: Some("https://github.com/stamparm/ipsum/tree/master".into()),
    }
}

/// The objects for one IP: observable, indicator, based-on.
fn build(ip: &FeedIp, marks: &Marks, now: &str) -> (Observable, Indicator, Relationship) {
    let (stix_type, main_type) = if ip.ip.is_ipv4() {
        ("ipv4-addr", "IPv4-Addr")
    } else {
        ("ipv6-addr", "IPv6-Addr")
    };
    let value = ip.ip.to_string();
    let score = score_for(ip.count, marks.default_score);
    let marking_id = marks.tlp.marking_id().to_string();
    let mut observable = Observable::new(stix_type, value.clone());
    observable.object_marking_refs = vec![marking_id.clone()];
    observable.x_opencti_created_by_ref = Some(marks.author_id.clone());
    observable.x_opencti_score = Some(score);
    observable.x_opencti_external_references = vec![external_reference()];

    let mut indicator = Indicator::new(
        value.clone(),
        format!("[{stix_type}:value = '{value}']"),
        now,
    );
    indicator.created_by_ref = Some(marks.author_id.clone());
    indicator.object_marking_refs = vec![marking_id.clone()];
    indicator.x_opencti_score = Some(score);
    indicator.x_opencti_main_observable_type = Some(main_type.into());
    if let Some(c) = ip.count {
        indicator.description = Some(format!("Listed on {c} IPsum blacklist(s)."));
    }
    indicator.external_references = vec![external_reference()];

    let mut rel = Relationship::new("based-on", &indicator.id, &observable.id, now);
    rel.created_by_ref = Some(marks.author_id.clone());
    rel.object_marking_refs = vec![marking_id];
    (observable, indicator, rel)
}

/// The observable, indicator and based-on relationship of one IP.
pub fn objects_for(ip: &FeedIp, marks: &Marks, now: &str) -> [Value; 3] {
    let (observable, indicator, rel) = build(ip, marks, now);
    [
        to_object(&observable),
        to_object(&indicator),
        to_object(&rel),
    ]
}

/// `object`'s JSON text, written into a buffer of about the right size (growing one copies it).
fn to_json<T: serde::Serialize>(object: &T) -> String {
    let mut buffer = Vec::with_capacity(1024);
    // These builders hold strings, numbers and lists only: serialising cannot fail, and
    // serde_json writes UTF-8.
    let _ = serde_json::to_writer(&mut buffer, object);
    String::from_utf8(buffer).unwrap_or_default()
}

/// The same three objects, serialised once, with the references the splitter follows (what
/// `split::collect_refs` reads of them).
pub fn prepared_for(ip: &FeedIp, marks: &Marks, now: &str) -> [Prepared; 3] {
    let (observable, indicator, rel) = build(ip, marks, now);
    let mut observable_refs = observable.object_marking_refs.clone();
    observable_refs.extend(observable.x_opencti_created_by_ref.clone());
    let mut indicator_refs = indicator.object_marking_refs.clone();
    indicator_refs.extend(indicator.created_by_ref.clone());
    let mut rel_refs = vec![rel.source_ref.clone(), rel.target_ref.clone()];
    rel_refs.extend(rel.created_by_ref.clone());
    rel_refs.extend(rel.object_marking_refs.iter().cloned());
    [
        Prepared {
            id: observable.id.clone(),
            refs: observable_refs,
            json: to_json(&observable),
            compatible: is_supported_id(&observable.id),
        },
        Prepared {
            id: indicator.id.clone(),
            refs: indicator_refs,
            json: to_json(&indicator),
            compatible: true,
        },
        Prepared {
            id: rel.id.clone(),
            refs: rel_refs,
            json: to_json(&rel),
            compatible: true,
        },
    ]
}

#[cfg(test)]
mod tests;
