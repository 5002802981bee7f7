//! Run metrics per tenant and platform-wide, kept as aggregates updated when
//! a run ends, so reading them never scans run history.
//!
//! **Records.** One aggregate ([`RunTally`]) per scope (a tenant, and the
//! platform), UTC day and integration: `T#<tenant>#METRICS` /
//! `METRICS#PLATFORM`, sort key `DAY#<yyyy-mm-dd>#<integration>`. A day's
//! totals are the sum of its integrations' aggregates (histograms add), so a
//! run end updates two aggregates, not four, and contends less.
//!
//! **Counting each run once.** The write that first turns a run's record
//! final (the driver's last save, a cancel, a takeover of an abandoned run)
//! also puts a pending item, `METRICS#PENDING` / `<tenant>#<run>`, holding
//! what the run adds ([`RunEnd`]). That write is conditional on the run's
//! version, so however often an end is recorded or retried, only the first
//! final write carries the pending item. Right after it, [`fold`] adds the
//! item to both aggregates and deletes it in one atomic write, conditional
//! on every version read: concurrent run ends (two Lambda invocations) retry
//! rather than overwrite each other, and two folds of one item cannot both
//! win. Folding apart from the run's write keeps the run's end from ever
//! failing on contention for a busy aggregate; an item a crash or lost races
//! left behind is folded by the next report of its scope (a small,
//! normally empty partition, not run history).
//!
//! **What a run adds.** Its final status, its duration from first start to
//! end (runs that never started add none), and its flows' counters summed
//! at the moment it first turned final (for a cancel, the counters stored
//! then). Dead letters are not counted: Ferry does not keep them yet.
//!
//! **The last 24 hours.** A failed run's end is also added, in the same
//! write, to its tenant's tally of the hour it ended in
//! (`crate::recent_failures`): what "failed runs, last 24 hours" reads.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};

use crate::repo::{keys, lookups, records};
use ferry_core::error::{Error, Result};
use ferry_core::model::ids::is_valid_id;
use ferry_core::model::metrics::{DayMetrics, IntegrationMetrics, MetricsReport, RunEnd, RunTally};
use ferry_core::model::{Job, Run, RunStatus};
use ferry_core::ports::{Clock, Condition, Index, Item, Key, Query, Store, StoreError, WriteOp};
use serde::{Deserialize, Serialize};

/// The longest window a report covers, and the default.
pub const MAX_DAYS: u32 = 90;
pub const DEFAULT_DAYS: u32 = 7;

/// Aggregates expire this long after their day: well past [`MAX_DAYS`], so
/// no report misses one, and the table does not grow for ever.
const RETENTION_DAYS: u64 = 400;

/// Folds of one run end against concurrent ones, with growing jittered waits.
const FOLD_ATTEMPTS: usize = 12;

/// Pending run ends a report folds at most before it reads the aggregates.
const LEFTOVERS_PER_REPORT: usize = 1000;

/// One stored aggregate: the tally and what it is of.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Aggregate {
    day: NaiveDate,
    integration: Option<String>,
    // Nested, not flattened: serde's flatten would lose the histogram's
    // integer map keys (JSON keeps them as strings).
    tally: RunTally,
}

/// The pending item of a run's end, to write with the run's final record.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    op: WriteOp,
    tenant: String,
    run: String,
}

impl Ending {
    pub(crate) fn op(&self) -> WriteOp {
        self.op.clone()
    }
}

/// The pending item to write with `run`'s record when that write turns it
/// final (its stored status, `before`, was not); `None` otherwise. Reads the
/// job for its integration.
pub(crate) async fn ending(store: &dyn Store, before: Option<RunStatus>, run: &Run) -> Result<Option<Ending>> {
    if before.is_some_and(RunStatus::is_finished) || !run.status.is_finished() {
        return Ok(None);
    }
    let job = records::get::<Job>(store, &keys::job(&run.tenant, &run.job)).await?;
    let Some(end) = RunEnd::of(run, job.map(|j| j.value.integration)) else { return Ok(None) };
    Ok(Some(Ending { op: pending_op(&end)?, tenant: end.tenant, run: end.run }))
}

/// After the run's final write succeeded: folds its end now, so reports are
/// current. Best effort: what is left pending is folded by the next report.
pub(crate) async fn fold_ended(store: &dyn Store, ending: Option<Ending>) {
    let Some(e) = ending else { return };
    if let Err(err) = fold(store, &e.tenant, &e.run).await {
        tracing::warn!(error = %err, run = %e.run, "run metrics not updated yet; the next report of the tenant folds them");
    }
}

