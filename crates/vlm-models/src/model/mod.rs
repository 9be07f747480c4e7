//! A loaded vision-language model: its prompt processing (template, tokenizer, images) and
//! its network, behind one API the engine and `vlm-run` use for every family.

use candle_core::Tensor;
use vlm_core::{ChatMessage, ContentPart, ImageData};

use crate::decoder::{DecoderConfig, KvCache, LogitRows, SeqStep};
use crate::error::{ModelError, Result};
use crate::family::{FamilySource, LoadedFamily, PreparedImage, PreparedPrompt};
use crate::llava::LlavaModel;
use crate::loader::{LoadOptions, Snapshot};
use crate::preprocess::{decode_rgb, rgb_from_pixels, PixelBudget, DEFAULT_MAX_PIXELS};
use crate::qwen2_vl::Qwen2VlModel;
use crate::text::{ChatTemplate, TemplateMessage, TemplatePart, TextTokenizer};

mod log_probs;
pub use log_probs::distribution_distance;

const SUPPORTED: &str = "LlavaForConditionalGeneration, Qwen2VLForConditionalGeneration";

fn architecture(snapshot: &Snapshot) -> String {
    let c = snapshot.config();
    if let Some(arch) = c
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
    {
        return arch.to_string();
    }
    match c.get("model_type").and_then(|m| m.as_str()) {
        Some("llava") => "LlavaForConditionalGeneration".into(),
        Some("qwen2_vl") => "Qwen2VLForConditionalGeneration".into(),
        Some(other) => other.into(),
        None => String::new(),
    }
}

pub struct VlmModel {
    snapshot: Snapshot,
    architecture: String,
    tokenizer: TextTokenizer,
    template: ChatTemplate,
    eos_token_ids: Vec<u32>,
    family: Box<dyn LoadedFamily>,
    options: LoadOptions,
}

impl VlmModel {
    pub fn load(snapshot: Snapshot, options: &LoadOptions) -> Result<Self> {
        let config_path = snapshot.path("config.json");
        let arch = architecture(&snapshot);
        let tokenizer = TextTokenizer::from_file(&snapshot.tokenizer_path()?)?;
        let source = FamilySource::new(&snapshot, options);
        let family: Box<dyn LoadedFamily> = match arch.as_str() {
            "LlavaForConditionalGeneration" => Box::new(LlavaModel::load(&source)?),
            "Qwen2VLForConditionalGeneration" => Box::new(Qwen2VlModel::load(&source)?),
            _ => {
                return Err(ModelError::UnknownArchitecture {
                    path: config_path,
                    found: arch,
                    supported: SUPPORTED,
                })
            }
        };
        let unsupported = |message: String| ModelError::Unsupported {
            path: config_path.clone(),
            message,
        };
        let vocab = family.text_config().vocab_size;
        if tokenizer.vocab_size() > vocab {
            return Err(unsupported(format!(
                "the tokenizer has {} tokens but the model embeds only {vocab} (vocab_size); tokenizer.json does not belong to these weights",
                tokenizer.vocab_size()
            )));
        }
        let image_token_id = family.image_token_id();
        if tokenizer.id_to_token(image_token_id).is_none() {
            return Err(unsupported(format!(
                "image token id {image_token_id} is not in the tokenizer's vocabulary"
            )));
        }
        let template_source = match &options.chat_template {
            Some(source) => source.clone(),
            None => snapshot.chat_template()?.map(|(t, _)| t).ok_or_else(|| ModelError::MissingFile {
                dir: snapshot.dir().to_path_buf(),
                file: "chat_template.jinja".into(),
                hint: "or chat_template.json, or a chat_template in tokenizer_config.json; pass --chat-template FILE to supply one",
            })?,
        };
        let template = ChatTemplate::new(&template_source, snapshot.tokenizer_config()?.as_ref())?;
        // Fail at start-up, not on every request, when the template cannot render even one
        // user turn with an image (a configuration error, not a client's).
        let probe = TemplateMessage {
            role: "user".into(),
            content: vec![
                TemplatePart::Image,
                TemplatePart::Text { text: "hi".into() },
            ],
        };
        template.render(&[probe], true).map_err(|e| {
            ModelError::ChatTemplate(format!(
                "cannot render a single user turn, so it would fail every request ({e}); fix it or pass --chat-template FILE"
            ))
        })?;
        let eos_token_ids = snapshot.eos_token_ids()?;
        Ok(Self {
            snapshot,
            architecture: arch,
            tokenizer,
            template,
            eos_token_ids,
            family,
            options: options.clone(),
        })
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos_token_ids
    }

    pub fn image_token_id(&self) -> u32 {
        self.family.image_token_id()
    }

    /// Bytes of the weights one decode step reads: the decoder's linear layers and its
    /// head, as held (packed, half precision or quantized).
    pub fn decode_weight_bytes(&self) -> usize {
        self.family.decode_weight_bytes()
    }

    /// The text decoder's shape (layers, heads, ...), e.g. to size a KV cache.
    pub fn text_config(&self) -> &DecoderConfig {
        self.family.text_config()
    }

    /// The dtype and device the weights were loaded with.
    pub fn load_options(&self) -> &LoadOptions {
        &self.options
    }

