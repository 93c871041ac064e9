//! The splitter: pycti's order and dedup, unsupported and dangling objects, deep chains,
//! diamonds and cycles.

use super::*;
use serde_json::json;

#[test]
fn orders_by_dependencies_and_deduplicates() {
    let objects = vec![
        json!({"id": "relationship--1", "type": "relationship", "source_ref": "ipv4-addr--a", "target_ref": "location--c"}),
        json!({"id": "ipv4-addr--a", "type": "ipv4-addr", "object_marking_refs": ["marking-definition--m"]}),
        json!({"id": "marking-definition--m", "type": "marking-definition"}),
        json!({"id": "location--c", "type": "location"}),
        json!({"id": "location--c", "type": "location", "name": "later"}),
    ];
    let out = split(objects, false);
    let ids: Vec<_> = out
        .iter()
        .map(|s| (object_id(&s.object).unwrap().to_string(), s.nb_deps))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("marking-definition--m".into(), 1),
            ("location--c".into(), 1),
            ("ipv4-addr--a".into(), 2),
            ("relationship--1".into(), 4),
        ]
    );
    assert_eq!(out[1].object["name"], "later");
}

#[test]
fn drops_unsupported_and_dangling_objects() {
    let objects = vec![
        json!({"id": "x-unknown--1", "type": "x-unknown"}),
        json!({"id": "relationship--1", "type": "relationship", "source_ref": "ipv4-addr--a", "target_ref": "x-unknown--1"}),
        json!({"id": "relationship--2", "type": "relationship", "source_ref": "ipv4-addr--a", "target_ref": "location--gone"}),
        json!({"id": "ipv4-addr--a", "type": "ipv4-addr", "object_marking_refs": ["marking-definition--absent"]}),
    ];
    let kept: Vec<_> = split(objects.clone(), false)
        .into_iter()
        .map(|s| s.object["id"].clone())
        .collect();
    assert_eq!(kept, vec![json!("ipv4-addr--a"), json!("relationship--2")]);
    let cleaned = split(objects, true);
    assert_eq!(cleaned.len(), 1);
    assert_eq!(cleaned[0].object["object_marking_refs"], json!([]));
}

/// Runs `f` on a thread with a 2 MiB stack, as a tokio worker has.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .expect("no stack overflow, no panic")
}

#[test]
fn a_200k_deep_reference_chain_does_not_overflow_the_stack() {
    const DEPTH: usize = 200_000;
    let out = on_small_stack(|| {
        let objects = (0..DEPTH)
            .map(|i| json!({"id": format!("note--{i}"), "type": "note", "object_refs": [format!("note--{}", i + 1)]}))
            .collect();
        split(objects, false)
    });
    assert_eq!(out.len(), DEPTH);
    // The chain's end comes first, its head (which depends on all) last.
    assert_eq!(out[0].object["id"], format!("note--{}", DEPTH - 1));
    assert_eq!(out[DEPTH - 1].object["id"], "note--0");
    assert_eq!(out[DEPTH - 1].nb_deps, DEPTH);
}

#[test]
fn a_wide_diamond_graph_saturates_instead_of_overflowing() {
    // 200 layers of 3 notes, each referencing all three of the next layer: the counts
    // triple per layer, far past usize::MAX.
    const LAYERS: usize = 200;
    let out = on_small_stack(|| {
        let mut objects = Vec::new();
        for layer in 0..LAYERS {
            for k in 0..3 {
                let refs: Vec<String> = if layer + 1 < LAYERS {
                    (0..3).map(|j| format!("note--{}-{j}", layer + 1)).collect()
                } else {
                    Vec::new()
                };
                objects.push(json!({"id": format!("note--{layer}-{k}"), "type": "note", "object_refs": refs}));
            }
        }
        split(objects, false)
    });
    assert_eq!(out.len(), LAYERS * 3);
    assert_eq!(out[0].nb_deps, 1, "the last layer depends on nothing");
    assert_eq!(out.last().unwrap().nb_deps, usize::MAX);
}

#[test]
fn survives_reference_cycles() {
    let objects = vec![
        json!({"id": "note--1", "type": "note", "object_refs": ["note--2"]}),
        json!({"id": "note--2", "type": "note", "object_refs": ["note--1"]}),
    ];
    assert_eq!(split(objects, false).len(), 2);
}
