//! Python `str` methods whose edge cases differ from Rust's: scoring code ported from
//! lmms-eval must see the same characters as whitespace.

/// `str.isspace()` per character: Unicode White_Space plus the ASCII separators
/// U+001C..U+001F that Python also counts.
pub fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// `str.lower()`.
pub fn py_lower(s: &str) -> String {
    s.to_lowercase()
}

/// `str.split()` with no argument.
pub fn py_split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(py_isspace).filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_pythons() {
        assert_eq!(py_strip("\u{1f} a \u{a0}\n"), "a");
        assert_eq!(
            py_split_whitespace(" a\u{1c}b  c ").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
