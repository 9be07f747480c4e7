/// lmms-eval's binary judge prompt (`llm_judge/prompt.py` `BINARY_JUDGE_PROMPT`), its
/// `{question}`, `{answer}`, `{prediction}`, `{positive}`, `{negative}` filled in by
/// [`binary_judge_prompt`].
const BINARY_JUDGE_PROMPT: &str = "You are a strict evaluator assessing answer correctness. You must output {positive} for fully correct answers and {negative} for any other case.\n\n# Input\nQuestion:\n```\n{question}\n```\nGround Truth Answer:\n```\n{answer}\n```\nModel Prediction:\n```\n{prediction}\n```\n\n# Evaluation Rules\n- The model prediction may contain the reasoning process, you should spot the final answer from it.\n- For multiple-choice questions: Score {positive} if the predicted answer matches the ground truth answer, it can be directly in option letters or the content of the options.\n- For open-ended questions:\n  * Score {positive} if the prediction matches the answer semantically, it can be in different format.\n  * Score {negative} for partially correct answers or answers with extra incorrect information, even if the reasoning process is correct.\n- Ignore minor differences in formatting, capitalization, or spacing since the model may explain in a different way.\n- Treat numerical answers as correct if they match within reasonable precision\n- For questions requiring units, both value and unit must be correct\n\n# Strict Output format\n{positive} or {negative}";

/// The prompt for one open question: lmms-eval's `construct_prompt` question (no
/// instructions), the answer, and the model's response.
pub fn binary_judge_prompt(question: &str, answer: &str, prediction: &str) -> String {
    let question = format!("{question}\n\n");
    let fields = [
        ("question", question.as_str()),
        ("answer", answer),
        ("prediction", prediction),
        ("positive", "1"),
        ("negative", "0"),
    ];
    // `str.format`: every placeholder filled in one pass (a value's own braces stay).
    let mut out = String::with_capacity(BINARY_JUDGE_PROMPT.len() + question.len());
    let mut rest = BINARY_JUDGE_PROMPT;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').and_then(|close| {
            fields
                .iter()
                .find(|(k, _)| *k == &after[..close])
                .map(|f| (close, f.1))
        }) {
            Some((close, value)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `ResponseParser.parse_binary_response(reply, "0/1")`: correct when the lowered reply
/// contains `1` (so also `10`, `[1]`, `score: 1`).
pub fn judged_correct(reply: &str) -> bool {
    crate::python::py_lower(crate::python::py_strip(reply)).contains('1')
}

/// The version results.json records.
pub fn prompt_version() -> String {
    crate::judge::prompt_version("lmms-eval-0.7.3-binary-judge", BINARY_JUDGE_PROMPT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_is_filled_and_the_reply_read_as_lmms_eval_reads_it() {
        // Python's str.format with no escaped braces: plain replacement is the same.
        assert!(!BINARY_JUDGE_PROMPT.contains("{{"));
        let p = binary_judge_prompt("How many?", "12", "There are 12.");
        assert!(p.contains("Question:\n```\nHow many?\n\n\n```"), "{p}");
        assert!(p.contains("Ground Truth Answer:\n```\n12\n```"));
        assert!(p.contains("Model Prediction:\n```\nThere are 12.\n```"));
        assert!(p.ends_with("1 or 0"));
        // A response quoting a placeholder keeps it.
        let q = binary_judge_prompt("Q", "{prediction}", "say {positive}");
        assert!(
            q.contains("```\n{prediction}\n```") && q.contains("say {positive}"),
            "{q}"
        );
        assert!(judged_correct(" 1\n") && judged_correct("Score: 10"));
        assert!(!judged_correct("0") && !judged_correct("correct"));
    }
}
