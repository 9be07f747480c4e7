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

/// `str.upper()`.
pub fn py_upper(s: &str) -> String {
    s.to_uppercase()
}

/// `c.isupper()` for one character: cased and uppercase (titlecase letters are not).
pub fn py_isupper(c: char) -> bool {
    c.is_uppercase() && !is_titlecase(c)
}

/// The four Unicode titlecase digraphs Python's `capitalize` and `istitle` know (`ǅ`, `ǈ`,
/// `ǋ`, `ǲ`), by their upper, title and lower forms.
const TITLECASE_DIGRAPHS: [[char; 3]; 4] = [
    ['\u{1c4}', '\u{1c5}', '\u{1c6}'],
    ['\u{1c7}', '\u{1c8}', '\u{1c9}'],
    ['\u{1ca}', '\u{1cb}', '\u{1cc}'],
    ['\u{1f1}', '\u{1f2}', '\u{1f3}'],
];

fn is_titlecase(c: char) -> bool {
    TITLECASE_DIGRAPHS.iter().any(|d| d[1] == c)
        || ('\u{1f88}'..='\u{1faf}').contains(&c) && (c as u32 & 0xf) >= 8
        || matches!(c, '\u{1fbc}' | '\u{1fcc}' | '\u{1ffc}')
}

/// Python's title case of one character: its upper case with all but the first character
/// lowered (`ß` -> `Ss`, `ﬁ` -> `Fi`), except where Unicode's title mapping says otherwise:
/// the digraphs, `ŉ`, Georgian (no title case) and Greek with ypogegrammeni.
fn py_title_char(c: char) -> String {
    let rule = |c: char| -> String {
        let upper: Vec<char> = c.to_uppercase().collect();
        let mut out: String = upper[..1].iter().collect();
        out.extend(upper[1..].iter().flat_map(|u| u.to_lowercase()));
        out
    };
    if let Some(d) = TITLECASE_DIGRAPHS.iter().find(|d| d.contains(&c)) {
        return d[1].to_string();
    }
    match c {
        '\u{149}' => "\u{2bc}N".into(),
        '\u{10d0}'..='\u{10ff}' => c.to_string(),
        '\u{1f80}'..='\u{1faf}' => {
            char::from_u32(c as u32 | 8).map_or_else(|| rule(c), String::from)
        }
        '\u{1fb3}' | '\u{1fbc}' => "\u{1fbc}".into(),
        '\u{1fc3}' | '\u{1fcc}' => "\u{1fcc}".into(),
        '\u{1ff3}' | '\u{1ffc}' => "\u{1ffc}".into(),
        '\u{1fb2}' | '\u{1fb4}' | '\u{1fb7}' | '\u{1fc2}' | '\u{1fc4}' | '\u{1fc7}'
        | '\u{1ff2}' | '\u{1ff4}' | '\u{1ff7}' => {
            // The iota stays a combining ypogegrammeni.
            let mut out = rule(c);
            if out.ends_with('\u{3b9}') {
                out.pop();
                out.push('\u{345}');
            }
            out
        }
        _ => rule(c),
    }
}

/// `str.capitalize()` (Python 3.8+): the first character in title case, the rest lower.
pub fn py_capitalize(s: &str) -> String {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    // The rest is lowered in context (a final sigma looks at the first character too).
    let lowered = s.to_lowercase();
    let first_lowered: String = first.to_lowercase().collect();
    let rest = lowered
        .strip_prefix(&first_lowered)
        .map_or_else(|| chars.as_str().to_lowercase(), str::to_string);
    py_title_char(first) + &rest
}

/// `str.split()` with no argument.
pub fn py_split_whitespace(s: &str) -> impl Iterator<Item = &str> {
    s.split(py_isspace).filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_is_pythons() {
        // Values printed by python3.
        assert_eq!(py_capitalize("what is the DVD?"), "What is the dvd?");
        assert_eq!(py_capitalize("ǆemal"), "ǅemal");
        assert_eq!(py_capitalize("ßA"), "Ssa");
        assert_eq!(py_capitalize("ΟΣ"), "Ος");
        assert_eq!(py_capitalize("ﬃx"), "Ffix");
        // Every character whose title case is not the simple rule, against python3.11's
        // `c.capitalize()` (code points of the result).
        for (c, want) in [
            (0x149, &[0x2bc, 0x4e][..]),
            (0x1c6, &[0x1c5]),
            (0x1c4, &[0x1c5]),
            (0x10d0, &[0x10d0]),
            (0x1f80, &[0x1f88]),
            (0x1f8f, &[0x1f8f]),
            (0x1fa3, &[0x1fab]),
            (0x1fb2, &[0x1fba, 0x345]),
            (0x1fb3, &[0x1fbc]),
            (0x1fb7, &[0x391, 0x342, 0x345]),
            (0x1ffc, &[0x1ffc]),
            (0x587, &[0x535, 0x582]),
        ] {
            let got: Vec<u32> = py_capitalize(&char::from_u32(c).unwrap().to_string())
                .chars()
                .map(|c| c as u32)
                .collect();
            assert_eq!(got, want, "U+{c:04X}");
        }
        assert_eq!(py_capitalize(""), "");
        assert!(py_isupper('A') && py_isupper('Ä') && !py_isupper('ǅ') && !py_isupper('a'));
        assert!(!py_isupper('1'));
        assert_eq!(py_upper("straße").chars().count(), 7);
    }

    #[test]
    fn whitespace_is_pythons() {
        assert_eq!(py_strip("\u{1f} a \u{a0}\n"), "a");
        assert_eq!(
            py_split_whitespace(" a\u{1c}b  c ").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
