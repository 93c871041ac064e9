//! pycti's bundle splitter (`OpenCTIStix2Splitter.split_bundle_with_expectations`, spec
//! §6.2): de-duplicate by id, drop unsupported objects, clean references, count
//! dependencies and order objects so that what is referenced comes first.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

/// Id prefixes OpenCTI ingests.
const SUPPORTED: &[&str] = &[
    "attack-pattern",
    "campaign",
    "case-incident",
    "x-opencti-case-incident",
    "case-rfi",
    "x-opencti-case-rfi",
    "case-rft",
    "x-opencti-case-rft",
    "channel",
    "course-of-action",
    "data-component",
    "x-mitre-data-component",
    "data-source",
    "x-mitre-data-source",
    "event",
    "external-reference",
    "feedback",
    "x-opencti-feedback",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "language",
    "location",
    "malware",
    "malware-analysis",
    "marking-definition",
    "narrative",
    "note",
    "observed-data",
    "opinion",
    "report",
    "task",
    "x-opencti-task",
    "threat-actor",
    "tool",
    "vulnerability",
    "security-coverage",
    "label",
    "vocabulary",
    "kill-chain-phase",
    "user",
    "group",
    "capability",
    "role",
    "settings",
    "notification",
    "work",
    "trash",
    "draftworkspace",
    "playbook",
    "deleteoperation",
    "workspace",
    "publicdashboard",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "email-mime-part-type",
    "artifact",
    "file",
    "x509-certificate",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "windows-registry-value-type",
    "hostname",
    "cryptographic-key",
    "cryptocurrency-wallet",
    "text",
    "user-agent",
    "bank-account",
    "phone-number",
    "credential",
    "tracking-number",
    "payment-card",
    "media-content",
    "simple-observable",
    "persona",
    "ssh-key",
    "relationship",
    "sighting",
    "pir",
];

/// Whether OpenCTI ingests objects with this id (ids without `--` are not filtered).
pub fn is_supported_id(id: &str) -> bool {
    match id.split_once("--") {
        Some((prefix, _)) => SUPPORTED.contains(&prefix),
        None => true,
    }
}

/// One object ready to send, with its dependency count.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitObject {
    pub object: Value,
    pub nb_deps: usize,
}

fn object_id(o: &Value) -> Option<&str> {
    o.get("id").and_then(Value::as_str)
}

/// Removes references OpenCTI would reject: to unsupported types, to itself, and (with
/// `cleanup`) to objects absent from the bundle. Recurses into nested objects.
fn clean_refs(
    map: &mut Map<String, Value>,
    self_id: &str,
    present: &HashSet<String>,
    cleanup: bool,
) {
    let keep = |r: &str| r != self_id && is_supported_id(r) && (!cleanup || present.contains(r));
    for (key, value) in map.iter_mut() {
        if key.ends_with("_refs") {
            if let Value::Array(refs) = value {
                refs.retain(|r| r.as_str().is_none_or(keep));
            }
        } else if key.ends_with("_ref") {
            if let Some(r) = value.as_str()
                && !keep(r)
            {
                *value = Value::Null;
            }
        } else if let Value::Object(inner) = value {
            clean_refs(inner, self_id, present, cleanup);
        }
    }
}

/// Every value of `value`'s `*_ref` / `*_refs` keys, nested objects included.
pub fn collect_refs(value: &Value, out: &mut Vec<String>) {
    if let Value::Object(map) = value {
        for (key, v) in map {
            if key.ends_with("_refs") {
                if let Value::Array(refs) = v {
                    out.extend(refs.iter().filter_map(Value::as_str).map(str::to_string));
                }
            } else if key.ends_with("_ref") {
                if let Some(r) = v.as_str() {
                    out.push(r.to_string());
                }
            } else if v.is_object() {
                collect_refs(v, out);
            }
        }
    }
}

