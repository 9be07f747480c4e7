//! Which SIMD instructions this CPU has, as the kernels need to know before packing.

/// Whether this CPU has the AVX2 and FMA instructions the packed GEMM needs.
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU converts f16 to f32 in hardware (F16C), which the packed kernels use.
pub fn f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
