//! Which of the triggers bundled behind a run the next run serves. Every
//! trigger is served by some run: the next run takes all waiting triggers of
//! one mode, and triggers of other modes keep waiting behind it for the run
//! after (a mode is one kind of work: init flows, the sync flows, the webhook
//! flows reading pending deliveries; a process integration is handed one mode).
//!
//! A rerun (`POST …/runs/{run}/rerun`) is never bundled with other triggers:
//! it executes with a configuration of its own (the original run's, or the
//! job's current one, and the original run's mode and options), so it is
//! served by a run of its own when it is the oldest waiting trigger (an init
//! request still goes first), and other triggers never join its run. A
//! replay of dead letters (trigger `replay`) is served alone the same way:
//! it reads no source, only the dead letters it names.

use serde::{Deserialize, Serialize};

use ferry_core::model::{Replay, RerunConfig, RunMode, RunOptions, Trigger};

/// A trigger waiting behind the running run (stored in the job's lease).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Pending {
    pub(super) mode: RunMode,
    pub(super) trigger: Trigger,
    pub(super) options: RunOptions,
    /// A rerun of an earlier run: served by a run of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rerun: Option<Rerun>,
    /// A replay of dead letters: served by a run of its own too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) replay: Option<Replay>,
}

impl Pending {
    /// Served by a run of its own (a rerun, a replay).
    fn alone(&self) -> bool {
        self.rerun.is_some() || self.replay.is_some()
    }
}

/// What a rerun trigger asks for: the run it reruns, with which configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Rerun {
    pub(super) of: String,
    pub(super) config: RerunConfig,
}

/// The run made of bundled triggers, and the triggers still waiting behind it.
#[derive(Debug)]
pub(super) struct NextRun {
    pub(super) mode: RunMode,
    pub(super) triggers: Vec<Trigger>,
    pub(super) options: RunOptions,
    pub(super) rerun: Option<Rerun>,
    pub(super) replay: Option<Replay>,
    pub(super) waiting: Vec<Pending>,
}

/// The next run of `pending` (in arrival order), `None` when nothing waits.
/// An init run goes first when one was asked for (it refreshes the dynamic
/// options the other modes' configs depend on), else the mode of the oldest
/// waiting trigger, so that no mode waits behind a stream of another. A
/// rerun that is the oldest waiting trigger (and no init request waits) is
/// served alone; reruns never join another trigger's run.
pub(super) fn next_run(mut pending: Vec<Pending>) -> Option<NextRun> {
    let first = pending.first()?;
    let init = pending.iter().any(|p| p.mode == RunMode::Init && !p.alone());
    if first.alone() && !init {
        let own = pending.remove(0);
        let Pending { mode, trigger, options, rerun, replay } = own;
        return Some(NextRun { mode, triggers: vec![trigger], options, rerun, replay, waiting: pending });
    }
    let mode = if init { RunMode::Init } else { first.mode };
    let (served, waiting): (Vec<Pending>, Vec<Pending>) =
        pending.into_iter().partition(|p| p.mode == mode && !p.alone());
    let options = served.iter().map(|p| &p.options).fold(None, |acc, o| Some(combine(acc, o))).unwrap_or_default();
    let triggers = served.into_iter().map(|p| p.trigger).collect();
    Some(NextRun { mode, triggers, options, rerun: None, replay: None, waiting })
}

