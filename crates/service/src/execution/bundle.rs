//! Which of the triggers bundled behind a run the next run serves. Every
//! trigger is served by some run: the next run takes all waiting triggers of
//! one mode, and triggers of other modes keep waiting behind it for the run
//! after (a mode is one kind of work: init flows, the sync flows, the webhook
//! flows reading pending deliveries; a process integration is handed one mode).

use serde::{Deserialize, Serialize};

use ferry_core::model::{RunMode, RunOptions, Trigger};

/// A trigger waiting behind the running run (stored in the job's lease).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Pending {
    pub(super) mode: RunMode,
    pub(super) trigger: Trigger,
    pub(super) options: RunOptions,
}

/// The run made of bundled triggers, and the triggers still waiting behind it.
#[derive(Debug)]
pub(super) struct NextRun {
    pub(super) mode: RunMode,
    pub(super) triggers: Vec<Trigger>,
    pub(super) options: RunOptions,
    pub(super) waiting: Vec<Pending>,
}

/// The next run of `pending` (in arrival order), `None` when nothing waits.
/// An init run goes first when one was asked for (it refreshes the dynamic
/// options the other modes' configs depend on), else the mode of the oldest
/// waiting trigger, so that no mode waits behind a stream of another.
pub(super) fn next_run(pending: Vec<Pending>) -> Option<NextRun> {
    let first = pending.first()?.mode;
    let mode = if pending.iter().any(|p| p.mode == RunMode::Init) { RunMode::Init } else { first };
    let (served, waiting): (Vec<Pending>, Vec<Pending>) = pending.into_iter().partition(|p| p.mode == mode);
    let options = served.iter().map(|p| &p.options).fold(None, |acc, o| Some(combine(acc, o))).unwrap_or_default();
    let triggers = served.into_iter().map(|p| p.trigger).collect();
    Some(NextRun { mode, triggers, options, waiting })
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
        Pending { mode, trigger: Trigger { source: source.into(), at: Utc::now(), tick: None }, options }
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
}
