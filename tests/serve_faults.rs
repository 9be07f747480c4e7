//! `vlm-serve` when one request's work fails: that request alone gets a server error (500,
//! or an error event when streaming), the requests in flight with it finish normally with
//! their usual answers, image placeholder tokens typed into `/v1/completions` are a 400, and
//! the server stays healthy.

mod common;

use common::{post_json as post, Server};
use serde_json::{json, Value};

/// Token id the hidden fault hook fails steps on (`--fail-steps-with-token`).
const POISON: u32 = 77;

fn completion(prompt: Value, stream: bool) -> Value {
    json!({
        "model": "tiny",
        "prompt": prompt,
        "max_tokens": 12,
        "temperature": 0,
        "ignore_eos": true,
        "stream": stream,
    })
}

fn normal_prompt(salt: u32) -> Value {
    json!((0..24)
        .map(|i| 3 + (i * 7 + salt * 13) % 200)
        .collect::<Vec<u32>>())
}

async fn health(server: &Server) -> u16 {
    reqwest::get(format!("{}/health", server.base))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_request_fails_alone_and_the_server_stays_healthy() {
    let server = Server::start("llava-tiny", &["--fail-steps-with-token", "77"]);
    let url = format!("{}/completions", server.v1());
    // Each request's answer alone.
    let mut expected = Vec::new();
    for salt in 0..3 {
        let (status, body) = post(&url, &completion(normal_prompt(salt), false)).await;
        assert_eq!(status, 200, "{body}");
        expected.push(body["choices"][0]["text"].clone());
    }
    // The poisoned request in flight together with the others.
    let poisoned = completion(json!([1, 40, POISON, 41, 42]), false);
    let mut tasks = Vec::new();
    for salt in 0..3 {
        let (url, body) = (url.clone(), completion(normal_prompt(salt), false));
        tasks.push(tokio::spawn(async move { post(&url, &body).await }));
    }
    let failing = {
        let url = url.clone();
        tokio::spawn(async move { post(&url, &poisoned).await })
    };
    let streamed = reqwest::Client::new()
        .post(&url)
        .json(&completion(json!([1, POISON, 50]), true))
        .send()
        .await
        .unwrap();
    let (status, body) = failing.await.unwrap();
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("injected fault"),
        "{body}"
    );
    for (salt, task) in tasks.into_iter().enumerate() {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["finish_reason"], "length", "{body}");
        assert_eq!(body["choices"][0]["text"], expected[salt], "request {salt}");
    }
    // A failed stream ends with an error event and no [DONE].
    let text = streamed.text().await.unwrap();
    assert!(
        text.contains("\"error\"") && text.contains("injected fault"),
        "{text}"
    );
    assert!(!text.contains("[DONE]"), "{text}");
    assert_eq!(health(&server).await, 200);
    let (status, body) = post(&url, &completion(normal_prompt(1), false)).await;
    assert_eq!((status, &body["choices"][0]["text"]), (200, &expected[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn image_placeholder_tokens_in_completions_are_a_400_that_costs_no_one() {
    for model in ["llava-tiny", "qwen2-vl-tiny"] {
        let server = Server::start(model, &[]);
        let url = format!("{}/completions", server.v1());
        let (_, alone) = post(&url, &completion(normal_prompt(0), false)).await;
        let other = {
            let (url, body) = (url.clone(), completion(normal_prompt(0), false));
            tokio::spawn(async move { post(&url, &body).await })
        };
        let placeholder = if model == "llava-tiny" {
            "<image> hi"
        } else {
            "<|image_pad|> hi"
        };
        for prompt in [json!(placeholder), json!(["ok", placeholder])] {
            let (status, body) = post(&url, &completion(prompt, false)).await;
            assert_eq!(status, 400, "{model}: {body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("image placeholder"),
                "{model}: {body}"
            );
        }
        let (status, body) = other.await.unwrap();
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["choices"][0]["text"], alone["choices"][0]["text"]);
        assert_eq!(health(&server).await, 200);
    }
}
