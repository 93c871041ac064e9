//! The prepared splitter gives what the generic splitter gives, on any graph.
use proptest::prelude::*;
use serde_json::json;

use super::*;

/// A splitter's result: (object, nb_deps), in order.
type Parts = Vec<(Value, usize)>;

/// Both splitters' results.
fn both(objects: &[Value], cleanup: bool) -> (Parts, Parts) {
    let (generic, prepared, _) = both_and_path(objects, cleanup);
    (generic, prepared)
}

/// Both splitters' results, and whether the prepared one took its own path.
fn both_and_path(objects: &[Value], cleanup: bool) -> (Parts, Parts, bool) {
    let generic: Parts = split(objects.to_vec(), cleanup)
        .into_iter()
        .map(|s| (s.object, s.nb_deps))
        .collect();
    let prepared = split_prepared(objects.iter().map(Prepared::from_value).collect(), cleanup);
    let fast = matches!(prepared, Split::Prepared(_));
    let prepared = match prepared {
        Split::Prepared(parts) => parts
            .into_iter()
            .map(|p| (serde_json::from_str(&p.json).unwrap(), p.nb_deps))
            .collect(),
        Split::Generic(parts) => parts.into_iter().map(|s| (s.object, s.nb_deps)).collect(),
    };
    (generic, prepared, fast)
}

#[test]
fn an_ipsum_like_chunk_splits_alike_without_the_generic_path() {
    let author =
        json!({"type": "identity", "spec_version": "2.1", "id": "identity--1", "name": "IPsum"});
    let marking =
        json!({"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--2"});
    let mut objects = Vec::new();
    for i in 0..50 {
        let obs = format!("ipv4-addr--{i}");
        let ind = format!("indicator--{i}");
        objects.push(json!({"type": "ipv4-addr", "id": obs, "value": i, "object_marking_refs": ["marking-definition--2"], "x_opencti_created_by_ref": "identity--1"}));
        objects.push(json!({"type": "indicator", "id": ind, "created_by_ref": "identity--1", "object_marking_refs": ["marking-definition--2"]}));
        objects.push(json!({"type": "relationship", "id": format!("relationship--{i}"), "relationship_type": "based-on", "source_ref": ind, "target_ref": obs, "created_by_ref": "identity--1", "object_marking_refs": ["marking-definition--2"]}));
    }
    objects.push(author);
    objects.push(marking);
    let prepared: Vec<Prepared> = objects.iter().map(Prepared::from_value).collect();
    assert!(matches!(split_prepared(prepared, true), Split::Prepared(_)));
    let (generic, prepared) = both(&objects, true);
    assert_eq!(generic, prepared);
    assert_eq!(prepared[0].1, 1);
    assert_eq!(prepared.last().unwrap().1, 9);
}

#[test]
fn references_that_need_cleaning_take_the_generic_path() {
    let objects = vec![
        json!({"type": "indicator", "id": "indicator--1", "created_by_ref": "identity--absent", "object_marking_refs": ["indicator--1", "unknown-type--x"]}),
        json!({"type": "relationship", "id": "relationship--1", "source_ref": "indicator--1", "target_ref": null}),
    ];
    for cleanup in [true, false] {
        let prepared = objects.iter().map(Prepared::from_value).collect();
        assert!(matches!(
            split_prepared(prepared, cleanup),
            Split::Generic(_)
        ));
        let (generic, prepared) = both(&objects, cleanup);
        assert_eq!(generic, prepared);
    }
}

/// Ids from a small pool (so duplicates and cycles happen) of these types.
fn id(types: &'static [&'static str]) -> impl Strategy<Value = String> {
    (0..types.len(), 0..8usize).prop_map(move |(t, n)| format!("{}--{n}", types[t]))
}

const ANY: &[&str] = &["indicator", "ipv4-addr", "x-unknown"];
const SUPPORTED: &[&str] = &["indicator", "ipv4-addr"];

/// Objects referencing ids of `types`; `self_refs: false` drops references to themselves.
fn object(types: &'static [&'static str], self_refs: bool) -> impl Strategy<Value = Value> {
    (
        id(types),
        proptest::option::of(id(types)),
        proptest::collection::vec(id(types), 0..4),
        any::<bool>(),
        proptest::option::of(id(types)),
    )
        .prop_map(move |(id, created_by, mut refs, relationship, target)| {
            if !self_refs {
                refs.retain(|r| *r != id);
            }
            let mut o =
                json!({"id": id, "type": id.split("--").next().unwrap(), "object_refs": refs});
            if let Some(c) = created_by.filter(|c| self_refs || *c != id) {
                o["created_by_ref"] = json!(c);
            }
            if relationship {
                o["type"] = json!("relationship");
                o["id"] = json!(format!("relationship--{}", id.len()));
                o["source_ref"] = json!(id);
                o["target_ref"] = json!(target);
                o["nested"] = json!({"sample_ref": "indicator--1"});
            }
            o
        })
}

proptest! {
    #[test]
    fn any_graph_splits_as_the_generic_splitter_splits_it(
        objects in proptest::collection::vec(object(ANY, true), 0..24),
        cleanup in any::<bool>(),
    ) {
        let (generic, prepared) = both(&objects, cleanup);
        prop_assert_eq!(generic, prepared);
    }

    /// Graphs that need no cleaning (duplicates, cycles and references outside the bundle
    /// included) take the prepared path, and still split alike.
    #[test]
    fn clean_graphs_take_the_prepared_path_and_split_alike(
        objects in proptest::collection::vec(object(SUPPORTED, false), 0..24),
    ) {
        let (generic, prepared, fast) = both_and_path(&objects, false);
        prop_assert!(fast, "the generic path was taken");
        prop_assert_eq!(generic, prepared);
    }
}
