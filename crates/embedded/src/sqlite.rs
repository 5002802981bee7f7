//! Embedded [`Store`] on one SQLite file.
//!
//! The single-table design maps onto one SQL table: the primary key is
//! `(pk, sk)`, `gsi1` is an index on `(g1pk, g1sk, pk, sk)` and `gsi2` one on
//! `(g2pk, g2sk, pk, sk)`. Items without a `gsi1` key have NULL `g1pk` and are
//! left out of that index (it is partial), so they are absent from `Gsi1`
//! queries exactly as in a sparse DynamoDB index, and writing them costs no
//! index update; likewise for `gsi2`.
//!
//! rusqlite is synchronous, so the store keeps its connections on threads of
//! their own:
//!
//! - **One writer.** A dedicated thread owns the only connection that writes
//!   and applies writes in *group commits*: whatever writes queued while the
//!   previous transaction committed go into the next IMMEDIATE transaction
//!   together, each with its own conditions and its own result, so one failed
//!   condition fails only its own write (see [`apply_batch`]). Callers are
//!   answered only after the transaction committed. One writer serialises all
//!   writes from this process, which is what makes conditional writes atomic
//!   here; the IMMEDIATE transactions and the busy timeout keep that true when
//!   another process (a backup, an admin CLI) opens the same file. Committing
//!   many small writes at once is what makes the webhook intake fast: SQLite's
//!   cost is per transaction (WAL frames, locks), not per row.
//! - **Readers.** Point reads (`get`) run on the writer thread between group
//!   commits, against the last commit (see [`Job::Get`]). On a file, queries use
//!   connections of their own (WAL lets them read committed data while the
//!   writer writes) on tokio's blocking pool, so a long page does not hold up
//!   writes. A read that starts after a write was answered sees it, so primary
//!   reads stay strongly consistent. An in-memory database has a single
//!   connection, so its queries queue on the writer thread too.
//! - **A checkpointer.** On a file, a third connection copies the WAL back into
//!   the database in the background ([`checkpointer_loop`]), so the writer
//!   does little of that work and rarely waits for its fsyncs between commits.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{ToSql, Value as SqlValue};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use tokio::sync::oneshot;

use ferry_core::ports::store::{
    Condition, Index, Item, Key, Query, QueryPage, Store, StoreError, WriteOp, MAX_WRITE_OPS,
};

use crate::unavailable::sqlite_unavailable;

/// Bumped whenever [`migrate`] learns a new step; stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 4;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const MAX_QUERY_LIMIT: u32 = 1000;

/// Most operations one group commit gathers. Past this, a transaction holds
/// the write lock long enough to delay the callers that came first, for
/// little further saving (the per-transaction cost is already shared).
const MAX_BATCH_OPS: usize = 1024;

/// How long the checkpointer lets commits accumulate before checkpointing
/// them: one checkpoint (and its two fsyncs) then covers many commits, and a
/// page written by many of them is copied once. Under the webhook bench's load
/// (hash-keyed claims land on pages all over the table), 200 ms instead of 50
/// took the checkpointer from 7% to about 4% of the process's CPU.
const CHECKPOINT_DELAY: Duration = Duration::from_millis(if cfg!(test) { 10 } else { 200 });

/// WAL size (frames, 16 MiB) past which the WAL should start over from its
/// beginning rather than grow. Only the writer can make it: SQLite restarts the WAL when
/// a write transaction begins with every frame copied back, which under a
/// steady load never happens after a background checkpoint (frames committed
/// meanwhile are not copied yet). So after a background checkpoint of a WAL
/// this long, the writer checkpoints the few frames left itself, between two
/// group commits.
const WAL_RESTART_FRAMES: i64 = if cfg!(test) { 64 } else { 4096 };

/// Before the writer finishes a checkpoint, the checkpointer catches up until a
/// pass copies at most this many frames (or it has made this many passes), so
/// the writer's share takes a few milliseconds, not tens.
const SMALL_TAIL_FRAMES: i64 = 64;
const MAX_CATCH_UP_PASSES: usize = 8;

/// WAL size (pages) at which the writer checkpoints by itself after a commit:
/// a backstop for when the checkpointer is stuck, far above what it lets the
/// WAL reach.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16_384;

/// Page cache of the writer (KiB). Claims of delivery ids are keyed by hash, so
/// writes land on pages all over the table; a cache that holds them spares
/// the writer rereading them from the OS.
const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// Idle reader connections kept open; a burst of reads beyond this opens
/// short-lived extra ones rather than waiting.
const MAX_IDLE_READERS: usize = 4;

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

/// Version 2: `items_gsi1` holds only items with a `gsi1` key. Version 1 indexed
/// every item (under NULL), so each write of an item without one, such as a
/// webhook delivery, also updated that index for nothing. `g1pk = ?` implies
/// `g1pk IS NOT NULL`, so Gsi1 queries use the partial index.
const SCHEMA_V2: &str = "
DROP INDEX IF EXISTS items_gsi1;
CREATE INDEX items_gsi1 ON items (g1pk, g1sk, pk, sk) WHERE g1pk IS NOT NULL;
";

/// Version 3: the expiry index grows at its end. Items written in the same
/// second with the same time to live (every delivery claim, kept for the
/// replay window) share one `expires_at`, and within it version 2's index was
/// ordered by primary key, so each claim (keyed by a hash) landed on a random
/// index page and every group commit rewrote one index page per claim. With
/// the write time as the second key, each commit appends: `ferry-bench hooks`
/// went from 12.5 to 8.5 KB written per request and used ~15% less CPU.
/// Rows from before keep a NULL `written_ns`, which only orders them first
/// among their second.
const SCHEMA_V3: &str = "
ALTER TABLE items ADD COLUMN written_ns INTEGER;
DROP INDEX IF EXISTS items_expires_at;
CREATE INDEX items_expires_at ON items (expires_at, written_ns) WHERE expires_at IS NOT NULL;
";

