//! DynamoDB adapter for the store port.
//!
//! The port was modelled on DynamoDB's single-table design, so the mapping is
//! direct: one table, primary key `pk`/`sk`, GSI `gsi1` on `g1pk`/`g1sk` and
//! GSI `gsi2` on `g2pk`/`g2sk` (both projecting every attribute), TTL on
//! `ttl`, the version in `v` and the JSON record in `body`.
//!
//! Every put is an `UpdateItem` (alone, or inside `TransactWriteItems`) rather
//! than a `PutItem`: the port promises `version = previous + 1`, and only an
//! update expression can read the previous version in the same atomic step as
//! the write. Because an update merges into the stored item, it must also
//! `REMOVE` the optional attributes the new item no longer has.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex, IndexStatus,
    KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use ferry_core::ports::store::{
    Condition, Index, Item, Key, Position, Query, QueryPage, Store, StoreError, WriteOp, MAX_WRITE_OPS,
};

use crate::unavailable::{service_error, OperationError};

const ATTR_PK: &str = "pk";
const ATTR_SK: &str = "sk";
const ATTR_G1PK: &str = "g1pk";
const ATTR_G1SK: &str = "g1sk";
const ATTR_G2PK: &str = "g2pk";
const ATTR_G2SK: &str = "g2sk";
const ATTR_VERSION: &str = "v";
const ATTR_TTL: &str = "ttl";
const ATTR_BODY: &str = "body";
const GSI1: &str = "gsi1";
const GSI2: &str = "gsi2";

const MAX_QUERY_LIMIT: u32 = 1000;

/// Retries after `TransactionConflict`, which DynamoDB reports when another
/// transaction holds one of our items; the SDK does not retry it by itself.
const CONFLICT_RETRIES: u32 = 4;

/// Cancellation reasons of a transaction that say DynamoDB could not serve it
/// right now (the transaction as a whole answers 400 TransactionCanceled).
const CANCELLED_UNAVAILABLE: &[&str] = &["ThrottlingError", "ProvisionedThroughputExceeded"];

/// Real tables with a GSI take tens of seconds to become ACTIVE; emulators are instant.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

/// Creates Ferry's table (on-demand billing, `gsi1` and `gsi2`, TTL on `ttl`) and waits
/// until it can be used. An existing table is accepted as is, so deployment
/// tooling and tests may call this unconditionally.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(StoreError::backend)
    };
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().map_err(StoreError::backend)
    };
    let gsi = |name: &str, pk: &str, sk: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(pk, KeyType::Hash)?)
            .key_schema(key(sk, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(StoreError::backend)
    };

    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(ATTR_PK)?)
        .attribute_definitions(attr(ATTR_SK)?)
        .attribute_definitions(attr(ATTR_G1PK)?)
        .attribute_definitions(attr(ATTR_G1SK)?)
        .attribute_definitions(attr(ATTR_G2PK)?)
        .attribute_definitions(attr(ATTR_G2SK)?)
        .key_schema(key(ATTR_PK, KeyType::Hash)?)
        .key_schema(key(ATTR_SK, KeyType::Range)?)
        .global_secondary_indexes(gsi(GSI1, ATTR_G1PK, ATTR_G1SK)?)
        .global_secondary_indexes(gsi(GSI2, ATTR_G2PK, ATTR_G2SK)?)
        .send()
        .await;
    match created {
        Ok(_) => tracing::info!(table, "created DynamoDB table"),
        Err(e) if matches!(e.as_service_error(), Some(CreateTableError::ResourceInUseException(_))) => {
            tracing::debug!(table, "DynamoDB table already exists")
        }
        Err(e) => return Err(failed(e)),
    }

    wait_until_active(client, table).await?;
    enable_ttl(client, table).await
}

