use candle_core::Tensor;

use super::{mrope_positions, MropePositions, Qwen2VlConfig, Qwen2VlModel, KEY_LAYOUT};
use crate::decoder::{DecoderConfig, KvCache};
use crate::error::{ModelError, Result};
use crate::loader::{Snapshot, Weights};
use crate::model::{Family, ImagePixels, LoadOptions, LogitRows, PreparedImage, SeqStep};
use crate::preprocess::{Image8, PatchValues, PixelBudget, Qwen2VlImageProcessor};

struct Qwen2Vl {
    processor: Qwen2VlImageProcessor,
    net: Qwen2VlModel,
}

pub(crate) fn load_family(snapshot: &Snapshot, options: &LoadOptions) -> Result<Box<dyn Family>> {
    let config_path = snapshot.path("config.json");
    let config =
        Qwen2VlConfig::from_json(snapshot.config()).map_err(|message| ModelError::Unsupported {
            path: config_path.clone(),
            message,
        })?;
    let (ip_path, ip_config) = snapshot.image_processor_config()?;
    let processor = Qwen2VlImageProcessor::from_json(&ip_config)
        .map_err(|e| ModelError::invalid(&ip_path, e))?;
    let v = &config.vision;
    if (
        processor.patch_size,
        processor.merge_size,
        processor.temporal_patch_size,
    ) != (v.patch_size, v.spatial_merge_size, v.temporal_patch_size)
    {
        return Err(ModelError::invalid(
            ip_path,
            format!(
                "patch {} / merge {} / temporal {} disagree with config.json's vision_config ({} / {} / {})",
                processor.patch_size,
                processor.merge_size,
                processor.temporal_patch_size,
                v.patch_size,
                v.spatial_merge_size,
                v.temporal_patch_size
            ),
        ));
    }
    let weights = Weights::open(
        &snapshot.weight_files()?,
        snapshot.dir().to_path_buf(),
        KEY_LAYOUT,
        options.dtype,
        &options.device,
    )?;
    let net = Qwen2VlModel::load(&weights, config)?;
    Ok(Box::new(Qwen2Vl { processor, net }))
}

impl Family for Qwen2Vl {
    fn text_config(&self) -> &DecoderConfig {
        &self.net.config().text
    }

    fn image_token_id(&self) -> u32 {
        self.net.config().image_token_id
    }

    fn takes_pixel_budget(&self) -> bool {
        true
    }

    fn prepare_image(
        &self,
        rgb: &Image8,
        budget: PixelBudget,
    ) -> std::result::Result<PreparedImage, String> {
        let patches = self.processor.process(rgb, budget)?;
        Ok(PreparedImage {
            key: [0; 32],
            num_tokens: self.processor.tokens_for(patches.grid_thw),
            pixels: ImagePixels::Patches(patches),
        })
    }

    fn encode_images(&self, images: &[&PreparedImage]) -> Result<Vec<Tensor>> {
        let patches = images
            .iter()
            .map(|i| match &i.pixels {
                ImagePixels::Patches(p) => Ok(p),
                ImagePixels::Fixed(_) => {
                    Err(ModelError::InvalidStep("Qwen2-VL takes patches".into()))
                }
            })
            .collect::<Result<Vec<&PatchValues>>>()?;
        self.net.encode_images(&patches)
    }

    fn positions(
        &self,
        token_ids: &[u32],
        images: &[PreparedImage],
    ) -> std::result::Result<Option<MropePositions>, String> {
        let grids: Vec<[usize; 3]> = images
            .iter()
            .filter_map(|i| match &i.pixels {
                ImagePixels::Patches(p) => Some(p.grid_thw),
                ImagePixels::Fixed(_) => None,
            })
            .collect();
        mrope_positions(
            token_ids,
            self.image_token_id(),
            &grids,
            self.processor.merge_size,
        )
        .map(Some)
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
