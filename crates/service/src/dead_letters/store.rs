//! Dead letters in the store: where they live (`repo::keys`), the index keys
//! every write sets, the counts kept with the writes, and the records of
//! large ones in the file store.
//!
//! - `T#<tenant>#DL` / `DL#<id>`: the dead letter (gsi1 `T#<tenant>#DL#<status>`
//!   / `<id>`; gsi2 `T#<tenant>#DL#JOB#<job>` / `<status>#<flow>#<category>#<id>`);
//! - `T#<tenant>#DL` / `REC#<job>#<flow>#<fingerprint>`: which dead letter
//!   holds a record of that flow (by its content), written with the letter;
//! - `T#<tenant>#DL` / `COUNT#<job>#<flow>`: its flow's counts by status and
//!   category, rewritten (version checked) in the same atomic write as the
//!   dead letters it counts; while it counts pending ones it is also in the
//!   sparse gsi1 partition `DL#PENDING` / `<tenant>#<job>#<flow>`, so the
//!   platform's pending dead letters are one query of the flows that have
//!   some, never a read of tenants or dead letters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::repo::{keys, records, Page, PageRequest, Versioned};
use ferry_core::error::{Error, Result};
use ferry_core::model::{DeadLetter, DeadLetterCategory, DeadLetterCounts, DeadLetterStatus};
use ferry_core::ports::{Condition, FileStore, Index, Item, Query, Store, StoreError, WriteOp, MAX_WRITE_OPS};

/// Dead letters per atomic write: the rest of [`MAX_WRITE_OPS`] is left to
/// the counts of their flows. With records of at most [`INLINE_BYTES`] each,
/// a write stays under DynamoDB's 4 MB per transaction.
pub(crate) const PER_WRITE: usize = 90;
/// A dead letter whose source and mapped record take more than this (as
/// JSON) keeps them in the file store; the item keeps the rest.
pub const INLINE_BYTES: usize = 32 * 1024;
/// Without a file store, the most a dead letter keeps inline (DynamoDB
/// items are at most 400 KB); a larger record is kept without its body.
const INLINE_MAX_BYTES: usize = 300 * 1024;
/// Rounds of a write that lost a race on its counts.
const ATTEMPTS: usize = 16;

/// The counts of one job's flow (body of `COUNT#<job>#<flow>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct FlowCounts {
    pub(crate) job: String,
    pub(crate) flow: String,
    #[serde(default)]
    pub(crate) counts: DeadLetterCounts,
}

/// The item of a dead letter, with both index keys (a put replaces the whole
/// item: a write without them would take it out of the indexes).
pub fn item(dl: &DeadLetter) -> Result<Item> {
    let status = dl.status.as_str();
    Ok(Item::new(keys::dead_letter(&dl.tenant, &dl.id), records::to_body(dl)?)
        .with_gsi1(ferry_core::ports::Key::new(keys::dead_letters_by_status(&dl.tenant, status), dl.id.clone()))
        .with_gsi2(ferry_core::ports::Key::new(
            keys::dead_letters_of_job(&dl.tenant, &dl.job),
            format!("{status}#{}#{}#{}", dl.flow, dl.category.as_str(), dl.id),
        )))
}

/// The item of a flow's counts: in the platform's pending index while it
/// counts any pending dead letter, out of it otherwise.
fn counts_item(tenant: &str, key: ferry_core::ports::Key, counts: &FlowCounts) -> Result<Item> {
    let item = Item::new(key, records::to_body(counts)?);
    if counts.counts.of_status(DeadLetterStatus::Pending) == 0 {
        return Ok(item);
    }
    let sk = format!("{tenant}#{}#{}", counts.job, counts.flow);
    Ok(item.with_gsi1(ferry_core::ports::Key::new(keys::PENDING_DEAD_LETTERS, sk)))
}

