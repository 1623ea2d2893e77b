//! Prometheus' target relabelling (`relabel_configs`), so the rules a scrape job already has
//! work on discovered targets as they do in Prometheus: the same actions, defaults, checks at
//! load, anchored regexes, `$1`/`${name}` expansion and MD5 `hashmod`.
//!
//! A discovered target starts as the probe's `labels`, its group's labels (meta labels
//! included), `__address__` (the target) and the source's meta label (`__meta_filepath` or
//! `__meta_url`, as Prometheus names them); the rules then run in order, and any may drop it.

use crate::config::probes::{is_label_name, RelabelConfig};
use crate::config::{ConfigError, Source};
use md5::Digest;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

/// A target's labels while the rules run.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    const ALL: [(&'static str, Action); 11] = [
        ("replace", Action::Replace),
        ("keep", Action::Keep),
        ("drop", Action::Drop),
        ("keepequal", Action::KeepEqual),
        ("dropequal", Action::DropEqual),
        ("hashmod", Action::HashMod),
        ("labelmap", Action::LabelMap),
        ("labeldrop", Action::LabelDrop),
        ("labelkeep", Action::LabelKeep),
        ("lowercase", Action::Lowercase),
        ("uppercase", Action::Uppercase),
    ];

    fn name(self) -> &'static str {
        Action::ALL.iter().find(|(_, a)| *a == self).map_or("", |(n, _)| n)
    }
}

/// One rule, checked and compiled.
#[derive(Debug)]
pub struct Rule {
    action: Action,
    source_labels: Vec<String>,
    separator: String,
    regex: regex::Regex,
    modulus: u64,
    target_label: String,
    replacement: String,
}

/// Labels Prometheus gives its scrape targets before relabelling, which lookout's have not.
const SCRAPE_LABELS: [&str; 5] =
    ["job", "__scheme__", "__metrics_path__", "__scrape_interval__", "__scrape_timeout__"];
/// The `__param_` labels a discovered target's probe reads.
const READ_PARAMS: [&str; 2] = ["__param_target", "__param_module"];

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

impl Rule {
    /// Checks one entry as Prometheus' `relabel.Config.Validate` does; errors point at it.
    pub fn prepare(entry: &Spanned<RelabelConfig>, source: &Source) -> Result<Rule, ConfigError> {
        let config = &entry.value;
        let error =
            |message: String| source.error_at_span(entry, format!("relabel_configs: {message}"));
        let action = match &config.action {
            None => Action::Replace,
            Some(a) => {
                let lower = a.value.to_ascii_lowercase();
                let found = Action::ALL.iter().find(|(name, _)| *name == lower);
                let names: Vec<&str> = Action::ALL.iter().map(|(n, _)| *n).collect();
                found.map(|(_, action)| *action).ok_or_else(|| {
                    source.error_at_span(
                        a,
                        format!(
                            "relabel_configs: unknown action {:?} (actions: {})",
                            a.value,
                            names.join(", ")
                        ),
                    )
                })?
            }
        };
        for label in config.source_labels.iter().flatten() {
            if !is_label_name(&label.value) {
                return Err(source.error_at_span(
                    label,
                    format!("relabel_configs: {:?} is not a label name", label.value),
                ));
            }
        }
        let regex_text = config.regex.as_ref().map_or(DEFAULT_REGEX, |r| r.value.as_str());
        // Anchored, and `.` matching a newline too, as Prometheus compiles it.
        let regex = regex::Regex::new(&format!("^(?s:{regex_text})$")).map_err(|anchored| {
            // Said of the text as written, not of the anchored one.
            let e = regex::Regex::new(regex_text).err().unwrap_or(anchored);
            match &config.regex {
                Some(r) => source.error_at_span(r, format!("relabel_configs: invalid regexp: {e}")),
                None => error(format!("invalid regexp: {e}")),
            }
        })?;
        let rule = Rule {
            action,
            source_labels: config.source_labels.iter().flatten().map(|l| l.value.clone()).collect(),
            separator: config.separator.clone().unwrap_or_else(|| DEFAULT_SEPARATOR.into()),
            regex,
            modulus: config.modulus.unwrap_or(0),
            target_label: config.target_label.as_ref().map(|t| t.value.clone()).unwrap_or_default(),
            replacement: config
                .replacement
                .as_ref()
                .map_or_else(|| DEFAULT_REPLACEMENT.into(), |r| r.value.clone()),
        };
        rule.validate(regex_text, config.source_labels.is_some()).map_err(error)?;
        warn_of_scrape_labels(config, source);
        Ok(rule)
    }

