//! A page's per-record work spread over the CPUs, results kept in order.
//!
//! Parsing a page's records, mapping them and serialising them for a file are
//! each pure per-record work on a page that is already in memory, so each can
//! run on every CPU. Scoped threads rather than a pool: a page is a thousand
//! records or so, and a thread per CPU per page costs tens of microseconds
//! against milliseconds of work, without a pool's idle threads in every
//! process that links the engine.

/// Items below this many per thread are not worth a thread.
pub const MIN_PER_THREAD: usize = 256;

/// How many threads `len` items are worth, at most one per CPU.
fn threads_for(len: usize) -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cpus = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    cpus.min(len / MIN_PER_THREAD).max(1)
}

/// `f` over consecutive chunks of `items`, one chunk per thread; the results in
/// the chunks' order. Few items make one chunk, handled on this thread.
pub fn chunks<T: Sync, U: Send>(items: &[T], f: impl Fn(&[T]) -> U + Sync) -> Vec<U> {
    let threads = threads_for(items.len());
    if threads == 1 {
        return vec![f(items)];
    }
    let per_thread = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let mut parts = items.chunks(per_thread);
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts.map(|part| scope.spawn(move || f(part))).collect();
        let mut out = Vec::with_capacity(threads);
        out.push(f(first));
        for handle in others {
            match handle.join() {
                Ok(result) => out.push(result),
                // A panic is a bug, not bad input: keep it a panic.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// `f` over every item, consuming them, on as many threads as they are worth;
/// the results in the items' order.
pub fn map<T: Send, U: Send>(mut items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let threads = threads_for(items.len());
    if threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    let mut parts = Vec::with_capacity(threads);
    while items.len() > per_thread {
        parts.push(items.split_off(items.len() - per_thread));
    }
    parts.push(items);
    parts.reverse();
    let f = &f;
    std::thread::scope(|scope| {
        let mut parts = parts.into_iter();
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> =
            parts.map(|part| scope.spawn(move || part.into_iter().map(f).collect::<Vec<_>>())).collect();
        let mut out: Vec<U> = first.into_iter().map(f).collect();
        for handle in others {
            match handle.join() {
                Ok(mapped) => out.extend(mapped),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
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
