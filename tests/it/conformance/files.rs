//! File-store conformance: the local adapter (a directory) and the S3 adapter
//! (against moto) must behave the same. Above all, commit-to-publish: a file
//! is invisible until committed, whole once committed, and gone if aborted.

use ferry_aws::s3_files::MIN_PART_SIZE;
use ferry_core::ports::{FileError, FileStore};
use ferry_embedded::LocalFileStore;

use crate::support::aws;

async fn write_file(store: &dyn FileStore, tenant: &str, path: &str, bytes: &[u8]) {
    let mut w = store.create(tenant, path).await.expect("create");
    w.write(bytes).await.expect("write");
    w.commit().await.expect("commit");
}

async fn read(store: &dyn FileStore, tenant: &str, path: &str) -> Option<Vec<u8>> {
    store.read(tenant, path).await.expect("read")
}

pub async fn files_are_invisible_until_committed(store: &dyn FileStore) {
    let mut w = store.create("acme", "exports/a.jsonl").await.expect("create");
    w.write(b"{\"id\":1}\n").await.expect("write");
    w.write(b"{\"id\":2}\n").await.expect("write");
    assert_eq!(read(store, "acme", "exports/a.jsonl").await, None, "visible before commit");
    w.commit().await.expect("commit");
    assert_eq!(read(store, "acme", "exports/a.jsonl").await.as_deref(), Some(&b"{\"id\":1}\n{\"id\":2}\n"[..]));
}

pub async fn aborted_files_leave_nothing(store: &dyn FileStore) {
    let mut w = store.create("acme", "exports/b.csv").await.expect("create");
    w.write(b"id\n1\n").await.expect("write");
    w.abort().await.expect("abort");
    assert_eq!(read(store, "acme", "exports/b.csv").await, None);
}

pub async fn commit_replaces_the_previous_file_only_when_done(store: &dyn FileStore) {
    write_file(store, "acme", "state.json", b"old").await;
    let mut w = store.create("acme", "state.json").await.expect("create");
    w.write(b"new contents").await.expect("write");
    assert_eq!(read(store, "acme", "state.json").await.as_deref(), Some(&b"old"[..]), "old file until commit");
    w.commit().await.expect("commit");
    assert_eq!(read(store, "acme", "state.json").await.as_deref(), Some(&b"new contents"[..]));

    let mut w = store.create("acme", "state.json").await.expect("create");
    w.write(b"discarded").await.expect("write");
    w.abort().await.expect("abort");
    assert_eq!(read(store, "acme", "state.json").await.as_deref(), Some(&b"new contents"[..]), "abort keeps the old");
}

pub async fn empty_files_can_be_committed(store: &dyn FileStore) {
    let w = store.create("acme", "empty.txt").await.expect("create");
    w.commit().await.expect("commit");
    assert_eq!(read(store, "acme", "empty.txt").await, Some(Vec::new()));
}

pub async fn missing_files_read_as_none(store: &dyn FileStore) {
    assert_eq!(read(store, "acme", "nothing/here.jsonl").await, None);
}

pub async fn tenants_do_not_see_each_others_files(store: &dyn FileStore) {
    write_file(store, "acme", "exports/x.jsonl", b"acme's").await;
    assert_eq!(read(store, "globex", "exports/x.jsonl").await, None);
    write_file(store, "globex", "exports/x.jsonl", b"globex's").await;
    assert_eq!(read(store, "acme", "exports/x.jsonl").await.as_deref(), Some(&b"acme's"[..]));
    assert_eq!(read(store, "globex", "exports/x.jsonl").await.as_deref(), Some(&b"globex's"[..]));
}

pub async fn paths_cannot_leave_the_tenant(store: &dyn FileStore) {
    for bad in ["../globex/x", "/etc/passwd", "a/../../x", "", "a//b", "a b", "./x", "x/", "ä.txt"] {
        assert!(matches!(store.create("acme", bad).await, Err(FileError::InvalidPath(_))), "create {bad:?}");
        assert!(matches!(store.read("acme", bad).await, Err(FileError::InvalidPath(_))), "read {bad:?}");
    }
    for tenant in ["../acme", "", "acme/x", "ACME"] {
        assert!(store.create(tenant, "x").await.is_err(), "tenant {tenant:?}");
    }
}