/// Version 4: a second secondary index, `gsi2`, partial like `gsi1`.
const SCHEMA_V4: &str = "
ALTER TABLE items ADD COLUMN g2pk TEXT;
ALTER TABLE items ADD COLUMN g2sk TEXT;
CREATE INDEX items_gsi2 ON items (g2pk, g2sk, pk, sk) WHERE g2pk IS NOT NULL;
";

const COLUMNS: &str = "pk, sk, g1pk, g1sk, version, expires_at, body, g2pk, g2sk";

#[derive(Debug, thiserror::Error)]
enum SqliteAdapterError {
    #[error("database schema version {found} is newer than this build supports ({supported}); upgrade Ferry")]
    SchemaTooNew { found: i64, supported: i64 },
    /// The writer dropped the request unanswered: the operation panicked (it was
    /// rolled back) or the writer thread is gone.
    #[error("the SQLite writer did not answer (the operation panicked or the writer stopped)")]
    NoAnswer,
    /// The group commit this write belonged to did not begin or commit, so
    /// nothing of it was written; every write of the group shares the cause.
    #[error("the write was rolled back with its group commit: {0}")]
    BatchRolledBack(#[source] Arc<rusqlite::Error>),
    #[error("cannot start the SQLite writer thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Work for the writer thread.
enum Job {
    /// Joins the next group commit.
    Write { ops: Vec<PreparedOp>, reply: oneshot::Sender<Result<(), StoreError>> },
    /// Runs alone on the writer's connection, after every write queued before it.
    Call(Box<dyn FnOnce(&mut Connection) + Send>),
    /// Reads one item as of the last commit, without waiting for the writes
    /// gathered so far: none of their callers has been answered yet, so no
    /// caller can have seen them, and every write answered before this read
    /// was sent is committed. Point reads run here rather than on a reader
    /// connection because the writer's page cache stays warm (SQLite drops a
    /// connection's cache whenever another one has committed) and no blocking
    /// pool thread needs waking; the row is parsed by the caller.
    Get { key: Key, reply: oneshot::Sender<Result<Option<RawItem>, StoreError>> },
}

/// Where reads run.
enum Readers {
    /// Connections of their own on the file.
    Pool { path: PathBuf, idle: Mutex<Vec<Connection>> },
    /// On the writer thread (an in-memory database has one connection).
    Writer,
}

struct Shared {
    jobs: mpsc::Sender<Job>,
    readers: Readers,
}

/// [`Store`] adapter backed by SQLite. Cheap to clone; clones share the
/// connections. The writer thread ends once the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
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
        // Before anything else touches the file: with WAL, readers never block
        // the writer (which is what lets reads use connections of their own),
        // and NORMAL sync is durable across application crashes (only a power
        // loss may drop the last commits).
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(db_err)?;
        let readers = if mode.eq_ignore_ascii_case("wal") {
            Readers::Pool { path: path.to_owned(), idle: Mutex::new(Vec::new()) }
        } else {
            // Without WAL a reader would block the writer and see SQLITE_BUSY; read on the writer instead.
            tracing::warn!(path = %path.display(), journal_mode = %mode, "SQLite refused WAL journal mode; continuing with it");
            Readers::Writer
        };
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_err)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB).map_err(db_err)?;
        let checkpointer = if matches!(readers, Readers::Pool { .. }) {
            conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES).map_err(db_err)?;
            let ckpt = Connection::open(path).map_err(db_err)?;
            ckpt.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
            // SQLite names the WAL after the database file.
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            Some((ckpt, PathBuf::from(wal)))
        } else {
            None
        };
        Self::init(conn, readers, checkpointer)
    }

    /// A private database that lives as long as this value (and its clones).
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(db_err)?;
        Self::init(conn, Readers::Writer, None)
    }

    /// Starts the writer thread on `conn`, and the checkpointer thread on `ckpt`
    /// (a connection and the WAL's path) if given.
    fn init(mut conn: Connection, readers: Readers, ckpt: Option<(Connection, PathBuf)>) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
        migrate(&mut conn)?;
        let (jobs, queue) = mpsc::channel();
        let (signal, commits) = match ckpt {
            Some(_) => {
                let (signal, commits) = mpsc::sync_channel(1);
                (Some(signal), Some(commits))
            }
            None => (None, None),
        };
        std::thread::Builder::new()
            .name("ferry-sqlite-writer".into())
            .spawn(move || writer_loop(conn, queue, signal))
            .map_err(|e| StoreError::backend(SqliteAdapterError::Spawn(e)))?;
        let store = Self { shared: Arc::new(Shared { jobs, readers }) };
        if let (Some((ckpt, wal_path)), Some(commits)) = (ckpt, commits) {
            // Weak: the checkpointer must not keep the writer (and itself) alive once the store is dropped.
            let shared = Arc::downgrade(&store.shared);
            std::thread::Builder::new()
                .name("ferry-sqlite-ckpt".into())
                .spawn(move || checkpointer_loop(ckpt, wal_path, commits, shared))
                .map_err(|e| StoreError::backend(SqliteAdapterError::Spawn(e)))?;
        }
        Ok(store)
    }

    /// Deletes items whose `expires_at` lies before `now_unix`, returning how many.
    /// Readers already ignore expired items; this only reclaims space.
    pub async fn purge_expired(&self, now_unix: i64) -> Result<usize, StoreError> {
        self.call(move |conn| {
            conn.execute("DELETE FROM items WHERE expires_at IS NOT NULL AND expires_at < ?1", params![now_unix])
                .map_err(db_err)
        })
        .await
    }

    /// Runs `f` alone on the writer's connection, after the writes queued before it.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job::Call(Box::new(move |conn: &mut Connection| {
            // The caller may have gone away (its future dropped); nobody to tell then.
            let _ = reply.send(f(conn));
        }));
        self.shared.jobs.send(job).map_err(|_| StoreError::backend(SqliteAdapterError::NoAnswer))?;
        answer.await.map_err(|_| StoreError::backend(SqliteAdapterError::NoAnswer))?
    }

    /// Runs a read on a reader connection (or on the writer, see [`Readers`]).
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        if matches!(self.shared.readers, Readers::Writer) {
            return self.call(move |conn| f(conn)).await;
        }
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let Readers::Pool { path, idle } = &shared.readers else {
                return Err(StoreError::Invalid("reader pool expected".into()));
            };
            let pooled = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_reader(path)?,
            };
            let out = f(&conn);
            let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(StoreError::backend)?
    }
}

