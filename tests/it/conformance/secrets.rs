//! The [`SecretStore`] contract, written once and run against every adapter
//! (the encrypted-file store and Secrets Manager). Names and tenants stay in
//! the character set real ids use (`ten_...`, `connections/con_...`), which is
//! what Secrets Manager accepts.

use ferry_core::ports::{SecretFields, SecretRef, SecretStore};
use ferry_embedded::FileSecretStore;
use secrecy::ExposeSecret;

use crate::support::aws;

fn fields(pairs: &[(&str, &str)]) -> SecretFields {
    let mut f = SecretFields::new();
    for (name, value) in pairs {
        f.insert(*name, *value);
    }
    f
}

/// The fields as plain pairs, so whole values can be compared.
fn plain(f: &SecretFields) -> Vec<(String, String)> {
    f.0.iter().map(|(k, v)| (k.clone(), v.expose_secret().to_owned())).collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    v.sort();
    v
}

async fn put_ok(store: &dyn SecretStore, r: &SecretRef, f: &SecretFields) {
    if let Err(e) = store.put(r, f).await {
        panic!("put {}/{} failed on {}: {e:?}", r.tenant, r.name, store.backend_name());
    }
}

async fn get(store: &dyn SecretStore, r: &SecretRef) -> Option<Vec<(String, String)>> {
    match store.get(r).await {
        Ok(f) => f.as_ref().map(plain),
        Err(e) => panic!("get {}/{} failed on {}: {e:?}", r.tenant, r.name, store.backend_name()),
    }
}

async fn delete_ok(store: &dyn SecretStore, r: &SecretRef) {
    if let Err(e) = store.delete(r).await {
        panic!("delete {}/{} failed on {}: {e:?}", r.tenant, r.name, store.backend_name());
    }
}

pub async fn put_then_get_roundtrips(store: &dyn SecretStore) {
    assert!(!store.backend_name().is_empty());
    let r = SecretRef::new("ten_01", "connections/con_01");
    let f = fields(&[("api_key", "sk_live_123"), ("password", "p@ss w0rd!")]);
    put_ok(store, &r, &f).await;
    assert_eq!(get(store, &r).await, Some(pairs(&[("api_key", "sk_live_123"), ("password", "p@ss w0rd!")])));
}

pub async fn get_missing_is_none(store: &dyn SecretStore) {
    assert_eq!(get(store, &SecretRef::new("ten_01", "connections/never")).await, None);
    put_ok(store, &SecretRef::new("ten_01", "connections/con_01"), &fields(&[("a", "b")])).await;
    assert_eq!(get(store, &SecretRef::new("ten_01", "connections/con_0")).await, None, "no prefix match");
    assert_eq!(get(store, &SecretRef::new("ten_01", "connections/con_011")).await, None);
    assert_eq!(get(store, &SecretRef::new("ten_02", "connections/con_01")).await, None, "no other tenant's secret");
}

pub async fn put_replaces_every_field(store: &dyn SecretStore) {
    let r = SecretRef::new("ten_01", "connections/con_01");
    put_ok(store, &r, &fields(&[("username", "old-user"), ("password", "old-pass")])).await;
    put_ok(store, &r, &fields(&[("access_token", "new-token")])).await;
    assert_eq!(get(store, &r).await, Some(pairs(&[("access_token", "new-token")])), "fields of the old value are gone");
    put_ok(store, &r, &fields(&[])).await;
    assert_eq!(get(store, &r).await, Some(Vec::new()), "an empty field set is a value, not a deletion");
}

pub async fn delete_removes_and_is_idempotent(store: &dyn SecretStore) {
    let r = SecretRef::new("ten_01", "connections/con_01");
    let other = SecretRef::new("ten_01", "connections/con_02");
    put_ok(store, &r, &fields(&[("api_key", "k1")])).await;
    put_ok(store, &other, &fields(&[("api_key", "k2")])).await;
    delete_ok(store, &r).await;
    assert_eq!(get(store, &r).await, None);
    assert_eq!(get(store, &other).await, Some(pairs(&[("api_key", "k2")])), "only the addressed secret is deleted");
    delete_ok(store, &r).await;
    delete_ok(store, &SecretRef::new("ten_01", "connections/never")).await;
}

pub async fn put_after_delete_recreates(store: &dyn SecretStore) {
    let r = SecretRef::new("ten_01", "connections/con_01");
    put_ok(store, &r, &fields(&[("api_key", "first")])).await;
    delete_ok(store, &r).await;
    put_ok(store, &r, &fields(&[("api_key", "second")])).await;
    assert_eq!(get(store, &r).await, Some(pairs(&[("api_key", "second")])));
}

