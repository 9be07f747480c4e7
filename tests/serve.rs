//! `vlm-serve` end to end: the real binary on a loopback port, the official-shaped
//! `async-openai` client for the happy paths, and the lifecycle (disconnects free KV
//! blocks, auth, SIGTERM drains). Bad requests are in `serve_bad_requests.rs`.

mod common;

use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestMessageContentPartImage, ChatCompletionRequestMessageContentPartText,
    ChatCompletionRequestUserMessage, ChatCompletionRequestUserMessageContent,
    ChatCompletionRequestUserMessageContentPart, ChatCompletionStreamOptions,
    CreateChatCompletionRequest, CreateChatCompletionRequestArgs, ImageUrl, Prompt,
};
use async_openai::types::completions::CreateCompletionRequestArgs;
use async_openai::Client;
use common::{assert_blocks_return, data_url, fixtures, image_bytes, image_part, metric, Server};
use futures_util::StreamExt;
use serde_json::{json, Value};

const MODEL_DIR: &str = "llava-tiny-hub";
const QUESTION: &str = "What is in the picture?";

fn client(server: &Server, key: Option<&str>) -> Client<OpenAIConfig> {
    let mut config = OpenAIConfig::new().with_api_base(server.v1());
    if let Some(k) = key {
        config = config.with_api_key(k);
    }
    Client::with_config(config)
}

/// One user message: the image, then the question (as `vlm-run` builds it).
fn image_question(image: &[u8]) -> ChatCompletionRequestUserMessage {
    ChatCompletionRequestUserMessage {
        content: ChatCompletionRequestUserMessageContent::Array(vec![
            ChatCompletionRequestUserMessageContentPart::ImageUrl(
                ChatCompletionRequestMessageContentPartImage {
                    image_url: ImageUrl {
                        url: data_url(image),
                        detail: None,
                    },
                    prompt_cache_breakpoint: None,
                },
            ),
            ChatCompletionRequestUserMessageContentPart::Text(
                ChatCompletionRequestMessageContentPartText {
                    text: QUESTION.into(),
                    prompt_cache_breakpoint: None,
                },
            ),
        ]),
        name: None,
    }
}

fn greedy_request(max_tokens: u32) -> CreateChatCompletionRequest {
    CreateChatCompletionRequestArgs::default()
        .model("tiny")
        .messages([image_question(&image_bytes("square.png")).into()])
        .max_completion_tokens(max_tokens)
        .temperature(0.0)
        .build()
        .unwrap()
}