/// A connection for reads only: `query_only` makes a write through it an error
/// rather than a second writer racing the writer thread.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(db_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    conn.pragma_update(None, "query_only", true).map_err(db_err)?;
    Ok(conn)
}

/// The writer thread: takes the next job, gathers every write queued behind it
/// into one group commit, answers each, and repeats until every sender is gone.
fn writer_loop(mut conn: Connection, jobs: mpsc::Receiver<Job>, checkpointer: Option<mpsc::SyncSender<()>>) {
    let mut batch: Vec<PendingWrite> = Vec::new();
    while let Ok(first) = jobs.recv() {
        let mut next = Some(first);
        let mut ops = 0;
        while let Some(job) = next.take() {
            match job {
                Job::Write { ops: write, reply } => {
                    ops += write.len();
                    batch.push((write, reply));
                }
                Job::Get { key, reply } => {
                    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| get_raw(&conn, &key)));
                    if let Ok(got) = got {
                        // The caller may have gone away (its future dropped); nobody to tell then.
                        let _ = reply.send(got);
                    }
                }
                Job::Call(f) => {
                    // Writes queued before the call come first: it must see them.
                    commit_batch(&mut conn, &mut batch);
                    ops = 0;
                    // A panicking call drops its reply (its caller gets an error) and rolls back its
                    // own transaction on unwind; the writer lives on for everyone else.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut conn)));
                }
            }
            if ops < MAX_BATCH_OPS {
                next = jobs.try_recv().ok();
            }
        }
        commit_batch(&mut conn, &mut batch);
        if let Some(checkpointer) = &checkpointer {
            // Full means a signal is pending already; it covers this commit too.
            let _ = checkpointer.try_send(());
        }
    }
}

/// A write gathered for the next group commit, and where its result goes.
type PendingWrite = (Vec<PreparedOp>, oneshot::Sender<Result<(), StoreError>>);

/// The checkpointer thread: after commits, waits a little for more, then
/// copies the WAL into the database with a PASSIVE checkpoint (which never
/// blocks the writer). Once the WAL is long (see [`WAL_RESTART_FRAMES`]) it
/// has the writer finish the job and waits for it, so the two never contend
/// for the checkpoint lock. Ends with the writer thread (or when the store is gone).
fn checkpointer_loop(
    conn: Connection,
    wal_path: PathBuf,
    commits: mpsc::Receiver<()>,
    shared: std::sync::Weak<Shared>,
) {
    // (frames in the WAL, frames copied back)
    let checkpoint = |conn: &Connection| {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
    };
    while commits.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_DELAY);
        // A signal that came while sleeping is served by this checkpoint.
        let _ = commits.try_recv();
        match checkpoint(&conn) {
            Ok((frames, copied)) if frames >= WAL_RESTART_FRAMES && copied == frames => {
                // More passes right away, each copying what was committed during the one before,
                // until little is left: the writer's own checkpoint holds up its next commit for
                // as long as it takes to copy the rest and fsync what was written since the last pass.
                let mut before = copied;
                for _ in 0..MAX_CATCH_UP_PASSES {
                    match checkpoint(&conn) {
                        Ok((_, copied)) if copied - before > SMALL_TAIL_FRAMES => before = copied,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "SQLite WAL checkpoint failed");
                            break;
                        }
                    }
                }
                // The writer's checkpoint begins with an fsync of the WAL: flush what was committed
                // since the last pass here, so that it finds next to nothing left to write.
                if let Ok(wal) = std::fs::File::open(&wal_path) {
                    let _ = wal.sync_data();
                }
                let Some(shared) = shared.upgrade() else { return };
                let (done, wait) = mpsc::sync_channel(1);
                let job = Job::Call(Box::new(move |conn: &mut Connection| {
                    if let Err(e) = checkpoint(conn) {
                        tracing::warn!(error = %e, "SQLite WAL checkpoint on the writer failed");
                    }
                    let _ = done.send(());
                }));
                let sent = shared.jobs.send(job).is_ok();
                drop(shared);
                // Unanswered (the writer stopped, or the call panicked): carry on; the next commit retries.
                if sent {
                    let _ = wait.recv();
                }
            }
            Ok(_) => {}
            // The writer's own autocheckpoint still bounds the WAL; the next commit retries this.
            Err(e) => tracing::warn!(error = %e, "SQLite WAL checkpoint failed"),
        }
    }
}

