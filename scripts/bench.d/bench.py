#!/usr/bin/env python3
"""dane-audit benchmark on the test bed: see scripts/bench (which runs this in its venv).

Builds, inside the test bed's network namespace but with processes and addresses of its
own (203.0.113.100-227, .250, .253), a signed DNS world of N mail domains (each its own
signed zone under a signed root and TLD) whose MX hosts are spread over 128 Postfix
listeners with RSA and ECDSA certificates (DANE-EE 3 1 1 and DANE-TA 2 1 1), about 10%
of domains broken (TLSA mismatch, no STARTTLS, bogus MX signature). Then, one tool at a
time against the same cold resolver, it measures domains/s, CPU seconds per domain (the
tool's processes from wait4 rusage plus every infrastructure process from cgroup cpuacct
accounting plus the idle test bed from /proc) and peak RSS, checks the verdicts, and
prints the ratios, the limit L and dane-audit's share of it.
"""

import argparse
import concurrent.futures
import datetime
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import time

# The test bed's namespace, as scripts/testbed and scripts/bench take it: a second bed
# (DANE_TESTBED_NETNS) must not run its bench inside the first one.
NS = os.environ.get("DANE_TESTBED_NETNS", "dane-testbed")
NSD4 = "203.0.113.250"
RES4 = "203.0.113.253"
HOSTS = 128
SMTP_BASE = 100  # 203.0.113.100 .. 203.0.113.227
# With a shaped network (--rtt/--loss/--dead, issue 19): NSD moves behind dnsdist, which
# answers on NSD4 and on NS_EXTRA more nameserver addresses (198.18.53.0/24, RFC 2544's
# benchmarking range), and Postfix moves to SMTP_BACK_PORT behind the delaying relay.
NSD_BACK = "203.0.113.251"
NS_EXTRA = 100
SMTP_BACK_PORT = 2525
GEN_VERSION = "3"  # bump when generated data changes
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CGROOT = "/sys/fs/cgroup/cpuacct"
NCPU = os.cpu_count() or 2
# One group per bed, so that benches in two beds never count each other's daemons.
CG = CGROOT + "/dane-bench-infra-" + NS

# host indexes that are broken for every domain using them
TLSA_BROKEN = {5, 17, 29, 41, 53}
NO_STARTTLS = {64, 77, 90}


def say(*a):
    print(*a, flush=True)


def netns(*cmd):
    return ["ip", "netns", "exec", NS, *cmd]


def smtp_addr(h):
    return f"203.0.113.{SMTP_BASE + h}"


def host_name(h):
    return f"mx{h:03d}.bench."


def host_kind(h):
    """(key type, usage) of host h."""
    return ("rsa" if h % 2 == 0 else "ecdsa", "ta" if h % 4 == 3 else "ee")


