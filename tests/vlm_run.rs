//! `vlm-run` end to end: the real binary on the fixture checkpoints, compared with the
//! transformers references, and its failures (one line saying what to do, exit status 1).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn vlm_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vlm-run"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("vlm-run starts")
}

fn run_json(model: &str, images: &[String], prompt: &str, max_tokens: usize) -> Value {
    let model = fixtures().join(model);
    let mut args = vec!["--model".to_string(), model.display().to_string()];
    for image in images {
        args.push("--image".into());
        args.push(fixtures().join("images").join(image).display().to_string());
    }
    args.extend([
        "--prompt".into(),
        prompt.into(),
        "--max-tokens".into(),
        max_tokens.to_string(),
        "--json".into(),
    ]);
    let out = vlm_run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "vlm-run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// A reference case's images and text: `images` + `prompt` (LLaVA records), or `content`
/// parts with the images first (Qwen2-VL records), the message vlm-run builds.
fn images_and_text(r: &Value) -> (Vec<String>, String) {
    let as_string = |v: &Value| v.as_str().unwrap().to_string();
    if let Some(images) = r.get("images") {
        let images = images.as_array().unwrap().iter().map(as_string).collect();
        return (images, as_string(&r["prompt"]));
    }
    let parts = r["content"].as_array().unwrap();
    let (text, images) = parts.split_last().unwrap();
    let images = images.iter().map(|p| as_string(&p["image"])).collect();
    (images, as_string(&text["text"]))
}

/// Same greedy tokens, prompt ids and text as transformers, logprobs within 1e-4.
fn check_against_reference(model: &str, reference: &Value, max_tokens: usize) {
    for (case, r) in reference.as_object().unwrap() {
        let (images, text) = images_and_text(r);
        let out = run_json(model, &images, &text, max_tokens);
        assert_eq!(
            ids(&out["prompt_token_ids"]),
            ids(&r["input_ids"]),
            "{model} {case}: prompt ids"
        );
        let expected = ids(&r["greedy_tokens"]);
        assert_eq!(
            ids(&out["token_ids"]),
            expected,
            "{model} {case}: greedy tokens"
        );
        assert_eq!(out["text"], r["greedy_text"], "{model} {case}: text");
        let ours = out["logprobs"].as_array().unwrap();
        let theirs = r["greedy_logprobs"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len());
        let worst = ours
            .iter()
            .zip(theirs)
            .map(|(a, b)| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{model} {case}: {} tokens equal, logprob max diff {worst:.2e}",
            expected.len()
        );
        assert!(worst <= 1e-4, "{model} {case}: logprob diff {worst}");
    }
}

#[test]
fn independent_llava_checkpoint_matches_transformers() {
    // Other sizes, GQA ratio 3, tokenizer, template, feature layers [-4, -1], "full" features,
    // tied embeddings, 224 px images, saved by save_pretrained as is.
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("llava-alt/reference.json")).unwrap(),
    )
    .unwrap();
    check_against_reference("llava-alt", &reference, 20);
}

#[test]
fn tiny_llava_hub_layout_matches_transformers() {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("llava-tiny-ref/prompts.json")).unwrap(),
    )
    .unwrap();
    check_against_reference("llava-tiny-hub", &reference, 24);
}

#[test]
fn independent_qwen2_vl_checkpoint_matches_transformers() {
    // Other sizes, mrope_section [2, 1, 1], GQA 2, head_dim 8, untied head, GELU vision,
    // min/max_pixels 6272/75264, saved by save_pretrained as is.
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("qwen2-vl-alt/reference.json")).unwrap(),
    )
    .unwrap();
    check_against_reference("qwen2-vl-alt", &reference, 20);
}

#[test]
fn tiny_qwen2_vl_matches_transformers() {
    let text = std::fs::read_to_string(fixtures().join("qwen2-vl-tiny-ref/prompts.json")).unwrap();
    let mut reference: Value = serde_json::from_str(&text).unwrap();
    // vlm-run puts images before the text; the interleaved prompts are checked in vlm-models.
    reference.as_object_mut().unwrap().retain(|_, r| {
        r["content"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .get("text")
            .is_some()
            && r["content"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .skip(1)
                .all(|p| p.get("image").is_some())
    });
    assert_eq!(
        reference.as_object().unwrap().len(),
        2,
        "text_only and one_image"
    );
    check_against_reference("qwen2-vl-tiny", &reference, 24);
}

#[test]
fn pixel_budget_flags_reach_the_processor() {
    let model = fixtures().join("qwen2-vl-tiny");
    let image = fixtures().join("images/landscape_down.png");
    let prompt_len = |extra: &[&str]| {
        let mut args = vec![
            "--model",
            model.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
        ];
        args.extend(["--prompt", "x", "--max-tokens", "1", "--json"]);
        args.extend(extra);
        let out = vlm_run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["prompt_token_ids"].as_array().unwrap().len()
    };
    // 520x390: 28x38 patches (266 tokens) by default, 24x32 (192) under 200*28*28 pixels.
    assert_eq!(
        prompt_len(&[]) - prompt_len(&["--max-pixels", "156800"]),
        266 - 192
    );
    let llava = fixtures().join("llava-tiny");
    expect_failure(
        &[
            "--model",
            llava.to_str().unwrap(),
            "--prompt",
            "x",
            "--max-pixels",
            "1000",
        ],
        "do not apply",
    );
}

#[test]
fn plain_output_is_the_text_and_sampling_is_seeded() {
    let model = fixtures().join("llava-tiny");
    let image = fixtures().join("images/square.png");
    let base = [
        "--model",
        model.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--prompt",
        "Hi",
    ];
    let sample = |seed: &str| {
        let mut args = base.to_vec();
        args.extend(["--max-tokens", "12", "--temperature", "1.5", "--seed", seed]);
        let out = vlm_run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(sample("1"), sample("1"));
    let seeds: std::collections::HashSet<String> =
        ["1", "2", "3", "4"].iter().map(|s| sample(s)).collect();
    assert!(seeds.len() > 1, "different seeds give different samples");
}

fn expect_failure(args: &[&str], needle: &str) {
    let out = vlm_run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn failures_are_one_clear_line() {
    let model = fixtures().join("llava-tiny");
    let model = model.to_str().unwrap();
    expect_failure(
        &["--model", "/no/such/dir", "--prompt", "x"],
        "does not exist",
    );
    expect_failure(
        &["--model", "llava-1.5-7b", "--prompt", "x"],
        "HF_HUB_OFFLINE",
    );
    expect_failure(
        &["--model", model, "--image", "/no/such.png", "--prompt", "x"],
        "cannot read image /no/such.png",
    );
    let not_an_image = fixtures().join("llava-tiny/config.json");
    expect_failure(
        &[
            "--model",
            model,
            "--image",
            not_an_image.to_str().unwrap(),
            "--prompt",
            "x",
        ],
        "cannot decode image",
    );
    expect_failure(
        &["--model", model, "--prompt", "x", "--temperature", "-1"],
        "temperature",
    );
    expect_failure(
        &["--model", model, "--prompt", "x", "--device", "cuda:0"],
        "cuda",
    );
}
