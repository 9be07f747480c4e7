//! Chat templates rendered with minijinja the way transformers renders them with Jinja2:
//! `trim_blocks` and `lstrip_blocks` on, Python string methods available, `raise_exception`
//! and `strftime_now` defined, and transformers' `{% generation %}` markers (which only tag
//! assistant spans for training masks) removed.

use minijinja::{context, Environment, Error, ErrorKind, Value};
use serde::Serialize;

use crate::error::{ModelError, Result};

/// A content part as transformers' processors pass it to templates.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TemplatePart {
    Image,
    Text { text: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct TemplateMessage {
    pub role: String,
    pub content: Vec<TemplatePart>,
}

/// The special-token strings templates may refer to (`bos_token`, `eos_token`, ...).
#[derive(Debug, Clone, Default, Serialize)]
struct SpecialTokens {
    bos_token: Option<String>,
    eos_token: Option<String>,
    unk_token: Option<String>,
    pad_token: Option<String>,
}

pub struct ChatTemplate {
    env: Environment<'static>,
    specials: SpecialTokens,
}

const NAME: &str = "chat";

fn strip_generation_markers(source: &str) -> String {
    // `{% generation %}`, `{%- endgeneration -%}`, ... in any spacing.
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let Some(len) = rest[start..].find("%}") else {
            break;
        };
        let tag = &rest[start + 2..start + len];
        let word = tag.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        out.push_str(&rest[..start]);
        if word != "generation" && word != "endgeneration" {
            out.push_str(&rest[start..start + len + 2]);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

fn strftime_now(format: String) -> String {
    // Templates use it for "today's date" system prompts; UTC, like a server would.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    format
        .replace("%Y", &y.to_string())
        .replace("%m", &format!("{m:02}"))
        .replace("%d", &format!("{d:02}"))
        .replace("%B", MONTHS[(m - 1) as usize])
        .replace("%b", &MONTHS[(m - 1) as usize][..3])
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A special token in tokenizer_config.json is a string or an AddedToken object.
fn token_string(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        obj => obj.get("content")?.as_str().map(str::to_string),
    }
}

impl ChatTemplate {
    /// `tokenizer_config` supplies `bos_token` and friends when present.
    pub fn new(source: &str, tokenizer_config: Option<&serde_json::Value>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(NAME, strip_generation_markers(source))
            .map_err(|e| ModelError::ChatTemplate(format!("does not compile: {}", one_line(&e))))?;
        let specials = tokenizer_config
            .map(|c| SpecialTokens {
                bos_token: token_string(c.get("bos_token")),
                eos_token: token_string(c.get("eos_token")),
                unk_token: token_string(c.get("unk_token")),
                pad_token: token_string(c.get("pad_token")),
            })
            .unwrap_or_default();
        Ok(Self { env, specials })
    }

    pub fn render(
        &self,
        messages: &[TemplateMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| ModelError::ChatTemplate(e.to_string()))?;
        let s = &self.specials;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => s.bos_token,
                eos_token => s.eos_token,
                unk_token => s.unk_token,
                pad_token => s.pad_token,
            })
            .map_err(|e| ModelError::ChatTemplate(format!("rendering failed: {}", one_line(&e))))
    }
}

/// minijinja's error on one line: what is wrong and where (its `{:#}` form adds a
/// multi-line source excerpt that breaks one-line logs and error messages).
fn one_line(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    if let Some(line) = e.line() {
        if !text.contains(&format!(":{line})")) {
            text.push_str(&format!(" (line {line})"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(parts: Vec<TemplatePart>) -> TemplateMessage {
        TemplateMessage {
            role: "user".into(),
            content: parts,
        }
    }

    #[test]
    fn generation_markers_are_removed_in_any_spacing() {
        assert_eq!(
            strip_generation_markers(
                "a{% generation %}b{%- endgeneration -%}c{% if x %}d{% endif %}"
            ),
            "abc{% if x %}d{% endif %}"
        );
    }

    #[test]
    fn python_methods_and_trim_blocks() {
        let t = ChatTemplate::new(
            "{% for m in messages %}\n{{ m.role.upper() }}:{% for p in m.content %}{{ p.text | default('<img>') }}{% endfor %}\n{% endfor %}",
            None,
        )
        .unwrap();
        let out = t
            .render(
                &[user(vec![
                    TemplatePart::Image,
                    TemplatePart::Text { text: "hi".into() },
                ])],
                true,
            )
            .unwrap();
        // Jinja2 (trim_blocks, lstrip_blocks) renders this as "USER:<img>hi".
        assert_eq!(out, "USER:<img>hi");
    }

    #[test]
    fn raise_exception_surfaces_as_an_error() {
        let t = ChatTemplate::new("{{ raise_exception('only user turns') }}", None).unwrap();
        let err = t.render(&[], false).unwrap_err().to_string();
        assert!(err.contains("only user turns"), "{err}");
        let err = ChatTemplate::new("{% for %}", None)
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains('\n') && err.contains("chat:1"), "{err}");
    }

    #[test]
    fn special_tokens_from_added_token_objects() {
        let cfg = serde_json::json!({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"});
        let t = ChatTemplate::new("{{ bos_token }}|{{ eos_token }}", Some(&cfg)).unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "<s>|</s>");
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
