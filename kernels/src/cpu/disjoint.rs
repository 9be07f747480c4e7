//! A pointer to an output buffer that parallel work items write disjoint parts of.

#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);
// SAFETY: every user writes only its own disjoint range of the buffer, and the buffer
// outlives the pool call (see `gemm_packed::PackedWeight::matmul`, `paged_attention`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// A method rather than `.0` so closures capture the whole (`Sync`) wrapper.
    pub(crate) unsafe fn at(self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}
