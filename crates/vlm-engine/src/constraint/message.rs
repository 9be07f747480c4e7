//! llguidance's error messages as one line for a client's 400.

/// llguidance's messages on one line (a regex error spans several), at most 400 characters.
pub(crate) fn one_line(message: &str) -> String {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(400) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}