fn vlm_run_text(max_tokens: u32) -> (String, usize) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vlm-run"))
        .args(["--model", fixtures().join(MODEL_DIR).to_str().unwrap()])
        .args([
            "--image",
            fixtures().join("images/square.png").to_str().unwrap(),
        ])
        .args([
            "--prompt",
            QUESTION,
            "--json",
            "--max-tokens",
            &max_tokens.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["text"].as_str().unwrap().to_string(),
        v["prompt_token_ids"].as_array().unwrap().len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_client_end_to_end() {
    let server = Server::start(MODEL_DIR, &[]);
    let client = client(&server, None);

    // Chat with an image: the text vlm-run produces for the same input.
    let response = client.chat().create(greedy_request(12)).await.unwrap();
    let (expected, prompt_tokens) = vlm_run_text(12);
    assert_eq!(response.choices.len(), 1);
    let text = response.choices[0].message.content.clone().unwrap();
    assert_eq!(text, expected);
    let usage = response.usage.clone().unwrap();
    assert_eq!(usage.prompt_tokens as usize, prompt_tokens);
    assert_eq!(usage.completion_tokens, 12);
    assert!(response.id.starts_with("chatcmpl-"));
    assert_eq!(response.object, "chat.completion");

    // Streaming with usage: the deltas add up to the same text; usage comes last.
    let mut request = greedy_request(12);
    request.stream = Some(true);
    request.stream_options = Some(ChatCompletionStreamOptions {
        include_usage: Some(true),
        include_obfuscation: None,
    });
    let mut stream = client.chat().create_stream(request).await.unwrap();
    let (mut streamed, mut finish, mut usage) = (String::new(), None, None);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        for c in &chunk.choices {
            streamed.push_str(c.delta.content.as_deref().unwrap_or(""));
            finish = finish.or(c.finish_reason);
        }
        if let Some(u) = chunk.usage {
            assert!(chunk.choices.is_empty(), "the usage chunk has no choices");
            usage = Some(u);
        }
    }
    assert_eq!(streamed, expected);
    assert!(finish.is_some());
    assert_eq!(usage.unwrap().completion_tokens, 12);

    // Logprobs: one entry per token, the chosen one first among greedy alternatives.
    let mut request = greedy_request(6);
    request.logprobs = Some(true);
    request.top_logprobs = Some(3);
    let response = client.chat().create(request).await.unwrap();
    let content = response.choices[0]
        .logprobs
        .clone()
        .unwrap()
        .content
        .unwrap();
    assert_eq!(content.len(), 6);
    // Token strings keep their spaces: together they spell the reply.
    let joined: String = content.iter().map(|e| e.token.as_str()).collect();
    let reply = response.choices[0].message.content.clone().unwrap();
    assert_eq!(joined.trim_start(), reply.trim_start());
    for entry in &content {
        assert_eq!(entry.top_logprobs.len(), 3);
        assert!(entry.logprob <= 0.0);
        assert!((entry.top_logprobs[0].logprob - entry.logprob).abs() < 1e-6);
    }

    // n = 2, sampled and seeded: two choices; the same seed repeats them.
    let sampled = || {
        CreateChatCompletionRequestArgs::default()
            .model("tiny")
            .messages([image_question(&image_bytes("square.png")).into()])
            .max_completion_tokens(10u32)
            .temperature(1.0)
            .n(2)
            .seed(1234)
            .build()
            .unwrap()
    };
    let first = client.chat().create(sampled()).await.unwrap();
    let second = client.chat().create(sampled()).await.unwrap();
    let texts = |r: &async_openai::types::chat::CreateChatCompletionResponse| {
        let mut v: Vec<(u32, String)> = r
            .choices
            .iter()
            .map(|c| (c.index, c.message.content.clone().unwrap_or_default()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(texts(&first).len(), 2);
    assert_eq!(texts(&first)[0].0, 0);
    assert_eq!(texts(&first)[1].0, 1);
    assert_eq!(texts(&first), texts(&second));

    // /v1/completions with a text prompt.
    let request = CreateCompletionRequestArgs::default()
        .model("tiny")
        .prompt(Prompt::String("The capital of France is".into()))
        .max_tokens(5u32)
        .temperature(0.0)
        .build()
        .unwrap();
    let completion = client.completions().create(request).await.unwrap();
    assert_eq!(completion.choices.len(), 1);
    assert_eq!(completion.usage.unwrap().completion_tokens, 5);
    assert_eq!(completion.object, "text_completion");

    // /v1/models lists the served name.
    let models = client.models().list().await.unwrap();
    assert_eq!(models.data.len(), 1);
    assert_eq!(models.data[0].id, "tiny");

    // The same image question asked again and again reused its prefix (prefix caching is
    // on by default), and the answers above were the same as vlm-run's.
    let hits = metric(&server.base, "vlm:prefix_cache_hits_total").await;
    let queries = metric(&server.base, "vlm:prefix_cache_queries_total").await;
    assert!(
        hits >= prompt_tokens as f64 && hits < queries,
        "{hits} of {queries}"
    );
    let computed = metric(&server.base, "vlm:prompt_tokens_total").await;
    assert_eq!(computed + hits, queries);
}

/// Starts a streamed chat request; its raw SSE bytes follow through `bytes_stream()`.
async fn stream_chat(server: &Server, body: &Value) -> reqwest::Response {
    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.v1()))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_stream_frees_its_blocks() {
    let server = Server::start(MODEL_DIR, &[]);
    let body = json!({
        "model": "tiny",
        "stream": true,
        "max_tokens": 1200,
        "ignore_eos": true,
        "messages": [{"role": "user", "content": [image_part(&data_url(&image_bytes("square.png"))), {"type": "text", "text": "go on"}]}],
    });
    let mut bytes = stream_chat(&server, &body).await.bytes_stream();
    // Read until a few tokens have arrived: the sequence holds blocks now.
    let mut seen = 0;
    while seen < 4 {
        let chunk = bytes.next().await.unwrap().unwrap();
        seen += String::from_utf8_lossy(&chunk).matches("data: ").count();
    }
    assert!(metric(&server.base, "vlm:kv_cache_blocks_used").await > 0.0);
    assert_eq!(metric(&server.base, "vlm:num_requests_running").await, 1.0);
    drop(bytes);
    assert_blocks_return(&server).await;
    assert!(metric(&server.base, "vlm:generation_tokens_total").await < 1200.0);
    assert_eq!(metric(&server.base, "vlm:request_aborted_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_guards_v1_only() {
    // Also the server with prefix caching off: two identical requests compute both prompts.
    let server = Server::start(MODEL_DIR, &["--api-key", "sesame", "--no-prefix-caching"]);
    for key in [None, Some("wrong")] {
        let err = client(&server, key)
            .models()
            .list()
            .await
            .expect_err("no or wrong key must fail");
        let text = err.to_string();
        assert!(text.contains("API key"), "{text}");
        let mut req = reqwest::Client::new().get(format!("{}/models", server.v1()));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let v: Value = response.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_api_key");
    }
    let models = client(&server, Some("sesame"))
        .models()
        .list()
        .await
        .unwrap();
    assert_eq!(models.data[0].id, "tiny");
    let response = client(&server, Some("sesame"))
        .chat()
        .create(greedy_request(3))
        .await
        .unwrap();
    assert_eq!(response.usage.clone().unwrap().completion_tokens, 3);
    let again = client(&server, Some("sesame"))
        .chat()
        .create(greedy_request(3))
        .await
        .unwrap();
    assert_eq!(
        again.choices[0].message.content,
        response.choices[0].message.content
    );
    let prompt = response.usage.unwrap().prompt_tokens as f64;
    assert_eq!(
        metric(&server.base, "vlm:prefix_cache_hits_total").await,
        0.0
    );
    assert_eq!(
        metric(&server.base, "vlm:prefix_cache_queries_total").await,
        2.0 * prompt
    );
    assert_eq!(
        metric(&server.base, "vlm:prompt_tokens_total").await,
        2.0 * prompt
    );
    // Health and metrics stay open for probes.
    assert_eq!(
        reqwest::get(format!("{}/health", server.base))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{}/metrics", server.base))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let server = Server::start(MODEL_DIR, &[]);
    let body = json!({
        "model": "tiny",
        "stream": true,
        "max_tokens": 40,
        "ignore_eos": true,
        "messages": [{"role": "user", "content": "count"}],
    });
    let mut bytes = stream_chat(&server, &body).await.bytes_stream();
    let first = bytes.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("data: "));
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(server.pid(), libc::SIGTERM) }, 0);
    let mut rest = String::new();
    while let Some(chunk) = bytes.next().await {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(
        rest.contains("\"finish_reason\":\"length\""),
        "the request finished: {rest}"
    );
    assert!(rest.trim_end().ends_with("data: [DONE]"));
    let status = server.wait(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
}
