//! Content hashes of a sequence's full KV blocks, for prefix caching: block `i`'s hash
//! covers block `i - 1`'s hash, its token ids, and for every image token the image's
//! content key and which of that image's tokens it is. Equal hashes mean equal keys and
//! values, since a token's keys and values (and Qwen2-VL's 3D positions) depend only on
//! the tokens and images before it.

use std::hash::{DefaultHasher, Hash, Hasher};

use vlm_models::PreparedImage;

/// A full block's content hash (two independent 64-bit SipHashes: a collision would reuse
/// another prompt's keys and values, so the odds are made negligible).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockHash(u128);

/// The hashes of one sequence's full blocks so far, extended as its tokens are known.
#[derive(Debug, Clone, Default)]
pub struct BlockHasher {
    hashes: Vec<BlockHash>,
    /// Image tokens of the prompt in the blocks hashed so far.
    image_tokens_seen: usize,
}

/// What a sequence's tokens are made of, as the hasher reads them.
pub struct SeqTokens<'a> {
    pub prompt: &'a [u32],
    pub output: &'a [u32],
    pub images: &'a [PreparedImage],
    pub image_token: u32,
}

impl SeqTokens<'_> {
    fn len(&self) -> usize {
        self.prompt.len() + self.output.len()
    }

    fn token(&self, position: usize) -> u32 {
        match self.prompt.get(position) {
            Some(&t) => t,
            None => self.output[position - self.prompt.len()],
        }
    }

    /// The image that the `rank`-th image token of the prompt belongs to, and which of its
    /// tokens it is.
    fn image_of(&self, rank: usize) -> Option<(&[u8; 32], usize)> {
        let mut start = 0;
        for image in self.images {
            if rank < start + image.num_tokens {
                return Some((&image.key, rank - start));
            }
            start += image.num_tokens;
        }
        None
    }
}

impl BlockHasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Hashes of the full blocks hashed so far.
    pub fn hashes(&self) -> &[BlockHash] {
        &self.hashes
    }

    /// Hashes every full block within the first `upto` tokens of `tokens` not hashed yet.
    pub fn extend(&mut self, tokens: &SeqTokens<'_>, block_size: usize, upto: usize) {
        let upto = upto.min(tokens.len());
        while (self.hashes.len() + 1) * block_size <= upto {
            let block = self.hashes.len();
            let mut lo = DefaultHasher::new();
            let mut hi = DefaultHasher::new();
            0xb10cu16.hash(&mut hi);
            if let Some(parent) = self.hashes.last() {
                parent.hash(&mut lo);
                parent.hash(&mut hi);
            }
            for position in block * block_size..(block + 1) * block_size {
                let token = tokens.token(position);
                token.hash(&mut lo);
                token.hash(&mut hi);
                if position < tokens.prompt.len() && token == tokens.image_token {
                    // An image token without an image cannot reach the model (refused at
                    // submit); hash it as such all the same.
                    let image = tokens.image_of(self.image_tokens_seen);
                    image.hash(&mut lo);
                    image.hash(&mut hi);
                    self.image_tokens_seen += 1;
                }
            }
            let hash = (u128::from(hi.finish()) << 64) | u128::from(lo.finish());
            self.hashes.push(BlockHash(hash));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vlm_models::preprocess::PixelValues;
    use vlm_models::ImagePixels;

    fn image(key: u8, num_tokens: usize) -> PreparedImage {
        PreparedImage {
            pixels: ImagePixels::Fixed(PixelValues {
                height: 1,
                width: 1,
                data: vec![0.0; 3],
            }),
            num_tokens,
            key: [key; 32],
        }
    }

    fn hashes(
        prompt: &[u32],
        output: &[u32],
        images: &[PreparedImage],
        upto: usize,
    ) -> Vec<BlockHash> {
        let mut h = BlockHasher::new();
        let tokens = SeqTokens {
            prompt,
            output,
            images,
            image_token: 9,
        };
        h.extend(&tokens, 2, upto);
        h.hashes().to_vec()
    }

    #[test]
    fn a_block_hash_covers_its_prefix_its_tokens_and_its_images() {
        let a = [image(1, 3)];
        let b = [image(2, 3)];
        let prompt = [1, 9, 9, 9, 5, 6];
        let base = hashes(&prompt, &[], &a, 6);
        assert_eq!(base.len(), 3);
        // Same tokens, another image: every block from the first image token on differs.
        let other = hashes(&prompt, &[], &b, 6);
        assert!(base.iter().zip(&other).all(|(x, y)| x != y));
        // Another first token: the later blocks differ through their parent.
        let changed = hashes(&[2, 9, 9, 9, 5, 6], &[], &a, 6);
        assert!(base.iter().zip(&changed).all(|(x, y)| x != y));
        // A shared prefix hashes alike; the block that differs and those after do not.
        let tail = hashes(&[1, 9, 9, 9, 5, 7], &[], &a, 6);
        assert_eq!(base[..2], tail[..2]);
        assert_ne!(base[2], tail[2]);
        // Output tokens count like prompt tokens; partial blocks are not hashed.
        let split = hashes(&prompt[..5], &[6, 8], &a, 7);
        assert_eq!(split, base);
        // Extending in steps gives the same hashes as at once.
        let mut h = BlockHasher::new();
        let tokens = SeqTokens {
            prompt: &prompt,
            output: &[],
            images: &a,
            image_token: 9,
        };
        h.extend(&tokens, 2, 3);
        h.extend(&tokens, 2, 6);
        assert_eq!(h.hashes(), base);
    }

    #[test]
    fn the_same_image_twice_hashes_by_position_within_it() {
        // Two images of two tokens each: tokens 1 and 2 belong to image 1, 3 and 4 to 2.
        let two = [image(1, 2), image(2, 2)];
        let swapped = [image(2, 2), image(1, 2)];
        let prompt = [9, 9, 9, 9];
        assert_ne!(
            hashes(&prompt, &[], &two, 4),
            hashes(&prompt, &[], &swapped, 4)
        );
    }
}
