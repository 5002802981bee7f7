//! Replay runs: a job's pending dead letters sent again through their
//! flows' targets, mapped with the flow's mapping as it is now (`current`) or
//! as each was mapped (`original`), a page at a time. Each page's outcomes are
//! written in one call: a delivered record becomes `replayed`, one that fails
//! again stays `pending` with its attempts counted and its new error (its
//! category `target_unavailable` when the target was unavailable, which also
//! stops the run, as a sync run stops). Every dead letter tried is marked with
//! the run, so a continuation after an interrupted slice goes on with the rest.

use std::collections::HashMap;

use serde_json::Value;

use super::context::FlowRun;
use super::declarative::{Engine, FlowEnd};
use super::halt::{halt_error, halt_status};
use super::snapshot::{mapping_version, recorded};
use super::tally::{Next, Tally};
use super::watch::add;
use crate::dead_letters::store;
use crate::repo::{keys, lookups, records};
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{Flow, Mapping, Target};
use ferry_core::model::{
    Counters, DeadLetter, DeadLetterCategory, DeadLetterStatus, MappedWith, Replay, ReplayMapping, RunStatus,
};
use ferry_core::ports::{Index, Position, Query};
use ferry_engine::flow::FlowStatus;
use ferry_engine::mapping::Mapper;
use ferry_engine::target::{BatchError, Sink};

/// Dead letters sent per page.
const PAGE: u32 = 100;

/// What a replay did to one dead letter.
enum Outcome {
    Delivered,
    Failed(DeadLetterCategory, String),
}

