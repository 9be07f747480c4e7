//! Qwen2-VL's multimodal rotary positions (M-RoPE): each prompt token gets a (temporal,
//! height, width) position. Text advances all three together; an image's tokens take
//! their merged-grid row and column offset from where the image starts, and the text after
//! it resumes past the image's larger side. As transformers' `get_rope_index` computes them.

use crate::decoder::MropePositions;
use crate::error::{ModelError, Result};

/// `grids` are the images' `(t, h, w)` patch grids in prompt order; each image occupies
/// `t * h * w / merge^2` consecutive `image_token`s.
pub fn mrope_positions(
    tokens: &[u32],
    image_token: u32,
    grids: &[[usize; 3]],
    merge: usize,
) -> Result<MropePositions> {
    let mut positions = Vec::with_capacity(tokens.len());
    let mut next_grid = grids.iter();
    let mut current = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] != image_token {
            positions.push([current as u32; 3]);
            current += 1;
            i += 1;
            continue;
        }
        let &[t, h, w] = next_grid.next().ok_or_else(|| {
            ModelError::InvalidRequest("more image placeholders than images in the prompt".into())
        })?;
        let (gh, gw) = (h / merge, w / merge);
        let count = t * gh * gw;
        if i + count > tokens.len() || tokens[i..i + count].iter().any(|&tok| tok != image_token) {
            return Err(ModelError::InvalidRequest(format!(
                "image at token {i} should span {count} image tokens"
            )));
        }
        for tt in 0..t {
            for hh in 0..gh {
                for ww in 0..gw {
                    positions.push([
                        (current + tt) as u32,
                        (current + hh) as u32,
                        (current + ww) as u32,
                    ]);
                }
            }
        }
        current += gh.max(gw);
        i += count;
    }
    if next_grid.next().is_some() {
        return Err(ModelError::InvalidRequest(
            "more images than image placeholders in the prompt".into(),
        ));
    }
    let max = positions
        .iter()
        .flatten()
        .copied()
        .max()
        .map_or(-1, i64::from);
    Ok(MropePositions {
        offset: max + 1 - tokens.len() as i64,
        positions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_image_text() {
        // 2 text tokens, a 4x6-patch image (2x3 merged = 6 tokens), 2 text tokens.
        let tokens = [1, 2, 9, 9, 9, 9, 9, 9, 3, 4];
        let m = mrope_positions(&tokens, 9, &[[1, 4, 6]], 2).unwrap();
        assert_eq!(&m.positions[..2], &[[0, 0, 0], [1, 1, 1]]);
        assert_eq!(m.positions[2], [2, 2, 2]);
        assert_eq!(m.positions[4], [2, 2, 4]);
        assert_eq!(m.positions[5], [2, 3, 2]);
        assert_eq!(m.positions[7], [2, 3, 4]);
        // Text resumes at 2 + max(2, 3) = 5.
        assert_eq!(&m.positions[8..], &[[5, 5, 5], [6, 6, 6]]);
        assert_eq!(m.offset, 7 - 10);
    }

    #[test]
    fn text_only_is_sequential_and_counts_must_agree() {
        let m = mrope_positions(&[5, 6, 7], 9, &[], 2).unwrap();
        assert_eq!(m.positions, vec![[0; 3], [1; 3], [2; 3]]);
        assert_eq!(m.offset, 0);
        assert!(mrope_positions(&[9, 9], 9, &[[1, 4, 4]], 2).is_err());
        assert!(mrope_positions(&[1], 9, &[[1, 2, 2]], 2).is_err());
    }
}
