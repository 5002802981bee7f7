//! The store port: a single-table item store with conditional, atomic writes.
//!
//! Ferry's domain keeps every record as an [`Item`] addressed by a partition key
//! and a sort key, with two optional secondary indexes (`gsi1`, `gsi2`). This mirrors the
//! DynamoDB single-table design one to one, so the SQLite adapter and the
//! DynamoDB adapter offer exactly the same semantics, and the access patterns
//! (see `docs/storage.md`) are written once, in the domain.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::unavailable::{BoxError, Port, Unavailable};

/// Primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self { pk: pk.into(), sk: sk.into() }
    }
}

/// One stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: Key,
    /// Secondary index key; items without one are invisible to `Index::Gsi1` queries.
    pub gsi1: Option<Key>,
    /// Second secondary index key; items without one are invisible to `Index::Gsi2` queries.
    pub gsi2: Option<Key>,
    /// Monotonic version maintained by the adapter: 1 on create, +1 on every put.
    /// Callers use it for optimistic concurrency ([`Condition::VersionIs`]).
    pub version: u64,
    /// Unix seconds after which the item is expired. Adapters may delete expired
    /// items lazily (DynamoDB TTL), so readers must still check it.
    pub expires_at: Option<i64>,
    /// The record itself, as JSON.
    pub body: serde_json::Value,
}

impl Item {
    pub fn new(key: Key, body: serde_json::Value) -> Self {
        Self { key, gsi1: None, gsi2: None, version: 0, expires_at: None, body }
    }
    pub fn with_gsi1(mut self, gsi1: Key) -> Self {
        self.gsi1 = Some(gsi1);
        self
    }
    pub fn with_gsi2(mut self, gsi2: Key) -> Self {
        self.gsi2 = Some(gsi2);
        self
    }
    /// This item's key in `index` (`None` when it is not in that index).
    pub fn index_key(&self, index: Index) -> Option<&Key> {
        match index {
            Index::Primary => Some(&self.key),
            Index::Gsi1 => self.gsi1.as_ref(),
            Index::Gsi2 => self.gsi2.as_ref(),
        }
    }
    /// The position just after this item in a query of `index`.
    pub fn position(&self, index: Index) -> Position {
        let index_key = match index {
            Index::Primary => None,
            Index::Gsi1 => self.gsi1.clone(),
            Index::Gsi2 => self.gsi2.clone(),
        };
        Position { key: self.key.clone(), index_key }
    }
    pub fn with_expiry(mut self, expires_at: i64) -> Self {
        self.expires_at = Some(expires_at);
        self
    }
}

/// Precondition of a write, checked atomically with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Unconditional.
    None,
    /// The key must not exist (create, uniqueness claim).
    NotExists,
    /// The key must exist (any version).
    Exists,
    /// The key must exist with exactly this version (optimistic concurrency).
    VersionIs(u64),
}

/// One write inside an atomic batch.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Create or replace. The stored version becomes `previous + 1` (1 when new);
    /// the `version` field of the given item is ignored.
    Put {
        item: Item,
        condition: Condition,
    },
    Delete {
        key: Key,
        condition: Condition,
    },
    /// Assert a condition on an item without writing it.
    Check {
        key: Key,
        condition: Condition,
    },
}

/// Which key a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Index {
    Primary,
    Gsi1,
    Gsi2,
}

/// Items of one partition, in sort-key order.
#[derive(Debug, Clone)]
pub struct Query {
    pub index: Index,
    pub pk: String,
    /// Only sort keys starting with this prefix.
    pub sk_prefix: Option<String>,
    /// Only sort keys at least this one (inclusive). Not combined with
    /// `sk_prefix`: adapters refuse a query with both (DynamoDB's key
    /// condition holds one sort-key comparison).
    pub sk_from: Option<String>,
    /// Only sort keys at most this one (inclusive); not combined with `sk_prefix`.
    pub sk_to: Option<String>,
    /// Page size, 1..=1000.
    pub limit: u32,
    /// Descending sort-key order when false.
    pub ascending: bool,
    /// Continue after this position (from [`QueryPage::next`]).
    pub after: Option<Position>,
}

