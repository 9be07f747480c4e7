//! GEMM against llama.cpp's q4_K blocks, on the quantized GEMM's driver and integer dot
//! products: a value is `d * sc_j * q - dmin * m_j` (q in 0..15, six-bit `sc_j` and `m_j`
//! per 32 values, f16 `d` and `dmin` per 256), so each 32 values of a row of `x` (q8_0,
//! per 32) contribute `d_x * (d*sc_j * dot(q, x_q) - dmin*m_j * sum(x_q))`.
//!
//! Re-laid out once, sixteen features together per 256 values: their `d`s and `dmin`s
//! (f16), their `sc_j` and `m_j` (bytes), then per 32 values their nibbles as q4_0's
//! packed layout holds them. `d * sc_j` and `dmin * m_j` are formed in f32, exactly.
//! Every output element is, per 32 values in order, `acc = fma(float(dot), d*sc_j * d_x,
//! acc)` then `acc -= dmin*m_j * d_x * float(sum)` (one rounding), in its own lane, on
//! either instruction set and for any batch.

use std::sync::Arc;

use half::f16;

use super::features::avx2_fma;
use super::gemm_quant::{for_each_tile, QuantBlock, Tile, BLOCK, LANES, Q4_0, TILE_ROWS_VNNI};
use super::quantize_q8::quantize_rows;

/// Values per q4_K superblock.
pub const SUPER: usize = 256;
const SUBS: usize = SUPER / BLOCK;
/// Bytes of one ggml q4_K block: `d`, `dmin`, 12 bytes of packed scales, 128 of nibbles.
const GGML_BYTES: usize = 144;
/// Bytes of sixteen features' nibbles for 32 values (q4_0's packed layout).
const NIBBLES: usize = <Q4_0 as QuantBlock>::PACKED;
/// Offsets inside one (group, superblock) record.
const D: usize = 0;
const DMIN: usize = LANES * 2;
const SC: usize = LANES * 4;
const MIN: usize = SC + SUBS * LANES;
const VALUES: usize = MIN + SUBS * LANES;
const RECORD: usize = VALUES + SUBS * NIBBLES;

/// A `[out_features, in_features]` q4_K weight re-laid out for [`matmul`](Self::matmul).
pub struct PackedQ4K {
    data: Arc<Vec<u8>>,
    out_features: usize,
    in_features: usize,
}

impl std::fmt::Debug for PackedQ4K {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PackedQ4K[{}x{}, {} bytes]",
            self.out_features,
            self.in_features,
            self.data.len()
        )
    }
}

/// Sub-block `j`'s six-bit scale and min from a block's twelve scale bytes (ggml's
/// `get_scale_min_k4`).
fn scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Sub-block `j`'s 32 nibbles from a block's 128 value bytes, as q4_0 stores a block
/// (value `i < 16` in byte `i`'s low nibble, `16 + i` in its high one).
fn sub_nibbles(j: usize, qs: &[u8]) -> [u8; 16] {
    let (chunk, shift) = (&qs[32 * (j / 2)..][..32], 4 * (j % 2));
    std::array::from_fn(|i| ((chunk[i] >> shift) & 0x0f) | (((chunk[i + 16] >> shift) & 0x0f) << 4))
}

