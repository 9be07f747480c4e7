//! GEMM against llama.cpp's q4_0 and q8_0 block formats, as llama.cpp computes it: each
//! row of `x` is quantized to q8_0 per 32 values, and every block contributes
//! `d_w * d_x * (integer dot product of its 32 values)`.
//!
//! The weights are re-laid out once, sixteen output features together: per block, their
//! sixteen f16 scales, then their values made unsigned (q8_0 + 128; q4_0's nibbles as
//! stored, i.e. + 8) four at a time per feature, so that one AVX-512 VNNI instruction
//! multiplies four values of `x` (broadcast) into sixteen features' running integer dot
//! products; the offset comes back out through the block's sum of `x`. Without VNNI the
//! same integers come from AVX2 byte multiplies, eight features per register.
//!
//! Every output element is `acc = fma(float(dot), d_w * d_x, acc)` over its blocks in `k`
//! order, in its own lane, whatever the number of rows in the batch or the instruction set:
//! a sequence gets bit-identical numbers alone or batched, on either path.

use std::sync::Arc;

use half::f16;

use super::disjoint::OutPtr;
use super::features::{avx2_fma, vnni};
use super::quantize_q8::{quantize_rows, QuantizedRows};

pub(crate) use super::quant_blocks::LANES;
pub use super::quant_blocks::{QuantBlock, Q4_0, Q8_0};
pub use super::quantize_q8::BLOCK;
/// Rows of `x` per register tile, at most: with AVX-512's 32 registers, 6 rows x (two
/// integer chains + one float accumulator) = 18, plus the weights and scales.
pub(crate) const TILE_ROWS_VNNI: usize = 6;
/// How far ahead of the record in use weights are prefetched: about what one core streams
/// from DRAM in the time a load takes to arrive.
const PREFETCH_BYTES: usize = 2560;
/// With AVX2's 16 registers: 2 rows x two halves x (integer + float) = 8.
const TILE_ROWS_AVX2: usize = 2;