async fn wait_until_active(client: &Client, table: &str) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
    let mut delay = Duration::from_millis(50);
    loop {
        let described = client.describe_table().table_name(table).send().await.map_err(failed)?;
        if let Some(desc) = described.table() {
            let table_active = desc.table_status() == Some(&TableStatus::Active);
            let indexes_active =
                desc.global_secondary_indexes().iter().all(|i| i.index_status() == Some(&IndexStatus::Active));
            if table_active && indexes_active {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::backend(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("DynamoDB table {table} did not become ACTIVE in time"),
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

async fn enable_ttl(client: &Client, table: &str) -> Result<(), StoreError> {
    // UpdateTimeToLive fails with a ValidationException when TTL is already on,
    // so look first to keep create_table repeatable.
    let current = client.describe_time_to_live().table_name(table).send().await.map_err(failed)?;
    let status = current.time_to_live_description().and_then(|d| d.time_to_live_status());
    if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
        return Ok(());
    }
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(ATTR_TTL)
        .enabled(true)
        .build()
        .map_err(StoreError::backend)?;
    client.update_time_to_live().table_name(table).time_to_live_specification(spec).send().await.map_err(failed)?;
    Ok(())
}

#[async_trait]
impl Store for DynamoStore {
    #[tracing::instrument(skip_all, fields(table = %self.table))]
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        validate_key(key, "key")?;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(primary_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(failed)?;
        out.item().map(decode_item).transpose()
    }

    #[tracing::instrument(skip_all, fields(table = %self.table, index = ?query.index, limit = query.limit))]
    async fn query(&self, query: &Query) -> Result<QueryPage, StoreError> {
        if query.limit == 0 || query.limit > MAX_QUERY_LIMIT {
            return Err(StoreError::Invalid(format!("query limit must be 1..={MAX_QUERY_LIMIT}, got {}", query.limit)));
        }
        if query.pk.is_empty() {
            return Err(StoreError::Invalid("query partition key is empty".into()));
        }
        query.check_sort_condition()?;
        // DynamoDB rejects an empty string in a key condition; an empty prefix
        // matches everything anyway.
        let prefix = query.sk_prefix.as_deref().filter(|p| !p.is_empty());
        let mut start = query.after.as_ref().map(|p| exclusive_start_key(query, p)).transpose()?;

        let (sk_attr, pk_attr) = match query.index {
            Index::Primary => (ATTR_SK, ATTR_PK),
            Index::Gsi1 => (ATTR_G1SK, ATTR_G1PK),
            Index::Gsi2 => (ATTR_G2SK, ATTR_G2PK),
        };
        let mut names = HashMap::from([("#pk".to_owned(), pk_attr.to_owned())]);
        let mut values = HashMap::from([(":pk".to_owned(), AttributeValue::S(query.pk.clone()))]);
        let mut sk_value = |name: &str, value: &str| {
            names.insert("#sk".into(), sk_attr.into());
            values.insert(name.into(), AttributeValue::S(value.to_owned()));
        };
        let key_condition = match (prefix, query.sk_from.as_deref(), query.sk_to.as_deref()) {
            (Some(p), _, _) => {
                sk_value(":prefix", p);
                "#pk = :pk AND begins_with(#sk, :prefix)"
            }
            (None, Some(from), Some(to)) => {
                // BETWEEN with its bounds crossed is a ValidationException; such a range is empty.
                if from > to {
                    return Ok(QueryPage { items: Vec::new(), next: None });
                }
                sk_value(":from", from);
                sk_value(":to", to);
                "#pk = :pk AND #sk BETWEEN :from AND :to"
            }
            (None, Some(from), None) => {
                sk_value(":from", from);
                "#pk = :pk AND #sk >= :from"
            }
            (None, None, Some(to)) => {
                sk_value(":to", to);
                "#pk = :pk AND #sk <= :to"
            }
            (None, None, None) => "#pk = :pk",
        };

        let limit = query.limit as usize;
        let mut items = Vec::with_capacity(limit.min(100));
        // DynamoDB stops a page at 1 MB of data, possibly short of `limit`;
        // keep reading so pages are as full as the embedded adapter's.
        loop {
            let remaining = i32::try_from(limit - items.len()).unwrap_or(MAX_QUERY_LIMIT as i32);
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(key_condition)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(query.ascending)
                .limit(remaining)
                .set_exclusive_start_key(start.take());
            request = match query.index {
                // GSIs do not support strongly consistent reads; the port documents the lag.
                Index::Primary => request.consistent_read(true),
                Index::Gsi1 => request.index_name(GSI1),
                Index::Gsi2 => request.index_name(GSI2),
            };
            let out = request.send().await.map_err(failed)?;
            for raw in out.items() {
                items.push(decode_item(raw)?);
            }
            match out.last_evaluated_key() {
                None => return Ok(QueryPage { items, next: None }),
                Some(last) if items.len() >= limit => {
                    let next = position_from_key(query.index, last)?;
                    return Ok(QueryPage { items, next: Some(next) });
                }
                Some(last) => start = Some(last.clone()),
            }
        }
    }

    #[tracing::instrument(skip_all, fields(table = %self.table, ops = ops.len()))]
    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        validate_ops(&ops)?;
        let planned: Vec<PlannedOp> =
            ops.iter().filter_map(|op| self.plan(op).transpose()).collect::<Result<_, _>>()?;

        let mut attempt = 0;
        loop {
            let outcome = match planned.as_slice() {
                // Only `Check { condition: None }` ops, which assert nothing.
                [] => return Ok(()),
                [single] => self.write_single(single).await,
                many => self.write_transaction(many).await,
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(Failure::Store(e)) => return Err(e),
                Err(Failure::Conflict(source)) => {
                    // Other writers kept the items busy: the store is as good as throttled.
                    if attempt >= CONFLICT_RETRIES {
                        return Err(StoreError::unavailable(source));
                    }
                    attempt += 1;
                    tracing::debug!(attempt, "DynamoDB transaction conflict, retrying");
                    tokio::time::sleep(conflict_backoff(attempt)).await;
                }
            }
        }
    }

    fn backend_name(&self) -> &'static str {
        "dynamodb"
    }
}

/// A write translated to DynamoDB's vocabulary, reusable across retries and
/// usable either alone or inside a transaction.
#[derive(Debug, Clone)]
struct PlannedOp {
    kind: OpKind,
    key: HashMap<String, AttributeValue>,
    update_expression: Option<String>,
    condition_expression: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Put,
    Delete,
    Check,
}

enum Failure {
    Store(StoreError),
    /// Another transaction touched one of the items; worth retrying.
    Conflict(Box<dyn std::error::Error + Send + Sync>),
}

impl DynamoStore {
    fn plan(&self, op: &WriteOp) -> Result<Option<PlannedOp>, StoreError> {
        let (kind, key, condition) = match op {
            WriteOp::Put { item, condition } => (OpKind::Put, &item.key, *condition),
            WriteOp::Delete { key, condition } => (OpKind::Delete, key, *condition),
            WriteOp::Check { key, condition } => (OpKind::Check, key, *condition),
        };
        if kind == OpKind::Check && condition == Condition::None {
            return Ok(None);
        }
        let mut planned = PlannedOp {
            kind,
            key: primary_key(key),
            update_expression: None,
            condition_expression: None,
            names: HashMap::new(),
            values: HashMap::new(),
        };
        planned.condition_expression = condition_expression(condition, &mut planned.names, &mut planned.values);
        if let WriteOp::Put { item, .. } = op {
            planned.update_expression = Some(put_expression(item, &mut planned.names, &mut planned.values)?);
        }
        Ok(Some(planned))
    }

    async fn write_single(&self, op: &PlannedOp) -> Result<(), Failure> {
        match op.kind {
            OpKind::Put => {
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(op.key.clone()))
                    .set_update_expression(op.update_expression.clone())
                    .set_condition_expression(op.condition_expression.clone())
                    .set_expression_attribute_names(non_empty(&op.names))
                    .set_expression_attribute_values(non_empty(&op.values))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(e) => Err(match answer(e) {
                        Err(unavailable) => Failure::Store(unavailable),
                        Ok(UpdateItemError::ConditionalCheckFailedException(_)) => {
                            Failure::Store(StoreError::ConditionFailed)
                        }
                        Ok(e @ UpdateItemError::TransactionConflictException(_)) => Failure::Conflict(Box::new(e)),
                        Ok(e) => Failure::Store(StoreError::backend(e)),
                    }),
                }
            }
            OpKind::Delete => {
                let result = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(op.key.clone()))
                    .set_condition_expression(op.condition_expression.clone())
                    .set_expression_attribute_names(non_empty(&op.names))
                    .set_expression_attribute_values(non_empty(&op.values))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(e) => Err(match answer(e) {
                        Err(unavailable) => Failure::Store(unavailable),
                        Ok(DeleteItemError::ConditionalCheckFailedException(_)) => {
                            Failure::Store(StoreError::ConditionFailed)
                        }
                        Ok(e @ DeleteItemError::TransactionConflictException(_)) => Failure::Conflict(Box::new(e)),
                        Ok(e) => Failure::Store(StoreError::backend(e)),
                    }),
                }
            }
            // A lone check goes through TransactWriteItems too: it evaluates the
            // condition expression server-side exactly as it would inside a batch.
            OpKind::Check => self.write_transaction(std::slice::from_ref(op)).await,
        }
    }

    async fn write_transaction(&self, ops: &[PlannedOp]) -> Result<(), Failure> {
        let items =
            ops.iter().map(|op| self.transact_item(op)).collect::<Result<Vec<_>, _>>().map_err(Failure::Store)?;
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let err = match answer(err) {
            Ok(err) => err,
            Err(unavailable) => return Err(Failure::Store(unavailable)),
        };
        match &err {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                let codes: Vec<&str> = cancelled.cancellation_reasons().iter().filter_map(|r| r.code()).collect();
                if codes.contains(&"ConditionalCheckFailed") {
                    Err(Failure::Store(StoreError::ConditionFailed))
                } else if codes.contains(&"TransactionConflict") {
                    Err(Failure::Conflict(Box::new(err)))
                } else if codes.iter().any(|c| CANCELLED_UNAVAILABLE.contains(c)) {
                    Err(Failure::Store(StoreError::unavailable(err)))
                } else {
                    Err(Failure::Store(StoreError::backend(err)))
                }
            }
            // Another request with the same idempotency token is still running.
            TransactWriteItemsError::TransactionInProgressException(_) => Err(Failure::Conflict(Box::new(err))),
            _ => Err(Failure::Store(StoreError::backend(err))),
        }
    }

    fn transact_item(&self, op: &PlannedOp) -> Result<TransactWriteItem, StoreError> {
        let item = match op.kind {
            OpKind::Put => TransactWriteItem::builder().update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(op.key.clone()))
                    .set_update_expression(op.update_expression.clone())
                    .set_condition_expression(op.condition_expression.clone())
                    .set_expression_attribute_names(non_empty(&op.names))
                    .set_expression_attribute_values(non_empty(&op.values))
                    .build()
                    .map_err(StoreError::backend)?,
            ),
            OpKind::Delete => TransactWriteItem::builder().delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(op.key.clone()))
                    .set_condition_expression(op.condition_expression.clone())
                    .set_expression_attribute_names(non_empty(&op.names))
                    .set_expression_attribute_values(non_empty(&op.values))
                    .build()
                    .map_err(StoreError::backend)?,
            ),
            OpKind::Check => TransactWriteItem::builder().condition_check(
                ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(op.key.clone()))
                    .set_condition_expression(op.condition_expression.clone())
                    .set_expression_attribute_names(non_empty(&op.names))
                    .set_expression_attribute_values(non_empty(&op.values))
                    .build()
                    .map_err(StoreError::backend)?,
            ),
        };
        Ok(item.build())
    }
}

