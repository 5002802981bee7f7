//! Dead letters: records of a job's flows that failed mapping or that the
//! target refused, kept by runs (`on_record_error: dead_letter`, the
//! default) so an operator can list them, fix the cause, replay them through
//! the flow's target, or discard them.
//!
//! **Where a list comes from.** Always a store query on a key, never a scan
//! (keys in [`store`]): one job's dead letters (`job=`) are its `gsi2`
//! partition, sorted by status, flow, category and age, so `status`, `flow`
//! and `category` narrow it to a key prefix as far as they are given in that
//! order; a tenant's of one status are its `gsi1` partition, newest first;
//! all of a tenant's are its primary partition, newest first. Filters the key
//! does not cover are applied while reading, at most [`SCAN_READS`] store
//! pages of [`SCAN_PAGE`] per API page; a short page with a `next_cursor`
//! continues where the reading stopped, as activity does. Counts come from
//! the per-flow counts kept with every write, so they cost one query of the
//! tenant's (few) count items whatever the number of dead letters.
//!
//! **Replays run as runs.** A replay is a run of the job (trigger `replay`),
//! served by a run of its own under the one-run-per-job rule: it never writes
//! to a target concurrently with a sync of the same job, it has logs and
//! counters, it stops at a page boundary when its invocation ends and its
//! continuation goes on (dead letters it tried are marked with the run), and
//! it obeys cancels and the run budget. A synchronous replay would have to cap
//! what one request can send, race the job's own runs and lose its progress
//! with the connection.

pub(crate) mod sink;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::execution::{RunControl, Triggered};
use crate::repo::filtered::{FilteredRead, SCAN_PAGE};
use crate::repo::{keys, lookups, records, PageRequest};
use ferry_core::error::{Error, Result};
use ferry_core::model::{DeadLetter, DeadLetterCategory, DeadLetterCounts, DeadLetterStatus, Replay, ReplayMapping};
use ferry_core::ports::{Clock, FileStore, Index, Query, Store};
use store::FlowCounts;

/// The most dead letters one discard request changes, and the most ids one
/// request names; a discard of more answers `more: true` (send it again).
pub const MAX_PER_REQUEST: usize = 1000;

/// The dead letters of a tenant: list, read, replay, discard.
#[derive(Clone, Copy)]
pub struct DeadLetters<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) files: Option<&'a dyn FileStore>,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) runs: &'a dyn RunControl,
}

/// A list filter as the API takes it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterFilter {
    pub job: Option<String>,
    pub flow: Option<String>,
    pub category: Option<DeadLetterCategory>,
    pub status: Option<DeadLetterStatus>,
    /// Dead-lettered by this run, or failed again by it (a later run or a
    /// replay: its `last_run`). With `job`, read from the job's partition;
    /// the console's run page lists a run's dead letters this way.
    #[serde(default)]
    pub run: Option<String>,
}

/// A page of dead letters (without their records; `GET` one for them), and
/// the counts of the dead letters the filter selects.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub items: Vec<DeadLetter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    pub counts: Counts,
}

/// Counts over the list's `job` and `flow`: by status (of the `category`
/// asked for, if any) and by category (of the `status` asked for, if any).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Counts {
    pub by_status: BTreeMap<DeadLetterStatus, u64>,
    pub by_category: BTreeMap<DeadLetterCategory, u64>,
}

/// Which dead letters a replay or a discard acts on: `ids`, or every one
/// matching `filter` (`{}`: all of the tenant's). Only pending ones change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default)]
    pub filter: Option<SelectionFilter>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectionFilter {
    pub job: Option<String>,
    pub flow: Option<String>,
    pub category: Option<DeadLetterCategory>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// `current` (default): the flow's mapping as the job has it now;
    /// `original`: the mapping each record was mapped with (a record that
    /// has its mapped form is sent as it was).
    #[serde(default)]
    pub mapping: ReplayMapping,
    #[serde(flatten)]
    pub selection: Selection,
}

/// One replay run per job whose dead letters were selected.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Replayed {
    pub runs: Vec<Triggered>,
    /// Pending dead letters the runs will send (by the counts, for a filter).
    pub selected: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Discarded {
    pub discarded: u64,
    /// More pending dead letters match: send the same request again.
    pub more: bool,
}

/// A value of a snake_case enum by its name.
fn variant<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

fn bad(parameter: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid("invalid_filter", format!("{parameter}: {message}"))
}

