//! Embedded [`Store`] on one SQLite file.
//!
//! The single-table design maps onto one SQL table: the primary key is
//! `(pk, sk)` and `gsi1` is a plain index on `(g1pk, g1sk, pk, sk)`. Items
//! without a `gsi1` key have NULL `g1pk`, and `g1pk = ?` never matches NULL, so
//! they are absent from `Gsi1` queries exactly as in a sparse DynamoDB index.
//!
//! rusqlite is synchronous, so the connection sits behind a mutex and every call
//! runs on tokio's blocking pool. One connection serialises all access from this
//! process, which is what makes conditional writes atomic here; the IMMEDIATE
//! transactions and the busy timeout keep that true when another process (a
//! backup, an admin CLI) opens the same file.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::ToSql;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::ports::store::{
    Condition, Index, Item, Key, Position, Query, QueryPage, Store, StoreError, WriteOp, MAX_WRITE_OPS,
};

/// Bumped whenever [`migrate`] learns a new step; stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const MAX_QUERY_LIMIT: u32 = 1000;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    g1pk TEXT,
    g1sk TEXT,
    version INTEGER NOT NULL,
    expires_at INTEGER,
    body TEXT NOT NULL,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_gsi1 ON items (g1pk, g1sk, pk, sk);
-- Partial, so it costs nothing for the many items that never expire and keeps
-- purge_expired from scanning the whole table.
CREATE INDEX IF NOT EXISTS items_expires_at ON items (expires_at) WHERE expires_at IS NOT NULL;
";

const COLUMNS: &str = "pk, sk, g1pk, g1sk, version, expires_at, body";

#[derive(Debug, thiserror::Error)]
enum SqliteAdapterError {
    #[error("database schema version {found} is newer than this build supports ({supported}); upgrade Ferry")]
    SchemaTooNew { found: i64, supported: i64 },
}

/// [`Store`] adapter backed by SQLite. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file. The directory must exist.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(db_err)?;
        // Before anything else touches the file: with WAL, readers in other
        // processes never block the writer, and NORMAL sync is durable across
        // application crashes (only a power loss may drop the last commits).
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(db_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), journal_mode = %mode, "SQLite refused WAL journal mode; continuing with it");
        }
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_err)?;
        Self::init(conn)
    }

    /// A private database that lives as long as this value (and its clones).
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(db_err)?;
        Self::init(conn)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
        migrate(&mut conn)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Deletes items whose `expires_at` lies before `now_unix`, returning how many.
    /// Readers already ignore expired items; this only reclaims space.
    pub async fn purge_expired(&self, now_unix: i64) -> Result<usize, StoreError> {
        self.run(move |conn| {
            conn.execute("DELETE FROM items WHERE expires_at IS NOT NULL AND expires_at < ?1", params![now_unix])
                .map_err(db_err)
        })
        .await
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic mid-call rolled its transaction back on unwind, so the connection is sound.
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(StoreError::backend)?
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE so two processes opening a fresh file cannot both run the steps.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(db_err)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::backend(SqliteAdapterError::SchemaTooNew { found, supported: SCHEMA_VERSION }));
    }
    if found < 1 {
        tx.execute_batch(SCHEMA_V1).map_err(db_err)?;
    }
    if found != SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(db_err)?;
    }
    tx.commit().map_err(db_err)
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

fn corrupt(pk: &str, sk: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt { pk: pk.to_owned(), sk: sk.to_owned(), reason: reason.into() }
}

fn version_to_sql(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Invalid(format!("version {version} is out of range")))
}

