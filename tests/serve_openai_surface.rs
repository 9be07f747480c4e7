//! The parts of OpenAI's surface clients call: `models.retrieve` through async-openai,
//! fields this server cannot enforce refused by name instead of ignored, the assistant role
//! sent with the first token (after prefill), and legacy `text_offset`s that index the
//! returned text.

mod common;

use async_openai::config::OpenAIConfig;
use async_openai::Client;
use common::{post_json as post, post_text, Server};
use serde_json::{json, Value};

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "tiny",
        "max_tokens": 6,
        "temperature": 0,
        "messages": [{"role": "user", "content": "Say something."}],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The `data:` payloads of an SSE body, `[DONE]` left out.
fn sse_chunks(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_retrieve_unenforced_fields_role_and_text_offsets() {
    let server = Server::start("llava-tiny", &[]);
    let client = Client::with_config(OpenAIConfig::new().with_api_base(server.v1()));
    let model = client.models().retrieve("tiny").await.unwrap();
    assert_eq!(model.id, "tiny");
    let missing = reqwest::get(format!("{}/models/gpt-9", server.v1()))
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);

    let url = format!("{}/chat/completions", server.v1());
    for (field, value) in [
        ("response_format", json!({"type": "json_object"})),
        (
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema": {"type": "object"}}}),
        ),
        (
            "tools",
            json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ),
        ("tool_choice", json!("required")),
    ] {
        let (status, body) = post(&url, &chat(json!({ field: value }))).await;
        assert_eq!(status, 400, "{field}: {body}");
        assert_eq!(body["error"]["param"], field, "{body}");
    }
    // An unknown content-part type is named, with its place as the param.
    let audio = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi"},
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
    ]}]});
    let (status, body) = post(&url, &chat(audio)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["param"], "messages[0].content[1].type",
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input_audio"),
        "{body}"
    );
    let (status, plain) = post(&url, &chat(json!({"response_format": {"type": "text"}}))).await;
    assert_eq!(status, 200, "{plain}");

    // Streaming: no chunk before the first token; that chunk carries the role, once.
    let text = post_text(&url, &chat(json!({"stream": true}))).await;
    let chunks = sse_chunks(&text);
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(deltas[0]["role"], "assistant", "{text}");
    assert_eq!(
        deltas.iter().filter(|d| d.get("role").is_some()).count(),
        1,
        "{text}"
    );
    let streamed: String = deltas
        .iter()
        .filter_map(|d| d["content"].as_str())
        .collect();
    assert_eq!(
        streamed, plain["choices"][0]["message"]["content"],
        "{text}"
    );

    // Legacy logprobs: every offset indexes the returned text, in order, streamed or not.
    let completions = format!("{}/completions", server.v1());
    let body = json!({"model": "tiny", "prompt": "Once upon", "max_tokens": 8,
        "temperature": 0, "logprobs": 2, "ignore_eos": true});
    let (status, whole) = post(&completions, &body).await;
    assert_eq!(status, 200, "{whole}");
    let choice = &whole["choices"][0];
    let text = choice["text"].as_str().unwrap();
    let offsets: Vec<usize> = choice["logprobs"]["text_offset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(offsets.len(), 8);
    assert_eq!(offsets[0], 0);
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    assert!(
        offsets.iter().all(|&o| o <= text.len()),
        "{offsets:?} past {text:?}"
    );
    let mut streamed_body = body.clone();
    streamed_body["stream"] = json!(true);
    let sse = post_text(&completions, &streamed_body).await;
    let streamed_offsets: Vec<usize> = sse_chunks(&sse)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["logprobs"]["text_offset"]
                .as_array()
                .cloned()
        })
        .flatten()
        .map(|o| o.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(streamed_offsets, offsets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_guards_unknown_v1_paths_and_the_tokenizer_endpoints() {
    let server = Server::start("llava-tiny", &["--api-key", "sesame"]);
    let http = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    let unknown = format!("{}/nothing-here", server.v1());
    assert_eq!(status(http.get(&unknown).send().await.unwrap()), 401);
    let keyed = http
        .get(&unknown)
        .bearer_auth("sesame")
        .send()
        .await
        .unwrap();
    assert_eq!(status(keyed), 404);
    for (path, body) in [
        ("tokenize", json!({"prompt": "hi"})),
        ("detokenize", json!({"tokens": [1, 2]})),
    ] {
        let url = format!("{}/{path}", server.base);
        assert_eq!(
            status(http.post(&url).json(&body).send().await.unwrap()),
            401,
            "{path}"
        );
        let ok = http
            .post(&url)
            .bearer_auth("sesame")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(status(ok), 200, "{path}");
    }
    // Out-of-vocabulary ids are the client's error, as in completions.
    let oov = http
        .post(format!("{}/detokenize", server.base))
        .bearer_auth("sesame")
        .json(&json!({"tokens": [1, 4_000_000_000u32]}))
        .send()
        .await
        .unwrap();
    assert_eq!(oov.status().as_u16(), 400);
    let body: Value = oov.json().await.unwrap();
    assert_eq!(body["error"]["param"], "tokens", "{body}");
    for probe in ["health", "version", "metrics"] {
        let r = reqwest::get(format!("{}/{probe}", server.base))
            .await
            .unwrap();
        assert_eq!(status(r), 200, "{probe} stays open");
    }
}