/// Ids and names are lowercase `[a-z0-9_-]`; anything else names nothing.
fn name(parameter: &str, value: &Option<String>) -> Result<()> {
    match value {
        Some(v)
            if v.is_empty()
                || v.len() > 64
                || !v.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_')) =>
        {
            Err(bad(parameter, format!("'{v}' is not an id or flow name (lowercase letters, digits, '-' and '_')")))
        }
        _ => Ok(()),
    }
}

impl DeadLetterFilter {
    /// A filter from the API's text values; a bad one is `400 invalid_filter` naming its parameter.
    pub fn parse(
        job: Option<String>,
        flow: Option<String>,
        category: Option<&str>,
        status: Option<&str>,
    ) -> Result<Self> {
        let category = category
            .map(|c| {
                variant(c).ok_or_else(|| {
                    bad(
                        "category",
                        format!("'{c}' is not a category; use mapping, target_rejected or target_unavailable"),
                    )
                })
            })
            .transpose()?;
        let status = status
            .map(|s| {
                variant(s)
                    .ok_or_else(|| bad("status", format!("'{s}' is not a status; use pending, replayed or discarded")))
            })
            .transpose()?;
        let filter = Self { job, flow, category, status, run: None };
        filter.check()?;
        Ok(filter)
    }

    fn check(&self) -> Result<()> {
        name("job", &self.job)?;
        name("flow", &self.flow)?;
        name("run", &self.run)
    }

    fn matches(&self, dl: &DeadLetter) -> bool {
        self.job.as_ref().is_none_or(|j| *j == dl.job)
            && self.flow.as_ref().is_none_or(|f| *f == dl.flow)
            && self.category.is_none_or(|c| c == dl.category)
            && self.status.is_none_or(|s| s == dl.status)
            && self.run.as_ref().is_none_or(|r| *r == dl.run || *r == dl.last_run)
    }

    /// The query reading what the filter selects, and whether filters
    /// outside its key may drop some of what it returns.
    fn query(&self, tenant: &str) -> (Query, bool) {
        match (&self.job, self.status) {
            (Some(job), status) => {
                let mut prefix = String::new();
                let mut rest = false;
                if let Some(s) = status {
                    prefix = format!("{}#", s.as_str());
                    match (&self.flow, self.category) {
                        (Some(f), c) => {
                            prefix.push_str(&format!("{f}#"));
                            if let Some(c) = c {
                                prefix.push_str(&format!("{}#", c.as_str()));
                            }
                        }
                        (None, c) => rest = c.is_some(),
                    }
                } else {
                    rest = self.flow.is_some() || self.category.is_some();
                }
                rest |= self.run.is_some();
                let q = Query::partition(Index::Gsi2, keys::dead_letters_of_job(tenant, job));
                (if prefix.is_empty() { q } else { q.prefix(prefix) }, rest)
            }
            (None, Some(s)) => (
                Query::partition(Index::Gsi1, keys::dead_letters_by_status(tenant, s.as_str())).descending(),
                self.flow.is_some() || self.category.is_some() || self.run.is_some(),
            ),
            (None, None) => (
                Query::partition(Index::Primary, keys::dead_letters_partition(tenant)).prefix("DL#").descending(),
                self.flow.is_some() || self.category.is_some() || self.run.is_some(),
            ),
        }
    }
}

