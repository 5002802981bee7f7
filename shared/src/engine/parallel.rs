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