/// Bigger than S3's smallest part twice over, written in small chunks, so the
/// S3 adapter goes through a multipart upload.
fn large_payload() -> Vec<u8> {
    let line = b"{\"id\":123456,\"name\":\"a record of some size\",\"tags\":[\"x\",\"y\"]}\n";
    line.iter().copied().cycle().take(2 * MIN_PART_SIZE + 123_457).collect()
}

pub async fn large_files_roundtrip_and_stay_invisible_until_committed(store: &dyn FileStore) {
    let payload = large_payload();
    let mut w = store.create("acme", "exports/large.jsonl").await.expect("create");
    for chunk in payload.chunks(64 * 1024) {
        w.write(chunk).await.expect("write");
    }
    assert_eq!(read(store, "acme", "exports/large.jsonl").await, None, "visible before commit");
    w.commit().await.expect("commit");
    let back = read(store, "acme", "exports/large.jsonl").await.expect("committed");
    assert_eq!(back.len(), payload.len());
    assert!(back == payload, "contents differ");
}

pub async fn aborted_large_files_leave_nothing(store: &dyn FileStore) {
    let payload = large_payload();
    let mut w = store.create("acme", "exports/large-aborted.jsonl").await.expect("create");
    for chunk in payload.chunks(1024 * 1024) {
        w.write(chunk).await.expect("write");
    }
    w.abort().await.expect("abort");
    assert_eq!(read(store, "acme", "exports/large-aborted.jsonl").await, None);
}

pub async fn concurrent_writers_of_one_path_publish_whole_files(store: &dyn FileStore) {
    let mut a = store.create("acme", "exports/race.txt").await.expect("create a");
    let mut b = store.create("acme", "exports/race.txt").await.expect("create b");
    a.write(b"aaaa").await.expect("write a");
    b.write(b"bbbbbb").await.expect("write b");
    a.write(b"AAAA").await.expect("write a");
    a.commit().await.expect("commit a");
    assert_eq!(read(store, "acme", "exports/race.txt").await.as_deref(), Some(&b"aaaaAAAA"[..]));
    b.commit().await.expect("commit b");
    assert_eq!(read(store, "acme", "exports/race.txt").await.as_deref(), Some(&b"bbbbbb"[..]), "last commit wins");
}

macro_rules! file_suite {
    ($($suite:ident => $local:ident, $s3:ident;)*) => {
        $(
            #[tokio::test]
            async fn $local() {
                let dir = tempfile::tempdir().expect("tempdir");
                $suite(&LocalFileStore::new(dir.path())).await;
            }

            #[tokio::test]
            async fn $s3() {
                // The smallest part S3 allows, so the large-file suites span several parts.
                let Some(store) = aws::s3_file_store().await else { return };
                $suite(&store.with_part_size(MIN_PART_SIZE)).await;
            }
        )*
    };
}

file_suite! {
    files_are_invisible_until_committed => local_files_are_invisible_until_committed, s3_files_are_invisible_until_committed;
    aborted_files_leave_nothing => local_aborted_files_leave_nothing, s3_aborted_files_leave_nothing;
    commit_replaces_the_previous_file_only_when_done =>
        local_commit_replaces_the_previous_file_only_when_done, s3_commit_replaces_the_previous_file_only_when_done;
    empty_files_can_be_committed => local_empty_files_can_be_committed, s3_empty_files_can_be_committed;
    missing_files_read_as_none => local_missing_files_read_as_none, s3_missing_files_read_as_none;
    tenants_do_not_see_each_others_files =>
        local_tenants_do_not_see_each_others_files, s3_tenants_do_not_see_each_others_files;
    paths_cannot_leave_the_tenant => local_paths_cannot_leave_the_tenant, s3_paths_cannot_leave_the_tenant;
    large_files_roundtrip_and_stay_invisible_until_committed =>
        local_large_files_roundtrip_and_stay_invisible_until_committed,
        s3_large_files_roundtrip_and_stay_invisible_until_committed;
    aborted_large_files_leave_nothing => local_aborted_large_files_leave_nothing, s3_aborted_large_files_leave_nothing;
    concurrent_writers_of_one_path_publish_whole_files =>
        local_concurrent_writers_of_one_path_publish_whole_files, s3_concurrent_writers_of_one_path_publish_whole_files;
}
