//! Configuration: the two YAML files (probes.yaml, log_rules.yaml), parsed strictly and validated.
//!
//! Every error names the file, line, column and the key path, so an operator can jump to it;
//! a file that fails here never replaces a running configuration.

mod expand;
pub mod log_rules;
pub mod probes;
pub mod values;
pub mod web;

use std::fmt;
use std::path::{Path, PathBuf};

pub use log_rules::LogRulesFile;
pub use probes::ProbesFile;

/// The log rules read when `--config.log-rules` is not given, if the file exists.
pub const DEFAULT_LOG_RULES: &str = "log_rules.yaml";

/// A configuration problem at a place in a file.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": key '{}'", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// One configuration file: its text as written, and after `${VAR}` expansion (what is parsed).
/// Errors found in the expanded text are located in the text as written.
pub struct Source {
    pub path: PathBuf,
    pub text: String,
    written: String,
    expansion: expand::Expanded,
}

impl Source {
    pub fn read(path: &Path) -> Result<Source, ConfigError> {
        let error = |line, column, message: String| ConfigError {
            file: path.to_path_buf(),
            line,
            column,
            key: String::new(),
            message,
        };
        let bytes = crate::files::read(path, crate::files::MAX_CONFIG_BYTES)
            .map_err(|e| error(0, 0, format!("cannot read: {e}")))?;
        let raw = String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            // The valid prefix is text: the place of the first bad byte can be told in it.
            let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
            let (line, column) = expand::line_column(prefix, valid);
            let message = format!("not UTF-8: byte 0x{:02x} at offset {valid}", bytes[valid]);
            error(line as u64, column as u64, message)
        })?;
        Source::from_text(path, &raw)
    }

    pub fn from_text(path: &Path, raw: &str) -> Result<Source, ConfigError> {
        let expansion =
            expand::expand_env(raw, |name| std::env::var(name).ok()).map_err(|e| ConfigError {
                file: path.to_path_buf(),
                line: e.line as u64,
                column: e.column as u64,
                key: key_path_at(raw, e.line),
                message: e.message,
            })?;
        Ok(Source {
            path: path.to_path_buf(),
            text: expansion.text.clone(),
            written: raw.to_string(),
            expansion,
        })
    }

    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        if self.text.trim().is_empty() {
            return serde_saphyr::from_str("{}")
                .map_err(|e| self.error_at(0, 0, e.without_snippet().to_string()));
        }
        // A `!!binary` scalar stays its base64 text, as Go's yaml keeps arbitrary bytes in a
        // string where Rust's cannot: [`Source::bytes_of`] decodes it where bytes are meant.
        // The parser's default budget (250,000 nodes) stops at about 27,000 scheduled probes; the
        // file is at most MAX_CONFIG_BYTES, so a node per byte bounds it as well.
        let budget = self.text.len().max(250_000);
        let options = serde_saphyr::options! {
            ignore_binary_tag_for_string: true,
            budget: serde_saphyr::budget! { max_nodes: budget, max_events: 4 * budget },
        };
        serde_saphyr::from_str_with_options(&self.text, options).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let mut message = strip_position_prefix(&e.without_snippet().to_string()).to_string();
            let written_line = self.written.lines().nth((line as usize).saturating_sub(1));
            if self.expansion.unchanged() && written_line.is_some_and(|l| l.contains("${")) {
                message.push_str(" (a ${…} inside [ ] or { } must be quoted: \"${VAR}\")");
            }
            self.error_at(line, column, message)
        })
    }

    /// An error at a 1-based line and column of the expanded text, located in the text as
    /// written; the key path is read off the text there.
    pub fn error_at(&self, line: u64, column: u64, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.as_written(line as usize, column as usize);
        ConfigError {
            file: self.path.clone(),
            line: line as u64,
            column: column as u64,
            key: key_path_at(&self.written, line),
            message: message.into(),
        }
    }

    /// A 1-based line and column of the expanded text, as line and column of the file.
    fn as_written(&self, line: usize, column: usize) -> (usize, usize) {
        if line == 0 || self.expansion.unchanged() {
            return (line, column);
        }
        let line_start: usize =
            self.text.split_inclusive('\n').take(line - 1).map(str::len).sum::<usize>();
        let offset = self
            .text
            .get(line_start..)
            .unwrap_or_default()
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(self.text.len(), |(i, _)| line_start + i);
        expand::line_column(&self.written, self.expansion.original_offset(offset))
    }

    /// An error about a whole section, located at it but named by `key`.
    pub fn error_in<T>(
        &self,
        key: &str,
        spanned: &serde_saphyr::Spanned<T>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError { key: key.to_string(), ..self.error_at_span(spanned, message) }
    }

    /// An error at the first occurrence of `near` in the text of a value (a part of a long
    /// string), else at the value.
    pub fn error_at_text<T>(
        &self,
        spanned: &serde_saphyr::Spanned<T>,
        near: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = (spanned.referenced.line(), spanned.referenced.column());
        let line_start: usize = self
            .text
            .split_inclusive('\n')
            .take((line as usize).saturating_sub(1))
            .map(str::len)
            .sum();
        let start = self.text[line_start.min(self.text.len())..]
            .char_indices()
            .nth((column as usize).saturating_sub(1))
            .map_or(self.text.len(), |(i, _)| line_start + i);
        match self.text[start..].find(near) {
            Some(found) => {
                let before = &self.text[..start + found];
                let line = before.matches('\n').count() as u64 + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() as u64 + 1;
                self.error_at(line, column, message)
            }
            None => self.error_at_span(spanned, message),
        }
    }

    /// The bytes of a string value: its text, or the decoded payload of a `!!binary` one
    /// (a query_response `send` of a binary protocol).
    pub fn bytes_of(
        &self,
        spanned: &serde_saphyr::Spanned<String>,
        key: &str,
    ) -> Result<Vec<u8>, ConfigError> {
        use base64::Engine;
        let (line, column) = (spanned.referenced.line(), spanned.referenced.column());
        let text = self.text.lines().nth((line as usize).saturating_sub(1)).unwrap_or_default();
        let split = text
            .char_indices()
            .nth((column as usize).saturating_sub(1))
            .map_or(text.len(), |(i, _)| i);
        let (before, at) = text.split_at(split);
        if !at.starts_with("!!binary") && !before.trim_end().ends_with("!!binary") {
            return Ok(spanned.value.clone().into_bytes());
        }
        let compact: String = spanned.value.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD.decode(compact).map_err(|e| ConfigError {
            key: key.to_string(),
            ..self.error_at_span(spanned, format!("invalid !!binary (base64) value: {e}"))
        })
    }

    /// Warns (with the file's place) when a file a module names does not exist yet: the
    /// configuration still loads, and the probes that need it fail until it appears.
    /// Returns whether the file is missing.
    pub fn warn_if_missing(&self, path: &serde_saphyr::Spanned<String>, what: &str) -> bool {
        let missing = !std::path::Path::new(&path.value).exists();
        if missing {
            self.warn_at_span(
                path,
                format!(
                    "{what} {:?} does not exist (yet): probes that need it fail until it does",
                    path.value
                ),
            );
        }
        missing
    }

    /// Logs a warning about a value, at its file, line, column and key.
    pub fn warn_at_span<T>(&self, spanned: &serde_saphyr::Spanned<T>, message: impl Into<String>) {
        let place = self.error_at_span(spanned, "");
        tracing::warn!(
            "{}:{}:{}: key '{}': {}",
            place.file.display(),
            place.line,
            place.column,
            place.key,
            message.into()
        );
    }

    pub fn error_at_span<T>(
        &self,
        spanned: &serde_saphyr::Spanned<T>,
        message: impl Into<String>,
    ) -> ConfigError {
        self.error_at(spanned.referenced.line(), spanned.referenced.column(), message)
    }
}

