//! `vlm-serve` refuses every bad request with a 4xx in OpenAI's error shape, over raw HTTP:
//! malformed JSON, wrong fields and types, images it may not fetch or decode, limits, and
//! prompts past the context; the server keeps serving.

mod common;

use common::{assert_blocks_return, data_url, fixtures, image_bytes, image_part, Server};
use serde_json::{json, Value};

const MODEL_DIR: &str = "llava-tiny-hub";

/// POSTs raw JSON (or bytes) and returns the status and the parsed body.
async fn post(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}"));
    (status, value)
}

/// OpenAI's error shape, with the message mentioning `needle`.
fn assert_error(status: u16, body: &Value, want_status: u16, needle: &str, case: &str) {
    assert_eq!(status, want_status, "{case}: {body}");
    let error = &body["error"];
    for key in ["message", "type", "param", "code"] {
        assert!(error.get(key).is_some(), "{case}: no error.{key} in {body}");
    }
    let message = error["message"].as_str().unwrap();
    assert!(
        message.to_lowercase().contains(&needle.to_lowercase()),
        "{case}: {message:?} does not mention {needle:?}"
    );
}

fn chat_body(content: Value) -> Value {
    json!({"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": content}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_is_a_4xx_in_openai_shape() {
    let media = fixtures().join("images");
    let server = Server::start(
        MODEL_DIR,
        &[
            "--max-model-len",
            "700",
            "--limit-images-per-prompt",
            "1",
            "--max-image-pixels",
            "200000",
            "--max-image-mb",
            "0.2",
            "--max-body-mb",
            "0.5",
        ],
    );
    let chat = format!("{}/chat/completions", server.v1());
    let square = data_url(&image_bytes("square.png"));
    let big_body = chat_body(json!("x".repeat(600_000))).to_string();
    let jpeg_as_png = data_url(&image_bytes("landscape.jpg"));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed JSON", "{\"model\": ".into(), 400, "not valid JSON"),
        ("not an object", "[1, 2]".into(), 400, "object"),
        ("missing messages", json!({"model": "tiny"}).to_string(), 400, "messages"),
        (
            "wrong type",
            json!({"model": "tiny", "messages": "hello"}).to_string(),
            400,
            "messages",
        ),
        (
            "unknown model",
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
            404,
            "gpt-9",
        ),
        (
            "invalid base64",
            chat_body(json!([image_part("data:image/png;base64,!!!not-base64!!!")])).to_string(),
            400,
            "base64",
        ),
        (
            "undecodable image",
            chat_body(json!([image_part(&data_url(b"GIF89a but not really an image"))]))
                .to_string(),
            400,
            "image",
        ),
        (
            "too many pixels",
            chat_body(json!([image_part(&data_url(&image_bytes("landscape_down.png")))])).to_string(),
            400,
            "pixels",
        ),
        (
            "too many bytes",
            chat_body(json!([image_part(&data_url(&vec![0u8; 250_000]))])).to_string(),
            400,
            "bytes",
        ),
        (
            "too many images",
            chat_body(json!([image_part(&square), image_part(&square)])).to_string(),
            400,
            "at most 1 images",
        ),
        (
            "prompt over max_model_len",
            chat_body(json!("word ".repeat(1000))).to_string(),
            400,
            "maximum context length",
        ),
        (
            "max_tokens past the context",
            json!({"model": "tiny", "max_tokens": 5000, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
            400,
            "context",
        ),
        (
            "negative temperature",
            json!({"model": "tiny", "temperature": -1, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
            400,
            "temperature",
        ),
        (
            "top_p out of range",
            json!({"model": "tiny", "top_p": 1.5, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
            400,
            "top_p",
        ),
        (
            "n = 0",
            json!({"model": "tiny", "n": 0, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
            400,
            "n must",
        ),
        (
            "unknown role",
            json!({"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}).to_string(),
            400,
            "role",
        ),
        ("body over the limit", big_body, 413, "larger"),
        (
            "remote image not allowed",
            chat_body(json!([image_part("http://127.0.0.1:9/cat.png")])).to_string(),
            400,
            "remote images are not allowed",
        ),
        (
            "local image not allowed",
            chat_body(json!([image_part(media.join("square.png").to_str().unwrap())])).to_string(),
            400,
            "local image paths are not allowed",
        ),
        (
            "JPEG bytes in a PNG data URL still decode",
            chat_body(json!([image_part(&jpeg_as_png)])).to_string(),
            200,
            "",
        ),
    ];
    for (case, body, want, needle) in cases {
        let (status, value) = post(&chat, body).await;
        if want == 200 {
            assert_eq!(status, 200, "{case}: {value}");
            continue;
        }
        assert_error(status, &value, want, needle, case);
    }
    // Parameters are named where there is one.
    let (_, v) = post(&chat, json!({"model": "tiny", "temperature": -1, "messages": [{"role": "user", "content": "hi"}]}).to_string()).await;
    assert_eq!(v["error"]["param"], "temperature");
    let (_, v) = post(&chat, json!({"model": "gpt-9", "messages": []}).to_string()).await;
    assert_eq!(v["error"]["param"], "model");

    // Other routes answer in the same shape.
    let (status, v) = post(
        &format!("{}/completions", server.v1()),
        json!({"model": "tiny"}).to_string(),
    )
    .await;
    assert_error(status, &v, 400, "prompt", "completions without prompt");
    let response = reqwest::get(&chat).await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let v: Value = response.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("GET"),
        "{v}"
    );
    let (status, v) = post(&format!("{}/tokenize", server.base), json!({}).to_string()).await;
    assert_error(
        status,
        &v,
        400,
        "exactly one of prompt",
        "tokenize without input",
    );
    let response = reqwest::get(format!("{}/v1/nothing-here", server.base))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let v: Value = response.json().await.unwrap();
    assert!(v["error"]["message"].is_string());

    // After all that the server still serves, and holds no KV blocks.
    let (status, v) = post(
        &chat,
        chat_body(json!([image_part(&square), {"type": "text", "text": "hi"}])).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_blocks_return(&server).await;

    // /tokenize and /detokenize round-trip.
    let (status, v) = post(
        &format!("{}/tokenize", server.base),
        json!({"prompt": "hello world"}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["count"].as_u64().unwrap() as usize,
        v["tokens"].as_array().unwrap().len()
    );
    let (status, d) = post(
        &format!("{}/detokenize", server.base),
        json!({"tokens": v["tokens"]}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert!(d["prompt"].as_str().unwrap().contains("hello world"), "{d}");
    let version: Value = reqwest::get(format!("{}/version", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(version["version"].is_string());
}
