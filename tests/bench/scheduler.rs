//! `ferry-bench scheduler`: how long the embedded scheduler takes to find the
//! due jobs among many (100,000 by default), at every minute of a simulated
//! window and at the busiest instant (the top of the hour, when the interval
//! presets, hourly and the daily/weekly jobs at HH:00 all fire at once).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use ferry_core::manifest::Schedule;
use ferry_core::ports::{JobSchedule, ManualClock};
use ferry_core::schedule::Plan;
use ferry_embedded::EmbeddedScheduler;
use serde_json::json;

const TIMEZONES: [&str; 6] =
    ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Sydney"];
const PRESETS: [&str; 11] = [
    "every_5_minutes",
    "every_10_minutes",
    "every_15_minutes",
    "every_30_minutes",
    "hourly",
    "every_2_hours",
    "every_4_hours",
    "every_6_hours",
    "every_12_hours",
    "daily",
    "weekly",
];
const DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// A fixed, repeatable mix: xorshift, not a library RNG, so every run of the
/// bench schedules exactly the same jobs.
struct Mix(u64);

impl Mix {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn schedule(mix: &mut Mix) -> anyhow::Result<Plan> {
    let tz = TIMEZONES[mix.next(TIMEZONES.len())];
    let value = if mix.next(10) == 0 {
        // One job in ten has its own cron.
        json!({"cron": format!("{} {}-{} * * {}", mix.next(60), mix.next(8), 8 + mix.next(16), ["*", "1-5", "0,6"][mix.next(3)]), "timezone": tz})
    } else {
        let preset = PRESETS[mix.next(PRESETS.len())];
        let at = format!("{:02}:{:02}", mix.next(24), [0, 0, 15, 30, 45][mix.next(5)]);
        match preset {
            "daily" => json!({"preset": preset, "at": at, "timezone": tz}),
            "weekly" => json!({"preset": preset, "at": at, "day": DAYS[mix.next(7)], "timezone": tz}),
            _ => json!({"preset": preset, "timezone": tz}),
        }
    };
    let s: Schedule = serde_json::from_value(value)?;
    Ok(Plan::compile(&s)?)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

pub fn run(jobs: usize, minutes: usize) -> anyhow::Result<()> {
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2024, 5, 1, 9, 58, 30).single().unwrap_or_default();
    let clock = Arc::new(ManualClock::new(start));
    let scheduler = EmbeddedScheduler::new(clock.clone());
    let mut mix = Mix(0x9E37_79B9_7F4A_7C15);
    let plans = (0..jobs).map(|_| schedule(&mut mix).map(Arc::new)).collect::<anyhow::Result<Vec<_>>>()?;
    let built = Instant::now();
    for (i, plan) in plans.iter().enumerate() {
        let js = JobSchedule {
            tenant: format!("tenant-{}", i % 1000),
            job: format!("job-{i:06}"),
            plan: plan.clone(),
            enabled: true,
        };
        scheduler.insert(&js, start);
    }
    let build = built.elapsed();
    eprintln!("ferry-bench: {jobs} jobs scheduled in {}; simulating {minutes} minutes", ms(build));
    let mut samples = Vec::with_capacity(minutes);
    for m in 1..=minutes {
        let now = start + chrono::Duration::seconds(90) + chrono::Duration::minutes(m as i64 - 1);
        clock.set(now);
        let t = Instant::now();
        let due = scheduler.due(now);
        samples.push((t.elapsed(), due.len(), now));
    }
    let mut times: Vec<Duration> = samples.iter().map(|s| s.0).collect();
    times.sort();
    let p50 = times[times.len() / 2];
    let (worst, worst_due, worst_at) = samples.iter().max_by_key(|s| s.0).copied().unwrap_or_default();
    let (_, busiest_due, busiest_at) = samples.iter().max_by_key(|s| s.1).copied().unwrap_or_default();
    let busiest = samples.iter().find(|s| s.2 == busiest_at).map(|s| s.0).unwrap_or_default();
    let fired: usize = samples.iter().map(|s| s.1).sum();
    println!(
        "| jobs | minutes simulated | ticks fired | p50 per minute | busiest minute | slowest minute | queue build |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {jobs} | {minutes} | {fired} | {} | {} due in {} ({}) | {} ({} due, {}) | {} |",
        ms(p50),
        busiest_due,
        ms(busiest),
        busiest_at.format("%H:%M"),
        ms(worst),
        worst_due,
        worst_at.format("%H:%M"),
        ms(build),
    );
    Ok(())
}
