//! Parsers: turn a record's text into fields. nginx (its `log_format` compiled), Spring Boot,
//! regex (named captures) and JSON lines.

pub mod nginx;
pub mod spring;

use crate::logs::record::{Schema, Values};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Record,
    /// The text is not of this format (counted as unmatched).
    Unmatched,
    /// It claims to be (a JSON line) but is broken (counted as a parse error).
    Error,
}

pub enum Parser {
    Nginx(nginx::NginxFormat),
    Spring(spring::SpringFormat),
    Regex(regex::Regex),
    Json,
}

impl Parser {
    /// The fields this parser fills, which take the first indexes of the source's schema;
    /// JSON fills whatever fields the schema names.
    pub fn fields(&self) -> Vec<String> {
        match self {
            Parser::Nginx(f) => f.fields().to_vec(),
            Parser::Spring(_) => spring::FIELDS.iter().map(|f| f.to_string()).collect(),
            Parser::Regex(r) => r.capture_names().flatten().map(str::to_string).collect(),
            Parser::Json => Vec::new(),
        }
    }

    /// Whether a rule may name a field the parser did not declare.
    pub fn open_schema(&self) -> bool {
        matches!(self, Parser::Json)
    }

    pub fn parse<'a>(&self, record: &'a str, schema: &Schema, values: &mut Values<'a>) -> Parsed {
        match self {
            Parser::Nginx(f) => f.parse(record, values),
            Parser::Spring(f) => f.parse(record, values),
            Parser::Regex(r) => match r.captures(record) {
                Some(caps) => {
                    // Fields are the named groups, in order; unnamed groups take no field.
                    let named = r.capture_names().enumerate().filter(|(_, name)| name.is_some());
                    for (field, (group, _)) in named.enumerate() {
                        values[field] = caps.get(group).map(|m| Cow::Borrowed(m.as_str()));
                    }
                    Parsed::Record
                }
                None => Parsed::Unmatched,
            },
            Parser::Json => parse_json(record, schema, values),
        }
    }
}

fn parse_json<'a>(record: &'a str, schema: &Schema, values: &mut Values<'a>) -> Parsed {
    let trimmed = record.trim();
    if !trimmed.starts_with('{') {
        return Parsed::Unmatched;
    }
    let Ok(object) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(trimmed)
    else {
        return Parsed::Error;
    };
    for (i, name) in schema.names().iter().enumerate() {
        let mut value = object.get(name.as_str());
        if value.is_none() && name.contains('.') {
            let mut parts = name.split('.');
            let first = parts.next().and_then(|p| object.get(p));
            value = parts.try_fold(first, |v, p| Some(v.and_then(|v| v.get(p)))).flatten();
        }
        values[i] = match value {
            Some(serde_json::Value::String(s)) => Some(Cow::Owned(s.clone())),
            Some(serde_json::Value::Null) | None => None,
            Some(other) => Some(Cow::Owned(other.to_string())),
        };
    }
    Parsed::Record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_and_errors() {
        let schema =
            Schema::new(vec!["QHash".into(), "sql".into(), "meta.ms".into(), "absent".into()]);
        let mut values: Values = vec![None; 4];
        let line = r#"{"QHash": "abc", "sql": "select \"x\" from t", "meta": {"ms": 12}}"#;
        assert_eq!(Parser::Json.parse(line, &schema, &mut values), Parsed::Record);
        assert_eq!(values[0].as_deref(), Some("abc"));
        assert_eq!(values[1].as_deref(), Some("select \"x\" from t"));
        assert_eq!(values[2].as_deref(), Some("12"));
        assert_eq!(values[3], None);
        assert_eq!(Parser::Json.parse("{\"broken\": ", &schema, &mut values), Parsed::Error);
        assert_eq!(Parser::Json.parse("plain text", &schema, &mut values), Parsed::Unmatched);
    }
}
