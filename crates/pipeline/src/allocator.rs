//! One setting of the mimalloc allocator the binary and the core benchmarks
//! use (`#[global_allocator]` in `src/main.rs`). Leaf module.

/// mimalloc's `mi_option_purge_delay` (the `mi_option_e` enum of
/// `mimalloc.h`, the same in its v2 and v3): how long a freed page stays
/// mapped before mimalloc returns it to the OS, in ms (-1: never). The v3
/// that libmimalloc-sys 0.1.49 builds defaults it to 1000.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps the pages mimalloc frees mapped for reuse instead of returning them
/// to the OS a second after they empty, unless `MIMALLOC_PURGE_DELAY` is set
/// (mimalloc reads it at start; it then wins).
///
/// Why: a window close frees and allocates again many small objects (cells'
/// count bags, partials, sketches). At catch-up speed, where windows close
/// every few seconds of wall time, each close faulted its pages in again and
/// the kernel zeroed them: 16 % of the `core_path` profile's samples were
/// `clear_page_erms`. Keeping them made `core_path` 0.96 → 1.06 M events/s
/// per CPU second and `take_closed` 1.94 → 1.23 s per 200 s of event time
/// (`RAMPART_CORE_PROFILE=200`, medians of 5 alternating runs), for +3–6 %
/// peak resident memory (665–691 → 703 MiB). The resident set then stays at
/// its peak instead of shrinking after a burst; the memory budget bounds
/// that peak.
pub fn keep_freed_pages() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: sets one of mimalloc's options, which its documentation allows
    // at any time; no pointer is involved. Harmless when mimalloc is linked
    // but not the global allocator.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index is mimalloc's purge delay: it reads its default, 1000 ms
    /// (no neighbouring option defaults to 1000), then -1 after the call.
    #[test]
    fn the_option_is_the_purge_delay() {
        #[allow(unsafe_code)]
        // SAFETY: reads an option; no pointer is involved.
        let get = || unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(), 1000);
        }
        keep_freed_pages();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(), -1);
        }
    }
}
