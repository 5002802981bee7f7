//! Process-wide tuning of the C allocator for the hosts that run the engine
//! (`ferry up`, the sync function).
//!
//! Tried and rejected, measured with `ferry-bench engine` (README, Engine):
//! `malloc_trim` after every page (peak RSS ~2 MiB lower, but 50% more CPU time
//! per record: the next page faults the returned pages in again).

/// Fixes glibc's mmap threshold at its default (128 KiB). Left dynamic, glibc
/// raises it whenever a large block is freed, after which page-sized buffers
/// (response bodies, a page's output) are carved from the heap arenas and
/// their memory stays with the arenas once freed; fixed, such buffers are
/// mapped and unmapped on their own. Measured with `ferry-bench engine`: peak
/// RSS of a 100,000-record run ~1 MiB lower, same CPU time (README, Engine).
pub fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; any value is accepted or refused (returns 0).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
