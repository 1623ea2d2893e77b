//! `${VAR}` and `${VAR:-default}` expansion of a configuration file's text before it is parsed.
//!
//! Only environment-style names — capital letters, digits and `_`, not starting with a digit —
//! are expanded, so regex replacement templates such as `${1}` or `${name}` in a tcp
//! `query_response` pass through untouched; comment lines are left alone; `$$` stands for a
//! literal `$`.

/// An unset variable without a default, with the 1-based line and column of its `$`.
#[derive(Debug, PartialEq)]
pub struct UnsetVariable {
    pub name: String,
    pub line: usize,
    pub column: usize,
}

pub fn expand_env(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, UnsetVariable> {
    let mut out = String::with_capacity(text.len());
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            expand_line(line, offset, text, &lookup, &mut out)?;
        }
        offset += line.len();
    }
    Ok(out)
}

fn expand_line(
    line: &str,
    line_offset: usize,
    text: &str,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), UnsetVariable> {
    let mut rest = line;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        match parse_reference(after) {
            Some((name, default, consumed)) => {
                match lookup(name).filter(|v| !(v.is_empty() && default.is_some())) {
                    Some(value) => out.push_str(&value),
                    None => match default {
                        Some(default) => out.push_str(default),
                        None => {
                            let offset = line_offset + (line.len() - rest.len()) + dollar;
                            let (line, column) = line_column(text, offset);
                            return Err(UnsetVariable { name: name.to_string(), line, column });
                        }
                    },
                }
                rest = &after[consumed..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(())
}

/// Parses `{NAME}` or `{NAME:-default}` at the start of `s`; returns name, default and bytes consumed.
fn parse_reference(s: &str) -> Option<(&str, Option<&str>, usize)> {
    let body = s.strip_prefix('{')?;
    let close = body.find('}')?;
    let inner = &body[..close];
    let (name, default) = match inner.find(":-") {
        Some(i) => (&inner[..i], Some(&inner[i + 2..])),
        None => (inner, None),
    };
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_uppercase() || first == '_')
        || !chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    Some((name, default, close + 2))
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.org".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_unset_and_default() {
        let got =
            expand_env("a: ${HOST}\nb: ${NOPE:-dflt}\nc: ${EMPTY:-x}\nd: ${EMPTY}", env).unwrap();
        assert_eq!(got, "a: example.org\nb: dflt\nc: x\nd: ");
    }

    #[test]
    fn leaves_regex_templates_and_escapes() {
        let got =
            expand_env("send: \"HELO ${1} ${name}\"\nprice: $$5 $x\n# ${UNSET_IN_COMMENT}\n", env)
                .unwrap();
        assert_eq!(got, "send: \"HELO ${1} ${name}\"\nprice: $5 $x\n# ${UNSET_IN_COMMENT}\n");
    }

    #[test]
    fn unset_without_default_is_located() {
        let err = expand_env("a: 1\nb: x${MISSING}", env).unwrap_err();
        assert_eq!(err, UnsetVariable { name: "MISSING".into(), line: 2, column: 5 });
    }
}