impl DeadLetters<'_> {
    /// A page of a tenant's dead letters (without their records) and the
    /// counts of what the filter selects.
    pub async fn list(&self, tenant: &str, filter: &DeadLetterFilter, page: &PageRequest) -> Result<DeadLetterList> {
        filter.check()?;
        lookups::tenant(self.store, tenant).await?;
        let (query, narrows) = filter.query(tenant);
        let mut read = FilteredRead::new(self.store, query, page, narrows)?;
        let mut items = Vec::new();
        while let Some(item) = read.next().await? {
            let mut dl: DeadLetter = records::from_item(item)?.value;
            if !filter.matches(&dl) {
                continue;
            }
            dl.source = None;
            dl.mapped = None;
            items.push(dl);
            if items.len() == read.limit() {
                break;
            }
        }
        let page = read.page(items, false);
        let counts = self.counts_of(tenant, filter.job.as_deref(), filter.flow.as_deref()).await?;
        let mut out = Counts::default();
        for (status, cats) in &counts.by_status_category {
            for (category, n) in cats.iter().filter(|(_, n)| **n > 0) {
                if filter.category.is_none_or(|c| c == *category) {
                    *out.by_status.entry(*status).or_default() += n;
                }
                if filter.status.is_none_or(|s| s == *status) {
                    *out.by_category.entry(*category).or_default() += n;
                }
            }
        }
        Ok(DeadLetterList { items: page.items, next_cursor: page.next_cursor, counts: out })
    }

    /// One dead letter with its source and mapped records.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<DeadLetter> {
        let mut dl = self.read(tenant, id).await?;
        store::load_bodies(self.files, &mut dl).await?;
        Ok(dl)
    }

    async fn read(&self, tenant: &str, id: &str) -> Result<DeadLetter> {
        records::get::<DeadLetter>(self.store, &keys::dead_letter(tenant, id))
            .await?
            .map(|v| v.value)
            .ok_or_else(|| Error::not_found("dead letter", id))
    }

    /// The counts of a tenant's dead letters, of one job's, or of one flow's
    /// (of one job, or of every job having a flow of that name).
    pub async fn counts_of(&self, tenant: &str, job: Option<&str>, flow: Option<&str>) -> Result<DeadLetterCounts> {
        let mut counts = DeadLetterCounts::default();
        for c in self.flow_counts(tenant, job).await? {
            if flow.is_none_or(|f| f == c.flow) {
                counts.merge(&c.counts);
            }
        }
        Ok(counts)
    }

    /// Pending dead letters of a tenant, from the counts kept with the writes.
    pub async fn pending(&self, tenant: &str) -> Result<u64> {
        store::pending(self.store, tenant).await
    }

    async fn flow_counts(&self, tenant: &str, job: Option<&str>) -> Result<Vec<FlowCounts>> {
        store::flow_counts(self.store, tenant, job).await
    }

    /// Marks the selected pending dead letters `discarded`, at most
    /// [`MAX_PER_REQUEST`] per request. An id that names no dead letter of
    /// the tenant is `404`, as with a replay, and nothing is discarded.
    pub async fn discard(&self, tenant: &str, selection: &Selection) -> Result<Discarded> {
        lookups::tenant(self.store, tenant).await?;
        let (ids, more) = match selection.check()? {
            Selected::Ids(ids) => {
                for id in ids {
                    self.read(tenant, id).await?;
                }
                (ids.to_vec(), false)
            }
            Selected::Filter(f) => self.pending_ids(tenant, f).await?,
        };
        let now = self.clock.now();
        let discard = |dl: &DeadLetter| {
            (dl.status == DeadLetterStatus::Pending).then(|| DeadLetter {
                status: DeadLetterStatus::Discarded,
                last_seen: now,
                ..dl.clone()
            })
        };
        let changed = store::update(self.store, tenant, &ids, &discard).await?;
        Ok(Discarded { discarded: changed.len() as u64, more })
    }

    /// Discards one dead letter; `409 dead_letter_not_pending` when it was
    /// replayed or discarded before.
    pub async fn discard_one(&self, tenant: &str, id: &str) -> Result<DeadLetter> {
        let dl = self.read(tenant, id).await?;
        not_pending(&dl)?;
        let out = self.discard(tenant, &Selection { ids: Some(vec![id.to_owned()]), filter: None }).await?;
        if out.discarded == 0 {
            not_pending(&self.read(tenant, id).await?)?;
        }
        self.read(tenant, id).await
    }

    /// The ids of pending dead letters matching `filter`, at most
    /// [`MAX_PER_REQUEST`], and whether more match.
    async fn pending_ids(&self, tenant: &str, f: &SelectionFilter) -> Result<(Vec<String>, bool)> {
        let filter = DeadLetterFilter {
            job: f.job.clone(),
            flow: f.flow.clone(),
            category: f.category,
            status: Some(DeadLetterStatus::Pending),
            run: None,
        };
        filter.check()?;
        let (query, _) = filter.query(tenant);
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let result = self.store.query(&query.clone().limit(SCAN_PAGE).after(after.take())).await?;
            for item in result.items {
                let dl: DeadLetter = records::from_item(item)?.value;
                if filter.matches(&dl) {
                    if ids.len() == MAX_PER_REQUEST {
                        return Ok((ids, true));
                    }
                    ids.push(dl.id);
                }
            }
            match result.next {
                Some(p) => after = Some(p),
                None => return Ok((ids, false)),
            }
        }
    }

    /// Starts (or queues behind the job's running run) one replay run per
    /// job with selected pending dead letters.
    pub async fn replay(&self, tenant: &str, req: &ReplayRequest, by: &str) -> Result<Replayed> {
        lookups::tenant(self.store, tenant).await?;
        let mut per_job: BTreeMap<String, (Replay, u64)> = BTreeMap::new();
        match req.selection.check()? {
            Selected::Ids(ids) => {
                for id in ids {
                    let dl = self.read(tenant, id).await?;
                    if dl.status != DeadLetterStatus::Pending {
                        continue;
                    }
                    let entry = per_job.entry(dl.job.clone()).or_insert_with(|| (replay_of(req.mapping), 0));
                    entry.0.ids.push(dl.id);
                    entry.1 += 1;
                }
            }
            Selected::Filter(f) => {
                for c in self.flow_counts(tenant, f.job.as_deref()).await? {
                    if f.flow.as_ref().is_some_and(|fl| *fl != c.flow) {
                        continue;
                    }
                    let pending = match f.category {
                        Some(cat) => c
                            .counts
                            .by_status_category
                            .get(&DeadLetterStatus::Pending)
                            .and_then(|m| m.get(&cat))
                            .copied()
                            .unwrap_or(0),
                        None => c.counts.of_status(DeadLetterStatus::Pending),
                    };
                    if pending == 0 {
                        continue;
                    }
                    let entry = per_job.entry(c.job.clone()).or_insert_with(|| {
                        let mut r = replay_of(req.mapping);
                        r.flow = f.flow.clone();
                        r.category = f.category;
                        (r, 0)
                    });
                    entry.1 += pending;
                }
            }
        }
        let mut runs = Vec::new();
        let mut selected = 0;
        for (job, (replay, n)) in per_job {
            match lookups::job(self.store, tenant, &job).await {
                Ok(_) => {}
                // The job is gone: its dead letters can only be read or discarded.
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
            runs.push(self.runs.trigger_replay(tenant, &job, replay, by).await?);
            selected += n;
        }
        Ok(Replayed { runs, selected })
    }

    /// Replays one dead letter; `409 dead_letter_not_pending` when it was
    /// replayed or discarded before.
    pub async fn replay_one(&self, tenant: &str, id: &str, mapping: ReplayMapping, by: &str) -> Result<Replayed> {
        let dl = self.read(tenant, id).await?;
        not_pending(&dl)?;
        lookups::job(self.store, tenant, &dl.job).await?;
        let req = ReplayRequest { mapping, selection: Selection { ids: Some(vec![id.to_owned()]), filter: None } };
        self.replay(tenant, &req, by).await
    }
}