/// Options of triggers served by one run: it does what each of them asked.
/// `reset_cursor` and `full` if any asked; the largest `max_records`, none if
/// any trigger set no limit; the smallest `batch_size` asked for (smaller
/// batches write the same records, and a lowered size is usually a target's
/// limit).
fn combine(acc: Option<RunOptions>, o: &RunOptions) -> RunOptions {
    let Some(a) = acc else { return o.clone() };
    RunOptions {
        reset_cursor: a.reset_cursor || o.reset_cursor,
        full: a.full || o.full,
        max_records: a.max_records.zip(o.max_records).map(|(x, y)| x.max(y)),
        batch_size: match (a.batch_size, o.batch_size) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn p(mode: RunMode, source: &str, options: RunOptions) -> Pending {
        Pending {
            mode,
            trigger: Trigger { source: source.into(), at: Utc::now(), tick: None, by: None },
            options,
            rerun: None,
            replay: None,
        }
    }

    fn rerun(of: &str) -> Pending {
        let mut p = p(RunMode::Normal, "rerun", Default::default());
        p.rerun = Some(Rerun { of: of.into(), config: RerunConfig::Original });
        p
    }

    fn sources(triggers: &[Trigger]) -> Vec<&str> {
        triggers.iter().map(|t| t.source.as_str()).collect()
    }

    #[test]
    fn the_oldest_mode_runs_first_and_the_others_keep_waiting_in_order() {
        let pending = vec![
            p(RunMode::Webhook, "webhook", Default::default()),
            p(RunMode::Normal, "schedule", Default::default()),
            p(RunMode::Webhook, "webhook2", Default::default()),
            p(RunMode::Normal, "api", Default::default()),
        ];
        let next = next_run(pending).expect("a run");
        assert_eq!(next.mode, RunMode::Webhook);
        assert_eq!(sources(&next.triggers), ["webhook", "webhook2"]);
        let after = next_run(next.waiting).expect("the run after");
        assert_eq!(after.mode, RunMode::Normal);
        assert_eq!(sources(&after.triggers), ["schedule", "api"]);
        assert!(after.waiting.is_empty());
        assert!(next_run(after.waiting).is_none());
    }

    #[test]
    fn an_init_request_goes_first() {
        let pending =
            vec![p(RunMode::Normal, "schedule", Default::default()), p(RunMode::Init, "api", Default::default())];
        let next = next_run(pending).expect("a run");
        assert_eq!((next.mode, sources(&next.triggers)), (RunMode::Init, vec!["api"]));
        assert_eq!(next.waiting.len(), 1);
    }

    #[test]
    fn options_combine_to_what_every_trigger_asked_for() {
        let o =
            |reset_cursor, full, max_records, batch_size| RunOptions { reset_cursor, full, max_records, batch_size };
        let next = next_run(vec![
            p(RunMode::Normal, "a", o(true, false, Some(2), Some(50))),
            p(RunMode::Normal, "b", o(false, true, Some(7), None)),
            p(RunMode::Normal, "c", o(false, false, Some(3), Some(10))),
        ])
        .expect("a run");
        assert_eq!(next.options, o(true, true, Some(7), Some(10)));
        let unlimited = next_run(vec![
            p(RunMode::Normal, "a", o(false, false, Some(2), None)),
            p(RunMode::Normal, "b", o(false, false, None, None)),
        ])
        .expect("a run");
        assert_eq!(unlimited.options.max_records, None, "a trigger without a limit asked for everything");
        let alone = next_run(vec![p(RunMode::Normal, "a", o(false, true, Some(5), Some(3)))]).expect("a run");
        assert_eq!(alone.options, o(false, true, Some(5), Some(3)));
    }

    #[test]
    fn a_rerun_is_served_alone_in_its_turn_and_nothing_joins_it() {
        let pending = vec![
            p(RunMode::Normal, "schedule", Default::default()),
            rerun("r1"),
            p(RunMode::Normal, "api", Default::default()),
            rerun("r2"),
        ];
        let next = next_run(pending).expect("a run");
        assert_eq!((next.rerun.as_ref(), sources(&next.triggers)), (None, vec!["schedule", "api"]));
        let after = next_run(next.waiting).expect("the first rerun");
        assert_eq!(after.rerun.as_ref().map(|r| r.of.as_str()), Some("r1"));
        assert_eq!(sources(&after.triggers), ["rerun"]);
        let last = next_run(after.waiting).expect("the second rerun");
        assert_eq!(last.rerun.as_ref().map(|r| r.of.as_str()), Some("r2"));
        assert!(last.waiting.is_empty());
    }

    #[test]
    fn an_init_request_goes_before_a_waiting_rerun() {
        let next = next_run(vec![rerun("r1"), p(RunMode::Init, "api", Default::default())]).expect("a run");
        assert_eq!((next.mode, next.rerun.is_none()), (RunMode::Init, true));
        assert_eq!(next.waiting.len(), 1);
    }
}