impl FlowRun<'_> {
    /// Executes a replay run over the flows whose dead letters it selects.
    pub(super) async fn execute_replay(&mut self, replay: &Replay) -> Result<RunStatus> {
        let engine = Engine::for_run(self.hub)?;
        let mut tally = Tally::resume(self.run);
        if self.run.continuations == 0 {
            let what = match (replay.ids.len(), &replay.flow, replay.category) {
                (0, flow, category) => format!(
                    "every pending dead letter{}{}",
                    flow.as_ref().map(|f| format!(" of flow `{f}`")).unwrap_or_default(),
                    category.map(|c| format!(" in category {}", c.as_str())).unwrap_or_default()
                ),
                (n, _, _) => format!("{n} dead letters"),
            };
            let mapping = match replay.mapping {
                ReplayMapping::Current => "the current mapping",
                ReplayMapping::Original => "the mapping each was mapped with",
            };
            self.log.push(format!("replay of {what}, with {mapping}"));
        }
        let manifest = &self.release.manifest;
        let flows: Vec<&Flow> = manifest
            .flows
            .iter()
            .filter(|f| replay.flow.as_ref().is_none_or(|name| *name == f.name))
            .filter(|f| !tally.finished(&f.name))
            .collect();
        for flow in flows {
            let end = self.replay_flow(flow, replay, &engine).await?;
            add(self.run.counters.entry(flow.name.clone()).or_default(), &end.counters);
            match tally.add(&flow.name, end) {
                Next::Continue => {}
                Next::Interrupted => {
                    // Each page marks what it tried: an interrupted replay always moved on.
                    tally.progress.stalled_slices = 0;
                    self.run.progress = Some(tally.progress);
                    self.run.error = tally.first_error;
                    return Ok(RunStatus::Interrupted);
                }
                Next::Halted(why) => {
                    self.run.error = Some(halt_error(why, &self.hub.settings));
                    return Ok(halt_status(why));
                }
            }
        }
        self.run.error = tally.first_error;
        Ok(tally.status)
    }

    /// Replays one flow's selected dead letters, page by page.
    async fn replay_flow(&self, flow: &Flow, replay: &Replay, engine: &Engine) -> Result<FlowEnd> {
        let mut counters = Counters::default();
        let mut lines = Vec::new();
        let end = |status, counters, error| Ok(FlowEnd { status, counters, error });
        if matches!(flow.target, Target::Options { .. }) {
            return end(FlowStatus::Succeeded, counters, None);
        }
        let limits = self.limits(flow);
        let bound = self.bind_flow(flow).await?;
        let settings = match &flow.target {
            Target::Http { connector, .. } => bound.get(connector)?.settings.clone(),
            _ => Default::default(),
        };
        let ctx = self.template_context(&serde_json::json!({}), &settings);
        let mut sink: Option<Sink<'_>> = None;
        let current = match replay.mapping {
            ReplayMapping::Current => self.flow_mapping(flow).await?.map(|m| Mapper::new(&m)),
            ReplayMapping::Original => None,
        };
        let mut originals: HashMap<String, Option<Mapper>> = HashMap::new();
        // A file is committed whole: its dead letters are marked once it is.
        let mut held: Vec<(String, Outcome)> = Vec::new();
        let mut selection = Selection::new(self, flow, replay);
        let mut status = FlowStatus::Succeeded;
        let mut error = None;
        let mut pages = 0u32;
        loop {
            if let Some(why) = limits.stop.halted() {
                status = FlowStatus::Halted(why);
                break;
            }
            if pages > 0 && limits.stop_at.is_some_and(|t| std::time::Instant::now() >= t) {
                lines.push("the invocation's time is running out: the replay continues in a continuation".into());
                status = FlowStatus::Interrupted;
                break;
            }
            let letters = selection.next_page(self).await?;
            if letters.is_empty() {
                break;
            }
            pages += 1;
            if sink.is_none() {
                sink = Some(self.open_sink(flow, &ctx, engine, &bound).await?);
            }
            let sink = sink.as_mut().ok_or_else(|| Error::Internal("no sink".into()))?;
            let mut outcomes: Vec<(String, Outcome)> = Vec::with_capacity(letters.len());
            let mut sending: Vec<(String, Value)> = Vec::with_capacity(letters.len());
            for mut dl in letters {
                store::load_bodies(self.hub.files.as_deref(), &mut dl).await?;
                let mapper = match replay.mapping {
                    ReplayMapping::Original if dl.mapped.is_some() => {
                        sending.push((dl.id.clone(), dl.mapped.take().unwrap_or_default()));
                        continue;
                    }
                    ReplayMapping::Original => {
                        let key = serde_json::to_string(&dl.mapped_with).unwrap_or_default();
                        if !originals.contains_key(&key) {
                            let m = self.original_mapping(flow, &dl.mapped_with).await;
                            originals.insert(key.clone(), m?.map(|m| Mapper::new(&m)));
                        }
                        originals.get(&key).and_then(Option::as_ref)
                    }
                    ReplayMapping::Current => current.as_ref(),
                };
                let Some(source) = dl.source.take() else {
                    let why = "its record was not kept (too large without a file store); discard it".to_owned();
                    outcomes.push((dl.id.clone(), Outcome::Failed(dl.category, why)));
                    continue;
                };
                match mapper {
                    None => sending.push((dl.id.clone(), source)),
                    Some(m) => match m.map_page(vec![source], &ctx).await?.pop() {
                        Some(Ok(mapped)) => sending.push((dl.id.clone(), mapped)),
                        Some(Err(e)) => {
                            outcomes.push((dl.id.clone(), Outcome::Failed(DeadLetterCategory::Mapping, e.to_string())))
                        }
                        None => {}
                    },
                }
            }
            let records: Vec<Value> = sending.iter().map(|(_, r)| r.clone()).collect();
            counters.read += (records.len() + outcomes.len()) as u64;
            let (http, templates) = (&engine.http, &engine.templates);
            let mut stop = None;
            match sink.write(&records, &ctx, http, templates, false).await {
                Ok(report) => {
                    let mut refused: HashMap<usize, String> = report
                        .rejected
                        .into_iter()
                        .map(|r| {
                            let why = match r.excerpt {
                                Some(x) => format!("{}: {x}", r.error),
                                None => r.error,
                            };
                            (r.index, why)
                        })
                        .collect();
                    for (i, (id, _)) in sending.iter().enumerate() {
                        outcomes.push(match refused.remove(&i) {
                            Some(why) => (id.clone(), Outcome::Failed(DeadLetterCategory::TargetRejected, why)),
                            None => (id.clone(), Outcome::Delivered),
                        });
                    }
                }
                Err(BatchError::Unavailable(why)) => {
                    for (id, _) in &sending {
                        outcomes
                            .push((id.clone(), Outcome::Failed(DeadLetterCategory::TargetUnavailable, why.clone())));
                    }
                    lines.push(format!("target unavailable, stopping: {why}"));
                    stop = Some(why);
                }
                Err(BatchError::Refused(why, excerpt)) => {
                    let why = match excerpt {
                        Some(x) => format!("{why}: {x}"),
                        None => why,
                    };
                    for (id, _) in &sending {
                        outcomes.push((id.clone(), Outcome::Failed(DeadLetterCategory::TargetRejected, why.clone())));
                    }
                }
                Err(BatchError::Other(e)) => return Err(e),
            }
            let delivered = outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Delivered)).count() as u64;
            counters.written += delivered;
            counters.failed += outcomes.len() as u64 - delivered;
            if delivered < outcomes.len() as u64 {
                status = FlowStatus::Partial;
                if let Some((_, Outcome::Failed(_, why))) =
                    outcomes.iter().find(|(_, o)| !matches!(o, Outcome::Delivered))
                {
                    lines.push(format!("{} records failed again, the first: {why}", outcomes.len() as u64 - delivered));
                }
            }
            if sink.saves_state_per_page() {
                self.mark(outcomes).await?;
            } else {
                held.extend(outcomes);
            }
            lines.push(format!("page {pages}: {} replayed so far, {} failed again", counters.written, counters.failed));
            if let Some(why) = stop {
                error = Some(why);
                status = FlowStatus::Failed;
                break;
            }
            if let Some(pulse) = &limits.pulse {
                if let Some(why) = pulse.beat(&counters).await? {
                    limits.stop.halt(why);
                    status = FlowStatus::Halted(why);
                    break;
                }
            }
        }
        if let Some(mut sink) = sink {
            if !sink.saves_state_per_page() {
                if matches!(status, FlowStatus::Failed | FlowStatus::Halted(_)) {
                    sink.abandon().await;
                } else {
                    sink.finish().await?;
                    self.mark(held).await?;
                }
            }
        }
        self.log.flow(&flow.name, &lines);
        end(status, counters, error)
    }

    /// Writes a page's outcomes, in one call: delivered ones `replayed`,
    /// the others still pending with their new error; all with an attempt more.
    async fn mark(&self, outcomes: Vec<(String, Outcome)>) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = self.hub.clock.now();
        let run = self.run.id.clone();
        let ids: Vec<String> = outcomes.iter().map(|(id, _)| id.clone()).collect();
        let outcomes: HashMap<String, Outcome> = outcomes.into_iter().collect();
        let redactor = self.redactor;
        let change = |dl: &DeadLetter| {
            // Discarded meanwhile: it stays discarded.
            if dl.status != DeadLetterStatus::Pending {
                return None;
            }
            let mut next = dl.clone();
            next.attempts += 1;
            next.last_seen = now;
            next.last_run = run.clone();
            match outcomes.get(&dl.id)? {
                Outcome::Delivered => next.status = DeadLetterStatus::Replayed,
                Outcome::Failed(category, why) => {
                    next.category = *category;
                    next.error = redactor.redact(why);
                }
            }
            Some(next)
        };
        store::update(self.hub.store(), &self.job.tenant, &ids, &change).await?;
        Ok(())
    }

    /// The mapping a dead letter was mapped with, to map it the same way.
    async fn original_mapping(&self, flow: &Flow, with: &MappedWith) -> Result<Option<Mapping>> {
        let store = self.hub.store();
        Ok(match with {
            MappedWith::None => None,
            MappedWith::Release { release } => lookups::release(store, &self.job.integration, *release)
                .await?
                .manifest
                .flows
                .iter()
                .find(|f| f.name == flow.name)
                .and_then(|f| f.mapping.clone()),
            MappedWith::Configured { mapping, version } => {
                Some(mapping_version(store, &self.job.tenant, mapping, *version).await?.to_mapping())
            }
            MappedWith::Inline { run } => match recorded(store, &self.job.tenant, &self.job.id, run).await? {
                Some(config) => match config.mappings.get(&flow.name) {
                    Some(ferry_core::model::RecordedMapping::Inline { mapping }) => Some(mapping.clone()),
                    _ => None,
                },
                None => None,
            },
        })
    }
}

