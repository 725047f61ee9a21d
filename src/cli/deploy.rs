//! The operator's deploy command (install the new certificate, reload the
//! MTA), run by a rollover once it is safe. It runs under `sh -c` with the
//! rollover's facts in its environment; what it prints goes to stderr, so
//! that the report on stdout stays machine-readable.

use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::Duration;

use crate::core::rollover::procedure::DeployRun;

use super::new_cert::NewCertArgs;
use super::report_args::now;

/// Runs `cmd`; a command that outlives `timeout_secs` is killed (status `None`).
pub async fn run(cmd: &str, domain: &str, new: &NewCertArgs, timeout_secs: u64) -> DeployRun {
    let at = now();
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .env("DANE_AUDIT_DOMAIN", domain)
        .env("DANE_AUDIT_CERT", &new.cert)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(p) = &new.chain {
        c.env("DANE_AUDIT_CHAIN", p);
    }
    if let Some(p) = &new.key {
        c.env("DANE_AUDIT_KEY", p);
    }
    if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
        c.stdout(Stdio::from(fd));
    }
    let status = match tokio::time::timeout(Duration::from_secs(timeout_secs), c.status()).await {
        Ok(Ok(s)) => s.code(),
        Ok(Err(e)) => {
            eprintln!("dane-audit: cannot run the deploy command: {e}");
            None
        }
        Err(_) => {
            eprintln!("dane-audit: the deploy command ran longer than {timeout_secs} s: killed");
            None
        }
    };
    DeployRun { at, status }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> NewCertArgs {
        NewCertArgs {
            cert: "new.pem".into(),
            chain: None,
            key: None,
        }
    }

    #[tokio::test]
    async fn status_environment_and_timeout() {
        let ok = run(
            "test \"$DANE_AUDIT_DOMAIN\" = example.org && test \"$DANE_AUDIT_CERT\" = new.pem",
            "example.org",
            &args(),
            10,
        )
        .await;
        assert!(ok.succeeded(), "{ok:?}");
        let failed = run("exit 3", "example.org", &args(), 10).await;
        assert_eq!(failed.status, Some(3));
        let t0 = std::time::Instant::now();
        let slow = run("sleep 30", "example.org", &args(), 1).await;
        assert_eq!(slow.status, None);
        assert!(t0.elapsed() < Duration::from_secs(10));
    }
}