fn strip_position_prefix(message: &str) -> &str {
    // serde-saphyr prefixes "line L column C: " (or "error: line …") to its message; we print our own.
    let m = message.strip_prefix("error: ").unwrap_or(message);
    match m.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((position, rest)) if position.contains(" column ") => rest,
        _ => m,
    }
}

/// The dotted key path of the block-style YAML node on `line` (1-based), e.g.
/// `modules.http_2xx.http.valid_status_codes` or `probes[1].target`.
pub fn key_path_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if line == 0 || line > lines.len() {
        return String::new();
    }
    let mut parts: Vec<String> = Vec::new();
    // `column` is where the node found last starts; `in_item` says whether it is a `- ` item.
    let (mut column, mut in_item) = (usize::MAX, false);
    for idx in (0..line).rev() {
        let Some(node) = Node::read(lines[idx]) else {
            continue;
        };
        let is_target = idx + 1 == line;
        let is_ancestor = match node.item_indent {
            Some(item) => item < column,
            None => node.indent < column || (node.indent == column && in_item),
        };
        if !is_target && !is_ancestor {
            continue;
        }
        match node.item_indent {
            Some(item) => {
                if let Some(key) = node.key {
                    if is_target || item + 2 < column {
                        parts.push(key.to_string());
                    }
                }
                parts.push(format!("[{}]", sibling_index(&lines[..idx], item)));
                column = item;
                in_item = true;
            }
            None => {
                parts.extend(node.key.map(str::to_string));
                column = node.indent;
                in_item = false;
            }
        }
        if column == 0 && !in_item {
            break;
        }
    }
    parts.reverse();
    let mut path = String::new();
    for part in parts {
        if !path.is_empty() && !part.starts_with('[') {
            path.push('.');
        }
        path.push_str(&part);
    }
    path
}

