//! Objects already serialised, and the splitter on them: the same de-duplication,
//! compatibility filter, dependency counts and order as [`super::split::split`], computed
//! from each object's id and references alone, so a large import never builds a
//! `serde_json::Value` per object. When a reference would have to be cleaned (it points to
//! an unsupported type, to the object itself, or — with cleanup — outside the bundle), the
//! objects go through the generic splitter instead, which rewrites them.

use rustc_hash::FxHashMap;

use serde_json::Value;

use super::split::{SplitObject, collect_refs, is_compatible, is_supported_id, split};

/// One object as JSON text, with what the splitter needs of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The object's `id`.
    pub id: String,
    /// Every value of its `*_ref` / `*_refs` keys, as the splitter collects them.
    pub refs: Vec<String>,
    /// Its compact JSON text.
    pub json: String,
    /// What the splitter's compatibility filter says of it.
    pub compatible: bool,
}

impl Prepared {
    /// The prepared form of `object` (what the generic path would read of it).
    pub fn from_value(object: &Value) -> Prepared {
        let mut refs = Vec::new();
        collect_refs(object, &mut refs);
        Prepared {
            id: object
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            refs,
            json: object.to_string(),
            compatible: is_compatible(object),
        }
    }

    /// The object as a `Value` again.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }
}

/// One object ready to send, as text, with its dependency count.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedPart {
    pub json: String,
    pub nb_deps: usize,
}

/// What [`split_prepared`] made of the objects.
pub enum Split {
    /// The objects in sending order, untouched.
    Prepared(Vec<PreparedPart>),
    /// Some references must be cleaned: the generic splitter's result.
    Generic(Vec<SplitObject>),
}

/// Splits prepared objects as [`split`] would.
pub fn split_prepared(objects: Vec<Prepared>, cleanup_inconsistent: bool) -> Split {
    // Distinct ids in first-seen order; the last occurrence's content wins.
    // Fx: ids are hashed once each and looked up once per reference; SipHash's DoS
    // resistance buys nothing for the objects a connector built itself.
    let mut slot: FxHashMap<String, usize> =
        FxHashMap::with_capacity_and_hasher(objects.len(), Default::default());
    let mut order: Vec<Option<Prepared>> = Vec::with_capacity(objects.len());
    for object in objects {
        if object.id.is_empty() {
            continue;
        }
        match slot.get(&object.id) {
            Some(&i) => order[i] = Some(object),
            None => {
                slot.insert(object.id.clone(), order.len());
                order.push(Some(object));
            }
        }
    }
    let objects: Vec<Prepared> = order.into_iter().flatten().collect();
    let needs_cleaning = objects.iter().any(|o| {
        o.refs.iter().any(|r| {
            *r == o.id || !is_supported_id(r) || (cleanup_inconsistent && !slot.contains_key(r))
        })
    });
    if needs_cleaning {
        let values = objects.iter().map(Prepared::to_value).collect();
        return Split::Generic(split(values, cleanup_inconsistent));
    }
    // References as indices of kept objects (others count 0).
    let kept: Vec<bool> = objects.iter().map(|o| o.compatible).collect();
    let refs: Vec<Vec<usize>> = objects
        .iter()
        .map(|o| {
            o.refs
                .iter()
                .filter_map(|r| slot.get(r).copied())
                .filter(|&i| kept[i])
                .collect()
        })
        .collect();
    let counts = dependency_counts(&refs, &kept);
    let mut parts: Vec<PreparedPart> = objects
        .into_iter()
        .zip(counts)
        .filter(|(o, _)| o.compatible)
        .map(|(o, nb_deps)| PreparedPart {
            json: o.json,
            nb_deps,
        })
        .collect();
    parts.sort_by_key(|p| p.nb_deps); // stable, as the generic splitter
    Split::Prepared(parts)
}

/// pycti's count for each kept object: 1 plus the counts of the kept objects it references,
/// a reference back into the walk counting 0; iterative, memoised, saturating (as
/// `split::deps`).
fn dependency_counts(refs: &[Vec<usize>], kept: &[bool]) -> Vec<usize> {
    const UNKNOWN: usize = usize::MAX;
    let mut memo = vec![UNKNOWN; refs.len()];
    let mut visiting = vec![false; refs.len()];
    for root in 0..refs.len() {
        if !kept[root] || memo[root] != UNKNOWN {
            continue;
        }
        // (object, next reference, count so far)
        let mut stack: Vec<(usize, usize, usize)> = vec![(root, 0, 1)];
        visiting[root] = true;
        while let Some(top) = stack.last_mut() {
            let (node, next) = (top.0, top.1);
            if let Some(&r) = refs[node].get(next) {
                top.1 += 1;
                if r == node {
                    continue;
                }
                if memo[r] != UNKNOWN {
                    top.2 = top.2.saturating_add(memo[r]);
                } else if !visiting[r] {
                    visiting[r] = true;
                    stack.push((r, 0, 1));
                } // else: a cycle, which counts 0.
                continue;
            }
            let (done, _, count) = stack.pop().unwrap_or((node, 0, 1));
            visiting[done] = false;
            memo[done] = count;
            if let Some(parent) = stack.last_mut() {
                parent.2 = parent.2.saturating_add(count);
            }
        }
    }
    memo
}

#[cfg(test)]
mod tests;