/// The service's error to match on, or the store's unavailable error
/// (see [`crate::unavailable`]).
fn answer<E: OperationError>(e: SdkError<E, HttpResponse>) -> Result<E, StoreError> {
    service_error(e).map_err(StoreError::unavailable)
}

/// A failed call as the store's error: unavailable, or the service's refusal.
fn failed<E: OperationError>(e: SdkError<E, HttpResponse>) -> StoreError {
    match answer(e) {
        Ok(refused) => StoreError::backend(refused),
        Err(unavailable) => unavailable,
    }
}

fn validate_key(key: &Key, what: &str) -> Result<(), StoreError> {
    // DynamoDB rejects empty strings in key attributes with a ValidationException;
    // reporting it as Invalid keeps it distinguishable from an outage.
    if key.pk.is_empty() || key.sk.is_empty() {
        return Err(StoreError::Invalid(format!("{what} has an empty pk or sk")));
    }
    Ok(())
}

fn validate_ops(ops: &[WriteOp]) -> Result<(), StoreError> {
    if ops.is_empty() || ops.len() > MAX_WRITE_OPS {
        return Err(StoreError::Invalid(format!("a write needs 1..={MAX_WRITE_OPS} operations, got {}", ops.len())));
    }
    let mut seen = HashSet::with_capacity(ops.len());
    for op in ops {
        let key = match op {
            WriteOp::Put { item, .. } => {
                if let Some(gsi1) = &item.gsi1 {
                    validate_key(gsi1, "gsi1 key")?;
                }
                if let Some(gsi2) = &item.gsi2 {
                    validate_key(gsi2, "gsi2 key")?;
                }
                &item.key
            }
            WriteOp::Delete { key, .. } | WriteOp::Check { key, .. } => key,
        };
        validate_key(key, "key")?;
        if !seen.insert(key) {
            return Err(StoreError::Invalid(format!("key {}/{} appears more than once in one write", key.pk, key.sk)));
        }
    }
    Ok(())
}

