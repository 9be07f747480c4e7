//! Removing reasoning blocks from responses before scoring, as lmms-eval's evaluator does
//! (`api/reasoning.py`, on by default from its command line): plain, case-sensitive
//! substring matching, no regex.

use crate::python::py_strip;

/// lmms-eval's default `--reasoning_tags`.
pub fn default_tags() -> Vec<(String, String)> {
    vec![
        ("<think>".into(), "</think>".into()),
        ("<analysis>".into(), "</analysis>".into()),
    ]
}

/// For each tag pair in turn: cut every `start ... first end after it` block; then, if an
/// end tag is left with no start tag, keep only what follows the last end tag. An opening
/// tag that is never closed stays. The result is stripped of surrounding whitespace.
pub fn strip_reasoning_tags(text: &str, tags: &[(String, String)]) -> String {
    let mut result = text.to_string();
    for (start_tag, end_tag) in tags {
        while result.contains(start_tag.as_str()) && result.contains(end_tag.as_str()) {
            let Some(start) = result.find(start_tag.as_str()) else {
                break;
            };
            let Some(end) = result[start..].find(end_tag.as_str()).map(|e| e + start) else {
                break;
            };
            result = format!("{}{}", &result[..start], &result[end + end_tag.len()..]);
        }
        if result.contains(end_tag.as_str()) && !result.contains(start_tag.as_str()) {
            if let Some((_, after)) = result.rsplit_once(end_tag.as_str()) {
                result = after.to_string();
            }
        }
    }
    py_strip(&result).to_string()
}

/// Why a `--reasoning-tags` value was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReasoningTagsError {
    #[error("--reasoning-tags must be `none` or JSON like [[\"<think>\", \"</think>\"]]: {0}")]
    NotJsonPairs(serde_json::Error),
    #[error("--reasoning-tags: a tag cannot be empty")]
    EmptyTag,
}

/// `--reasoning-tags`: `none`, or JSON pairs like `[["<think>", "</think>"]]`.
pub fn parse_tags(spec: &str) -> Result<Vec<(String, String)>, ReasoningTagsError> {
    if spec.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let tags = serde_json::from_str::<Vec<(String, String)>>(spec)
        .map_err(ReasoningTagsError::NotJsonPairs)?;
    if tags.iter().any(|(a, b)| a.is_empty() || b.is_empty()) {
        return Err(ReasoningTagsError::EmptyTag);
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(s: &str) -> String {
        strip_reasoning_tags(s, &default_tags())
    }

    #[test]
    fn matches_lmms_eval_rule() {
        // Expected values from lmms_eval.api.reasoning.strip_reasoning_tags in python3.
        assert_eq!(strip("<think>hmm</think> Yes"), "Yes");
        assert_eq!(strip("<think>a</think>B<think>c</think> D "), "B D");
        assert_eq!(strip("reasoning only closed</think>\nA"), "A");
        assert_eq!(strip("x</think>y</think>z"), "z");
        assert_eq!(
            strip("<think>never closed, Yes"),
            "<think>never closed, Yes"
        );
        assert_eq!(strip("</think>a<think>b"), "</think>a<think>b");
        assert_eq!(strip("<THINK>case</THINK> No"), "<THINK>case</THINK> No");
        assert_eq!(strip("<analysis>x</analysis><think>y</think> (B)"), "(B)");
        assert_eq!(strip("  plain answer\n"), "plain answer");
        assert_eq!(
            strip_reasoning_tags("<think>a</think>b", &[]),
            "<think>a</think>b"
        );
    }

    #[test]
    fn tag_flag() {
        assert!(parse_tags("none").unwrap().is_empty());
        assert_eq!(
            parse_tags(r#"[["<r>", "</r>"]]"#).unwrap(),
            vec![("<r>".to_string(), "</r>".to_string())]
        );
        assert!(parse_tags("<think>").is_err());
        assert!(parse_tags(r#"[["<think>", ""]]"#).is_err());
    }
}
