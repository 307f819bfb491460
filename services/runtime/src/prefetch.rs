//! A cache-line prefetch, so the hot path can start the memory loads it will need a few
//! steps later (a fan's pseudonym slot, the dedup horizon's filter blocks) while it
//! decodes and validates, instead of waiting for each in turn.

/// Starts loading the cache line holding `at` into the CPU's caches; a no-op elsewhere
/// than x86-64. Any address is fine: a prefetch never faults and reads nothing.
#[inline(always)]
#[allow(unsafe_code)] // the one unsafe block of the workspace: see SAFETY below
pub fn line<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint; it does not dereference `at` in the language's sense,
    // cannot fault, and SSE (its target feature) is part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