    /// Prometheus' checks of the combination, with its messages.
    fn validate(&self, regex_text: &str, source_labels_given: bool) -> Result<(), String> {
        use Action::*;
        let name = self.action.name();
        let target = self.target_label.as_str();
        let invalid_target = || format!("{target:?} is invalid 'target_label' for {name} action");
        if self.action == HashMod && self.modulus == 0 {
            return Err("hashmod requires a non-zero 'modulus'".into());
        }
        let needs_target = [Replace, HashMod, Lowercase, Uppercase, KeepEqual, DropEqual];
        if needs_target.contains(&self.action) && target.is_empty() {
            return Err(format!("the {name} action requires 'target_label'"));
        }
        let plain_target = [HashMod, Lowercase, Uppercase, KeepEqual, DropEqual];
        if plain_target.contains(&self.action) && !is_label_name(target) {
            return Err(invalid_target());
        }
        if self.action == Replace && !is_label_template(target) {
            return Err(invalid_target());
        }
        let defaults = self.separator == DEFAULT_SEPARATOR
            && self.modulus == 0
            && self.replacement == DEFAULT_REPLACEMENT;
        if [Lowercase, Uppercase, KeepEqual, DropEqual].contains(&self.action)
            && self.replacement != DEFAULT_REPLACEMENT
        {
            return Err(format!("'replacement' can not be set for {name} action"));
        }
        if self.action == LabelMap && !is_label_template(&self.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {name} action",
                self.replacement
            ));
        }
        if [KeepEqual, DropEqual].contains(&self.action)
            && !(defaults && regex_text == DEFAULT_REGEX)
        {
            return Err(format!(
                "{name} action requires only 'source_labels' and 'target_label', and no other fields"
            ));
        }
        if [LabelDrop, LabelKeep].contains(&self.action)
            && (source_labels_given || !target.is_empty() || !defaults)
        {
            return Err(format!("{name} action requires only 'regex', and no other fields"));
        }
        Ok(())
    }

    /// Runs the rule on `labels`; false when it drops the target. A label set to an empty
    /// value is removed, as in Prometheus.
    fn apply(&self, labels: &mut Labels) -> bool {
        let values: Vec<&str> = self.source_labels.iter().map(|name| get(labels, name)).collect();
        let value = values.join(&self.separator);
        match self.action {
            Action::Drop => return !self.regex.is_match(&value),
            Action::Keep => return self.regex.is_match(&value),
            // A missing label reads as empty, as in Prometheus.
            Action::DropEqual => return get(labels, &self.target_label) != value,
            Action::KeepEqual => return get(labels, &self.target_label) == value,
            Action::Replace => {
                let Some(captures) = self.regex.captures(&value) else { return true };
                let mut target = String::new();
                captures.expand(&self.target_label, &mut target);
                if !is_label_name(&target) {
                    return true;
                }
                let mut replaced = String::new();
                captures.expand(&self.replacement, &mut replaced);
                set(labels, target, replaced);
            }
            Action::Lowercase => set(labels, self.target_label.clone(), value.to_lowercase()),
            Action::Uppercase => set(labels, self.target_label.clone(), value.to_uppercase()),
            Action::HashMod => {
                let hash = md5::Md5::digest(value.as_bytes());
                let low: [u8; 8] = hash[8..].try_into().expect("MD5 gives 16 bytes");
                let bucket = u64::from_be_bytes(low) % self.modulus;
                set(labels, self.target_label.clone(), bucket.to_string());
            }
            Action::LabelMap => {
                let matched: Vec<(String, String)> = labels
                    .iter()
                    .filter(|(name, _)| self.regex.is_match(name))
                    .map(|(name, value)| {
                        let to = self.regex.replace_all(name, self.replacement.as_str());
                        (to.into_owned(), value.clone())
                    })
                    .collect();
                for (name, value) in matched {
                    set(labels, name, value);
                }
            }
            Action::LabelDrop => labels.retain(|name, _| !self.regex.is_match(name)),
            Action::LabelKeep => labels.retain(|name, _| self.regex.is_match(name)),
        }
        true
    }
}

