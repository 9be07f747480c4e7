//! How llama.cpp's q4_0 and q8_0 blocks sit in the quantized GEMM's packed layout:
//! sixteen output features together, their values made unsigned four at a time per
//! feature, and how the kernels load them (AVX-512 VNNI operands, or AVX2 dot products of
//! the same integers) and read them back.

use super::quantize_q8::BLOCK;

/// Output features stored together: one AVX-512 register of 32-bit lanes.
pub(crate) const LANES: usize = 16;

/// A block format: how its 32 values are stored in the packed layout, and read back.
pub trait QuantBlock: Send + Sync + 'static {
    /// Bytes of one ggml block (its f16 scale first).
    const GGML_BYTES: usize;
    /// Bytes of sixteen features' values in one packed block.
    const PACKED: usize;
    /// What the packed (unsigned) values exceed the real ones by.
    const OFFSET: i32;
    /// A ggml value byte that holds real zeros (for padding features).
    const ZERO_BYTE: u8;
    /// Writes feature `f`'s ggml values (`GGML_BYTES - 2` bytes) into a packed block.
    fn pack_feature(ggml_values: &[u8], f: usize, packed: &mut [u8]);
    /// Feature `f`'s 32 real values from a packed block.
    fn unpack_feature(packed: &[u8], f: usize) -> [i8; BLOCK];
    /// The ggml block's 32 real values (for references).
    fn values(ggml_values: &[u8]) -> [i8; BLOCK];
    /// Sixteen features' unsigned values `4j..4j+4` (`j < 8`), four bytes per feature.
    ///
    /// # Safety
    /// `packed` must point at [`PACKED`](Self::PACKED) readable bytes, on a CPU with
    /// AVX-512BW.
    #[cfg(target_arch = "x86_64")]
    unsafe fn quad_512(packed: *const u8, j: usize) -> std::arch::x86_64::__m512i;
    /// Eight features' (`half` 0 or 1) true integer dot products over values `4j..4j+4`
    /// with `x`'s four values broadcast in `xb`, as AVX2 computes them (less
    /// [`AVX2_OFFSET`](Self::AVX2_OFFSET) times their sum).
    ///
    /// # Safety
    /// As [`quad_512`](Self::quad_512), on a CPU with AVX2.
    #[cfg(target_arch = "x86_64")]
    unsafe fn quad_dot_avx2(
        packed: *const u8,
        j: usize,
        half: usize,
        xb: std::arch::x86_64::__m256i,
    ) -> std::arch::x86_64::__m256i;
    /// The offset left in [`quad_dot_avx2`](Self::quad_dot_avx2)'s sums.
    const AVX2_OFFSET: i32;
}

/// q4_0: 16 bytes of nibbles; value `i < 16` is byte `i`'s low nibble, `16 + i` its high
/// one, each minus 8. Packed: vector `j < 4` holds bytes `4j..4j+4` of every feature, so
/// its low nibbles are values `4j..` and its high nibbles values `16 + 4j..`.
pub struct Q4_0;
/// q8_0: 32 signed bytes. Packed: vector `j` holds values `4j..4j+4` + 128.
pub struct Q8_0;

impl QuantBlock for Q4_0 {
    const GGML_BYTES: usize = 18;
    const PACKED: usize = 4 * LANES * 4;
    const OFFSET: i32 = 8;
    const ZERO_BYTE: u8 = 0x88;
    const AVX2_OFFSET: i32 = 8;

    fn pack_feature(ggml_values: &[u8], f: usize, packed: &mut [u8]) {
        for j in 0..4 {
            packed[j * LANES * 4 + f * 4..][..4].copy_from_slice(&ggml_values[4 * j..4 * j + 4]);
        }
    }

    fn unpack_feature(packed: &[u8], f: usize) -> [i8; BLOCK] {
        let mut ggml = [0u8; 16];
        for j in 0..4 {
            ggml[4 * j..4 * j + 4].copy_from_slice(&packed[j * LANES * 4 + f * 4..][..4]);
        }
        Self::values(&ggml)
    }

    fn values(ggml_values: &[u8]) -> [i8; BLOCK] {
        let mut v = [0i8; BLOCK];
        for (i, &b) in ggml_values[..16].iter().enumerate() {
            v[i] = (b & 0x0f) as i8 - 8;
            v[i + 16] = (b >> 4) as i8 - 8;
        }
        v
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn quad_512(packed: *const u8, j: usize) -> std::arch::x86_64::__m512i {
        use std::arch::x86_64::*;
        let v = _mm512_loadu_si512(packed.add((j % 4) * LANES * 4) as *const _);
        let v = if j < 4 { v } else { _mm512_srli_epi16::<4>(v) };
        _mm512_and_si512(v, _mm512_set1_epi8(0x0f))
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn quad_dot_avx2(
        packed: *const u8,
        j: usize,
        half: usize,
        xb: std::arch::x86_64::__m256i,
    ) -> std::arch::x86_64::__m256i {
        use std::arch::x86_64::*;
        let v = _mm256_loadu_si256(packed.add((j % 4) * LANES * 4 + half * 32) as *const _);
        let v = if j < 4 { v } else { _mm256_srli_epi16::<4>(v) };
        let w = _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
        // 0..15 times -127..127, in pairs: far inside maddubs' 16 bits.
        _mm256_madd_epi16(_mm256_maddubs_epi16(w, xb), _mm256_set1_epi16(1))
    }
}

impl QuantBlock for Q8_0 {
    const GGML_BYTES: usize = 34;
    const PACKED: usize = 8 * LANES * 4;
    const OFFSET: i32 = 128;
    const ZERO_BYTE: u8 = 0;
    const AVX2_OFFSET: i32 = 0;

    fn pack_feature(ggml_values: &[u8], f: usize, packed: &mut [u8]) {
        for j in 0..8 {
            for t in 0..4 {
                packed[j * LANES * 4 + f * 4 + t] = ggml_values[4 * j + t] ^ 0x80;
            }
        }
    }

    fn unpack_feature(packed: &[u8], f: usize) -> [i8; BLOCK] {
        std::array::from_fn(|i| (packed[(i / 4) * LANES * 4 + f * 4 + i % 4] ^ 0x80) as i8)
    }

    fn values(ggml_values: &[u8]) -> [i8; BLOCK] {
        std::array::from_fn(|i| ggml_values[i] as i8)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn quad_512(packed: *const u8, j: usize) -> std::arch::x86_64::__m512i {
        use std::arch::x86_64::*;
        _mm512_loadu_si512(packed.add(j * LANES * 4) as *const _)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn quad_dot_avx2(
        packed: *const u8,
        j: usize,
        half: usize,
        xb: std::arch::x86_64::__m256i,
    ) -> std::arch::x86_64::__m256i {
        use std::arch::x86_64::*;
        let u = _mm256_loadu_si256(packed.add(j * LANES * 4 + half * 32) as *const _);
        // Back to signed, then |w| times x with w's sign: at most 2 * 128 * 127 per pair,
        // inside maddubs' 16 bits (the unsigned values themselves would overflow them).
        let w = _mm256_xor_si256(u, _mm256_set1_epi8(i8::MIN));
        let prod = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xb, w));
        _mm256_madd_epi16(prod, _mm256_set1_epi16(1))
    }
}