/// Applies the gathered writes in one transaction and answers each caller.
fn commit_batch(conn: &mut Connection, batch: &mut Vec<PendingWrite>) {
    if batch.is_empty() {
        return;
    }
    let writes: Vec<&[PreparedOp]> = batch.iter().map(|(ops, _)| ops.as_slice()).collect();
    // A panic here drops every reply of the batch (the callers get an error) and
    // rolls the transaction back on unwind, so nobody is told "written" wrongly.
    let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| apply_batch(conn, &writes)));
    drop(writes);
    let results = match results {
        Ok(results) => results,
        Err(_) => {
            batch.clear();
            return;
        }
    };
    for ((_, reply), result) in batch.drain(..).zip(results) {
        // The caller may have gone away (its future dropped); the write stands regardless.
        let _ = reply.send(result);
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
    if found < 2 {
        tx.execute_batch(SCHEMA_V2).map_err(db_err)?;
    }
    if found < 3 {
        tx.execute_batch(SCHEMA_V3).map_err(db_err)?;
    }
    if found < 4 {
        tx.execute_batch(SCHEMA_V4).map_err(db_err)?;
    }
    if found != SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(db_err)?;
    }
    tx.commit().map_err(db_err)
}

fn db_err(e: rusqlite::Error) -> StoreError {
    if sqlite_unavailable(&e) {
        StoreError::unavailable(e)
    } else {
        StoreError::backend(e)
    }
}

fn corrupt(pk: &str, sk: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt { pk: pk.to_owned(), sk: sk.to_owned(), reason: reason.into() }
}

fn version_to_sql(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Invalid(format!("version {version} is out of range")))
}

/// A row selected with [`COLUMNS`], its columns read but not yet checked or
/// parsed, so that the JSON parse can run on the caller's thread rather than
/// the writer's (see [`Job::Get`]).
struct RawItem {
    pk: String,
    sk: String,
    g1pk: Option<String>,
    g1sk: Option<String>,
    g2pk: Option<String>,
    g2sk: Option<String>,
    version: i64,
    expires_at: Option<i64>,
    body: String,
}

/// Reads a row selected with [`COLUMNS`]. Every failure is `Corrupt`: the
/// file may have been edited by hand or by a future version.
fn read_row(row: &Row<'_>) -> Result<RawItem, StoreError> {
    const UNREADABLE: &str = "<unreadable>";
    let pk: String = row.get(0).map_err(|e| corrupt(UNREADABLE, UNREADABLE, format!("pk: {e}")))?;
    let sk: String = row.get(1).map_err(|e| corrupt(&pk, UNREADABLE, format!("sk: {e}")))?;
    let field = |e: rusqlite::Error, name: &str| corrupt(&pk, &sk, format!("{name}: {e}"));
    let g1pk: Option<String> = row.get(2).map_err(|e| field(e, "g1pk"))?;
    let g1sk: Option<String> = row.get(3).map_err(|e| field(e, "g1sk"))?;
    let version: i64 = row.get(4).map_err(|e| field(e, "version"))?;
    let expires_at: Option<i64> = row.get(5).map_err(|e| field(e, "expires_at"))?;
    let body: String = row.get(6).map_err(|e| field(e, "body"))?;
    let g2pk: Option<String> = row.get(7).map_err(|e| field(e, "g2pk"))?;
    let g2sk: Option<String> = row.get(8).map_err(|e| field(e, "g2sk"))?;
    Ok(RawItem { pk, sk, g1pk, g1sk, g2pk, g2sk, version, expires_at, body })
}

impl RawItem {
    /// Checks and parses the row into an item; every failure is `Corrupt`.
    fn decode(self) -> Result<Item, StoreError> {
        let RawItem { pk, sk, g1pk, g1sk, g2pk, g2sk, version, expires_at, body } = self;
        let gsi1 = match (g1pk, g1sk) {
            (Some(pk), Some(sk)) => Some(Key { pk, sk }),
            (None, None) => None,
            _ => return Err(corrupt(&pk, &sk, "only half of the gsi1 key is set")),
        };
        let gsi2 = match (g2pk, g2sk) {
            (Some(pk), Some(sk)) => Some(Key { pk, sk }),
            (None, None) => None,
            _ => return Err(corrupt(&pk, &sk, "only half of the gsi2 key is set")),
        };
        let version = u64::try_from(version).map_err(|_| corrupt(&pk, &sk, format!("negative version {version}")))?;
        let body = serde_json::from_str(&body).map_err(|e| corrupt(&pk, &sk, format!("body is not JSON: {e}")))?;
        Ok(Item { key: Key { pk, sk }, gsi1, gsi2, version, expires_at, body })
    }
}

/// One item by key, undecoded.
fn get_raw(conn: &Connection, key: &Key) -> Result<Option<RawItem>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM items WHERE pk = ?1 AND sk = ?2")).map_err(db_err)?;
    let mut rows = stmt.query(params![key.pk, key.sk]).map_err(db_err)?;
    match rows.next().map_err(db_err)? {
        Some(row) => read_row(row).map(Some),
        None => Ok(None),
    }
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
    Put { key: Key, gsi1: Option<Key>, gsi2: Option<Key>, expires_at: Option<i64>, body: String, condition: Condition },
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
                PreparedOp::Put {
                    key: item.key,
                    gsi1: item.gsi1,
                    gsi2: item.gsi2,
                    expires_at: item.expires_at,
                    body,
                    condition,
                }
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

/// One group commit: the writes in the order given, so each sees the writes
/// before it exactly as if they had run one by one, each with its own result.
/// A write whose condition fails writes nothing and gets `ConditionFailed`;
/// the others commit. Nobody is answered before this returns, so a result is
/// only ever reported for a transaction that committed (or was rolled back).
///
/// Conditions are checked before a write's first statement, so a write can only
/// fail part-way on an SQL error (a corrupt version, a full disk). Rather than a
/// savepoint around every write (SQLite then copies each page it touches into a
/// sub-journal first, a large share of the cost of a small write), such a
/// failure rolls the whole transaction back and the batch runs again without
/// that write, which gets its own error. Each retry drops one write, so this
/// ends after at most one attempt per write.
fn apply_batch(conn: &mut Connection, writes: &[&[PreparedOp]]) -> Vec<Result<(), StoreError>> {
    let mut dropped: Vec<Option<StoreError>> = writes.iter().map(|_| None).collect();
    loop {
        match attempt_batch(conn, writes, &dropped) {
            Attempt::Committed(mut results) => {
                for (result, error) in results.iter_mut().zip(dropped) {
                    if let Some(e) = error {
                        *result = Err(e);
                    }
                }
                return results;
            }
            Attempt::WriteFailed(i, e) => dropped[i] = Some(e),
            Attempt::BatchFailed(cause) => {
                let unavailable = sqlite_unavailable(&cause);
                let cause = Arc::new(cause);
                return writes
                    .iter()
                    .map(|_| {
                        let e = SqliteAdapterError::BatchRolledBack(Arc::clone(&cause));
                        Err(if unavailable { StoreError::unavailable(e) } else { StoreError::backend(e) })
                    })
                    .collect();
            }
        }
    }
}

