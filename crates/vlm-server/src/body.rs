//! Request bodies as JSON with OpenAI-shaped errors instead of axum's plain-text 4xx
//! (422 for a wrong type, 415 for a missing content type, 413 for size).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::protocol::common::SamplingFields;

pub fn parse_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::bad_request("the request body is larger than the server accepts")
                .with_status(status)
        } else {
            ApiError::bad_request(format!(
                "could not read the request body: {}",
                r.body_text()
            ))
        }
    })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    serde_path_to_error::deserialize(&value).map_err(|e| {
        // Fields flattened into the request (the sampling fields) lose their path in serde:
        // read them alone to name the one at fault.
        let path = match e.path().to_string() {
            p if p == "." => flattened_path(&value).unwrap_or(p),
            p => p,
        };
        let inner = e.into_inner().to_string();
        // A missing field is reported at its parent; serde names it in the message.
        let param = missing_field(&inner)
            .map(|f| {
                if path == "." {
                    f
                } else {
                    format!("{path}.{f}")
                }
            })
            .unwrap_or(path);
        ApiError::bad_request(format!("invalid request: {param}: {inner}")).with_param(param)
    })
}

/// The path of the sampling field that fails to deserialize, read from the body's scalar
/// top-level fields only (the messages or prompt, which may be large, are left out).
fn flattened_path(value: &serde_json::Value) -> Option<String> {
    let scalars: serde_json::Map<String, serde_json::Value> = value
        .as_object()?
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "messages" | "prompt"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let err =
        serde_path_to_error::deserialize::<_, SamplingFields>(serde_json::Value::Object(scalars))
            .err()?;
    Some(err.path().to_string()).filter(|p| p != ".")
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Req {
        model: String,
        n: Option<u32>,
    }

    #[test]
    fn errors_name_the_problem() {
        let parse = |s: &'static str| parse_json::<Req>(Ok(Bytes::from(s)));
        assert!(
            parse(r#"{"model": "m", "extra": 1}"#).is_ok(),
            "unknown fields are ignored"
        );
        let e = parse("{").unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse(r#"{"n": 1}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("model"));
        let e = parse(r#"{"model": "m", "n": "two"}"#).unwrap_err();
        assert!(e.message.contains("invalid type"), "{}", e.message);
        assert_eq!(e.param.as_deref(), Some("n"));
        assert!(parse("[]").is_err());
    }

    #[test]
    fn a_wrong_type_in_a_flattened_sampling_field_is_named() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Flat {
            model: String,
            #[serde(flatten)]
            sampling: SamplingFields,
        }
        let e = parse_json::<Flat>(Ok(Bytes::from(
            r#"{"model": "m", "messages": [], "temperature": "hot"}"#,
        )))
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"), "{}", e.message);
    }
}
