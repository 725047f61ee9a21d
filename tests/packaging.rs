//! What ships next to the binary is generated from the same clap
//! definitions as `--help`: the man pages carry exactly the flags `--help`
//! lists, the bash completion completes subcommands and flags, and
//! `--version` names the revision.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dane-audit"))
}

fn stdout(args: &[&str]) -> String {
    let out = bin().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Long and short flags as `--help` lists them (the lines of its options).
fn help_flags(text: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for line in text.lines() {
        let t = line.trim_start();
        if !t.starts_with('-') {
            continue;
        }
        for word in t.split([',', ' ', '=', '[', '<']) {
            let w = word.trim_end_matches([']', '>', '.']);
            let is_flag =
                (w.starts_with("--") && w.len() > 2) || (w.len() == 2 && w.starts_with('-'));
            if is_flag
                && w[1..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                flags.insert(w.to_string());
            }
        }
    }
    flags
}

/// The flags of a man page's OPTIONS section (roff `.TP` entries).
fn man_flags(roff: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    let mut lines = roff.lines();
    while let Some(l) = lines.next() {
        if l.trim() != ".TP" {
            continue;
        }
        let Some(entry) = lines.next() else { break };
        let plain = entry
            .replace("\\fB", "")
            .replace("\\fR", "")
            .replace("\\fI", "")
            .replace("\\-", "-");
        for word in plain.split([',', ' ', '=', '[', '<']) {
            let w = word.trim_end_matches([']', '>']);
            let is_flag =
                (w.starts_with("--") && w.len() > 2) || (w.len() == 2 && w.starts_with('-'));
            if is_flag {
                flags.insert(w.to_string());
            }
        }
    }
    flags
}

fn subcommands() -> Vec<String> {
    let help = stdout(&["--help"]);
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help" && l_is_command(c))
        .map(String::from)
        .collect()
}

fn l_is_command(word: &str) -> bool {
    word.chars().all(|c| c.is_ascii_lowercase() || c == '-')
}

#[test]
fn man_pages_and_help_list_the_same_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin().arg("manpages").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let subs = subcommands();
    assert!(subs.len() >= 9, "{subs:?}");
    let page = |name: &str| {
        let p = dir.path().join(format!("{name}.1"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    assert_eq!(
        man_flags(&page("dane-audit")),
        help_flags(&stdout(&["--help"])),
        "dane-audit.1"
    );
    let mut compared = 0;
    for sub in &subs {
        let help = help_flags(&stdout(&[sub, "--help"]));
        let man = man_flags(&page(&format!("dane-audit-{sub}")));
        assert_eq!(man, help, "dane-audit-{sub}.1 and `{sub} --help` differ");
        compared += help.len();
    }
    assert!(compared > 100, "only {compared} flags compared");
    // The hidden generator has no page of its own.
    assert!(!dir.path().join("dane-audit-manpages.1").exists());
}

/// Completions a bash user gets after pressing Tab on `line`.
fn bash_complete(script: &Path, line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let program = format!(
        "source {}\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{line}'\nCOMP_POINT={}\n_dane__audit dane-audit '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        words.len() - 1,
        line.len(),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(program)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn bash_completion_completes_subcommands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("dane-audit.bash");
    std::fs::write(&script, stdout(&["completions", "bash"])).unwrap();
    let subs = bash_complete(&script, "dane-audit ro");
    assert_eq!(subs, ["rollover"], "{subs:?}");
    let flags = bash_complete(&script, "dane-audit check --res");
    assert!(flags.contains(&"--resolver".to_string()), "{flags:?}");
    assert!(flags.iter().all(|f| f.starts_with("--res")), "{flags:?}");
    let scan = bash_complete(&script, "dane-audit scan --sh");
    assert_eq!(scan, ["--shard"], "{scan:?}");
    for shell in ["zsh", "fish"] {
        assert!(
            stdout(&["completions", shell]).contains("rollover"),
            "{shell}"
        );
    }
}

#[test]
fn version_names_the_revision_and_verbose_the_libraries() {
    let v = stdout(&["--version"]);
    assert!(
        v.starts_with(&format!("dane-audit {} (git ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert_eq!(v.lines().count(), 1);
    let vv = stdout(&["--version", "--verbose"]);
    assert!(vv.contains("hickory 0.26"), "{vv}");
    assert!(vv.contains("rustls 0.23"), "{vv}");
    assert!(vv.contains("key tags 20326, 38696"), "{vv}");
    let out = bin().arg("--verbose").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--verbose alone is a usage error"
    );
}
