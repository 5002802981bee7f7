//! The scheduler inside `ferry up`: schedules in memory, in a priority queue
//! by next fire time.
//!
//! Finding due jobs pops the queue's head while it is due, so its cost grows
//! with the number of due jobs, not with the number of jobs. The queue is
//! rebuilt from the store at start (by reconciling), with next fire times
//! computed from then on: ticks missed while `ferry up` was down, or while a
//! job was paused, are skipped, never replayed in a burst.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::ports::scheduler::{Installed, JobSchedule, ScheduledTick, Scheduler, SchedulerError};
use crate::ports::Clock;

type JobKey = Arc<(String, String)>;

struct Entry {
    schedule: JobSchedule,
    next: Option<DateTime<Utc>>,
    /// Heap entries of older versions of this schedule are skipped when popped.
    generation: u64,
}

#[derive(Default)]
struct Queue {
    entries: HashMap<JobKey, Entry>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, u64, JobKey)>>,
    generation: u64,
}

pub struct EmbeddedScheduler {
    queue: Mutex<Queue>,
    clock: Arc<dyn Clock>,
    changed: Notify,
}

impl EmbeddedScheduler {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { queue: Mutex::new(Queue::default()), clock, changed: Notify::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue holds no invariant a panicking holder could break halfway.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs a schedule with its next fire time after `now`.
    pub fn insert(&self, schedule: &JobSchedule, now: DateTime<Utc>) {
        let next = if schedule.enabled { schedule.plan.next_after(now) } else { None };
        let key: JobKey = Arc::new((schedule.tenant.clone(), schedule.job.clone()));
        let mut q = self.lock();
        q.generation += 1;
        let generation = q.generation;
        if let Some(t) = next {
            q.heap.push(Reverse((t, generation, key.clone())));
        }
        q.entries.insert(key, Entry { schedule: schedule.clone(), next, generation });
        drop(q);
        self.changed.notify_one();
    }

    /// Takes the ticks due at `now`, one per due job, and moves each job to its
    /// next fire time after `now`. A job that missed several ticks (the host
    /// was suspended) gets one tick, for the earliest missed fire time.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<ScheduledTick> {
        let mut q = self.lock();
        let mut out = Vec::new();
        // Jobs sharing a schedule share their next fire time: compute it once.
        let mut next_of: HashMap<Arc<str>, Option<DateTime<Utc>>> = HashMap::new();
        while let Some(Reverse((at, generation, _))) = q.heap.peek() {
            if *at > now {
                break;
            }
            let (at, generation) = (*at, *generation);
            let Some(Reverse((_, _, key))) = q.heap.pop() else { break };
            let Some(entry) = q.entries.get_mut(&key) else { continue };
            if entry.generation != generation {
                continue;
            }
            let plan = &entry.schedule.plan;
            let next = *next_of.entry(plan.key().clone()).or_insert_with(|| plan.next_after(now));
            entry.next = next;
            out.push(ScheduledTick { tenant: key.0.clone(), job: key.1.clone(), tick: at });
            if let Some(t) = next {
                q.heap.push(Reverse((t, generation, key)));
            }
        }
        out
    }

    /// The earliest next fire time, if any job is scheduled.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let q = self.lock();
        q.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// The job's next fire time, if it is scheduled and enabled.
    pub fn next_of(&self, tenant: &str, job: &str) -> Option<DateTime<Utc>> {
        let key = (tenant.to_owned(), job.to_owned());
        self.lock().entries.get(&key).and_then(|e| e.next)
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when a schedule was put or removed (the next due time may be earlier).
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

#[async_trait]
impl Scheduler for EmbeddedScheduler {
    async fn put(&self, schedule: &JobSchedule) -> Result<(), SchedulerError> {
        self.insert(schedule, self.clock.now());
        Ok(())
    }

    async fn remove(&self, tenant: &str, job: &str) -> Result<(), SchedulerError> {
        // The heap entry stays and is skipped when it comes up.
        self.lock().entries.remove(&(tenant.to_owned(), job.to_owned()));
        Ok(())
    }

    async fn get(&self, tenant: &str, job: &str) -> Result<Option<Installed>, SchedulerError> {
        let key = (tenant.to_owned(), job.to_owned());
        Ok(self.lock().entries.get(&key).map(|e| e.schedule.installed()))
    }

    async fn list(&self) -> Result<Vec<Installed>, SchedulerError> {
        let mut all: Vec<Installed> = self.lock().entries.values().map(|e| e.schedule.installed()).collect();
        all.sort();
        Ok(all)
    }

    fn backend_name(&self) -> &'static str {
        "embedded"
    }
}
