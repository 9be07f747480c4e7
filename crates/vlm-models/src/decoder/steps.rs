//! Running model-level steps (tokens, image features, positions) through the decoder.

use candle_core::Tensor;

use super::{Decoder, DecoderInput, KvCache, SeqSlice};
use crate::error::{ModelError, Result};
use crate::model::{last_rows, LogitRows, SeqStep};

impl Decoder {
    /// Token embeddings of one step, with its image features written over the image tokens.
    /// Without features every token is embedded as text: generated tokens that happen to be
    /// the image token are just tokens, as in transformers.
    fn embed_step(&self, step: &SeqStep<'_>, image_token: u32) -> Result<Tensor> {
        let text = self.embed(step.tokens)?;
        let Some(features) = &step.image_features else {
            return Ok(text);
        };
        let n_image = step.tokens.iter().filter(|&&t| t == image_token).count();
        if n_image != features.dim(0)? {
            return Err(ModelError::InvalidStep(format!(
                "step has {n_image} image tokens but {} image feature rows",
                features.dim(0)?
            )));
        }
        let mut pieces = Vec::new();
        let (mut i, mut used) = (0, 0);
        while i < step.tokens.len() {
            let is_image = step.tokens[i] == image_token;
            let run = step.tokens[i..]
                .iter()
                .take_while(|&&t| (t == image_token) == is_image)
                .count();
            if is_image {
                pieces.push(features.narrow(0, used, run)?.to_dtype(text.dtype())?);
                used += run;
            } else {
                pieces.push(text.narrow(0, i, run)?);
            }
            i += run;
        }
        Ok(Tensor::cat(&pieces, 0)?)
    }

    /// One batched step: embeds every sequence's new tokens, runs the layers with the
    /// rotary tables `cos` / `sin` (one row per new token, in step order) and returns the
    /// logits of the rows asked for.
    pub(crate) fn run_steps(
        &self,
        steps: &[SeqStep<'_>],
        image_token: u32,
        (cos, sin): (Tensor, Tensor),
        kv: &mut dyn KvCache,
        rows: LogitRows,
    ) -> Result<Tensor> {
        let embeddings = steps
            .iter()
            .map(|s| self.embed_step(s, image_token))
            .collect::<Result<Vec<_>>>()?;
        let seqs: Vec<SeqSlice> = steps
            .iter()
            .map(|s| SeqSlice {
                seq: s.seq,
                past: s.past,
                len: s.tokens.len(),
            })
            .collect();
        let input = DecoderInput {
            embeddings: Tensor::cat(&embeddings, 0)?,
            cos,
            sin,
            seqs: &seqs,
        };
        let hidden = self.forward(&input, kv)?;
        let hidden = match rows {
            LogitRows::All => hidden,
            LogitRows::LastPerSeq => {
                let last = Tensor::new(last_rows(steps), hidden.device())?;
                hidden.index_select(&last, 0)?
            }
        };
        self.logits(&hidden)
    }
}
