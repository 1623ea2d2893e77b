//! Typed configuration values that validate while they are parsed, so a bad value is
//! reported with its exact line and column: durations, byte sizes, regexes, IP protocols.

use serde::de::{Deserializer, Error};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// A Prometheus-style duration: `500ms`, `30s`, `1m30s`, `2h`, `30d`, `1w`, `1y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PromDuration(pub Duration);

impl PromDuration {
    pub fn parse(text: &str) -> Result<PromDuration, String> {
        let invalid =
            || format!("invalid duration {text:?} (expected e.g. 500ms, 30s, 1m30s, 30d)");
        if text == "0" {
            return Ok(PromDuration(Duration::ZERO));
        }
        let mut total_ms: u128 = 0;
        let mut rest = text;
        if rest.is_empty() {
            return Err(invalid());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
            if digits == 0 {
                return Err(invalid());
            }
            let number: u128 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit_ms: u128 = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 604_800_000,
                "y" => 31_536_000_000,
                _ => return Err(invalid()),
            };
            total_ms = number
                .checked_mul(unit_ms)
                .and_then(|v| v.checked_add(total_ms))
                .ok_or_else(invalid)?;
            rest = &rest[unit_len..];
        }
        let ms = u64::try_from(total_ms).map_err(|_| invalid())?;
        Ok(PromDuration(Duration::from_millis(ms)))
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PromDuration::parse(&text).map_err(D::Error::custom)
    }
}

/// A byte count as blackbox writes it: a plain number or `10KB`, `5MiB`, `1GB` (all base 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => t.parse().map_err(D::Error::custom),
        }
    }
}

/// The text form, shared by the YAML files and flags such as `--probe.body-memory-limit`.
impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<ByteSize, String> {
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let number: u64 = text[..split]
            .parse()
            .map_err(|_| format!("invalid size {text:?} (expected e.g. 1048576, 512KB, 10MiB)"))?;
        let factor: u64 = match text[split..].trim() {
            "" | "B" => 1,
            "KB" | "KiB" | "K" => 1 << 10,
            "MB" | "MiB" | "M" => 1 << 20,
            "GB" | "GiB" | "G" => 1 << 30,
            unit => return Err(format!("invalid size unit {unit:?} in {text:?} (B, KB, MB, GB)")),
        };
        number
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("size {text:?} is too large"))
    }
}

/// A regular expression that matches anywhere in its input, as blackbox's do.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        regex::Regex::new(&text)
            .map(Pattern)
            .map_err(|e| D::Error::custom(format!("invalid regexp: {e}")))
    }
}

/// The same for byte strings (response bodies need not be UTF-8).
#[derive(Debug, Clone)]
pub struct BytesPattern(pub regex::bytes::Regex);

impl<'de> Deserialize<'de> for BytesPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        regex::bytes::Regex::new(&text)
            .map(BytesPattern)
            .map_err(|e| D::Error::custom(format!("invalid regexp: {e}")))
    }
}

/// A regular expression that must match its whole input, as Prometheus relabelling's do.
#[derive(Debug, Clone)]
pub struct AnchoredPattern(pub regex::Regex);

impl<'de> Deserialize<'de> for AnchoredPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        regex::Regex::new(&format!("^(?:{text})$"))
            .map(AnchoredPattern)
            .map_err(|e| D::Error::custom(format!("invalid regexp: {e}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum IpProtocol {
    #[serde(rename = "ip4", alias = "ipv4")]
    V4,
    #[default]
    #[serde(rename = "ip6", alias = "ipv6")]
    V6,
}

/// TLS protocol versions as blackbox names them. rustls speaks only TLS 1.2 and 1.3, so the
/// older ones are accepted as a lower bound (and mean 1.2) but refused as an upper bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let p = |s| PromDuration::parse(s).map(|d| d.0);
        assert_eq!(p("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(p("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(p("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(p("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(p("0"), Ok(Duration::ZERO));
        for bad in ["", "s", "10", "1.5s", "-1s", "10x", "99999999999999999999y"] {
            assert!(p(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn sizes() {
        let s = |y: &str| serde_saphyr::from_str::<ByteSize>(y).map(|b| b.0);
        assert_eq!(s("1024").unwrap(), 1024);
        assert_eq!(s("10KB").unwrap(), 10240);
        assert_eq!(s("2MiB").unwrap(), 2 << 20);
        assert!(s("10XB").is_err());
    }
}