enum Attempt {
    /// One result per write (placeholders for the dropped ones).
    Committed(Vec<Result<(), StoreError>>),
    /// Write `.0` failed after some of its statements ran; everything was rolled back.
    WriteFailed(usize, StoreError),
    /// The transaction could not begin or commit; nothing was written.
    BatchFailed(rusqlite::Error),
}

fn attempt_batch(conn: &mut Connection, writes: &[&[PreparedOp]], dropped: &[Option<StoreError>]) -> Attempt {
    // IMMEDIATE takes the write lock up front, so no other process can change a
    // checked row between the checks and the writes.
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return Attempt::BatchFailed(e),
    };
    let mut results = Vec::with_capacity(writes.len());
    let mut currents = Vec::new();
    for (i, ops) in writes.iter().enumerate() {
        if dropped[i].is_some() {
            results.push(Ok(()));
            continue;
        }
        currents.clear();
        match check_conditions(&tx, ops, &mut currents) {
            Ok(true) => {}
            Ok(false) => {
                results.push(Err(StoreError::ConditionFailed));
                continue;
            }
            // Nothing of this write ran yet: only it fails.
            Err(e) => {
                results.push(Err(e));
                continue;
            }
        }
        if let Err(e) = write_ops(&tx, ops, &currents) {
            // Dropping `tx` rolls back this write's first statements, and everyone else's.
            return Attempt::WriteFailed(i, e);
        }
        results.push(Ok(()));
    }
    match tx.commit() {
        Ok(()) => Attempt::Committed(results),
        Err(e) => Attempt::BatchFailed(e),
    }
}

/// Whether every condition of a write holds; fills `currents` with the versions found.
fn check_conditions(
    conn: &Connection,
    ops: &[PreparedOp],
    currents: &mut Vec<Option<u64>>,
) -> Result<bool, StoreError> {
    for op in ops {
        let current = current_version(conn, op.key())?;
        if !condition_holds(op.condition(), current) {
            return Ok(false);
        }
        currents.push(current);
    }
    Ok(true)
}

fn write_ops(conn: &Connection, ops: &[PreparedOp], currents: &[Option<u64>]) -> Result<(), StoreError> {
    for (op, current) in ops.iter().zip(currents) {
        match op {
            PreparedOp::Put { key, gsi1, gsi2, expires_at, body, .. } => {
                let next = match current {
                    None => 1,
                    Some(v) => v.checked_add(1).ok_or_else(|| corrupt(&key.pk, &key.sk, "version overflow"))?,
                };
                let (g1pk, g1sk) = match gsi1 {
                    Some(g) => (Some(g.pk.as_str()), Some(g.sk.as_str())),
                    None => (None, None),
                };
                let (g2pk, g2sk) = match gsi2 {
                    Some(g) => (Some(g.pk.as_str()), Some(g.sk.as_str())),
                    None => (None, None),
                };
                // Orders the expiry index by write time within a second (see SCHEMA_V3); a clock
                // that steps back only costs that locality, never correctness.
                let written_ns = expires_at.map(|_| unix_nanos());
                conn.prepare_cached(
                    "INSERT INTO items (pk, sk, g1pk, g1sk, g2pk, g2sk, version, expires_at, written_ns, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (pk, sk) DO UPDATE SET
                        g1pk = excluded.g1pk, g1sk = excluded.g1sk, g2pk = excluded.g2pk, g2sk = excluded.g2sk,
                        version = excluded.version, expires_at = excluded.expires_at,
                        written_ns = excluded.written_ns, body = excluded.body",
                )
                .map_err(db_err)?
                .execute(params![
                    key.pk,
                    key.sk,
                    g1pk,
                    g1sk,
                    g2pk,
                    g2sk,
                    version_to_sql(next)?,
                    expires_at,
                    written_ns,
                    body
                ])
                .map_err(db_err)?;
            }
            PreparedOp::Delete { key, .. } => {
                conn.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")
                    .map_err(db_err)?
                    .execute(params![key.pk, key.sk])
                    .map_err(db_err)?;
            }
            PreparedOp::Check { .. } => {}
        }
    }
    Ok(())
}

