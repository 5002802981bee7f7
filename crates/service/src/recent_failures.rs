//! Failed runs of a tenant's last 24 hours, kept as tallies when runs end
//! (as the run metrics are), so the count reads at most 25 small items, not
//! the runs: the dashboard's "Failed runs, last 24 hours".
//!
//! **Records.** One tally per tenant and UTC hour, in the tenant's metrics
//! partition: `T#<tenant>#METRICS` / `HOUR#<yyyy-mm-ddThh>`, holding the runs
//! that ended failed (every `failed_*` status, as activity's `status=failed`)
//! in that hour. [`crate::metrics::fold`] adds a failed run's end to it in
//! the same atomic write that adds it to the day aggregates, so a run is
//! counted here exactly when, and as often as, the metrics count it: once.
//!
//! **Why by second.** The window is the 24 hours up to now, not whole hours
//! or "today": the oldest hour is only partly inside it. A tally counts its
//! runs by the second of the hour they ended in, so the count is exact to
//! the second. Only seconds with failures are kept, so a tally holds a few
//! entries, 3,600 at the very most.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::activity::is_failure;
use crate::repo::{keys, records};
use ferry_core::error::Result;
use ferry_core::model::metrics::RunEnd;
use ferry_core::ports::{Condition, Index, Item, Query, Store, WriteOp};

/// The window the count covers.
pub const WINDOW: Duration = Duration::hours(24);

/// Tallies expire this long after their hour began: past any window that
/// reads them, so the partition does not grow for ever.
const RETENTION: Duration = Duration::hours(48);

/// One tenant's failed runs that ended in one UTC hour.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HourTally {
    /// Second of the hour (0..3600) → runs that ended failed in it.
    #[serde(default)]
    failed: BTreeMap<u16, u64>,
}

/// The start of the UTC hour `at` is in.
fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::hours(1)).unwrap_or(at)
}

fn sort_key(hour: DateTime<Utc>) -> String {
    format!("HOUR#{}", hour.format("%Y-%m-%dT%H"))
}

/// The write adding a failed run's end to its hour's tally; `None` for a run
/// that did not fail, or an end recorded before ends carried their time.
pub(crate) async fn add_op(store: &dyn Store, end: &RunEnd) -> Result<Option<WriteOp>> {
    let Some(ended) = end.ended_at.filter(|_| is_failure(end.status)) else { return Ok(None) };
    let hour = hour_of(ended);
    let key = keys::metrics_hour(&end.tenant, &sort_key(hour));
    let (mut tally, condition) = match records::get::<HourTally>(store, &key).await? {
        Some(found) => (found.value, Condition::VersionIs(found.version)),
        None => (HourTally::default(), Condition::NotExists),
    };
    let second = (ended.minute() * 60 + ended.second()) as u16;
    *tally.failed.entry(second).or_default() += 1;
    let item = Item::new(key, records::to_body(&tally)?).with_expiry((hour + RETENTION).timestamp());
    Ok(Some(WriteOp::Put { item, condition }))
}

/// Runs of `tenant` that ended failed in the [`WINDOW`] up to `now` (whole
/// seconds: a run counts while fewer than 86,400 seconds have passed since
/// the second it ended in). Reads the window's hourly tallies, one query.
pub(crate) async fn count(store: &dyn Store, tenant: &str, now: DateTime<Utc>) -> Result<u64> {
    let oldest = now - WINDOW;
    let (first_hour, last_hour) = (hour_of(oldest), hour_of(now));
    // A run counts when it ended at or after this second; later seconds of
    // the current hour (a host whose clock runs ahead) count too.
    let from = oldest.timestamp() + 1;
    let q = Query::partition(Index::Primary, keys::metrics_partition(Some(tenant)))
        .between(Some(sort_key(first_hour)), Some(sort_key(last_hour)))
        .limit(100);
    let page = store.query(&q).await?;
    let mut n = 0;
    for item in page.items {
        if item.expires_at.is_some_and(|t| t <= now.timestamp()) {
            continue;
        }
        let Some(hour) = hour_of_key(&item.key.sk) else { continue };
        let tally = records::from_item::<HourTally>(item)?.value;
        n +=
            tally.failed.iter().filter(|(s, _)| hour.timestamp() + i64::from(**s) >= from).map(|(_, c)| c).sum::<u64>();
    }
    Ok(n)
}

/// The hour a tally's sort key names.
fn hour_of_key(sk: &str) -> Option<DateTime<Utc>> {
    let hour = sk.strip_prefix("HOUR#")?;
    chrono::NaiveDateTime::parse_from_str(&format!("{hour}:00:00"), "%Y-%m-%dT%H:%M:%S").ok().map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn an_hours_sort_key_names_that_hour_and_sorts_in_time_order() {
        let at = Utc.with_ymd_and_hms(2024, 7, 1, 9, 59, 59).single().expect("time");
        let hour = hour_of(at);
        assert_eq!(sort_key(hour), "HOUR#2024-07-01T09");
        assert_eq!(hour_of_key(&sort_key(hour)), Some(hour));
        assert!(sort_key(hour) < sort_key(hour_of(at + Duration::seconds(1))));
        assert!(sort_key(hour_of(at - Duration::days(1))) < sort_key(hour));
    }
}
