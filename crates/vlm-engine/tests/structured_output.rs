//! Structured outputs on a real (tiny, random) model: every completion parses and follows
//! its format, whatever the sampling; constrained and unconstrained requests share steps
//! without changing the unconstrained ones' tokens; bad formats are refused up front.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};
use vlm_core::{FinishReason, SamplingParams};
use vlm_engine::{Completion, Engine, EngineConfig, GenerationRequest, OutputFormat, RequestInput};
use vlm_models::loader::Snapshot;
use vlm_models::{LoadOptions, VlmModel};

fn engine(fixture: &str) -> Engine {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(fixture);
    let model =
        Arc::new(VlmModel::load(Snapshot::open(dir).unwrap(), &LoadOptions::default()).unwrap());
    let config = EngineConfig {
        kv_cache_gb: 0.05,
        ..EngineConfig::default()
    };
    Engine::start(model, config).unwrap()
}

fn request(
    text: &str,
    sampling: SamplingParams,
    format: Option<OutputFormat>,
) -> GenerationRequest {
    GenerationRequest {
        input: RequestInput::Text(text.into()),
        sampling,
        pixel_budget: Default::default(),
        format,
    }
}

/// A schema as Pydantic writes it (title, `$defs`, `$ref`, `additionalProperties: false`),
/// with bounds so a random model finishes.
fn person_schema() -> Value {
    json!({
        "$defs": {"Mood": {"enum": ["happy", "sad"], "title": "Mood", "type": "string"}},
        "additionalProperties": false,
        "properties": {
            "name": {"maxLength": 6, "title": "Name", "type": "string"},
            "age": {"maximum": 120, "minimum": 0, "title": "Age", "type": "integer"},
            "mood": {"$ref": "#/$defs/Mood"},
            "tags": {"items": {"type": "boolean"}, "maxItems": 2, "title": "Tags", "type": "array"}
        },
        "required": ["name", "age", "mood", "tags"],
        "title": "Person",
        "type": "object"
    })
}

fn check_person(text: &str) {
    let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let object = value.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["age", "mood", "name", "tags"], "{text}");
    assert!(
        object["name"].as_str().unwrap().chars().count() <= 6,
        "{text}"
    );
    let age = object["age"].as_i64().unwrap();
    assert!((0..=120).contains(&age), "{text}");
    assert!(
        ["happy", "sad"].contains(&object["mood"].as_str().unwrap()),
        "{text}"
    );
    let tags = object["tags"].as_array().unwrap();
    assert!(
        tags.len() <= 2 && tags.iter().all(Value::is_boolean),
        "{text}"
    );
}

fn complete(engine: &Engine, request: GenerationRequest) -> Vec<Completion> {
    let (completions, _) = engine.submit(request).unwrap().collect_blocking();
    completions
}

#[test]
fn constrained_outputs_follow_their_format_under_any_sampling() {
    let engine = engine("qwen2-vl-tiny");
    let schema = OutputFormat::JsonSchema(person_schema());
    let samplings = [
        SamplingParams::greedy(1500),
        SamplingParams {
            temperature: 1.0,
            seed: Some(7),
            n: 3,
            max_tokens: 1500,
            ..SamplingParams::default()
        },
        SamplingParams {
            temperature: 0.8,
            top_p: 0.9,
            repetition_penalty: 1.3,
            min_tokens: 5,
            seed: Some(8),
            max_tokens: 1500,
            ..SamplingParams::default()
        },
    ];
    for sampling in samplings {
        for c in complete(
            &engine,
            request("Describe a person:", sampling.clone(), Some(schema.clone())),
        ) {
            assert_eq!(
                c.finish_reason,
                FinishReason::Stop,
                "{sampling:?}: {:?}",
                c.text
            );
            assert!(c.error.is_none());
            check_person(&c.text);
        }
    }

    let any_object = complete(
        &engine,
        request(
            "{",
            SamplingParams::greedy(1500),
            Some(OutputFormat::JsonObject),
        ),
    );
    let text = &any_object[0].text;
    assert!(
        serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object())
            || any_object[0].finish_reason == FinishReason::Length,
        "{text:?}"
    );

    let regex = OutputFormat::Regex("[0-9]{3}-[a-z]{2}".into());
    let sampled = SamplingParams {
        temperature: 1.0,
        seed: Some(1),
        n: 4,
        max_tokens: 50,
        ..SamplingParams::default()
    };
    for c in complete(&engine, request("code:", sampled.clone(), Some(regex))) {
        let t = c.text.as_bytes();
        assert_eq!(c.finish_reason, FinishReason::Stop);
        assert!(
            t.len() == 6
                && t[..3].iter().all(u8::is_ascii_digit)
                && t[3] == b'-'
                && t[4..].iter().all(u8::is_ascii_lowercase),
            "{:?}",
            c.text
        );
    }

    let choices = vec!["yes".to_string(), "no".into(), "a.b (c)".into()];
    for c in complete(
        &engine,
        request("ok?", sampled, Some(OutputFormat::Choice(choices.clone()))),
    ) {
        assert_eq!(c.finish_reason, FinishReason::Stop);
        assert!(choices.contains(&c.text), "{:?}", c.text);
    }

    let lark = OutputFormat::Lark("start: \"ab\" | \"cd\" NUM\nNUM: /[0-9]/".into());
    for c in complete(
        &engine,
        request("x", SamplingParams::greedy(20), Some(lark)),
    ) {
        assert!(
            ["ab", "cd0", "cd1", "cd2", "cd3", "cd4", "cd5", "cd6", "cd7", "cd8", "cd9"]
                .contains(&c.text.as_str()),
            "{:?}",
            c.text
        );
    }
}

