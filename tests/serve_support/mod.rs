//! A `dane-audit serve` process for tests, and a tiny blocking HTTP/1.1
//! client that can speak from any loopback source address (127.0.0.0/8
//! is all local, so each address is a different client to the server).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use dane_audit::core::evidence::Timestamp;
use dane_audit::core::finding::{Code, Severity};
use dane_audit::core::verdict::DomainVerdict;
use dane_audit::watch::db::{NewAudit, Store};
use dane_audit::watch::events::EventOptions;
use dane_audit::watch::snapshot::{FindingSnap, Snapshot};

pub const BIN: &str = env!("CARGO_BIN_EXE_dane-audit");

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// The last stderr lines (the access log), drained all the time so
    /// the server never blocks on a full pipe.
    pub log: Arc<Mutex<VecDeque<String>>>,
}

/// Stderr lines kept.
const LOG_LINES: usize = 2000;

impl Server {
    /// Starts `dane-audit serve --listen 127.0.0.1:0 ARGS` (or `cmd`, which
    /// must end in the binary, e.g. `ip netns exec NS dane-audit`).
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(Command::new(BIN), args)
    }

    pub fn start_with(mut cmd: Command, args: &[&str]) -> Server {
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start dane-audit serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut started = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !started {
                    started = line.starts_with("dane-audit serve: listening on");
                    let _ = tx.send(line);
                    continue;
                }
                let mut k = kept.lock().unwrap();
                if k.len() == LOG_LINES {
                    k.pop_front();
                }
                k.push_back(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("dane-audit serve: listening on http://")
                    {
                        break rest.trim_end_matches('/').parse().expect("listen address");
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("serve did not start:\n{}", seen.join("\n"));
                }
            }
        };
        Server { child, addr, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn get(&self, path: &str) -> Response {
        self.get_from(None, path)
    }

    /// GET from the given source address (a loopback address).
    pub fn get_from(&self, source: Option<IpAddr>, path: &str) -> Response {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        self.raw_from(source, req.as_bytes())
    }

    pub fn raw(&self, request: &[u8]) -> Response {
        self.raw_from(None, request)
    }

    pub fn raw_from(&self, source: Option<IpAddr>, request: &[u8]) -> Response {
        let mut s = self.connect_from(source);
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        s.write_all(request).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        Response::parse(&buf)
    }

    /// A connection from `source` (default: the kernel's choice).
    pub fn connect_from(&self, source: Option<IpAddr>) -> TcpStream {
        match source {
            None => TcpStream::connect(self.addr).expect("connect"),
            Some(ip) => connect_from(ip, self.addr),
        }
    }

    /// Resident memory of the server process, KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// A sample of a metric (the first line that starts with `name`).
    pub fn metric(&self, name: &str) -> f64 {
        let m = self.get("/metrics");
        m.body
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP connection to `to` from the local address `from`.
pub fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    // std has no bind-before-connect: build the socket by hand.
    let (domain, sa, len) = sockaddr(from);
    // SAFETY: plain socket(2)/bind(2); the fd is owned by the TcpStream after connect.
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let rc = libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "bind {from}: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let (_, to_sa, to_len) = sockaddr_port(to.ip(), to.port());
        let rc = libc::connect(fd, &to_sa as *const _ as *const libc::sockaddr, to_len);
        assert_eq!(
            rc,
            0,
            "connect from {from}: {}",
            std::io::Error::last_os_error()
        );
        stream
    }
}

fn sockaddr(ip: IpAddr) -> (i32, libc::sockaddr_storage, libc::socklen_t) {
    sockaddr_port(ip, 0)
}

fn sockaddr_port(ip: IpAddr, port: u16) -> (i32, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; we fill in one variant.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match ip {
        IpAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(v4).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            (
                libc::AF_INET,
                ss,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        IpAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: port.to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (
                libc::AF_INET6,
                ss,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// Parses a whole HTTP/1.1 response (Content-Length or close-delimited;
    /// chunked bodies are joined).
    pub fn parse(buf: &[u8]) -> Response {
        let text = String::from_utf8_lossy(buf).to_string();
        let Some((head, rest)) = text.split_once("\r\n\r\n") else {
            return Response {
                status: 0,
                headers: Vec::new(),
                body: text,
            };
        };
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        Response {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A DNS "resolver" that receives and never answers (UDP and TCP on one
/// port), so that audits last as long as their DNS timeouts.
pub struct BlackHole {
    pub addr: SocketAddr,
    _udp: std::net::UdpSocket,
    _tcp: std::net::TcpListener,
}

impl BlackHole {
    pub fn new() -> BlackHole {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let udp = std::net::UdpSocket::bind(addr).unwrap();
        BlackHole {
            addr,
            _udp: udp,
            _tcp: tcp,
        }
    }
}

// --- A watch database, for `serve --db` ---------------------------------------

/// Hostile text the watch could store (a reason and a finding come
/// from what servers and zones say).
pub const HOSTILE: &str = "<script>alert(1)</script>";
pub const HOSTILE_IMG: &str = "\"><img src=x onerror=alert(1)>";

fn snap(domain: &str, at: i64, verdict: DomainVerdict, hostile: bool) -> Snapshot {
    Snapshot {
        domain: domain.into(),
        at: Timestamp(at),
        verdict,
        reason: hostile.then(|| HOSTILE.to_string()),
        worst_severity: None,
        mx_failed: false,
        dns_complete: true,
        ns_checked: true,
        findings: if hostile {
            vec![FindingSnap {
                code: Code::TlsaWrongSelector,
                severity: Severity::Error,
                subject: HOSTILE_IMG.into(),
                host: None,
                address: None,
                message: HOSTILE_IMG.into(),
            }]
        } else {
            vec![]
        },
        hosts: vec![],
        rrsig_expires: None,
    }
}

pub fn record(s: &mut Store, domain: &str, at: i64, verdict: DomainVerdict, hostile: bool) {
    let audit = NewAudit::new(
        snap(domain, at, verdict, hostile),
        Timestamp(at),
        Duration::from_millis(120),
        &format!("{{\"domain\":\"{domain}\"}}"),
        "{}",
    );
    s.record(&audit, &EventOptions::default()).unwrap();
}

/// Evaluation time of the first audit in [`watch_db`] (2026-05-28T20:26:40Z).
pub const T0: i64 = 1_780_000_000;

/// A watch database built as `watch` builds it (through its store): `a`
/// passes, passes, fails (with hostile text), passes again, an hour apart;
/// b.example flips between pass and fail `flips` times.
pub fn watch_db(dir: &Path, a: &str, flips: usize) -> PathBuf {
    let path = dir.join("watch.db");
    let mut s = Store::open(&path).unwrap();
    record(&mut s, a, T0, DomainVerdict::Pass, false);
    record(&mut s, a, T0 + 3600, DomainVerdict::Pass, false);
    record(&mut s, a, T0 + 7200, DomainVerdict::Fail, true);
    record(&mut s, a, T0 + 10800, DomainVerdict::Pass, false);
    for i in 0..flips {
        let v = if i % 2 == 0 {
            DomainVerdict::Pass
        } else {
            DomainVerdict::Fail
        };
        record(&mut s, "b.example", T0 + 60 * i as i64, v, false);
    }
    path
}
