//! The [`Store`] contract, written once and run against every adapter.
//!
//! Each suite function takes the port, never an adapter, so a behaviour the
//! domain relies on is pinned for SQLite and DynamoDB alike. The `store_suite!`
//! invocation at the bottom turns every function into one test per adapter.
//!
//! `Gsi1` reads may lag writes on DynamoDB, so index reads go through
//! [`gsi1_all`], which waits for the expected count before asserting.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::ports::{Condition, Index, Item, Key, Position, Query, Store, StoreError, WriteOp, MAX_WRITE_OPS};
use ferry_embedded::SqliteStore;
use serde_json::{json, Value};

use crate::support::aws;

// ---------------------------------------------------------------------------
// helpers

fn item(pk: &str, sk: &str, body: Value) -> Item {
    Item::new(Key::new(pk, sk), body)
}

fn put(item: Item, condition: Condition) -> WriteOp {
    WriteOp::Put { item, condition }
}

fn delete(pk: &str, sk: &str, condition: Condition) -> WriteOp {
    WriteOp::Delete { key: Key::new(pk, sk), condition }
}

fn check(pk: &str, sk: &str, condition: Condition) -> WriteOp {
    WriteOp::Check { key: Key::new(pk, sk), condition }
}

async fn write_ok(store: &dyn Store, ops: Vec<WriteOp>) {
    if let Err(e) = store.write(ops).await {
        panic!("write failed on {}: {e:?}", store.backend_name());
    }
}

async fn get(store: &dyn Store, pk: &str, sk: &str) -> Option<Item> {
    match store.get(&Key::new(pk, sk)).await {
        Ok(item) => item,
        Err(e) => panic!("get {pk}/{sk} failed on {}: {e:?}", store.backend_name()),
    }
}

async fn must_get(store: &dyn Store, pk: &str, sk: &str) -> Item {
    match get(store, pk, sk).await {
        Some(item) => item,
        None => panic!("{pk}/{sk} is missing on {}", store.backend_name()),
    }
}