/// Decodes a row selected with [`COLUMNS`]. Every failure is `Corrupt`: the
/// file may have been edited by hand or by a future version.
fn decode_row(row: &Row<'_>) -> Result<Item, StoreError> {
    const UNREADABLE: &str = "<unreadable>";
    let pk: String = row.get(0).map_err(|e| corrupt(UNREADABLE, UNREADABLE, format!("pk: {e}")))?;
    let sk: String = row.get(1).map_err(|e| corrupt(&pk, UNREADABLE, format!("sk: {e}")))?;
    let field = |e: rusqlite::Error, name: &str| corrupt(&pk, &sk, format!("{name}: {e}"));
    let g1pk: Option<String> = row.get(2).map_err(|e| field(e, "g1pk"))?;
    let g1sk: Option<String> = row.get(3).map_err(|e| field(e, "g1sk"))?;
    let version: i64 = row.get(4).map_err(|e| field(e, "version"))?;
    let expires_at: Option<i64> = row.get(5).map_err(|e| field(e, "expires_at"))?;
    let body: String = row.get(6).map_err(|e| field(e, "body"))?;

    let gsi1 = match (g1pk, g1sk) {
        (Some(pk), Some(sk)) => Some(Key { pk, sk }),
        (None, None) => None,
        _ => return Err(corrupt(&pk, &sk, "only half of the gsi1 key is set")),
    };
    let version = u64::try_from(version).map_err(|_| corrupt(&pk, &sk, format!("negative version {version}")))?;
    let body = serde_json::from_str(&body).map_err(|e| corrupt(&pk, &sk, format!("body is not JSON: {e}")))?;
    Ok(Item { key: Key { pk, sk }, gsi1, version, expires_at, body })
}

/// Smallest string greater than every string starting with `prefix`, or None
/// when no such bound exists (the prefix is all `char::MAX`). SQLite's BINARY
/// collation compares UTF-8 bytes, and UTF-8 byte order is code-point order,
/// so bumping the last bumpable code point gives an exact range without LIKE
/// and its escaping pitfalls.
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            char::MAX => None,
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

enum PreparedOp {
    Put { key: Key, gsi1: Option<Key>, expires_at: Option<i64>, body: String, condition: Condition },
    Delete { key: Key, condition: Condition },
    Check { key: Key, condition: Condition },
}

impl PreparedOp {
    fn key(&self) -> &Key {
        match self {
            PreparedOp::Put { key, .. } | PreparedOp::Delete { key, .. } | PreparedOp::Check { key, .. } => key,
        }
    }
    fn condition(&self) -> Condition {
        match self {
            PreparedOp::Put { condition, .. }
            | PreparedOp::Delete { condition, .. }
            | PreparedOp::Check { condition, .. } => *condition,
        }
    }
}

fn prepare_ops(ops: Vec<WriteOp>) -> Result<Vec<PreparedOp>, StoreError> {
    if ops.is_empty() {
        return Err(StoreError::Invalid("a write needs at least one operation".into()));
    }
    if ops.len() > MAX_WRITE_OPS {
        return Err(StoreError::Invalid(format!(
            "a write holds at most {MAX_WRITE_OPS} operations, got {}",
            ops.len()
        )));
    }
    let mut seen = HashSet::with_capacity(ops.len());
    let mut prepared = Vec::with_capacity(ops.len());
    for op in ops {
        let op = match op {
            WriteOp::Put { item, condition } => {
                let body = serde_json::to_string(&item.body)
                    .map_err(|e| StoreError::Invalid(format!("item body cannot be serialised: {e}")))?;
                PreparedOp::Put { key: item.key, gsi1: item.gsi1, expires_at: item.expires_at, body, condition }
            }
            WriteOp::Delete { key, condition } => PreparedOp::Delete { key, condition },
            WriteOp::Check { key, condition } => PreparedOp::Check { key, condition },
        };
        if !seen.insert(op.key().clone()) {
            let key = op.key();
            return Err(StoreError::Invalid(format!("key {}/{} appears twice in one write", key.pk, key.sk)));
        }
        prepared.push(op);
    }
    Ok(prepared)
}

fn condition_holds(condition: Condition, current: Option<u64>) -> bool {
    match condition {
        Condition::None => true,
        Condition::NotExists => current.is_none(),
        Condition::Exists => current.is_some(),
        Condition::VersionIs(v) => current == Some(v),
    }
}

fn current_version(conn: &Connection, key: &Key) -> Result<Option<u64>, StoreError> {
    let version: Option<i64> = conn
        .prepare_cached("SELECT version FROM items WHERE pk = ?1 AND sk = ?2")
        .map_err(db_err)?
        .query_row(params![key.pk, key.sk], |row| row.get(0))
        .optional()
        .map_err(|e| match e {
            rusqlite::Error::InvalidColumnType(..) | rusqlite::Error::FromSqlConversionFailure(..) => {
                corrupt(&key.pk, &key.sk, format!("version: {e}"))
            }
            e => db_err(e),
        })?;
    version
        .map(|v| u64::try_from(v).map_err(|_| corrupt(&key.pk, &key.sk, format!("negative version {v}"))))
        .transpose()
}