/// The pending item of one run end (unconditional: only the write turning
/// the run final carries it, and that write is conditional on the run).
pub fn pending_op(end: &RunEnd) -> Result<WriteOp> {
    records::put(keys::metrics_pending(&end.tenant, &end.run), end, Condition::None)
}

/// Adds a pending run end to its tenant's and the platform's aggregates and
/// deletes it, atomically; false when it was no longer pending (folded by
/// someone else). Retries while concurrent folds change the aggregates.
pub async fn fold(store: &dyn Store, tenant: &str, run: &str) -> Result<bool> {
    let key = keys::metrics_pending(tenant, run);
    for attempt in 0..FOLD_ATTEMPTS {
        if attempt > 0 {
            lost_race(attempt).await;
        }
        let Some(found) = records::get::<RunEnd>(store, &key).await? else { return Ok(false) };
        let end = found.value;
        let mut ops = vec![WriteOp::Delete { key: key.clone(), condition: Condition::VersionIs(found.version) }];
        for scope in [Some(end.tenant.as_str()), None] {
            ops.push(add_op(store, scope, &end).await?);
        }
        ops.extend(crate::recent_failures::add_op(store, &end).await?);
        match store.write(ops).await {
            Ok(()) => return Ok(true),
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::conflict("concurrent_update", "the run metrics kept changing while a run's end was added"))
}

/// The write adding `end` to one scope's aggregate of its day and integration.
async fn add_op(store: &dyn Store, tenant: Option<&str>, end: &RunEnd) -> Result<WriteOp> {
    let key = keys::metrics_aggregate(tenant, end.day, end.integration.as_deref());
    let (mut aggregate, condition) = match records::get::<Aggregate>(store, &key).await? {
        Some(found) => (found.value, Condition::VersionIs(found.version)),
        None => (
            Aggregate { day: end.day, integration: end.integration.clone(), tally: RunTally::default() },
            Condition::NotExists,
        ),
    };
    aggregate.tally.add(end);
    let item = Item::new(key, records::to_body(&aggregate)?).with_expiry(expiry(end.day));
    Ok(WriteOp::Put { item, condition })
}

fn expiry(day: NaiveDate) -> i64 {
    let last = day.checked_add_days(Days::new(RETENTION_DAYS)).unwrap_or(NaiveDate::MAX);
    last.and_hms_opt(0, 0, 0).map_or(i64::MAX, |t| t.and_utc().timestamp())
}

/// Waits a little after losing a race on an aggregate, longer the more often
/// it was lost, with jitter so the losers do not collide again.
async fn lost_race(attempt: usize) {
    use rand::Rng;
    let most = 4 * attempt.min(25) as u64;
    let ms = rand::thread_rng().gen_range(1..=most.max(1));
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// What a report asks for, as the request gave it (`?days=&integration=`).
#[derive(Debug, Clone, Default)]
pub struct MetricsQuery {
    /// 1 to [`MAX_DAYS`] UTC days ending today; [`DEFAULT_DAYS`] when absent.
    pub days: Option<String>,
    /// Only this integration's runs.
    pub integration: Option<String>,
}

impl MetricsQuery {
    fn days(&self) -> Result<u32> {
        let Some(raw) = &self.days else { return Ok(DEFAULT_DAYS) };
        match raw.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_DAYS).contains(&n) => Ok(n),
            _ => Err(Error::invalid("invalid_days", format!("days must be a whole number from 1 to {MAX_DAYS}"))),
        }
    }

    fn integration(&self) -> Result<Option<&str>> {
        match self.integration.as_deref() {
            None => Ok(None),
            Some(name) if is_valid_id(name) => Ok(Some(name)),
            Some(_) => Err(Error::invalid(
                "invalid_integration",
                "integration must be an integration's name (lowercase letters, digits and `-`)",
            )),
        }
    }
}

/// Run metrics: reports of a tenant or of the platform, read from the
/// aggregates run ends keep. Uses the store and the clock (for "today").
#[derive(Clone, Copy)]
pub struct Metrics<'h> {
    pub(crate) store: &'h dyn Store,
    pub(crate) clock: &'h dyn Clock,
}

