//! The message catalogue: one entry per finding code, in plain words.
//!
//! Every code has a default message, a fix, an RFC reference and a long
//! explanation (`dane-audit explain CODE`). Tests check that the catalogue is
//! complete, so no raw code ever reaches a user without words around it.

use super::finding::{Code, Severity};

/// Catalogue data for one code.
pub struct Entry {
    pub severity: Severity,
    /// Severity when the host has no usable secure TLSA (findings.md's second
    /// value), or when the failure does not stop delivery.
    pub secondary: Option<Severity>,
    /// Default one-line message.
    pub title: &'static str,
    pub fix: &'static str,
    pub rfc: &'static str,
    /// RFC 8460 result type, where one fits.
    pub tlsrpt: Option<&'static str>,
    /// The finding says "could not determine", not "is wrong": such findings
    /// make a verdict `incomplete` and do not by themselves fail a CI gate.
    pub undetermined: bool,
    pub explain: &'static str,
}

const fn e(
    severity: Severity,
    title: &'static str,
    fix: &'static str,
    rfc: &'static str,
    explain: &'static str,
) -> Entry {
    Entry {
        severity,
        secondary: None,
        title,
        fix,
        rfc,
        tlsrpt: None,
        undetermined: false,
        explain,
    }
}

impl Entry {
    const fn or(mut self, s: Severity) -> Entry {
        self.secondary = Some(s);
        self
    }
    const fn rpt(mut self, t: &'static str) -> Entry {
        self.tlsrpt = Some(t);
        self
    }
    const fn undetermined(mut self) -> Entry {
        self.undetermined = true;
        self
    }
}

use Severity::{Critical, Error, Info, Notice, Warning};

/// Looks up the catalogue entry of a code.
pub fn entry(code: Code) -> &'static Entry {
    match code {
        Code::MxInsecure => &MX_INSECURE,
        Code::MxBogus => &MX_BOGUS,
        Code::MxLookupFailed => &MX_LOOKUP_FAILED,
        Code::NullMx => &NULL_MX,
        Code::ImplicitMx => &IMPLICIT_MX,
        Code::MxCname => &MX_CNAME,
        Code::DomainNxdomain => &DOMAIN_NXDOMAIN,
        Code::HostAddressInsecure => &HOST_ADDRESS_INSECURE,
        Code::HostAddressBogus => &HOST_ADDRESS_BOGUS,
        Code::HostDenialBogus => &HOST_DENIAL_BOGUS,
        Code::HostLookupFailed => &HOST_LOOKUP_FAILED,
        Code::HostNoAddress => &HOST_NO_ADDRESS,
        Code::TlsaAbsent => &TLSA_ABSENT,
        Code::TlsaInsecure => &TLSA_INSECURE,
        Code::TlsaBogus => &TLSA_BOGUS,
        Code::TlsaDenialBogus => &TLSA_DENIAL_BOGUS,
        Code::TlsaLookupFailed => &TLSA_LOOKUP_FAILED,
        Code::RrsigExpiring => &RRSIG_EXPIRING,
        Code::RrsigExpired => &RRSIG_EXPIRED,
        Code::DnssecWitnessDisagree => &DNSSEC_WITNESS_DISAGREE,
        Code::DnssecAlgorithmDeprecated => &DNSSEC_ALGORITHM_DEPRECATED,
        Code::DsDigestSha1Only => &DS_DIGEST_SHA1_ONLY,
        Code::DnssecKeyWeak => &DNSSEC_KEY_WEAK,
        Code::Nsec3Parameters => &NSEC3_PARAMETERS,
        Code::NsDropsTlsa => &NS_DROPS_TLSA,
        Code::NsRefusesTlsa => &NS_REFUSES_TLSA,
        Code::NsDenialBogus => &NS_DENIAL_BOGUS,
        Code::NsOutOfSync => &NS_OUT_OF_SYNC,
        Code::NsUnreachable => &NS_UNREACHABLE,
        Code::NsDropsDnskey => &NS_DROPS_DNSKEY,
        Code::NsNoTcp => &NS_NO_TCP,
        Code::TlsaPkixUsage => &TLSA_PKIX_USAGE,
        Code::TlsaMalformed => &TLSA_MALFORMED,
        Code::TlsaAllUnusable => &TLSA_ALL_UNUSABLE,
        Code::TlsaWrongSelector => &TLSA_WRONG_SELECTOR,
        Code::TlsaWrongEncoding => &TLSA_WRONG_ENCODING,
        Code::TlsaWrongUsage => &TLSA_WRONG_USAGE,
        Code::TlsaNoMatch => &TLSA_NO_MATCH,
        Code::TlsaKeyTypeUncovered => &TLSA_KEY_TYPE_UNCOVERED,
        Code::TlsaStale => &TLSA_STALE,
        Code::DaneTaNotInChain => &DANE_TA_NOT_IN_CHAIN,
        Code::DaneTaChainInvalid => &DANE_TA_CHAIN_INVALID,
        Code::DaneTaExpired => &DANE_TA_EXPIRED,
        Code::DaneTaNameMismatch => &DANE_TA_NAME_MISMATCH,
        Code::TlsaFullCertShortLived => &TLSA_FULL_CERT_SHORT_LIVED,
        Code::TlsaSingleIssuerPin => &TLSA_SINGLE_ISSUER_PIN,
        Code::TlsaRootPinned => &TLSA_ROOT_PINNED,
        Code::TlsaNoBackup => &TLSA_NO_BACKUP,
        Code::TlsaRrsetLarge => &TLSA_RRSET_LARGE,
        Code::SmtpUnreachable => &SMTP_UNREACHABLE,
        Code::SmtpRateLimited => &SMTP_RATE_LIMITED,
        Code::SmtpProtocolError => &SMTP_PROTOCOL_ERROR,
        Code::StarttlsNotOffered => &STARTTLS_NOT_OFFERED,
        Code::StarttlsRefused => &STARTTLS_REFUSED,
        Code::StarttlsInjection => &STARTTLS_INJECTION,
        Code::TlsHandshakeFailed => &TLS_HANDSHAKE_FAILED,
        Code::TlsLegacyOnly => &TLS_LEGACY_ONLY,
        Code::AddressesDisagree => &ADDRESSES_DISAGREE,
        Code::CertExpiredDaneEe => &CERT_EXPIRED_DANE_EE,
        Code::PartialCoverage => &PARTIAL_COVERAGE,
        Code::MxInsecureHostTlsa => &MX_INSECURE_HOST_TLSA,
    }
}