fn apply_write(conn: &mut Connection, ops: &[PreparedOp]) -> Result<(), StoreError> {
    // IMMEDIATE takes the write lock up front, so no other process can change a
    // checked row between the checks and the writes.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
    let mut currents = Vec::with_capacity(ops.len());
    for op in ops {
        let current = current_version(&tx, op.key())?;
        if !condition_holds(op.condition(), current) {
            // Dropping `tx` rolls back; nothing was written yet anyway.
            return Err(StoreError::ConditionFailed);
        }
        currents.push(current);
    }
    for (op, current) in ops.iter().zip(currents) {
        match op {
            PreparedOp::Put { key, gsi1, expires_at, body, .. } => {
                let next = match current {
                    None => 1,
                    Some(v) => v.checked_add(1).ok_or_else(|| corrupt(&key.pk, &key.sk, "version overflow"))?,
                };
                let (g1pk, g1sk) = match gsi1 {
                    Some(g) => (Some(g.pk.as_str()), Some(g.sk.as_str())),
                    None => (None, None),
                };
                tx.prepare_cached(
                    "INSERT INTO items (pk, sk, g1pk, g1sk, version, expires_at, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (pk, sk) DO UPDATE SET
                        g1pk = excluded.g1pk, g1sk = excluded.g1sk, version = excluded.version,
                        expires_at = excluded.expires_at, body = excluded.body",
                )
                .map_err(db_err)?
                .execute(params![key.pk, key.sk, g1pk, g1sk, version_to_sql(next)?, expires_at, body])
                .map_err(db_err)?;
            }
            PreparedOp::Delete { key, .. } => {
                tx.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")
                    .map_err(db_err)?
                    .execute(params![key.pk, key.sk])
                    .map_err(db_err)?;
            }
            PreparedOp::Check { .. } => {}
        }
    }
    tx.commit().map_err(db_err)
}

