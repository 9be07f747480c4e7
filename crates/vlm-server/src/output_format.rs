//! Structured outputs as clients ask for them: OpenAI's `response_format` (`text`,
//! `json_object`, `json_schema`) and vLLM's `structured_outputs` (`json`, `regex`,
//! `choice`, `grammar`, `json_object`), read into the engine's [`OutputFormat`] with a 400
//! naming the field for anything else.

use serde_json::Value;
use vlm_engine::{Engine, Grammar, OutputFormat};

use crate::error::ApiError;

/// A format and the request field that asked for it (named in its errors).
pub type Requested = (OutputFormat, &'static str);

/// The format a request asks for, if any. Both fields at once is a 400: they would compete.
pub fn requested_format(
    response_format: Option<&Value>,
    structured_outputs: Option<&Value>,
) -> Result<Option<Requested>, ApiError> {
    let from_response = response_format
        .map(read_response_format)
        .transpose()?
        .flatten();
    let from_vllm = structured_outputs
        .map(read_structured_outputs)
        .transpose()?;
    match (from_response, from_vllm) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give either response_format or structured_outputs, not both",
        )
        .with_param("structured_outputs")),
        (Some(format), None) => Ok(Some((format, "response_format"))),
        (None, Some(format)) => Ok(Some((format, "structured_outputs"))),
        (None, None) => Ok(None),
    }
}

/// Compiles the format for the engine's vocabulary (costly for a large schema: call it off
/// the async workers); a bad one is a 400 naming the field that gave it.
pub fn compile(
    engine: &Engine,
    requested: Option<&Requested>,
) -> Result<Option<Grammar>, ApiError> {
    requested
        .map(|(format, field)| {
            engine
                .compile_format(format)
                .map_err(|e| ApiError::from(e).with_param(*field))
        })
        .transpose()
}

fn read_response_format(value: &Value) -> Result<Option<OutputFormat>, ApiError> {
    let bad = |message: String, param: &str| {
        Err(ApiError::bad_request(message).with_param(format!("response_format{param}")))
    };
    let Some(object) = value.as_object() else {
        return bad("response_format must be an object".into(), "");
    };
    match object.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(OutputFormat::JsonObject)),
        Some("json_schema") => {
            let Some(spec) = object.get("json_schema").and_then(Value::as_object) else {
                return bad(
                    "response_format of type json_schema needs a json_schema object".into(),
                    ".json_schema",
                );
            };
            match spec.get("schema") {
                Some(schema) => Ok(Some(OutputFormat::JsonSchema(schema.clone()))),
                None => bad(
                    "response_format.json_schema needs its schema".into(),
                    ".json_schema.schema",
                ),
            }
        }
        Some(other) => bad(
            format!(
                "response_format type {other:?} is not supported; use \"text\", \"json_object\" or \"json_schema\""
            ),
            ".type",
        ),
        None => bad(
            "response_format needs a type: \"text\", \"json_object\" or \"json_schema\"".into(),
            ".type",
        ),
    }
}