impl Metrics<'_> {
    /// Every tenant's runs.
    pub async fn platform(&self, q: &MetricsQuery) -> Result<MetricsReport> {
        let mut report = self.report(None, q).await?;
        report.dead_letters_pending = Some(crate::dead_letters::store::platform_pending(self.store).await?);
        Ok(report)
    }

    /// One tenant's runs.
    pub async fn tenant(&self, tenant: &str, q: &MetricsQuery) -> Result<MetricsReport> {
        lookups::tenant(self.store, tenant).await?;
        let mut report = self.report(Some(tenant), q).await?;
        report.dead_letters_pending = Some(crate::dead_letters::store::pending(self.store, tenant).await?);
        Ok(report)
    }

    /// Runs of the tenant that ended failed (any `failed_*` status) in the
    /// last 24 hours, exact to the second: from the hourly tallies run ends
    /// keep (`crate::recent_failures`), never from the runs.
    pub async fn failed_in_last_24_hours(&self, tenant: &str) -> Result<u64> {
        self.fold_leftovers(Some(tenant)).await?;
        crate::recent_failures::count(self.store, tenant, self.clock.now()).await
    }

    async fn report(&self, tenant: Option<&str>, q: &MetricsQuery) -> Result<MetricsReport> {
        let days = q.days()?;
        let integration = q.integration()?;
        self.fold_leftovers(tenant).await?;
        let to = self.clock.now().date_naive();
        let from = to.checked_sub_days(Days::new(u64::from(days - 1))).unwrap_or(to);
        let mut per_day: BTreeMap<NaiveDate, RunTally> = BTreeMap::new();
        let mut d = from;
        while d <= to {
            per_day.insert(d, RunTally::default());
            d = d.succ_opt().unwrap_or(NaiveDate::MAX);
            if d == NaiveDate::MAX {
                break;
            }
        }
        let mut by_integration: BTreeMap<String, RunTally> = BTreeMap::new();
        let mut totals = RunTally::default();
        for a in self.aggregates(tenant, from, to).await? {
            if integration.is_some() && a.integration.as_deref() != integration {
                continue;
            }
            per_day.entry(a.day).or_default().merge(&a.tally);
            totals.merge(&a.tally);
            if let Some(name) = a.integration {
                by_integration.entry(name).or_default().merge(&a.tally);
            }
        }
        Ok(MetricsReport {
            tenant: tenant.map(str::to_owned),
            from,
            to,
            integration: integration.map(str::to_owned),
            totals: totals.summary(),
            per_day: per_day.into_iter().map(|(date, t)| DayMetrics { date, summary: t.summary() }).collect(),
            by_integration: by_integration
                .into_iter()
                .map(|(integration, t)| IntegrationMetrics { integration, summary: t.summary() })
                .collect(),
            dead_letters_pending: None,
        })
    }

    /// Folds the scope's run ends left pending (a host stopped between a
    /// run's end and its fold, or the fold lost its races), so the report
    /// counts them. Normally there are none.
    async fn fold_leftovers(&self, tenant: Option<&str>) -> Result<()> {
        let mut q = Query::partition(Index::Primary, keys::METRICS_PENDING).limit(100);
        if let Some(t) = tenant {
            q = q.prefix(format!("{t}#"));
        }
        let mut folded = 0;
        loop {
            let page = self.store.query(&q).await?;
            for item in page.items {
                let end = records::from_item::<RunEnd>(item)?.value;
                match fold(self.store, &end.tenant, &end.run).await {
                    Ok(_) => {}
                    // Still contended: counted by a later report.
                    Err(Error::Conflict { .. }) => {
                        tracing::warn!(run = %end.run, "a pending run end is still contended; not in this report")
                    }
                    Err(e) => return Err(e),
                }
                folded += 1;
            }
            match page.next {
                Some(next) if folded < LEFTOVERS_PER_REPORT => q = q.after(Some(next)),
                _ => return Ok(()),
            }
        }
    }

    /// The scope's aggregates of days `from..=to`, newest first: the
    /// partition read backwards from today, stopping before `from`.
    async fn aggregates(&self, tenant: Option<&str>, from: NaiveDate, to: NaiveDate) -> Result<Vec<Aggregate>> {
        let now = self.clock.now().timestamp();
        let mut q =
            Query::partition(Index::Primary, keys::metrics_partition(tenant)).prefix("DAY#").descending().limit(500);
        let mut found = Vec::new();
        loop {
            let page = self.store.query(&q).await?;
            for item in page.items {
                if item.expires_at.is_some_and(|t| t <= now) {
                    continue;
                }
                let a = records::from_item::<Aggregate>(item)?.value;
                if a.day < from {
                    return Ok(found);
                }
                if a.day <= to {
                    found.push(a);
                }
            }
            match page.next {
                Some(next) => q = q.after(Some(next)),
                None => return Ok(found),
            }
        }
    }
}

/// The key of a run end's pending item (tests look for leftovers).
pub fn pending_key(tenant: &str, run: &str) -> Key {
    keys::metrics_pending(tenant, run)
}