impl Query {
    pub fn partition(index: Index, pk: impl Into<String>) -> Self {
        Self {
            index,
            pk: pk.into(),
            sk_prefix: None,
            sk_from: None,
            sk_to: None,
            limit: 100,
            ascending: true,
            after: None,
        }
    }
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.sk_prefix = Some(prefix.into());
        self
    }
    /// Sort keys between `from` and `to`, both inclusive, either open.
    pub fn between(mut self, from: Option<String>, to: Option<String>) -> Self {
        self.sk_from = from;
        self.sk_to = to;
        self
    }
    /// Whether `sk` is inside this query's sort-key condition (prefix or range).
    pub fn covers(&self, sk: &str) -> bool {
        self.sk_prefix.as_deref().is_none_or(|p| sk.starts_with(p))
            && self.sk_from.as_deref().is_none_or(|f| sk >= f)
            && self.sk_to.as_deref().is_none_or(|t| sk <= t)
    }
    /// Refuses what no adapter can serve: a prefix with a range, an empty
    /// range bound (DynamoDB rejects empty strings in key conditions).
    pub fn check_sort_condition(&self) -> Result<(), StoreError> {
        let has_prefix = self.sk_prefix.as_deref().is_some_and(|p| !p.is_empty());
        if has_prefix && (self.sk_from.is_some() || self.sk_to.is_some()) {
            return Err(StoreError::Invalid("a query takes a sort-key prefix or a range, not both".into()));
        }
        if self.sk_from.as_deref() == Some("") || self.sk_to.as_deref() == Some("") {
            return Err(StoreError::Invalid("a sort-key range bound is empty".into()));
        }
        Ok(())
    }
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
    pub fn descending(mut self) -> Self {
        self.ascending = false;
        self
    }
    pub fn after(mut self, after: Option<Position>) -> Self {
        self.after = after;
        self
    }
}

/// Where a page ended: the last item's primary key, plus its index key when the
/// query read `Gsi1` or `Gsi2`. The API turns it into an opaque cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub key: Key,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_key: Option<Key>,
}

#[derive(Debug, Clone)]
pub struct QueryPage {
    pub items: Vec<Item>,
    /// Present when more items may follow.
    pub next: Option<Position>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition of the write did not hold; nothing was written.
    #[error("a write condition did not hold")]
    ConditionFailed,
    /// The write batch or query was malformed (too many ops, same key twice, bad limit).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The backend could not serve the call right now (unreachable, timing
    /// out, throttling, busy); the same call may succeed later.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// The backend failed in a way retrying will not fix (it refused the
    /// request, or is misconfigured).
    #[error("store backend error: {0}")]
    Backend(#[source] BoxError),
    /// A stored item could not be decoded.
    #[error("corrupt item {pk}/{sk}: {reason}")]
    Corrupt { pk: String, sk: String, reason: String },
}

impl StoreError {
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(e))
    }
    pub fn unavailable(e: impl Into<BoxError>) -> Self {
        StoreError::Unavailable(Unavailable::new(Port::Store, e))
    }
}

/// Maximum number of operations in one atomic [`Store::write`] (DynamoDB's limit).
pub const MAX_WRITE_OPS: usize = 100;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Strongly consistent read of one item.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;

    /// One page of a partition. Primary-index reads are strongly consistent;
    /// `Gsi1` and `Gsi2` reads may lag writes (as DynamoDB's GSIs do).
    async fn query(&self, query: &Query) -> Result<QueryPage, StoreError>;

    /// Applies all operations atomically: either every condition holds and every
    /// write happens, or [`StoreError::ConditionFailed`] and nothing is written.
    /// At most [`MAX_WRITE_OPS`] operations, each on a distinct key.
    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError>;

    /// Short name for logs and diagnostics ("sqlite", "dynamodb").
    fn backend_name(&self) -> &'static str;
}
