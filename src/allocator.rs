//! Keep freed tensor memory in the process instead of handing it back to the kernel.
//!
//! A training step on the CPU backends allocates and frees hundreds of tensor buffers of
//! 0.1–2 MB. glibc's `malloc` trims the top of its heaps back to the kernel whenever more than
//! `M_TRIM_THRESHOLD` is free there (128 KiB, raised dynamically), so the next step's buffers
//! are fresh pages again: a page fault and a zeroed page per 4 KiB, about a quarter of a step
//! of the main job (BENCHMARKS.md, session 4). [`retain_freed_memory`] raises the trim
//! threshold to 1 GiB and serves buffers up to 32 MiB from the heap; the process then keeps
//! its peak working set (tens of MB for the main job) mapped between steps.

/// Tune the process's allocator for tensor workloads (module docs). Call once at start-up,
/// before any tensor work; the `ember` CLI does. Returns whether it took effect (glibc on
/// Linux only; elsewhere it does nothing and returns `false`).
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both values are in range
        // (the mmap threshold's maximum is 32 MiB on 64-bit glibc).
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
