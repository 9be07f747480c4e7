//! The model aliases users type (`llava-1.5-7b`), the hub repositories they stand for, and
//! what else counts as a hub repo id.

/// Short names users type, and the hub repositories they stand for.
pub const ALIASES: &[(&str, &str)] = &[
    ("llava-1.5-7b", "llava-hf/llava-1.5-7b-hf"),
    ("llava-1.5-13b", "llava-hf/llava-1.5-13b-hf"),
    ("qwen2-vl-2b", "Qwen/Qwen2-VL-2B-Instruct"),
    ("qwen2-vl-7b", "Qwen/Qwen2-VL-7B-Instruct"),
];

pub fn known_aliases() -> String {
    ALIASES
        .iter()
        .map(|(a, _)| *a)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An alias, or something shaped like a hub repo id (`owner/name`).
pub fn resolve_repo_id(model: &str) -> Option<&str> {
    if let Some((_, repo)) = ALIASES.iter().find(|(alias, _)| *alias == model) {
        return Some(repo);
    }
    is_repo_id(model).then_some(model)
}

/// Shaped like a hub repo id: `owner/name`, each of letters, digits, `-`, `_` and `.`, not
/// starting with a dot.
pub fn is_repo_id(id: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match id.split_once('/') {
        Some((owner, name)) => ok(owner) && ok(name) && !id.starts_with('.'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_repo_ids() {
        assert_eq!(
            resolve_repo_id("llava-1.5-7b"),
            Some("llava-hf/llava-1.5-7b-hf")
        );
        assert_eq!(
            resolve_repo_id("qwen2-vl-2b"),
            Some("Qwen/Qwen2-VL-2B-Instruct")
        );
        assert_eq!(
            resolve_repo_id("Qwen/Qwen2-VL-7B-Instruct"),
            Some("Qwen/Qwen2-VL-7B-Instruct")
        );
        assert_eq!(resolve_repo_id("no-such-alias"), None);
        assert_eq!(resolve_repo_id("./local/dir"), None);
        assert_eq!(resolve_repo_id("a/b/c"), None);
    }
}
