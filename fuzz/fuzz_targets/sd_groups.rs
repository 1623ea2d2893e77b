//! Service discovery target groups (file_sd files and http_sd answers), JSON and YAML, as
//! lookout reads them, then each target's labels through relabelling rules of every action.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout::config::probes::is_label_name;
use lookout::config::{ProbesFile, Source};
use lookout::discovery::relabel::{self, Rule};
use std::sync::OnceLock;

/// Rules a discovered label set may meet: every action, templates, and a labelmap that can
/// make names that are none.
const RULES: &str = r#"modules: {m: {prober: tcp}}
probes:
  - name: p
    module: m
    file_sd_configs: [{files: [t.json]}]
    relabel_configs:
      - {source_labels: [__meta_x, env], separator: '/', regex: '(.*)/(.+)', target_label: 'x_$2', replacement: '${1}-$2'}
      - {source_labels: [__address__], regex: '([^:]+):(\d+)', target_label: port, replacement: '$2'}
      - {source_labels: [env], target_label: env, action: lowercase}
      - {source_labels: [env], target_label: ENV, action: uppercase}
      - {source_labels: [__address__], modulus: 7, target_label: bucket, action: hashmod}
      - {regex: '__meta_(.*)', replacement: 'meta_$1', action: labelmap}
      - {regex: '__meta_(.*)', replacement: '$1', action: labelmap}
      - {regex: 'tmp_.*', action: labeldrop}
      - {source_labels: [a], target_label: b, action: keepequal}
      - {source_labels: [c], target_label: d, action: dropequal}
      - {source_labels: [skip], regex: 'yes', action: drop}
      - {source_labels: [__address__], regex: '.+', action: keep}
      - {regex: '.*', action: labelkeep}
"#;

fn rules() -> &'static [Rule] {
    static RULES_PREPARED: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES_PREPARED.get_or_init(|| {
        let source = Source::from_text(std::path::Path::new("p.yaml"), RULES).unwrap();
        let file = ProbesFile::load(&source).unwrap();
        let configs = &file.probes[0].relabel_configs;
        configs.iter().map(|rule| Rule::prepare(rule, &source).unwrap()).collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for json in [true, false] {
        if let Ok(groups) = lookout::discovery::parse_groups(text, json) {
            for group in &groups {
                assert!(group.labels.keys().all(|name| is_label_name(name)));
                for address in &group.targets {
                    // As a target starts: a label with an empty value is none.
                    let given = group.labels.iter().filter(|(_, value)| !value.is_empty());
                    let mut labels: relabel::Labels =
                        given.map(|(k, v)| (k.clone(), v.clone())).collect();
                    labels.insert("__address__".into(), address.clone());
                    if relabel::apply(rules(), &mut labels) {
                        assert!(labels.values().all(|value| !value.is_empty()));
                    }
                }
            }
        }
    }
});
