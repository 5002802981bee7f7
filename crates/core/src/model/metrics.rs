//! Run metrics: what one ended run contributes ([`RunEnd`]), the aggregate
//! kept per scope, UTC day and integration ([`RunTally`]), and the summaries
//! the API reports ([`MetricsReport`]).
//!
//! Aggregates are updated when a run ends, never computed from run history at
//! read time, so a report costs a read per (day, integration) of its window
//! whatever the number of runs. That rules out exact percentiles: durations go
//! into a fixed log-spaced histogram ([`DurationHistogram`]) whose buckets add
//! up across runs, days, integrations and tenants, and p50/p95 are read from
//! it with a stated precision.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::run::{Run, RunStatus};

/// Buckets per doubling of the duration: each bucket spans a factor of
/// 2^(1/4) ≈ 1.19, so its geometric midpoint is within 2^(1/8) − 1 ≈ 9.1% of
/// every duration in it.
const BUCKETS_PER_DOUBLING: f64 = 4.0;

/// How far a reported percentile may be from the duration it stands for:
/// the reported value is the geometric midpoint of the bucket holding the
/// run at that rank, within 9.1% of that run's duration (rounded to whole
/// milliseconds; durations under 1 ms are reported as 0).
pub const PERCENTILE_RELATIVE_ERROR: f64 = 0.0906;

/// Run durations in log-spaced buckets. Bucket 0 holds durations under 1 ms;
/// bucket `i ≥ 1` holds `[2^((i−1)/4), 2^(i/4))` ms. Stored sparsely (only
/// buckets with runs), so an aggregate stays small: a week-long run is bucket
/// 120.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationHistogram {
    /// Bucket index → runs in it.
    #[serde(default)]
    pub buckets: BTreeMap<u16, u64>,
}

impl DurationHistogram {
    pub fn bucket_of(ms: u64) -> u16 {
        if ms == 0 {
            return 0;
        }
        // Saturates far beyond any run's duration (u64::MAX ms is bucket 257).
        ((ms as f64).log2() * BUCKETS_PER_DOUBLING).floor() as u16 + 1
    }

    /// The value a bucket reports: its geometric midpoint, in whole ms.
    pub fn representative(bucket: u16) -> u64 {
        if bucket == 0 {
            return 0;
        }
        (2f64.powf((f64::from(bucket) - 0.5) / BUCKETS_PER_DOUBLING)).round() as u64
    }

    pub fn record(&mut self, ms: u64) {
        *self.buckets.entry(Self::bucket_of(ms)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &DurationHistogram) {
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The nearest-rank percentile (`p` in (0, 1]): the representative of the
    /// bucket holding the ⌈p·n⌉-th shortest duration. `None` without durations.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((p * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (b, count) in &self.buckets {
            seen += count;
            if seen >= rank {
                return Some(Self::representative(*b));
            }
        }
        self.buckets.keys().next_back().map(|b| Self::representative(*b))
    }
}

/// Ended runs by final status. Only final statuses are counted: a run is
/// counted once, when its record first turns final.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusCounts {
    #[serde(default)]
    pub succeeded: u64,
    #[serde(default)]
    pub partial: u64,
    #[serde(default)]
    pub failed_integration: u64,
    #[serde(default)]
    pub failed_platform: u64,
    #[serde(default)]
    pub failed_timeout: u64,
    #[serde(default)]
    pub failed_refresh: u64,
    #[serde(default)]
    pub cancelled: u64,
}

impl StatusCounts {
    /// Counts one run; false (and nothing counted) for a status that is not final.
    pub fn add(&mut self, status: RunStatus) -> bool {
        let slot = match status {
            RunStatus::Succeeded => &mut self.succeeded,
            RunStatus::Partial => &mut self.partial,
            RunStatus::FailedIntegration => &mut self.failed_integration,
            RunStatus::FailedPlatform => &mut self.failed_platform,
            RunStatus::FailedTimeout => &mut self.failed_timeout,
            RunStatus::FailedRefresh => &mut self.failed_refresh,
            RunStatus::Cancelled => &mut self.cancelled,
            RunStatus::Queued | RunStatus::Running | RunStatus::Interrupted => return false,
        };
        *slot += 1;
        true
    }

    pub fn merge(&mut self, o: &StatusCounts) {
        self.succeeded += o.succeeded;
        self.partial += o.partial;
        self.failed_integration += o.failed_integration;
        self.failed_platform += o.failed_platform;
        self.failed_timeout += o.failed_timeout;
        self.failed_refresh += o.failed_refresh;
        self.cancelled += o.cancelled;
    }

    pub fn total(&self) -> u64 {
        self.succeeded
            + self.partial
            + self.failed_integration
            + self.failed_platform
            + self.failed_timeout
            + self.failed_refresh
            + self.cancelled
    }
}

/// What one ended run adds to the metrics. Written in the same atomic write
/// as the run's first final record (so it exists exactly once per run), and
/// folded into the aggregates right after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    pub tenant: String,
    pub job: String,
    pub run: String,
    /// The job's integration when the run ended; `None` when the job was
    /// deleted before its run ended (counted in the totals only).
    pub integration: Option<String>,
    /// UTC day the run ended.
    pub day: NaiveDate,
    /// When the run ended; absent in ends recorded before ends carried it
    /// (those count in the day aggregates only).
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    /// From its first start to its end, across continuations; `None` for a
    /// run that never started (cancelled while queued).
    pub duration_ms: Option<u64>,
    /// Sum over its flows' counters at the end.
    pub records_read: u64,
    pub records_written: u64,
    #[serde(default)]
    pub records_dead_lettered: u64,
}

