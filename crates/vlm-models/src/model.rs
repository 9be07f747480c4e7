//! A loaded vision-language model: its prompt processing (template, tokenizer, images) and
//! its network, behind one API the engine and `vlm-run` use for every family.

use candle_core::{DType, Device, Tensor};
use vlm_core::{ChatMessage, ContentPart};

use crate::decoder::KvCache;
use crate::error::{ModelError, Result};
use crate::llava::{self, LlavaConfig, LlavaModel};
use crate::loader::{Snapshot, Weights};
use crate::preprocess::{decode_rgb, ClipImageProcessor, PixelValues, DEFAULT_MAX_PIXELS};
use crate::text::{ChatTemplate, TemplateMessage, TemplatePart, TextTokenizer};

/// One image of a prompt, preprocessed, with the number of prompt tokens it fills.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    pub pixels: PixelValues,
    pub num_tokens: usize,
}

/// A prompt ready for the network: token ids with every image placeholder already expanded
/// to as many image tokens as the image has features.
#[derive(Debug, Clone)]
pub struct PreparedPrompt {
    /// The templated prompt text (one placeholder per image).
    pub text: String,
    pub token_ids: Vec<u32>,
    pub images: Vec<PreparedImage>,
}

/// One sequence's share of a batched forward step.
pub struct SeqStep<'a> {
    /// The sequence's id in the KV cache.
    pub seq: usize,
    /// Tokens already in the KV cache for this sequence.
    pub past: usize,
    /// The new tokens.
    pub tokens: &'a [u32],
    /// Features for the image tokens among `tokens`, in order (`[n, hidden]`).
    pub image_features: Option<Tensor>,
}

/// Which rows of a step to compute logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitRows {
    /// The last new token of each sequence: what generation needs.
    LastPerSeq,
    /// Every new token (for scoring prompts and for tests).
    All,
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub dtype: DType,
    pub device: Device,
    /// A chat template to use instead of the checkpoint's (`--chat-template FILE`).
    pub chat_template: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            device: Device::Cpu,
            chat_template: None,
        }
    }
}

enum Network {
    Llava {
        processor: ClipImageProcessor,
        net: LlavaModel,
    },
}

pub struct VlmModel {
    snapshot: Snapshot,
    architecture: String,
    tokenizer: TextTokenizer,
    template: ChatTemplate,
    eos_token_ids: Vec<u32>,
    image_token_id: u32,
    network: Network,
}

const SUPPORTED: &str = "LlavaForConditionalGeneration";

fn architecture(snapshot: &Snapshot) -> String {
    let c = snapshot.config();
    c.get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .map(str::to_string)
        .or_else(|| {
            c.get("model_type").and_then(|m| m.as_str()).map(|m| {
                if m == "llava" {
                    SUPPORTED.to_string()
                } else {
                    m.to_string()
                }
            })
        })
        .unwrap_or_default()
}