fn run_query(conn: &Connection, query: &Query) -> Result<QueryPage, StoreError> {
    let (pk_col, sk_col) = match query.index {
        Index::Primary => ("pk", "sk"),
        Index::Gsi1 => ("g1pk", "g1sk"),
    };
    let mut sql = format!("SELECT {COLUMNS} FROM items WHERE {pk_col} = :pk");
    let fetch = i64::from(query.limit) + 1;
    let mut args: Vec<(&str, &dyn ToSql)> = vec![(":pk", &query.pk), (":limit", &fetch)];

    let prefix = query.sk_prefix.as_deref().filter(|p| !p.is_empty());
    let upper = prefix.and_then(prefix_upper_bound);
    if let Some(prefix) = &prefix {
        sql.push_str(&format!(" AND {sk_col} >= :lo"));
        args.push((":lo", prefix));
    }
    if let Some(upper) = &upper {
        sql.push_str(&format!(" AND {sk_col} < :hi"));
        args.push((":hi", upper));
    }

    let cmp = if query.ascending { ">" } else { "<" };
    let dir = if query.ascending { "ASC" } else { "DESC" };
    if let Some(after) = &query.after {
        match (query.index, &after.index_key) {
            (Index::Primary, None) if after.key.pk == query.pk => {
                sql.push_str(&format!(" AND sk {cmp} :after_sk"));
                args.push((":after_sk", &after.key.sk));
            }
            (Index::Gsi1, Some(index_key)) if index_key.pk == query.pk => {
                // Row-value comparison over the index columns: a total order even
                // when many items share one g1sk, and still an index range scan.
                sql.push_str(&format!(" AND (g1sk, pk, sk) {cmp} (:after_g1sk, :after_pk, :after_sk)"));
                args.push((":after_g1sk", &index_key.sk));
                args.push((":after_pk", &after.key.pk));
                args.push((":after_sk", &after.key.sk));
            }
            _ => return Err(StoreError::Invalid("the position does not belong to this query".into())),
        }
    }
    match query.index {
        Index::Primary => sql.push_str(&format!(" ORDER BY sk {dir}")),
        Index::Gsi1 => sql.push_str(&format!(" ORDER BY g1sk {dir}, pk {dir}, sk {dir}")),
    }
    sql.push_str(" LIMIT :limit");

    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt.query(args.as_slice()).map_err(db_err)?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        items.push(decode_row(row)?);
    }

    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| Position {
            key: last.key.clone(),
            index_key: match query.index {
                Index::Primary => None,
                Index::Gsi1 => last.gsi1.clone(),
            },
        })
    } else {
        None
    };
    Ok(QueryPage { items, next })
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let key = key.clone();
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM items WHERE pk = ?1 AND sk = ?2"))
                .map_err(db_err)?;
            let mut rows = stmt.query(params![key.pk, key.sk]).map_err(db_err)?;
            match rows.next().map_err(db_err)? {
                Some(row) => decode_row(row).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn query(&self, query: &Query) -> Result<QueryPage, StoreError> {
        if !(1..=MAX_QUERY_LIMIT).contains(&query.limit) {
            return Err(StoreError::Invalid(format!("query limit must be 1..={MAX_QUERY_LIMIT}, got {}", query.limit)));
        }
        let query = query.clone();
        self.run(move |conn| run_query(conn, &query)).await
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let ops = prepare_ops(ops)?;
        self.run(move |conn| apply_write(conn, &ops)).await
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bound_bumps_last_code_point() {
        assert_eq!(prefix_upper_bound("a#").as_deref(), Some("a$"));
        assert_eq!(prefix_upper_bound("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_upper_bound("ab\u{10FFFF}").as_deref(), Some("ac"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}\u{10FFFF}"), None);
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_schema_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ferry.db");
        {
            let store = SqliteStore::open(&path).expect("open");
            store
                .write(vec![WriteOp::Put {
                    item: Item::new(Key::new("p", "s"), serde_json::json!({"n": 1})),
                    condition: Condition::NotExists,
                }])
                .await
                .expect("write");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        let item = store.get(&Key::new("p", "s")).await.expect("get").expect("present");
        assert_eq!(item.version, 1);
        let conn = store.conn.lock().expect("lock");
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("user_version");
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("journal_mode");
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn refuses_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ferry.db");
        {
            let conn = Connection::open(&path).expect("open");
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).expect("set version");
        }
        let err = SqliteStore::open(&path).expect_err("must refuse");
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[tokio::test]
    async fn corrupt_body_is_reported_as_corrupt() {
        let store = SqliteStore::in_memory().expect("open");
        {
            let conn = store.conn.lock().expect("lock");
            conn.execute("INSERT INTO items (pk, sk, version, body) VALUES ('p', 's', 1, 'not json')", [])
                .expect("insert");
        }
        let err = store.get(&Key::new("p", "s")).await.expect_err("corrupt");
        assert!(matches!(err, StoreError::Corrupt { ref pk, ref sk, .. } if pk == "p" && sk == "s"), "{err:?}");
    }

    #[tokio::test]
    async fn purge_expired_removes_only_past_items() {
        let store = SqliteStore::in_memory().expect("open");
        let put = |sk: &str, exp: Option<i64>| {
            let mut item = Item::new(Key::new("p", sk), serde_json::json!({}));
            item.expires_at = exp;
            WriteOp::Put { item, condition: Condition::None }
        };
        store
            .write(vec![put("old", Some(100)), put("edge", Some(200)), put("new", Some(300)), put("never", None)])
            .await
            .expect("write");
        assert_eq!(store.purge_expired(200).await.expect("purge"), 1);
        assert!(store.get(&Key::new("p", "old")).await.expect("get").is_none());
        for sk in ["edge", "new", "never"] {
            assert!(store.get(&Key::new("p", sk)).await.expect("get").is_some(), "{sk}");
        }
    }

    #[tokio::test]
    async fn foreign_position_is_invalid() {
        let store = SqliteStore::in_memory().expect("open");
        let q =
            Query::partition(Index::Primary, "a").after(Some(Position { key: Key::new("b", "x"), index_key: None }));
        assert!(matches!(store.query(&q).await, Err(StoreError::Invalid(_))));
        let q = Query::partition(Index::Gsi1, "a").after(Some(Position { key: Key::new("a", "x"), index_key: None }));
        assert!(matches!(store.query(&q).await, Err(StoreError::Invalid(_))));
    }
}