impl RunEnd {
    /// The contribution of `run`; `None` unless its status is final.
    pub fn of(run: &Run, integration: Option<String>) -> Option<RunEnd> {
        if !run.status.is_finished() {
            return None;
        }
        let ended = run.ended_at.or(run.started_at).unwrap_or(run.created_at);
        let duration_ms = run.started_at.map(|s| (ended - s).num_milliseconds().max(0) as u64);
        Some(RunEnd {
            tenant: run.tenant.clone(),
            job: run.job.clone(),
            run: run.id.clone(),
            integration,
            day: ended.date_naive(),
            ended_at: Some(ended),
            status: run.status,
            duration_ms,
            records_read: run.counters.values().map(|c| c.read).sum(),
            records_written: run.counters.values().map(|c| c.written).sum(),
            records_dead_lettered: run.counters.values().map(|c| c.dead_lettered).sum(),
        })
    }
}

/// The aggregate of the runs that ended in one scope (a tenant, or the
/// platform), on one UTC day, of one integration. Adding is commutative, so
/// aggregates sum into days, windows and scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTally {
    #[serde(default)]
    pub runs: StatusCounts,
    #[serde(default)]
    pub durations: DurationHistogram,
    #[serde(default)]
    pub records_read: u64,
    #[serde(default)]
    pub records_written: u64,
    #[serde(default)]
    pub records_dead_lettered: u64,
}

impl RunTally {
    pub fn add(&mut self, end: &RunEnd) {
        if !self.runs.add(end.status) {
            return;
        }
        if let Some(ms) = end.duration_ms {
            self.durations.record(ms);
        }
        self.records_read += end.records_read;
        self.records_written += end.records_written;
        self.records_dead_lettered += end.records_dead_lettered;
    }

    pub fn merge(&mut self, o: &RunTally) {
        self.runs.merge(&o.runs);
        self.durations.merge(&o.durations);
        self.records_read += o.records_read;
        self.records_written += o.records_written;
        self.records_dead_lettered += o.records_dead_lettered;
    }

    pub fn summary(&self) -> MetricsSummary {
        let judged = self.runs.total() - self.runs.cancelled;
        MetricsSummary {
            runs: self.runs.total(),
            by_status: self.runs.clone(),
            success_rate: (judged > 0).then(|| self.runs.succeeded as f64 / judged as f64),
            duration_p50_ms: self.durations.percentile(0.50),
            duration_p95_ms: self.durations.percentile(0.95),
            records_read: self.records_read,
            records_written: self.records_written,
            records_dead_lettered: self.records_dead_lettered,
        }
    }
}

/// Runs that ended in a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricsSummary {
    /// Runs that ended (any final status).
    pub runs: u64,
    pub by_status: StatusCounts,
    /// `succeeded` ÷ ended runs other than `cancelled` (an operator's cancel
    /// says nothing of the integration; `partial` is not a success); `null`
    /// when there are none.
    pub success_rate: Option<f64>,
    /// Median run duration (first start to end, across continuations) of the
    /// runs that started, from a log-spaced histogram: within 9.1% of the
    /// median run's duration. `null` when no run started.
    pub duration_p50_ms: Option<u64>,
    /// 95th percentile, as `duration_p50_ms`.
    pub duration_p95_ms: Option<u64>,
    /// Records the runs' flows read, summed at their ends.
    pub records_read: u64,
    /// Records the runs' flows wrote to their targets.
    pub records_written: u64,
    /// Records the runs' flows kept as dead letters.
    pub records_dead_lettered: u64,
}

/// One UTC day of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DayMetrics {
    /// `YYYY-MM-DD`, UTC.
    pub date: NaiveDate,
    #[serde(flatten)]
    pub summary: MetricsSummary,
}

/// One integration over a report's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IntegrationMetrics {
    pub integration: String,
    #[serde(flatten)]
    pub summary: MetricsSummary,
}

/// Run metrics of a tenant, or of the whole platform, over the last days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricsReport {
    /// The tenant reported on; `null` for the platform-wide report.
    pub tenant: Option<String>,
    /// First UTC day of the window.
    pub from: NaiveDate,
    /// Last UTC day of the window (today).
    pub to: NaiveDate,
    /// Only this integration's runs, when the request asked so.
    pub integration: Option<String>,
    /// The whole window. Includes runs whose job was deleted before they ended,
    /// which no integration lists.
    pub totals: MetricsSummary,
    /// Every day of the window, oldest first (days without runs included).
    pub per_day: Vec<DayMetrics>,
    /// Integrations with runs in the window, by name.
    pub by_integration: Vec<IntegrationMetrics>,
    /// The dead letters waiting for a replay or a discard now, the tenant's
    /// or (platform-wide) every tenant's, whatever the window and
    /// integration, from the counts kept with their writes.
    pub dead_letters_pending: Option<u64>,
}
