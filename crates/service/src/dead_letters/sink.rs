//! The engine's [`DeadLetters`] port over the store: a flow of a run hands
//! it each page's failed records in one call; they are masked, large ones
//! moved to the file store, and written with their counts, a record failing
//! again counted on the letter it already has ([`super::store::record_failures`]).

use std::sync::Arc;

use serde_json::Value;

use super::store;
use ferry_core::error::Result;
use ferry_core::model::{DeadLetter, DeadLetterStatus, MappedWith};
use ferry_core::ports::{Clock, FileStore, IdGen, Store};
use ferry_engine::dead_letter::{DeadLetters, Failed};
use ferry_engine::redact::Redactor;

/// Where one flow of one run keeps its dead letters.
pub(crate) struct FlowDeadLetters {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) files: Option<Arc<dyn FileStore>>,
    pub(crate) ids: Arc<dyn IdGen>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Every secret the job could reach: none of them is kept.
    pub(crate) redactor: Redactor,
    pub(crate) tenant: String,
    pub(crate) job: String,
    pub(crate) run: String,
    pub(crate) flow: String,
    pub(crate) mapped_with: MappedWith,
}

#[async_trait::async_trait]
impl DeadLetters for FlowDeadLetters {
    async fn store(&self, records: Vec<Failed>) -> Result<()> {
        let now = self.clock.now();
        let mut letters = Vec::with_capacity(records.len());
        for failed in records {
            let dl = DeadLetter {
                id: self.ids.next_id(),
                tenant: self.tenant.clone(),
                job: self.job.clone(),
                run: self.run.clone(),
                flow: self.flow.clone(),
                category: failed.category,
                error: self.redactor.redact(&failed.error),
                attempts: 1,
                first_seen: now,
                last_seen: now,
                status: DeadLetterStatus::Pending,
                source: Some(masked(&self.redactor, failed.source)),
                mapped: failed.mapped.map(|m| masked(&self.redactor, m)),
                mapped_with: self.mapped_with.clone(),
                stored_at: None,
                last_run: self.run.clone(),
            };
            letters.push(dl);
        }
        store::record_failures(self.store.as_ref(), self.files.as_deref(), letters).await
    }
}

/// A record with every form of every secret masked (a source may echo a
/// credential, a mapping may copy one from the connection's settings).
pub(crate) fn masked(redactor: &Redactor, record: Value) -> Value {
    if redactor.is_empty() {
        return record;
    }
    let text = record.to_string();
    let clean = redactor.redact(&text);
    if clean == text {
        return record;
    }
    // A mask inside a JSON string keeps it JSON; a secret spanning syntax is
    // kept as masked text rather than lost.
    serde_json::from_str(&clean).unwrap_or(Value::String(clean))
}
