//! Executes one declarative flow: source pages → filter → mapping → target,
//! page by page. The incremental cursor advances only past records the target
//! accepted, and each page is checkpointed through the caller.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use minijinja::Value as Ctx;
use serde_json::Value;

use super::dead_letter::{DeadLetters, Failed};
use super::http::HttpClient;
use super::mapping;
use super::resume::Resume;
use super::source::{cursor_gt, cursor_text, PagePartition};
use super::substream::{Pages, SourcePosition};
use super::target::{BatchError, Sink};
use super::template::Templates;
use super::window::{Writes, Written};
use ferry_core::error::Result;
use ferry_core::manifest::{Mapping, OnRecordError};
use ferry_core::model::{Counters, DeadLetterCategory};

/// The per-flow state carried between runs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlowState {
    /// Highest incremental cursor whose records were all written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Value>,
    /// Substreams: the cursor of each partition (parent record), by its key.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub partitions: std::collections::BTreeMap<String, Value>,
    /// Where an unfinished run stopped in the flow, for its continuation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
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
    /// Stopped for good before the source was exhausted; state stays at the last checkpoint.
    Halted(Halt),
}

/// Why a run stops for good before its flows end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// An operator cancelled the run.
    Cancelled,
    /// The run spent its wall-clock budget.
    OutOfTime,
    /// The run's hold on its job lapsed and another run took the job over:
    /// going on would write concurrently with it.
    LeaseLost,
}

impl Halt {
    fn code(self) -> u8 {
        match self {
            Halt::Cancelled => 1,
            Halt::OutOfTime => 2,
            Halt::LeaseLost => 3,
        }
    }
    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Halt::Cancelled),
            2 => Some(Halt::OutOfTime),
            3 => Some(Halt::LeaseLost),
            _ => None,
        }
    }
}

/// A run's stop signal, shared by its driver, the API of the same process
/// (cancel) and the code mapping its records. [`Stop::halted`] is cheap
/// (an atomic load and a clock read), so a mapping loop can call it per
/// record: work that burns CPU inside one page cannot be preempted otherwise.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    flag: Arc<AtomicU8>,
    deadline: Option<Instant>,
}

impl Stop {
    /// A signal that also fires by itself at `deadline` (the run's budget).
    pub fn new(deadline: Option<Instant>) -> Self {
        Self { flag: Arc::default(), deadline }
    }