impl VlmModel {
    pub fn load(snapshot: Snapshot, options: &LoadOptions) -> Result<Self> {
        let config_path = snapshot.path("config.json");
        let arch = architecture(&snapshot);
        if arch != SUPPORTED {
            return Err(ModelError::UnknownArchitecture {
                path: config_path,
                found: arch,
                supported: SUPPORTED,
            });
        }
        let unsupported = |message: String| ModelError::Unsupported {
            path: config_path.clone(),
            message,
        };
        let config: LlavaConfig = serde_json::from_value(snapshot.config().clone())
            .map_err(|e| ModelError::invalid(&config_path, e))?;
        config.validate().map_err(unsupported)?;
        let rope_theta = config.text_config.rope(10000.0).map_err(unsupported)?;

        let tokenizer = TextTokenizer::from_file(&snapshot.tokenizer_path()?)?;
        let template_source = match &options.chat_template {
            Some(source) => source.clone(),
            None => snapshot.chat_template()?.map(|(t, _)| t).ok_or_else(|| ModelError::MissingFile {
                dir: snapshot.dir().to_path_buf(),
                file: "chat_template.jinja".into(),
                hint: "or chat_template.json, or a chat_template in tokenizer_config.json; pass --chat-template FILE to supply one",
            })?,
        };
        let template = ChatTemplate::new(&template_source, snapshot.tokenizer_config()?.as_ref())?;
        let (ip_path, ip_config) = snapshot.image_processor_config()?;
        let processor = ClipImageProcessor::from_json(&ip_config)
            .map_err(|e| ModelError::invalid(ip_path, e))?;
        if tokenizer.vocab_size() > config.text_config.vocab_size {
            return Err(unsupported(format!(
                "the tokenizer has {} tokens but the model embeds only {} (vocab_size); tokenizer.json does not belong to these weights",
                tokenizer.vocab_size(),
                config.text_config.vocab_size
            )));
        }
        let image_token_id = config.image_token_id();
        if tokenizer.id_to_token(image_token_id).is_none() {
            return Err(unsupported(format!(
                "image token id {image_token_id} is not in the tokenizer's vocabulary"
            )));
        }
        let weights = Weights::open(
            &snapshot.weight_files()?,
            snapshot.dir().to_path_buf(),
            llava::KEY_LAYOUT,
            options.dtype,
            &options.device,
        )?;
        let net = LlavaModel::load(&weights, config, rope_theta)?;
        let eos_token_ids = snapshot.eos_token_ids()?;
        Ok(Self {
            snapshot,
            architecture: arch,
            tokenizer,
            template,
            eos_token_ids,
            image_token_id,
            network: Network::Llava { processor, net },
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
        self.image_token_id
    }

    pub fn max_position_embeddings(&self) -> usize {
        match &self.network {
            Network::Llava { net, .. } => net.config().text_config.max_position_embeddings,
        }
    }

    /// Decodes and preprocesses one encoded image.
    pub fn prepare_image(&self, bytes: &[u8], index: usize) -> Result<PreparedImage> {
        let rgb = decode_rgb(bytes, DEFAULT_MAX_PIXELS)
            .map_err(|source| ModelError::Image { index, source })?;
        match &self.network {
            Network::Llava { processor, net } => Ok(PreparedImage {
                pixels: processor.process(&rgb),
                num_tokens: net.config().tokens_per_image(),
            }),
        }
    }

    /// Templates the conversation (with the generation prompt), tokenizes it, preprocesses
    /// its images and expands each image placeholder, as the model's HF processor does.
    pub fn prepare(&self, messages: &[ChatMessage]) -> Result<PreparedPrompt> {
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
                            images.push(self.prepare_image(data.bytes(), images.len())?);
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
        let placeholders = ids.iter().filter(|&&t| t == self.image_token_id).count();
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
            if id == self.image_token_id {
                let n = next_image.next().map_or(1, |img| img.num_tokens);
                token_ids.extend(std::iter::repeat_n(id, n));
            } else {
                token_ids.push(id);
            }
        }
        Ok(PreparedPrompt {
            text,
            token_ids,
            images,
        })
    }

    /// Vision features for each image, `[num_tokens, hidden]` each.
    pub fn encode_images(&self, images: &[&PreparedImage]) -> Result<Vec<Tensor>> {
        match &self.network {
            Network::Llava { net, .. } => {
                let pixels: Vec<&PixelValues> = images.iter().map(|i| &i.pixels).collect();
                net.encode_images(&pixels)
            }
        }
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

    pub fn forward(
        &self,
        steps: &[SeqStep<'_>],
        kv: &mut dyn KvCache,
        rows: LogitRows,
    ) -> Result<Tensor> {
        match &self.network {
            Network::Llava { net, .. } => net.forward(steps, kv, rows),
        }
    }
}

impl LoadOptions {
    /// `--device cpu|cuda|cuda:N` and `--dtype f32|f16|bf16|auto` as users type them. `auto`
    /// is bf16 on CUDA and f32 on CPU.
    pub fn parse(device: &str, dtype: &str) -> std::result::Result<Self, String> {
        let device = match device {
            "cpu" => Device::Cpu,
            d if d == "cuda" || d.starts_with("cuda:") => {
                let ordinal = match d.strip_prefix("cuda:") {
                    Some(n) => n
                        .parse::<usize>()
                        .map_err(|_| format!("bad device {d:?}; use cuda:0, cuda:1, ..."))?,
                    None => 0,
                };
                if !candle_core::utils::cuda_is_available() {
                    return Err(format!(
                        "device {d:?} needs a CUDA build; rebuild with `cargo build --release --features cuda` or use --device cpu"
                    ));
                }
                Device::new_cuda(ordinal).map_err(|e| format!("cannot open {d}: {e}"))?
            }
            other => return Err(format!("unknown device {other:?}; use cpu or cuda:N")),
        };
        let dtype = match dtype {
            "auto" if device.is_cuda() => DType::BF16,
            "auto" | "f32" | "float32" => DType::F32,
            "f16" | "float16" | "half" => DType::F16,
            "bf16" | "bfloat16" => DType::BF16,
            other => {
                return Err(format!(
                    "unknown dtype {other:?}; use auto, f32, f16 or bf16"
                ))
            }
        };
        Ok(Self {
            dtype,
            device,
            chat_template: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_dtypes() {
        let o = LoadOptions::parse("cpu", "auto").unwrap();
        assert!(matches!(o.device, Device::Cpu) && o.dtype == DType::F32);
        assert_eq!(
            LoadOptions::parse("cpu", "bf16").unwrap().dtype,
            DType::BF16
        );
        assert!(LoadOptions::parse("tpu", "f32")
            .unwrap_err()
            .contains("unknown device"));
        assert!(LoadOptions::parse("cpu", "f8")
            .unwrap_err()
            .contains("unknown dtype"));
        if !candle_core::utils::cuda_is_available() {
            assert!(LoadOptions::parse("cuda:0", "auto")
                .unwrap_err()
                .contains("--features cuda"));
        }
    }
}
