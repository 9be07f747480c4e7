//! GEMM against llama.cpp's q4_0 and q8_0 block formats, as llama.cpp computes it: each
//! row of `x` is quantized to q8_0 per 32 values, and every block contributes
//! `d_w * d_x * (integer dot product of its 32 values)`, the integer part done with AVX2
//! byte multiplies. The weights are re-laid out once so four output features' blocks sit
//! together and one pass over `x`'s quantized row feeds four dot products.
//!
//! Every output element is accumulated over its blocks in `k` order in one vector of eight
//! partial sums, summed in a fixed order at the end, however many rows are in the batch:
//! a sequence gets bit-identical numbers alone or batched.

use std::sync::Arc;

use half::f16;

use super::disjoint::OutPtr;
use super::features::{avx2_fma, vnni};

/// Values per block (both formats).
pub const BLOCK: usize = 32;
/// Output features whose blocks are stored together.
const QUAD: usize = 4;
/// Rows of `x` per register tile, at most: 4 rows x 4 features = 16 accumulators with
/// AVX-512's 32 vector registers, 2 rows (8 accumulators) with AVX2's 16.
const TILE_ROWS: usize = 4;

/// A block format: how many bytes hold a block's 32 values, and how they become 32
/// signed bytes.
pub trait QuantBlock: Send + Sync + 'static {
    /// Bytes of one ggml block (its f16 scale first).
    const GGML_BYTES: usize;
    /// Bytes of the values alone.
    const VALUES: usize = Self::GGML_BYTES - 2;
    /// The block's 32 values as signed bytes, in order.
    ///
    /// # Safety
    /// `ptr` must point at [`VALUES`](Self::VALUES) readable bytes, on a CPU with AVX2.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load(ptr: *const u8) -> std::arch::x86_64::__m256i;
    /// The same values, plain (for reading a weight back).
    fn values(bytes: &[u8]) -> [i8; BLOCK];
}

/// q4_0: 16 bytes of nibbles; value `i < 16` is byte `i`'s low nibble, `16 + i` its high
/// one, each minus 8.
pub struct Q4_0;
/// q8_0: 32 signed bytes.
pub struct Q8_0;

impl QuantBlock for Q4_0 {
    const GGML_BYTES: usize = 18;

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load(ptr: *const u8) -> std::arch::x86_64::__m256i {
        use std::arch::x86_64::*;
        let bytes = _mm_loadu_si128(ptr as *const __m128i);
        let lo = _mm_and_si128(bytes, _mm_set1_epi8(0x0f));
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(bytes), _mm_set1_epi8(0x0f));
        _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8))
    }

    fn values(bytes: &[u8]) -> [i8; BLOCK] {
        let mut v = [0i8; BLOCK];
        for (i, &b) in bytes[..16].iter().enumerate() {
            v[i] = (b & 0x0f) as i8 - 8;
            v[i + 16] = (b >> 4) as i8 - 8;
        }
        v
    }
}

impl QuantBlock for Q8_0 {
    const GGML_BYTES: usize = 34;

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load(ptr: *const u8) -> std::arch::x86_64::__m256i {
        use std::arch::x86_64::*;
        _mm256_loadu_si256(ptr as *const __m256i)
    }

    fn values(bytes: &[u8]) -> [i8; BLOCK] {
        let mut v = [0i8; BLOCK];
        for (o, &b) in v.iter_mut().zip(&bytes[..BLOCK]) {
            *o = b as i8;
        }
        v
    }
}

/// A `[out_features, in_features]` weight in block format `B`, re-laid out for
/// [`matmul`](Self::matmul): per group of four features and per block, their four f16
/// scales, then their four blocks' values.
pub struct PackedQuant<B> {
    data: Arc<Vec<u8>>,
    out_features: usize,
    in_features: usize,
    _format: std::marker::PhantomData<B>,
}

impl<B> std::fmt::Debug for PackedQuant<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PackedQuant[{}x{}, {} bytes]",
            self.out_features,
            self.in_features,
            self.data.len()
        )
    }
}

impl<B: QuantBlock> PackedQuant<B> {
    /// Bytes of one (group, block) record: four scales and four blocks of values.
    const RECORD: usize = QUAD * 2 + QUAD * B::VALUES;

