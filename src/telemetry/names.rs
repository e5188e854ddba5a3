//! Validation of metric and label names, and help text that both text formats can carry.

use crate::errors::CoreError;

/// True for a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// True for a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// Checks a metric name and its label names (`reserved` lists names the type forbids, e.g. `le`).
pub fn check(name: &str, labels: &[String], reserved: &[&str]) -> Result<(), CoreError> {
    if !is_metric_name(name) {
        return Err(CoreError::Metric(format!("invalid metric name {name:?}")));
    }
    for (i, l) in labels.iter().enumerate() {
        if !is_label_name(l) || reserved.contains(&l.as_str()) {
            return Err(CoreError::Metric(format!(
                "{name}: invalid label name {l:?}"
            )));
        }
        if labels[..i].contains(l) {
            return Err(CoreError::Metric(format!(
                "{name}: duplicate label name {l:?}"
            )));
        }
    }
    Ok(())
}

/// Help text safe in both formats: one line, no backslash or double quote (OpenMetrics would need
/// them escaped, the 0.0.4 encoder escapes differently), so both parsers read the same text.
pub fn clean_help(help: &str) -> String {
    help.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            '\\' => '/',
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_grammar() {
        assert!(is_metric_name("a_b:c1"));
        assert!(!is_metric_name("1a"));
        assert!(!is_metric_name(""));
        assert!(!is_metric_name("a-b"));
        assert!(is_label_name("env"));
        assert!(!is_label_name("__name__"));
        assert!(!is_label_name("a:b"));
        assert!(check("x", &["le".into()], &["le"]).is_err());
        assert!(check("x", &["a".into(), "a".into()], &[]).is_err());
    }

    #[test]
    fn help_is_one_clean_line() {
        assert_eq!(clean_help("a\nb \"c\" \\d"), "a b 'c' /d");
    }
}
