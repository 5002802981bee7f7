//! A page's per-record work spread over the CPUs, results kept in order.
//!
//! Parsing a page's records, mapping them and serialising them for a file are
//! each pure per-record work on a page that is already in memory, so each can
//! run on every CPU. The work goes to rayon's pool (one thread per CPU, started
//! on first use): threads that live as long as the process keep their
//! allocator arenas warm, where a thread per page started cold each time.

use rayon::prelude::*;

/// Items below this many per thread are not worth a thread.
pub const MIN_PER_THREAD: usize = 256;

/// How many parts `len` items are worth, at most one per pool thread.
fn threads_for(len: usize) -> usize {
    rayon::current_num_threads().min(len / MIN_PER_THREAD).max(1)
}

/// `f` over consecutive chunks of `items`, one chunk per thread; the results in
/// the chunks' order. Few items make one chunk, handled on this thread.
pub fn chunks<T: Sync, U: Send>(items: &[T], f: impl Fn(&[T]) -> U + Sync) -> Vec<U> {
    let threads = threads_for(items.len());
    if threads == 1 {
        return vec![f(items)];
    }
    items.par_chunks(items.len().div_ceil(threads)).map(&f).collect()
}

/// `f` over every item, consuming them, on as many threads as they are worth;
/// the results in the items' order.
pub fn map<T: Send, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    if threads_for(items.len()) == 1 {
        return items.into_iter().map(f).collect();
    }
    items.into_par_iter().with_min_len(MIN_PER_THREAD).map(&f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_of_the_items() {
        for len in [0, 1, MIN_PER_THREAD - 1, MIN_PER_THREAD * 2 + 7, 10_001] {
            let items: Vec<usize> = (0..len).collect();
            assert_eq!(map(items.clone(), |i| i * 2), items.iter().map(|i| i * 2).collect::<Vec<_>>(), "{len}");
            let joined: Vec<usize> = chunks(&items, |part| part.to_vec()).into_iter().flatten().collect();
            assert_eq!(joined, items, "{len}");
        }
    }

    #[test]
    fn large_inputs_are_split_and_small_ones_are_not() {
        let items: Vec<u32> = (0..(MIN_PER_THREAD * 8) as u32).collect();
        let parts = chunks(&items, <[u32]>::len);
        assert_eq!(parts.iter().sum::<usize>(), items.len());
        assert_eq!(parts.len(), threads_for(items.len()));
        assert_eq!(chunks(&items[..10], <[u32]>::len), [10]);
    }
}

/// Runs template work that must stay on this task (it borrows the flow's
/// state) without holding an async worker: on a multi-threaded runtime the
/// worker's other tasks move to another thread meanwhile, so a page of
/// expensive filter or target templates (each bounded by its fuel) cannot
/// stall the API. A current-thread runtime (tests) runs it inline.
pub fn off_the_workers<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod worker_tests {
    use std::time::Duration;

    /// On a runtime with one worker, template work that waits for another
    /// task can only finish if that task got a thread meanwhile.
    #[test]
    fn template_work_off_the_workers_lets_the_workers_other_tasks_run() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let task = rt.spawn(async {
            let (tx, rx) = std::sync::mpsc::channel();
            tokio::spawn(async move {
                let _ = tx.send(());
            });
            super::off_the_workers(|| rx.recv_timeout(Duration::from_secs(10)).is_ok())
        });
        let other_task_ran = rt.block_on(task).expect("task");
        assert!(other_task_ran, "the worker was held while the template work ran");
    }
}