/// A `[out_features, in_features]` weight in block format `B`, re-laid out for
/// [`matmul`](Self::matmul): per group of sixteen features and per block, their sixteen
/// f16 scales, then their values ([`QuantBlock::PACKED`] bytes).
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
    /// Bytes of one (group, block) record: sixteen scales, then the values.
    const RECORD: usize = LANES * 2 + B::PACKED;

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
        let groups = n.div_ceil(LANES);
        // Padding features have zero scales (and zero values, offset like the rest).
        let mut data = vec![0u8; groups * blocks * Self::RECORD];
        let zero = [B::ZERO_BYTE; 32];
        for j in 0..groups * LANES {
            let (g, f) = (j / LANES, j % LANES);
            for b in 0..blocks {
                let record = &mut data[(g * blocks + b) * Self::RECORD..][..Self::RECORD];
                let (scales, values) = record.split_at_mut(LANES * 2);
                if j < n {
                    let src = &ggml[(j * blocks + b) * B::GGML_BYTES..][..B::GGML_BYTES];
                    scales[f * 2..f * 2 + 2].copy_from_slice(&src[..2]);
                    B::pack_feature(&src[2..], f, values);
                } else {
                    B::pack_feature(&zero, f, values);
                }
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
        let (g, f) = (index / LANES, index % LANES);
        let mut row = Vec::with_capacity(self.in_features);
        for b in 0..blocks {
            let record = &self.data[(g * blocks + b) * Self::RECORD..][..Self::RECORD];
            let d = f16::from_le_bytes([record[f * 2], record[f * 2 + 1]]).to_f32();
            let values = B::unpack_feature(&record[LANES * 2..], f);
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
        let xq = quantize_rows(&x[..m * k], m, k);
        let record = blocks * Self::RECORD;
        for_each_tile(n, m, |g, row0, rows, wide, acc| {
            let at = Tile {
                records: self.data[g * record..][..record].as_ptr(),
                blocks,
                x: &xq,
                row0,
            };
            // SAFETY: AVX2/FMA were detected at packing (VNNI and AVX-512BW by the
            // driver); `xq` holds `m` rows of `blocks` blocks and the records are this
            // group's `blocks` records.
            unsafe { at.run::<B>(rows, wide, acc) };
        })
    }
}

/// The driver both quantized GEMMs share: every group of sixteen output features (split
/// across candle's pinned pool) against every tile of rows, `tile(group, row0, rows,
/// wide, out)` filling `out[..rows]`, written into `y` (`[m, n]`).
pub(crate) fn for_each_tile(
    n: usize,
    m: usize,
    tile: impl Fn(usize, usize, usize, bool, &mut [[f32; LANES]; TILE_ROWS_VNNI]) + Sync,
) -> Vec<f32> {
    let mut y = vec![0f32; m * n];
    let out = OutPtr(y.as_mut_ptr());
    let wide = vnni();
    let tile_rows = if wide { TILE_ROWS_VNNI } else { TILE_ROWS_AVX2 };
    candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(LANES), |range| {
        for g in range {
            let cols = (n - g * LANES).min(LANES);
            let mut r = 0;
            while r < m {
                let rows = (m - r).min(tile_rows);
                let mut acc = [[0f32; LANES]; TILE_ROWS_VNNI];
                tile(g, r, rows, wide, &mut acc);
                for (i, row) in acc.iter().take(rows).enumerate() {
                    // SAFETY: group `g` writes only its own columns of `y`, which outlives
                    // the pool call.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            row.as_ptr(),
                            out.at((r + i) * n + g * LANES),
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

/// One register tile's inputs: a feature group's records and rows `row0..` of `x`.
pub(crate) struct Tile<'a> {
    pub(crate) records: *const u8,
    /// Blocks of 32 per row.
    pub(crate) blocks: usize,
    pub(crate) x: &'a QuantizedRows,
    pub(crate) row0: usize,
}

impl Tile<'_> {
    /// `rows` rows against the group's sixteen features into `out[..rows]`.
    ///
    /// # Safety
    /// The CPU has AVX2/FMA/F16C, and AVX-512 F/BW/VNNI when `wide`; `rows` is at most
    /// that path's tile; the records and rows exist.
    #[cfg(target_arch = "x86_64")]
    unsafe fn run<B: QuantBlock>(
        &self,
        rows: usize,
        wide: bool,
        out: &mut [[f32; LANES]; TILE_ROWS_VNNI],
    ) {
        macro_rules! dispatch {
            ($f:ident, $($r:literal)+) => {
                match rows {
                    $($r => self.$f::<B, $r>(out),)+
                    _ => unreachable!("tile of {rows} rows"),
                }
            };
        }
        if wide {
            dispatch!(vnni_tile, 1 2 3 4 5 6)
        } else {
            dispatch!(avx2_tile, 1 2)
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn run<B: QuantBlock>(&self, _: usize, _: bool, _: &mut [[f32; LANES]; TILE_ROWS_VNNI]) {
        unreachable!("packing needs AVX2")
    }

    /// Row `i`'s four values `4j..4j+4` of block `b`, as one 32-bit integer.
    #[inline(always)]
    pub(crate) unsafe fn x_quad(&self, i: usize, b: usize, j: usize) -> i32 {
        let k = self.blocks * BLOCK;
        std::ptr::read_unaligned(
            self.x
                .q
                .as_ptr()
                .add((self.row0 + i) * k + b * BLOCK + 4 * j) as *const i32,
        )
    }

    /// On the tile's first pass over its records (later row tiles find them in cache),
    /// asks for every line of the record [`PREFETCH_BYTES`] ahead of `rec`: one line per
    /// record, or a short distance, leaves a single-row decode waiting on DRAM.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) unsafe fn prefetch(&self, rec: *const u8, record: usize) {
        if self.row0 == 0 {
            let ahead = PREFETCH_BYTES.div_ceil(record) * record;
            for line in 0..record.div_ceil(64) {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    rec.wrapping_add(ahead + 64 * line) as *const i8,
                );
            }
        }
    }

    #[inline(always)]
    pub(crate) fn x_block(&self, i: usize, b: usize) -> usize {
        (self.row0 + i) * self.blocks + b
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
    unsafe fn vnni_tile<B: QuantBlock, const R: usize>(
        &self,
        out: &mut [[f32; LANES]; TILE_ROWS_VNNI],
    ) {
        use std::arch::x86_64::*;
        let record = PackedQuant::<B>::RECORD;
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..self.blocks {
            let rec = self.records.add(b * record);
            self.prefetch(rec, record);
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(rec as *const __m256i));
            let values = rec.add(LANES * 2);
            // Two independent chains (even and odd quads) so one row does not wait on
            // the multiply's latency; their sum is the same integer.
            let mut even: [__m512i; R] = std::array::from_fn(|i| {
                _mm512_set1_epi32(-B::OFFSET * self.x.sum[self.x_block(i, b)])
            });
            let mut odd = [_mm512_setzero_si512(); R];
            for j in (0..8).step_by(2) {
                let w0 = B::quad_512(values, j);
                let w1 = B::quad_512(values, j + 1);
                for i in 0..R {
                    even[i] =
                        _mm512_dpbusd_epi32(even[i], w0, _mm512_set1_epi32(self.x_quad(i, b, j)));
                    odd[i] = _mm512_dpbusd_epi32(
                        odd[i],
                        w1,
                        _mm512_set1_epi32(self.x_quad(i, b, j + 1)),
                    );
                }
            }
            for i in 0..R {
                let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(even[i], odd[i]));
                let scale = _mm512_mul_ps(dw, _mm512_set1_ps(self.x.d[self.x_block(i, b)]));
                acc[i] = _mm512_fmadd_ps(dot, scale, acc[i]);
            }
        }
        for i in 0..R {
            _mm512_storeu_ps(out[i].as_mut_ptr(), acc[i]);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn avx2_tile<B: QuantBlock, const R: usize>(
        &self,
        out: &mut [[f32; LANES]; TILE_ROWS_VNNI],
    ) {
        use std::arch::x86_64::*;
        let record = PackedQuant::<B>::RECORD;
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for b in 0..self.blocks {
            let rec = self.records.add(b * record);
            self.prefetch(rec, record);
            let dw = [
                _mm256_cvtph_ps(_mm_loadu_si128(rec as *const __m128i)),
                _mm256_cvtph_ps(_mm_loadu_si128(rec.add(16) as *const __m128i)),
            ];
            let values = rec.add(LANES * 2);
            for (i, acc) in acc.iter_mut().enumerate() {
                let offset = _mm256_set1_epi32(-B::AVX2_OFFSET * self.x.sum[self.x_block(i, b)]);
                let mut dot = [offset; 2];
                for j in 0..8 {
                    let xb = _mm256_set1_epi32(self.x_quad(i, b, j));
                    for (h, d) in dot.iter_mut().enumerate() {
                        *d = _mm256_add_epi32(*d, B::quad_dot_avx2(values, j, h, xb));
                    }
                }
                let dx = _mm256_set1_ps(self.x.d[self.x_block(i, b)]);
                for ((acc, dw), dot) in acc.iter_mut().zip(dw).zip(dot) {
                    let scale = _mm256_mul_ps(dw, dx);
                    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, *acc);
                }
            }
        }
        for i in 0..R {
            _mm256_storeu_ps(out[i].as_mut_ptr(), acc[i][0]);
            _mm256_storeu_ps(out[i].as_mut_ptr().add(8), acc[i][1]);
        }
    }
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
            out.extend((0..B::GGML_BYTES - 2).map(|_| rng.random::<u8>()));
        }
        out
    }

    /// Exact reference: each block's integer dot product, scaled by `d_w * d_x`, summed
    /// in f64.
    fn check<B: QuantBlock>(n: usize, k: usize, m: usize) {
        let ggml = random_ggml::<B>(n, k, 7);
        let packed = PackedQuant::<B>::pack(&ggml, n, k).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let y = packed.matmul(&x, m);
        let xq = quantize_rows(&x, m, k);
        let blocks = k / BLOCK;
        for r in 0..m {
            for j in 0..n {
                let mut want = 0f64;
                for b in 0..blocks {
                    let src = &ggml[(j * blocks + b) * B::GGML_BYTES..][..B::GGML_BYTES];
                    let dw = f16::from_le_bytes([src[0], src[1]]).to_f32();
                    let w = B::values(&src[2..]);
                    let dot: i32 = (0..BLOCK)
                        .map(|i| i32::from(w[i]) * i32::from(xq.q[r * k + b * BLOCK + i]))
                        .sum();
                    want += f64::from(dw * xq.d[r * blocks + b]) * f64::from(dot);
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
        // 37 features: two full groups and a padded one; 13 rows: tiles of 6, 6 and 1
        // (AVX-512) or 2 ... 1 (AVX2).
        check::<Q4_0>(37, 96, 13);
        check::<Q8_0>(37, 96, 13);
        check::<Q8_0>(5, 64, 2);
    }

    /// Both instruction sets give the same bits for every tile height.
    #[test]
    fn vnni_gives_the_avx2_bits() {
        if !vnni() {
            eprintln!("no AVX-512 VNNI here: only the AVX2 path runs");
            return;
        }
        fn compare<B: QuantBlock>() {
            let (n, k, m) = (32, 256, 6);
            let packed = PackedQuant::<B>::pack(&random_ggml::<B>(n, k, 3), n, k).unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(4);
            let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-3.0f32..3.0)).collect();
            let xq = quantize_rows(&x, m, k);
            let blocks = k / BLOCK;
            let record = PackedQuant::<B>::RECORD;
            for g in 0..n / LANES {
                let records = packed.data[g * blocks * record..].as_ptr();
                let mut wide = [[0f32; LANES]; TILE_ROWS_VNNI];
                let tile = |row0| Tile {
                    records,
                    blocks,
                    x: &xq,
                    row0,
                };
                unsafe { tile(0).run::<B>(6, true, &mut wide) };
                for row0 in (0..m).step_by(2) {
                    let mut narrow = [[0f32; LANES]; TILE_ROWS_VNNI];
                    unsafe { tile(row0).run::<B>(2, false, &mut narrow) };
                    assert_eq!(wide[row0..row0 + 2], narrow[..2], "group {g} rows {row0}..");
                }
                for rows in 1..=TILE_ROWS_VNNI {
                    let mut part = [[0f32; LANES]; TILE_ROWS_VNNI];
                    unsafe { tile(0).run::<B>(rows, true, &mut part) };
                    assert_eq!(wide[..rows], part[..rows], "group {g}, {rows} rows");
                }
            }
        }
        compare::<Q4_0>();
        compare::<Q8_0>();
    }

    #[test]
    fn packing_refuses_shapes_it_cannot_hold() {
        assert!(PackedQuant::<Q4_0>::pack(&[0; 18], 1, 40).is_none());
        assert!(PackedQuant::<Q8_0>::pack(&[0; 33], 1, 32).is_none());
        assert!(PackedQuant::<Q8_0>::pack(&[0; 34], 1, 32).is_some());
    }
}
