//! Reads a `log_format` as an operator pastes it: the whole directive from nginx.conf
//! (`log_format main escape=json '{"a":"$a",' '"b":"$b"}';`), its quoted strings alone, or the
//! bare format text. Quoted strings are read as nginx reads them (pieces joined, `\t`, `\n`,
//! `\"`, `\'`, `\\` unescaped), so a format spanning lines or ending in `'\n'` is the format
//! nginx writes.

use super::grammar::Escape;

#[derive(Debug, PartialEq, Eq)]
pub struct Directive {
    pub escape: Escape,
    pub format: String,
}

/// The format and its escape mode. Bare text (neither a directive nor quoted pieces) is the
/// format itself, with nginx's backslash escapes applied.
pub fn read(text: &str) -> Result<Directive, String> {
    let trimmed = text.trim();
    let bare = || Ok(Directive { escape: Escape::Default, format: unescape(text) });
    if !(trimmed.starts_with("log_format") || trimmed.starts_with("escape=")) {
        // Quoted pieces only (`'…' '…';`); a format that merely starts with a quote
        // (`"$request" $status`) is bare text.
        let pieces = match trimmed.starts_with(['\'', '"']).then(|| words(trimmed)) {
            Some(Ok(words)) if words.iter().all(|w| w.quoted) => words,
            _ => return bare(),
        };
        return Ok(Directive {
            escape: Escape::Default,
            format: pieces.into_iter().map(|w| w.text).collect(),
        });
    }
    let mut words = words(trimmed)?.into_iter().peekable();
    if words.peek().is_some_and(|w| !w.quoted && w.text == "log_format") {
        words.next();
        match words.next() {
            Some(name) if !name.quoted => {}
            _ => return Err("log_format needs a name before its format".into()),
        }
    }
    let mut escape = Escape::Default;
    if let Some(mode) =
        words.peek().and_then(|w| w.text.strip_prefix("escape=").filter(|_| !w.quoted))
    {
        escape = Escape::parse(mode)
            .ok_or_else(|| format!("unknown escape={mode}, expected default, json or none"))?;
        words.next();
    }
    let format: String = words.map(|w| w.text).collect();
    if format.is_empty() {
        return Err("log_format has no format string".into());
    }
    Ok(Directive { escape, format })
}

struct Word {
    text: String,
    quoted: bool,
}

/// nginx's tokens: whitespace-separated words, single- or double-quoted strings, `#` comments,
/// up to the `;` that ends the directive.
fn words(text: &str) -> Result<Vec<Word>, String> {
    let mut words = Vec::new();
    let mut ended = false;
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            ';' => {
                chars.next();
                ended = true;
            }
            _ if ended => {
                let rest: String = chars.map(|(_, c)| c).take(20).collect();
                return Err(format!("text after the `;` that ends log_format: {rest:?}"));
            }
            '\'' | '"' => {
                chars.next();
                let mut raw = String::new();
                let mut closed = false;
                while let Some((_, ch)) = chars.next() {
                    if ch == '\\' {
                        raw.push(ch);
                        if let Some((_, next)) = chars.next() {
                            raw.push(next);
                        }
                    } else if ch == c {
                        closed = true;
                        break;
                    } else {
                        raw.push(ch);
                    }
                }
                if !closed {
                    return Err(format!("unclosed {c} starting at byte {at}"));
                }
                words.push(Word { text: unescape(&raw), quoted: true });
            }
            _ => {
                let mut raw = String::new();
                while let Some(&(_, ch)) = chars.peek() {
                    if ch.is_whitespace() || ch == ';' || ch == '\'' || ch == '"' {
                        break;
                    }
                    raw.push(ch);
                    chars.next();
                }
                words.push(Word { text: unescape(&raw), quoted: false });
            }
        }
    }
    Ok(words)
}

/// nginx's backslash escapes in configuration strings: `\t`, `\r`, `\n`, and `\"`, `\'`, `\\`
/// for the character itself; any other backslash stays.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(&q @ ('"' | '\'' | '\\')) => out.push(q),
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(text: &str) -> String {
        read(text).unwrap().format
    }

    #[test]
    fn forms_an_operator_pastes() {
        let directive = "log_format  main  '$remote_addr - $remote_user [$time_local] \"$request\" '\n                  '$status $body_bytes_sent';  # comment";
        assert_eq!(
            format(directive),
            "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent"
        );
        assert_eq!(format("'a:$a\\tb:$b' '\\n'"), "a:$a\tb:$b\n");
        assert_eq!(format("$a \\\"$b\\\""), "$a \"$b\"");
        assert_eq!(format("\"$request\" $status"), "\"$request\" $status");
        assert_eq!(format("$a\\x22"), "$a\\x22");
        let json = read("log_format j escape=json '{\"a\":\"$a\"}';").unwrap();
        assert_eq!((json.escape, json.format.as_str()), (Escape::Json, "{\"a\":\"$a\"}"));
        assert_eq!(read("escape=none '$a'").unwrap().escape, Escape::None);
    }

    #[test]
    fn broken_directives_say_why() {
        assert!(read("log_format main '$a").unwrap_err().contains("unclosed"));
        assert!(read("log_format main escape=xml '$a'").unwrap_err().contains("escape=xml"));
        assert!(read("log_format main;").is_err());
        assert!(read("log_format '$a';").unwrap_err().contains("name"));
        assert!(read("log_format m '$a'; '$b'").unwrap_err().contains("after"));
    }
}
