//! `${VAR}` and `${VAR:-default}` expansion of a configuration file, inside scalar values only.
//!
//! The file is read as YAML first; each scalar whose value names a variable is expanded and
//! written back as one double-quoted YAML string. So a value holding a newline or `: ` stays one
//! string and can never add keys, and a comment is never expanded. Only environment-style names
//! (capital letters, digits and `_`, not starting with a digit) are expanded, so regex
//! replacement templates such as `${1}` or `${name}` in a tcp `query_response` pass through;
//! `$$` stands for a literal `$`. Every replacement is recorded, so a position in the expanded
//! text maps back to the file as written.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

/// Why a value cannot be expanded (an unset variable without a default, references nested too
/// deep), with the 1-based line and column of its `$`.
#[derive(Debug, PartialEq)]
pub struct ExpansionError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// How deep defaults may hold references: enough for any configuration, and a bound on the
/// recursion a hostile value could ask for.
const MAX_DEPTH: usize = 8;

enum Problem {
    /// This variable is unset and has no default.
    Unset(String),
    /// References nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// A scalar of the file replaced by its expansion: byte ranges in both texts.
#[derive(Debug, Clone, PartialEq)]
struct Replacement {
    original: std::ops::Range<usize>,
    expanded: std::ops::Range<usize>,
}

/// A file's text after expansion, and where it differs from the text as written.
#[derive(Debug)]
pub struct Expanded {
    pub text: String,
    replacements: Vec<Replacement>,
}

impl Expanded {
    /// Whether the text is as written.
    pub fn unchanged(&self) -> bool {
        self.replacements.is_empty()
    }