/// A dead letter's record and mapped record when they are in the file store.
#[derive(Debug, Serialize, Deserialize)]
struct Bodies {
    source: Option<serde_json::Value>,
    mapped: Option<serde_json::Value>,
}

/// Moves a large dead letter's records to the file store (or, without
/// one, drops what does not fit in an item, saying so in its error).
pub(crate) async fn place_bodies(files: Option<&dyn FileStore>, dl: &mut DeadLetter) -> Result<()> {
    let size = |v: &Option<serde_json::Value>| v.as_ref().map_or(0, |v| v.to_string().len());
    let bytes = size(&dl.source) + size(&dl.mapped);
    if bytes <= INLINE_BYTES {
        return Ok(());
    }
    match files {
        Some(files) => {
            let path = format!("dead-letters/{}/{}.json", dl.job, dl.id);
            let body = serde_json::to_vec(&Bodies { source: dl.source.take(), mapped: dl.mapped.take() })
                .map_err(|e| Error::Internal(e.to_string()))?;
            let mut w = files.create(&dl.tenant, &path).await?;
            w.write(&body).await?;
            w.commit().await?;
            dl.stored_at = Some(path);
        }
        None if bytes <= INLINE_MAX_BYTES => {}
        None => {
            dl.source = None;
            dl.mapped = None;
            dl.error.push_str(&format!(
                " (the record, {bytes} bytes, was too large to keep without a file store; only its failure is kept)"
            ));
        }
    }
    Ok(())
}

/// Fills in the records of a dead letter kept in the file store.
pub(crate) async fn load_bodies(files: Option<&dyn FileStore>, dl: &mut DeadLetter) -> Result<()> {
    let (Some(path), Some(files)) = (&dl.stored_at, files) else { return Ok(()) };
    if let Some(bytes) = files.read(&dl.tenant, path).await? {
        let bodies: Bodies = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("dead letter '{}': its stored record does not decode: {e}", dl.id)))?;
        dl.source = bodies.source;
        dl.mapped = bodies.mapped;
    }
    Ok(())
}

/// Stores new dead letters with their counts, [`PER_WRITE`] at a time, each
/// write atomic with the counts it changes.
pub async fn insert(store: &dyn Store, letters: &[DeadLetter]) -> Result<()> {
    for chunk in letters.chunks(PER_WRITE) {
        write_with_counts(store, chunk.iter().map(|dl| (None, dl.clone())).collect(), Vec::new()).await?;
    }
    Ok(())
}

/// The body of `REC#<job>#<flow>#<fingerprint>`: the dead letter a record
/// of that flow is kept in.
#[derive(Debug, Serialize, Deserialize)]
struct RecordMark {
    id: String,
}

/// Identifies a failed record within its job's flow by its content (as
/// kept: secrets masked), so the same record failing again finds its letter.
pub(crate) fn fingerprint(job: &str, flow: &str, source: Option<&serde_json::Value>) -> String {
    let body = source.map_or_else(String::new, serde_json::Value::to_string);
    ferry_core::crypto::sha256_hex(format!("{job}\n{flow}\n{body}"))
}

