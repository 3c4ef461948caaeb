//! Heap settings for tensor work.
//!
//! The CPU backend allocates a fresh buffer for nearly every tensor op and frees it a few ops
//! later. With glibc's defaults, buffers above the (adaptive) mmap threshold are `mmap`ed and
//! `munmap`ed each time, and the heap's free top is returned to the kernel above 128 KiB, so every
//! training step page-faults its working set in again: `perf` showed 12% of a state-only BC update
//! in the kernel's page-fault path. Raising both thresholds keeps freed buffers in the process for
//! reuse. The cost is that the resident size stays at the step's high-water mark instead of
//! shrinking between steps.

/// Largest request served from the heap instead of its own `mmap` (glibc caps the setting at
/// 32 MiB on 64-bit targets). Larger buffers (a batch of 128 px images) still get their own mapping.
const MMAP_THRESHOLD_BYTES: std::ffi::c_int = 32 << 20;

/// Free memory at the top of the heap kept before glibc returns it to the kernel.
const TRIM_THRESHOLD_BYTES: std::ffi::c_int = 1 << 30;

/// Applies the settings above; `main` calls it first, so that every allocation gets them.
/// Returns false when glibc refused a setting (its default then stays, which is only slower);
/// true as well on a C library without `mallopt` (only glibc targets have it), where there is
/// nothing to set.
pub fn keep_freed_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes allocator parameters, under glibc's own arena lock, and
        // both values are within glibc's documented ranges. A refused value (return 0) leaves
        // glibc's default in place, which is only slower.
        let (mmap, trim) = unsafe {
            (
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
            )
        };
        mmap != 0 && trim != 0
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_both_heap_settings() {
        // `mallopt` returns 0 for a value outside glibc's range (an mmap threshold above 32 MiB,
        // say), which would silently leave the page-faulting defaults in place.
        assert!(super::keep_freed_buffers());
    }
}