fn replay_of(mapping: ReplayMapping) -> Replay {
    Replay { mapping, ids: Vec::new(), flow: None, category: None }
}

fn not_pending(dl: &DeadLetter) -> Result<()> {
    if dl.status == DeadLetterStatus::Pending {
        return Ok(());
    }
    Err(Error::conflict(
        "dead_letter_not_pending",
        format!(
            "dead letter '{}' is {} already; only pending dead letters are replayed or discarded",
            dl.id,
            dl.status.as_str()
        ),
    ))
}

enum Selected<'s> {
    Ids(&'s [String]),
    Filter(&'s SelectionFilter),
}

impl Selection {
    fn check(&self) -> Result<Selected<'_>> {
        let invalid = |m: &str| Error::invalid("invalid_selection", m.to_owned());
        match (&self.ids, &self.filter) {
            (Some(ids), None) => {
                if ids.is_empty() {
                    return Err(invalid("`ids` is empty; name at least one dead letter, or use `filter`"));
                }
                if ids.len() > MAX_PER_REQUEST {
                    return Err(invalid(&format!("at most {MAX_PER_REQUEST} ids per request; use `filter` for more")));
                }
                for id in ids {
                    name("ids", &Some(id.clone())).map_err(|_| invalid(&format!("'{id}' is not a dead letter id")))?;
                }
                Ok(Selected::Ids(ids))
            }
            (None, Some(f)) => {
                name("job", &f.job)?;
                name("flow", &f.flow)?;
                Ok(Selected::Filter(f))
            }
            _ => Err(invalid(
                "give either `ids` (a list of dead letter ids) or `filter` (`{}` selects every pending one)",
            )),
        }
    }
}