impl PackedQ4K {
    /// Re-lays out ggml q4_K blocks (each feature's `in / 256` blocks in order). `None`
    /// without AVX2/FMA, when `in_features` is not a multiple of 256, or `ggml` has another
    /// length.
    pub fn pack(ggml: &[u8], out_features: usize, in_features: usize) -> Option<Self> {
        let (n, k) = (out_features, in_features);
        if !avx2_fma() || k == 0 || !k.is_multiple_of(SUPER) {
            return None;
        }
        let supers = k / SUPER;
        if ggml.len() != n * supers * GGML_BYTES {
            return None;
        }
        let groups = n.div_ceil(LANES);
        // Padding features: zero scales, mins and values.
        let mut data = vec![0u8; groups * supers * RECORD];
        for j in 0..n {
            let (g, f) = (j / LANES, j % LANES);
            for s in 0..supers {
                let src = &ggml[(j * supers + s) * GGML_BYTES..][..GGML_BYTES];
                let rec = &mut data[(g * supers + s) * RECORD..][..RECORD];
                rec[D + 2 * f..][..2].copy_from_slice(&src[0..2]);
                rec[DMIN + 2 * f..][..2].copy_from_slice(&src[2..4]);
                for sub in 0..SUBS {
                    let (sc, m) = scale_min(sub, &src[4..16]);
                    rec[SC + sub * LANES + f] = sc;
                    rec[MIN + sub * LANES + f] = m;
                    Q4_0::pack_feature(
                        &sub_nibbles(sub, &src[16..]),
                        f,
                        &mut rec[VALUES + sub * NIBBLES..][..NIBBLES],
                    );
                }
            }
        }
        Some(Self {
            data: Arc::new(data),
            out_features: n,
            in_features: k,
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

    /// Row `index` dequantized as ggml does (`d*sc_j * q - dmin*m_j`); `None` past the last.
    pub fn row(&self, index: usize) -> Option<Vec<f32>> {
        if index >= self.out_features {
            return None;
        }
        let supers = self.in_features / SUPER;
        let (g, f) = (index / LANES, index % LANES);
        let mut row = Vec::with_capacity(self.in_features);
        for s in 0..supers {
            let rec = &self.data[(g * supers + s) * RECORD..][..RECORD];
            let half =
                |at: usize| f16::from_le_bytes([rec[at + 2 * f], rec[at + 2 * f + 1]]).to_f32();
            let (d, dmin) = (half(D), half(DMIN));
            for sub in 0..SUBS {
                let scale = d * f32::from(rec[SC + sub * LANES + f]);
                let min = dmin * f32::from(rec[MIN + sub * LANES + f]);
                let values = Q4_0::unpack_feature(&rec[VALUES + sub * NIBBLES..][..NIBBLES], f);
                row.extend(values.iter().map(|&v| scale * f32::from(v + 8) - min));
            }
        }
        Some(row)
    }

    /// `y[m][n] = sum_k x[m][k] * w[n][k]`, `x` quantized to q8_0 per row first.
    ///
    /// # Panics
    /// If `x` holds fewer than `m * in_features` values.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = (self.out_features, self.in_features);
        assert!(x.len() >= m * k, "gemm_q4k: x is shorter than {m} rows");
        let xq = quantize_rows(&x[..m * k], m, k);
        let record = k / SUPER * RECORD;
        for_each_tile(n, m, |g, row0, rows, wide, acc| {
            let at = Tile {
                records: self.data[g * record..][..record].as_ptr(),
                blocks: k / BLOCK,
                x: &xq,
                row0,
            };
            // SAFETY: AVX2/FMA were detected at packing (VNNI and AVX-512BW by the
            // driver); the records and rows exist.
            unsafe { at.run_q4k(rows, wide, acc) };
        })
    }
}

impl Tile<'_> {
    /// [`Tile::run`] for q4_K records.
    ///
    /// # Safety
    /// As [`Tile::run`].
    #[cfg(target_arch = "x86_64")]
    unsafe fn run_q4k(&self, rows: usize, wide: bool, out: &mut [[f32; LANES]; TILE_ROWS_VNNI]) {
        macro_rules! dispatch {
            ($f:ident, $($r:literal)+) => {
                match rows {
                    $($r => self.$f::<$r>(out),)+
                    _ => unreachable!("tile of {rows} rows"),
                }
            };
        }
        if wide {
            dispatch!(q4k_vnni, 1 2 3 4 5 6)
        } else {
            dispatch!(q4k_avx2, 1 2)
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn run_q4k(&self, _: usize, _: bool, _: &mut [[f32; LANES]; TILE_ROWS_VNNI]) {
        unreachable!("packing needs AVX2")
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
    unsafe fn q4k_vnni<const R: usize>(&self, out: &mut [[f32; LANES]; TILE_ROWS_VNNI]) {
        use std::arch::x86_64::*;
        let bytes16 = |p: *const u8| {
            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p as *const __m128i)))
        };
        let mut acc = [_mm512_setzero_ps(); R];
        for s in 0..self.blocks / SUBS {
            let rec = self.records.add(s * RECORD);
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(rec.add(D) as *const __m256i));
            let dmin = _mm512_cvtph_ps(_mm256_loadu_si256(rec.add(DMIN) as *const __m256i));
            self.prefetch(rec, RECORD);
            for sub in 0..SUBS {
                let b = s * SUBS + sub;
                let scale = _mm512_mul_ps(d, bytes16(rec.add(SC + sub * LANES)));
                let min = _mm512_mul_ps(dmin, bytes16(rec.add(MIN + sub * LANES)));
                let values = rec.add(VALUES + sub * NIBBLES);
                let mut even = [_mm512_setzero_si512(); R];
                let mut odd = [_mm512_setzero_si512(); R];
                for j in (0..8).step_by(2) {
                    let w0 = Q4_0::quad_512(values, j);
                    let w1 = Q4_0::quad_512(values, j + 1);
                    for i in 0..R {
                        even[i] = _mm512_dpbusd_epi32(
                            even[i],
                            w0,
                            _mm512_set1_epi32(self.x_quad(i, b, j)),
                        );
                        odd[i] = _mm512_dpbusd_epi32(
                            odd[i],
                            w1,
                            _mm512_set1_epi32(self.x_quad(i, b, j + 1)),
                        );
                    }
                }
                for i in 0..R {
                    let xb = self.x_block(i, b);
                    let dx = _mm512_set1_ps(self.x.d[xb]);
                    let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(even[i], odd[i]));
                    acc[i] = _mm512_fmadd_ps(dot, _mm512_mul_ps(scale, dx), acc[i]);
                    let sum = _mm512_set1_ps(self.x.sum[xb] as f32);
                    acc[i] = _mm512_fnmadd_ps(_mm512_mul_ps(min, dx), sum, acc[i]);
                }
            }
        }
        for i in 0..R {
            _mm512_storeu_ps(out[i].as_mut_ptr(), acc[i]);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4k_avx2<const R: usize>(&self, out: &mut [[f32; LANES]; TILE_ROWS_VNNI]) {
        use std::arch::x86_64::*;
        let bytes8 = |p: *const u8| {
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i)))
        };
        let halves = |p: *const u8| {
            [
                _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)),
                _mm256_cvtph_ps(_mm_loadu_si128(p.add(16) as *const __m128i)),
            ]
        };
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for s in 0..self.blocks / SUBS {
            let rec = self.records.add(s * RECORD);
            self.prefetch(rec, RECORD);
            let (d, dmin) = (halves(rec.add(D)), halves(rec.add(DMIN)));
            for sub in 0..SUBS {
                let b = s * SUBS + sub;
                let scale: [__m256; 2] = std::array::from_fn(|h| {
                    _mm256_mul_ps(d[h], bytes8(rec.add(SC + sub * LANES + 8 * h)))
                });
                let min: [__m256; 2] = std::array::from_fn(|h| {
                    _mm256_mul_ps(dmin[h], bytes8(rec.add(MIN + sub * LANES + 8 * h)))
                });
                let values = rec.add(VALUES + sub * NIBBLES);
                for (i, acc) in acc.iter_mut().enumerate() {
                    let mut dot = [_mm256_setzero_si256(); 2];
                    for j in 0..8 {
                        let xb = _mm256_set1_epi32(self.x_quad(i, b, j));
                        for (h, d) in dot.iter_mut().enumerate() {
                            *d = _mm256_add_epi32(*d, Q4_0::quad_dot_avx2(values, j, h, xb));
                        }
                    }
                    let xb = self.x_block(i, b);
                    let dx = _mm256_set1_ps(self.x.d[xb]);
                    let sum = _mm256_set1_ps(self.x.sum[xb] as f32);
                    for h in 0..2 {
                        acc[h] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(dot[h]),
                            _mm256_mul_ps(scale[h], dx),
                            acc[h],
                        );
                        acc[h] = _mm256_fnmadd_ps(_mm256_mul_ps(min[h], dx), sum, acc[h]);
                    }
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
    use crate::cpu::features::vnni;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};
    use rand::{Rng, SeedableRng};

    /// A weight quantized by candle's q4_K (ggml's), as bytes and as candle dequantizes it.
    fn weight(n: usize, k: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let w: Vec<f32> = (0..n * k)
            .map(|_| rng.random_range(-0.1f32..0.12))
            .collect();
        let w = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4K).unwrap();
        let deq = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        (q.data().unwrap().to_vec(), deq)
    }

    #[test]
    fn matches_the_integer_reference_reads_back_as_ggml_and_is_batch_invariant() {
        assert!(avx2_fma(), "the q4_K kernel is not exercised");
        let (n, k, m) = (37, 512, 13);
        let (ggml, deq) = weight(n, k, 1);
        let packed = PackedQ4K::pack(&ggml, n, k).unwrap();
        for j in [0, 5, 36] {
            assert_eq!(packed.row(j).unwrap(), deq[j * k..(j + 1) * k], "row {j}");
        }
        assert!(packed.row(n).is_none());
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let y = packed.matmul(&x, m);
        let xq = quantize_rows(&x, m, k);
        let blocks = k / BLOCK;
        for r in 0..m {
            for j in 0..n {
                let mut want = 0f64;
                for s in 0..k / SUPER {
                    let src = &ggml[(j * (k / SUPER) + s) * GGML_BYTES..][..GGML_BYTES];
                    let d = f64::from(f16::from_le_bytes([src[0], src[1]]).to_f32());
                    let dmin = f64::from(f16::from_le_bytes([src[2], src[3]]).to_f32());
                    for sub in 0..SUBS {
                        let (sc, mn) = scale_min(sub, &src[4..16]);
                        let q = Q4_0::values(&sub_nibbles(sub, &src[16..]));
                        let b = s * SUBS + sub;
                        let xs = &xq.q[r * k + b * BLOCK..][..BLOCK];
                        let dot: i32 = q
                            .iter()
                            .zip(xs)
                            .map(|(&q, &x)| (i32::from(q) + 8) * i32::from(x))
                            .sum();
                        let sum: i32 = xs.iter().map(|&x| i32::from(x)).sum();
                        let dx = f64::from(xq.d[r * blocks + b]);
                        want += dx
                            * (d * f64::from(sc) * f64::from(dot)
                                - dmin * f64::from(mn) * f64::from(sum));
                    }
                }
                let got = f64::from(y[r * n + j]);
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "({r}, {j}): {got} vs {want}"
                );
            }
            assert_eq!(
                packed.matmul(&x[r * k..(r + 1) * k], 1),
                y[r * n..(r + 1) * n],
                "row {r} alone"
            );
        }
        assert!(PackedQ4K::pack(&ggml, n, k - 256).is_none());
    }

    #[test]
    fn vnni_gives_the_avx2_bits() {
        if !vnni() {
            eprintln!("no AVX-512 VNNI here: only the AVX2 path runs");
            return;
        }
        let (n, k, m) = (32, 512, 6);
        let (ggml, _) = weight(n, k, 3);
        let packed = PackedQ4K::pack(&ggml, n, k).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-3.0f32..3.0)).collect();
        let xq = quantize_rows(&x, m, k);
        let record = k / SUPER * RECORD;
        for g in 0..n / LANES {
            let tile = |row0| Tile {
                records: packed.data[g * record..].as_ptr(),
                blocks: k / BLOCK,
                x: &xq,
                row0,
            };
            let mut wide = [[0f32; LANES]; TILE_ROWS_VNNI];
            unsafe { tile(0).run_q4k(6, true, &mut wide) };
            for row0 in (0..m).step_by(2) {
                let mut narrow = [[0f32; LANES]; TILE_ROWS_VNNI];
                unsafe { tile(row0).run_q4k(2, false, &mut narrow) };
                assert_eq!(wide[row0..row0 + 2], narrow[..2], "group {g} rows {row0}..");
            }
        }
    }
}
