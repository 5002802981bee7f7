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

use ferry_core::ports::scheduler::{Installed, JobSchedule, ScheduledTick, Scheduler, SchedulerError};
use ferry_core::ports::Clock;

type JobKey = (String, String);

struct Entry {
    tenant: String,
    job: String,
    schedule: JobSchedule,
    /// Index of the schedule's plan key: jobs with equal plans share it.
    plan: u32,
    next: Option<DateTime<Utc>>,
    /// Heap entries of older versions of this slot are skipped when popped.
    generation: u64,
}

/// Jobs live in slots; the heap holds small copyable (time, generation, slot)
/// triples, so popping a due job needs no hashing and no allocation.
#[derive(Default)]
struct Queue {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    index: HashMap<JobKey, u32>,
    plans: HashMap<Arc<str>, u32>,
    heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
    generation: u64,
}

impl Queue {
    fn entry(&self, tenant: &str, job: &str) -> Option<&Entry> {
        let slot = *self.index.get(&(tenant.to_owned(), job.to_owned()))?;
        self.slots.get(slot as usize)?.as_ref()
    }

    fn remove(&mut self, tenant: &str, job: &str) {
        if let Some(slot) = self.index.remove(&(tenant.to_owned(), job.to_owned())) {
            // Its heap entries stay and are skipped when they come up.
            if let Some(s) = self.slots.get_mut(slot as usize) {
                *s = None;
            }
            self.free.push(slot);
        }
    }

    /// Drops heap entries of removed or replaced schedules once they pile up.
    fn compact(&mut self) {
        if self.heap.len() <= 2 * self.index.len() + 1024 {
            return;
        }
        let slots = &self.slots;
        let live = |&Reverse((_, generation, slot)): &Reverse<(i64, u64, u32)>| {
            slots.get(slot as usize).and_then(|s| s.as_ref()).is_some_and(|e| e.generation == generation)
        };
        let kept: Vec<_> = self.heap.drain().filter(live).collect();
        self.heap = kept.into();
    }
}

pub struct EmbeddedScheduler {
    queue: Mutex<Queue>,
    clock: Arc<dyn Clock>,
    changed: Notify,
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default()
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
        let mut q = self.lock();
        q.remove(&schedule.tenant, &schedule.job);
        let plan_count = q.plans.len() as u32;
        let plan = *q.plans.entry(schedule.plan.key().clone()).or_insert(plan_count);
        q.generation += 1;
        let generation = q.generation;
        let entry = Entry {
            tenant: schedule.tenant.clone(),
            job: schedule.job.clone(),
            schedule: schedule.clone(),
            plan,
            next,
            generation,
        };
        let slot = match q.free.pop() {
            Some(slot) => {
                q.slots[slot as usize] = Some(entry);
                slot
            }
            None => {
                q.slots.push(Some(entry));
                (q.slots.len() - 1) as u32
            }
        };
        q.index.insert((schedule.tenant.clone(), schedule.job.clone()), slot);
        if let Some(t) = next {
            q.heap.push(Reverse((t.timestamp(), generation, slot)));
        }
        q.compact();
        drop(q);
        self.changed.notify_one();
    }

    /// Takes the ticks due at `now`, one per due job, and moves each job to its
    /// next fire time after `now`. A job that missed several ticks (the host
    /// was suspended) gets one tick, for the earliest missed fire time.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<ScheduledTick> {
        let mut guard = self.lock();
        let q = &mut *guard;
        let mut out = Vec::new();
        // Jobs sharing a plan share their next fire time: compute it once.
        let mut next_of: HashMap<u32, Option<DateTime<Utc>>> = HashMap::new();
        let now_secs = now.timestamp();
        while let Some(&Reverse((secs, generation, slot))) = q.heap.peek() {
            if secs > now_secs {
                break;
            }
            q.heap.pop();
            let Some(entry) = q.slots.get_mut(slot as usize).and_then(|s| s.as_mut()) else { continue };
            if entry.generation != generation {
                continue;
            }
            let plan = &entry.schedule.plan;
            let next = *next_of.entry(entry.plan).or_insert_with(|| plan.next_after(now));
            entry.next = next;
            out.push(ScheduledTick { tenant: entry.tenant.clone(), job: entry.job.clone(), tick: at(secs) });
            if let Some(t) = next {
                q.heap.push(Reverse((t.timestamp(), generation, slot)));
            }
        }
        out
    }

    /// The earliest next fire time, if any job is scheduled.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        let q = self.lock();
        q.heap.peek().map(|Reverse((t, _, _))| at(*t))
    }

    /// The job's next fire time, if it is scheduled and enabled.
    pub fn next_of(&self, tenant: &str, job: &str) -> Option<DateTime<Utc>> {
        self.lock().entry(tenant, job).and_then(|e| e.next)
    }

    pub fn len(&self) -> usize {
        self.lock().index.len()
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
        self.lock().remove(tenant, job);
        Ok(())
    }

    async fn get(&self, tenant: &str, job: &str) -> Result<Option<Installed>, SchedulerError> {
        Ok(self.lock().entry(tenant, job).map(|e| e.schedule.installed()))
    }

    async fn list(&self) -> Result<Vec<Installed>, SchedulerError> {
        let mut all: Vec<Installed> = self.lock().slots.iter().flatten().map(|e| e.schedule.installed()).collect();
        all.sort();
        Ok(all)
    }

    fn backend_name(&self) -> &'static str {
        "embedded"
    }
}
