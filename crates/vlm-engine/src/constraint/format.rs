//! The output formats a request may ask for, as the OpenAI and vLLM APIs name them.

/// What a constrained output must be.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputFormat {
    /// Any JSON object (OpenAI's `response_format: {"type": "json_object"}`).
    JsonObject,
    /// JSON valid against this schema (`json_schema`, vLLM's `structured_outputs.json`).
    JsonSchema(serde_json::Value),
    /// Text the regular expression matches whole (vLLM's `structured_outputs.regex`).
    Regex(String),
    /// Exactly one of these strings (vLLM's `structured_outputs.choice`).
    Choice(Vec<String>),
    /// Text of a Lark grammar, in llguidance's dialect (vLLM's `structured_outputs.grammar`
    /// with its guidance backend).
    Lark(String),
}

impl OutputFormat {
    /// The llguidance grammar for this format.
    pub(crate) fn grammar(&self) -> Result<llguidance::api::TopLevelGrammar, String> {
        use llguidance::api::TopLevelGrammar;
        Ok(match self {
            OutputFormat::JsonObject => TopLevelGrammar::from_json_schema(with_bounded_whitespace(
                serde_json::json!({"type": "object"}),
            )),
            OutputFormat::JsonSchema(schema) => {
                let schema = match schema {
                    serde_json::Value::Bool(true) => serde_json::json!({}),
                    serde_json::Value::Object(_) => schema.clone(),
                    serde_json::Value::Bool(false) => {
                        return Err("the schema `false` allows no output".into())
                    }
                    _ => return Err("a JSON schema must be an object".into()),
                };
                TopLevelGrammar::from_json_schema(with_bounded_whitespace(schema))
            }
            OutputFormat::Regex(regex) => TopLevelGrammar::from_regex(regex),
            OutputFormat::Choice(choices) => {
                if choices.is_empty() {
                    return Err("choice needs at least one string".into());
                }
                let alternatives: Vec<String> = choices
                    .iter()
                    .map(|c| format!("(?:{})", regex_syntax::escape(c)))
                    .collect();
                TopLevelGrammar::from_regex(&alternatives.join("|"))
            }
            OutputFormat::Lark(grammar) => TopLevelGrammar::from_lark(grammar.clone()),
        })
    }
}

/// Whitespace JSON may hold between two tokens: up to this many spaces, tabs and line
/// breaks. Unbounded (vLLM's default), a model can fill `max_tokens` with whitespace and
/// never finish its object; 20 leaves room for a line break and pretty-printing indentation
/// five levels deep.
pub const JSON_WHITESPACE: &str = r"[\x20\x0A\x0D\x09]{1,20}";

/// The schema with llguidance's whitespace option set to [`JSON_WHITESPACE`], unless it
/// sets its own options (`x-guidance`, as vLLM's guidance backend passes them on).
fn with_bounded_whitespace(mut schema: serde_json::Value) -> serde_json::Value {
    if let Some(object) = schema.as_object_mut() {
        object
            .entry("x-guidance")
            .or_insert_with(|| serde_json::json!({"whitespace_pattern": JSON_WHITESPACE}));
    }
    schema
}