static MX_INSECURE: Entry = e(
    Info,
    "the MX records are not DNSSEC-signed, so DANE does not apply to this domain",
    "Sign the domain's zone with DNSSEC and publish its DS record at the parent.",
    "RFC 7672 §2.2.1",
    "A sending MTA only uses DANE when the MX RRset is secure: with an unsigned MX \
     an attacker could substitute other MX hosts, so TLSA records below them would \
     prove nothing. Mail is still delivered, with opportunistic TLS at best.",
);
static MX_BOGUS: Entry = e(
    Critical,
    "the MX records fail DNSSEC validation",
    "Re-sign the zone and check that the DS at the parent matches a current DNSKEY (e.g. with `dig +cd MX` and a DNSSEC analyser).",
    "RFC 7672 §2.2.1",
    "A validating sender treats bogus MX records as a temporary failure and defers \
     mail: nothing is delivered until the signatures validate again. Typical causes \
     are expired signatures, a DS that no longer matches the DNSKEY after a key \
     rollover, or records changed without re-signing.",
)
.rpt("dnssec-invalid");
static MX_LOOKUP_FAILED: Entry = e(
    Critical,
    "the MX lookup failed (no answer, not a proof of absence)",
    "Check that every authoritative nameserver of the domain answers MX queries, over UDP and TCP.",
    "RFC 7672 §2.2",
    "The resolver returned SERVFAIL, REFUSED, NOTIMP or nothing at all. This is not \
     the same as 'no MX': senders retry later, and nothing can be said about DANE \
     until the lookup succeeds. If it persists, senders bounce the mail.",
)
.undetermined();
static NULL_MX: Entry = e(
    Info,
    "the domain publishes a null MX: it accepts no mail",
    "Nothing to do if the domain should not receive mail.",
    "RFC 7505",
    "A single MX record with preference 0 and exchange '.' says the domain accepts \
     no mail; there is no SMTP server to protect with DANE.",
);
static IMPLICIT_MX: Entry = e(
    Info,
    "the domain has no MX records (securely denied): the domain itself is the mail host",
    "Publish an explicit MX record if the domain's own address is not meant to receive mail.",
    "RFC 5321 §5.1, RFC 7672 §2.2.1",
    "With no MX RRset, senders deliver to the domain's own A/AAAA addresses (the \
     implicit MX), and DANE applies to the domain name as the host: TLSA is looked \
     up at _25._tcp.<domain>.",
);
static MX_CNAME: Entry = e(
    Warning,
    "an MX target is an alias (CNAME)",
    "Point the MX record directly at the host name that has the A/AAAA records.",
    "RFC 5321 §5.1, RFC 7672 §2.2.2",
    "RFC 5321 forbids MX targets that are aliases. Many MTAs follow them anyway, and \
     RFC 7672 §2.2.2 defines which name DANE then uses as the TLSA base domain (the \
     expanded name when every alias is secure, else the original). Some senders \
     refuse such MX records, so mail may be deferred by them.",
);
static DOMAIN_NXDOMAIN: Entry = e(
    Info,
    "the domain does not exist (NXDOMAIN)",
    "Check the spelling of the domain; nothing can receive mail for a name that does not exist.",
    "RFC 1035 §4.1.1",
    "The domain name itself does not exist in the DNS, so it has no mail hosts and \
     DANE does not apply. In bulk scans this usually means an expired registration.",
);
static HOST_ADDRESS_INSECURE: Entry = e(
    Warning,
    "the host's address records are not DNSSEC-signed, so senders skip DANE for it",
    "Sign the zone that holds the MX host's A/AAAA records (and its DS at the parent).",
    "RFC 7672 §2.2.2",
    "DANE senders only look up TLSA for an MX host whose address records are \
     secure. With unsigned A/AAAA records the host gets at best opportunistic TLS, \
     even if the MX records themselves are signed.",
);
static HOST_ADDRESS_BOGUS: Entry = e(
    Critical,
    "the host's address records fail DNSSEC validation",
    "Re-sign the zone holding the host's A/AAAA records; check its DS and signatures.",
    "RFC 7672 §2.2.2",
    "A validating sender cannot use bogus addresses and defers mail for this host.",
)
.rpt("dnssec-invalid");
static HOST_DENIAL_BOGUS: Entry = e(
    Critical,
    "the proof that the host has no A or no AAAA records fails validation",
    "Fix the zone's NSEC/NSEC3 chain (re-sign the zone; check that the signer and every secondary serve the same, complete chain).",
    "RFC 7672 §2.2.2, RFC 4035 §5.4",
    "When a host has only IPv4 (or only IPv6), the zone must prove the other family \
     does not exist. If that proof does not validate, validating resolvers return \
     SERVFAIL for it, and senders may defer mail. Often caused by a middlebox or \
     DNS load balancer that synthesises answers, or by a broken NSEC3 chain.",
)
.rpt("dnssec-invalid");
static HOST_LOOKUP_FAILED: Entry = e(
    Critical,
    "the host's address lookup failed (no answer, not a proof of absence)",
    "Check that every authoritative nameserver of the host's zone answers A and AAAA queries.",
    "RFC 7672 §2.2.2",
    "SERVFAIL, REFUSED, NOTIMP or a timeout for the host's A or AAAA records. \
     Nothing about DANE for this host can be determined until the lookup works.",
)
.undetermined();
static HOST_NO_ADDRESS: Entry = e(
    Error,
    "the MX host has no address: its zone has no A and no AAAA record for it",
    "Publish A and/or AAAA records for the host, or point the MX record at a host that has them. If the address came from a wildcard, note that a record below the name (such as its TLSA at _25._tcp.<host>) makes the name exist as an empty non-terminal, which the wildcard no longer matches: give the host explicit address records.",
    "RFC 5321 §5.1, RFC 4592 §2.2.2",
    "A sender skips an MX host without addresses, so no mail reaches it; when it is the \
     only MX host the domain receives no mail at all. A common cause is a host whose \
     address came from a wildcard until another record was published below its name.",
);
static TLSA_ABSENT: Entry = e(
    Info,
    "no TLSA records for this host (securely denied): DANE is not used for it",
    "Publish TLSA records at _25._tcp.<host> (e.g. `3 1 1` for the server key and `2 1 1` for its issuing CA) to protect this host.",
    "RFC 7672 §2.2.3",
    "The zone proves that no TLSA RRset exists, so senders use opportunistic TLS for \
     this host. This is a warning when other MX hosts of the domain have TLSA: an \
     attacker can then steer mail to the unprotected host.",
)
.or(Warning);
static TLSA_INSECURE: Entry = e(
    Warning,
    "TLSA records exist but are not DNSSEC-signed: every sender ignores them",
    "Sign the zone that holds the TLSA records and publish its DS at the parent.",
    "RFC 7672 §2.2.3",
    "Unsigned TLSA records could be forged, so RFC 7672 senders ignore them; the \
     host gets opportunistic TLS only.",
);
static TLSA_BOGUS: Entry = e(
    Critical,
    "the TLSA records fail DNSSEC validation",
    "Re-sign the zone holding the TLSA records and check its DS, DNSKEY and signature times.",
    "RFC 7672 §2.2.3",
    "A validating sender that gets bogus TLSA records must not fall back to \
     unauthenticated TLS: it defers mail for this host. Expired signatures and \
     records edited without re-signing are the usual causes.",
)
.rpt("dnssec-invalid");
static TLSA_DENIAL_BOGUS: Entry = e(
    Critical,
    "the proof that no TLSA records exist fails validation",
    "Fix the NSEC/NSEC3 chain of the zone (re-sign it; make every secondary serve the same chain).",
    "RFC 7672 §2.2.3, RFC 4035 §5.4",
    "Validating resolvers answer SERVFAIL for the TLSA name, and DANE senders defer \
     mail because they cannot tell a forged absence from a real one.",
)
.rpt("dnssec-invalid");
static TLSA_LOOKUP_FAILED: Entry = e(
    Critical,
    "the TLSA lookup failed (SERVFAIL, timeout, REFUSED or NOTIMP): this is not 'no TLSA'",
    "Make every authoritative nameserver answer TLSA queries (look for firewalls or DNS appliances that drop unknown query types).",
    "RFC 7672 §2.2.3",
    "DANE senders must treat a failed TLSA lookup as a temporary failure and defer \
     mail. Firewalls, load balancers and old DNS appliances that drop or refuse \
     TLSA queries are a classic cause; the nameserver findings say which server.",
)
.rpt("tlsa-invalid")
.undetermined();
static RRSIG_EXPIRING: Entry = e(
    Warning,
    "a DNSSEC signature expires soon",
    "Check that the zone is re-signed automatically, and re-sign it now.",
    "RFC 4034 §3.1.5",
    "When the signature expires, validating resolvers treat the RRset as bogus and \
     DANE senders defer mail. Zones signed by hand or by a stalled signer run out \
     of signatures silently.",
);
static RRSIG_EXPIRED: Entry = e(
    Critical,
    "a DNSSEC signature has expired (or is not yet valid)",
    "Re-sign the zone now and fix whatever stopped automatic re-signing.",
    "RFC 4035 §5.3.1",
    "Outside its validity period a signature cannot validate: the RRset is bogus \
     for every validating resolver, and DANE senders defer mail.",
)
.rpt("dnssec-invalid");
static DNSSEC_WITNESS_DISAGREE: Entry = e(
    Warning,
    "the in-process validator and the recursive resolver disagree on DNSSEC status",
    "Compare with another validator (delv, a public validating resolver); one of the two is wrong or sees different servers.",
    "RFC 4035 §4.3",
    "dane-audit validates DNSSEC itself and also asks the resolver (CD=0) for its \
     own verdict. They disagree here: often a nameserver that serves different data \
     to different clients, a resolver with a different trust anchor, or a validator \
     bug. The disagreement is shown so it is never hidden.",
);
static DNSSEC_ALGORITHM_DEPRECATED: Entry = e(
    Warning,
    "a zone on the DANE path is signed only with an algorithm that must no longer be used for signing",
    "Roll the zone to algorithm 13 (ECDSAP256SHA256) or 15 (Ed25519) with an algorithm rollover (RFC 6781 §4.1.4): sign with keys of both algorithms, publish the new DS at the parent, wait for the TTLs, then remove the old keys and DS. BIND: `dnssec-policy` with `algorithm ecdsap256sha256`; Knot: `algorithm: ecdsap256sha256` in the zone's policy.",
    "RFC 8624 §3.1, RFC 9905 §2",
    "RFC 8624 says algorithms 1 (RSAMD5), 3 (DSA), 5 (RSASHA1), 6 (DSA-NSEC3-SHA1), \
     7 (RSASHA1-NSEC3-SHA1), 10 (RSASHA512) and 12 (ECC-GOST) must not (or should not) \
     be used to sign zones, and RFC 9905 forbids the SHA-1 algorithms 5 and 7 for new \
     signatures. RFC 9905 §2 also tells the operators of validating resolvers to \
     treat 5 and 7 as unsupported: for them the zone is insecure (never bogus), so \
     a growing share of senders finds no secure TLSA and skips DANE for the \
     domain. Validators, dane-audit included, still validate these algorithms; \
     the zone works today, but its protection is fading.",
);
static DS_DIGEST_SHA1_ONLY: Entry = e(
    Warning,
    "the DS records of a zone on the DANE path use only SHA-1 digests",
    "Publish a DS with digest type 2 (SHA-256) at the parent (e.g. `dnssec-dsfromkey -2 <KSK file>`, or the registrar's DNSSEC form), then remove the SHA-1 DS.",
    "RFC 8624 §3.3, RFC 9905 §2",
    "The DS record at the parent ties a zone to its key. SHA-1 (digest type 1) \
     must not be used to make DS records any more (RFC 8624 §3.3), and validators \
     that no longer accept it treat the delegation as insecure when no other \
     digest is there: senders behind them skip DANE for every name below.",
);
static DNSSEC_KEY_WEAK: Entry = e(
    Warning,
    "a zone on the DANE path has an RSA DNSKEY shorter than 2048 bits",
    "Replace the key with a 2048-bit RSA key (a key rollover, RFC 7583), or better roll the zone to algorithm 13 (ECDSAP256SHA256): shorter signatures and keys.",
    "RFC 8624 §3.1, RFC 6781 §3.4.2",
    "RSA keys of 1024 bits are within reach of well-funded attackers, and some \
     validators and cryptographic libraries refuse them. Every RRset the key \
     signs (TLSA included) is only as strong as the weakest key on the chain of \
     trust from the root.",
);
static NSEC3_PARAMETERS: Entry = e(
    Notice,
    "a zone on the DANE path uses NSEC3 with extra iterations or a salt",
    "Sign the zone with NSEC3 iterations 0 and no salt (`NSEC3PARAM 1 0 0 -`): BIND `dnssec-policy` with `nsec3param iterations 0 optout no salt-length 0;`, Knot `nsec3-iterations: 0` and `nsec3-salt-length: 0`, dnssec-signzone `-3 - -H 0`; or sign with NSEC.",
    "RFC 9276 §3.1-3.2",
    "Extra NSEC3 iterations and salts add no protection against zone walking \
     (RFC 9276 §2.4) and cost every validator CPU time. RFC 9276 §3.1 asks for \
     0 iterations and an empty salt. Above 150 iterations validators may treat \
     the zone's answers as insecure (RFC 9276 §3.2), and for them DANE then \
     stops working: that case is a warning.",
)
.or(Warning);
static NS_DROPS_TLSA: Entry = e(
    Error,
    "a nameserver address does not answer TLSA queries, while it answers others",
    "Find the firewall, load balancer or DNS appliance in front of this server that drops TLSA (type 52) queries and let them through.",
    "RFC 7672 §2.2.3",
    "Resolvers that pick this server time out and return SERVFAIL for TLSA, so DANE \
     senders defer mail intermittently, depending on which server they ask.",
);
static NS_REFUSES_TLSA: Entry = e(
    Error,
    "a nameserver answers TLSA queries with an error (REFUSED, NOTIMP, FORMERR or SERVFAIL)",
    "Upgrade or reconfigure the server or appliance so that it answers TLSA like any other type.",
    "RFC 7672 §2.2.3, RFC 3597",
    "Old DNS software and some appliances reject query types they do not know. \
     Resolvers that reach this server cannot get TLSA (nor its proof of absence), \
     and DANE senders defer mail.",
);
static NS_DENIAL_BOGUS: Entry = e(
    Error,
    "one nameserver's proof that the TLSA records do not exist fails validation",
    "Re-transfer the zone to this server (or fix its NSEC/NSEC3 records); all servers must serve the same signed zone.",
    "RFC 4035 §5.4",
    "Resolvers that ask this server get a bogus denial and defer mail, others do \
     not: delivery fails intermittently, which is hard to diagnose from outside.",
);
static NS_OUT_OF_SYNC: Entry = e(
    Warning,
    "the nameservers serve different versions of the zone (SOA serial or TLSA records differ)",
    "Fix zone transfers (NOTIFY, IXFR/AXFR, TSIG) so that every secondary serves the current serial.",
    "RFC 1996, RFC 7671 §8.1",
    "During a TLSA change, senders see the new or the old records depending on the \
     server they ask. A certificate swapped before the last secondary serves its \
     TLSA breaks delivery for part of the senders.",
);
static NS_UNREACHABLE: Entry = e(
    Warning,
    "a nameserver address answers nothing at all",
    "Remove the dead address from the NS/glue records or bring the server back.",
    "RFC 1034 §4.1",
    "Resolvers waste time on this address and may give up; it weakens every lookup \
     in the zone, TLSA included.",
);
static NS_DROPS_DNSKEY: Entry = e(
    Warning,
    "a nameserver address does not answer DNSKEY queries, while it answers others",
    "Find the firewall, load balancer or DNS appliance in front of this server that drops DNSKEY (type 48) queries, or large answers, and let them through.",
    "RFC 4035 §5, RFC 7672 §2.2",
    "A validating resolver needs the zone's DNSKEY RRset to validate anything in \
     it, TLSA included. Resolvers that ask this server time out and retry another \
     one, or give up with SERVFAIL, and DANE senders behind them defer mail. When \
     no server of the zone answers DNSKEY, nothing in it validates: that is an \
     error.",
)
.or(Error);
static NS_NO_TCP: Entry = e(
    Error,
    "a nameserver address does not answer over TCP",
    "Allow TCP port 53 to this server (firewall, load balancer) and make the server listen on TCP: every DNS server must answer over TCP (RFC 7766).",
    "RFC 7766 §5, RFC 9210",
    "An answer larger than the UDP buffer (1232 octets is the usual size) comes \
     back truncated, and the resolver must ask again over TCP. A server that does \
     not answer over TCP leaves such answers unreachable: large TLSA and DNSKEY \
     RRsets, and every answer once a resolver falls back to TCP. Resolvers that \
     pick this server fail and retry elsewhere or defer mail.",
);
static TLSA_PKIX_USAGE: Entry = e(
    Warning,
    "a TLSA record uses usage 0 (PKIX-TA) or 1 (PKIX-EE), which SMTP senders ignore",
    "Replace it with a DANE-EE `3 1 1` record for the server key (and optionally `2 1 1` for its issuing CA).",
    "RFC 7672 §3.1.3",
    "SMTP has no list of trusted public CAs, so RFC 7672 declares the PKIX usages \
     unusable for SMTP: senders treat them as if they were absent.",
)
.rpt("tlsa-invalid");
static TLSA_MALFORMED: Entry = e(
    Error,
    "a TLSA record is malformed or uses unknown parameters",
    "Regenerate the record (e.g. `dane-audit tlsa cert.pem --name <host>`).",
    "RFC 6698 §2.1, RFC 7671 §5",
    "Unknown usage, selector or matching type values, or a digest whose length does \
     not fit its matching type, make the record unusable: senders skip it.",
)
.rpt("tlsa-invalid");
static TLSA_ALL_UNUSABLE: Entry = e(
    Error,
    "no usable TLSA record remains: senders use TLS without authentication",
    "Publish at least one usable record: `3 1 1` for the server key and `2 1 1` for its issuing CA.",
    "RFC 7672 §2.2",
    "A TLSA RRset with only unusable records forces TLS but authenticates nothing. \
     It is almost always a mistake left from a tool that emitted PKIX usages or \
     wrong digests.",
)
.rpt("tlsa-invalid");
static TLSA_WRONG_SELECTOR: Entry = e(
    Error,
    "the record's digest is that of the other selector (certificate and public key swapped)",
    "Publish the record with the selector that matches its data, or recompute the digest for the selector you meant.",
    "RFC 6698 §2.1.2",
    "Selector 0 hashes the whole certificate and selector 1 only its public key. \
     The published digest equals the served certificate's digest under the other \
     selector, so the record never matches.",
)
.rpt("tlsa-invalid");
static TLSA_WRONG_ENCODING: Entry = e(
    Error,
    "the record's digest was computed over PEM or base64 text instead of DER bytes",
    "Recompute the digest over the DER encoding, e.g. `openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256`.",
    "RFC 6698 §2.1.2",
    "TLSA digests are taken over the binary DER form of the certificate or public \
     key. Hashing the PEM file gives a different value that never matches.",
)
.rpt("tlsa-invalid");
static TLSA_WRONG_USAGE: Entry = e(
    Error,
    "the record has the wrong usage for the certificate it matches",
    "Use usage 3 (DANE-EE) for the server's own certificate or key and usage 2 (DANE-TA) for a CA certificate.",
    "RFC 7671 §5.1-5.2",
    "A usage 3 record matches only the server's leaf certificate, and a usage 2 \
     record only a CA certificate the server sends above the leaf. The data here \
     matches the other position, so the record never authenticates the server.",
)
.rpt("tlsa-invalid");
static TLSA_NO_MATCH: Entry = e(
    Critical,
    "no usable TLSA record matches the certificate chain served at this address",
    "Publish a TLSA record for the certificate actually served (see `dane-audit tlsa`), wait for the TTL, then remove the old ones; or serve the certificate the records describe.",
    "RFC 7672 §3",
    "DANE senders refuse to deliver to this address. The usual cause is a \
     certificate or key renewed before its TLSA record was published (step 4 of \
     the rollover done before steps 2 and 3).",
)
.rpt("validation-failure");
static TLSA_KEY_TYPE_UNCOVERED: Entry = e(
    Critical,
    "the certificate served for one key type is not covered by any usable TLSA record",
    "Publish a `3 1 1` record for that key too (or a `2 1 1` for a CA that issued every certificate the server presents), wait for the TLSA TTL; or stop serving the uncovered certificate.",
    "RFC 7672 §3, RFC 7671 §8",
    "A server with an RSA and an ECDSA certificate (Postfix's `smtpd_tls_cert_file` \
     and `smtpd_tls_eccert_file`) presents one or the other depending on the \
     signature algorithms a sender offers. Senders that get the certificate no \
     record matches cannot authenticate the server and defer mail, while senders \
     that get the other one deliver: a check with a single client configuration \
     misses it. dane-audit makes one handshake per key type (`--key-types`).",
)
.rpt("validation-failure");
static TLSA_STALE: Entry = e(
    Notice,
    "a TLSA record matches nothing the server sends, while another record does",
    "If it is left over from a past rollover, remove it; if it is the next key, keep it until that key is deployed.",
    "RFC 7671 §8.1",
    "Extra records are harmless for delivery, but stale ones accumulate and hide \
     real problems; a record published ahead of the next key is good practice.",
);
static DANE_TA_NOT_IN_CHAIN: Entry = e(
    Critical,
    "a DANE-TA (usage 2) record's CA certificate is not sent by the server",
    "Configure the server to send the full chain including the CA the record names (or pin the issuing CA that is sent).",
    "RFC 7671 §5.2.2, RFC 7672 §3.1.2",
    "SMTP senders match usage 2 digest records only against certificates the server \
     sends (above the leaf). Pinning a root CA that is not in the served chain is the \
     most common form of this mistake. Only a record that holds the CA whole (`2 0 0`, \
     `2 1 0`) may name an unsent CA, and then its key must have signed the served chain.",
)
.or(Error)
.rpt("validation-failure");
static DANE_TA_CHAIN_INVALID: Entry = e(
    Critical,
    "the served chain does not validate up to the CA matched by the DANE-TA record",
    "Serve the leaf with the intermediate(s) that actually issued it, in order.",
    "RFC 7671 §5.2",
    "A usage 2 record pins a CA; the leaf must chain to it by valid signatures. A \
     chain mixed from different issuers, or missing an intermediate, fails.",
)
.or(Error)
.rpt("certificate-not-trusted");
static DANE_TA_EXPIRED: Entry = e(
    Critical,
    "a certificate on the DANE-TA path is expired or not yet valid",
    "Renew the expired certificate (leaf or intermediate) and serve the current chain.",
    "RFC 7671 §5.2",
    "Under DANE-TA the chain is validated like PKIX, expiry dates included, so an \
     expired certificate between the leaf and the pinned CA fails delivery.",
)
.or(Error)
.rpt("certificate-expired");
static DANE_TA_NAME_MISMATCH: Entry = e(
    Critical,
    "under DANE-TA the certificate does not name the host (TLSA base domain)",
    "Issue the certificate with a subjectAltName dNSName equal to the MX host name.",
    "RFC 7672 §3.2.3",
    "With usage 2, senders check that the leaf names the TLSA base domain: a \
     dNSName subjectAltName (or the CN when there is no dNSName), with a wildcard \
     only as the whole left-most label.",
)
.or(Error)
.rpt("certificate-host-mismatch");
static TLSA_FULL_CERT_SHORT_LIVED: Entry = e(
    Warning,
    "a `3 0 x` record pins a short-lived certificate: it breaks at every renewal",
    "Use `3 1 1` and reuse the key across renewals (certbot: --reuse-key), or publish the next record before each renewal.",
    "RFC 7671 §5.1, §8",
    "A certificate valid for 100 days or less is renewed automatically every few \
     weeks; a record over the whole certificate stops matching on each renewal, \
     while a record over the public key survives renewals that keep the key.",
);
static TLSA_SINGLE_ISSUER_PIN: Entry = e(
    Warning,
    "a `2 x x` record pins one of several rotating issuing CAs",
    "Publish `2 1 1` records for every issuing CA the provider may use (or rely on `3 1 1` with key reuse).",
    "RFC 7671 §8.1",
    "Let's Encrypt, for example, issues at random from R10-R14 (RSA) and E5-E9 \
     (ECDSA). A record pinning one of them stops matching when the next renewal is \
     signed by a sibling.",
);
static TLSA_ROOT_PINNED: Entry = e(
    Warning,
    "a `2 x x` record pins a root CA",
    "Pin the issuing (intermediate) CA instead, and make sure the server sends it.",
    "RFC 7671 §5.2.2",
    "Servers usually do not send the root, and SMTP senders only match usage 2 \
     against certificates that are sent; even when it works, any intermediate of \
     that root is trusted for the host.",
);
static TLSA_NO_BACKUP: Entry = e(
    Notice,
    "only one TLSA record matches at this host: any key change breaks delivery",
    "Publish a second record, e.g. `3 1 1` for the key plus `2 1 1` for its issuing CA, or `3 1 1` for the next key.",
    "RFC 7671 §8.1",
    "With exactly one matching record, replacing the key or certificate in any way \
     makes the host fail until DNS catches up. A second, independent record lets a \
     rollover happen without an outage.",
);
static TLSA_RRSET_LARGE: Entry = e(
    Notice,
    "the TLSA RRset is large: its signed answer does not fit 1232 octets, or it has more than 8 records",
    "Remove records left over from earlier rollovers (keep `3 1 1` for the current key and `2 1 1` for its issuing CA, plus the next key's record during a rollover), prefer digests (matching type 1) to full certificates (matching type 0), and check that every nameserver answers over TCP.",
    "RFC 7671 §8.1, RFC 7766 §5",
    "An answer that does not fit a 1232-octet UDP datagram arrives truncated and \
     must be fetched again over TCP (or as IP fragments, which many networks drop): \
     every lookup is slower and fails where TCP is blocked. Most often the RRset \
     has grown with each rollover, because old records were never removed.",
);
static SMTP_UNREACHABLE: Entry = e(
    Warning,
    "the address could not be tested: the connection was refused or timed out",
    "Check that port 25 is open to the Internet on this address (and that the auditing host is not blocked).",
    "RFC 5321 §3.1",
    "Nothing can be said about TLS at this address. If it is permanently dead, \
     remove it from DNS: senders waste time on it.",
)
.undetermined();
static SMTP_RATE_LIMITED: Entry = e(
    Warning,
    "the server deferred the probe (421/450 before STARTTLS): not tested",
    "Retry later or from another address; allowlist the auditing host if you run the server.",
    "RFC 5321 §4.2.5",
    "A temporary refusal (rate limit, greylisting, too many connections) says \
     nothing about STARTTLS support: the address is reported as not tested, never \
     as 'no STARTTLS'.",
)
.undetermined();
static SMTP_PROTOCOL_ERROR: Entry = e(
    Critical,
    "the server broke the SMTP protocol",
    "Check what answers on port 25 at this address (a proxy, a non-SMTP service, or an MTA bug).",
    "RFC 5321 §4.2, RFC 3207 §4",
    "The reply was not SMTP, was too long, never ended, or the server sent data \
     after its STARTTLS 220 reply (a command-injection hazard). Senders cannot \
     deliver securely to such a server.",
)
.or(Notice)
.rpt("validation-failure");
static STARTTLS_NOT_OFFERED: Entry = e(
    Critical,
    "the server does not offer STARTTLS",
    "Enable STARTTLS on the MTA (Postfix: smtpd_tls_security_level = may, with a certificate and key).",
    "RFC 7672 §2.2, RFC 3207",
    "A DANE sender requires TLS for a host with usable TLSA: without STARTTLS it \
     defers and eventually bounces the mail.",
)
.or(Notice)
.rpt("starttls-not-supported");
static STARTTLS_REFUSED: Entry = e(
    Critical,
    "the server refused STARTTLS",
    "Check the MTA's TLS configuration (certificate, key, permissions) and its logs for the reason.",
    "RFC 3207 §4",
    "STARTTLS was advertised but answered with an error (often 454 'TLS not \
     available'): typically an unreadable key or certificate file.",
)
.or(Notice)
.rpt("starttls-not-supported");
static STARTTLS_INJECTION: Entry = e(
    Warning,
    "the server sent data together with its STARTTLS 220 reply (command injection hazard)",
    "Find the MTA, proxy or middlebox that emits bytes after the 220 reply and fix or upgrade it.",
    "RFC 3207 §4.2",
    "Anything sent after the 220 reply and before the TLS handshake is unauthenticated \
     plaintext; a client that kept it would treat it as protected (the CVE-2011-0411 \
     class of bugs). dane-audit discarded the bytes and completed the handshake, as \
     Postfix and OpenSSL clients do, so delivery still works; but the server (or \
     something between it and the sender) is broken or hostile.",
);
static TLS_HANDSHAKE_FAILED: Entry = e(
    Critical,
    "the TLS handshake failed",
    "Enable TLS 1.2 or 1.3 with ECDHE and AEAD cipher suites, and check the certificate and key files.",
    "RFC 7672 §3, RFC 8996",
    "The server accepted STARTTLS but no TLS session could be established (no common \
     protocol version or cipher, a broken key, or a connection reset). A server that \
     a legacy ClientHello still reaches is reported as `tls-legacy-only` instead.",
)
.or(Notice)
.rpt("validation-failure");
static TLS_LEGACY_ONLY: Entry = e(
    Critical,
    "the server accepts only legacy TLS (TLS 1.0/1.1, or only CBC or RSA key-exchange suites)",
    "Enable TLS 1.2 and 1.3 with ECDHE and AEAD cipher suites (in Postfix: do not restrict `smtpd_tls_protocols` or the cipher lists, and drop `@SECLEVEL=0`).",
    "RFC 7672 §3, RFC 8996, RFC 9325",
    "The server shares no protocol version or cipher suite with a modern TLS client, \
     so senders that require TLS 1.2 with ECDHE and AEAD (RFC 9325; rustls-based \
     MTAs; OpenSSL 3 at its default security level for TLS 1.0/1.1) cannot start TLS, \
     and DANE senders among them defer mail. dane-audit still reads the certificate \
     chain, which such servers send in clear, with a legacy ClientHello, and matches \
     it against the TLSA records for the senders that can still negotiate; no \
     handshake is completed, so the chain is not proven to belong to the server.",
)
.or(Notice)
.rpt("validation-failure");
static ADDRESSES_DISAGREE: Entry = e(
    Error,
    "the addresses of this host give different results",
    "Deploy the same certificate and TLS configuration on every address (IPv4 and IPv6) of the host.",
    "RFC 7672 §3",
    "Senders pick any address; some will succeed and some fail, so delivery is \
     intermittent. A forgotten IPv6 listener or a second server behind one name \
     are typical.",
);
static CERT_EXPIRED_DANE_EE: Entry = e(
    Notice,
    "the server's certificate is expired; DANE-EE ignores this, other senders may not",
    "Renew the certificate (keeping the key keeps `3 1 1` records valid).",
    "RFC 7671 §5.1",
    "DANE-EE authentication does not check validity dates, so DANE senders still \
     deliver; senders that fall back to PKIX checks, and people, will complain.",
);
static PARTIAL_COVERAGE: Entry = e(
    Warning,
    "only some MX hosts are protected by DANE",
    "Publish TLSA records for every MX host (or remove the unprotected ones).",
    "RFC 7672 §2.2",
    "An attacker who can block the protected hosts makes senders fall back to an \
     unprotected one, with opportunistic TLS only.",
);
static MX_INSECURE_HOST_TLSA: Entry = e(
    Info,
    "the MX records are not signed, but an MX host has secure TLSA (opportunistic DANE only)",
    "Sign the domain's zone so that senders apply DANE to it.",
    "RFC 7672 §2.2.1",
    "Senders that reach this host through its own secure name may use its TLSA, \
     but for this domain the unsigned MX means DANE is not enforced.",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_complete_and_worded() {
        for c in Code::ALL {
            let e = entry(*c);
            assert!(!e.title.is_empty() && !e.fix.is_empty(), "{c}");
            assert!(e.rfc.starts_with("RFC "), "{c}: {}", e.rfc);
            assert!(e.explain.len() > 60, "{c}");
            assert!(
                !e.title.ends_with('.'),
                "{c}: titles are lines, not sentences"
            );
        }
    }
}
