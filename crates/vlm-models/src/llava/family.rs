use candle_core::Tensor;

use super::{LlavaConfig, LlavaModel, KEY_LAYOUT};
use crate::decoder::{DecoderConfig, KvCache};
use crate::error::{ModelError, Result};
use crate::loader::{Snapshot, Weights};
use crate::model::{Family, ImagePixels, LoadOptions, LogitRows, PreparedImage, SeqStep};
use crate::preprocess::{ClipImageProcessor, Image8, PixelBudget, PixelValues};
use crate::qwen2_vl::MropePositions;

struct Llava {
    processor: ClipImageProcessor,
    net: LlavaModel,
}

pub(crate) fn load_family(snapshot: &Snapshot, options: &LoadOptions) -> Result<Box<dyn Family>> {
    let config_path = snapshot.path("config.json");
    let unsupported = |message: String| ModelError::Unsupported {
        path: config_path.clone(),
        message,
    };
    let config: LlavaConfig = serde_json::from_value(snapshot.config().clone())
        .map_err(|e| ModelError::invalid(&config_path, e))?;
    config.validate().map_err(unsupported)?;
    let rope_theta = config.text_config.rope(10000.0).map_err(unsupported)?;
    let (ip_path, ip_config) = snapshot.image_processor_config()?;
    let processor =
        ClipImageProcessor::from_json(&ip_config).map_err(|e| ModelError::invalid(ip_path, e))?;
    let weights = Weights::open(
        &snapshot.weight_files()?,
        snapshot.dir().to_path_buf(),
        KEY_LAYOUT,
        options.dtype,
        &options.device,
    )?;
    let net = LlavaModel::load(&weights, config, rope_theta)?;
    Ok(Box::new(Llava { processor, net }))
}

impl Family for Llava {
    fn text_config(&self) -> &DecoderConfig {
        &self.net.config().text_config
    }

    fn image_token_id(&self) -> u32 {
        self.net.config().image_token_id()
    }

    fn takes_pixel_budget(&self) -> bool {
        false
    }

    fn prepare_image(
        &self,
        rgb: &Image8,
        _budget: PixelBudget,
    ) -> std::result::Result<PreparedImage, String> {
        Ok(PreparedImage {
            key: [0; 32],
            pixels: ImagePixels::Fixed(self.processor.process(rgb)),
            num_tokens: self.net.config().tokens_per_image(),
        })
    }

    fn encode_images(&self, images: &[&PreparedImage]) -> Result<Vec<Tensor>> {
        let pixels = images
            .iter()
            .map(|i| match &i.pixels {
                ImagePixels::Fixed(p) => Ok(p),
                ImagePixels::Patches(_) => Err(ModelError::InvalidStep(
                    "LLaVA takes whole images, not patches".into(),
                )),
            })
            .collect::<Result<Vec<&PixelValues>>>()?;
        self.net.encode_images(&pixels)
    }

    fn positions(
        &self,
        _: &[u32],
        _: &[PreparedImage],
    ) -> std::result::Result<Option<MropePositions>, String> {
        Ok(None)
    }

    fn forward(
        &self,
        steps: &[SeqStep<'_>],
        kv: &mut dyn KvCache,
        rows: LogitRows,
    ) -> Result<Tensor> {
        self.net.forward(steps, kv, rows)
    }
}