/// vLLM's `structured_outputs`: exactly one of its constraint fields.
fn read_structured_outputs(value: &Value) -> Result<OutputFormat, ApiError> {
    let bad =
        |message: String| Err(ApiError::bad_request(message).with_param("structured_outputs"));
    let Some(object) = value.as_object() else {
        return bad("structured_outputs must be an object".into());
    };
    let mut formats = Vec::new();
    for (key, field) in object {
        let format = match (key.as_str(), field) {
            (_, Value::Null) | ("json_object", Value::Bool(false)) => continue,
            ("json", Value::String(text)) => match serde_json::from_str(text) {
                Ok(schema) => OutputFormat::JsonSchema(schema),
                Err(e) => return bad(format!("structured_outputs.json is not JSON: {e}")),
            },
            ("json", schema) => OutputFormat::JsonSchema(schema.clone()),
            ("json_object", Value::Bool(true)) => OutputFormat::JsonObject,
            ("regex", Value::String(regex)) => OutputFormat::Regex(regex.clone()),
            ("grammar", Value::String(grammar)) => OutputFormat::Lark(grammar.clone()),
            ("choice", Value::Array(items)) => {
                let choices: Option<Vec<String>> = items
                    .iter()
                    .map(|c| c.as_str().map(str::to_string))
                    .collect();
                match choices {
                    Some(choices) => OutputFormat::Choice(choices),
                    None => return bad("structured_outputs.choice must be a list of strings".into()),
                }
            }
            ("json_object" | "regex" | "grammar" | "choice", _) => {
                return bad(format!("structured_outputs.{key} has the wrong type"))
            }
            (other, _) => {
                return bad(format!(
                    "structured_outputs.{other} is not supported; give one of json, regex, choice, grammar (Lark) or json_object"
                ))
            }
        };
        formats.push(format);
    }
    match formats.len() {
        1 => Ok(formats.remove(0)),
        0 => bad("structured_outputs names no constraint; give one of json, regex, choice, grammar or json_object".into()),
        _ => bad("structured_outputs may give only one of json, regex, choice, grammar and json_object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(response: Option<Value>, vllm: Option<Value>) -> Result<Option<OutputFormat>, String> {
        requested_format(response.as_ref(), vllm.as_ref())
            .map(|r| r.map(|(format, _)| format))
            .map_err(|e| format!("{} [{}]", e.message, e.param.unwrap_or_default()))
    }

    #[test]
    fn response_formats() {
        assert_eq!(read(None, None), Ok(None));
        assert_eq!(read(Some(json!({"type": "text"})), None), Ok(None));
        assert_eq!(
            read(Some(json!({"type": "json_object"})), None),
            Ok(Some(OutputFormat::JsonObject))
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        assert_eq!(
            read(
                Some(
                    json!({"type": "json_schema", "json_schema": {"name": "A", "schema": schema, "strict": true}})
                ),
                None
            ),
            Ok(Some(OutputFormat::JsonSchema(schema)))
        );
        let err = read(
            Some(json!({"type": "json_schema", "json_schema": {"name": "A"}})),
            None,
        );
        assert!(err
            .unwrap_err()
            .ends_with("[response_format.json_schema.schema]"));
        let err = read(Some(json!({"type": "structural_tag"})), None).unwrap_err();
        assert!(err.contains("\"structural_tag\" is not supported"), "{err}");
        assert!(read(Some(json!("json")), None).is_err());
        assert!(read(Some(json!({})), None).is_err());
    }

    #[test]
    fn vllm_structured_outputs() {
        assert_eq!(
            read(None, Some(json!({"regex": "[a-z]+"}))),
            Ok(Some(OutputFormat::Regex("[a-z]+".into())))
        );
        assert_eq!(
            read(None, Some(json!({"choice": ["a", "b"], "json": null}))),
            Ok(Some(OutputFormat::Choice(vec!["a".into(), "b".into()])))
        );
        assert_eq!(
            read(None, Some(json!({"json": "{\"type\": \"string\"}"}))),
            Ok(Some(OutputFormat::JsonSchema(json!({"type": "string"}))))
        );
        assert_eq!(
            read(None, Some(json!({"json_object": true}))),
            Ok(Some(OutputFormat::JsonObject))
        );
        assert_eq!(
            read(None, Some(json!({"grammar": "start: \"a\""}))),
            Ok(Some(OutputFormat::Lark("start: \"a\"".into())))
        );
        for bad in [
            json!({}),
            json!({"regex": "a", "choice": ["a"]}),
            json!({"choice": [1]}),
            json!({"regex": 3}),
            json!({"json": "{not json"}),
            json!({"structural_tag": "x"}),
            json!([]),
        ] {
            let err = read(None, Some(bad.clone())).unwrap_err();
            assert!(err.ends_with("[structured_outputs]"), "{bad}: {err}");
        }
        let both = read(
            Some(json!({"type": "json_object"})),
            Some(json!({"regex": "a"})),
        );
        assert!(both.unwrap_err().contains("not both"));
        // A text response_format beside structured_outputs is fine.
        assert!(read(Some(json!({"type": "text"})), Some(json!({"regex": "a"}))).is_ok());
    }
}
