//! Executes one declarative flow: source pages → filter → mapping → target,
//! page by page. The incremental cursor advances only past records the target
//! accepted, and each page is checkpointed through the caller.

use minijinja::Value as Ctx;
use serde_json::Value;

use super::http::HttpClient;
use super::mapping;
use super::source::{cursor_gt, cursor_text};
use super::substream::Pages;
use super::target::{BatchError, Sink};
use super::template::Templates;
use crate::error::Result;
use crate::manifest::Mapping;
use crate::model::Counters;

/// The per-flow state carried between runs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlowState {
    /// Highest incremental cursor whose records were all written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Value>,
    /// Substreams: the cursor of each partition (parent record), by its key.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub partitions: std::collections::BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowStatus {
    Succeeded,
    /// Some records were refused by the target or failed mapping; the cursor
    /// stayed before them.
    Partial,
    /// The target or source was unavailable; state stays at the last checkpoint.
    Failed,
    /// Stopped after a checkpoint because the time given to this invocation was
    /// running out; a continuation resumes from the saved state.
    Interrupted,
}

#[derive(Debug)]
pub struct FlowOutcome {
    pub status: FlowStatus,
    pub counters: Counters,
    pub state: FlowState,
    /// Human-readable lines for the run's log (no secrets, no record contents).
    pub log: Vec<String>,
    pub error: Option<String>,
}

pub struct Limits {
    pub max_records: Option<u64>,
    /// Past this instant, no new page is started: the flow stops as
    /// `Interrupted` at its last checkpoint. Only flows whose target commits
    /// page by page stop early; a file is committed whole, options are stored
    /// together.
    pub stop_at: Option<std::time::Instant>,
}

/// Persists a flow's state after each page.
#[async_trait::async_trait]
pub trait Checkpoint: Send {
    async fn save(&mut self, state: &FlowState) -> Result<()>;
}

/// Keeps every checkpoint in memory (tests, dry runs).
#[async_trait::async_trait]
impl Checkpoint for Vec<FlowState> {
    async fn save(&mut self, state: &FlowState) -> Result<()> {
        self.push(state.clone());
        Ok(())
    }
}

/// Runs a flow to completion (or failure). `checkpoint` saves the state after
/// every page.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    reader: &mut Pages<'_>,
    mapping: Option<&Mapping>,
    target: &mut Sink<'_>,
    ctx: &Ctx,
    http: &HttpClient,
    templates: &Templates,
    mut state: FlowState,
    limits: &Limits,
    checkpoint: &mut dyn Checkpoint,
) -> Result<FlowOutcome> {
    let start_state = state.clone();
    let mut counters = Counters::default();
    let mut log = Vec::new();
    let mut status = FlowStatus::Succeeded;
    let mut error = None;
    // Once a record was not written, the cursor may not move past it, or the
    // next run would skip it; later pages still run but leave the cursor alone.
    let mut frozen = false;
    let mut pages = 0u64;
    let resumable = target.is_http();
    let mapper = mapping.map(mapping::Mapper::new);
    loop {
        // At least one page per invocation, so every continuation makes progress.
        if pages > 0 && resumable && limits.stop_at.is_some_and(|t| std::time::Instant::now() >= t) {
            log.push("the invocation's time is running out: stopped at the last checkpoint for a continuation".into());
            status = FlowStatus::Interrupted;
            break;
        }
        pages += 1;
        let page = match reader.next_page(ctx).await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                log.push(format!("source failed: {e}"));
                error = Some(e.to_string());
                status = FlowStatus::Failed;
                break;
            }
        };
        let read = page.records.len();
        counters.read += read as u64;
        let page_ctx = page.partition.as_ref().map_or(ctx, |p| &p.ctx);
        let mut out = Vec::with_capacity(read);
        let results = match &mapper {
            Some(m) => match m.map_page(page.records, page_ctx).await {
                Ok(results) => results,
                Err(e) => {
                    log.push(format!("mapping failed: {e}"));
                    error = Some(e.to_string());
                    status = FlowStatus::Failed;
                    break;
                }
            },
            None => page.records.into_iter().map(Ok).collect(),
        };
        for result in results {
            if limits.max_records.is_some_and(|m| counters.written + out.len() as u64 >= m) {
                counters.skipped += 1;
                continue;
            }
            match result {
                Ok(v) => out.push(v),
                Err(e) => {
                    counters.failed += 1;
                    frozen = true;
                    log.push(format!("record not mapped: {e}"));
                }
            }
        }
        match target.write(&out, page_ctx, http, templates).await {
            Ok((written, refused)) => {
                counters.written += written;
                counters.failed += out.len() as u64 - written;
                for why in refused {
                    status = FlowStatus::Partial;
                    frozen = true;
                    log.push(format!("target refused a batch: {why}"));
                }
            }
            Err(BatchError::Unavailable(why)) => {
                log.push(format!("target unavailable, stopping: {why}"));
                error = Some(why);
                status = FlowStatus::Failed;
                break;
            }
            Err(BatchError::Refused(why)) => {
                status = FlowStatus::Partial;
                frozen = true;
                log.push(format!("target refused: {why}"));
            }
            Err(BatchError::Other(e)) => {
                error = Some(e.to_string());
                status = FlowStatus::Failed;
                break;
            }
        }
        if let (Some(c), false) = (page.max_cursor, frozen) {
            let slot = match &page.partition {
                Some(p) => state.partitions.entry(p.key.clone()).or_insert(Value::Null),
                None => state.cursor.get_or_insert(Value::Null),
            };
            if slot.is_null() || cursor_gt(&c, slot) {
                *slot = c;
            }
        }
        if !target.saves_state_per_page() {
            // Saved after the commit below.
        } else if let Err(e) = checkpoint.save(&state).await {
            // The records are written but the cursor is not saved: the next run
            // re-reads them, and idempotency keys keep that harmless.
            log.push(format!("could not save the checkpoint: {e}"));
            error = Some(e.to_string());
            status = FlowStatus::Failed;
            break;
        }
        log.push(format!(
            "page {}{}: {} read, {} written so far{}",
            page.number,
            page.partition.as_ref().map(|p| format!(" of partition {}", p.key)).unwrap_or_default(),
            read,
            counters.written,
            state.cursor.as_ref().map(|c| format!(", cursor {}", cursor_text(c))).unwrap_or_default()
        ));
        if limits.max_records.is_some_and(|m| counters.written >= m) {
            break;
        }
    }
    if !target.saves_state_per_page() {
        if status == FlowStatus::Failed {
            target.abandon().await;
            state = start_state;
        } else if let Err(e) = target.finish().await {
            log.push(format!("could not commit the file: {e}"));
            return Ok(FlowOutcome {
                status: FlowStatus::Failed,
                counters,
                state: start_state,
                log,
                error: Some(e.to_string()),
            });
        } else if let Err(e) = checkpoint.save(&state).await {
            log.push(format!("file committed but the cursor was not saved: {e}"));
            error = Some(e.to_string());
            status = FlowStatus::Failed;
        }
    }
    Ok(FlowOutcome { status, counters, state, log, error })
}
