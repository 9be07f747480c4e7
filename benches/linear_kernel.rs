//! The decoder's linear kernels in every weight format against candle's on the shapes of
//! the bench model (hidden 768, MLP 2048, vocab 32000) at decode (1 and 16 rows) and
//! prefill (512 and 2048 rows). Prints GFLOP/s (2·m·n·k per product), measured back to
//! back: `cargo bench --bench linear_kernel [-- FORMAT...]`, formats among f32, bf16, f16,
//! q8_0, q4_0, q4_k (default all); `SHAPES=MxNxK,...` for other shapes. Run again with `VLM_NO_AVX512=1` for the AVX2 paths.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::time::Instant;
use vlm_models::layers::{Linear, Quantization, WeightFormat};

fn gflops(m: usize, n: usize, k: usize, iters: usize, f: impl Fn()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    (2 * m * n * k * iters) as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let formats = [
        ("f32", WeightFormat::Native, None),
        ("bf16", WeightFormat::Bf16, None),
        ("f16", WeightFormat::F16, None),
        (
            "q8_0",
            WeightFormat::Quantized(Quantization::Q8_0),
            Some(GgmlDType::Q8_0),
        ),
        (
            "q4_0",
            WeightFormat::Quantized(Quantization::Q4_0),
            Some(GgmlDType::Q4_0),
        ),
        (
            "q4_k",
            WeightFormat::Quantized(Quantization::Q4K),
            Some(GgmlDType::Q4K),
        ),
    ];
    // `SHAPES=MxNxK,...` replaces the default shapes.
    let custom: Option<Vec<(usize, usize, usize)>> = std::env::var("SHAPES").ok().map(|v| {
        v.split(',')
            .map(|s| {
                let d: Vec<usize> = s
                    .split('x')
                    .map(|d| d.parse().expect("SHAPES=MxNxK,..."))
                    .collect();
                (d[0], d[1], d[2])
            })
            .collect()
    });
    let default_shapes = [
        (1, 2048, 768),
        (16, 2048, 768),
        (1, 32000, 768),
        (512, 2048, 768),
        (2048, 2048, 768),
        (2048, 768, 2048),
    ];
    let shapes = custom.unwrap_or_else(|| default_shapes.to_vec());
    println!("format rows  out    in     ours GFLOP/s  candle GFLOP/s  ratio");
    for (name, format, ggml) in formats {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        for &(m, n, k) in &shapes {
            let w = Tensor::randn(0f32, 0.05, (n, k), &dev)?;
            let lin = Linear::with_format(w.clone(), None, format)?;
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
            let iters = (4_000_000_000 / (2 * m * n * k)).max(5);
            let ours = gflops(m, n, k, iters, || {
                lin.forward(&x).unwrap();
            });
            // candle: its matmul on the weight in that dtype (f32 activations cast), or its
            // quantized matmul.
            let candle = match (ggml, format.dtype()) {
                (Some(q), _) => {
                    let qm = QMatMul::from_qtensor(QTensor::quantize(&w, q)?)?;
                    gflops(m, n, k, iters, || {
                        qm.forward(&x).unwrap();
                    })
                }
                (None, Some(dtype)) => {
                    let (wt, xh) = (w.to_dtype(dtype)?.t()?, x.to_dtype(dtype)?);
                    gflops(m, n, k, iters, || {
                        xh.matmul(&wt).unwrap();
                    })
                }
                (None, None) => {
                    let wt = w.t()?;
                    gflops(m, n, k, iters, || {
                        x.matmul(&wt).unwrap();
                    })
                }
            };
            println!(
                "{name:<6} {m:<5} {n:<6} {k:<6} {ours:<13.1} {candle:<15.1} {:.2}x",
                ours / candle
            );
        }
    }
    Ok(())
}
