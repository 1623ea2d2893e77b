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

/// A record's fields read as numbers, each parsed at most once however many rules ask.
#[derive(Default)]
pub struct Numbers {
    parsed: Vec<Option<Option<f64>>>,
}

impl Numbers {
    /// Forgets the numbers of the last record, for a record of `fields` fields.
    pub fn clear(&mut self, fields: usize) {
        self.parsed.clear();
        self.parsed.resize(fields, None);
    }

    /// `values[field]` as a [`number`].
    pub fn of(&mut self, values: &Values, field: usize) -> Option<f64> {
        *self.parsed[field].get_or_insert_with(|| values[field].as_deref().and_then(number))
    }
}

/// A field as a number: `-` (nginx's "no value") is none; a comma list such as nginx's
/// `$upstream_response_time` of retried requests (`0.010, 0.020`) is summed.
pub fn number(value: &str) -> Option<f64> {
    let value = value.trim();
    if value.is_empty() || value == "-" {
        return None;
    }
    if let Some(n) = short_decimal(value) {
        return Some(n);
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

/// A plain decimal of at most 15 digits (`200`, `0.123`, `-1.5`), the common case in logs: its
/// digits as an integer are exact in an f64, and so is the power of ten, so one division gives
/// the correctly rounded value, the same as `str::parse` gives, without its general algorithm.
fn short_decimal(text: &str) -> Option<f64> {
    const POWERS: [f64; 16] =
        [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let (negative, digits) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        bytes => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let (mut mantissa, mut count, mut fraction) = (0u64, 0usize, None);
    for (i, &b) in digits.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                count += 1;
            }
            b'.' if fraction.is_none() && i > 0 && i + 1 < digits.len() => {
                fraction = Some(digits.len() - i - 1)
            }
            _ => return None,
        }
    }
    if count > 15 {
        return None;
    }
    let value = mantissa as f64 / POWERS[fraction.unwrap_or(0)];
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::{number, short_decimal};

    /// The short path gives exactly what `str::parse` gives, and leaves the rest to it.
    #[test]
    fn short_decimals_equal_the_full_parse() {
        for text in [
            "0",
            "200",
            "503",
            "0.001",
            "0.123",
            "1.000",
            "-1.5",
            "12345.678901234",
            "0.1",
            "999999999999999",
            "0.00000000000001",
            "3.14159265358979",
        ] {
            assert_eq!(short_decimal(text), Some(text.parse::<f64>().unwrap()), "{text}");
        }
        for text in ["", "-", ".5", "5.", "1.2.3", "1e3", "+1", "1234567890123456", "0x10", " 1"] {
            assert_eq!(short_decimal(text), None, "{text}");
        }
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 1_000_000_000_000_000) as f64;
            let text = format!("{}", digits / 10f64.powi((x >> 60) as i32));
            if let Some(fast) = short_decimal(&text) {
                assert_eq!(fast, text.parse::<f64>().unwrap(), "{text}");
            }
        }
    }

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