pub async fn tenants_are_isolated(store: &dyn SecretStore) {
    // "ten_1" is a prefix of "ten_10", and `c` is `b` under a plain
    // concatenation of tenant and name: physical names must keep them apart.
    let a = SecretRef::new("ten_1", "connections/con_01");
    let b = SecretRef::new("ten_10", "connections/con_01");
    let c = SecretRef::new("ten_1", "0connections/con_01");
    put_ok(store, &a, &fields(&[("api_key", "tenant-1")])).await;
    put_ok(store, &b, &fields(&[("api_key", "tenant-10")])).await;
    put_ok(store, &c, &fields(&[("api_key", "tenant-1-other-name")])).await;
    assert_eq!(get(store, &a).await, Some(pairs(&[("api_key", "tenant-1")])));
    assert_eq!(get(store, &b).await, Some(pairs(&[("api_key", "tenant-10")])));
    assert_eq!(get(store, &c).await, Some(pairs(&[("api_key", "tenant-1-other-name")])));

    delete_ok(store, &a).await;
    assert_eq!(get(store, &a).await, None);
    assert_eq!(get(store, &b).await, Some(pairs(&[("api_key", "tenant-10")])), "another tenant's secret survives");
    put_ok(store, &b, &fields(&[("api_key", "tenant-10-v2")])).await;
    assert_eq!(get(store, &c).await, Some(pairs(&[("api_key", "tenant-1-other-name")])));
}

/// A tenant id an adapter cannot represent must be refused, never mapped onto
/// another tenant's address.
pub async fn addresses_never_collide(store: &dyn SecretStore) {
    let victim = SecretRef::new("ten_a", "b/connections/con_01");
    put_ok(store, &victim, &fields(&[("api_key", "victim")])).await;
    let attacker = SecretRef::new("ten_a/b", "connections/con_01");
    if store.put(&attacker, &fields(&[("api_key", "attacker")])).await.is_ok() {
        assert_eq!(get(store, &attacker).await, Some(pairs(&[("api_key", "attacker")])));
    }
    assert_eq!(get(store, &victim).await, Some(pairs(&[("api_key", "victim")])));
    let _ = store.delete(&attacker).await;
    assert_eq!(get(store, &victim).await, Some(pairs(&[("api_key", "victim")])));
}

pub async fn fields_with_unicode_roundtrip(store: &dyn SecretStore) {
    let r = SecretRef::new("ten_01", "connections/con_unicode");
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", "QUJD".repeat(600));
    let f = fields(&[
        ("password", "pässwörd 🔑 пароль 密码"),
        ("ключ", "value with \"quotes\", \\backslashes\\ and\nnewlines\t"),
        ("empty", ""),
        ("json_looking", r#"{"nested": [1, 2]}"#),
        ("private_key", &pem),
    ]);
    put_ok(store, &r, &f).await;
    let got = get(store, &r).await.expect("present");
    assert_eq!(got, plain(&f));
}

pub async fn debug_of_fields_shows_no_values(store: &dyn SecretStore) {
    let r = SecretRef::new("ten_01", "connections/con_01");
    put_ok(store, &r, &fields(&[("api_key", "sk_live_SUPERSECRET"), ("password", "hunter2")])).await;
    let got = match store.get(&r).await {
        Ok(Some(f)) => f,
        other => panic!("expected the secret, got {:?}", other.map(|f| f.map(|f| f.names().count()))),
    };
    let debug = format!("{got:?}");
    assert!(debug.contains("api_key") && debug.contains("password"), "{debug}");
    assert!(!debug.contains("SUPERSECRET") && !debug.contains("hunter2"), "{debug}");
    let debug_result = format!("{:?}", store.get(&r).await);
    assert!(!debug_result.contains("SUPERSECRET") && !debug_result.contains("hunter2"), "{debug_result}");
}

fn file_store() -> (tempfile::TempDir, FileSecretStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileSecretStore::open(dir.path()).expect("open file secret store");
    (dir, store)
}

macro_rules! secrets_suite {
    ($($suite:ident => $file:ident, $secretsmanager:ident;)*) => {
        $(
            #[tokio::test]
            async fn $file() {
                let (_dir, store) = file_store();
                $suite(&store).await;
            }

            #[tokio::test]
            async fn $secretsmanager() {
                let Some(store) = aws::secrets_manager_store().await else { return };
                $suite(&store).await;
            }
        )*
    };
}

secrets_suite! {
    put_then_get_roundtrips => file_put_then_get_roundtrips, secretsmanager_put_then_get_roundtrips;
    get_missing_is_none => file_get_missing_is_none, secretsmanager_get_missing_is_none;
    put_replaces_every_field => file_put_replaces_every_field, secretsmanager_put_replaces_every_field;
    delete_removes_and_is_idempotent =>
        file_delete_removes_and_is_idempotent, secretsmanager_delete_removes_and_is_idempotent;
    put_after_delete_recreates => file_put_after_delete_recreates, secretsmanager_put_after_delete_recreates;
    tenants_are_isolated => file_tenants_are_isolated, secretsmanager_tenants_are_isolated;
    addresses_never_collide => file_addresses_never_collide, secretsmanager_addresses_never_collide;
    fields_with_unicode_roundtrip => file_fields_with_unicode_roundtrip, secretsmanager_fields_with_unicode_roundtrip;
    debug_of_fields_shows_no_values =>
        file_debug_of_fields_shows_no_values, secretsmanager_debug_of_fields_shows_no_values;
}