/// Nanoseconds since the Unix epoch (0 for a clock set before it).
fn unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Named arguments of a statement.
type SqlArgs = Vec<(&'static str, SqlValue)>;

/// The SQL of a query and its named arguments.
fn query_sql(query: &Query) -> Result<(String, SqlArgs), StoreError> {
    query.check_sort_condition()?;
    let (pk_col, sk_col) = match query.index {
        Index::Primary => ("pk", "sk"),
        Index::Gsi1 => ("g1pk", "g1sk"),
        Index::Gsi2 => ("g2pk", "g2sk"),
    };
    let mut sql = format!("SELECT {COLUMNS} FROM items WHERE {pk_col} = :pk");
    let fetch = i64::from(query.limit) + 1;
    let text = |s: &str| SqlValue::Text(s.to_owned());
    let mut args = vec![(":pk", text(&query.pk)), (":limit", SqlValue::Integer(fetch))];

    let prefix = query.sk_prefix.as_deref().filter(|p| !p.is_empty());
    if let Some(prefix) = prefix {
        sql.push_str(&format!(" AND {sk_col} >= :lo"));
        args.push((":lo", text(prefix)));
        if let Some(upper) = prefix_upper_bound(prefix) {
            sql.push_str(&format!(" AND {sk_col} < :hi"));
            args.push((":hi", SqlValue::Text(upper)));
        }
    }
    if let Some(from) = &query.sk_from {
        sql.push_str(&format!(" AND {sk_col} >= :from"));
        args.push((":from", text(from)));
    }
    if let Some(to) = &query.sk_to {
        sql.push_str(&format!(" AND {sk_col} <= :to"));
        args.push((":to", text(to)));
    }

    let cmp = if query.ascending { ">" } else { "<" };
    let dir = if query.ascending { "ASC" } else { "DESC" };
    if let Some(after) = &query.after {
        // As DynamoDB does: a start outside the sort-key condition is not this query's.
        if !query.covers(&after.index_key.as_ref().unwrap_or(&after.key).sk) {
            return Err(StoreError::Invalid("the position does not belong to this query".into()));
        }
        match (query.index, &after.index_key) {
            (Index::Primary, None) if after.key.pk == query.pk => {
                sql.push_str(&format!(" AND sk {cmp} :after_sk"));
                args.push((":after_sk", text(&after.key.sk)));
            }
            (Index::Gsi1 | Index::Gsi2, Some(index_key)) if index_key.pk == query.pk => {
                // Row-value comparison over the index columns: a total order even
                // when many items share one g1sk, and still an index range scan.
                sql.push_str(&format!(" AND ({sk_col}, pk, sk) {cmp} (:after_isk, :after_pk, :after_sk)"));
                args.push((":after_isk", text(&index_key.sk)));
                args.push((":after_pk", text(&after.key.pk)));
                args.push((":after_sk", text(&after.key.sk)));
            }
            _ => return Err(StoreError::Invalid("the position does not belong to this query".into())),
        }
    }
    match query.index {
        Index::Primary => sql.push_str(&format!(" ORDER BY sk {dir}")),
        Index::Gsi1 | Index::Gsi2 => sql.push_str(&format!(" ORDER BY {sk_col} {dir}, pk {dir}, sk {dir}")),
    }
    sql.push_str(" LIMIT :limit");
    Ok((sql, args))
}

fn run_query(conn: &Connection, query: &Query) -> Result<QueryPage, StoreError> {
    let (sql, args) = query_sql(query)?;
    let args: Vec<(&str, &dyn ToSql)> = args.iter().map(|(name, value)| (*name, value as &dyn ToSql)).collect();
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut rows = stmt.query(args.as_slice()).map_err(db_err)?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        items.push(read_row(row)?.decode()?);
    }

    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| last.position(query.index))
    } else {
        None
    };
    Ok(QueryPage { items, next })
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .jobs
            .send(Job::Get { key: key.clone(), reply })
            .map_err(|_| StoreError::backend(SqliteAdapterError::NoAnswer))?;
        let raw = answer.await.map_err(|_| StoreError::backend(SqliteAdapterError::NoAnswer))??;
        raw.map(RawItem::decode).transpose()
    }

    async fn query(&self, query: &Query) -> Result<QueryPage, StoreError> {
        if !(1..=MAX_QUERY_LIMIT).contains(&query.limit) {
            return Err(StoreError::Invalid(format!("query limit must be 1..={MAX_QUERY_LIMIT}, got {}", query.limit)));
        }
        let query = query.clone();
        self.read(move |conn| run_query(conn, &query)).await
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let ops = prepare_ops(ops)?;
        let (reply, answer) = oneshot::channel();
        self.shared
            .jobs
            .send(Job::Write { ops, reply })
            .map_err(|_| StoreError::backend(SqliteAdapterError::NoAnswer))?;
        answer.await.map_err(|_| StoreError::backend(SqliteAdapterError::NoAnswer))?
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::ports::store::Position;

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
        let (v, mode) = store
            .call(|conn| {
                let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db_err)?;
                let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).map_err(db_err)?;
                Ok((v, mode))
            })
            .await
            .expect("pragmas");
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(mode, "wal");
    }

    /// A database file as a build of an earlier schema version left it: the
    /// given schema steps (their count is the version), then `rows`.
    fn old_database(path: &Path, steps: &[&str], rows: &str) {
        let conn = Connection::open(path).expect("open");
        for step in steps {
            conn.execute_batch(step).expect("old schema");
        }
        conn.pragma_update(None, "user_version", steps.len() as i64).expect("set version");
        conn.execute_batch(rows).expect("old rows");
    }

    #[tokio::test]
    async fn a_version_1_database_moves_to_the_partial_gsi1_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ferry.db");
        old_database(
            &path,
            &[SCHEMA_V1],
            "INSERT INTO items (pk, sk, g1pk, g1sk, version, body) VALUES ('p', 'a', 'g', '1', 1, '{}');
             INSERT INTO items (pk, sk, version, body) VALUES ('p', 'b', 1, '{}');",
        );
        let store = SqliteStore::open(&path).expect("migrate");
        let page = store.query(&Query::partition(Index::Gsi1, "g")).await.expect("gsi1 query");
        assert_eq!(page.items.iter().map(|i| i.key.sk.as_str()).collect::<Vec<_>>(), ["a"]);
        assert!(store.get(&Key::new("p", "b")).await.expect("get").is_some(), "items survive the migration");
        let (version, index) = store
            .call(|conn| {
                let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db_err)?;
                let sql: String = conn
                    .query_row("SELECT sql FROM sqlite_master WHERE name = 'items_gsi1'", [], |r| r.get(0))
                    .map_err(db_err)?;
                Ok((v, sql))
            })
            .await
            .expect("schema");
        assert_eq!(version, SCHEMA_VERSION);
        assert!(index.contains("WHERE g1pk IS NOT NULL"), "{index}");
    }

    #[tokio::test]
    async fn a_version_2_database_gets_the_write_ordered_expiry_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ferry.db");
        old_database(
            &path,
            &[SCHEMA_V1, SCHEMA_V2],
            "INSERT INTO items (pk, sk, version, expires_at, body) VALUES ('p', 'old', 1, 100, '{}');",
        );
        let store = SqliteStore::open(&path).expect("migrate");
        let mut item = Item::new(Key::new("p", "new"), serde_json::json!({}));
        item.expires_at = Some(100);
        store.write(vec![WriteOp::Put { item, condition: Condition::None }]).await.expect("write");
        let (index, plan) = store
            .call(|conn| {
                let sql: String = conn
                    .query_row("SELECT sql FROM sqlite_master WHERE name = 'items_expires_at'", [], |r| r.get(0))
                    .map_err(db_err)?;
                let plan: String = conn
                    .query_row(
                        "EXPLAIN QUERY PLAN DELETE FROM items WHERE expires_at IS NOT NULL AND expires_at < 1",
                        [],
                        |r| r.get(3),
                    )
                    .map_err(db_err)?;
                Ok((sql, plan))
            })
            .await
            .expect("schema");
        assert!(index.contains("(expires_at, written_ns)"), "{index}");
        assert!(plan.contains("items_expires_at"), "purging searches the expiry index: {plan}");
        assert_eq!(store.purge_expired(101).await.expect("purge"), 2, "rows from before and after both expire");
    }

    #[tokio::test]
    async fn index_queries_search_the_partial_indexes() {
        let store = SqliteStore::in_memory().expect("open");
        let plans = store
            .call(|conn| {
                let mut plans = Vec::new();
                for (index, name) in [(Index::Gsi1, "items_gsi1"), (Index::Gsi2, "items_gsi2")] {
                    for ascending in [true, false] {
                        let prefixed = Query::partition(index, "g").prefix("x#");
                        let ranged = Query::partition(index, "g").between(Some("x#0".into()), Some("x#9".into()));
                        for mut q in [prefixed, ranged] {
                            q.ascending = ascending;
                            let after = Position { key: Key::new("p", "s"), index_key: Some(Key::new("g", "x#1")) };
                            for query in [q.clone(), q.after(Some(after))] {
                                let (sql, args) = query_sql(&query)?;
                                let args: Vec<(&str, &dyn ToSql)> =
                                    args.iter().map(|(name, value)| (*name, value as &dyn ToSql)).collect();
                                let plan: Vec<String> = conn
                                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                                    .map_err(db_err)?
                                    .query_map(args.as_slice(), |r| r.get(3))
                                    .map_err(db_err)?
                                    .collect::<Result<_, _>>()
                                    .map_err(db_err)?;
                                plans.push((name, plan.join("; ")));
                            }
                        }
                    }
                }
                Ok(plans)
            })
            .await
            .expect("plans");
        for (name, plan) in plans {
            assert!(plan.contains(&format!("USING INDEX {name}")) && !plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    #[tokio::test]
    async fn a_version_3_database_gets_the_partial_gsi2_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ferry.db");
        old_database(
            &path,
            &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3],
            "INSERT INTO items (pk, sk, g1pk, g1sk, version, body) VALUES ('p', 'a', 'g', '1', 1, '{}');",
        );
        let store = SqliteStore::open(&path).expect("migrate");
        let old = store.get(&Key::new("p", "a")).await.expect("get").expect("items survive the migration");
        assert_eq!((old.gsi1, old.gsi2), (Some(Key::new("g", "1")), None));
        let item = Item::new(Key::new("p", "b"), serde_json::json!({})).with_gsi2(Key::new("g", "2"));
        store.write(vec![WriteOp::Put { item, condition: Condition::NotExists }]).await.expect("write");
        let page = store.query(&Query::partition(Index::Gsi2, "g")).await.expect("gsi2 query");
        assert_eq!(page.items.iter().map(|i| i.key.sk.as_str()).collect::<Vec<_>>(), ["b"]);
        let index = store
            .call(|conn| {
                conn.query_row("SELECT sql FROM sqlite_master WHERE name = 'items_gsi2'", [], |r| r.get::<_, String>(0))
                    .map_err(db_err)
            })
            .await
            .expect("schema");
        assert!(index.contains("WHERE g2pk IS NOT NULL"), "{index}");
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
        store
            .call(|conn| {
                conn.execute("INSERT INTO items (pk, sk, version, body) VALUES ('p', 's', 1, 'not json')", [])
                    .map_err(db_err)
            })
            .await
            .expect("insert");
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

    fn create(pk: &str, sk: &str) -> WriteOp {
        WriteOp::Put {
            item: Item::new(Key::new(pk, sk), serde_json::json!({"sk": sk})),
            condition: Condition::NotExists,
        }
    }

    #[test]
    fn a_group_commit_gives_each_write_its_own_result() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = Connection::open(dir.path().join("ferry.db")).expect("open");
        migrate(&mut conn).expect("migrate");
        // A version that cannot be bumped: putting this key fails after the
        // write's earlier statements ran, so only rolling back can undo them.
        conn.execute("INSERT INTO items (pk, sk, version, body) VALUES ('p', 'full', ?1, '{}')", params![i64::MAX])
            .expect("insert");
        let writes = [
            prepare_ops(vec![create("p", "a")]).expect("a"),
            // Sees `a`, written just before it in the same transaction.
            prepare_ops(vec![create("p", "b"), create("p", "a")]).expect("b+a"),
            prepare_ops(vec![
                create("p", "c"),
                WriteOp::Put {
                    item: Item::new(Key::new("p", "full"), serde_json::json!({})),
                    condition: Condition::None,
                },
            ])
            .expect("c+full"),
            prepare_ops(vec![create("p", "d"), create("p", "e")]).expect("d+e"),
        ];
        let refs: Vec<&[PreparedOp]> = writes.iter().map(Vec::as_slice).collect();
        let results = apply_batch(&mut conn, &refs);

        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert!(matches!(results[1], Err(StoreError::ConditionFailed)), "{:?}", results[1]);
        assert!(matches!(results[2], Err(StoreError::Invalid(_))), "{:?}", results[2]);
        assert!(results[3].is_ok(), "{:?}", results[3]);
        let stored: Vec<String> = conn
            .prepare("SELECT sk FROM items ORDER BY sk")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        // `b` (failed condition) and `c` (undone with its failed statement) are not stored.
        assert_eq!(stored, ["a", "d", "e", "full"]);
        assert!(conn.is_autocommit(), "the batch committed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_queued_together_commit_together_with_their_own_results() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("ferry.db")).expect("open");
        store.write(vec![create("q", "taken")]).await.expect("seed");

        // Hold the writer so that every write below queues behind it and they
        // all go into one group commit.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let holder = store.clone();
        let held = tokio::spawn(async move {
            holder
                .call(move |_| {
                    wait.recv().map_err(StoreError::backend)?;
                    Ok(())
                })
                .await
        });
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40u32 {
            let store = store.clone();
            tasks.spawn(async move {
                let ops = match i % 4 {
                    0 => vec![create("q", &format!("new-{i}"))],
                    1 => vec![create("q", "taken")],
                    2 => vec![create("q", &format!("new-{i}")), create("q", "taken")],
                    _ => vec![create("q", &format!("new-{i}")), create("q", &format!("pair-{i}"))],
                };
                (i, store.write(ops).await)
            });
        }
        // Let the writes reach the queue before the writer is released.
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.send(()).expect("release");
        held.await.expect("join").expect("held call");

        while let Some(joined) = tasks.join_next().await {
            let (i, result) = joined.expect("task");
            match i % 4 {
                0 | 3 => assert!(result.is_ok(), "write {i}: {result:?}"),
                _ => assert!(matches!(result, Err(StoreError::ConditionFailed)), "write {i}: {result:?}"),
            }
        }
        for i in 0..40u32 {
            let new = store.get(&Key::new("q", format!("new-{i}"))).await.expect("get").is_some();
            assert_eq!(new, i % 4 == 0 || i % 4 == 3, "new-{i}");
            let pair = store.get(&Key::new("q", format!("pair-{i}"))).await.expect("get").is_some();
            assert_eq!(pair, i % 4 == 3, "pair-{i}");
        }
    }

    #[tokio::test]
    async fn a_database_locked_by_another_process_is_unavailable_until_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ferry.db");
        let store = SqliteStore::open(&path).expect("open");
        // Past this wait the writer gives up; 5 s in production.
        store.call(|conn| conn.busy_timeout(Duration::from_millis(100)).map_err(db_err)).await.expect("timeout");
        let other = Connection::open(&path).expect("another connection");
        other.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");

        let locked = store.write(vec![create("p", "s")]).await;
        let Err(StoreError::Unavailable(e)) = &locked else { panic!("expected unavailable: {locked:?}") };
        let busy = std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<SqliteAdapterError>())
            .and_then(|s| std::error::Error::source(s))
            .and_then(|s| s.downcast_ref::<Arc<rusqlite::Error>>())
            .and_then(|s| s.sqlite_error_code());
        assert_eq!(busy, Some(rusqlite::ErrorCode::DatabaseBusy), "the SQLite error is the source: {e:?}");

        other.execute_batch("ROLLBACK").expect("release the lock");
        store.write(vec![create("p", "s")]).await.expect("written once the lock is gone");
    }

    #[tokio::test]
    async fn a_panicking_call_leaves_the_writer_working() {
        let store = SqliteStore::in_memory().expect("open");
        let panicked = store.call(|_| -> Result<(), StoreError> { panic!("boom") }).await;
        assert!(matches!(panicked, Err(StoreError::Backend(_))), "{panicked:?}");
        store.write(vec![create("p", "after")]).await.expect("write after the panic");
        assert!(store.get(&Key::new("p", "after")).await.expect("get").is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_a_steady_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("ferry.db")).expect("open");
        // More than a page: each item takes a leaf cell and overflow pages of its own.
        let body = serde_json::json!({"padding": "x".repeat(3000)});
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..8 {
            let (store, body) = (store.clone(), body.clone());
            tasks.spawn(async move {
                for i in 0..600 {
                    let item = Item::new(Key::new(format!("p{t}"), format!("{i:05}")), body.clone());
                    store.write(vec![WriteOp::Put { item, condition: Condition::None }]).await.expect("write");
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.expect("task");
        }
        // 4,800 writes without a pause, each of a leaf page and three overflow pages, put some
        // 80 MiB through the WAL. Without restarts it grows to the writer's own backstop (64 MiB);
        // with them it stays at what one checkpoint cycle adds (a few MiB, more in a slow debug build).
        let wal = std::fs::metadata(dir.path().join("ferry.db-wal")).expect("wal").len();
        assert!(wal < 32 * 1024 * 1024, "the WAL grew to {wal} bytes instead of starting over");
    }

    #[tokio::test]
    async fn readers_cannot_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ferry.db");
        let _store = SqliteStore::open(&path).expect("open");
        let reader = open_reader(&path).expect("reader");
        assert!(reader.execute("INSERT INTO items (pk, sk, version, body) VALUES ('p', 's', 1, '{}')", []).is_err());
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