    pub fn max_position_embeddings(&self) -> usize {
        self.family.text_config().max_position_embeddings
    }

    /// Decodes (when encoded) and preprocesses one image.
    pub fn prepare_image(
        &self,
        image: &ImageData,
        index: usize,
        budget: PixelBudget,
    ) -> Result<PreparedImage> {
        let rgb = match image {
            ImageData::Encoded(bytes) => decode_rgb(bytes, DEFAULT_MAX_PIXELS),
            ImageData::Rgb(pixels) => rgb_from_pixels(pixels, DEFAULT_MAX_PIXELS),
        }
        .map_err(|source| ModelError::Image { index, source })?;
        let (pixels, num_tokens) = self
            .family
            .prepare_image(&rgb, budget)
            .map_err(|error| ModelError::ImageProcessing { index, error })?;
        // Equal keys, equal features: the key covers what the pixels came from and the
        // budget they were resized under.
        let mut hasher = blake3::Hasher::new();
        match image {
            ImageData::Encoded(bytes) => {
                hasher.update(bytes);
            }
            ImageData::Rgb(pixels) => {
                hasher.update(b"rgb");
                hasher.update(&(pixels.width() as u64).to_le_bytes());
                hasher.update(&(pixels.height() as u64).to_le_bytes());
                hasher.update(pixels.data());
            }
        }
        for limit in [budget.min_pixels, budget.max_pixels] {
            hasher.update(&limit.unwrap_or(u64::MAX).to_le_bytes());
        }
        Ok(PreparedImage {
            pixels,
            num_tokens,
            key: *hasher.finalize().as_bytes(),
        })
    }

    /// Templates the conversation (with the generation prompt), tokenizes it, preprocesses
    /// its images and expands each image placeholder, as the model's HF processor does.
    pub fn prepare(&self, messages: &[ChatMessage]) -> Result<PreparedPrompt> {
        self.prepare_with(messages, PixelBudget::default())
    }

    /// [`prepare`](Self::prepare) with a per-request pixel budget (Qwen2-VL's
    /// `min_pixels` / `max_pixels`).
    pub fn prepare_with(
        &self,
        messages: &[ChatMessage],
        budget: PixelBudget,
    ) -> Result<PreparedPrompt> {
        if budget != PixelBudget::default() && !self.family.takes_pixel_budget() {
            return Err(ModelError::InvalidRequest(format!(
                "min_pixels / max_pixels do not apply to {} (its images have a fixed size)",
                self.architecture
            )));
        }
        let mut images = Vec::new();
        let template_messages: Vec<TemplateMessage> = messages
            .iter()
            .map(|m| {
                let content = m
                    .content
                    .iter()
                    .map(|part| match part {
                        ContentPart::Text(text) => Ok(TemplatePart::Text { text: text.clone() }),
                        ContentPart::Image(data) => {
                            images.push(self.prepare_image(data, images.len(), budget)?);
                            Ok(TemplatePart::Image)
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(TemplateMessage {
                    role: m.role.as_str().to_string(),
                    content,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let text = self.template.render(&template_messages, true)?;
        let ids = self.tokenizer.encode(&text, true)?;
        let image_token = self.family.image_token_id();
        let placeholders = ids.iter().filter(|&&t| t == image_token).count();
        if placeholders != images.len() {
            return Err(ModelError::ImageCountMismatch {
                placeholders,
                images: images.len(),
            });
        }
        let mut token_ids =
            Vec::with_capacity(ids.len() + images.iter().map(|i| i.num_tokens).sum::<usize>());
        let mut next_image = images.iter();
        for id in ids {
            if id == image_token {
                let n = next_image.next().map_or(1, |img| img.num_tokens);
                token_ids.extend(std::iter::repeat_n(id, n));
            } else {
                token_ids.push(id);
            }
        }
        let mrope = self.family.positions(&token_ids, &images)?;
        Ok(PreparedPrompt {
            text,
            token_ids,
            images,
            mrope,
        })
    }

    /// Vision features for each image, `[num_tokens, hidden]` each.
    pub fn encode_images(&self, images: &[&PreparedImage]) -> Result<Vec<Tensor>> {
        self.family.encode_images(images)
    }

    /// All of a prompt's image features stacked in prompt order (`[image tokens, hidden]`),
    /// ready to be a prefill step's `image_features`; `None` for a text-only prompt.
    pub fn encode_prompt_images(&self, prompt: &PreparedPrompt) -> Result<Option<Tensor>> {
        if prompt.images.is_empty() {
            return Ok(None);
        }
        let images: Vec<&PreparedImage> = prompt.images.iter().collect();
        Ok(Some(Tensor::cat(&self.encode_images(&images)?, 0)?))
    }

    /// One batched step over several sequences; logits (`[rows, vocab]`, f32) for the rows asked for.
    pub fn forward(
        &self,
        steps: &[SeqStep<'_>],
        kv: &mut dyn KvCache,
        rows: LogitRows,
    ) -> Result<Tensor> {
        if steps.is_empty() || steps.iter().any(|s| s.tokens.is_empty()) {
            return Err(ModelError::InvalidStep(
                "every sequence in a step needs at least one token".into(),
            ));
        }
        self.family.forward(steps, kv, rows)
    }
}
