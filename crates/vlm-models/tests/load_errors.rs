//! Every way a checkpoint can be wrong gives a typed error that names the problem; none panics.

use std::path::{Path, PathBuf};

use serde_json::Value;
use vlm_core::{ChatMessage, ImageData};
use vlm_models::loader::{self, Snapshot};
use vlm_models::{LoadOptions, ModelError, VlmModel};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// A writable copy of a fixture checkpoint.
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn load(dir: &Path) -> Result<VlmModel, ModelError> {
    VlmModel::load(Snapshot::open(dir)?, &LoadOptions::default())
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let path = dir.join("config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(path, config.to_string()).unwrap();
}

#[test]
fn missing_directory() {
    let err = loader::resolve("/no/such/model/dir").unwrap_err();
    assert!(matches!(err, ModelError::NoSuchModel { .. }), "{err}");
    assert!(
        err.to_string().contains("llava-1.5-7b"),
        "lists the aliases: {err}"
    );
}

#[test]
fn missing_tokenizer_weights_shard_and_processor() {
    for (file, layout) in [
        ("tokenizer.json", "llava-tiny"),
        ("model.safetensors", "llava-tiny"),
        ("model-00002-of-00002.safetensors", "llava-tiny-hub"),
        ("preprocessor_config.json", "llava-tiny-hub"),
    ] {
        let dir = copy_of(layout);
        std::fs::remove_file(dir.path().join(file)).unwrap();
        let err = load(dir.path())
            .err()
            .unwrap_or_else(|| panic!("{file}: loaded"));
        assert!(
            matches!(err, ModelError::MissingFile { .. }),
            "{file}: {err}"
        );
        assert!(err.to_string().contains(file), "{file}: {err}");
    }
}

#[test]
fn missing_chat_template() {
    let dir = copy_of("llava-tiny-hub");
    std::fs::remove_file(dir.path().join("chat_template.json")).unwrap();
    let err = load(dir.path()).err().unwrap();
    assert!(err.to_string().contains("--chat-template"), "{err}");
    let options = LoadOptions {
        chat_template: Some("{% for m in messages %}{{ m.role }}{% endfor %}>".into()),
        ..LoadOptions::default()
    };
    let model = VlmModel::load(Snapshot::open(dir.path()).unwrap(), &options).unwrap();
    let prompt = model
        .prepare(&[ChatMessage::user_with_images(vec![], "hi")])
        .unwrap();
    assert_eq!(prompt.text, "user>");
}

#[test]
fn unknown_architecture() {
    let dir = copy_of("llava-tiny");
    edit_config(dir.path(), |c| {
        c["architectures"] = serde_json::json!(["MambaForCausalLM"])
    });
    let err = load(dir.path()).err().unwrap();
    assert!(
        matches!(&err, ModelError::UnknownArchitecture { found, .. } if found == "MambaForCausalLM"),
        "{err}"
    );
}

#[test]
fn wrong_shapes_name_the_tensor() {
    let dir = copy_of("llava-tiny-hub");
    edit_config(dir.path(), |c| {
        c["text_config"]["intermediate_size"] = 96.into()
    });
    let err = load(dir.path()).err().unwrap();
    match &err {
        ModelError::WrongShape {
            name,
            expected,
            actual,
        } => {
            assert!(name.contains("mlp.gate_proj.weight"), "{err}");
            assert_eq!(
                (expected.as_slice(), actual.as_slice()),
                (&[96, 64][..], &[160, 64][..])
            );
        }
        other => panic!("expected WrongShape, got {other}"),
    }
}

#[test]
fn config_asking_for_more_layers_than_the_weights_have() {
    let dir = copy_of("llava-tiny");
    edit_config(dir.path(), |c| {
        c["text_config"]["num_hidden_layers"] = 3.into()
    });
    let err = load(dir.path()).err().unwrap();
    assert!(
        matches!(&err, ModelError::MissingWeight { name, .. } if name.contains("layers.2")),
        "{err}"
    );
}

#[test]
fn unsupported_settings() {
    for (edit, needle) in [
        (
            serde_json::json!({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}),
            "yarn",
        ),
        (serde_json::json!({"hidden_act": "relu"}), "relu"),
        (serde_json::json!({"num_key_value_heads": 3}), "multiple"),
    ] {
        let dir = copy_of("llava-tiny");
        edit_config(dir.path(), |c| {
            for (k, v) in edit.as_object().unwrap() {
                c["text_config"][k] = v.clone();
            }
        });
        let err = load(dir.path()).err().unwrap();
        assert!(
            matches!(err, ModelError::Unsupported { .. }),
            "{needle}: {err}"
        );
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn a_tokenizer_from_another_model() {
    let dir = copy_of("llava-tiny");
    std::fs::copy(
        fixture("llava-alt/tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let err = load(dir.path()).err().unwrap();
    assert!(
        err.to_string().contains("tokenizer.json does not belong"),
        "{err}"
    );
}

#[test]
fn truncated_weights_and_broken_json() {
    let dir = copy_of("llava-tiny");
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(dir.path()).err().unwrap();
    assert!(matches!(err, ModelError::InvalidFile { .. }), "{err}");

    let dir = copy_of("llava-tiny");
    std::fs::write(dir.path().join("processor_config.json"), "{").unwrap();
    let err = load(dir.path()).err().unwrap();
    assert!(err.to_string().contains("processor_config.json"), "{err}");
}

#[test]
fn bad_images_and_prompts_are_errors() {
    let model = load(&fixture("llava-tiny")).unwrap();
    let ask = |images: Vec<ImageData>, text: &str| {
        model.prepare(&[ChatMessage::user_with_images(images, text)])
    };
    let err = ask(vec![ImageData::new(b"GIF89a garbage".to_vec())], "hi").unwrap_err();
    assert!(matches!(err, ModelError::Image { index: 0, .. }), "{err}");
    let err = ask(vec![ImageData::new(Vec::new())], "hi").unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    // The literal image token in user text would silently misalign features: refused.
    let err = ask(vec![], "look: <image>").unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::ImageCountMismatch {
                placeholders: 1,
                images: 0
            }
        ),
        "{err}"
    );
}

/// A template that cannot render one plain user turn is refused at load, not on every
/// request as if each client were at fault.
#[test]
fn a_template_that_cannot_render_fails_the_load() {
    let dir = copy_of("llava-tiny-hub");
    let options = LoadOptions {
        chat_template: Some("{{ raise_exception('this template is broken') }}".into()),
        ..LoadOptions::default()
    };
    let err = VlmModel::load(Snapshot::open(dir.path()).unwrap(), &options)
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(matches!(err, ModelError::ChatTemplate(_)), "{text}");
    assert!(
        text.contains("this template is broken") && text.contains("--chat-template"),
        "{text}"
    );
}