/// Stores a flow's failed records. A record the job's flow dead-lettered
/// before (the same content) counts one more attempt on its letter, which
/// turns pending again unless it was discarded, instead of making another:
/// a flow that reads every record each run keeps one letter per record.
/// `fresh` are the letters as new ones would be, bodies not yet placed.
pub(crate) async fn record_failures(
    store: &dyn Store,
    files: Option<&dyn FileStore>,
    fresh: Vec<DeadLetter>,
) -> Result<()> {
    // One letter per record within the page too; its repeats count as attempts.
    let mut by_print: Vec<(String, DeadLetter)> = Vec::new();
    for dl in fresh {
        let print = fingerprint(&dl.job, &dl.flow, dl.source.as_ref());
        match by_print.iter_mut().find(|(p, _)| *p == print) {
            Some((_, first)) => first.attempts += dl.attempts,
            None => by_print.push((print, dl)),
        }
    }
    // Each record writes its letter and its mark.
    for chunk in by_print.chunks(PER_WRITE / 2) {
        let mut written = false;
        for _ in 0..ATTEMPTS {
            let mut pairs = Vec::with_capacity(chunk.len());
            let mut marks = Vec::new();
            for (print, dl) in chunk {
                let mark_key = keys::dead_letter_record(&dl.tenant, &dl.job, &dl.flow, print);
                let mark = records::get::<RecordMark>(store, &mark_key).await?;
                let known = match &mark {
                    Some(m) => records::get::<DeadLetter>(store, &keys::dead_letter(&dl.tenant, &m.value.id)).await?,
                    None => None,
                };
                match known {
                    Some(current) => {
                        let again = failed_again(&current.value, dl);
                        pairs.push((Some(current), again));
                    }
                    None => {
                        let mut new = dl.clone();
                        place_bodies(files, &mut new).await?;
                        let condition = mark.as_ref().map_or(Condition::NotExists, |m| Condition::VersionIs(m.version));
                        let body = records::to_body(&RecordMark { id: new.id.clone() })?;
                        marks.push(WriteOp::Put { item: Item::new(mark_key, body), condition });
                        pairs.push((None, new));
                    }
                }
            }
            match write_with_counts(store, pairs, marks).await {
                Ok(()) => {
                    written = true;
                    break;
                }
                // Another run stored or changed one of these records meanwhile: read again.
                Err(Error::Conflict { code: "dead_letter_changed", .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        if !written {
            return Err(Error::conflict("concurrent_update", "dead letters kept changing; retry"));
        }
    }
    Ok(())
}

/// A stored letter whose record failed again in a later run (`now` holds
/// the new attempt). Its record stays as first kept (it is the same record);
/// a discarded letter stays discarded, as the operator decided about it.
fn failed_again(current: &DeadLetter, now: &DeadLetter) -> DeadLetter {
    let mut next = current.clone();
    next.attempts += now.attempts;
    next.last_seen = now.last_seen;
    next.last_run = now.last_run.clone();
    next.error = now.error.clone();
    next.category = now.category;
    if next.status != DeadLetterStatus::Discarded {
        next.status = DeadLetterStatus::Pending;
    }
    next
}

/// What a change of stored dead letters does to one of them.
pub(crate) type Change<'a> = &'a (dyn Fn(&DeadLetter) -> Option<DeadLetter> + Sync);

/// Applies `change` to the dead letters `ids` (read fresh, their versions
/// checked), [`PER_WRITE`] at a time, with their counts; `None` from
/// `change` leaves one alone. Returns the dead letters as written.
pub(crate) async fn update(
    store: &dyn Store,
    tenant: &str,
    ids: &[String],
    change: Change<'_>,
) -> Result<Vec<DeadLetter>> {
    let mut written = Vec::new();
    for chunk in ids.chunks(PER_WRITE) {
        let mut done = false;
        for _ in 0..ATTEMPTS {
            let mut pairs = Vec::new();
            for id in chunk {
                let Some(current) = records::get::<DeadLetter>(store, &keys::dead_letter(tenant, id)).await? else {
                    continue;
                };
                if let Some(next) = change(&current.value) {
                    pairs.push((Some(current), next));
                }
            }
            let after: Vec<DeadLetter> = pairs.iter().map(|(_, dl)| dl.clone()).collect();
            match write_with_counts(store, pairs, Vec::new()).await {
                Ok(()) => {
                    written.extend(after);
                    done = true;
                    break;
                }
                Err(Error::Conflict { code: "dead_letter_changed", .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        if !done {
            return Err(Error::conflict("concurrent_update", "dead letters kept changing while being updated; retry"));
        }
    }
    Ok(written)
}

/// One atomic write of dead letters (each with the version it was read at,
/// `None` for a new one) and the counts of their flows.
async fn write_with_counts(
    store: &dyn Store,
    letters: Vec<(Option<Versioned<DeadLetter>>, DeadLetter)>,
    marks: Vec<WriteOp>,
) -> Result<()> {
    if letters.is_empty() {
        return Ok(());
    }
    for _ in 0..ATTEMPTS {
        let mut deltas: BTreeMap<(String, String), BTreeMap<(DeadLetterStatus, DeadLetterCategory), i64>> =
            BTreeMap::new();
        let mut ops = Vec::with_capacity(letters.len() + marks.len() + 2);
        ops.extend(marks.iter().cloned());
        for (before, after) in &letters {
            let d = deltas.entry((after.job.clone(), after.flow.clone())).or_default();
            if let Some(b) = before {
                *d.entry((b.value.status, b.value.category)).or_default() -= 1;
            }
            *d.entry((after.status, after.category)).or_default() += 1;
            let condition = before.as_ref().map_or(Condition::NotExists, |b| Condition::VersionIs(b.version));
            ops.push(WriteOp::Put { item: item(after)?, condition });
        }
        let tenant = &letters[0].1.tenant;
        for ((job, flow), delta) in deltas {
            let key = keys::dead_letter_counts(tenant, &job, &flow);
            let (mut counts, condition) = match records::get::<FlowCounts>(store, &key).await? {
                Some(c) => (c.value, Condition::VersionIs(c.version)),
                None => {
                    (FlowCounts { job: job.clone(), flow: flow.clone(), ..Default::default() }, Condition::NotExists)
                }
            };
            for ((status, category), n) in delta {
                counts.counts.add(status, category, n);
            }
            ops.push(WriteOp::Put { item: counts_item(tenant, key, &counts)?, condition });
        }
        debug_assert!(ops.len() <= MAX_WRITE_OPS);
        match store.write(ops).await {
            Ok(()) => return Ok(()),
            // Either a count changed under us (retry with fresh counts) or a
            // dead letter did (the caller reads it again).
            Err(StoreError::ConditionFailed) => {
                if !marks.is_empty() || letters.iter().any(|(b, _)| b.is_some()) {
                    return Err(Error::conflict("dead_letter_changed", "a dead letter changed meanwhile"));
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::conflict("concurrent_update", "dead-letter counts kept changing; retry"))
}

/// The counts of a tenant's flows (of one job's, with `job`): one query of
/// the `COUNT#` items, whatever the number of dead letters.
pub(crate) async fn flow_counts(store: &dyn Store, tenant: &str, job: Option<&str>) -> Result<Vec<FlowCounts>> {
    let prefix = match job {
        Some(j) => format!("COUNT#{j}#"),
        None => "COUNT#".to_owned(),
    };
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let q = Query::partition(Index::Primary, keys::dead_letters_partition(tenant)).prefix(prefix.clone());
        let page: Page<FlowCounts> = records::list(store, q, &PageRequest { limit: Some(200), cursor }).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(all),
        }
    }
}

/// Every tenant's pending dead letters: the counts in the pending index.
pub(crate) async fn platform_pending(store: &dyn Store) -> Result<u64> {
    let mut total = 0;
    let mut cursor = None;
    loop {
        let q = Query::partition(Index::Gsi1, keys::PENDING_DEAD_LETTERS);
        let page: Page<FlowCounts> = records::list(store, q, &PageRequest { limit: Some(200), cursor }).await?;
        total += page.items.iter().map(|c| c.counts.of_status(DeadLetterStatus::Pending)).sum::<u64>();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(total),
        }
    }
}

/// A tenant's pending dead letters, from its counts.
pub(crate) async fn pending(store: &dyn Store, tenant: &str) -> Result<u64> {
    Ok(flow_counts(store, tenant, None).await?.iter().map(|c| c.counts.of_status(DeadLetterStatus::Pending)).sum())
}
