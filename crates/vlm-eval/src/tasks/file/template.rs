//! Task file templates (prompt text, target): minijinja over a row's columns, with the
//! string filters lmms-eval's prompt functions use, behaving as Python's (`strip`,
//! `capitalize`, `lower`, `upper`) plus `letter` (0 -> `A`) and `lettered` (a list as
//! `A. first\nB. second`). Undefined names are errors, trailing newlines are kept, nothing
//! is escaped.

use std::collections::BTreeMap;

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use crate::dataset::{Cell, Row};
use crate::python::{py_capitalize, py_lower, py_strip, py_upper};

/// `chr(ord("A") + index)`, as lmms-eval lettered options (past `Z` come `[`, `\`, ...).
fn letter(index: i64) -> Result<String, Error> {
    u32::try_from(index)
        .ok()
        .and_then(|i| i.checked_add(65))
        .and_then(char::from_u32)
        .map(String::from)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("`letter` takes an option index from 0, got {index}"),
            )
        })
}

fn lettered(options: Value, separator: Option<String>) -> Result<String, Error> {
    let separator = separator.unwrap_or_else(|| "\n".into());
    let mut lines = Vec::new();
    for (i, option) in options.try_iter()?.enumerate() {
        lines.push(format!("{}. {option}", letter(i as i64)?));
    }
    Ok(lines.join(&separator))
}

/// The environment every task file template is compiled in.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("strip", |s: String| py_strip(&s).to_string());
    env.add_filter("lower", |s: String| py_lower(&s));
    env.add_filter("upper", |s: String| py_upper(&s));
    env.add_filter("capitalize", |s: String| py_capitalize(&s));
    env.add_filter("letter", letter);
    env.add_filter("lettered", lettered);
    env
}

fn cell_value(cell: &Cell) -> Option<Value> {
    Some(match cell {
        Cell::Null => Value::from(()),
        Cell::Bool(b) => Value::from(*b),
        Cell::Int(i) => Value::from(*i),
        Cell::Float(f) => Value::from(*f),
        Cell::Str(s) | Cell::Other(s) => Value::from(s.as_str()),
        Cell::List(items) => Value::from(items.iter().filter_map(cell_value).collect::<Vec<_>>()),
        Cell::Struct(fields) => Value::from(
            fields
                .iter()
                .filter_map(|(k, c)| Some((k.clone(), cell_value(c)?)))
                .collect::<BTreeMap<_, _>>(),
        ),
        Cell::Bytes(_) | Cell::Image { .. } => return None,
    })
}

/// What a row's templates see: its non-binary columns, then `extra` (prompt variables),
/// which win over a column of the same name.
pub fn row_context(row: &Row, extra: &BTreeMap<String, Value>) -> Value {
    let mut map: BTreeMap<String, Value> = row
        .columns
        .iter()
        .filter_map(|(name, cell)| Some((name.clone(), cell_value(cell)?)))
        .collect();
    map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    Value::from(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, ctx: Value) -> Result<String, Error> {
        let env = environment();
        env.render_str(template, ctx)
    }

    #[test]
    fn filters_behave_as_python() {
        let ctx = Value::from_serialize(serde_json::json!({
            "q": " what is the DVD?\n", "choices": ["red", "blue"], "answer": 1, "n": "2",
            "hint": "",
        }));
        assert_eq!(
            render("{{ q | strip | capitalize }}", ctx.clone()).unwrap(),
            "What is the dvd?"
        );
        assert_eq!(
            render("{{ choices | lettered }}", ctx.clone()).unwrap(),
            "A. red\nB. blue"
        );
        assert_eq!(render("{{ answer | letter }}", ctx.clone()).unwrap(), "B");
        assert_eq!(render("{{ n | int | letter }}", ctx.clone()).unwrap(), "C");
        assert_eq!(
            render(
                "{% if hint %}Context: {{ hint }}\n{% endif %}x\n",
                ctx.clone()
            )
            .unwrap(),
            "x\n"
        );
        let err = render("{{ missing }}", ctx.clone()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UndefinedError);
        assert_eq!(render("{{ 26 | letter }}", ctx.clone()).unwrap(), "[");
        assert!(render("{{ -1 | letter }}", ctx).is_err());
    }
}