#[test]
fn constrained_and_free_requests_share_steps_without_changing_the_free_ones() {
    let engine = engine("qwen2-vl-tiny");
    let free = |salt: usize| {
        request(
            &format!("free request number {salt}"),
            SamplingParams {
                ignore_eos: true,
                ..SamplingParams::greedy(24)
            },
            None,
        )
    };
    let alone: Vec<Vec<u32>> = (0..3)
        .map(|i| complete(&engine, free(i))[0].token_ids.clone())
        .collect();
    let streams: Vec<_> = (0..3)
        .flat_map(|i| {
            [
                engine.submit(free(i)).unwrap(),
                engine
                    .submit(request(
                        "person:",
                        SamplingParams {
                            temperature: 1.0,
                            seed: Some(i as u64),
                            max_tokens: 1500,
                            ..SamplingParams::default()
                        },
                        Some(OutputFormat::JsonSchema(person_schema())),
                    ))
                    .unwrap(),
            ]
        })
        .collect();
    for (i, stream) in streams.into_iter().enumerate() {
        let (completions, _) = stream.collect_blocking();
        if i % 2 == 0 {
            assert_eq!(
                completions[0].token_ids,
                alone[i / 2],
                "free request {}",
                i / 2
            );
        } else {
            check_person(&completions[0].text);
        }
    }
}

#[test]
fn bad_formats_are_refused_before_queueing() {
    let engine = engine("qwen2-vl-tiny");
    let refused = |format: OutputFormat| {
        let err = engine
            .submit(request("x", SamplingParams::greedy(8), Some(format)))
            .err()
            .expect("refused");
        assert!(err.is_client_error(), "{err}");
        err.to_string()
    };
    let message = refused(OutputFormat::Regex("([0-9]".into()));
    assert!(
        message.starts_with("invalid output format") && message.contains("unclosed group"),
        "{message}"
    );
    refused(OutputFormat::JsonSchema(json!({"type": "no-such-type"})));
    refused(OutputFormat::JsonSchema(json!([1, 2])));
    refused(OutputFormat::JsonSchema(
        json!({"type": "integer", "minimum": 5, "maximum": 1}),
    ));
    refused(OutputFormat::Lark("start: ( ".into()));
    refused(OutputFormat::Choice(Vec::new()));
    // Schemas are never fetched: a remote reference is an error, not a request.
    refused(OutputFormat::JsonSchema(
        json!({"$ref": "http://127.0.0.1:9/schema.json"}),
    ));
    // As deep as a request body may nest (serde_json's limit is 128): compiled or refused,
    // on a thread with the stack of a preparation thread, never a crash.
    let mut deep = Vec::new();
    for depth in [60, 126] {
        let mut schema = json!({"type": "integer"});
        for _ in 0..depth / 2 {
            schema = json!({"type": "object", "properties": {"a": schema}, "required": ["a"]});
        }
        deep.push(OutputFormat::JsonSchema(schema));
    }
    // A reference cycle with nothing in between, and a recursive (valid) tree.
    deep.push(OutputFormat::JsonSchema(
        json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
    ));
    deep.push(OutputFormat::JsonSchema(
        json!({"$defs": {"node": {"type": "object",
        "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node"}),
    ));
    // Grammar and regex text nests without a JSON limit.
    let nested = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
    deep.push(OutputFormat::Regex(nested(100_000)));
    deep.push(OutputFormat::Lark(format!(
        "start: {}",
        nested(100_000).replace('a', "\"a\"")
    )));
    for format in deep {
        let engine = &engine;
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn_scoped(scope, || {
                    let _ = engine.compile_format(&format);
                })
                .unwrap()
                .join()
                .unwrap()
        });
    }
    // The engine still serves.
    assert_eq!(
        complete(&engine, request("x", SamplingParams::greedy(3), None))[0]
            .token_ids
            .len(),
        3
    );

    // llava-tiny's vocabulary has no `{`: no JSON object can be spelled.
    let llava = self::engine("llava-tiny");
    let err = llava
        .submit(request(
            "x",
            SamplingParams::greedy(8),
            Some(OutputFormat::JsonObject),
        ))
        .err()
        .expect("refused");
    assert!(err.is_client_error());
    assert!(err.to_string().contains("vocabulary"), "{err}");
}
