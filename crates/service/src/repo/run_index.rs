//! How a run record is indexed. Every write of a run goes through [`put`],
//! which gives the item its two index keys, so the activity lists (a
//! tenant's runs across its jobs, every run of the platform) read an index in
//! time order and never scan: `gsi1` under `T#<tenant>#RUNS`, `gsi2` under
//! `RUNS`, both sorted by `<created_at>#<run id>`. A put without them would
//! drop the run from both indexes (a put replaces the whole item).

use chrono::{DateTime, Utc};

use super::{keys, records};
use ferry_core::error::Result;
use ferry_core::model::Run;
use ferry_core::ports::{Condition, Index, Item, Key, WriteOp};

/// The index partition of every run of the platform (`gsi2`).
pub const PLATFORM_RUNS: &str = "RUNS";

/// The index (`gsi1`) partition of a tenant's runs across its jobs.
pub fn tenant_runs(tenant: &str) -> String {
    format!("T#{tenant}#RUNS")
}

/// A time as the index's sort keys begin with it: UTC, fixed width, to the
/// microsecond, so string order is time order. A bound made with it sorts
/// before every run created at that instant (theirs continue with `#<id>`):
/// as a lower bound it includes them, as an upper bound it excludes them.
pub fn time_key(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The sort key of a run in both indexes.
pub fn sort_key(run: &Run) -> String {
    format!("{}#{}", time_key(run.created_at), run.id)
}

/// Creates or replaces a run's record, with its index keys.
pub fn put(run: &Run, condition: Condition) -> Result<WriteOp> {
    let sort = sort_key(run);
    let item = Item::new(keys::run(&run.tenant, &run.job, &run.id), records::to_body(run)?)
        .with_gsi1(Key::new(tenant_runs(&run.tenant), sort.clone()))
        .with_gsi2(Key::new(PLATFORM_RUNS, sort));
    Ok(WriteOp::Put { item, condition })
}

/// The indexes activity reads.
pub const TENANT_INDEX: Index = Index::Gsi1;
pub const PLATFORM_INDEX: Index = Index::Gsi2;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn time_keys_sort_as_times_do() {
        let a = Utc.with_ymd_and_hms(2024, 5, 1, 9, 0, 0).single().expect("time");
        let b = a + chrono::Duration::microseconds(1);
        let c = a + chrono::Duration::days(400);
        assert!(time_key(a) < time_key(b) && time_key(b) < time_key(c));
        assert_eq!(time_key(a), "2024-05-01T09:00:00.000000Z");
    }
}