    /// Re-lays out ggml blocks (row-major: each feature's `in / 32` blocks in order). `None`
    /// when this CPU lacks AVX2/FMA, `in_features` is not a multiple of 32, or `ggml` has
    /// another length.
    pub fn pack(ggml: &[u8], out_features: usize, in_features: usize) -> Option<Self> {
        let (n, k) = (out_features, in_features);
        if !avx2_fma() || k == 0 || !k.is_multiple_of(BLOCK) {
            return None;
        }
        let blocks = k / BLOCK;
        if ggml.len() != n * blocks * B::GGML_BYTES {
            return None;
        }
        let groups = n.div_ceil(QUAD);
        // Padding features have zero scales and values.
        let mut data = vec![0u8; groups * blocks * Self::RECORD];
        for j in 0..n {
            let (g, c) = (j / QUAD, j % QUAD);
            for b in 0..blocks {
                let src = &ggml[(j * blocks + b) * B::GGML_BYTES..][..B::GGML_BYTES];
                let record = &mut data[(g * blocks + b) * Self::RECORD..][..Self::RECORD];
                record[c * 2..c * 2 + 2].copy_from_slice(&src[..2]);
                record[QUAD * 2 + c * B::VALUES..][..B::VALUES].copy_from_slice(&src[2..]);
            }
        }
        Some(Self {
            data: Arc::new(data),
            out_features: n,
            in_features: k,
            _format: std::marker::PhantomData,
        })
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Row `index` of the weight, dequantized (`d * value`); `None` past the last row.
    pub fn row(&self, index: usize) -> Option<Vec<f32>> {
        if index >= self.out_features {
            return None;
        }
        let blocks = self.in_features / BLOCK;
        let (g, c) = (index / QUAD, index % QUAD);
        let mut row = Vec::with_capacity(self.in_features);
        for b in 0..blocks {
            let record = &self.data[(g * blocks + b) * Self::RECORD..][..Self::RECORD];
            let d = f16::from_le_bytes([record[c * 2], record[c * 2 + 1]]).to_f32();
            let values = B::values(&record[QUAD * 2 + c * B::VALUES..][..B::VALUES]);
            row.extend(values.iter().map(|&v| d * f32::from(v)));
        }
        Some(row)
    }

    /// `y[m][n] = sum_k x[m][k] * w[n][k]` for the `m` rows of `x` (`[m, in_features]`),
    /// `x` quantized to q8_0 per row first; feature groups are split across candle's
    /// pinned pool.
    ///
    /// # Panics
    /// If `x` holds fewer than `m * in_features` values.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = (self.out_features, self.in_features);
        assert!(x.len() >= m * k, "gemm_quant: x is shorter than {m} rows");
        let blocks = k / BLOCK;
        let (xq, xd) = quantize_rows(&x[..m * k], m, k);
        let mut y = vec![0f32; m * n];
        let out = OutPtr(y.as_mut_ptr());
        let groups = n.div_ceil(QUAD);
        let tile = if vnni() { TILE_ROWS } else { 2 };
        candle_core::utils::barrier_pool().execute_chunked(groups, |range| {
            for g in range {
                let records = &self.data[g * blocks * Self::RECORD..][..blocks * Self::RECORD];
                let cols = (n - g * QUAD).min(QUAD);
                let mut r = 0;
                while r < m {
                    let rows = (m - r).min(tile);
                    let mut acc = [[0f32; QUAD]; TILE_ROWS];
                    // SAFETY: AVX2/FMA were detected at packing; `xq`/`xd` hold `m` rows
                    // of `blocks` blocks and `records` this group's `blocks` records.
                    unsafe {
                        match rows {
                            4 => group_tile::<B, 4>(records, blocks, &xq, &xd, r, &mut acc),
                            3 => group_tile::<B, 3>(records, blocks, &xq, &xd, r, &mut acc),
                            2 => group_tile::<B, 2>(records, blocks, &xq, &xd, r, &mut acc),
                            _ => group_tile::<B, 1>(records, blocks, &xq, &xd, r, &mut acc),
                        }
                    }
                    for (i, row) in acc.iter().take(rows).enumerate() {
                        // SAFETY: group `g` writes only its own columns of `y`, which
                        // outlives the pool call.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                row.as_ptr(),
                                out.at((r + i) * n + g * QUAD),
                                cols,
                            )
                        };
                    }
                    r += rows;
                }
            }
        });
        y
    }
}

