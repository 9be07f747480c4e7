//! The parts of OpenAI's surface clients call: `models.retrieve` through async-openai,
//! structured outputs (what the SDKs' `parse` sends) constrained on a real model, fields
//! this server cannot enforce refused by name instead of ignored, the assistant role sent
//! with the first token (after prefill), and legacy `text_offset`s that index the returned
//! text.

mod common;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs, ResponseFormat,
    ResponseFormatJsonSchema,
};
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

/// The shape a Pydantic model gives the SDK's `parse` (title, `$defs`, `$ref`, every field
/// required, no extra ones); bounded so a random model finishes.
fn reply_schema() -> Value {
    json!({
        "$defs": {"Verdict": {"enum": ["yes", "no"], "title": "Verdict", "type": "string"}},
        "additionalProperties": false,
        "properties": {
            "answer": {"$ref": "#/$defs/Verdict"},
            "confidence": {"maximum": 100, "minimum": 0, "title": "Confidence", "type": "integer"},
            "reason": {"maxLength": 12, "title": "Reason", "type": "string"}
        },
        "required": ["answer", "confidence", "reason"],
        "title": "Reply",
        "type": "object"
    })
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Reply {
    answer: String,
    confidence: u8,
    reason: String,
}

fn parse_reply(text: &str) -> Reply {
    let reply: Reply = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert!(["yes", "no"].contains(&reply.answer.as_str()), "{text}");
    assert!(
        reply.confidence <= 100 && reply.reason.chars().count() <= 12,
        "{text}"
    );
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_outputs_parse_and_validate() {
    let server = Server::start("qwen2-vl-tiny", &[]);
    let client = Client::with_config(OpenAIConfig::new().with_api_base(server.v1()));
    // What `chat.completions.parse(response_format=Reply)` sends, through async-openai.
    let request = |seed: i64| {
        CreateChatCompletionRequestArgs::default()
            .model("tiny")
            .messages([ChatCompletionRequestUserMessage::from("Is the sky blue?").into()])
            .max_completion_tokens(1500u32)
            .temperature(1.0)
            .seed(seed)
            .response_format(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: None,
                    name: "Reply".into(),
                    schema: reply_schema(),
                    strict: Some(true),
                },
            })
            .build()
            .unwrap()
    };
    // Constrained and free requests at once, batched together by the engine.
    let chat = format!("{}/chat/completions", server.v1());
    let free = chat_free(&chat);
    let chats = client.chat();
    let constrained = (0..4).map(|seed| chats.create(request(seed)));
    let (replies, free) = tokio::join!(futures_util::future::join_all(constrained), free);
    for reply in replies {
        let reply = reply.unwrap();
        let choice = &reply.choices[0];
        assert_eq!(
            choice.finish_reason,
            Some(async_openai::types::chat::FinishReason::Stop)
        );
        parse_reply(choice.message.content.as_deref().unwrap());
    }
    assert!(free.iter().all(|(status, _)| *status == 200), "{free:?}");

    // Streamed, the deltas add up to a valid reply.
    let mut streamed = serde_json::to_value(request(9)).unwrap();
    streamed["stream"] = json!(true);
    let text: String = sse_chunks(&post_text(&chat, &streamed).await)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    parse_reply(&text);

    // json_object, and vLLM's structured_outputs on both endpoints.
    let (status, body) = post(
        &chat,
        &chat_body(json!({"response_format": {"type": "json_object"}, "max_tokens": 1500})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    if body["choices"][0]["finish_reason"] == "stop" {
        assert!(
            serde_json::from_str::<Value>(content).unwrap().is_object(),
            "{content}"
        );
    }
    let completions = format!("{}/completions", server.v1());
    for (constraint, check) in [
        (json!({"choice": ["alpha", "beta"]}), "choice"),
        (json!({"regex": "[0-9]{4}"}), "regex"),
    ] {
        let body = json!({"model": "tiny", "prompt": ["one", "two"], "max_tokens": 20,
            "temperature": 1.0, "seed": 3, "structured_outputs": constraint});
        let (status, reply) = post(&completions, &body).await;
        assert_eq!(status, 200, "{reply}");
        for choice in reply["choices"].as_array().unwrap() {
            let text = choice["text"].as_str().unwrap();
            let ok = match check {
                "choice" => text == "alpha" || text == "beta",
                _ => text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit()),
            };
            assert!(ok, "{check}: {text:?}");
        }
    }

    // Bad formats: a 400 naming the field, and the server goes on.
    for (extra, param) in [
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "integer", "minimum": 3, "maximum": 1}}}}),
            "response_format",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
            "response_format.json_schema.schema",
        ),
        (
            json!({"response_format": {"type": "grammar"}}),
            "response_format.type",
        ),
        (
            json!({"structured_outputs": {"regex": "(["}}),
            "structured_outputs",
        ),
        (
            json!({"structured_outputs": {"regex": "a", "choice": ["a"]}}),
            "structured_outputs",
        ),
    ] {
        let (status, body) = post(&chat, &chat_body(extra.clone())).await;
        assert_eq!(status, 400, "{extra}: {body}");
        assert_eq!(body["error"]["param"], param, "{body}");
    }
    let (status, _) = post(&chat, &chat_body(json!({}))).await;
    assert_eq!(status, 200);
}

fn chat_body(extra: Value) -> Value {
    let mut body = chat(extra);
    body["temperature"] = json!(0);
    body
}

/// Four unconstrained chats sent while the constrained ones run.
async fn chat_free(url: &str) -> Vec<(u16, Value)> {
    let body = chat_body(json!({"max_tokens": 24}));
    let requests = (0..4).map(|_| post(url, &body));
    futures_util::future::join_all(requests).await
}
