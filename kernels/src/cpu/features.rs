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

/// Whether this CPU has AVX-512F, which the packed GEMM uses for wider tiles (same bits).
/// `VLM_NO_AVX512=1` turns it off (to compare the paths).
pub fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f")
                && std::env::var_os("VLM_NO_AVX512").is_none_or(|v| v != "1")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AVX-512 VNNI (with BW and VL), which the quantized GEMM uses for
/// its integer dot products (same integers). `VLM_NO_AVX512=1` turns it off too.
pub fn vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx512()
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