/// One non-blank, non-comment line of block YAML.
struct Node<'a> {
    indent: usize,
    item_indent: Option<usize>,
    key: Option<&'a str>,
}

impl<'a> Node<'a> {
    fn read(raw: &'a str) -> Option<Node<'a>> {
        let content = raw.trim_start();
        if content.is_empty() || content.starts_with('#') {
            return None;
        }
        let indent = raw.len() - content.len();
        let item = content.strip_prefix("- ").or((content == "-").then_some(""));
        Some(match item {
            Some(rest) => {
                Node { indent, item_indent: Some(indent), key: mapping_key(rest.trim_start()) }
            }
            None => Node { indent, item_indent: None, key: mapping_key(content) },
        })
    }
}

fn mapping_key(content: &str) -> Option<&str> {
    let colon = content.find(": ").or_else(|| content.strip_suffix(':').map(str::len))?;
    let key = content[..colon].trim().trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty() && !key.starts_with('{') && !key.starts_with('[')).then_some(key)
}

/// How many `- ` items at `indent` precede the current one, counting back to their parent key.
fn sibling_index(before: &[&str], indent: usize) -> usize {
    let mut count = 0;
    for raw in before.iter().rev() {
        let Some(node) = Node::read(raw) else {
            continue;
        };
        if node.indent < indent || (node.indent == indent && node.item_indent.is_none()) {
            break;
        }
        if node.item_indent == Some(indent) {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "modules:\n  http_2xx:\n    prober: http\n    http:\n      method: GET\n      valid_status_codez: [200]\nprobes:\n  - name: a\n    target: x\n  - name: b\n    # comment\n    target: y\n    labels:\n      team: a\nlist:\n- x: 1\n- y:\n    z: 2\n";

    #[test]
    fn key_paths_follow_indentation_and_list_items() {
        assert_eq!(key_path_at(DOC, 6), "modules.http_2xx.http.valid_status_codez");
        assert_eq!(key_path_at(DOC, 3), "modules.http_2xx.prober");
        assert_eq!(key_path_at(DOC, 9), "probes[0].target");
        assert_eq!(key_path_at(DOC, 10), "probes[1].name");
        assert_eq!(key_path_at(DOC, 12), "probes[1].target");
        assert_eq!(key_path_at(DOC, 1), "modules");
        assert_eq!(key_path_at(DOC, 14), "probes[1].labels.team");
        assert_eq!(key_path_at(DOC, 16), "list[0].x");
        assert_eq!(key_path_at(DOC, 18), "list[1].y.z");
    }

    #[test]
    fn parse_error_names_line_column_and_key() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Http {
            method: String,
            valid_status_codes: Vec<u16>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Doc {
            modules: std::collections::BTreeMap<
                String,
                std::collections::BTreeMap<String, serde::de::IgnoredAny>,
            >,
        }
        let src = Source::from_text(
            Path::new("p.yaml"),
            "a:\n  http:\n    method: GET\n    valid_status_codez: [1]\n",
        )
        .unwrap();
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct A {
            http: Http,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Top {
            a: A,
        }
        let err = src.parse::<Top>().unwrap_err();
        assert_eq!((err.line, err.column), (4, 5));
        assert_eq!(err.key, "a.http.valid_status_codez");
        assert!(err.message.contains("unknown field `valid_status_codez`"), "{}", err.message);
        let shown = err.to_string();
        assert!(
            shown.starts_with("p.yaml:4:5: key 'a.http.valid_status_codez': unknown field"),
            "{shown}"
        );
    }
}