/// The compatibility filter: what OpenCTI accepts of `o`.
pub fn is_compatible(o: &Value) -> bool {
    let Some(id) = object_id(o) else { return false };
    let non_null = |k: &str| o.get(k).is_some_and(|v| !v.is_null());
    match o.get("type").and_then(Value::as_str) {
        Some("relationship") => non_null("source_ref") && non_null("target_ref"),
        Some("sighting") => {
            non_null("sighting_of_ref")
                && o.get("where_sighted_refs")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
        }
        _ => is_supported_id(id),
    }
}

/// One object being counted: its references and how far through them the walk is.
struct Frame {
    id: String,
    refs: Vec<String>,
    next: usize,
    count: usize,
}

/// pycti's dependency count of `root`: 1 plus the counts of the kept objects it references
/// (a reference back into the walk counts 0). Depth-first with an explicit stack, so a chain
/// of any length cannot overflow the stack, and saturating, so a diamond-shaped graph cannot
/// overflow the count. Each object is counted once (`memo`), so the walk is linear.
fn deps(
    root: &str,
    by_id: &HashMap<String, Value>,
    kept: &HashSet<String>,
    memo: &mut HashMap<String, usize>,
    visiting: &mut HashSet<String>,
) -> usize {
    if let Some(n) = memo.get(root) {
        return *n;
    }
    let frame = |id: &str| {
        let mut refs = Vec::new();
        collect_refs(&by_id[id], &mut refs);
        Frame {
            id: id.to_string(),
            refs,
            next: 0,
            count: 1,
        }
    };
    visiting.insert(root.to_string());
    let mut stack = vec![frame(root)];
    loop {
        // The stack holds the root until it is popped below.
        let top = stack.last_mut().expect("the walk's root");
        if let Some(r) = top.refs.get(top.next) {
            top.next += 1;
            if *r == top.id || !kept.contains(r) {
                continue;
            }
            if let Some(n) = memo.get(r) {
                top.count = top.count.saturating_add(*n);
            } else if visiting.insert(r.clone()) {
                let child = frame(r);
                stack.push(child);
            } // else: a cycle, which counts 0.
            continue;
        }
        // Every reference counted: pop, and add the total to the parent.
        let Some(done) = stack.pop() else {
            unreachable!()
        };
        visiting.remove(&done.id);
        memo.insert(done.id, done.count);
        match stack.last_mut() {
            Some(parent) => parent.count = parent.count.saturating_add(done.count),
            None => return done.count,
        }
    }
}

/// Splits `objects` into the objects that will be sent, in sending order.
/// `expectations` = the returned length.
pub fn split(objects: Vec<Value>, cleanup_inconsistent: bool) -> Vec<SplitObject> {
    // Distinct ids in first-seen order; the last occurrence's content wins (pycti's index).
    let mut order: Vec<String> = Vec::new();
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for o in objects {
        let Some(id) = object_id(&o).map(str::to_string) else {
            continue;
        };
        if !by_id.contains_key(&id) {
            order.push(id.clone());
        }
        by_id.insert(id, o);
    }
    let present: HashSet<String> = by_id.keys().cloned().collect();
    for (id, o) in by_id.iter_mut() {
        if let Value::Object(map) = o {
            clean_refs(map, id, &present, cleanup_inconsistent);
        }
    }
    let kept: HashSet<String> = order
        .iter()
        .filter(|id| is_compatible(&by_id[*id]))
        .cloned()
        .collect();

    let mut memo: HashMap<String, usize> = HashMap::new();
    // Count every dependency first, then move the objects out (no deep copies).
    // `visiting` is empty again after each walk, so one set serves them all.
    let mut visiting = HashSet::new();
    let counts: Vec<usize> = order
        .iter()
        .filter(|id| kept.contains(*id))
        .map(|id| deps(id, &by_id, &kept, &mut memo, &mut visiting))
        .collect();
    let mut out: Vec<SplitObject> = order
        .iter()
        .filter(|id| kept.contains(*id))
        .zip(counts)
        .filter_map(|(id, nb_deps)| {
            by_id
                .remove(id)
                .map(|object| SplitObject { object, nb_deps })
        })
        .collect();
    out.sort_by_key(|s| s.nb_deps); // stable
    out
}

#[cfg(test)]
mod tests;