/// The dead letters a replay sends for one flow, a page at a time: the
/// pending ones it names, or those of its filter (the job's `gsi2`
/// partition, `pending#<flow>#[<category>#]`). Each is read again by key
/// (indexes may lag) and skipped when this run tried it already.
struct Selection {
    ids: Option<std::vec::IntoIter<String>>,
    query: Query,
    after: Option<Position>,
    done: bool,
    flow: String,
    category: Option<DeadLetterCategory>,
}

impl Selection {
    fn new(run: &FlowRun<'_>, flow: &Flow, replay: &Replay) -> Self {
        let mut prefix = format!("pending#{}#", flow.name);
        if let Some(c) = replay.category {
            prefix.push_str(&format!("{}#", c.as_str()));
        }
        let query =
            Query::partition(Index::Gsi2, keys::dead_letters_of_job(&run.job.tenant, &run.job.id)).prefix(prefix);
        let ids = (!replay.ids.is_empty()).then(|| replay.ids.clone().into_iter());
        Self { ids, query, after: None, done: false, flow: flow.name.clone(), category: replay.category }
    }

    async fn next_page(&mut self, run: &FlowRun<'_>) -> Result<Vec<DeadLetter>> {
        let store = run.hub.store();
        let tenant = &run.job.tenant;
        let wanted = |dl: &DeadLetter| {
            dl.status == DeadLetterStatus::Pending
                && dl.flow == self.flow
                && dl.job == run.job.id
                && dl.last_run != run.run.id
                && self.category.is_none_or(|c| c == dl.category)
        };
        let mut page = Vec::new();
        while !self.done && page.len() < PAGE as usize {
            let candidates: Vec<String> = match &mut self.ids {
                Some(ids) => {
                    let next: Vec<String> = ids.by_ref().take(PAGE as usize - page.len()).collect();
                    self.done = next.is_empty();
                    next
                }
                None => {
                    let result = store.query(&self.query.clone().limit(PAGE).after(self.after.take())).await?;
                    self.after = result.next;
                    self.done = self.after.is_none();
                    let mut ids = Vec::new();
                    for item in result.items {
                        ids.push(records::from_item::<DeadLetter>(item)?.value.id);
                    }
                    ids
                }
            };
            for id in candidates {
                if let Some(dl) = records::get::<DeadLetter>(store, &keys::dead_letter(tenant, &id)).await? {
                    if wanted(&dl.value) {
                        page.push(dl.value);
                    }
                }
            }
        }
        Ok(page)
    }
}