fn primary_key(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (ATTR_PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (ATTR_SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

/// Expression attribute maps must not be sent empty, and every entry must be
/// used by an expression, so they are only ever filled by the code that uses them.
fn non_empty<V: Clone>(map: &HashMap<String, V>) -> Option<HashMap<String, V>> {
    (!map.is_empty()).then(|| map.clone())
}

fn condition_expression(
    condition: Condition,
    names: &mut HashMap<String, String>,
    values: &mut HashMap<String, AttributeValue>,
) -> Option<String> {
    match condition {
        Condition::None => None,
        Condition::NotExists => {
            names.insert("#pk".into(), ATTR_PK.into());
            Some("attribute_not_exists(#pk)".into())
        }
        Condition::Exists => {
            names.insert("#pk".into(), ATTR_PK.into());
            Some("attribute_exists(#pk)".into())
        }
        Condition::VersionIs(version) => {
            names.insert("#v".into(), ATTR_VERSION.into());
            values.insert(":expected".into(), AttributeValue::N(version.to_string()));
            Some("#v = :expected".into())
        }
    }
}

/// Update expression that makes the stored item equal to `item`, with the
/// version incremented from whatever is stored (absent counts as 0).
fn put_expression(
    item: &Item,
    names: &mut HashMap<String, String>,
    values: &mut HashMap<String, AttributeValue>,
) -> Result<String, StoreError> {
    let body = serde_json::to_string(&item.body)
        .map_err(|e| StoreError::Invalid(format!("item body cannot be serialised: {:?}", e.classify())))?;

    names.insert("#v".into(), ATTR_VERSION.into());
    names.insert("#body".into(), ATTR_BODY.into());
    values.insert(":zero".into(), AttributeValue::N("0".into()));
    values.insert(":one".into(), AttributeValue::N("1".into()));
    values.insert(":body".into(), AttributeValue::S(body));
    let mut set = vec!["#v = if_not_exists(#v, :zero) + :one".to_owned(), "#body = :body".to_owned()];
    let mut remove = Vec::new();

    for (index_key, pk_attr, sk_attr) in [(&item.gsi1, ATTR_G1PK, ATTR_G1SK), (&item.gsi2, ATTR_G2PK, ATTR_G2SK)] {
        names.insert(format!("#{pk_attr}"), pk_attr.into());
        names.insert(format!("#{sk_attr}"), sk_attr.into());
        match index_key {
            Some(k) => {
                values.insert(format!(":{pk_attr}"), AttributeValue::S(k.pk.clone()));
                values.insert(format!(":{sk_attr}"), AttributeValue::S(k.sk.clone()));
                set.push(format!("#{pk_attr} = :{pk_attr}"));
                set.push(format!("#{sk_attr} = :{sk_attr}"));
            }
            None => {
                remove.push(format!("#{pk_attr}"));
                remove.push(format!("#{sk_attr}"));
            }
        }
    }

    names.insert("#ttl".into(), ATTR_TTL.into());
    match item.expires_at {
        Some(at) => {
            values.insert(":ttl".into(), AttributeValue::N(at.to_string()));
            set.push("#ttl = :ttl".into());
        }
        None => remove.push("#ttl".into()),
    }

    let mut expression = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        expression.push_str(" REMOVE ");
        expression.push_str(&remove.join(", "));
    }
    Ok(expression)
}

fn exclusive_start_key(query: &Query, position: &Position) -> Result<HashMap<String, AttributeValue>, StoreError> {
    // DynamoDB answers a start key outside the queried range with a
    // ValidationException; catching it here reports it as the caller's mistake.
    let (partition, sort) = match (query.index, &position.index_key) {
        (Index::Primary, None) => (&position.key.pk, &position.key.sk),
        (Index::Gsi1 | Index::Gsi2, Some(index_key)) => (&index_key.pk, &index_key.sk),
        (Index::Primary, Some(_)) => return Err(StoreError::Invalid("position comes from an index query".into())),
        (Index::Gsi1 | Index::Gsi2, None) => {
            return Err(StoreError::Invalid("position does not come from an index query".into()))
        }
    };
    if *partition != query.pk || !query.covers(sort) {
        return Err(StoreError::Invalid("position does not belong to this query".into()));
    }
    validate_key(&position.key, "position key")?;
    let mut key = primary_key(&position.key);
    if let Some(index_key) = &position.index_key {
        validate_key(index_key, "position index key")?;
        let (pk_attr, sk_attr) = match query.index {
            Index::Gsi2 => (ATTR_G2PK, ATTR_G2SK),
            _ => (ATTR_G1PK, ATTR_G1SK),
        };
        key.insert(pk_attr.into(), AttributeValue::S(index_key.pk.clone()));
        key.insert(sk_attr.into(), AttributeValue::S(index_key.sk.clone()));
    }
    Ok(key)
}

fn position_from_key(index: Index, last: &HashMap<String, AttributeValue>) -> Result<Position, StoreError> {
    let text = |name: &str| -> Result<String, StoreError> {
        match last.get(name) {
            Some(AttributeValue::S(s)) => Ok(s.clone()),
            _ => Err(StoreError::backend(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("DynamoDB LastEvaluatedKey lacks string attribute {name}"),
            ))),
        }
    };
    let key = Key::new(text(ATTR_PK)?, text(ATTR_SK)?);
    let index_key = match index {
        Index::Primary => None,
        Index::Gsi1 => Some(Key::new(text(ATTR_G1PK)?, text(ATTR_G1SK)?)),
        Index::Gsi2 => Some(Key::new(text(ATTR_G2PK)?, text(ATTR_G2SK)?)),
    };
    Ok(Position { key, index_key })
}

fn decode_item(raw: &HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
    let string = |name: &str| match raw.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    };
    let number = |name: &str| match raw.get(name) {
        Some(AttributeValue::N(n)) => Some(n.as_str()),
        _ => None,
    };
    let pk = string(ATTR_PK).unwrap_or_default();
    let sk = string(ATTR_SK).unwrap_or_default();
    let corrupt = |reason: String| StoreError::Corrupt { pk: pk.clone(), sk: sk.clone(), reason };
    if pk.is_empty() || sk.is_empty() {
        return Err(corrupt("missing pk or sk string attribute".into()));
    }

    let gsi1 = match (string(ATTR_G1PK), string(ATTR_G1SK)) {
        (Some(g1pk), Some(g1sk)) => Some(Key::new(g1pk, g1sk)),
        (None, None) => None,
        _ => return Err(corrupt("only one of g1pk and g1sk is present".into())),
    };
    let gsi2 = match (string(ATTR_G2PK), string(ATTR_G2SK)) {
        (Some(g2pk), Some(g2sk)) => Some(Key::new(g2pk, g2sk)),
        (None, None) => None,
        _ => return Err(corrupt("only one of g2pk and g2sk is present".into())),
    };
    let version = number(ATTR_VERSION)
        .ok_or_else(|| corrupt("missing version attribute".into()))?
        .parse::<u64>()
        .map_err(|_| corrupt("version is not an unsigned integer".into()))?;
    let expires_at = match raw.get(ATTR_TTL) {
        None => None,
        Some(AttributeValue::N(n)) => Some(n.parse::<i64>().map_err(|_| corrupt("ttl is not an integer".into()))?),
        Some(_) => return Err(corrupt("ttl is not a number".into())),
    };
    let body_text = string(ATTR_BODY).ok_or_else(|| corrupt("missing body string attribute".into()))?;
    // Only the position of a parse error, never its message: it may quote the body.
    let body = serde_json::from_str(&body_text)
        .map_err(|e| corrupt(format!("body is not valid JSON (line {}, column {})", e.line(), e.column())))?;

    Ok(Item { key: Key::new(pk, sk), gsi1, gsi2, version, expires_at, body })
}

fn conflict_backoff(attempt: u32) -> Duration {
    let base = 25u64 << attempt.min(6);
    Duration::from_millis(base + rand::random::<u64>() % base)
}