/// A rule copied from a scrape job may read or set labels only Prometheus' scrapes have:
/// said at load, as such a rule does nothing here.
fn warn_of_scrape_labels(config: &RelabelConfig, source: &Source) {
    let sources = config.source_labels.iter().flatten();
    for label in sources.chain(config.target_label.as_ref()) {
        let name = label.value.as_str();
        if SCRAPE_LABELS.contains(&name) {
            source.warn_at_span(
                label,
                format!("relabel_configs: {name} is a label of Prometheus' scrapes; a discovered target here has none"),
            );
        } else if name.starts_with("__param_") && !READ_PARAMS.contains(&name) {
            source.warn_at_span(
                label,
                format!(
                    "relabel_configs: of the __param_ labels, only {} are read",
                    READ_PARAMS.join(" and ")
                ),
            );
        }
    }
}

/// Runs `rules` in order on `labels`; false as soon as one drops the target.
pub fn apply(rules: &[Rule], labels: &mut Labels) -> bool {
    rules.iter().all(|rule| rule.apply(labels))
}

fn get<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

fn set(labels: &mut Labels, name: String, value: String) {
    if value.is_empty() {
        labels.remove(&name);
    } else {
        labels.insert(name, value);
    }
}

/// A label name that may hold `$1`/`${name}` references, as Prometheus' `relabelTarget`.
fn is_label_template(text: &str) -> bool {
    if !text.contains('$') {
        return is_label_name(text);
    }
    static TEMPLATE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            regex::Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").expect("valid")
        })
        .is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn rules(yaml: &str) -> Result<Vec<Rule>, String> {
        #[derive(serde::Deserialize)]
        struct File {
            relabel_configs: Vec<Spanned<RelabelConfig>>,
        }
        let source = Source::from_text(Path::new("p.yaml"), yaml).unwrap();
        let file: File = source.parse().map_err(|e| e.to_string())?;
        file.relabel_configs
            .iter()
            .map(|entry| Rule::prepare(entry, &source).map_err(|e| e.to_string()))
            .collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn run(yaml: &str, start: &[(&str, &str)]) -> Option<Labels> {
        let mut labels = labels(start);
        apply(&rules(yaml).unwrap(), &mut labels).then_some(labels)
    }

    #[test]
    fn actions_as_prometheus() {
        let start = [("__address__", "web-1.eu:443"), ("__meta_dc", "eu-west"), ("env", "Prod")];
        let out = run(
            "relabel_configs:\n\
             - {source_labels: [__meta_dc], target_label: dc}\n\
             - {source_labels: [__address__], regex: '([^.]+)\\..*', target_label: host}\n\
             - {source_labels: [env], target_label: env, action: Lowercase}\n\
             - {source_labels: [dc, host], separator: '/', target_label: where}\n\
             - {source_labels: [nothing], regex: 'x', target_label: dc, replacement: y}\n",
            &start,
        )
        .unwrap();
        assert_eq!(out["dc"], "eu-west");
        assert_eq!(out["host"], "web-1");
        assert_eq!(out["env"], "prod");
        assert_eq!(out["where"], "eu-west/web-1");
        let keep = "relabel_configs: [{source_labels: [env], regex: prod|staging, action: keep}]";
        assert!(run(keep, &[("env", "prod")]).is_some());
        assert!(run(keep, &[("env", "production")]).is_none(), "anchored");
        assert!(run(keep, &[]).is_none());
        let drop = "relabel_configs: [{source_labels: [__meta_skip], regex: 'true', action: drop}]";
        assert!(run(drop, &[("__meta_skip", "true")]).is_none());
        assert!(run(drop, &[("__meta_skip", "false")]).is_some());
        let equal = "relabel_configs: [{source_labels: [a], target_label: b, action: keepequal}]";
        assert!(run(equal, &[("a", "1"), ("b", "1")]).is_some());
        assert!(run(equal, &[("a", "1"), ("b", "2")]).is_none());
        assert!(run(equal, &[]).is_some(), "missing labels read as empty");
        let newline = "relabel_configs: [{source_labels: [a], regex: 'x.y', action: keep}]";
        assert!(run(newline, &[("a", "x\ny")]).is_some(), "`.` matches a newline");
        let map = "relabel_configs: [{regex: '__meta_(.+)', action: labelmap}]";
        let out = run(map, &[("__meta_rack", "r1"), ("x", "y")]).unwrap();
        assert_eq!(out["rack"], "r1");
        assert_eq!(out["__meta_rack"], "r1");
        let drop_labels = "relabel_configs: [{regex: 'tmp_.*', action: labeldrop}]";
        assert_eq!(run(drop_labels, &[("tmp_a", "1"), ("b", "2")]).unwrap(), labels(&[("b", "2")]));
        let keep_labels = "relabel_configs: [{regex: 'b|__address__', action: labelkeep}]";
        assert_eq!(run(keep_labels, &[("tmp_a", "1"), ("b", "2")]).unwrap(), labels(&[("b", "2")]));
        // An empty replacement removes the label; a template names the target label.
        let empty = "relabel_configs: [{source_labels: [a], target_label: a, replacement: ''}]";
        assert!(run(empty, &[("a", "1")]).unwrap().is_empty());
        let named = "relabel_configs: [{source_labels: [k], regex: '(?P<n>\\w+)=(.*)', \
                     target_label: 'x_${n}', replacement: '$2'}]";
        assert_eq!(run(named, &[("k", "zone=a")]).unwrap()["x_zone"], "a");
    }

    #[test]
    fn hashmod_gives_prometheus_numbers() {
        // Worked out with Prometheus' relabel.Process (md5, low 8 bytes big-endian, modulo).
        let yaml = "relabel_configs: [{source_labels: [__address__], modulus: 8, \
                    target_label: shard, action: hashmod}]";
        for (address, shard) in [("localhost:9090", "2"), ("a", "1"), ("", "6")] {
            assert_eq!(
                run(yaml, &[("__address__", address)]).unwrap()["shard"],
                shard,
                "{address}"
            );
        }
    }

    #[test]
    fn refuses_what_prometheus_refuses() {
        for (yaml, says) in [
            ("[{action: frobnicate}]", "unknown action \"frobnicate\""),
            ("[{source_labels: [a]}]", "requires 'target_label'"),
            ("[{source_labels: [a-b], target_label: x}]", "\"a-b\" is not a label name"),
            ("[{regex: '(', target_label: x}]", "invalid regexp"),
            ("[{target_label: '1x'}]", "is invalid 'target_label'"),
            ("[{action: hashmod, target_label: x}]", "non-zero 'modulus'"),
            ("[{action: lowercase, target_label: x, replacement: y}]", "'replacement' can not"),
            ("[{action: labeldrop, regex: x, target_label: y}]", "requires only 'regex'"),
            ("[{action: labelkeep, source_labels: [a]}]", "requires only 'regex'"),
            ("[{action: keepequal, target_label: x, regex: y}]", "requires only 'source_labels'"),
            ("[{action: labelmap, regex: x, replacement: '-'}]", "invalid 'replacement'"),
        ] {
            let e = rules(&format!("relabel_configs: {yaml}")).unwrap_err();
            assert!(e.contains(says), "{yaml}: {e}");
            assert!(e.contains("p.yaml:1:"), "{yaml}: located: {e}");
        }
        assert!(rules("relabel_configs: [{action: DROP, source_labels: [a]}]").is_ok(), "any case");
    }
}
