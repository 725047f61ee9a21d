//! The example alerting rules (docs/prometheus/alerts.yml) are valid and
//! do what their unit tests say (`promtool test rules`), on the metric
//! names `watch` serves.

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("promtool (Debian package prometheus, scripts/testbed.d/packages.txt) must be installed");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn example_rules_check_and_pass_their_unit_tests() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts.test.yml"]);
}

#[test]
fn rules_name_only_metrics_the_watch_serves() {
    let rules = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/prometheus/alerts.yml"),
    )
    .unwrap();
    let served =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/watch/metrics.rs"))
            .unwrap();
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if let Some(name) = word.strip_prefix("dane_audit_") {
            let base = name.strip_suffix("_total").unwrap_or(name);
            assert!(
                served.contains(&format!("\"dane_audit_{base}\"")),
                "{word} is not served"
            );
        }
    }
}
