//! Rotary position embeddings: the tables for 1-D positions (Llama, Qwen2) and for
//! Qwen2-VL's multimodal (3-D) positions, which prompts carry as [`MropePositions`].

use candle_core::{DType, Device, Result, Tensor};

/// Rotary position embedding tables for the "rotate half" layout Llama and Qwen2 use.
/// Computed in f32 the way transformers does (f32 inverse frequencies times f32 positions),
/// so long prompts rotate by the same angles.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    inv_freq: Vec<f32>,
}

impl RotaryEmbedding {
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let inv_freq = (0..head_dim / 2)
            .map(|i| {
                let exponent = (2 * i) as f32 / head_dim as f32;
                (1.0 / theta.powf(f64::from(exponent))) as f32
            })
            .collect();
        Self { inv_freq }
    }

    /// Qwen2-VL's vision rotary: the first half of the frequencies rotate by the patch row,
    /// the second half by its column, each half the frequencies of a `head_dim / 2` rope.
    pub fn axial(head_dim: usize, theta: f64) -> Self {
        let half = Self::new(head_dim / 2, theta).inv_freq;
        Self {
            inv_freq: [half.clone(), half].concat(),
        }
    }

    /// Number of frequencies (half the head dimension).
    pub fn half_dim(&self) -> usize {
        self.inv_freq.len()
    }

    /// `cos` and `sin`, each `[positions.len(), head_dim / 2]`, for 1-D positions.
    pub fn cos_sin(
        &self,
        positions: &[u32],
        dtype: DType,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        self.cos_sin_sections(&[positions], &[self.half_dim()], dtype, device)
    }

    /// Multimodal rotary tables (Qwen2-VL's M-RoPE): frequency band `j` of section `s` is
    /// rotated by `positions[s]`. With one section this is the ordinary rotary embedding.
    pub fn cos_sin_sections(
        &self,
        positions: &[&[u32]],
        sections: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let tokens = positions.first().map_or(0, |p| p.len());
        let half = self.half_dim();
        let mut cos = Vec::with_capacity(tokens * half);
        let mut sin = Vec::with_capacity(tokens * half);
        let band_of: Vec<usize> = sections
            .iter()
            .enumerate()
            .flat_map(|(s, &n)| std::iter::repeat_n(s, n))
            .collect();
        if band_of.len() != half || positions.iter().any(|p| p.len() != tokens) {
            candle_core::bail!("rotary sections {sections:?} do not cover {half} frequencies");
        }
        // `t` indexes the same token in every section's position list.
        #[allow(clippy::needless_range_loop)]
        for t in 0..tokens {
            for (&band, f) in band_of.iter().zip(&self.inv_freq) {
                let angle = positions[band][t] as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let cos = Tensor::from_vec(cos, (tokens, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (tokens, half), device)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }
}

/// Positions of every prompt token, and what to add to a later token's index to get its
/// (shared) position: `max position + 1 - prompt length`, which can be negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MropePositions {
    pub positions: Vec<[u32; 3]>,
    pub offset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_identity_and_frequencies_decay() {
        let rope = RotaryEmbedding::new(8, 10000.0);
        assert_eq!(rope.inv_freq[0], 1.0);
        assert!(rope.inv_freq.windows(2).all(|w| w[1] < w[0]));
        let (cos, sin) = rope.cos_sin(&[0, 3], DType::F32, &Device::Cpu).unwrap();
        let cos = cos.to_vec2::<f32>().unwrap();
        let sin = sin.to_vec2::<f32>().unwrap();
        assert!(cos[0].iter().all(|&c| c == 1.0) && sin[0].iter().all(|&s| s == 0.0));
        assert_eq!(cos[1][0], 3f32.cos());
    }
}
