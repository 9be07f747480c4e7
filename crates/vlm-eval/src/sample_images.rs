//! The images each row of a task shows the model, for browsing samples (the dashboard's
//! thumbnails): a task's split loaded once, and a row's images in prompt order.

use std::path::Path;
use std::sync::Arc;

use crate::dataset::{Dataset, DatasetError};
use crate::prompt::PromptPart;
use crate::tasks::Task;

/// One task's split, loaded, to look rows' images up by `doc_id`.
pub struct SampleImages {
    task: Box<dyn Task>,
    dataset: Dataset,
}

impl SampleImages {
    pub fn load(task: Box<dyn Task>, data_dir: Option<&Path>) -> Result<Self, DatasetError> {
        let dataset = Dataset::load(&task.dataset(), data_dir)?;
        Ok(Self { task, dataset })
    }

    /// The encoded images (as the dataset holds them) of row `doc_id`, in the order its
    /// prompt shows them; empty for an unknown row or one whose prompt cannot be built.
    pub fn images(&self, doc_id: usize) -> Vec<Arc<[u8]>> {
        let Some(row) = self.dataset.rows.get(doc_id) else {
            return Vec::new();
        };
        let Ok(prompt) = self.task.prompt(row) else {
            return Vec::new();
        };
        prompt
            .parts
            .into_iter()
            .filter_map(|p| match p {
                PromptPart::Image { bytes, .. } => Some(bytes),
                PromptPart::Text(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks;

    #[test]
    fn rows_show_their_images() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../eval-datasets");
        let mme = SampleImages::load(tasks::by_name("mme").unwrap(), Some(&data)).unwrap();
        let images = mme.images(0);
        assert_eq!(images.len(), 1);
        assert!(image::guess_format(&images[0]).is_ok());
        assert!(mme.images(1_000_000).is_empty());
        // MMMU rows may show several.
        let mmmu = SampleImages::load(tasks::by_name("mmmu_val").unwrap(), Some(&data)).unwrap();
        assert!((0..12).any(|d| mmmu.images(d).len() > 1));
    }
}
