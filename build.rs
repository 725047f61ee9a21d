//! Build facts for `dane-audit --version`: the git revision the binary was
//! built from (or `DANE_AUDIT_GIT_REV` from the packager, when building
//! from a source tarball), and the versions of the DNS and TLS crates
//! actually linked, read from Cargo.lock.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn locked_version(lock: &str, name: &str) -> String {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == wanted
            && let Some(v) = lines
                .next()
                .and_then(|v| v.trim().strip_prefix("version = "))
        {
            return v.trim_matches('"').to_string();
        }
    }
    "unknown".to_string()
}

fn main() {
    println!("cargo:rerun-if-env-changed=DANE_AUDIT_GIT_REV");
    println!("cargo:rerun-if-changed=Cargo.lock");
    // HEAD, the branch it names and packed-refs: not all of refs/, which
    // other worktrees and fetches change, and each change rebuilt the crate.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for p in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        // A path that does not exist (no packed-refs yet) would make cargo
        // rebuild every time.
        if let Some(path) = git(&["rev-parse", "--git-path", p])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let rev = std::env::var("DANE_AUDIT_GIT_REV")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=DANE_AUDIT_GIT_REV={rev}");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    for (var, krate) in [
        ("DANE_AUDIT_HICKORY_VERSION", "hickory-proto"),
        ("DANE_AUDIT_RUSTLS_VERSION", "rustls"),
        ("DANE_AUDIT_WEBPKI_VERSION", "rustls-webpki"),
    ] {
        println!("cargo:rustc-env={var}={}", locked_version(&lock, krate));
    }
}