    /// Asks every holder to stop; the first reason given wins.
    pub fn halt(&self, why: Halt) {
        let _ = self.flag.compare_exchange(0, why.code(), Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Why work must stop now, if it must.
    pub fn halted(&self) -> Option<Halt> {
        Halt::from_code(self.flag.load(Ordering::SeqCst))
            .or_else(|| self.deadline.filter(|d| Instant::now() >= *d).map(|_| Halt::OutOfTime))
    }
}

/// Called at each page boundary, after the checkpoint: keeps the run's hold
/// on its job, persists its counters so far (a crash keeps what was written)
/// and says whether the run must stop.
#[async_trait::async_trait]
pub trait Pulse: Send + Sync {
    async fn beat(&self, counters: &Counters) -> Result<Option<Halt>>;
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

#[derive(Default)]
pub struct Limits {
    pub max_records: Option<u64>,
    /// Past this instant, no new page is started: the flow stops as
    /// `Interrupted` at its last checkpoint. Flows writing options are stored
    /// together, and do not stop early.
    pub stop_at: Option<std::time::Instant>,
    /// The run, named in the resume points the flow saves.
    pub run: String,
    /// Checked before each page and before each write.
    pub stop: Stop,
    /// Beats after each page; `None` for dry runs and tests.
    pub pulse: Option<Arc<dyn Pulse>>,
    /// The flow's `on_record_error`.
    pub on_record_error: OnRecordError,
    /// Where `dead_letter` keeps failed records. Without it (dry runs,
    /// tests) a failed record is counted `failed` and the cursor stays before
    /// it, as `dead_letter` cannot keep it safe.
    pub dead_letters: Option<Arc<dyn DeadLetters>>,
}

/// What a flow does with a record that failed mapping or was refused.
enum Policy<'a> {
    Keep(&'a dyn DeadLetters),
    Fail,
    Skip,
    /// `dead_letter` without a place to keep them.
    Hold,
}

impl Limits {
    fn policy(&self) -> Policy<'_> {
        match (self.on_record_error, &self.dead_letters) {
            (OnRecordError::DeadLetter, Some(d)) => Policy::Keep(d.as_ref()),
            (OnRecordError::DeadLetter, None) => Policy::Hold,
            (OnRecordError::Fail, _) => Policy::Fail,
            (OnRecordError::Skip, _) => Policy::Skip,
        }
    }
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
///
/// Boxed on purpose: rustc compiles an `async fn`'s body, and every engine
/// `async fn` it awaits, in the crate that polls it. Awaited directly from
/// ferry-service, the per-record loop was built at that crate's opt-level
/// ("z" in `release`, the `sync` function's profile) and ran 15-25% more
/// instructions per record than in `host` (README, Engine). Turning the
/// future into a trait object here makes this crate build its `poll`, at
/// opt-level 3.
#[allow(clippy::too_many_arguments)]
pub fn run<'f>(
    reader: &'f mut Pages<'_>,
    mapping: Option<&'f Mapping>,
    target: &'f mut Sink<'_>,
    ctx: &'f Ctx,
    http: &'f HttpClient,
    templates: &'f Templates,
    state: FlowState,
    limits: &'f Limits,
    checkpoint: &'f mut dyn Checkpoint,
) -> futures_util::future::BoxFuture<'f, Result<FlowOutcome>> {
    Box::pin(drive(reader, mapping, target, ctx, http, templates, state, limits, checkpoint))
}

#[allow(clippy::too_many_arguments)]
async fn drive(
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
    // A continuation of the run reads on where its last slice stopped (the
    // caller hands over only resume points of this run).
    let resume = state.resume.take();
    let start_state = state.clone();
    let resumable = target.resumable();
    if let Some(r) = &resume {
        reader.seek(&r.source);
        if let Some(f) = &r.file {
            // The cursor of the file's records so far: committed with the file.
            (state.cursor, state.partitions) = (f.cursor.clone(), f.partitions.clone());
        }
    }
    let mut at =
        Saved { state: start_state.clone(), counters: Counters::default(), resume: resume.is_some(), bytes: 0 };
    if let Some(f) = resume.as_ref().and_then(|r| r.file.as_ref()) {
        at.bytes = f.upload.bytes;
    }
    let mut counters = Counters::default();
    let mut log = Vec::new();
    let mut status = FlowStatus::Succeeded;
    let mut error = None;
    // Once a record was not written, the cursor may not move past it, or the
    // next run would skip it; later pages still run but leave the cursor alone.
    let mut frozen = false;
    let mut pages = 0u64;
    let per_page = target.saves_state_per_page();
    let mapper = mapping.map(mapping::Mapper::new);
    let mut writes: Writes<'_, '_, Sent> = Writes::new(target);
    // Records handed to the target whose pages are not committed yet (max_records counts them).
    let mut ahead = 0u64;
    let mut reading = true;
    // Pages at the target whose outcome the flow has not taken yet.
    let mut pending = 0usize;
    loop {
        let interrupting = pages > 0 && resumable && limits.stop_at.is_some_and(|t| std::time::Instant::now() >= t);
        // The pages at the target are committed before the flow stops for a
        // continuation, so its checkpoint covers them.
        if !reading || writes.full() || (interrupting && pending > 0) {
            // The oldest page at the target is committed before anything else.
            let Some(Written { result, records: out, page }) = writes.next().await else { break };
            let Sent {
                number,
                partition,
                max_cursor,
                read,
                mut sources,
                mut letters,
                mut skipped,
                left,
                unmapped,
                frozen: held,
                position,
            } = page;
            pending -= 1;
            ahead -= out.len() as u64;
            counters.read += read as u64;
            counters.skipped += left;
            counters.failed += unmapped;
            frozen |= held;
            let policy = limits.policy();
            let mut fail = None;
            match result {
                Ok(report) => {
                    counters.written += report.written;
                    let mut first = true;
                    for rejected in report.rejected {
                        if first || !matches!(policy, Policy::Keep(_)) {
                            log.push(format!("target refused a record: {}", rejected.error));
                        }
                        first = false;
                        match &policy {
                            Policy::Keep(_) => {
                                let (source, mapped) = match sources.get_mut(rejected.index).and_then(Option::take) {
                                    Some(source) => (source, out.get(rejected.index).cloned()),
                                    None => (out.get(rejected.index).cloned().unwrap_or_default(), None),
                                };
                                let error = match rejected.excerpt {
                                    Some(x) => format!("{}: {x}", rejected.error),
                                    None => rejected.error,
                                };
                                letters.push(Failed {
                                    category: DeadLetterCategory::TargetRejected,
                                    error,
                                    source,
                                    mapped,
                                });
                            }
                            Policy::Skip => skipped += 1,
                            Policy::Fail => {
                                fail = fail.or(Some(format!("target refused a record: {}", rejected.error)))
                            }
                            Policy::Hold => {
                                counters.failed += 1;
                                status = FlowStatus::Partial;
                                frozen = true;
                            }
                        }
                    }
                }
                Err(BatchError::Unavailable(why)) => {
                    log.push(format!("target unavailable, stopping: {why}"));
                    error = Some(why);
                    status = FlowStatus::Failed;
                    break;
                }
                Err(BatchError::Refused(why, _)) => {
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
            if let Some(why) = fail {
                log.push("the flow fails (on_record_error: fail) at its last checkpoint".into());
                error = Some(why);
                status = FlowStatus::Failed;
                break;
            }
            if skipped > 0 {
                counters.skipped += skipped;
                status = partial(status);
            }
            if let (Policy::Keep(port), false) = (&policy, letters.is_empty()) {
                let n = letters.len() as u64;
                let mapping_errors = letters.iter().filter(|l| l.category == DeadLetterCategory::Mapping).count();
                // Only once they are stored may the cursor move past them.
                if let Err(e) = port.store(letters).await {
                    log.push(format!("could not store {n} dead letters, stopping at the last checkpoint: {e}"));
                    error = Some(e.to_string());
                    status = FlowStatus::Failed;
                    break;
                }
                counters.dead_lettered += n;
                status = partial(status);
                log.push(format!(
                    "page {number}: {n} records dead-lettered ({mapping_errors} not mapped, {} refused by the target)",
                    n as usize - mapping_errors
                ));
            }
            if let (Some(c), false) = (max_cursor, frozen) {
                let slot = match &partition {
                    Some(p) => state.partitions.entry(p.key.clone()).or_insert(Value::Null),
                    None => state.cursor.get_or_insert(Value::Null),
                };
                if slot.is_null() || cursor_gt(&c, slot) {
                    *slot = c;
                }
            }
            // Before the checkpoint: a run that lost its job or was cancelled must
            // not move the cursor under the run that holds the job now (the page
            // is read again; idempotency keys keep that harmless).
            if let Some(pulse) = &limits.pulse {
                match pulse.beat(&counters).await {
                    Ok(None) => {}
                    Ok(Some(why)) => {
                        limits.stop.halt(why);
                        log.push(format!("stopped after page {number}: {}", halt_text(why)));
                        status = FlowStatus::Halted(why);
                        break;
                    }
                    Err(e) => {
                        log.push(format!("could not record the run's progress: {e}"));
                        error = Some(e.to_string());
                        status = FlowStatus::Failed;
                        break;
                    }
                }
            }
            if !per_page {
                // The cursor is saved after the commit below; the file's durable
                // point (S3: a part uploaded) is a checkpoint of this page.
                if let Err(e) = file_checkpoint(
                    writes.sink(),
                    &position,
                    &state,
                    &start_state,
                    &counters,
                    &mut at,
                    limits,
                    checkpoint,
                    false,
                )
                .await
                {
                    log.push(format!("could not save the file's checkpoint: {e}"));
                    error = Some(e.to_string());
                    status = FlowStatus::Failed;
                    break;
                }
            } else if let Err(e) = checkpoint.save(&resume_at(&state, position, resumable, limits)).await {
                // The records are written but the cursor is not saved: the next run
                // re-reads them, and idempotency keys keep that harmless.
                log.push(format!("could not save the checkpoint: {e}"));
                error = Some(e.to_string());
                status = FlowStatus::Failed;
                break;
            } else {
                at = Saved { state: state.clone(), counters: counters.clone(), resume: resumable, bytes: 0 };
            }
            log.push(format!(
                "page {number}{}: {} read, {} written so far{}",
                partition.as_ref().map(|p| format!(" of partition {}", p.key)).unwrap_or_default(),
                read,
                counters.written,
                state.cursor.as_ref().map(|c| format!(", cursor {}", cursor_text(c))).unwrap_or_default()
            ));
            if limits.max_records.is_some_and(|m| counters.written >= m) {
                reading = false;
            }
            continue;
        }
        if let Some(why) = limits.stop.halted() {
            log.push(format!("stopped before the next page: {}", halt_text(why)));
            status = FlowStatus::Halted(why);
            reading = false;
            continue;
        }
        // At least one page per invocation, so every continuation makes progress.
        if interrupting {
            log.push("the invocation's time is running out: stopped at the last checkpoint for a continuation".into());
            reading = false;
            status = FlowStatus::Interrupted;
            if let Err(e) = file_checkpoint(
                writes.sink(),
                &reader.position(),
                &state,
                &start_state,
                &counters,
                &mut at,
                limits,
                checkpoint,
                true,
            )
            .await
            {
                log.push(format!("could not save the file's checkpoint: {e}"));
                error = Some(e.to_string());
                status = FlowStatus::Failed;
            } else if at.counters != counters {
                // Past the file's durable point: the continuation reads those records again.
                log.push(format!(
                    "{} records past the file's last durable point are read again by the continuation",
                    counters.read - at.counters.read
                ));
                counters = at.counters.clone();
            }
            continue;
        }
        pages += 1;
        let page = match writes.meanwhile(reader.next_page(ctx)).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                reading = false;
                continue;
            }
            Err(e) => {
                log.push(format!("source failed: {e}"));
                error = Some(e.to_string());
                status = FlowStatus::Failed;
                reading = false;
                continue;
            }
        };
        let read = page.records.len();
        let page_ctx = page.partition.as_ref().map_or(ctx, |p| &p.ctx).clone();
        let policy = limits.policy();
        // Dead letters keep each record as read: the source goes along with its mapped form.
        let keep = matches!(policy, Policy::Keep(_)) && mapper.is_some();
        let mut out = Vec::with_capacity(read);
        let mut sent = Sent {
            number: page.number,
            partition: page.partition,
            max_cursor: page.max_cursor,
            read,
            sources: Vec::new(),
            letters: Vec::new(),
            skipped: 0,
            left: 0,
            unmapped: 0,
            frozen: false,
            position: reader.position(),
        };
        let mut fail = None;
        let results: Vec<(Result<Value>, Option<Value>)> = match &mapper {
            Some(m) if keep => match writes.meanwhile(m.map_page_keeping(page.records, &page_ctx)).await {
                Ok(results) => results.into_iter().map(|(r, s)| (r, Some(s))).collect(),
                Err(e) => {
                    log.push(format!("mapping failed: {e}"));
                    error = Some(e.to_string());
                    status = FlowStatus::Failed;
                    reading = false;
                    continue;
                }
            },
            Some(m) => match writes.meanwhile(m.map_page(page.records, &page_ctx)).await {
                Ok(results) => results.into_iter().map(|r| (r, None)).collect(),
                Err(e) => {
                    log.push(format!("mapping failed: {e}"));
                    error = Some(e.to_string());
                    status = FlowStatus::Failed;
                    reading = false;
                    continue;
                }
            },
            None => page.records.into_iter().map(|r| (Ok(r), None)).collect(),
        };
        for (result, source) in results {
            if limits.max_records.is_some_and(|m| counters.written + ahead + out.len() as u64 >= m) {
                // Left for the next run: the cursor may not pass it (a page's
                // records need not be in cursor order, so the whole page is
                // read again; idempotency keys keep its written part harmless).
                sent.left += 1;
                sent.frozen = true;
                continue;
            }
            match (result, &policy) {
                (Ok(v), _) => {
                    out.push(v);
                    if keep {
                        sent.sources.push(source);
                    }
                }
                (Err(e), Policy::Keep(_)) => sent.letters.push(Failed {
                    category: DeadLetterCategory::Mapping,
                    error: e.to_string(),
                    source: source.unwrap_or_default(),
                    mapped: None,
                }),
                (Err(e), Policy::Skip) => {
                    sent.skipped += 1;
                    log.push(format!("record skipped: not mapped: {e}"));
                }
                (Err(e), Policy::Fail) => {
                    fail = Some(format!("record not mapped: {e}"));
                    break;
                }
                (Err(e), Policy::Hold) => {
                    sent.unmapped += 1;
                    sent.frozen = true;
                    log.push(format!("record not mapped: {e}"));
                }
            }
        }
        if let Some(why) = fail {
            log.push(format!("{why}; the flow fails (on_record_error: fail) at its last checkpoint"));
            error = Some(why);
            status = FlowStatus::Failed;
            reading = false;
            continue;
        }
        // Mapping a page can take long: a cancel or the budget may have come meanwhile.
        if let Some(why) = limits.stop.halted() {
            log.push(format!("stopped before writing page {}: {}", sent.number, halt_text(why)));
            status = FlowStatus::Halted(why);
            reading = false;
            continue;
        }
        let stop_at_rejection = matches!(policy, Policy::Fail);
        ahead += out.len() as u64;
        pending += 1;
        writes.send(out, page_ctx, http, templates, stop_at_rejection, sent).await;
    }
    drop(writes);
    // The flow ended: its resume point goes, except for a run that lost its
    // job (the job's state is the other run's now).
    let ended = !matches!(status, FlowStatus::Interrupted | FlowStatus::Halted(Halt::LeaseLost));
    if !target.saves_state_per_page() {
        if status == FlowStatus::Interrupted {
            // The file goes on in the continuation.
        } else if matches!(status, FlowStatus::Failed | FlowStatus::Halted(_)) {
            target.abandon().await;
            state = start_state;
            if ended && at.resume {
                if let Err(e) = checkpoint.save(&state).await {
                    log.push(format!("could not clear the flow's resume point: {e}"));
                }
            }
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
    } else if ended && at.resume {
        if let Err(e) = checkpoint.save(&at.state).await {
            log.push(format!("could not clear the flow's resume point: {e}"));
        }
    }
    Ok(FlowOutcome { status, counters, state, log, error })
}

/// The last checkpoint the flow saved: the state it holds (without the
/// resume point), the counters at that point, whether it holds a resume
/// point, and how much of its file was durable then.
struct Saved {
    state: FlowState,
    counters: Counters,
    resume: bool,
    bytes: u64,
}

/// What the flow keeps of a page while its records are at the target.
struct Sent {
    number: u32,
    partition: Option<PagePartition>,
    max_cursor: Option<Value>,
    read: usize,
    /// Each written record's source, when dead letters keep them.
    sources: Vec<Option<Value>>,
    /// Records that failed mapping, kept as dead letters.
    letters: Vec<Failed>,
    /// Records that failed mapping, skipped (`on_record_error: skip`).
    skipped: u64,
    /// Records left for the next run (`max_records`).
    left: u64,
    /// Records that failed mapping with nowhere to keep them.
    unmapped: u64,
    /// Whether a record of the page was left or lost: the cursor stops before it.
    frozen: bool,
    /// The source's position after this page: where its checkpoint resumes.
    position: SourcePosition,
}

/// `state` with the resume point after the page just written, when the flow can resume.
fn resume_at(state: &FlowState, position: SourcePosition, resumable: bool, limits: &Limits) -> FlowState {
    let resume = resumable.then(|| Resume { run: limits.run.clone(), source: position, file: None });
    FlowState { resume, ..state.clone() }
}

/// Saves a file flow's checkpoint when its file's durable point moved and
/// covers every page written (S3: a part was just uploaded; with `sync`, the
/// local store flushes it all): the committed cursor, and the file, its
/// records' cursor and the source's position in the resume point.
#[allow(clippy::too_many_arguments)]
async fn file_checkpoint(
    target: Option<&mut Sink<'_>>,
    position: &SourcePosition,
    state: &FlowState,
    committed: &FlowState,
    counters: &Counters,
    at: &mut Saved,
    limits: &Limits,
    checkpoint: &mut dyn Checkpoint,
    sync: bool,
) -> Result<()> {
    let Some(target) = target else { return Ok(()) };
    let Some(mut file) = target.durable_file(sync).await? else { return Ok(()) };
    if file.upload.bytes == at.bytes && at.resume {
        return Ok(());
    }
    (file.cursor, file.partitions) = (state.cursor.clone(), state.partitions.clone());
    let bytes = file.upload.bytes;
    let resume = Resume { run: limits.run.clone(), source: position.clone(), file: Some(file) };
    checkpoint.save(&FlowState { resume: Some(resume), ..committed.clone() }).await?;
    *at = Saved { state: committed.clone(), counters: counters.clone(), resume: true, bytes };
    Ok(())
}

/// A flow that set records aside ends `Partial` unless something worse happened.
fn partial(status: FlowStatus) -> FlowStatus {
    match status {
        FlowStatus::Succeeded => FlowStatus::Partial,
        other => other,
    }
}

fn halt_text(why: Halt) -> &'static str {
    match why {
        Halt::Cancelled => "the run was cancelled",
        Halt::OutOfTime => "the run's time budget is spent",
        Halt::LeaseLost => "another run took the job over",
    }
}
