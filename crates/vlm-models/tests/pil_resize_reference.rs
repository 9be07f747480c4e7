//! The bicubic resizer against Pillow 13 on sizes that exercise both pass orders.

mod common;

use vlm_models::preprocess::{resize_bicubic, Image8};

fn load(path: std::path::PathBuf) -> Image8 {
    let img = image::open(path).unwrap().to_rgb8();
    Image8::new(
        img.width() as usize,
        img.height() as usize,
        3,
        img.into_raw(),
    )
}

#[test]
fn resizes_match_pillow_bit_for_bit() {
    let dir = common::fixtures().join("resize-ref");
    let source = load(dir.join("source.png"));
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let Some((w, h)) = name.split_once('x') else {
            continue;
        };
        let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
        let expected = load(path);
        assert_eq!(resize_bicubic(&source, w, h), expected, "{w}x{h}");
        checked += 1;
    }
    assert_eq!(checked, 10);
}
