//! A record's fields: values borrowed from the record text where possible, addressed by an
//! index fixed when the configuration is compiled, so rules never look names up per line.

use std::borrow::Cow;

pub type Values<'a> = Vec<Option<Cow<'a, str>>>;

/// The field names of one source: its parser's, then those added by `extract` and the SQL
/// fingerprint; for JSON, every field a rule names.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    names: Vec<String>,
}

impl Schema {
    pub fn new(names: Vec<String>) -> Schema {
        Schema { names }
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The index of `name`, adding it when absent.
    pub fn add(&mut self, name: &str) -> usize {
        self.index(name).unwrap_or_else(|| {
            self.names.push(name.to_string());
            self.names.len() - 1
        })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn field_count(&self) -> usize {
        self.names.len()
    }

    /// The index of a field a rule or option names: a field the parser fills, or, for a parser
    /// whose records carry any field (JSON), a new one.
    pub fn resolve(&mut self, name: &str, open: bool) -> Result<usize, String> {
        match self.index(name) {
            Some(i) => Ok(i),
            None if open => Ok(self.add(name)),
            None => {
                Err(format!("unknown field {name:?}; this source has: {}", self.names.join(", ")))
            }
        }
    }
}

/// A field as a number: `-` (nginx's "no value") is none; a comma list such as nginx's
/// `$upstream_response_time` of retried requests (`0.010, 0.020`) is summed.
pub fn number(value: &str) -> Option<f64> {
    let value = value.trim();
    if value.is_empty() || value == "-" {
        return None;
    }
    if let Ok(n) = value.parse::<f64>() {
        return n.is_finite().then_some(n);
    }
    let mut total = 0.0;
    let mut any = false;
    for part in value.split([',', ':']) {
        let part = part.trim();
        if part == "-" {
            continue;
        }
        total += part.parse::<f64>().ok().filter(|n| n.is_finite())?;
        any = true;
    }
    any.then_some(total).filter(|t| t.is_finite())
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers() {
        assert_eq!(number("0.125"), Some(0.125));
        assert_eq!(number("-"), None);
        assert_eq!(number(""), None);
        assert_eq!(number("0.010, 0.020"), Some(0.03));
        assert_eq!(number("0.010, - : 0.5"), Some(0.51));
        assert_eq!(number("abc"), None);
        assert_eq!(number("NaN"), None);
        assert_eq!(number("1e308, 1e308"), None);
    }
}