fn assert_condition_failed(result: Result<(), StoreError>, what: &str) {
    match result {
        Err(StoreError::ConditionFailed) => {}
        other => panic!("{what}: expected ConditionFailed, got {other:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

/// Every page of `query`, following `next` until it is absent.
async fn all_pages(store: &dyn Store, query: &Query) -> Vec<Vec<Item>> {
    let mut pages = Vec::new();
    let mut after: Option<Position> = None;
    loop {
        let q = query.clone().after(after.take());
        let page = match store.query(&q).await {
            Ok(page) => page,
            Err(e) => panic!("query {q:?} failed on {}: {e:?}", store.backend_name()),
        };
        assert!(page.items.len() <= query.limit as usize, "page larger than the limit: {}", page.items.len());
        if let Some(next) = &page.next {
            match query.index {
                Index::Primary => {
                    assert_eq!(next.index_key, None, "primary positions carry no index key")
                }
                Index::Gsi1 | Index::Gsi2 => assert!(next.index_key.is_some(), "index positions carry the index key"),
            }
        }
        pages.push(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return pages,
        }
        assert!(pages.len() <= 1000, "pagination does not terminate");
    }
}

async fn all_items(store: &dyn Store, query: &Query) -> Vec<Item> {
    all_pages(store, query).await.into_iter().flatten().collect()
}

fn sks(items: &[Item]) -> Vec<String> {
    items.iter().map(|i| i.key.sk.clone()).collect()
}

/// All items of a `Gsi1` query, retried until there are `expected` of them,
/// because the index may lag the writes (DynamoDB GSIs are eventually
/// consistent). The caller asserts on whatever came back last.
async fn gsi1_all(store: &dyn Store, query: &Query, expected: usize) -> Vec<Item> {
    let mut items = Vec::new();
    for _ in 0..50 {
        items = all_items(store, query).await;
        if items.len() == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    items
}

// ---------------------------------------------------------------------------
// single items and conditions

pub async fn put_then_get_roundtrips(store: &dyn Store) {
    assert!(!store.backend_name().is_empty());
    assert_eq!(get(store, "T#1", "CON#a").await, None, "missing key reads as None");

    let mut first = item("T#1", "CON#a", json!({"name": "a", "n": 1})).with_gsi1(Key::new("G#1", "2024-01-01"));
    first.version = 42; // ignored: the adapter owns versions
    write_ok(store, vec![put(first.clone(), Condition::None)]).await;
    let got = must_get(store, "T#1", "CON#a").await;
    assert_eq!(got.key, first.key);
    assert_eq!(got.gsi1, first.gsi1);
    assert_eq!(got.version, 1, "a new item starts at version 1");
    assert_eq!(got.expires_at, None);
    assert_eq!(got.body, first.body);

    // A replacement drops attributes the new item does not have.
    let second = item("T#1", "CON#a", json!({"name": "b"}));
    write_ok(store, vec![put(second.clone(), Condition::None)]).await;
    let got = must_get(store, "T#1", "CON#a").await;
    assert_eq!(got.version, 2);
    assert_eq!(got.gsi1, None);
    assert_eq!(got.body, json!({"name": "b"}));

    assert_eq!(get(store, "T#1", "CON#b").await, None);
    assert_eq!(get(store, "T#2", "CON#a").await, None);
}

pub async fn bodies_with_unicode_and_nesting_roundtrip(store: &dyn Store) {
    let body = json!({
        "name": "Fähre 🚢 渡し船",
        "empty": "",
        "quote\"key": "back\\slash\nnewline\ttab",
        "nested": {"list": [1, -2, 3.5, true, false, null, {"deep": ["x", {"deeper": {}}]}], "obj": {}},
        "big": 9_007_199_254_740_993_u64,
        "neg": -9_007_199_254_740_993_i64,
        "arr": [],
    });
    let pk = "T#ü";
    let sk = "CON#名前#🚢";
    write_ok(store, vec![put(item(pk, sk, body.clone()).with_gsi1(Key::new("G#ñ", "é#1")), Condition::NotExists)])
        .await;
    let got = must_get(store, pk, sk).await;
    assert_eq!(got.body, body);
    assert_eq!(got.key, Key::new(pk, sk));
    assert_eq!(got.gsi1, Some(Key::new("G#ñ", "é#1")));

    let listed = all_items(store, &Query::partition(Index::Primary, pk)).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].body, body);

    // Scalars and arrays are valid bodies too.
    for (i, body) in
        [json!("just a string"), json!([1, "two", {"3": 3}]), json!(0), json!(null)].into_iter().enumerate()
    {
        let sk = format!("S#{i}");
        write_ok(store, vec![put(item("T#scalars", &sk, body.clone()), Condition::None)]).await;
        assert_eq!(must_get(store, "T#scalars", &sk).await.body, body);
    }
}

pub async fn create_conflicts_when_key_exists(store: &dyn Store) {
    write_ok(store, vec![put(item("T#1", "U#alice", json!({"who": "first"})), Condition::NotExists)]).await;
    assert_condition_failed(
        store.write(vec![put(item("T#1", "U#alice", json!({"who": "second"})), Condition::NotExists)]).await,
        "second create of the same key",
    );
    let got = must_get(store, "T#1", "U#alice").await;
    assert_eq!(got.body, json!({"who": "first"}), "the losing create wrote nothing");
    assert_eq!(got.version, 1);
}

pub async fn version_condition_detects_concurrent_update(store: &dyn Store) {
    write_ok(store, vec![put(item("T#1", "C#1", json!({"n": 0})), Condition::NotExists)]).await;
    let seen_by_a = must_get(store, "T#1", "C#1").await;
    let seen_by_b = must_get(store, "T#1", "C#1").await;

    write_ok(store, vec![put(item("T#1", "C#1", json!({"n": "a"})), Condition::VersionIs(seen_by_a.version))]).await;
    assert_condition_failed(
        store.write(vec![put(item("T#1", "C#1", json!({"n": "b"})), Condition::VersionIs(seen_by_b.version))]).await,
        "update based on a stale version",
    );
    let got = must_get(store, "T#1", "C#1").await;
    assert_eq!(got.body, json!({"n": "a"}));
    assert_eq!(got.version, 2);

    write_ok(store, vec![put(item("T#1", "C#1", json!({"n": "b"})), Condition::VersionIs(2))]).await;
    assert_eq!(must_get(store, "T#1", "C#1").await.version, 3);

    assert_condition_failed(
        store.write(vec![put(item("T#1", "C#missing", json!({})), Condition::VersionIs(1))]).await,
        "VersionIs on a missing key",
    );
    assert_eq!(get(store, "T#1", "C#missing").await, None);
}

pub async fn exists_condition(store: &dyn Store) {
    assert_condition_failed(
        store.write(vec![put(item("T#1", "K#1", json!({"v": 1})), Condition::Exists)]).await,
        "Exists on a missing key",
    );
    assert_eq!(get(store, "T#1", "K#1").await, None, "a failed Exists put creates nothing");

    write_ok(store, vec![put(item("T#1", "K#1", json!({"v": 1})), Condition::NotExists)]).await;
    write_ok(store, vec![put(item("T#1", "K#1", json!({"v": 2})), Condition::Exists)]).await;
    let got = must_get(store, "T#1", "K#1").await;
    assert_eq!(got.body, json!({"v": 2}));
    assert_eq!(got.version, 2);
}

pub async fn delete_with_condition(store: &dyn Store) {
    write_ok(store, vec![delete("T#1", "D#never", Condition::None)]).await;
    assert_condition_failed(
        store.write(vec![delete("T#1", "D#never", Condition::Exists)]).await,
        "Exists delete of a missing key",
    );
    assert_condition_failed(
        store.write(vec![delete("T#1", "D#never", Condition::VersionIs(1))]).await,
        "VersionIs delete of a missing key",
    );
    write_ok(store, vec![delete("T#1", "D#never", Condition::NotExists)]).await;

    write_ok(store, vec![put(item("T#1", "D#1", json!({})), Condition::NotExists)]).await;
    write_ok(store, vec![put(item("T#1", "D#1", json!({"v": 2})), Condition::None)]).await;
    assert_condition_failed(
        store.write(vec![delete("T#1", "D#1", Condition::VersionIs(1))]).await,
        "delete with a stale version",
    );
    assert_condition_failed(
        store.write(vec![delete("T#1", "D#1", Condition::NotExists)]).await,
        "NotExists delete of an existing key",
    );
    assert_eq!(must_get(store, "T#1", "D#1").await.version, 2, "failed deletes delete nothing");

    write_ok(store, vec![delete("T#1", "D#1", Condition::VersionIs(2))]).await;
    assert_eq!(get(store, "T#1", "D#1").await, None);

    // A re-created item is new: its version starts over.
    write_ok(store, vec![put(item("T#1", "D#1", json!({"again": true})), Condition::NotExists)]).await;
    assert_eq!(must_get(store, "T#1", "D#1").await.version, 1);

    write_ok(store, vec![delete("T#1", "D#1", Condition::Exists)]).await;
    assert_eq!(get(store, "T#1", "D#1").await, None);
}

pub async fn check_op_without_write(store: &dyn Store) {
    write_ok(store, vec![put(item("T#1", "PARENT", json!({"p": 1})), Condition::NotExists)]).await;

    // A check alone succeeds or fails without touching the item.
    write_ok(store, vec![check("T#1", "PARENT", Condition::VersionIs(1))]).await;
    write_ok(store, vec![check("T#1", "PARENT", Condition::Exists)]).await;
    write_ok(store, vec![check("T#1", "NOBODY", Condition::NotExists)]).await;
    assert_condition_failed(
        store.write(vec![check("T#1", "PARENT", Condition::NotExists)]).await,
        "NotExists check of an existing key",
    );
    assert_condition_failed(
        store.write(vec![check("T#1", "NOBODY", Condition::Exists)]).await,
        "Exists check of a missing key",
    );

    // Guarding a write with a check on another key.
    write_ok(
        store,
        vec![check("T#1", "PARENT", Condition::Exists), put(item("T#1", "CHILD#1", json!({})), Condition::NotExists)],
    )
    .await;
    assert_condition_failed(
        store
            .write(vec![
                check("T#1", "PARENT", Condition::VersionIs(7)),
                put(item("T#1", "CHILD#2", json!({})), Condition::None),
            ])
            .await,
        "write guarded by a failing check",
    );
    assert_eq!(get(store, "T#1", "CHILD#2").await, None, "the guarded write did not happen");
    let parent = must_get(store, "T#1", "PARENT").await;
    assert_eq!(parent.version, 1, "checks never bump the version");
    assert_eq!(parent.body, json!({"p": 1}));
    assert!(get(store, "T#1", "CHILD#1").await.is_some());
}

// ---------------------------------------------------------------------------
// batches

pub async fn batch_is_atomic_when_one_condition_fails(store: &dyn Store) {
    write_ok(store, vec![put(item("T#1", "A", json!({"a": 1})), Condition::NotExists)]).await;
    write_ok(store, vec![put(item("T#1", "GONE", json!({})), Condition::NotExists)]).await;

    let batch = |last: WriteOp| {
        vec![
            put(item("T#1", "B", json!({"b": 1})), Condition::NotExists),
            put(item("T#1", "A", json!({"a": 2})), Condition::VersionIs(1)),
            delete("T#1", "GONE", Condition::Exists),
            last,
        ]
    };
    // The failing op comes last, so an adapter that applies ops one by one is caught.
    assert_condition_failed(
        store.write(batch(check("T#1", "C", Condition::Exists))).await,
        "batch with one failing condition",
    );
    assert_eq!(get(store, "T#1", "B").await, None, "no put of a failed batch");
    let a = must_get(store, "T#1", "A").await;
    assert_eq!((a.version, a.body), (1, json!({"a": 1})), "no update of a failed batch");
    assert!(get(store, "T#1", "GONE").await.is_some(), "no delete of a failed batch");

    write_ok(store, batch(put(item("T#1", "C", json!({"c": 1})), Condition::NotExists))).await;
    assert_eq!(must_get(store, "T#1", "B").await.version, 1);
    let a = must_get(store, "T#1", "A").await;
    assert_eq!((a.version, a.body), (2, json!({"a": 2})));
    assert_eq!(get(store, "T#1", "GONE").await, None);
    assert_eq!(must_get(store, "T#1", "C").await.body, json!({"c": 1}));
}

pub async fn batch_rejects_duplicate_keys(store: &dyn Store) {
    assert_invalid(
        store
            .write(vec![
                put(item("T#1", "X", json!({"n": 1})), Condition::None),
                put(item("T#1", "X", json!({"n": 2})), Condition::None),
            ])
            .await,
        "two puts of one key",
    );
    assert_invalid(
        store
            .write(vec![check("T#1", "X", Condition::NotExists), put(item("T#1", "X", json!({})), Condition::None)])
            .await,
        "a check and a put of one key",
    );
    assert_invalid(
        store
            .write(vec![
                put(item("T#1", "Y", json!({})), Condition::None),
                delete("T#1", "X", Condition::None),
                delete("T#1", "X", Condition::None),
            ])
            .await,
        "two deletes of one key",
    );
    assert_eq!(get(store, "T#1", "X").await, None, "a rejected batch writes nothing");
    assert_eq!(get(store, "T#1", "Y").await, None, "a rejected batch writes nothing");

    // The same sort key in two partitions is two keys.
    write_ok(
        store,
        vec![
            put(item("T#1", "X", json!({})), Condition::NotExists),
            put(item("T#2", "X", json!({})), Condition::NotExists),
        ],
    )
    .await;
}

pub async fn batch_size_limits(store: &dyn Store) {
    assert_invalid(store.write(Vec::new()).await, "an empty batch");

    let ops = |n: usize, prefix: &str| -> Vec<WriteOp> {
        (0..n)
            .map(|i| put(item("T#batch", &format!("{prefix}#{i:03}"), json!({"i": i})), Condition::NotExists))
            .collect()
    };
    assert_invalid(store.write(ops(MAX_WRITE_OPS + 1, "over")).await, "a batch over the limit");
    let written = all_items(store, &Query::partition(Index::Primary, "T#batch").limit(1000)).await;
    assert!(written.is_empty(), "a rejected batch writes nothing");

    write_ok(store, ops(MAX_WRITE_OPS, "max")).await;
    let written = all_items(store, &Query::partition(Index::Primary, "T#batch").limit(1000)).await;
    assert_eq!(written.len(), MAX_WRITE_OPS);
    assert!(written.iter().all(|i| i.version == 1));
}

// ---------------------------------------------------------------------------
// queries

pub async fn query_prefix_and_order(store: &dyn Store) {
    let keys =
        ["a", "a#", "a#1", "a#10", "a#2", "a#é", "a#\u{10FFFF}", "a$", "ab", "b#1", "100%_x", "100%y", "100ab", "100_"];
    let ops = keys.iter().map(|sk| put(item("P#1", sk, json!({"sk": sk})), Condition::NotExists)).collect();
    write_ok(store, ops).await;
    // Another partition with overlapping sort keys must never show up.
    write_ok(
        store,
        vec![put(item("P#2", "a#1", json!({})), Condition::None), put(item("P#", "a#3", json!({})), Condition::None)],
    )
    .await;

    let mut all_sorted: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    // Sort keys order by their UTF-8 bytes, which is Rust's `str` order.
    all_sorted.sort();

    let run = |prefix: Option<&str>, ascending: bool| {
        let mut q = Query::partition(Index::Primary, "P#1");
        if let Some(p) = prefix {
            q = q.prefix(p);
        }
        if !ascending {
            q = q.descending();
        }
        q
    };
    let expect = |prefix: &str, ascending: bool| -> Vec<String> {
        let mut v: Vec<String> = all_sorted.iter().filter(|s| s.starts_with(prefix)).cloned().collect();
        if !ascending {
            v.reverse();
        }
        v
    };

    let page = store.query(&run(None, true)).await.expect("query all");
    assert_eq!(sks(&page.items), all_sorted);
    assert!(page.next.is_none(), "everything fit into one page");
    let page = store.query(&run(None, false)).await.expect("query all descending");
    assert_eq!(sks(&page.items), expect("", false));

    for prefix in ["a#", "a", "a#1", "100%_", "100%", "100_", "b#1", "a#\u{10FFFF}", "zzz", ""] {
        for ascending in [true, false] {
            let page = store.query(&run(Some(prefix), ascending)).await.expect("prefix query");
            assert_eq!(sks(&page.items), expect(prefix, ascending), "prefix {prefix:?}, ascending {ascending}");
            assert!(page.next.is_none());
            assert!(page.items.iter().all(|i| i.key.pk == "P#1"));
        }
    }

    let page = store.query(&run(Some("a#"), true)).await.expect("query");
    let first = &page.items[0];
    assert_eq!(first.body, json!({"sk": "a#"}), "query returns whole items");
    assert_eq!(first.version, 1);
}

pub async fn query_limit_bounds(store: &dyn Store) {
    write_ok(store, vec![put(item("L#1", "x", json!({})), Condition::None)]).await;
    for index in [Index::Primary, Index::Gsi1] {
        assert_invalid(store.query(&Query::partition(index, "L#1").limit(0)).await, "limit 0");
        assert_invalid(store.query(&Query::partition(index, "L#1").limit(1001)).await, "limit 1001");
        assert_invalid(store.query(&Query::partition(index, "L#1").limit(u32::MAX)).await, "limit u32::MAX");
    }
    let page = store.query(&Query::partition(Index::Primary, "L#1").limit(1000)).await.expect("limit 1000");
    assert_eq!(page.items.len(), 1);
    let page = store.query(&Query::partition(Index::Primary, "L#1").limit(1)).await.expect("limit 1");
    assert_eq!(page.items.len(), 1);
    let page = store.query(&Query::partition(Index::Primary, "L#empty")).await.expect("empty partition");
    assert!(page.items.is_empty());
    assert!(page.next.is_none());
}

pub async fn query_pagination_visits_every_item_once(store: &dyn Store) {
    const N: usize = 25;
    let ops =
        (0..N).map(|i| put(item("PG#1", &format!("item#{i:03}"), json!({"i": i})), Condition::NotExists)).collect();
    write_ok(store, ops).await;
    // Neighbours outside the prefix, before and after it, must not leak in.
    write_ok(
        store,
        vec![
            put(item("PG#1", "item", json!({})), Condition::None),
            put(item("PG#1", "itemz", json!({})), Condition::None),
            put(item("PG#1", "a", json!({})), Condition::None),
            put(item("PG#1", "z", json!({})), Condition::None),
        ],
    )
    .await;
    let expected: Vec<String> = (0..N).map(|i| format!("item#{i:03}")).collect();

    for ascending in [true, false] {
        for limit in [7u32, 5, 1, 25, 1000] {
            let mut q = Query::partition(Index::Primary, "PG#1").prefix("item#").limit(limit);
            if !ascending {
                q = q.descending();
            }
            let pages = all_pages(store, &q).await;
            let got: Vec<String> = pages.iter().flat_map(|p| sks(p)).collect();
            let mut want = expected.clone();
            if !ascending {
                want.reverse();
            }
            assert_eq!(got, want, "limit {limit}, ascending {ascending}");
            // Only the last page may be short (possibly empty when `next` was a maybe).
            let full_pages = pages.len().saturating_sub(1);
            assert!(pages[..full_pages].iter().all(|p| p.len() == limit as usize), "limit {limit}: {pages:?}");
            assert!(pages.len() <= N.div_ceil(limit as usize) + 1, "limit {limit}: too many pages");
        }
    }

    // With limit 7 the exact page shape is known: 7, 7, 7, 4 and no `next` after the short page.
    let q = Query::partition(Index::Primary, "PG#1").prefix("item#").limit(7);
    let first = store.query(&q).await.expect("page 1");
    assert_eq!(first.items.len(), 7);
    let next = first.next.clone().expect("more items follow the first page");
    assert_eq!(next.key, Key::new("PG#1", "item#006"), "the position is the last item's key");
    assert_eq!(next.index_key, None);
    let lens: Vec<usize> = all_pages(store, &q).await.iter().map(Vec::len).collect();
    assert!(lens == [7, 7, 7, 4] || lens == [7, 7, 7, 4, 0], "{lens:?}");

    // The position keeps working after the item it names is deleted.
    write_ok(store, vec![delete("PG#1", "item#006", Condition::Exists)]).await;
    let second = store.query(&q.clone().after(Some(next))).await.expect("page 2");
    assert_eq!(sks(&second.items)[0], "item#007");
}

pub async fn gsi1_query_and_pagination(store: &dyn Store) {
    // Items spread over several tenants share one index partition; many share a
    // g1sk, so the adapters must paginate through ties without loss.
    const N: usize = 23;
    let mut ops = Vec::new();
    for i in 0..N {
        let g1sk = format!("2024-01-0{}#run", i % 4);
        ops.push(put(
            item(&format!("T#{}", i % 3), &format!("RUN#{i:02}"), json!({"i": i}))
                .with_gsi1(Key::new("STATUS#failed", g1sk)),
            Condition::NotExists,
        ));
    }
    ops.push(put(
        item("T#0", "RUN#other", json!({})).with_gsi1(Key::new("STATUS#ok", "2024-01-00#run")),
        Condition::NotExists,
    ));
    ops.push(put(
        item("T#0", "RUN#prefix", json!({})).with_gsi1(Key::new("STATUS#failed", "2023-12-31#run")),
        Condition::NotExists,
    ));
    write_ok(store, ops).await;

    for ascending in [true, false] {
        for limit in [4u32, 1, 1000] {
            let mut q = Query::partition(Index::Gsi1, "STATUS#failed").prefix("2024-").limit(limit);
            if !ascending {
                q = q.descending();
            }
            let items = gsi1_all(store, &q, N).await;
            let mut seen = HashSet::new();
            for it in &items {
                assert!(
                    seen.insert(it.key.clone()),
                    "{:?} returned twice (limit {limit}, ascending {ascending})",
                    it.key
                );
                let g = it.gsi1.as_ref().expect("gsi1 query returns indexed items");
                assert_eq!(g.pk, "STATUS#failed");
                assert!(g.sk.starts_with("2024-"));
            }
            assert_eq!(items.len(), N, "limit {limit}, ascending {ascending}");
            let g1sks: Vec<&str> = items.iter().filter_map(|i| i.gsi1.as_ref()).map(|g| g.sk.as_str()).collect();
            let mut sorted = g1sks.clone();
            sorted.sort();
            if !ascending {
                sorted.reverse();
            }
            assert_eq!(g1sks, sorted, "items come in g1sk order (limit {limit}, ascending {ascending})");
            let first = items.first().expect("items");
            assert!(first.body.get("i").is_some(), "gsi1 queries return whole items");
            assert_eq!(first.version, 1);
        }
    }

    // Without a prefix, the whole index partition.
    let all = gsi1_all(store, &Query::partition(Index::Gsi1, "STATUS#failed"), N + 1).await;
    assert_eq!(all.len(), N + 1);
    assert_eq!(all[0].key.sk, "RUN#prefix");
    let ok = gsi1_all(store, &Query::partition(Index::Gsi1, "STATUS#ok"), 1).await;
    assert_eq!(sks(&ok), ["RUN#other"]);

    // The position of a gsi1 page names both keys of its last item.
    let q = Query::partition(Index::Gsi1, "STATUS#failed").limit(3);
    let page = store.query(&q).await.expect("page");
    if let Some(next) = page.next {
        let last = page.items.last().expect("a page with a next position has items");
        assert_eq!(next.key, last.key);
        assert_eq!(next.index_key, last.gsi1);
    }
}

pub async fn items_without_gsi1_are_not_indexed(store: &dyn Store) {
    write_ok(
        store,
        vec![
            put(item("T#1", "A", json!({})).with_gsi1(Key::new("IDX", "1")), Condition::NotExists),
            put(item("T#1", "B", json!({})), Condition::NotExists),
            // An index partition named like a primary partition is still separate.
            put(item("IDX", "C", json!({})), Condition::NotExists),
        ],
    )
    .await;
    let items = gsi1_all(store, &Query::partition(Index::Gsi1, "IDX"), 1).await;
    assert_eq!(sks(&items), ["A"]);
    let items = gsi1_all(store, &Query::partition(Index::Gsi1, "T#1"), 0).await;
    assert!(items.is_empty(), "primary partitions are not index partitions: {items:?}");

    // Dropping the gsi1 key on replace removes the item from the index.
    write_ok(store, vec![put(item("T#1", "A", json!({"v": 2})), Condition::Exists)]).await;
    let items = gsi1_all(store, &Query::partition(Index::Gsi1, "IDX"), 0).await;
    assert!(items.is_empty(), "{items:?}");
    // ...and adding one puts it in.
    write_ok(store, vec![put(item("T#1", "B", json!({})).with_gsi1(Key::new("IDX", "2")), Condition::Exists)]).await;
    let items = gsi1_all(store, &Query::partition(Index::Gsi1, "IDX"), 1).await;
    assert_eq!(sks(&items), ["B"]);
    // Moving an item to another index partition removes it from the old one.
    write_ok(store, vec![put(item("T#1", "B", json!({})).with_gsi1(Key::new("IDX2", "2")), Condition::Exists)]).await;
    assert!(gsi1_all(store, &Query::partition(Index::Gsi1, "IDX"), 0).await.is_empty());
    assert_eq!(sks(&gsi1_all(store, &Query::partition(Index::Gsi1, "IDX2"), 1).await), ["B"]);
    // Deleted items leave the index.
    write_ok(store, vec![delete("T#1", "B", Condition::Exists)]).await;
    assert!(gsi1_all(store, &Query::partition(Index::Gsi1, "IDX2"), 0).await.is_empty());
}

pub async fn gsi2_is_a_second_index_beside_gsi1(store: &dyn Store) {
    // One item in both indexes, one in each, one in neither.
    write_ok(
        store,
        vec![
            put(
                item("T#a#JOB#1", "RUN#1", json!({"n": 1}))
                    .with_gsi1(Key::new("T#a#RUNS", "2024-05-01#1"))
                    .with_gsi2(Key::new("RUNS", "2024-05-01#1")),
                Condition::NotExists,
            ),
            put(
                item("T#b#JOB#2", "RUN#2", json!({"n": 2})).with_gsi2(Key::new("RUNS", "2024-05-02#2")),
                Condition::NotExists,
            ),
            put(
                item("T#a#JOB#3", "RUN#3", json!({"n": 3})).with_gsi1(Key::new("T#a#RUNS", "2024-05-03#3")),
                Condition::NotExists,
            ),
            put(item("T#a#JOB#4", "RUN#4", json!({"n": 4})), Condition::NotExists),
        ],
    )
    .await;
    let both = must_get(store, "T#a#JOB#1", "RUN#1").await;
    assert_eq!(both.gsi1, Some(Key::new("T#a#RUNS", "2024-05-01#1")));
    assert_eq!(both.gsi2, Some(Key::new("RUNS", "2024-05-01#1")));

    let platform = gsi1_all(store, &Query::partition(Index::Gsi2, "RUNS").descending(), 2).await;
    assert_eq!(sks(&platform), ["RUN#2", "RUN#1"], "gsi2 in descending g2sk order");
    assert_eq!(platform[0].body, json!({"n": 2}), "gsi2 queries return whole items");
    let tenant = gsi1_all(store, &Query::partition(Index::Gsi1, "T#a#RUNS"), 2).await;
    assert_eq!(sks(&tenant), ["RUN#1", "RUN#3"]);

    // Pages of gsi2 name the item's gsi2 key, and a gsi1 position is refused there.
    let page = store.query(&Query::partition(Index::Gsi2, "RUNS").limit(1)).await.expect("page");
    let next = page.next.expect("a second page");
    assert_eq!(next.index_key, page.items[0].gsi2);
    let rest = store.query(&Query::partition(Index::Gsi2, "RUNS").limit(1).after(Some(next))).await.expect("page 2");
    assert_eq!(sks(&rest.items), ["RUN#2"]);
    let primary_position = Position { key: Key::new("T#a#JOB#1", "RUN#1"), index_key: None };
    assert_invalid(
        store.query(&Query::partition(Index::Gsi2, "RUNS").after(Some(primary_position))).await,
        "a primary position on gsi2",
    );

    // Replacing without a gsi2 key takes the item out of gsi2 only.
    write_ok(
        store,
        vec![put(
            item("T#a#JOB#1", "RUN#1", json!({"n": 1})).with_gsi1(Key::new("T#a#RUNS", "2024-05-01#1")),
            Condition::Exists,
        )],
    )
    .await;
    assert_eq!(sks(&gsi1_all(store, &Query::partition(Index::Gsi2, "RUNS"), 1).await), ["RUN#2"]);
    assert_eq!(gsi1_all(store, &Query::partition(Index::Gsi1, "T#a#RUNS"), 2).await.len(), 2);
    write_ok(store, vec![delete("T#b#JOB#2", "RUN#2", Condition::Exists)]).await;
    assert!(gsi1_all(store, &Query::partition(Index::Gsi2, "RUNS"), 0).await.is_empty());
}

pub async fn sort_key_ranges_bound_queries_on_every_index(store: &dyn Store) {
    let mut ops = Vec::new();
    for day in 1..=9 {
        let sk = format!("2024-05-0{day}#r{day}");
        ops.push(put(
            item("T#r", &format!("RUN#{day}"), json!({"day": day}))
                .with_gsi1(Key::new("T#r#RUNS", sk.clone()))
                .with_gsi2(Key::new("RUNS#r", sk.clone())),
            Condition::NotExists,
        ));
        ops.push(put(item("P#r", &sk, json!({"day": day})), Condition::NotExists));
    }
    write_ok(store, ops).await;
    let days = |items: &[Item]| -> Vec<i64> { items.iter().filter_map(|i| i.body["day"].as_i64()).collect() };
    for (index, pk) in [(Index::Primary, "P#r"), (Index::Gsi1, "T#r#RUNS"), (Index::Gsi2, "RUNS#r")] {
        // Bounds are inclusive; a bare date sorts before that day's keys, so
        // [05-03, 05-07] holds days 3 to 6.
        let between = Query::partition(index, pk).between(Some("2024-05-03".into()), Some("2024-05-07".into()));
        for limit in [1u32, 2, 100] {
            let up = gsi1_all(store, &between.clone().limit(limit), 4).await;
            assert_eq!(days(&up), [3, 4, 5, 6], "{index:?} ascending, limit {limit}");
            let down = gsi1_all(store, &between.clone().limit(limit).descending(), 4).await;
            assert_eq!(days(&down), [6, 5, 4, 3], "{index:?} descending, limit {limit}");
        }
        let from = Query::partition(index, pk).between(Some("2024-05-08".into()), None);
        assert_eq!(days(&gsi1_all(store, &from, 2).await), [8, 9], "{index:?} lower bound only");
        let to = Query::partition(index, pk).between(None, Some("2024-05-02#r2".into())).descending();
        assert_eq!(days(&gsi1_all(store, &to, 2).await), [2, 1], "{index:?} upper bound only, inclusive");
        let crossed = Query::partition(index, pk).between(Some("2024-05-07".into()), Some("2024-05-03".into()));
        assert!(all_items(store, &crossed).await.is_empty(), "{index:?} crossed bounds hold nothing");
        let both = Query::partition(index, pk).prefix("2024-").between(Some("2024-05-03".into()), None);
        assert_invalid(store.query(&both).await, "a prefix with a range");
        // A position outside the range is not this query's.
        let outside = all_items(store, &Query::partition(index, pk).prefix("2024-05-09")).await;
        let position = outside.first().map(|i| i.position(index)).expect("day 9");
        assert_invalid(store.query(&between.clone().after(Some(position))).await, "a position outside the range");
    }
}

pub async fn partitions_are_isolated(store: &dyn Store) {
    // "T#1" is a string prefix of "T#10": a prefix scan on pk would leak.
    write_ok(
        store,
        vec![
            put(item("T#1", "CON#x", json!({"t": 1})).with_gsi1(Key::new("G#1", "CON#x")), Condition::NotExists),
            put(item("T#10", "CON#x", json!({"t": 10})).with_gsi1(Key::new("G#10", "CON#x")), Condition::NotExists),
            put(item("T#", "CON#x", json!({"t": 0})).with_gsi1(Key::new("G#", "CON#x")), Condition::NotExists),
        ],
    )
    .await;
    for (pk, g, t) in [("T#1", "G#1", 1), ("T#10", "G#10", 10), ("T#", "G#", 0)] {
        assert_eq!(must_get(store, pk, "CON#x").await.body, json!({"t": t}));
        for q in [Query::partition(Index::Primary, pk), Query::partition(Index::Primary, pk).prefix("CON#")] {
            let items = all_items(store, &q).await;
            assert_eq!(items.len(), 1, "{pk}: {items:?}");
            assert_eq!(items[0].key.pk, pk);
        }
        let items = gsi1_all(store, &Query::partition(Index::Gsi1, g).prefix("CON#"), 1).await;
        assert_eq!(items.len(), 1, "{g}: {items:?}");
        assert_eq!(items[0].key.pk, pk);
    }
    assert!(all_items(store, &Query::partition(Index::Primary, "T")).await.is_empty());

    // Conditions and deletes are per key, too.
    write_ok(store, vec![delete("T#1", "CON#x", Condition::VersionIs(1))]).await;
    assert!(get(store, "T#10", "CON#x").await.is_some());
    assert!(get(store, "T#", "CON#x").await.is_some());
}

pub async fn expires_at_roundtrip(store: &dyn Store) {
    let far = 4_102_444_800; // 2100-01-01, so no TTL sweeper ever removes it
    write_ok(
        store,
        vec![put(
            item("T#1", "SESSION#1", json!({"s": 1})).with_expiry(far).with_gsi1(Key::new("EXP", "1")),
            Condition::NotExists,
        )],
    )
    .await;
    let got = must_get(store, "T#1", "SESSION#1").await;
    assert_eq!(got.expires_at, Some(far));
    let listed = all_items(store, &Query::partition(Index::Primary, "T#1")).await;
    assert_eq!(listed[0].expires_at, Some(far));
    let indexed = gsi1_all(store, &Query::partition(Index::Gsi1, "EXP"), 1).await;
    assert_eq!(indexed.first().and_then(|i| i.expires_at), Some(far));

    write_ok(
        store,
        vec![put(item("T#1", "SESSION#1", json!({"s": 2})).with_expiry(far + 60), Condition::VersionIs(1))],
    )
    .await;
    assert_eq!(must_get(store, "T#1", "SESSION#1").await.expires_at, Some(far + 60));

    // A replacement without expiry makes the item permanent again.
    write_ok(store, vec![put(item("T#1", "SESSION#1", json!({"s": 3})), Condition::VersionIs(2))]).await;
    let got = must_get(store, "T#1", "SESSION#1").await;
    assert_eq!(got.expires_at, None);
    assert_eq!(got.version, 3);
}

// ---------------------------------------------------------------------------
// concurrency

pub async fn concurrent_creates_of_one_key_have_one_winner(store: Arc<dyn Store>) {
    const TASKS: usize = 20;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let result =
                store.write(vec![put(item("T#race", "CLAIM", json!({"winner": i})), Condition::NotExists)]).await;
            (i, result)
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.expect("task panicked");
        match result {
            Ok(()) => winners.push(i),
            Err(StoreError::ConditionFailed) => {}
            Err(e) => panic!("task {i}: unexpected error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins: {winners:?}");
    let got = must_get(&*store, "T#race", "CLAIM").await;
    assert_eq!(got.body, json!({"winner": winners[0]}));
    assert_eq!(got.version, 1);
}

pub async fn concurrent_version_updates_lose_none(store: Arc<dyn Store>) {
    const TASKS: u64 = 12;
    write_ok(&*store, vec![put(item("T#race", "COUNTER", json!({"n": 0})), Condition::NotExists)]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for _attempt in 0..2000 {
                let current = must_get(&*store, "T#race", "COUNTER").await;
                let n = current.body["n"].as_u64().expect("counter is a number");
                let next = item("T#race", "COUNTER", json!({"n": n + 1, "last": t}));
                match store.write(vec![put(next, Condition::VersionIs(current.version))]).await {
                    Ok(()) => return,
                    Err(StoreError::ConditionFailed) => tokio::task::yield_now().await,
                    Err(e) => panic!("task {t}: unexpected error {e:?}"),
                }
            }
            panic!("task {t} never won its update");
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("task panicked");
    }
    let got = must_get(&*store, "T#race", "COUNTER").await;
    assert_eq!(got.body["n"], json!(TASKS), "every increment survived");
    assert_eq!(got.version, TASKS + 1);
}

/// Many writes at once, some of whose conditions fail: each caller gets the
/// result of its own conditions (the SQLite adapter commits concurrent writes
/// together, so one failing must not fail or leak into the others), and a
/// write that fails leaves none of its items behind.
pub async fn concurrent_writes_each_get_their_own_result(store: Arc<dyn Store>) {
    const TASKS: usize = 32;
    write_ok(&*store, vec![put(item("T#mix", "TAKEN", json!({})), Condition::NotExists)]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let new = |name: &str| put(item("T#mix", &format!("{name}-{i}"), json!({"i": i})), Condition::NotExists);
            let ops = match i % 4 {
                0 => vec![new("ONE")],
                1 => vec![put(item("T#mix", "TAKEN", json!({"i": i})), Condition::NotExists)],
                2 => vec![new("ONE"), put(item("T#mix", "TAKEN", json!({"i": i})), Condition::NotExists)],
                _ => vec![new("ONE"), new("TWO"), check("T#mix", "TAKEN", Condition::Exists)],
            };
            (i, store.write(ops).await)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.expect("task panicked");
        match (i % 4, result) {
            (0 | 3, Ok(())) | (1 | 2, Err(StoreError::ConditionFailed)) => {}
            (_, other) => panic!("write {i} on {}: unexpected {other:?}", store.backend_name()),
        }
    }
    for i in 0..TASKS {
        let one = get(&*store, "T#mix", &format!("ONE-{i}")).await;
        assert_eq!(one.is_some(), i % 4 == 0 || i % 4 == 3, "ONE-{i}: only writes whose conditions held are stored");
        let two = get(&*store, "T#mix", &format!("TWO-{i}")).await;
        assert_eq!(two.is_some(), i % 4 == 3, "TWO-{i}");
    }
    assert_eq!(must_get(&*store, "T#mix", "TAKEN").await.version, 1, "no failed create touched the taken key");
}

// ---------------------------------------------------------------------------
// adapters

fn sqlite_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    // A file, not `in_memory`, so WAL and the file locking paths are exercised.
    let store = SqliteStore::open(&dir.path().join("ferry.db")).expect("open sqlite store");
    (dir, store)
}

/// `plain` suites take `&dyn Store`; `concurrent` ones take `Arc<dyn Store>`
/// (their tasks outlive the borrow) and run on a multi-threaded runtime.
macro_rules! store_suite {
    ($($kind:ident $suite:ident => $sqlite:ident, $dynamodb:ident;)*) => {
        $(store_suite!(@one $kind $suite => $sqlite, $dynamodb);)*
    };
    (@one plain $suite:ident => $sqlite:ident, $dynamodb:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            let (_dir, store) = sqlite_store();
            $suite(&store).await;
        }

        #[tokio::test]
        async fn $dynamodb() {
            let Some(store) = aws::dynamo_store().await else { return };
            $suite(&store).await;
        }
    };
    (@one concurrent $suite:ident => $sqlite:ident, $dynamodb:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let (_dir, store) = sqlite_store();
            $suite(Arc::new(store)).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $dynamodb() {
            let Some(store) = aws::dynamo_store().await else { return };
            $suite(Arc::new(store)).await;
        }
    };
}

store_suite! {
    plain put_then_get_roundtrips => sqlite_put_then_get_roundtrips, dynamodb_put_then_get_roundtrips;
    plain bodies_with_unicode_and_nesting_roundtrip =>
        sqlite_bodies_with_unicode_and_nesting_roundtrip, dynamodb_bodies_with_unicode_and_nesting_roundtrip;
    plain create_conflicts_when_key_exists =>
        sqlite_create_conflicts_when_key_exists, dynamodb_create_conflicts_when_key_exists;
    plain version_condition_detects_concurrent_update =>
        sqlite_version_condition_detects_concurrent_update, dynamodb_version_condition_detects_concurrent_update;
    plain exists_condition => sqlite_exists_condition, dynamodb_exists_condition;
    plain delete_with_condition => sqlite_delete_with_condition, dynamodb_delete_with_condition;
    plain check_op_without_write => sqlite_check_op_without_write, dynamodb_check_op_without_write;
    plain batch_is_atomic_when_one_condition_fails =>
        sqlite_batch_is_atomic_when_one_condition_fails, dynamodb_batch_is_atomic_when_one_condition_fails;
    plain batch_rejects_duplicate_keys => sqlite_batch_rejects_duplicate_keys, dynamodb_batch_rejects_duplicate_keys;
    plain batch_size_limits => sqlite_batch_size_limits, dynamodb_batch_size_limits;
    plain query_prefix_and_order => sqlite_query_prefix_and_order, dynamodb_query_prefix_and_order;
    plain query_limit_bounds => sqlite_query_limit_bounds, dynamodb_query_limit_bounds;
    plain query_pagination_visits_every_item_once =>
        sqlite_query_pagination_visits_every_item_once, dynamodb_query_pagination_visits_every_item_once;
    plain gsi1_query_and_pagination => sqlite_gsi1_query_and_pagination, dynamodb_gsi1_query_and_pagination;
    plain items_without_gsi1_are_not_indexed =>
        sqlite_items_without_gsi1_are_not_indexed, dynamodb_items_without_gsi1_are_not_indexed;
    plain gsi2_is_a_second_index_beside_gsi1 =>
        sqlite_gsi2_is_a_second_index_beside_gsi1, dynamodb_gsi2_is_a_second_index_beside_gsi1;
    plain sort_key_ranges_bound_queries_on_every_index =>
        sqlite_sort_key_ranges_bound_queries_on_every_index, dynamodb_sort_key_ranges_bound_queries_on_every_index;
    plain partitions_are_isolated => sqlite_partitions_are_isolated, dynamodb_partitions_are_isolated;
    plain expires_at_roundtrip => sqlite_expires_at_roundtrip, dynamodb_expires_at_roundtrip;
    concurrent concurrent_creates_of_one_key_have_one_winner =>
        sqlite_concurrent_creates_of_one_key_have_one_winner, dynamodb_concurrent_creates_of_one_key_have_one_winner;
    concurrent concurrent_version_updates_lose_none =>
        sqlite_concurrent_version_updates_lose_none, dynamodb_concurrent_version_updates_lose_none;
    concurrent concurrent_writes_each_get_their_own_result =>
        sqlite_concurrent_writes_each_get_their_own_result, dynamodb_concurrent_writes_each_get_their_own_result;
}