    /// The byte offset in the text as written of a byte offset in the expanded text; a place
    /// inside an expanded value maps to the start of the scalar it replaced.
    pub fn original_offset(&self, offset: usize) -> usize {
        let mut shift: isize = 0;
        for r in &self.replacements {
            if offset < r.expanded.start {
                break;
            }
            if offset < r.expanded.end {
                return r.original.start;
            }
            shift = r.original.end as isize - r.expanded.end as isize;
        }
        (offset as isize + shift).max(0) as usize
    }
}

pub fn expand_env(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Expanded, ExpansionError> {
    let unchanged = || Expanded { text: text.to_string(), replacements: Vec::new() };
    if !text.contains('$') {
        return Ok(unchanged());
    }
    let mut out = String::with_capacity(text.len());
    let mut replacements = Vec::new();
    let mut copied = 0;
    for event in Parser::new_from_str(text) {
        // Text that is not YAML is left for the parser proper to report, at its place.
        let Ok((Event::Scalar(value, style, ..), span)) = event else {
            if event.is_err() {
                return Ok(unchanged());
            }
            continue;
        };
        if !names_a_variable(&value) {
            continue;
        }
        let (Some(mut start), Some(end)) = (span.start.byte_offset(), span.end.byte_offset())
        else {
            continue;
        };
        let expanded = expand_value(&value, &lookup).map_err(|problem| {
            let (message, at) = match problem {
                Problem::Unset(name) => {
                    // At the reference when it is written as such, else at the scalar.
                    let at = text[start..end].find(&format!("${{{name}"));
                    let message = format!(
                        "environment variable {name} is not set and has no ${{{name}:-default}}"
                    );
                    (message, at.map_or(start, |i| start + i))
                }
                Problem::TooDeep => {
                    (format!("references nested more than {MAX_DEPTH} deep"), start)
                }
            };
            let (line, column) = line_column(text, at);
            ExpansionError { message, line, column }
        })?;
        let mut quoted = double_quoted(&expanded);
        if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
            // A block scalar's span is its content: its `|` or `>` goes with it, and so does
            // the line break its content ends with.
            start = block_indicator(text, start).unwrap_or(start);
            if text[..end].ends_with('\n') {
                quoted.push('\n');
            }
        }
        out.push_str(&text[copied..start]);
        let from = out.len();
        out.push_str(&quoted);
        replacements.push(Replacement { original: start..end, expanded: from..out.len() });
        copied = end;
    }
    out.push_str(&text[copied..]);
    Ok(Expanded { text: out, replacements })
}

/// Whether a value holds `$$` or a `${NAME}` reference with an environment-style name.
fn names_a_variable(value: &str) -> bool {
    value.match_indices('$').any(|(i, _)| {
        let after = &value[i + 1..];
        after.starts_with('$') || !matches!(parse_reference(after), Parsed::NotOne)
    })
}

/// Expands one value (a default within one, recursively: at most [`MAX_DEPTH`] deep).
fn expand_value(value: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<String, Problem> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        match parse_reference(after) {
            Parsed::Reference(name, default, consumed) => {
                match lookup(name).filter(|v| !(v.is_empty() && default.is_some())) {
                    Some(value) => out.push_str(&value),
                    // A default may itself hold references, as in a shell: `${A:-${B:-x}}`.
                    None => {
                        let default = default.ok_or_else(|| Problem::Unset(name.to_string()))?;
                        out.push_str(&expand_value(default, lookup)?)
                    }
                }
                rest = &after[consumed..];
            }
            Parsed::NotOne => {
                out.push('$');
                rest = after;
            }
            Parsed::TooDeep => return Err(Problem::TooDeep),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// What follows a `$`.
enum Parsed<'a> {
    /// `{NAME}` or `{NAME:-default}`: name, default and bytes consumed.
    Reference(&'a str, Option<&'a str>, usize),
    /// Anything else, left as it is written (`${1}`, `${name}`, an unclosed `${`).
    NotOne,
    /// A reference whose default nests references deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// Parses a reference at the start of `s`. It ends at the `}` that closes it: a default may
/// hold `${…}` of its own.
fn parse_reference(s: &str) -> Parsed<'_> {
    let Some(body) = s.strip_prefix('{') else { return Parsed::NotOne };
    let name_end = body.find([':', '}']).unwrap_or(body.len());
    let name = &body[..name_end];
    let mut chars = name.chars();
    let environment_style = chars.next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !environment_style {
        return Parsed::NotOne;
    }
    let close = match closing_brace(body) {
        Ok(Some(close)) => close,
        Ok(None) => return Parsed::NotOne,
        Err(TooDeep) => return Parsed::TooDeep,
    };
    match body[..close].strip_prefix(name) {
        Some("") => Parsed::Reference(name, None, close + 2),
        Some(rest) => match rest.strip_prefix(":-") {
            Some(default) => Parsed::Reference(name, Some(default), close + 2),
            None => Parsed::NotOne,
        },
        None => Parsed::NotOne,
    }
}

struct TooDeep;

/// The offset of the `}` that closes a reference whose text starts at `body`, counting the
/// `${` opened (and `$$` escaped) inside it, as a shell does; none when it is not closed. Stops
/// (`TooDeep`) past [`MAX_DEPTH`] levels, which also keeps each look at a value short.
fn closing_brace(body: &str) -> Result<Option<usize>, TooDeep> {
    let bytes = body.as_bytes();
    let (mut depth, mut i) = (0usize, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'$' if matches!(bytes.get(i + 1), Some(b'{')) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(TooDeep);
                }
                i += 2;
                continue;
            }
            b'$' if matches!(bytes.get(i + 1), Some(b'$')) => {
                i += 2;
                continue;
            }
            b'}' if depth == 0 => return Ok(Some(i)),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    Ok(None)
}

/// A YAML double-quoted scalar holding exactly `value`.
fn double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Where the `|` or `>` of the block scalar whose content starts at `content` is: on the
/// nearest line above that is not blank (blank lines may open a block's content).
fn block_indicator(text: &str, content: usize) -> Option<usize> {
    let mut header_end = text[..content].rfind('\n')?;
    loop {
        let header_start = text[..header_end].rfind('\n').map_or(0, |i| i + 1);
        let header = &text[header_start..header_end];
        if header.trim().is_empty() && header_start > 0 {
            header_end = header_start - 1;
            continue;
        }
        let header = header.split(" #").next().unwrap_or(header);
        return header.rfind(['|', '>']).map(|i| header_start + i);
    }
}

/// The 1-based line and (character) column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.org".into()),
            "EMPTY" => Some(String::new()),
            "INJECT" => Some("x\nprobe_endpoint: {enabled: false}\n\"quoted\": \\".into()),
            _ => None,
        }
    }

    fn expand(text: &str) -> String {
        expand_env(text, env).unwrap().text
    }

    #[test]
    fn expands_set_unset_and_default() {
        let got = expand("a: ${HOST}\nb: ${NOPE:-dflt}\nc: ${EMPTY:-x}\nd: ${EMPTY}\n");
        assert_eq!(got, "a: \"example.org\"\nb: \"dflt\"\nc: \"x\"\nd: \"\"\n");
        assert_eq!(expand("u: http://${HOST}:81/x\n"), "u: \"http://example.org:81/x\"\n");
        assert_eq!(expand("p: [\"${HOST}\", b]\n"), "p: [\"example.org\", b]\n");
    }

    #[test]
    fn a_default_may_hold_references_of_its_own() {
        let got = expand("p: \"${NOPE:-${ALSO_NOPE:-/var/log/pods}/*/nginx/*.log}\"\n");
        assert_eq!(got, "p: \"/var/log/pods/*/nginx/*.log\"\n");
        assert_eq!(expand("p: ${NOPE:-${HOST}/x}/y\n"), "p: \"example.org/x/y\"\n");
        assert_eq!(expand("p: ${HOST:-${MISSING}}\n"), "p: \"example.org\"\n");
        assert_eq!(expand("p: ${NOPE:-{x}}\n"), "p: \"{x}\"\n");
        assert_eq!(expand("p: ${NOPE:-a$${b}}\n"), "p: \"a${b}\"\n");
        let err = expand_env("a: 1\nb: ${NOPE:-${MISSING}}\n", env).unwrap_err();
        assert_eq!((err.line, err.column), (2, 12));
        assert!(err.message.contains("MISSING is not set"), "{}", err.message);
        let deep = format!("a: {}x{}\n", "${NOPE:-".repeat(10_000), "}".repeat(10_000));
        let err = expand_env(&deep, env).unwrap_err();
        assert_eq!((err.line, err.column), (1, 4));
        assert!(err.message.contains("nested more than 8 deep"), "{}", err.message);
    }

    #[test]
    fn leaves_regex_templates_comments_and_escapes() {
        let got = expand("send: \"HELO ${1} ${name}\"\nprice: $$5 $x\n# ${UNSET_IN_COMMENT}\n");
        assert_eq!(got, "send: \"HELO ${1} ${name}\"\nprice: \"$5 $x\"\n# ${UNSET_IN_COMMENT}\n");
    }

    #[test]
    fn a_value_is_one_string_whatever_it_holds() {
        let got = expand("target: ${INJECT}\nother: 1\n");
        assert_eq!(
            got,
            "target: \"x\\nprobe_endpoint: {enabled: false}\\n\\\"quoted\\\": \\\\\"\nother: 1\n"
        );
        let value: std::collections::BTreeMap<String, String> =
            serde_saphyr::from_str(&got).unwrap();
        assert_eq!(value["target"], env("INJECT").unwrap());
        assert_eq!(value.len(), 2);
    }

    #[test]
    fn block_scalars_become_one_string() {
        let got = expand("a: |\n  one ${HOST}\n  two\nb: 2\n");
        assert_eq!(got, "a: \"one example.org\\ntwo\\n\"\nb: 2\n");
        let got = expand("a: |\n\n  {\"t\": \"${HOST}\"}\nb: 2\n");
        let value: std::collections::BTreeMap<String, String> =
            serde_saphyr::from_str(&got).unwrap();
        assert_eq!(value["a"], "\n{\"t\": \"example.org\"}\n", "{got}");
    }

    #[test]
    fn unset_without_default_is_located() {
        let err = expand_env("a: 1\nb: x${MISSING}\n", env).unwrap_err();
        assert_eq!((err.line, err.column), (2, 5));
        assert!(err.message.contains("MISSING is not set"), "{}", err.message);
    }

    #[test]
    fn positions_map_back_to_the_file() {
        let text = "a: ${HOST}\nb: {c: \"${HOST}\", dd: 1}\n";
        let expanded = expand_env(text, env).unwrap();
        let at = |needle: &str| expanded.text.find(needle).unwrap();
        assert_eq!(expanded.original_offset(at("dd")), text.find("dd").unwrap());
        assert_eq!(expanded.original_offset(at("b:")), text.find("b:").unwrap());
        assert_eq!(expanded.original_offset(at("example") + 3), text.find("${HOST}").unwrap());
    }
}