def domain_plan(i):
    """(class, host) of domain i: ~4% TLSA mismatch, ~3% no STARTTLS, ~3% bogus MX."""
    r = i % 100
    good = [h for h in range(HOSTS) if h not in TLSA_BROKEN and h not in NO_STARTTLS]
    if r < 4:
        b = sorted(TLSA_BROKEN)
        return "tlsa-mismatch", b[(i // 100) % len(b)]
    if r < 7:
        b = sorted(NO_STARTTLS)
        return "no-starttls", b[(i // 100) % len(b)]
    h = good[(i * 7919) % len(good)]
    if r < 10:
        return "bogus-mx", h
    return "good", h


EXPECT = {  # class -> (dane-audit verdict, a code that must be there)
    "good": ("pass", None),
    "tlsa-mismatch": ("fail", "tlsa-no-match"),
    "no-starttls": ("fail", "starttls-not-offered"),
    "bogus-mx": ("fail", "mx-bogus"),
}


def domain_name(i):
    return f"d{i:06d}.bench"


def expected(cls, host, shape):
    """(dane-audit verdict, a code that must be there) of a domain: a good domain whose
    MX address is dead cannot be shown to pass, and must never be shown to fail."""
    if cls == "good" and host in shape.dead_hosts:
        return "incomplete", None
    return EXPECT[cls]


def ns_addr(k):
    return f"198.18.53.{1 + k}"


def ns_name(k):
    return f"ns{k:02d}.bench."


class Shape:
    """The shaped network of a run: RTT in ms, loss in % (of DNS queries at the
    authoritative servers), dead in % (of MX addresses and of nameserver addresses,
    dropped by nftables). `on` is false when none of --rtt/--loss/--dead was given: then
    the bench's network is the plain zero-latency one of issue 7."""

    def __init__(self, rtt, loss, dead):
        self.on = any(x is not None for x in (rtt, loss, dead))
        self.rtt, self.loss, self.dead = rtt or 0.0, loss or 0.0, dead or 0.0
        good = [h for h in range(HOSTS) if h not in TLSA_BROKEN and h not in NO_STARTTLS]
        k = round(HOSTS * self.dead / 100)
        # Dead MX hosts are taken among the good ones, so a dead address is the only
        # reason a domain is not `pass`: its verdict must be `incomplete`.
        self.dead_hosts = {good[j * len(good) // k] for j in range(k)} if k else set()
        k = round((NS_EXTRA + 1) * self.dead / 100)
        self.dead_ns = {j * NS_EXTRA // k for j in range(k)} if k else set()

    def dead_addrs(self):
        return [smtp_addr(h) for h in sorted(self.dead_hosts)] + [
            ns_addr(k) for k in sorted(self.dead_ns)]

    def text(self):
        return (f"rtt {self.rtt:g} ms, loss {self.loss:g}%, dead {self.dead:g}% "
                f"({len(self.dead_hosts)} of {HOSTS} MX addresses, {len(self.dead_ns)} of "
                f"{NS_EXTRA + 1} nameserver addresses)")


# ---------------------------------------------------------------- generation ----------
def gen_pki(d):
    """Keys and certificates of the 128 hosts (cached in d)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    os.makedirs(d, exist_ok=True)
    done = os.path.join(d, "tlsa.json")
    if os.path.exists(done):
        return json.load(open(done))
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, key, issuer, issuer_key, ca):
        b = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=400))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            b = b.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return b.sign(issuer_key, hashes.SHA256())

    def spki_sha256(key):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()

    def pem_key(k):
        return k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("DANE bench CA", ca_key, "DANE bench CA", ca_key, True)
    other = ec.generate_private_key(ec.SECP256R1())
    tlsa = {}
    for h in range(HOSTS):
        kind, usage = host_kind(h)
        key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        hn = host_name(h).rstrip(".")
        if usage == "ta":
            leaf = cert(hn, key, "DANE bench CA", ca_key, False)
            chain = [leaf, ca]
            rec = f"2 1 1 {spki_sha256(ca_key)}"
        else:
            leaf = cert(hn, key, hn, key, False)
            chain = [leaf]
            rec = f"3 1 1 {spki_sha256(key)}"
        if h in TLSA_BROKEN:
            rec = f"3 1 1 {spki_sha256(other)}"
        with open(os.path.join(d, f"h{h:03d}.pem"), "wb") as f:
            f.write(pem_key(key))
            for c in chain:
                f.write(c.public_bytes(serialization.Encoding.PEM))
        tlsa[str(h)] = rec
    json.dump(tlsa, open(done, "w"))
    return tlsa


def _key(path):
    """An ECDSA P-256 signing key kept in path (made once)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if os.path.exists(path):
        return serialization.load_pem_private_key(open(path, "rb").read(), None)
    k = ec.generate_private_key(ec.SECP256R1())
    open(path, "wb").write(
        k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return k


def _dnskey(k):
    import dns.dnssec

    return dns.dnssec.make_dnskey(k.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)


def _sign(text, origin, key, out):
    import dns.dnssec
    import dns.zone

    z = dns.zone.from_text(text, origin=origin, relativize=False)
    dns.dnssec.sign_zone(z, keys=[(key, _dnskey(key))], lifetime=30 * 86400)
    z.to_file(out, relativize=False)
    return z


def _corrupt_mx_rrsig(path):
    """Flips a bit of the MX RRSIG's signature: the MX RRset becomes bogus."""
    lines = open(path).read().splitlines()
    for n, l in enumerate(lines):
        f = l.split()
        if len(f) > 5 and f[3] == "RRSIG" and f[4] == "MX":
            sig = f[-1]
            f[-1] = ("B" if sig[0] != "B" else "C") + sig[1:]
            lines[n] = " ".join(f)
            break
    else:
        raise SystemExit(f"no MX RRSIG in {path}")
    open(path, "w").write("\n".join(lines) + "\n")


def _sign_domains(args):
    zdir, keypath, lo, hi = args
    key = _key(keypath)
    for i in range(lo, hi):
        cls, h = domain_plan(i)
        d = domain_name(i) + "."
        text = (
            "$TTL 3600\n@ SOA ns1.bench. hostmaster.bench. 1 3600 600 604800 300\n"
            f"@ NS ns1.bench.\n@ MX 10 {host_name(h)}\n"
        )
        out = os.path.join(zdir, f"{domain_name(i)}.zone")
        _sign(text, d, key, out)
        if cls == "bogus-mx":
            _corrupt_mx_rrsig(out)
    return hi - lo


def gen_dns(d, n, tlsa):
    """Signed zones: '.', 'bench.' and one zone per domain (cached in d)."""
    import dns.dnssec

    zdir = os.path.join(d, "zones")
    stamp = os.path.join(d, "zones.done")
    if os.path.exists(stamp) and time.time() - os.path.getmtime(stamp) < 7 * 86400:
        return zdir
    os.makedirs(zdir, exist_ok=True)
    domkey = os.path.join(d, "domains.key")
    _key(domkey)
    t = time.time()
    chunks = [(zdir, domkey, lo, min(n, lo + 500)) for lo in range(0, n, 500)]
    with multiprocessing.Pool(os.cpu_count() or 2) as pool:
        pool.map(_sign_domains, chunks)
    bench_zone(d, n, tlsa, False, os.path.join(zdir, "bench.zone"))
    benchkey = _key(os.path.join(d, "bench.key"))
    bench_ds = dns.dnssec.make_ds("bench.", _dnskey(benchkey), "SHA256")
    rootkey = _key(os.path.join(d, "root.key"))
    root = (
        "$TTL 86400\n@ SOA ns1.bench. hostmaster.bench. 1 3600 600 604800 300\n"
        "@ NS ns1.bench.\n"
        f"bench. NS ns1.bench.\nbench. DS {bench_ds.to_text()}\nns1.bench. A {NSD4}\n"
    )
    _sign(root, ".", rootkey, os.path.join(zdir, "root.zone"))
    rdk = _dnskey(rootkey)
    open(os.path.join(d, "root.dnskey"), "w").write(f". 86400 IN DNSKEY {rdk.to_text()}\n")
    open(os.path.join(d, "root.ds"), "w").write(
        f". 86400 IN DS {dns.dnssec.make_ds('.', rdk, 'SHA256').to_text()}\n"
    )
    say(f"  signed {n + 2} zones in {time.time() - t:.1f} s")
    open(stamp, "w").write("ok\n")
    return zdir


def bench_zone(d, n, tlsa, extra_ns, out):
    """The signed TLD 'bench.': the MX hosts, their TLSA records and the delegations.
    With extra_ns each domain i is delegated to ns1.bench. and to ns_name(i % NS_EXTRA)
    (the child zones still name only ns1.bench.: their signed data stay as generated)."""
    import dns.dnssec

    dk = _dnskey(_key(os.path.join(d, "domains.key")))
    lines = [
        "$TTL 3600",
        "@ SOA ns1.bench. hostmaster.bench. 1 3600 600 604800 300",
        "@ NS ns1.bench.",
        f"ns1 A {NSD4}",
    ]
    for h in range(HOSTS):
        lines.append(f"mx{h:03d} A {smtp_addr(h)}")
        lines.append(f"_25._tcp.mx{h:03d} TLSA {tlsa[str(h)]}")
    if extra_ns:
        lines += [f"{ns_name(k)} A {ns_addr(k)}" for k in range(NS_EXTRA)]
    for i in range(n):
        name = domain_name(i)
        ds = dns.dnssec.make_ds(name + ".", dk, "SHA256")
        lines.append(f"{name}. NS ns1.bench.")
        if extra_ns:
            lines.append(f"{name}. NS {ns_name(i % NS_EXTRA)}")
        lines.append(f"{name}. DS {ds.to_text()}")
    _sign("\n".join(lines) + "\n", "bench.", _key(os.path.join(d, "bench.key")), out)


def gen_bench_ns(d, n, tlsa):
    """The TLD with two nameservers per domain (cached): for --dead's nameserver share."""
    out = os.path.join(d, "zones", "bench-ns.zone")
    if not os.path.exists(out):
        t = time.time()
        bench_zone(d, n, tlsa, True, out)
        say(f"  signed bench. with {NS_EXTRA} more nameservers in {time.time() - t:.1f} s")
    return out


# ---------------------------------------------------------------- infrastructure ------
class Infra:
    def __init__(self, d, cache, n, shape):
        self.d, self.cache, self.n, self.shape = d, cache, n, shape
        self.pids = {}
        self.addrs = [smtp_addr(h) for h in range(HOSTS)] + [NSD4, RES4]
        if shape.on:
            self.addrs += [NSD_BACK] + [ns_addr(k) for k in range(NS_EXTRA)]

    DAEMONS = ("nsd", "unbound", "postfix", "dnsdist", "relay")

    def cg_join_fn(self, name):
        """A preexec_fn: the child joins the daemon's cgroup (children inherit it)."""
        def join():
            g = os.path.join(CG, name)
            if os.path.isdir(g):
                with open(os.path.join(g, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
        return join

    def leftovers(self):
        """Stops what an earlier run left (--keep, or a crash): by PID, and only processes
        whose command line names this bench's own files."""
        P = os.path.join(self.d, "postfix")
        if os.path.exists(f"{P}/etc/main.cf"):
            cmd = " ".join(netns("postfix", "-c", f"{P}/etc", "stop"))
            subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True)
        confs = [os.path.join(self.d, "nsd", "nsd.conf"), os.path.join(self.d, "unbound", "unbound.conf"),
                 os.path.join(self.d, "dnsdist", "dnsdist.conf"), os.path.join(HERE, "delay-relay")]
        left = []
        for pid in bed_pids(set()):
            try:
                argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if any(a.decode(errors="replace") in confs for a in argv):
                left.append(pid)
        for pid in left:
            say(f"  stopping a leftover bench process {pid}")
            try:
                os.kill(pid, 15)
            except ProcessLookupError:  # it ended between the listing and now
                pass
        for pid in left:
            for _ in range(100):
                if not os.path.exists(f"/proc/{pid}"):
                    break
                time.sleep(0.05)

    def up(self):
        self.leftovers()
        self.nft_down()  # a shaped run left with --keep must not shape this one
        if os.path.isdir(CGROOT):
            for dname in self.DAEMONS:
                os.makedirs(os.path.join(CG, dname), exist_ok=True)
        batch = "".join(f"addr add {a}/32 dev lo\n" for a in self.addrs)
        subprocess.run(["ip", "-n", NS, "-force", "-batch", "-"], input=batch.encode(),
                       stderr=subprocess.DEVNULL)
        have = subprocess.run(["ip", "-n", NS, "-br", "addr", "show", "dev", "lo"],
                              capture_output=True, text=True).stdout
        missing = [x for x in self.addrs if f" {x}/32" not in f" {have} ".replace("\n", " ")]
        if missing:
            raise SystemExit(f"could not add {missing[:3]}... to {NS}")
        self.counters_up()
        self.nsd_up()
        if self.shape.on:
            self.dnsdist_up()
            self.relay_up()
            self.nft_up()
        self.unbound_up()
        self.postfix_up()
        self.wait_ready()

    def spawn(self, name, cmd, log):
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(log, "w"),
                             stderr=subprocess.STDOUT, preexec_fn=self.cg_join_fn(name))
        self.pids[name] = p
        return p

    def nsd_up(self):
        nd = os.path.join(self.d, "nsd")
        os.makedirs(nd, exist_ok=True)
        zdir = os.path.join(self.cache, "zones")
        conf = [
            "server:",
            f"    ip-address: {NSD_BACK if self.shape.on else NSD4}",
            "    port: 53",
            '    username: ""',
            '    chroot: ""',
            '    database: ""',
            f"    zonelistfile: {nd}/zone.list",
            f"    xfrdfile: {nd}/xfrd.state",
            f"    xfrdir: {nd}",
            f"    pidfile: {nd}/nsd.pid",
            f"    logfile: {nd}/nsd.log",
            "    verbosity: 0",
            "    server-count: 1",
            "    rrl-ratelimit: 0",
            "    rrl-whitelist-ratelimit: 0",
            "    refuse-any: yes",
            "remote-control:",
            "    control-enable: no",
            "zone:",
            "    name: .",
            f"    zonefile: {zdir}/root.zone",
            "zone:",
            "    name: bench.",
            f"    zonefile: {zdir}/{'bench-ns' if self.shape.on else 'bench'}.zone",
        ]
        for i in range(self.n):
            conf += ["zone:", f"    name: {domain_name(i)}.",
                     f"    zonefile: {zdir}/{domain_name(i)}.zone"]
        open(f"{nd}/nsd.conf", "w").write("\n".join(conf) + "\n")
        for f in ("zone.list", "xfrd.state"):
            try:
                os.remove(f"{nd}/{f}")
            except FileNotFoundError:
                pass
        self.spawn("nsd", netns("nsd", "-d", "-c", f"{nd}/nsd.conf"), f"{nd}/stdout.log")

    def dnsdist_up(self):
        """dnsdist on NSD4 and the extra nameserver addresses, in front of NSD: it drops
        --loss % of the queries and delays every UDP answer by --rtt ms (TCP answers are
        not delayed: dnsdist's delay is UDP-only)."""
        dd = os.path.join(self.d, "dnsdist")
        os.makedirs(dd, exist_ok=True)
        conf = [f'setLocal("{NSD4}:53")']
        conf += [f'addLocal("{ns_addr(k)}:53")' for k in range(NS_EXTRA)]
        conf += [
            'setACL({"0.0.0.0/0", "::/0"})',
            "setMaxUDPOutstanding(65535)",
            f'newServer{{address="{NSD_BACK}:53", checkName="bench.", checkType="SOA", '
            'sockets=8}',
        ]
        if self.shape.loss > 0:
            conf.append(f"addAction(ProbaRule({self.shape.loss / 100}), DropAction())")
        if self.shape.rtt > 0:
            conf.append(f"addResponseAction(AllRule(), DelayResponseAction({int(self.shape.rtt)}))")
        open(f"{dd}/dnsdist.conf", "w").write("\n".join(conf) + "\n")
        self.spawn("dnsdist", netns("dnsdist", "--supervised", "--disable-syslog", "-C",
                                    f"{dd}/dnsdist.conf"), f"{dd}/stdout.log")

    def relay_up(self):
        """The delaying relay on port 25 of every MX address, Postfix behind it."""
        rd = os.path.join(self.d, "relay")
        os.makedirs(rd, exist_ok=True)
        self.spawn("relay", netns(sys.executable, os.path.join(HERE, "delay-relay"),
                                  "--rtt", str(self.shape.rtt), "--to-port", str(SMTP_BACK_PORT),
                                  *[f"{smtp_addr(h)}:25" for h in range(HOSTS)]),
                   f"{rd}/stdout.log")

    NFT_TABLE = "dane_bench_dead"

    def nft_up(self):
        """Dead addresses: every packet to them is dropped in the bed's namespace."""
        dead = self.shape.dead_addrs()
        self.nft_down()
        if not dead:
            return
        rules = (f"table ip {self.NFT_TABLE} {{\n  chain out {{\n"
                 "    type filter hook output priority 0; policy accept;\n"
                 f"    ip daddr {{ {', '.join(dead)} }} drop\n  }}\n}}\n")
        subprocess.run(netns("nft", "-f", "-"), input=rules.encode(), check=True)

    COUNT_TABLE = "dane_bench_count"

    def counters_up(self):
        """nftables counters of DNS queries (UDP packets and TCP connections to port 53)
        sent to the resolver and to the authoritative servers: what each run asks, seen
        from outside the tool."""
        auth = [NSD4] + ([ns_addr(k) for k in range(NS_EXTRA)] if self.shape.on else [])
        subprocess.run(netns("nft", "delete", "table", "ip", self.COUNT_TABLE),
                       capture_output=True)
        rules = [f"table ip {self.COUNT_TABLE} {{"]
        for name, dst in (("resolver", RES4), ("auth", ", ".join(auth))):
            rules += [f"  counter {name}_udp {{}}", f"  counter {name}_tcp {{}}"]
        rules += ["  chain out {", "    type filter hook output priority -10; policy accept;"]
        for name, dst in (("resolver", RES4), ("auth", ", ".join(auth))):
            rules += [f"    ip daddr {{ {dst} }} udp dport 53 counter name {name}_udp",
                      f"    ip daddr {{ {dst} }} tcp dport 53 tcp flags syn / syn,ack "
                      f"counter name {name}_tcp"]
        rules += ["  }", "}"]
        subprocess.run(netns("nft", "-f", "-"), input="\n".join(rules).encode(), check=True)

    def queries(self):
        """The counters now: {name: packets} (a TCP connection counts one SYN)."""
        out = subprocess.run(netns("nft", "-j", "list", "counters", "table", "ip",
                                   self.COUNT_TABLE), capture_output=True, text=True).stdout
        got = {}
        for item in json.loads(out or '{"nftables": []}')["nftables"]:
            c = item.get("counter")
            if c:
                got[c["name"]] = c["packets"]
        return got

    def nft_down(self):
        subprocess.run(netns("nft", "delete", "table", "ip", self.NFT_TABLE),
                       capture_output=True)

    def unbound_up(self):
        ud = os.path.join(self.d, "unbound")
        os.makedirs(ud, exist_ok=True)
        open(f"{ud}/root.hints", "w").write(
            f".  3600000 NS ns1.bench.\nns1.bench. 3600000 A {NSD4}\n")
        open(f"{ud}/unbound.conf", "w").write(f"""server:
    interface: {RES4}
    port: 53
    access-control: 0.0.0.0/0 allow
    access-control: ::/0 allow
    do-ip6: no
    username: ""
    chroot: ""
    directory: "{ud}"
    pidfile: "{ud}/unbound.pid"
    use-syslog: no
    logfile: "{ud}/unbound.log"
    verbosity: 0
    num-threads: 2
    so-reuseport: no
    msg-cache-size: 128m
    rrset-cache-size: 256m
    key-cache-size: 64m
    neg-cache-size: 16m
    # A resolver serving 10^3-10^4 questions in flight needs more than the kernel's
    # default receive buffer (~200 datagrams), as Unbound's tuning guide says; without
    # it the bench's own resolver drops questions in bursts (measured as RcvbufErrors).
    so-rcvbuf: 8m
    outgoing-range: {8192 if self.shape.on else 4096}
    num-queries-per-thread: {4096 if self.shape.on else 2048}
    aggressive-nsec: yes
    do-not-query-localhost: no
    root-hints: "{ud}/root.hints"
    trust-anchor-file: "{self.cache}/root.ds"
    ede: yes
    extended-statistics: yes
remote-control:
    control-enable: yes
    control-use-cert: no
    control-interface: "{ud}/unbound.ctl"
""")
        self.spawn("unbound", netns("unbound", "-d", "-c", f"{ud}/unbound.conf"),
                   f"{ud}/stdout.log")

    def postfix_up(self):
        P = os.path.join(self.d, "postfix")
        for s in ("etc", "spool", "data", "log"):
            os.makedirs(f"{P}/{s}", exist_ok=True)
        shutil.chown(f"{P}/data", "postfix", "postfix")
        os.chmod(f"{P}/data", 0o700)
        os.chmod(self.d, 0o755)
        open(f"{P}/etc/main.cf", "w").write(f"""# dane-audit benchmark instance
compatibility_level = 3.7
queue_directory = {P}/spool
data_directory = {P}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench-postfix.invalid
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
maillog_file = {P}/log/maillog
maillog_file_prefixes = {P}/log
smtpd_peername_lookup = no
smtpd_tls_security_level = may
smtpd_tls_loglevel = 0
default_process_limit = 200
max_use = 1000
smtp_dns_support_level = dnssec
smtp_tls_security_level = dane
""")
        ms = ["# service type private unpriv chroot wakeup maxproc command + args"]
        port = SMTP_BACK_PORT if self.shape.on else "smtp"
        for h in range(HOSTS):
            ms.append(f"{smtp_addr(h)}:{port} inet n - n - - smtpd")
            ms.append(f"  -o myhostname={host_name(h).rstrip('.')}")
            if h in NO_STARTTLS:
                ms.append("  -o smtpd_tls_security_level=none")
            else:
                ms.append(f"  -o smtpd_tls_chain_files={self.cache}/pki/h{h:03d}.pem")
        ms += [
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "local unix - n n - - local",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        open(f"{P}/etc/master.cf", "w").write("\n".join(ms) + "\n")
        cmd = " ".join(netns("postfix", "-c", f"{P}/etc", "start"))
        r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                           preexec_fn=self.cg_join_fn("postfix"))
        if r.returncode != 0:
            raise SystemExit(f"postfix start failed: {r.stdout.decode()} {r.stderr.decode()}")

    def wait_ready(self):
        t0 = time.time()
        probe = netns("dig", f"@{RES4}", "+dnssec", "+time=2", "+tries=1",
                      f"{domain_name(0)}.", "MX")
        while True:
            out = subprocess.run(probe, capture_output=True, text=True).stdout
            if "status: NOERROR" in out and re.search(r"flags:[a-z ]* ad[ ;]", out):
                break
            if time.time() - t0 > 120:
                raise SystemExit(f"the bench resolver does not validate:\n{out}")
            time.sleep(0.2)
        say(f"  DNS ready in {time.time() - t0:.1f} s")
        script = (
            "for a in " + " ".join(smtp_addr(h) for h in range(HOSTS)
                                   if h not in self.shape.dead_hosts) + "; do "
            "for i in $(seq 1 200); do timeout 2 bash -c \"exec 3<>/dev/tcp/$a/25 && "
            "IFS= read -r -t 2 l <&3 && [ \\\"\\${l:0:3}\\\" = 220 ]\" 2>/dev/null && break; "
            "sleep 0.05; done; done"
        )
        subprocess.run(netns("bash", "-c", script), check=True)
        say(f"  {HOSTS} SMTP listeners greeting after {time.time() - t0:.1f} s")

    def flush_resolver(self):
        """A cold resolver cache for every tool (unbound reload), then settle."""
        ud = os.path.join(self.d, "unbound")
        subprocess.run(netns("unbound-control", "-c", f"{ud}/unbound.conf", "reload"),
                       capture_output=True, check=True)
        probe = netns("dig", f"@{RES4}", "+time=1", "+tries=1", ".", "SOA")
        for _ in range(50):
            if "status: NOERROR" in subprocess.run(probe, capture_output=True, text=True).stdout:
                break
            time.sleep(0.1)
        subprocess.run(netns("unbound-control", "-c", f"{ud}/unbound.conf", "flush_zone", "."),
                       capture_output=True)
        time.sleep(0.5)

    def cpu(self):
        """CPU seconds of each infrastructure daemon so far (exited children too)."""
        out = {}
        for dname in self.DAEMONS:
            try:
                v = int(open(os.path.join(CG, dname, "cpuacct.usage")).read()) / 1e9
            except OSError:
                p = self.pids.get(dname)
                v = proc_cpu([p.pid]) if p else 0.0
            out[dname] = v
        return out

    def infra_pids(self):
        """Processes of the daemons now (to keep them out of the bed's count)."""
        pids = {p.pid for p in self.pids.values()}
        for dname in self.DAEMONS:
            try:
                pids |= {int(x) for x in open(os.path.join(CG, dname, "cgroup.procs")).read().split()}
            except OSError:
                pass
        return pids

    def down(self):
        P = os.path.join(self.d, "postfix")
        cmd = " ".join(netns("postfix", "-c", f"{P}/etc", "stop"))
        subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True)
        for p in self.pids.values():
            if p.poll() is None:
                p.terminate()
        for p in self.pids.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.shape.on:
            self.nft_down()
        subprocess.run(netns("nft", "delete", "table", "ip", self.COUNT_TABLE),
                       capture_output=True)
        batch = "".join(f"addr del {a}/32 dev lo\n" for a in self.addrs)
        subprocess.run(["ip", "-n", NS, "-force", "-batch", "-"], input=batch.encode(),
                       stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        for dname in self.DAEMONS:
            try:  # a group with processes left (none, normally) stays
                os.rmdir(os.path.join(CG, dname))
            except OSError:
                pass
        try:
            os.rmdir(CG)
        except OSError:
            pass


def proc_cpu(pids):
    tck = os.sysconf("SC_CLK_TCK")
    s = 0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            s += sum(int(x) for x in f[11:15])
        except (OSError, IndexError, ValueError):
            pass
    return s / tck


def machine_busy():
    """CPU seconds all processes on the machine have used (from /proc/stat)."""
    f = open("/proc/stat").readline().split()[1:]
    v = [int(x) for x in f]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def bed_pids(exclude):
    out = subprocess.run(["ip", "netns", "pids", NS], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if int(p) not in exclude]


# ---------------------------------------------------------------- measurements --------
def udp_rcvbuf_drops():
    """UDP datagrams the kernel dropped in the bench's namespace because a socket's
    receive buffer was full (a loss nobody asked for: it is the infrastructure's, or the
    tool's own sockets')."""
    out = subprocess.run(netns("cat", "/proc/net/snmp"), capture_output=True, text=True).stdout
    rows = [l.split() for l in out.splitlines() if l.startswith("Udp:")]
    if len(rows) < 2:
        return 0
    return int(dict(zip(rows[0][1:], rows[1][1:])).get("RcvbufErrors", 0))


class Meter:
    """CPU of the infrastructure and the idle test bed around one measured run."""

    def __init__(self, infra):
        self.infra = infra

    def __enter__(self):
        self.bed = bed_pids(self.infra.infra_pids())
        self.bed0 = proc_cpu(self.bed)
        self.infra0 = self.infra.cpu()
        self.q0 = self.infra.queries()
        self.drops0 = udp_rcvbuf_drops()
        self.busy0 = machine_busy()
        self.t0 = time.time()
        return self

    def __exit__(self, *a):
        self.wall = time.time() - self.t0
        now = self.infra.cpu()
        self.per_daemon = {k: round(now[k] - self.infra0[k], 3) for k in now}
        q = self.infra.queries()
        self.queries = {k: v - self.q0.get(k, 0) for k, v in q.items()}
        self.udp_drops = udp_rcvbuf_drops() - self.drops0
        self.infra_cpu = sum(self.per_daemon.values())
        self.bed_cpu = max(0.0, proc_cpu(self.bed) - self.bed0)
        self.machine_cpu = machine_busy() - self.busy0


RUNNING = []  # the measured child, stopped if the bench is interrupted


class Sampler:
    """Peak open sockets and peak resident memory of a process and all its descendants,
    sampled every 0.25 s from /proc while it runs (a peer tool is many short processes:
    its ru_maxrss is only the largest one), and the process's own high-water mark
    (VmHWM). wait4's ru_maxrss cannot serve for dane-audit: a child forked from this
    Python process starts with Python's resident size as its high-water mark, and exec
    keeps it, so a small scan would read as large as the bench itself."""

    def __init__(self, pid, out=None):
        import threading

        self.pid, self.peak_sockets, self.peak_rss_kib, self.hwm_kib = pid, 0, 0, 0
        # (seconds since start, records written): when the first records came, the rate
        # in bulk, and how long the last ones took (a fixed start-up and tail, such as the
        # connect timeout of dead servers, weigh less as the list grows)
        self.out, self.offset, self.records, self.curve = out, 0, 0, []
        self.t0 = time.monotonic()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _tree(self):
        kids = {}
        for e in os.listdir("/proc"):
            if e.isdigit():
                try:
                    ppid = int(open(f"/proc/{e}/stat").read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(int(e))
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo += kids.get(p, [])
        return out

    def _sample(self):
        socks = rss = 0
        for p in self._tree():
            try:
                fds = os.listdir(f"/proc/{p}/fd")
                for fd in fds:
                    try:
                        socks += os.readlink(f"/proc/{p}/fd/{fd}").startswith("socket:")
                    except OSError:
                        pass
                for l in open(f"/proc/{p}/status"):
                    if l.startswith("VmRSS:"):
                        rss += int(l.split()[1])
                    elif l.startswith("VmHWM:") and p == self.pid:
                        self.hwm_kib = max(self.hwm_kib, int(l.split()[1]))
            except OSError:
                continue
        self.peak_sockets = max(self.peak_sockets, socks)
        self.peak_rss_kib = max(self.peak_rss_kib, rss)

    def _count(self):
        if self.out is None:
            return
        try:
            with open(self.out, "rb") as f:
                f.seek(self.offset)
                new = f.read()
        except OSError:
            return
        self.offset += len(new)
        self.records += new.count(b"\n")
        self.curve.append((time.monotonic() - self.t0, self.records))

    def _run(self):
        while not self.done.wait(0.25):
            self._sample()
            self._count()

    def phases(self, n, wall):
        """(seconds until 1% of the n records, records/s from 10% to 90%, seconds from 99%
        to the end), read off the curve; None when there is no curve."""
        if self.out is None or not self.curve or n < 100:
            return None
        curve = self.curve + [(wall, n)]

        def when(k):
            prev = (0.0, 0)
            for t, c in curve:
                if c >= k:
                    if c == prev[1]:
                        return t
                    return prev[0] + (t - prev[0]) * (k - prev[1]) / (c - prev[1])
                prev = (t, c)
            return wall

        t1, t10, t90, t99 = (when(n * f) for f in (0.01, 0.10, 0.90, 0.99))
        bulk = n * 0.8 / (t90 - t10) if t90 > t10 else None
        return round(t1, 2), (round(bulk, 1) if bulk else None), round(max(0.0, wall - t99), 2)

    def stop(self):
        self.done.set()
        self.thread.join()
        return self


def wait_rusage(p):
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def run_dane_audit(a, infra, listfile, out, iterative=False, extra=()):
    dns = (["--iterative", "--root-hints", os.path.join(a.dir, "unbound", "root.hints")]
           if iterative else ["--resolver", RES4, *extra])
    cmd = netns(
        a.bin, "scan", listfile, "-o", out, *dns,
        "--trust-anchor", os.path.join(a.cache, "root.dnskey"),
        "--quiet", "--fail-on", "never", "--summary", out + ".summary.json",
    )
    infra.flush_resolver()
    for old in (out, out + ".scan.json"):  # the sampler counts the records of this run only
        if os.path.exists(old):
            os.remove(old)
    with Meter(infra) as m:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=open(out + ".stderr", "w"))
        RUNNING.append(p)
        sampler = Sampler(p.pid, out)
        cpu, _ = wait_rusage(p)
        m.sampled = sampler.stop()
        # `ip netns exec` execs the tool in place: the pid is dane-audit's own.
        rss = m.sampled.hwm_kib or m.sampled.peak_rss_kib
        RUNNING.remove(p)
    if p.returncode != 0:
        raise SystemExit(f"dane-audit scan exited {p.returncode}: {open(out + '.stderr').read()}")
    return m, cpu, rss


def classify_pf(text):
    if "Verified TLS connection established" in text:
        return "verified"
    if "Untrusted TLS connection established" in text or "certificate verification failed" in text:
        return "untrusted"
    if "Trusted TLS connection established" in text:
        return "trusted"
    if "STARTTLS" in text and ("not" in text or "no " in text):
        return "no-starttls"
    if "lookup" in text.lower() or "not found" in text.lower():
        return "dns-failure"
    if "Anonymous TLS connection established" in text:
        return "anonymous"
    return "other"


def peer_worker(a):
    """Inside its own mount namespace: resolv.conf -> the bench resolver; then run the
    peer tool JOBS-way over the list; one JSON line per domain on stdout."""
    subprocess.run(["mount", "--bind", a.resolv, "/etc/resolv.conf"], check=True)
    items = [l.split("\t") for l in open(a.list).read().splitlines() if l]
    env = dict(os.environ, MAIL_CONFIG=a.mail_config)

    def one(item):
        domain, host = item
        if a.tool == "posttls-finger":
            cmd = ["posttls-finger", "-c", "-l", "dane", "-t", "5", "-T", "10", domain]
        else:
            cmd = [a.danesmtp, host]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=env)
        out = p.stdout.read().decode(errors="replace")
        cpu, rss = wait_rusage(p)
        if a.tool == "posttls-finger":
            cls = classify_pf(out)
        else:
            cls = "valid" if "is_valid=True" in out else "invalid"
        return {"domain": domain, "class": cls, "cpu": cpu, "rss": rss, "out": out[-300:]}

    with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
        for r in ex.map(one, items):
            sys.stdout.write(json.dumps(r) + "\n")
    sys.stdout.flush()


def run_peer(a, infra, tool, items, jobs):
    listfile = os.path.join(a.dir, f"{tool}.list")
    open(listfile, "w").write("".join(f"{d}\t{h}\n" for d, h in items))
    cmd = netns("unshare", "-m", sys.executable, os.path.abspath(__file__), "peer-worker",
                "--tool", tool, "--list", listfile, "--jobs", str(jobs),
                "--resolv", os.path.join(a.dir, "resolv.conf"),
                "--mail-config", os.path.join(a.dir, "postfix", "etc"),
                "--danesmtp", a.danesmtp or "-")
    infra.flush_resolver()
    with Meter(infra) as m:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        RUNNING.append(p)
        sampler = Sampler(p.pid)
        out, err = p.communicate()
        m.sampled = sampler.stop()
        RUNNING.remove(p)
        r = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    if r.returncode != 0:
        raise SystemExit(f"{tool} worker failed: {r.stderr[-2000:]}")
    rows = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    return m, rows


def fmt(x, nd=1):
    return f"{x:,.{nd}f}"


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("run")
    b.add_argument("--dir", required=True)
    b.add_argument("--bin", required=True)
    b.add_argument("-n", type=int, default=10000)
    b.add_argument("--pf-sample", type=int, default=2000)
    b.add_argument("--sdv-sample", type=int, default=100)
    b.add_argument("--jobs", type=int, default=16)
    b.add_argument("--rss-lines", type=int, default=1_000_000)
    b.add_argument("--rss-nx", type=int, default=100_000)
    b.add_argument("--danesmtp", default=shutil.which("danesmtp"))
    b.add_argument("--keep", action="store_true", help="leave the infrastructure running")
    b.add_argument("--no-peers", action="store_true", help="measure dane-audit only")
    b.add_argument("--no-iterative", action="store_true", help="skip scan --iterative")
    b.add_argument("--no-witness-run", action="store_true", help="skip scan --no-witness")
    b.add_argument("--rtt", type=float, help="ms added to every DNS answer and SMTP reply")
    b.add_argument("--loss", type=float, help="%% of DNS queries dropped at the servers")
    b.add_argument("--dead", type=float, help="%% of MX and nameserver addresses unreachable")
    b.add_argument("--concurrency", help="dane-audit --concurrency values, e.g. 128,1024,4096,10000")
    b.add_argument("--peer-jobs", help="posttls-finger parallelism values, e.g. 16,256")
    w = sub.add_parser("peer-worker")
    w.add_argument("--tool")
    w.add_argument("--list")
    w.add_argument("--jobs", type=int)
    w.add_argument("--resolv")
    w.add_argument("--mail-config")
    w.add_argument("--danesmtp")
    a = ap.parse_args()
    if a.cmd == "peer-worker":
        return peer_worker(a)
    bench(a)


def bench(a):
    t_start = time.time()
    os.makedirs(a.dir, exist_ok=True)
    a.cache = os.path.join(a.dir, "cache", f"n{a.n}-v{GEN_VERSION}")
    say(f"bench: {a.n} domains; data in {a.cache}")
    tlsa = gen_pki(os.path.join(a.cache, "pki"))
    gen_dns(a.cache, a.n, tlsa)
    open(os.path.join(a.dir, "resolv.conf"), "w").write(
        f"nameserver {RES4}\noptions edns0 trust-ad timeout:2 attempts:2\n")
    plan = [domain_plan(i) for i in range(a.n)]
    domains = [domain_name(i) for i in range(a.n)]
    listfile = os.path.join(a.dir, "domains.txt")
    open(listfile, "w").write("\n".join(domains) + "\n")
    shape = Shape(a.rtt, a.loss, a.dead)
    if shape.on:
        gen_bench_ns(a.cache, a.n, tlsa)
    infra = Infra(a.dir, a.cache, a.n, shape)
    t = time.time()
    try:
        infra.up()
        say(f"  infrastructure up in {time.time() - t:.1f} s "
            f"(nsd, unbound, postfix with {HOSTS} listeners"
            f"{', dnsdist, the delaying relay, nftables: ' + shape.text() if shape.on else ''})")
        if shape.on or a.concurrency:
            results = measure_matrix(a, infra, plan, domains, listfile, shape)
        else:
            results = measure(a, infra, plan, domains, listfile)
        results["total_wall_s"] = round(time.time() - t_start, 1)
        json.dump(results, open(os.path.join(a.dir, "results.json"), "w"), indent=2)
        say(f"\nbench: done in {results['total_wall_s']} s; figures in {a.dir}/results.json")
    finally:
        for p in RUNNING:
            if p.poll() is None:
                p.send_signal(2)  # dane-audit stops cleanly on SIGINT; the worker too
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not a.keep:
            infra.down()


def measure(a, infra, plan, domains, listfile):
    n = len(domains)
    res = {"n": n, "hosts": HOSTS, "classes": {}}
    for cls, _ in plan:
        res["classes"][cls] = res["classes"].get(cls, 0) + 1

    # ---- dane-audit, through the resolver and --iterative
    def check_da(name, out, m, cpu, rss):
        da = summarize(name, n, m, cpu, rss)
        wrong, da["wrong_examples"] = wrong_verdicts(out, plan, Shape(None, None, None))
        da["wrong_verdicts"] = wrong
        summary = json.load(open(out + ".summary.json"))
        da["shared_work"] = summary["caches"]
        if "dns_queries" in summary:
            da["dns_queries"] = summary["dns_queries"]
            da["dns_queries_per_domain"] = round(summary["dns_queries"] / n, 3)
        res[name] = da
        report(da)
        return da

    say("\n[1/4] dane-audit scan (through the resolver)")
    out = os.path.join(a.dir, "dane-audit.ndjson")
    m, cpu, rss = run_dane_audit(a, infra, listfile, out)
    da = check_da("dane-audit", out, m, cpu, rss)
    if not a.no_iterative:
        say("\n[1b/4] dane-audit scan --iterative (from the bench root, no resolver)")
        out_it = os.path.join(a.dir, "dane-audit-iterative.ndjson")
        m, cpu, rss_it = run_dane_audit(a, infra, listfile, out_it, iterative=True)
        check_da("dane-audit --iterative", out_it, m, cpu, rss_it)
    if not a.no_witness_run:
        say("\n[1c/4] dane-audit scan --no-witness (through the resolver, no CD=0 second question)")
        out_nw = os.path.join(a.dir, "dane-audit-no-witness.ndjson")
        m, cpu, rss_nw = run_dane_audit(a, infra, listfile, out_nw, extra=["--no-witness"])
        check_da("dane-audit --no-witness", out_nw, m, cpu, rss_nw)

    if a.no_peers:
        a.pf_sample = 0
        a.danesmtp = None
    # ---- posttls-finger, 16-way
    k = min(n, a.pf_sample)
    if k > 0:
        say(f"\n[2/4] posttls-finger, {a.jobs}-way, over the first {k} domains")
        items = [(domains[i], host_name(plan[i][1]).rstrip(".")) for i in range(k)]
        m, rows = run_peer(a, infra, "posttls-finger", items, a.jobs)
        pf = summarize("posttls-finger", k, m, sum(r["cpu"] for r in rows),
                       max((r["rss"] for r in rows), default=0))
        wrong = []
        for i, r in enumerate(rows):
            ok = (r["class"] == "verified") == (plan[i][0] == "good")
            if not ok:
                wrong.append(f"{r['domain']} ({plan[i][0]}): {r['class']}")
        pf["wrong_verdicts"] = len(wrong)
        pf["wrong_examples"] = wrong[:5]
        pf["classes"] = {}
        for r in rows:
            pf["classes"][r["class"]] = pf["classes"].get(r["class"], 0) + 1
        res["posttls-finger"] = pf
        report(pf)

    # ---- smtp-dane-verify
    if a.danesmtp:
        k = min(n, a.sdv_sample)
        say(f"\n[3/4] smtp-dane-verify (danesmtp MX-HOST), {a.jobs}-way, over the first {k} "
            "domains (it takes a host name: the harness hands it each domain's MX host)")
        items = [(domains[i], host_name(plan[i][1]).rstrip(".")) for i in range(k)]
        m, rows = run_peer(a, infra, "smtp-dane-verify", items, a.jobs)
        sdv = summarize("smtp-dane-verify", k, m, sum(r["cpu"] for r in rows),
                        max((r["rss"] for r in rows), default=0))
        wrong = []
        for i, r in enumerate(rows):
            host_ok = plan[i][0] in ("good", "bogus-mx")  # it does no MX lookup
            if (r["class"] == "valid") != host_ok:
                wrong.append(f"{r['domain']} ({plan[i][0]}): {r['class']} {r['out'][-120:]!r}")
        sdv["wrong_verdicts"] = len(wrong)
        sdv["wrong_examples"] = wrong[:5]
        res["smtp-dane-verify"] = sdv
        report(sdv)
    else:
        say("\n[3/4] smtp-dane-verify: danesmtp not found, skipped")

    # ---- RSS: 10^4 lines versus 10^6 lines
    say(f"\n[4/4] dane-audit peak RSS: 10^4 lines versus {a.rss_lines:,} lines")
    rss_small = rss
    if n != 10_000:
        small = os.path.join(a.dir, "rss-small.txt")
        write_rss_list(small, domains, 10_000, a.rss_nx if n < 10_000 else 0)
        _, _, rss_small = run_dane_audit(a, infra, small, os.path.join(a.dir, "rss-small.ndjson"))
    big = os.path.join(a.dir, "rss-big.txt")
    mix = write_rss_list(big, domains, a.rss_lines, a.rss_nx)
    mb, cpub, rss_big = run_dane_audit(a, infra, big, os.path.join(a.dir, "rss-big.ndjson"))
    res["rss"] = {"lines_small": 10_000, "rss_small_kib": rss_small,
                  "lines_big": a.rss_lines, "rss_big_kib": rss_big, "big_mix": mix,
                  "big_wall_s": round(mb.wall, 1),
                  "ratio": round(rss_big / max(1, rss_small), 3)}
    say(f"  10^4 lines: {rss_small / 1024:.1f} MiB; {a.rss_lines:,} lines ({mix}): "
        f"{rss_big / 1024:.1f} MiB in {mb.wall:.1f} s: ratio {res['rss']['ratio']}")

    # ---- ratios and the limit
    say("\n== results ==")
    tot = da["cpu_per_domain_ms"] / 1000
    L = NCPU / tot
    res["limit_L_domains_per_s"] = round(L, 1)
    res["share_of_L"] = round(da["domains_per_s"] / L, 3)
    say(f"{'tool':<24} {'domains/s':>10} {'CPU ms/domain':>14} {'(tool':>8} {'+infra)':>8} "
        f"{'peak RSS MiB':>13} {'wrong':>6}")
    for key in ("dane-audit", "dane-audit --iterative", "dane-audit --no-witness",
                "posttls-finger", "smtp-dane-verify"):
        if key in res:
            r = res[key]
            say(f"{key:<24} {fmt(r['domains_per_s']):>10} {fmt(r['cpu_per_domain_ms'], 2):>14} "
                f"{fmt(r['tool_cpu_per_domain_ms'], 2):>8} {fmt(r['infra_cpu_per_domain_ms'], 2):>8} "
                f"{r['peak_rss_kib'] / 1024:>13.1f} {r['wrong_verdicts']:>6}")
    for mine in ("dane-audit", "dane-audit --iterative", "dane-audit --no-witness"):
        for key in ("posttls-finger", "smtp-dane-verify"):
            if key in res and mine in res:
                d = res[mine]
                ratio = d["domains_per_s"] / res[key]["domains_per_s"]
                cpu_ratio = res[key]["cpu_per_domain_ms"] / d["cpu_per_domain_ms"]
                res[f"{mine} ratio_vs_{key}"] = round(ratio, 1)
                res[f"{mine} cpu_ratio_vs_{key}"] = round(cpu_ratio, 1)
                say(f"{mine} vs {key}: {ratio:,.1f}x domains/s, {cpu_ratio:,.1f}x less CPU per domain")
    # The same limit on the CPU that other processes left free during the run.
    avail = da["cpu_available_s"] / da["wall_s"]
    res["share_of_L_on_free_cpu"] = round(da["domains_per_s"] / (avail / tot), 3)
    say(f"limit L = {NCPU} CPU-s/s / {tot * 1000:.2f} ms per domain = {L:,.0f} domains/s; "
        f"dane-audit reaches {res['share_of_L'] * 100:.0f}% of L")
    say(f"  other processes took {da['other_cpu_s']} CPU-s during the dane-audit run "
        f"({avail:.2f} of {NCPU} CPUs left): {res['share_of_L_on_free_cpu'] * 100:.0f}% of "
        f"the limit on the CPU that was free")
    if "dane-audit --iterative" in res:
        it = res["dane-audit --iterative"]
        Li = NCPU / (it["cpu_per_domain_ms"] / 1000)
        res["iterative_limit_L_domains_per_s"] = round(Li, 1)
        res["iterative_share_of_L"] = round(it["domains_per_s"] / Li, 3)
        availi = it["cpu_available_s"] / it["wall_s"]
        res["iterative_share_of_L_on_free_cpu"] = round(
            it["domains_per_s"] / (availi / (it["cpu_per_domain_ms"] / 1000)), 3)
        say(f"--iterative: L = {Li:,.0f} domains/s; reaches {res['iterative_share_of_L'] * 100:.0f}% "
            f"of L ({res['iterative_share_of_L_on_free_cpu'] * 100:.0f}% on the CPU that was free)")
    say(f"peak RSS 10^4 vs {a.rss_lines:,} lines: {rss_small / 1024:.1f} vs {rss_big / 1024:.1f} MiB "
        f"(x{res['rss']['ratio']})")
    return res


def measure_matrix(a, infra, plan, domains, listfile, shape):
    """dane-audit (through the resolver and --iterative) at each --concurrency, and
    posttls-finger at each --peer-jobs, on the same network: domains/s, peak RSS, peak
    open sockets, wrong verdicts."""
    n = len(domains)
    conc = [int(x) for x in (a.concurrency or "1024").split(",")]
    jobs = [int(x) for x in (a.peer_jobs or str(a.jobs)).split(",")] if not a.no_peers else []
    res = {"n": n, "network": shape.text(), "rows": []}
    rows = res["rows"]

    def row(tool, inflight, k, m, cpu, rss, wrong, examples, extra=None):
        r = {"tool": tool, "in_flight": inflight, "domains": k, "wall_s": round(m.wall, 2),
             "domains_per_s": round(k / m.wall, 1), "peak_rss_kib": rss,
             "peak_sockets": m.sampled.peak_sockets, "wrong_verdicts": wrong,
             "wrong_examples": examples,
             "tool_cpu_per_domain_ms": round(cpu / k * 1000, 3),
             "queries_seen": m.queries,
             "udp_rcvbuf_drops": m.udp_drops,
             "infra_cpu_s_by_daemon": m.per_daemon,
             # CPU that everything else on the machine took meanwhile (others' work)
             "other_cpu_s": round(max(0.0, m.machine_cpu - cpu - m.infra_cpu - m.bed_cpu), 2),
             **(extra or {})}
        ph = m.sampled.phases(k, m.wall)
        r["first_1pct_s"], r["bulk_10_90_domains_per_s"], r["last_1pct_s"] = ph or (None,) * 3
        rows.append(r)
        say(f"  {tool} {inflight}-way: {k} domains in {r['wall_s']} s = "
            f"{fmt(r['domains_per_s'])} domains/s; peak RSS {rss / 1024:.1f} MiB, peak sockets "
            f"{r['peak_sockets']}, wrong verdicts {wrong}; tool CPU "
            f"{r['tool_cpu_per_domain_ms']:.2f} ms/domain; infrastructure CPU s {m.per_daemon}; "
            f"other processes on the machine {r['other_cpu_s']} CPU-s")
        say(f"    UDP datagrams dropped for full receive buffers: {m.udp_drops}")
        say(f"    DNS queries seen (UDP packets, TCP connections): {m.queries}"
            + (f"; the tool's count: {r['dns_queries']}" if "dns_queries" in r else ""))
        for e in examples:
            say(f"    wrong: {e}")

    for c in conc:
        for iterative in (False, True):
            if iterative and a.no_iterative:
                continue
            tool = "dane-audit --iterative" if iterative else "dane-audit"
            say(f"\n{tool} --concurrency {c} ({shape.text() if shape.on else 'no shaping'})")
            out = os.path.join(a.dir, f"matrix-{'it' if iterative else 'res'}-{c}.ndjson")
            m, cpu, rss = run_dane_audit(a, infra, listfile, out, iterative=iterative,
                                         extra=["--concurrency", str(c)])
            wrong, ex = wrong_verdicts(out, plan, shape)
            summary = json.load(open(out + ".summary.json"))
            extra = {"dns_queries": summary["dns_queries"]} if "dns_queries" in summary else {}
            row(tool, c, n, m, cpu, rss, wrong, ex, extra)
    k = min(n, a.pf_sample)
    for j in jobs:
        say(f"\nposttls-finger {j}-way over the first {k} domains")
        items = [(domains[i], host_name(plan[i][1]).rstrip(".")) for i in range(k)]
        m, prow = run_peer(a, infra, "posttls-finger", items, j)
        wrong = []
        for i, r in enumerate(prow):
            want = plan[i][0] == "good" and plan[i][1] not in shape.dead_hosts
            if (r["class"] == "verified") != want:
                wrong.append(f"{r['domain']} ({plan[i][0]}): {r['class']}")
        # Many short processes: the sum over the process tree is its peak memory.
        row("posttls-finger", j, k, m, sum(r["cpu"] for r in prow), m.sampled.peak_rss_kib,
            len(wrong) + (k - len(prow)), wrong[:5])

    say(f"\n== {shape.text() if shape.on else 'no shaping'}; {n} domains ==")
    say(f"{'tool':<24} {'in flight':>9} {'domains/s':>10} {'peak RSS MiB':>13} "
        f"{'peak sockets':>13} {'wrong':>6} {'wall s':>8} {'first 1% s':>11} "
        f"{'10-90% /s':>10} {'last 1% s':>10}")
    dash = lambda v: "-" if v is None else (fmt(v) if isinstance(v, float) and v >= 100 else v)
    for r in rows:
        say(f"{r['tool']:<24} {r['in_flight']:>9} {fmt(r['domains_per_s']):>10} "
            f"{r['peak_rss_kib'] / 1024:>13.1f} {r['peak_sockets']:>13} "
            f"{r['wrong_verdicts']:>6} {r['wall_s']:>8} {dash(r['first_1pct_s']):>11} "
            f"{dash(r['bulk_10_90_domains_per_s']):>10} {dash(r['last_1pct_s']):>10}")
    return res


def wrong_verdicts(out, plan, shape):
    """How many of dane-audit's records in `out` have a wrong verdict (a domain without
    a record counts as wrong), and a few examples."""
    bad = []
    seen = 0
    for l in open(out):
        r = json.loads(l)
        i = r["line"] - 1
        seen += 1
        want, code = expected(*plan[i], shape)
        codes = {f["code"] for f in r.get("findings", [])}
        if r["verdict"] != want or (code and code not in codes):
            bad.append(f"{r['domain']} ({plan[i][0]}): {r['verdict']} {sorted(codes)}")
    return len(bad) + (len(plan) - seen), bad[:5]


def write_rss_list(path, domains, lines, nx):
    """The bench domains, then NXDOMAIN names in the signed TLD, then duplicates and
    garbage lines (every one of which gets a record) up to `lines`."""
    with open(path, "w") as f:
        written = 0
        for d in domains[:lines]:
            f.write(d + "\n")
            written += 1
        k = 0
        while written < lines and k < nx:
            f.write(f"nx{k:07d}.bench\n")
            written += 1
            k += 1
        # The rest: two invalid lines for each duplicate of a recent name (answered from
        # the duplicate window: each still gets its record, none costs a lookup).
        recent = [f"nx{j:07d}.bench" for j in range(max(0, k - 1000), k)] or domains[-1000:]
        g = 0
        while written < lines:
            if g % 3 == 2:
                f.write(recent[g % len(recent)] + "\n")
            else:
                f.write(f"not a domain {g}\n")
            written += 1
            g += 1
    return (f"{min(len(domains), lines)} bench domains, {k} NXDOMAIN names, {g} invalid lines "
            "and duplicates")


def summarize(name, n, m, tool_cpu, rss):
    infra = m.infra_cpu + m.bed_cpu
    r = {
        "tool": name,
        "domains": n,
        "wall_s": round(m.wall, 2),
        "domains_per_s": round(n / m.wall, 1),
        "tool_cpu_s": round(tool_cpu, 2),
        "infra_cpu_s": round(m.infra_cpu, 2),
        "bed_cpu_s": round(m.bed_cpu, 2),
        "cpu_per_domain_ms": round((tool_cpu + infra) / n * 1000, 3),
        "tool_cpu_per_domain_ms": round(tool_cpu / n * 1000, 3),
        "infra_cpu_per_domain_ms": round(infra / n * 1000, 3),
        "peak_rss_kib": rss,
        "infra_cpu_s_by_daemon": m.per_daemon,
        # CPU that everything else on the machine (other people's builds...) took meanwhile
        "other_cpu_s": round(max(0.0, m.machine_cpu - tool_cpu - infra), 2),
    }
    r["cpu_available_s"] = round(max(0.01, NCPU * m.wall - r["other_cpu_s"]), 2)
    return r


def report(r):
    say(f"  {r['domains']} domains in {r['wall_s']} s = {fmt(r['domains_per_s'])} domains/s; "
        f"CPU {r['cpu_per_domain_ms']:.2f} ms/domain (tool {r['tool_cpu_per_domain_ms']:.2f}, "
        f"infrastructure {r['infra_cpu_per_domain_ms']:.2f}); peak RSS {r['peak_rss_kib'] / 1024:.1f} MiB; "
        f"wrong verdicts: {r['wrong_verdicts']}")
    say(f"    infrastructure CPU s: {r['infra_cpu_s_by_daemon']}, idle test bed {r['bed_cpu_s']}")
    if "dns_queries" in r:
        say(f"    DNS queries sent: {r['dns_queries']:,} = {r['dns_queries_per_domain']:.2f} per domain")
    for e in r.get("wrong_examples", []):
        say(f"    wrong: {e}")


if __name__ == "__main__":
    main()
