//! glibc allocator tuning for the compute threads' large, short-lived activations.

/// Activations of a large prefill step are tens of MiB each. glibc hands blocks that big
/// straight back to the kernel on free, so the next step page-faults and zeroes them all
/// again (a third of the time of a 2048-token step went to the kernel). Keep them: serve
/// blocks up to glibc's largest mmap threshold from the heap and never trim it.
///
/// Call it first thing in `main`, before any other thread exists.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
