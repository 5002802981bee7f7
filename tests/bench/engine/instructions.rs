//! `ferry-bench engine --instructions`: instructions per record of `ferry up`
//! under callgrind.
//!
//! A run's instructions are a fixed part (its run record and lease, the
//! target file, the trigger) plus a part per record (reading pages, mapping,
//! writing). Each counted pair runs one job over the feed's first half and
//! another over all of it, with the counters zeroed before and dumped after
//! each run; the difference over the difference in records is the cost of one
//! more record, whatever the fixed part is. Unlike CPU time, instructions do
//! not depend on what else the machine runs, so two builds compare on a busy
//! VM. The bench's own status requests while a run goes are counted too: one
//! costs the host as much as hundreds of records, so the bench asks rarely,
//! measures one at the end and subtracts them per request.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;

use super::{create_job, publish, run_job, EngineArgs, FeedProcess, Host, KEY};
use crate::callgrind::Callgrind;

/// `ferry up` starts ~50× slower under callgrind.
const READY_WITHIN: Duration = Duration::from_secs(600);
/// Between status requests while a run goes.
const POLL: Duration = Duration::from_millis(500);
/// Status requests counted alone, to know what one costs.
const STATUS_SAMPLES: u64 = 20;

struct Counted {
    records: usize,
    instructions: u64,
    polls: u64,
}

pub(super) async fn run(args: &EngineArgs, binary: &Path, feed: &FeedProcess) -> anyhow::Result<String> {
    if args.pages < 2 {
        bail!("--instructions needs --pages of at least 2: it compares runs over half the feed and all of it");
    }
    let scratch = tempfile::tempdir()?;
    let mut cg = Callgrind::new(args.callgrind_dir.as_deref().unwrap_or(scratch.path()))?;
    let data = tempfile::tempdir()?;
    let host = Host::spawn(cg.command(binary), data.path(), READY_WITHIN).await?;
    let pid = host.child.id();
    let c = reqwest::Client::new();
    publish(&host, &c, args.mapping).await?;
    let half = args.pages / 2;
    let jobs = [
        (half, create_job(&host, &c, "half", &format!("{}/first/{half}", feed.base)).await?),
        (args.pages, create_job(&host, &c, "whole", &feed.base).await?),
    ];
    // One uncounted run of each job first: caches, connection pool, SQLite warm.
    let mut last = None;
    for (pages, job) in &jobs {
        last = Some((job, run_job(&host, &c, job, pages * args.page_size, POLL).await?.run));
    }
    let mut pairs = Vec::new();
    for i in 1..=args.runs {
        let mut pair = Vec::new();
        for (pages, job) in &jobs {
            let records = pages * args.page_size;
            cg.zero(pid)?;
            let done = run_job(&host, &c, job, records, POLL).await?;
            let dump = cg.dump(pid, &format!("pair-{i}-{records}-records"))?;
            let kept = match &args.callgrind_dir {
                Some(_) => format!(" ({})", dump.path.display()),
                None => String::new(),
            };
            eprintln!(
                "ferry-bench: pair {i}: {records} records, {} instructions, {} status requests{kept}",
                dump.instructions, done.polls
            );
            pair.push(Counted { records, instructions: dump.instructions, polls: done.polls });
        }
        pairs.push(pair);
    }

    let (job, run) = last.expect("two jobs ran");
    cg.zero(pid)?;
    for _ in 0..STATUS_SAMPLES {
        c.get(format!("{}/v1/tenants/bench/jobs/{job}/runs/{run}", host.base))
            .bearer_auth(KEY)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
    }
    let per_status = cg.dump(pid, "status-requests")?.instructions as f64 / STATUS_SAMPLES as f64;
    drop(host);

    let net = |r: &Counted| r.instructions as f64 - r.polls as f64 * per_status;
    let mut slopes: Vec<f64> =
        pairs.iter().map(|p| (net(&p[1]) - net(&p[0])) / (p[1].records - p[0].records) as f64).collect();
    slopes.sort_by(f64::total_cmp);
    let slope = slopes[slopes.len() / 2];
    let mut whole: Vec<f64> = pairs.iter().map(|p| net(&p[1])).collect();
    whole.sort_by(f64::total_cmp);
    let whole = whole[whole.len() / 2];
    let records = args.pages * args.page_size;
    let polls = pairs.iter().flatten().map(|r| r.polls).sum::<u64>() as f64 / (2 * pairs.len()) as f64;

    let mut out = format!(
        "Engine, instructions: runs of {} and {records} records ({} and {} pages × {}), 2 fields mapped ({:?}), written as JSON Lines; \
         `ferry up` from `target/{}` under callgrind, {} pair(s), {}.\n\n",
        half * args.page_size,
        half,
        args.pages,
        args.page_size,
        args.mapping,
        args.profile,
        args.runs,
        crate::machine(),
    );
    out.push_str("| metric | value |\n|---|---|\n");
    out.push_str(&format!("| instructions per record (median slope) | {} |\n", grouped(slope)));
    out.push_str(&format!(
        "| slopes of the pairs, lowest – highest | {} – {} |\n",
        grouped(slopes[0]),
        grouped(slopes[slopes.len() - 1])
    ));
    out.push_str(&format!("| instructions of a run of {records} records (median) | {} |\n", grouped(whole)));
    // Start-up and per-run costs included, for comparison with the slope.
    out.push_str(&format!("| the same over its records | {} |\n", grouped(whole / records as f64)));
    out.push_str(&format!("| one status request (subtracted; {polls:.1} per run) | {} |\n", grouped(per_status)));
    if let Some(dir) = &args.callgrind_dir {
        out.push_str(&format!("\ncallgrind dumps, one per counted run: {}\n", dir.display()));
    }
    Ok(out)
}

/// `12345678.4` as `12,345,678`.
fn grouped(n: f64) -> String {
    let digits = format!("{:.0}", n.abs());
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    if n < -0.5 {
        out.insert(0, '-');
    }
    out
}
