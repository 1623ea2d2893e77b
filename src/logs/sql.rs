//! SQL fingerprints for apps that log whole statements (MyBatis `boundSql`, Hibernate): the
//! statement is normalised — literals and IN-lists replaced by `?`, whitespace collapsed,
//! lower-cased — and hashed, so the same query counts as one whatever its parameters.

use std::sync::OnceLock;

pub fn normalize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            '\'' => {
                while let Some(q) = chars.next() {
                    if q == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push('?');
            }
            c if c.is_ascii_digit()
                && !out
                    .chars()
                    .last()
                    .is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '.') =>
            {
                while chars.peek().is_some_and(|d| d.is_ascii_digit() || *d == '.') {
                    chars.next();
                }
                out.push('?');
            }
            c => out.extend(c.to_lowercase()),
        }
    }
    // Punctuation hugs its neighbours: "a , b" and "a, b" fingerprint alike.
    let spaced = out
        .trim()
        .replace(" ,", ",")
        .replace(",", ", ")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(",  ", ", ");
    static IN_LIST: OnceLock<regex::Regex> = OnceLock::new();
    let in_list =
        IN_LIST.get_or_init(|| regex::Regex::new(r"\bin \(\?(?:, \?)*\)").expect("static regex"));
    in_list.replace_all(&spaced, "in (?)").into_owned()
}

/// 32 hex digits of the SHA-256 of the normalised statement.
pub fn fingerprint(normalized: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, normalized.as_bytes());
    crate::probe::certs::hex(&digest.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_lists_and_whitespace() {
        let a = normalize("select * from orders o\n        where o.id = 42 and name = 'O''Brien'\n  and user_id in (1, 2, 3)");
        assert_eq!(a, "select * from orders o where o.id = ? and name = ? and user_id in (?)");
        let b =
            normalize("SELECT *  FROM orders o WHERE o.id = 7 AND name = 'x' AND user_id IN (9)");
        assert_eq!(a, b);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a).len(), 32);
        assert_eq!(
            normalize("select t1.uf_seq\n              ,t1.urfee_cd from tb_fee t1"),
            "select t1.uf_seq, t1.urfee_cd from tb_fee t1"
        );
    }
}