/// llama.cpp's `quantize_row_q8_0` on every row: per 32 values, `d = max|x| / 127` and
/// `q = round(x / d)` (half away from zero). Returns the values and each block's `d`.
fn quantize_rows(x: &[f32], m: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    let blocks = m * (k / BLOCK);
    let mut q = vec![0i8; m * k];
    let mut d = vec![0f32; blocks];
    for ((xs, qs), d) in x
        .chunks_exact(BLOCK)
        .zip(q.chunks_exact_mut(BLOCK))
        .zip(&mut d)
    {
        let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        for (o, v) in qs.iter_mut().zip(xs) {
            *o = (v * inv).round() as i8;
        }
        // The scale as ggml stores it (f16), which the dot product then uses.
        *d = f16::from_f32(scale).to_f32();
    }
    (q, d)
}

/// `R` rows (from `row0`) against one group of four features over all blocks, with the
/// integer dot products in AVX-512 VNNI's one instruction where the CPU has it (the same
/// integers: no pair of byte products can saturate maddubs' 16 bits here).
#[cfg(target_arch = "x86_64")]
unsafe fn group_tile<B: QuantBlock, const R: usize>(
    records: &[u8],
    blocks: usize,
    xq: &[i8],
    xd: &[f32],
    row0: usize,
    out: &mut [[f32; QUAD]; TILE_ROWS],
) {
    if vnni() {
        group_tile_vnni::<B, R>(records, blocks, xq, xd, row0, out)
    } else {
        group_tile_avx2::<B, R>(records, blocks, xq, xd, row0, out)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_tile_avx2<B: QuantBlock, const R: usize>(
    records: &[u8],
    blocks: usize,
    xq: &[i8],
    xd: &[f32],
    row0: usize,
    out: &mut [[f32; QUAD]; TILE_ROWS],
) {
    group_tile_body::<B, R, false>(records, blocks, xq, xd, row0, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn group_tile_vnni<B: QuantBlock, const R: usize>(
    records: &[u8],
    blocks: usize,
    xq: &[i8],
    xd: &[f32],
    row0: usize,
    out: &mut [[f32; QUAD]; TILE_ROWS],
) {
    group_tile_body::<B, R, true>(records, blocks, xq, xd, row0, out)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn group_tile_body<B: QuantBlock, const R: usize, const VNNI: bool>(
    records: &[u8],
    blocks: usize,
    xq: &[i8],
    xd: &[f32],
    row0: usize,
    out: &mut [[f32; QUAD]; TILE_ROWS],
) {
    use std::arch::x86_64::*;
    let record = PackedQuant::<B>::RECORD;
    let k = blocks * BLOCK;
    let mut acc = [[_mm256_setzero_ps(); QUAD]; R];
    let ones = _mm256_set1_epi16(1);
    let rp = records.as_ptr();
    for b in 0..blocks {
        let rec = rp.add(b * record);
        _mm_prefetch::<_MM_HINT_T0>(rec.wrapping_add(8 * record) as *const i8);
        let scales = _mm_cvtph_ps(_mm_loadl_epi64(rec as *const __m128i));
        let mut dw = [0f32; 4];
        _mm_storeu_ps(dw.as_mut_ptr(), scales);
        let mut xs = [_mm256_setzero_si256(); R];
        let mut dx = [0f32; R];
        for i in 0..R {
            xs[i] =
                _mm256_loadu_si256(xq.as_ptr().add((row0 + i) * k + b * BLOCK) as *const __m256i);
            dx[i] = xd[(row0 + i) * blocks + b];
        }
        for c in 0..QUAD {
            let w = B::load(rec.add(QUAD * 2 + c * B::VALUES));
            // |w| times x with w's sign: maddubs multiplies unsigned by signed bytes.
            let aw = _mm256_sign_epi8(w, w);
            for i in 0..R {
                let sx = _mm256_sign_epi8(xs[i], w);
                let dot = if VNNI {
                    _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx)
                } else {
                    _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones)
                };
                let scale = _mm256_set1_ps(dw[c] * dx[i]);
                acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[i][c]);
            }
        }
    }
    for i in 0..R {
        for c in 0..QUAD {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc[i][c]);
            out[i][c] = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
                + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn group_tile<B: QuantBlock, const R: usize>(
    _: &[u8],
    _: usize,
    _: &[i8],
    _: &[f32],
    _: usize,
    _: &mut [[f32; QUAD]; TILE_ROWS],
) {
    unreachable!("packing needs AVX2")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_ggml<B: QuantBlock>(n: usize, k: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut out = Vec::new();
        for _ in 0..n * k / BLOCK {
            let d = f16::from_f32(rng.random_range(0.001f32..0.05));
            out.extend(d.to_le_bytes());
            out.extend((0..B::VALUES).map(|_| rng.random::<u8>()));
        }
        out
    }

    /// Exact reference: each block's integer dot product, scaled by `d_w * d_x`, summed
    /// in f64.
    fn check<B: QuantBlock>() {
        let (n, k, m) = (11, 96, 5);
        let ggml = random_ggml::<B>(n, k, 7);
        let packed = PackedQuant::<B>::pack(&ggml, n, k).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let y = packed.matmul(&x, m);
        let (xq, xd) = quantize_rows(&x, m, k);
        let blocks = k / BLOCK;
        for r in 0..m {
            for j in 0..n {
                let mut want = 0f64;
                for b in 0..blocks {
                    let src = &ggml[(j * blocks + b) * B::GGML_BYTES..][..B::GGML_BYTES];
                    let dw = f16::from_le_bytes([src[0], src[1]]).to_f32();
                    let w = B::values(&src[2..]);
                    let dot: i32 = (0..BLOCK)
                        .map(|i| i32::from(w[i]) * i32::from(xq[r * k + b * BLOCK + i]))
                        .sum();
                    want += f64::from(dw * xd[r * blocks + b]) * f64::from(dot);
                }
                let got = f64::from(y[r * n + j]);
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "({r}, {j}): {got} vs {want}"
                );
            }
            let alone = packed.matmul(&x[r * k..(r + 1) * k], 1);
            assert_eq!(alone, y[r * n..(r + 1) * n], "row {r} alone");
        }
        // Rows read back as d * value.
        let src = &ggml[3 * blocks * B::GGML_BYTES..][..B::GGML_BYTES];
        let d = f16::from_le_bytes([src[0], src[1]]).to_f32();
        let row = packed.row(3).unwrap();
        assert_eq!(row[..BLOCK], B::values(&src[2..]).map(|v| d * f32::from(v)));
        assert!(packed.row(n).is_none());
    }

    #[test]
    fn q4_0_and_q8_0_match_the_integer_reference_and_rows_are_batch_invariant() {
        assert!(avx2_fma(), "the quantized kernels are not exercised");
        check::<Q4_0>();
        check::<Q8_0>();
    }

    #[test]
    fn vnni_gives_the_avx2_bits() {
        if !vnni() {
            eprintln!("no AVX-512 VNNI here: only the AVX2 path runs");
            return;
        }
        let (n, k, m) = (8, 256, 3);
        {
            let ggml = random_ggml::<Q8_0>(n, k, 3);
            let packed = PackedQuant::<Q8_0>::pack(&ggml, n, k).unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(4);
            let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-3.0f32..3.0)).collect();
            let (xq, xd) = quantize_rows(&x, m, k);
            let blocks = k / BLOCK;
            for g in 0..n / QUAD {
                let records = &packed.data[g * blocks * PackedQuant::<Q8_0>::RECORD..]
                    [..blocks * PackedQuant::<Q8_0>::RECORD];
                let (mut a, mut b) = ([[0f32; QUAD]; TILE_ROWS], [[0f32; QUAD]; TILE_ROWS]);
                unsafe {
                    group_tile_avx2::<Q8_0, 2>(records, blocks, &xq, &xd, 0, &mut a);
                    group_tile_vnni::<Q8_0, 2>(records, blocks, &xq, &xd, 0, &mut b);
                }
                assert_eq!(a, b, "group {g}");
            }
        }
    }

    #[test]
    fn activations_quantize_as_llama_cpp() {
        let mut x = vec![0f32; 64];
        x[0] = 1.27;
        x[1] = -0.6;
        x[2] = 0.02;
        let (q, d) = quantize_rows(&x, 1, 64);
        assert_eq!(d[0], f16::from_f32(0.01).to_f32());
        assert_eq!(&q[..3], &[127, -60, 2]);
        assert_eq!(d[1], 0.0, "an all-zero block has a zero scale");
        assert!(PackedQuant::<Q4_0>::pack(&[0; 18], 1, 40).is_none());
    }
}
