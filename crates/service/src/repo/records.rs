//! Typed reads and writes of records over the store port, and opaque cursors.

use base64::Engine as _;
use serde::{de::DeserializeOwned, Serialize};

use ferry_core::error::{Error, Result};
use ferry_core::ports::{Condition, Index, Item, Key, Position, Query, Store, StoreError, WriteOp};

/// A decoded record and the version it was read at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

pub fn to_body<T: Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::Internal(format!("record failed to serialise: {e}")))
}

pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<Versioned<T>> {
    let version = item.version;
    let Key { pk, sk } = item.key;
    let value = serde_json::from_value(item.body)
        .map_err(|e| Error::Store(StoreError::Corrupt { pk, sk, reason: format!("record does not decode: {e}") }))?;
    Ok(Versioned { value, version })
}

pub async fn get<T: DeserializeOwned>(store: &dyn Store, key: &Key) -> Result<Option<Versioned<T>>> {
    match store.get(key).await? {
        Some(item) => Ok(Some(from_item(item)?)),
        None => Ok(None),
    }
}

pub fn put<T: Serialize>(key: Key, value: &T, condition: Condition) -> Result<WriteOp> {
    Ok(WriteOp::Put { item: Item::new(key, to_body(value)?), condition })
}

/// Runs a write batch, turning a failed condition into the given conflict.
pub async fn write_or_conflict(store: &dyn Store, ops: Vec<WriteOp>, conflict: impl FnOnce() -> Error) -> Result<()> {
    match store.write(ops).await {
        Ok(()) => Ok(()),
        Err(StoreError::ConditionFailed) => Err(conflict()),
        Err(e) => Err(e.into()),
    }
}

/// A page of records plus the opaque cursor of the next page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Page-size bounds applied to every list endpoint.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageRequest {
    pub fn limit(&self) -> Result<u32> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(Error::invalid("invalid_limit", format!("limit must be between 1 and {MAX_PAGE}, got {n}"))),
        }
    }
}

/// Cursors are the store position, base64url-encoded. Decoding checks that the
/// position belongs to the partition being listed, so a cursor crafted for
/// another tenant's partition is rejected rather than followed.
pub fn encode_cursor(position: &Position) -> String {
    let json = serde_json::to_vec(position).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

pub fn decode_cursor(cursor: &str, index: Index, pk: &str, sk_prefix: Option<&str>) -> Result<Position> {
    let mut query = Query::partition(index, pk);
    query.sk_prefix = sk_prefix.map(str::to_owned);
    decode_cursor_of(cursor, &query)
}

/// Decodes a cursor for `query`: its position must lie in the query's
/// partition and inside its sort-key condition (prefix or range).
pub fn decode_cursor_of(cursor: &str, query: &Query) -> Result<Position> {
    let bad = || Error::invalid("invalid_cursor", "cursor is not one this list returned; start again without it");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor.as_bytes()).map_err(|_| bad())?;
    let position: Position = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let index_key = match (query.index, &position.index_key) {
        (Index::Primary, None) => &position.key,
        (Index::Gsi1 | Index::Gsi2, Some(k)) => k,
        _ => return Err(bad()),
    };
    if index_key.pk != query.pk || !query.covers(&index_key.sk) {
        return Err(bad());
    }
    Ok(position)
}

/// Lists one page of records of a partition, optionally filtered by sort-key prefix.
pub async fn list<T: DeserializeOwned>(store: &dyn Store, query: Query, page: &PageRequest) -> Result<Page<T>> {
    let after = match &page.cursor {
        Some(c) => Some(decode_cursor_of(c, &query)?),
        None => None,
    };
    let query = query.limit(page.limit()?).after(after);
    let result = store.query(&query).await?;
    let items = result.items.into_iter().map(|i| from_item(i).map(|v| v.value)).collect::<Result<Vec<T>>>()?;
    Ok(Page { items, next_cursor: result.next.as_ref().map(encode_cursor) })
}
