//! How a run executes, in one place. A run's life touches the job's lease,
//! the triggers bundled behind it, its continuations, a cancel reaching it,
//! and three ways of executing a release; kept apart, each of those needed
//! the others' internals and called back into them. Here they are modules of
//! one, with one context type ([`context::FlowRun`]) for what executing a
//! run reads, and dependencies pointing one way between runs, execution and
//! hooks: the operator API (`crate::runs`) calls in; execution calls out to
//! the services it needs (jobs, connections, hooks' delivery store,
//! notifications), and hooks never start a run themselves.
//!
//! - [`lease`]: one run per job at a time, triggers bundled behind the run
//!   holding the job, the lease handed on or freed when the run ends;
//! - [`bundle`]: which bundled triggers the next run serves;
//! - [`lifecycle`]: start, claim, slices and continuations, what follows a
//!   run, recovery after a restart;
//! - [`watch`]: a cancel, the budget and the lease checked as a run goes;
//!   the stop registry; [`halt`]: what a halt is recorded as;
//! - [`snapshot`]: what a run executes with, recorded before its first
//!   flow; [`rerun`]: a rerun, started or bundled as a run of its own;
//! - [`log`]: the run's log; [`resume`]: where a run stopped inside a flow;
//! - [`context`]: [`context::FlowRun`], bound connectors, the checkpoint;
//! - [`declarative`], [`process`], [`webhook`]: the executors (and, in
//!   [`webhook`], serving a job's stored deliveries with a run).
//!
//! **Bundled triggers.** Triggers arriving while a run holds its job wait in
//! the job's lease, and every one is served by a later run. The next run
//! serves every waiting trigger of one mode: `init` when one was asked for
//! (it refreshes what the other modes' configs depend on), else the mode of
//! the oldest waiting trigger; triggers of another mode keep waiting for the
//! run after it. So a scheduled tick bundled with webhook deliveries makes a
//! `normal` run and a `webhook` run, whichever order they came in. Options of
//! the triggers one run serves combine: `reset_cursor` and `full` if any
//! trigger asked for them, the largest `max_records` (no limit if any
//! trigger set none), the smallest `batch_size` asked for. A rerun is never
//! bundled with other triggers: it waits in the lease like them and is served
//! by a run of its own, in its turn (after an init request), so a rerun with
//! the original configuration never executes as part of a run with the
//! current one, nor the other way round.
//!
//! **Deadlines.** An invocation with a deadline executes only the run it was
//! handed: what follows (its continuation, the run bundled behind it) is
//! handed to the dispatcher.

mod bundle;
mod context;
mod control;
mod declarative;
mod halt;
mod lease;
mod lifecycle;
mod log;
// Process integrations (`run:` manifests) need the sandbox of a host that
// has bubblewrap: `ferry up`. The Lambda `sync` function is built without
// them (their runner, sandbox, egress proxy and metadata validation are a
// tenth of its binary) and fails such a run saying so.
#[cfg(feature = "process-integrations")]
mod process;
#[cfg(not(feature = "process-integrations"))]
mod process_unsupported;
mod replay;
mod rerun;
mod resume;
mod snapshot;
mod tally;
mod watch;
mod webhook;

pub(crate) use control::RunControl;
pub use lease::{RunRequest, Triggered};
pub(crate) use log::served_log;
pub use log::{LogFilter, LogLevel, LogLine, RunLogs};
pub(crate) use snapshot::{check_replayable, config_unknown, recorded};
