//! `ast.literal_eval` for what MMMU stores in its `options` column: a Python list of
//! string literals, e.g. `['$6', "It's 7", '\u00b0C']`.

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("not a Python list of strings at character {at}: {what}")]
pub struct LiteralError {
    pub at: usize,
    pub what: &'static str,
}

pub fn parse_string_list(src: &str) -> Result<Vec<String>, LiteralError> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let err = |at, what| LiteralError { at, what };
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if chars.get(i) != Some(&'[') {
        return Err(err(i, "expected '['"));
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        skip_ws(&mut i);
        match chars.get(i) {
            Some(']') => {
                i += 1;
                break;
            }
            Some('\'') | Some('"') => {}
            _ => return Err(err(i, "expected a string or ']'")),
        }
        let quote = chars[i];
        i += 1;
        let mut s = String::new();
        loop {
            let Some(&c) = chars.get(i) else {
                return Err(err(i, "unterminated string"));
            };
            i += 1;
            if c == quote {
                break;
            }
            if c != '\\' {
                s.push(c);
                continue;
            }
            let Some(&e) = chars.get(i) else {
                return Err(err(i, "unterminated escape"));
            };
            i += 1;
            let hex = |i: &mut usize, n: usize| -> Result<char, LiteralError> {
                let digits: String = chars
                    .get(*i..*i + n)
                    .ok_or(err(*i, "short escape"))?
                    .iter()
                    .collect();
                *i += n;
                u32::from_str_radix(&digits, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or(err(*i, "bad escape"))
            };
            match e {
                '\\' | '\'' | '"' => s.push(e),
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                '0' => s.push('\0'),
                'a' => s.push('\u{7}'),
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                'v' => s.push('\u{b}'),
                '\n' => {}
                'x' => s.push(hex(&mut i, 2)?),
                'u' => s.push(hex(&mut i, 4)?),
                'U' => s.push(hex(&mut i, 8)?),
                // Python keeps unknown escapes as written.
                other => {
                    s.push('\\');
                    s.push(other);
                }
            }
        }
        out.push(s);
        skip_ws(&mut i);
        match chars.get(i) {
            Some(',') => i += 1,
            Some(']') => {}
            _ => return Err(err(i, "expected ',' or ']'")),
        }
    }
    skip_ws(&mut i);
    if i != chars.len() {
        return Err(err(i, "trailing characters"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_of_strings() {
        assert_eq!(
            parse_string_list(r#"['$6', "It's 7", '\u00b0C', 'a\\b', 'x\'y']"#).unwrap(),
            vec!["$6", "It's 7", "°C", "a\\b", "x'y"]
        );
        assert_eq!(parse_string_list("[]").unwrap(), Vec::<String>::new());
        assert_eq!(parse_string_list("['a',]").unwrap(), vec!["a"]);
        assert!(parse_string_list("['a'").is_err());
        assert!(parse_string_list("[1, 2]").is_err());
    }
}
