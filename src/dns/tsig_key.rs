//! TSIG keys (RFC 8945) in the files operators already have: the `key`
//! statement of BIND's named.conf (what `tsig-keygen` and `ddns-confgen`
//! print) and the `key:` section of knot.conf (what `keymgr -t` prints).
//!
//! Only HMAC-SHA256 and HMAC-SHA512 are accepted: they are the algorithms
//! both BIND and Knot generate by default and RFC 8945 §6 asks for; MD5 and
//! SHA-1 keys should be replaced rather than supported.
//!
//! The secret is the one thing here that must never leak. It lives in a
//! buffer that is wiped on drop, has no public accessor, is redacted by
//! `Debug`, and no error quotes text from the file other than key names,
//! algorithm names and setting names (never a value that could be the
//! secret).

use std::fmt;
use std::io::Read;
use std::path::Path;

use base64::Engine;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm as WireAlgorithm;
use hickory_proto::rr::{Name, TSigner};
use zeroize::Zeroizing;

/// A key file larger than this is not a key file (a whole named.conf with
/// its zones is still far below it).
pub const MAX_KEY_FILE: u64 = 256 * 1024;

/// Allowed clock difference between us and the server (RFC 8945 §10
/// recommends 300 s).
pub const FUDGE: u16 = 300;

/// The HMAC algorithms we sign with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha512,
}

impl TsigAlgorithm {
    /// The algorithm's name as key files and the TSIG record spell it.
    pub fn name(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }

    fn from_text(text: &str) -> Option<TsigAlgorithm> {
        let t = text.trim().trim_end_matches('.');
        if t.eq_ignore_ascii_case("hmac-sha256") {
            Some(TsigAlgorithm::HmacSha256)
        } else if t.eq_ignore_ascii_case("hmac-sha512") {
            Some(TsigAlgorithm::HmacSha512)
        } else {
            None
        }
    }

    fn wire(self) -> WireAlgorithm {
        match self {
            TsigAlgorithm::HmacSha256 => WireAlgorithm::HmacSha256,
            TsigAlgorithm::HmacSha512 => WireAlgorithm::HmacSha512,
        }
    }
}

impl fmt::Display for TsigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A TSIG key: its name (as the server knows it), algorithm and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    name: Name,
    algorithm: TsigAlgorithm,
    secret: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name.to_ascii())
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name.to_ascii(), self.algorithm)
    }
}

/// Why a key could not be read; one line each, never containing the secret.
#[derive(Debug, thiserror::Error)]
pub enum TsigKeyError {
    #[error("cannot read TSIG key file {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("TSIG key file {path} is larger than {max} bytes: not a key file")]
    TooLarge { path: String, max: u64 },
    #[error("{path}: {err}")]
    InFile {
        path: String,
        err: Box<TsigKeyError>,
    },
    #[error("line {line}: {what}")]
    Syntax { line: usize, what: String },
    #[error(
        "no TSIG key found: expected a BIND `key \"name\" {{ algorithm ...; secret \"...\"; }};` statement or a Knot `key:` section"
    )]
    NoKey,
    #[error("{count} TSIG keys found ({names}): say which one to use")]
    Ambiguous { count: usize, names: String },
    #[error("no TSIG key named {wanted} (found: {names})")]
    NotFound { wanted: String, names: String },
    #[error("TSIG key {key} is defined twice")]
    Duplicate { key: String },
    #[error(
        "TSIG key {key}: algorithm {algorithm} is not supported; use hmac-sha256 or hmac-sha512 (RFC 8945 §6)"
    )]
    UnsupportedAlgorithm { key: String, algorithm: String },
    #[error("TSIG key {key} has no {field}")]
    Missing { key: String, field: &'static str },
    #[error("TSIG key {key}: the secret is not valid base64")]
    BadSecret { key: String },
    #[error("TSIG key {key}: the secret is empty")]
    EmptySecret { key: String },
    #[error("{name:?} is not a valid TSIG key name: {why}")]
    BadName { name: String, why: String },
    #[error("cannot sign with TSIG key {key}: {why}")]
    Signer { key: String, why: String },
}

impl TsigKey {
    /// A key from its parts (the name is made fully qualified).
    pub fn new(
        name: &str,
        algorithm: TsigAlgorithm,
        secret: Vec<u8>,
    ) -> Result<TsigKey, TsigKeyError> {
        let secret = Zeroizing::new(secret);
        let name = key_name(name)?;
        if secret.is_empty() {
            return Err(TsigKeyError::EmptySecret {
                key: name.to_ascii(),
            });
        }
        Ok(TsigKey {
            name,
            algorithm,
            secret,
        })
    }

    /// The key named `name` in `path` (or its only key when `name` is None).
    pub fn load(path: &Path, name: Option<&str>) -> Result<TsigKey, TsigKeyError> {
        let shown = path.display().to_string();
        let text = read_capped(path)?;
        TsigKey::parse(&text, name).map_err(|err| match err {
            TsigKeyError::Read { .. } | TsigKeyError::TooLarge { .. } => err,
            other => TsigKeyError::InFile {
                path: shown,
                err: Box::new(other),
            },
        })
    }

    /// The key named `name` in key-file text (or its only key).
    pub fn parse(text: &str, name: Option<&str>) -> Result<TsigKey, TsigKeyError> {
        select(parse_keys(text)?, name)
    }

    /// The key's name, fully qualified (`upd-key.`), as the TSIG record carries it.
    pub fn name(&self) -> String {
        self.name.to_ascii()
    }

    pub fn algorithm(&self) -> TsigAlgorithm {
        self.algorithm
    }

    /// Whether `text` shows this key's secret (base64 or hex), for tests
    /// that prove it does not. Secrets under 8 bytes are too short to
    /// search for without false alarms and count as not shown.
    pub(crate) fn secret_appears_in(&self, text: &str) -> bool {
        if self.secret.len() < 8 {
            return false;
        }
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*self.secret));
        let hex = Zeroizing::new(hex::encode(&*self.secret));
        let b64_body = b64.trim_end_matches('=');
        text.contains(b64_body) || text.to_ascii_lowercase().contains(hex.as_str())
    }

    /// hickory's signer for this key. hickory keeps its own copy of the
    /// secret (not wiped on drop), so signers are made per message and
    /// dropped right after.
    pub(crate) fn signer(&self) -> Result<TSigner, TsigKeyError> {
        TSigner::new(
            self.secret.to_vec(),
            self.algorithm.wire(),
            self.name.clone(),
            FUDGE,
        )
        .map_err(|e| TsigKeyError::Signer {
            key: self.to_string(),
            why: e.to_string(),
        })
    }
}

fn read_capped(path: &Path) -> Result<Zeroizing<String>, TsigKeyError> {
    let shown = || path.display().to_string();
    let file =
        std::fs::File::open(path).map_err(|err| TsigKeyError::Read { path: shown(), err })?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| TsigKeyError::Read { path: shown(), err })?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(TsigKeyError::TooLarge {
            path: shown(),
            max: MAX_KEY_FILE,
        });
    }
    match std::str::from_utf8(&bytes) {
        Ok(s) => Ok(Zeroizing::new(s.to_string())),
        Err(_) => Err(TsigKeyError::Read {
            path: shown(),
            err: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
        }),
    }
}

/// Every key in key-file text: BIND syntax, or Knot's YAML when the text
/// has a top-level `key:` section.
pub fn parse_keys(text: &str) -> Result<Vec<TsigKey>, TsigKeyError> {
    let parts = if has_knot_key_section(text) {
        knot::parse(text)?
    } else {
        bind::parse(text)?
    };
    let mut keys: Vec<TsigKey> = Vec::with_capacity(parts.len());
    for p in parts {
        let key = p.build()?;
        if keys.iter().any(|k| k.name == key.name) {
            return Err(TsigKeyError::Duplicate { key: key.name() });
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(TsigKeyError::NoKey);
    }
    Ok(keys)
}

fn select(keys: Vec<TsigKey>, name: Option<&str>) -> Result<TsigKey, TsigKeyError> {
    let names = || {
        keys.iter()
            .map(TsigKey::name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(wanted) => {
            let want = key_name(wanted)?;
            let found = keys.iter().position(|k| k.name == want);
            match found {
                Some(i) => Ok(keys[i].clone()),
                None => Err(TsigKeyError::NotFound {
                    wanted: want.to_ascii(),
                    names: names(),
                }),
            }
        }
        None if keys.len() == 1 => Ok(keys[0].clone()),
        None => Err(TsigKeyError::Ambiguous {
            count: keys.len(),
            names: names(),
        }),
    }
}

fn key_name(text: &str) -> Result<Name, TsigKeyError> {
    let shown: String = text.chars().take(80).collect();
    let t = text.trim();
    if t.is_empty() || t == "." {
        return Err(TsigKeyError::BadName {
            name: shown,
            why: "empty".into(),
        });
    }
    // hickory's message quotes the offending character as is: a newline
    // there would break the one-line error.
    let mut name = Name::from_ascii(t).map_err(|e| TsigKeyError::BadName {
        name: shown,
        why: e.to_string().escape_debug().to_string(),
    })?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// A key as read, before its parts are checked.
#[derive(Default)]
struct KeyParts {
    line: usize,
    name: Option<String>,
    algorithm: Option<String>,
    secret: Option<Zeroizing<String>>,
}

impl KeyParts {
    fn build(self) -> Result<TsigKey, TsigKeyError> {
        let Some(name) = self.name else {
            return Err(TsigKeyError::Syntax {
                line: self.line,
                what: "a key without a name (id)".into(),
            });
        };
        let name = key_name(&name)?;
        let shown = name.to_ascii();
        let missing = |field| TsigKeyError::Missing {
            key: shown.clone(),
            field,
        };
        let alg_text = self.algorithm.ok_or_else(|| missing("algorithm"))?;
        let secret_text = self.secret.ok_or_else(|| missing("secret"))?;
        let algorithm = TsigAlgorithm::from_text(&alg_text).ok_or_else(|| {
            TsigKeyError::UnsupportedAlgorithm {
                key: shown.clone(),
                algorithm: printable_word(&alg_text),
            }
        })?;
        let secret = decode_secret(&secret_text, &shown)?;
        TsigKey::new(&shown, algorithm, secret.to_vec())
    }
}

/// Base64 as BIND reads it: white space anywhere is ignored.
fn decode_secret(text: &str, key: &str) -> Result<Zeroizing<Vec<u8>>, TsigKeyError> {
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    if compact.is_empty() {
        return Err(TsigKeyError::EmptySecret { key: key.into() });
    }
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| TsigKeyError::BadSecret { key: key.into() })
}

/// A word from the file that may be shown in an error: a plausible
/// algorithm or setting name, else a placeholder (it could be a secret
/// written in the wrong place).
fn printable_word(text: &str) -> String {
    let t = text.trim();
    let plausible = !t.is_empty()
        && t.len() <= 32
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        && t.chars().any(|c| c == '-' || c == '_')
        || t.len() <= 12 && t.chars().all(|c| c.is_ascii_alphanumeric());
    if plausible {
        t.to_string()
    } else {
        "(not shown)".into()
    }
}

fn has_knot_key_section(text: &str) -> bool {
    text.lines().any(|l| knot::top_level_key(l) == Some("key"))
}

/// BIND's named.conf grammar, as far as key files need it: `key NAME { ... };`
/// statements; every other statement is skipped whole.
mod bind {
    use super::{KeyParts, TsigKeyError};
    use zeroize::Zeroizing;

    #[derive(Debug, PartialEq, Eq)]
    enum Kind {
        Word,
        Str,
        Open,
        Close,
        Semi,
    }

    struct Token {
        kind: Kind,
        text: Zeroizing<String>,
        line: usize,
    }

    fn syntax(line: usize, what: &str) -> TsigKeyError {
        TsigKeyError::Syntax {
            line,
            what: what.to_string(),
        }
    }

    /// Splits named.conf text into tokens; `#`, `//` and `/* */` comments
    /// are dropped.
    fn tokens(text: &str) -> Result<Vec<Token>, TsigKeyError> {
        let mut out = Vec::new();
        let mut it = text.chars().peekable();
        let mut line = 1usize;
        while let Some(c) = it.next() {
            match c {
                '\n' => line += 1,
                c if c.is_whitespace() => {}
                '#' => skip_line(&mut it, &mut line),
                '/' if it.peek() == Some(&'/') => skip_line(&mut it, &mut line),
                '/' if it.peek() == Some(&'*') => {
                    it.next();
                    skip_block_comment(&mut it, &mut line)?;
                }
                '{' | '}' | ';' => out.push(Token {
                    kind: match c {
                        '{' => Kind::Open,
                        '}' => Kind::Close,
                        _ => Kind::Semi,
                    },
                    text: Zeroizing::new(c.to_string()),
                    line,
                }),
                '"' => {
                    let start = line;
                    let text = quoted(&mut it, &mut line)
                        .ok_or_else(|| syntax(start, "a quoted string is not closed"))?;
                    out.push(Token {
                        kind: Kind::Str,
                        text,
                        line: start,
                    });
                }
                c => {
                    let mut w = Zeroizing::new(String::from(c));
                    while let Some(&n) = it.peek() {
                        if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '"') {
                            break;
                        }
                        w.push(n);
                        it.next();
                    }
                    out.push(Token {
                        kind: Kind::Word,
                        text: w,
                        line,
                    });
                }
            }
        }
        Ok(out)
    }

    fn skip_line(it: &mut std::iter::Peekable<std::str::Chars<'_>>, line: &mut usize) {
        for c in it.by_ref() {
            if c == '\n' {
                *line += 1;
                return;
            }
        }
    }

    fn skip_block_comment(
        it: &mut std::iter::Peekable<std::str::Chars<'_>>,
        line: &mut usize,
    ) -> Result<(), TsigKeyError> {
        let start = *line;
        let mut star = false;
        for c in it.by_ref() {
            match c {
                '/' if star => return Ok(()),
                '\n' => *line += 1,
                _ => {}
            }
            star = c == '*';
        }
        Err(syntax(start, "a /* comment is not closed"))
    }

    fn quoted(
        it: &mut std::iter::Peekable<std::str::Chars<'_>>,
        line: &mut usize,
    ) -> Option<Zeroizing<String>> {
        let mut s = Zeroizing::new(String::new());
        while let Some(c) = it.next() {
            match c {
                '"' => return Some(s),
                '\\' => s.push(it.next()?),
                '\n' => {
                    *line += 1;
                    s.push(c);
                }
                c => s.push(c),
            }
        }
        None
    }

    pub(super) fn parse(text: &str) -> Result<Vec<KeyParts>, TsigKeyError> {
        let toks = tokens(text)?;
        let mut keys = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let t = &toks[i];
            if t.kind == Kind::Word && t.text.eq_ignore_ascii_case("key") {
                let (parts, next) = key_statement(&toks, i)?;
                keys.push(parts);
                i = next;
            } else {
                i = skip_statement(&toks, i)?;
            }
        }
        Ok(keys)
    }

    /// `key NAME { algorithm A; secret "S"; };` starting at `at`; returns
    /// the parts and the index after the closing `;`.
    fn key_statement(toks: &[Token], at: usize) -> Result<(KeyParts, usize), TsigKeyError> {
        let line = toks[at].line;
        let mut parts = KeyParts {
            line,
            ..KeyParts::default()
        };
        let name = toks
            .get(at + 1)
            .filter(|t| matches!(t.kind, Kind::Word | Kind::Str))
            .ok_or_else(|| syntax(line, "`key` must be followed by the key's name"))?;
        parts.name = Some(name.text.to_string());
        expect(
            toks,
            at + 2,
            Kind::Open,
            line,
            "expected `{` after the key's name",
        )?;
        let mut i = at + 3;
        loop {
            let t = toks
                .get(i)
                .ok_or_else(|| syntax(line, "the key statement is not closed with `};`"))?;
            match t.kind {
                Kind::Close => break,
                Kind::Word => {
                    i = key_clause(toks, i, &mut parts)?;
                }
                _ => return Err(syntax(t.line, "expected `algorithm` or `secret`")),
            }
        }
        expect(
            toks,
            i + 1,
            Kind::Semi,
            toks[i].line,
            "expected `;` after `}`",
        )?;
        Ok((parts, i + 2))
    }

    /// One `algorithm X;` or `secret "X";` clause; returns the index after its `;`.
    fn key_clause(toks: &[Token], at: usize, parts: &mut KeyParts) -> Result<usize, TsigKeyError> {
        let t = &toks[at];
        let value = toks
            .get(at + 1)
            .filter(|v| matches!(v.kind, Kind::Word | Kind::Str))
            .ok_or_else(|| syntax(t.line, "a key clause needs a value"))?;
        expect(
            toks,
            at + 2,
            Kind::Semi,
            value.line,
            "expected `;` after the value",
        )?;
        let twice = || syntax(t.line, "a key clause is given twice");
        if t.text.eq_ignore_ascii_case("algorithm") {
            if parts.algorithm.replace(value.text.to_string()).is_some() {
                return Err(twice());
            }
        } else if t.text.eq_ignore_ascii_case("secret") {
            if parts
                .secret
                .replace(Zeroizing::new(value.text.to_string()))
                .is_some()
            {
                return Err(twice());
            }
        } else {
            return Err(syntax(
                t.line,
                "unknown clause in a key statement (only `algorithm` and `secret` are allowed)",
            ));
        }
        Ok(at + 3)
    }

    fn expect(
        toks: &[Token],
        at: usize,
        kind: Kind,
        line: usize,
        what: &str,
    ) -> Result<(), TsigKeyError> {
        match toks.get(at) {
            Some(t) if t.kind == kind => Ok(()),
            Some(t) => Err(syntax(t.line, what)),
            None => Err(syntax(line, what)),
        }
    }

    /// Skips any other statement up to its `;` outside braces.
    fn skip_statement(toks: &[Token], at: usize) -> Result<usize, TsigKeyError> {
        let line = toks[at].line;
        let mut depth = 0usize;
        for (i, t) in toks.iter().enumerate().skip(at) {
            match t.kind {
                Kind::Open => depth += 1,
                Kind::Close => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| syntax(t.line, "`}` without `{`"))?;
                }
                Kind::Semi if depth == 0 => return Ok(i + 1),
                _ => {}
            }
        }
        Err(syntax(line, "a statement is not closed with `;`"))
    }
}

/// The `key:` section of knot.conf (block-style YAML, as `keymgr -t`
/// prints it); other sections are skipped.
mod knot {
    use super::{KeyParts, TsigKeyError, printable_word};
    use zeroize::Zeroizing;

    /// The name of a top-level `NAME:` section line, if `line` is one.
    pub(super) fn top_level_key(line: &str) -> Option<&str> {
        if line.starts_with([' ', '\t', '-', '#']) {
            return None;
        }
        let l = strip_comment(line).trim_end();
        l.strip_suffix(':').filter(|n| !n.contains([' ', ':']))
    }

    /// YAML comments start at a `#` that begins the line or follows white
    /// space; base64 and key names never contain `#`.
    fn strip_comment(line: &str) -> &str {
        if line.trim_start().starts_with('#') {
            return "";
        }
        match line.find(" #").or_else(|| line.find("\t#")) {
            Some(i) => &line[..i],
            None => line,
        }
    }

    fn unquote(v: &str) -> &str {
        let v = v.trim();
        for q in ['"', '\''] {
            if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
                return inner;
            }
        }
        v
    }

    fn syntax(line: usize, what: String) -> TsigKeyError {
        TsigKeyError::Syntax { line, what }
    }

    pub(super) fn parse(text: &str) -> Result<Vec<KeyParts>, TsigKeyError> {
        let mut keys = Vec::new();
        let mut current: Option<KeyParts> = None;
        let mut in_keys = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = strip_comment(raw);
            if l.trim().is_empty() {
                continue;
            }
            if !raw.starts_with([' ', '\t', '-']) {
                keys.extend(current.take());
                in_keys = top_level_key(raw) == Some("key");
                continue;
            }
            if !in_keys {
                continue;
            }
            let mut rest = l.trim_start();
            if let Some(r) = rest.strip_prefix('-') {
                keys.extend(current.take());
                current = Some(KeyParts {
                    line,
                    ..KeyParts::default()
                });
                rest = r.trim_start();
                if rest.is_empty() {
                    continue;
                }
            }
            let Some(parts) = current.as_mut() else {
                return Err(syntax(
                    line,
                    "a setting outside a `- id:` item in the key section".into(),
                ));
            };
            setting(parts, rest, line)?;
        }
        keys.extend(current);
        Ok(keys)
    }

    fn setting(parts: &mut KeyParts, text: &str, line: usize) -> Result<(), TsigKeyError> {
        let Some((field, value)) = text.split_once(':') else {
            return Err(syntax(line, "expected `name: value`".into()));
        };
        let value = unquote(value);
        let twice = || syntax(line, format!("`{}` is given twice", field.trim()));
        match field.trim() {
            "id" => {
                if parts.name.replace(value.to_string()).is_some() {
                    return Err(twice());
                }
            }
            "algorithm" => {
                if parts.algorithm.replace(value.to_string()).is_some() {
                    return Err(twice());
                }
            }
            "secret" => {
                if parts
                    .secret
                    .replace(Zeroizing::new(value.to_string()))
                    .is_some()
                {
                    return Err(twice());
                }
            }
            other => {
                return Err(syntax(
                    line,
                    format!(
                        "unknown key setting `{}` (Knot knows id, algorithm and secret)",
                        printable_word(other)
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `tsig-keygen -a hmac-sha256 upd-key.` (BIND 9.18) prints.
    const TSIG_KEYGEN: &str = "key \"upd-key.\" {\n\talgorithm hmac-sha256;\n\tsecret \"A7xUoYSYLkapjj/NYP8o3VIU67/9sgPEmkDyTLACvLA=\";\n};\n";
    /// What `keymgr -t k2 hmac-sha512` (Knot 3.2) prints.
    const KEYMGR: &str = "# hmac-sha512:k2:Og8b1u9ldABjf8iPPmNH/Vt8VV8J9si8jXOZJ69JFRJqesT7fkgOHrFLAy4zMR05p0N7O90k+CbX8uJJd1z05g==\nkey:\n  - id: k2\n    algorithm: hmac-sha512\n    secret: Og8b1u9ldABjf8iPPmNH/Vt8VV8J9si8jXOZJ69JFRJqesT7fkgOHrFLAy4zMR05p0N7O90k+CbX8uJJd1z05g==\n";
    /// What `ddns-confgen -k foo -z example.org` prints: comments, a key
    /// and an update-policy statement.
    const DDNS_CONFGEN: &str = "# To activate this key, place the following in named.conf, and\n# in a separate keyfile on the system or systems from which nsupdate\n# will be run:\nkey \"foo\" {\n\talgorithm hmac-sha256;\n\tsecret \"iQLp+T0tURmYGkjf/1iuzzHhF5vNrjlgOGu8s9Qlz1A=\";\n};\n\n# Then, in the \"zone\" definition statement for \"example.org\",\n# place an \"update-policy\" statement like this one, adjusted as \n# needed for your preferred permissions:\nupdate-policy {\n\t  grant foo zonesub ANY;\n};\n\n# After the keyfile has been placed, the following command will\n# execute nsupdate using this key:\nnsupdate -k <keyfile>\n";

    fn secret_of(k: &TsigKey) -> Vec<u8> {
        k.secret.to_vec()
    }

    #[test]
    fn reads_what_tsig_keygen_prints() {
        let k = TsigKey::parse(TSIG_KEYGEN, None).unwrap();
        assert_eq!(k.name(), "upd-key.");
        assert_eq!(k.algorithm(), TsigAlgorithm::HmacSha256);
        assert_eq!(secret_of(&k).len(), 32);
        assert_eq!(k.to_string(), "upd-key. (hmac-sha256)");
    }

    #[test]
    fn reads_what_keymgr_prints() {
        let k = TsigKey::parse(KEYMGR, Some("k2")).unwrap();
        assert_eq!(k.name(), "k2.");
        assert_eq!(k.algorithm(), TsigAlgorithm::HmacSha512);
        assert_eq!(secret_of(&k).len(), 64);
    }

    #[test]
    fn ddns_confgen_output_skips_the_update_policy() {
        // The last line is not a statement: the parser must say so, with its line.
        let e = TsigKey::parse(DDNS_CONFGEN, None).unwrap_err().to_string();
        assert!(e.starts_with("line 18: "), "{e}");
        let without_tail = DDNS_CONFGEN.replace("nsupdate -k <keyfile>\n", "");
        let k = TsigKey::parse(&without_tail, None).unwrap();
        assert_eq!(k.name(), "foo.");
    }

    #[test]
    fn bind_syntax_variants() {
        let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";
        let text = format!(
            "/* block\n comment */ options {{ directory \"/x\"; }};\n\
             // line comment\n\
             key other {{ algorithm HMAC-SHA512; secret \"{secret}\"; }};\n\
             KEY \"Mixed.Case\" {{\n  algorithm \"hmac-sha256\"; # note\n  secret \"{} {}\";\n}};\n",
            &secret[..10],
            &secret[10..]
        );
        let keys = parse_keys(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].name(), "other.");
        assert_eq!(keys[0].algorithm(), TsigAlgorithm::HmacSha512);
        assert_eq!(keys[1].name(), "mixed.case.");
        assert_eq!(keys[0].secret, keys[1].secret);
        let e = TsigKey::parse(&text, None).unwrap_err().to_string();
        assert_eq!(
            e,
            "2 TSIG keys found (other., mixed.case.): say which one to use"
        );
        assert_eq!(
            TsigKey::parse(&text, Some("MIXED.case.")).unwrap().name(),
            "mixed.case."
        );
        let e = TsigKey::parse(&text, Some("nope")).unwrap_err().to_string();
        assert_eq!(e, "no TSIG key named nope. (found: other., mixed.case.)");
    }

    #[test]
    fn knot_yaml_variants() {
        let text = "server:\n    listen: 0.0.0.0@53\n\nkey:\n  - id: \"a\"   # first\n    algorithm: hmac-sha256\n    secret: 'c2VjcmV0'\n  -\n    id: b\n    secret: c2VjcmV0\n    algorithm: HMAC-SHA512\nzone:\n  - domain: example.\n";
        let keys = parse_keys(text).unwrap();
        let names: Vec<String> = keys.iter().map(TsigKey::name).collect();
        assert_eq!(names, ["a.", "b."]);
        assert_eq!(secret_of(&keys[1]), b"secret");
        assert_eq!(keys[1].algorithm(), TsigAlgorithm::HmacSha512);
    }

    #[test]
    fn errors_are_one_clear_line() {
        let cases: &[(&str, &str)] = &[
            ("", "no TSIG key found"),
            ("# nothing\n", "no TSIG key found"),
            (
                "key \"k\" { algorithm hmac-md5; secret \"c2VjcmV0\"; };",
                "TSIG key k.: algorithm hmac-md5 is not supported; use hmac-sha256 or hmac-sha512",
            ),
            (
                "key:\n  - id: k\n    algorithm: hmac-sha1\n    secret: c2VjcmV0\n",
                "TSIG key k.: algorithm hmac-sha1 is not supported",
            ),
            (
                "key \"k\" { secret \"c2VjcmV0\"; };",
                "TSIG key k. has no algorithm",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; };",
                "TSIG key k. has no secret",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"\"; };",
                "TSIG key k.: the secret is empty",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"not base64!\"; };",
                "TSIG key k.: the secret is not valid base64",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0\" };",
                "line 1: expected `;` after the value",
            ),
            (
                "key \"k\" {\n algorithm hmac-sha256;\n secret \"c2VjcmV0\";\n",
                "line 1: the key statement is not closed with `};`",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0",
                "line 1: a quoted string is not closed",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; foo bar; };",
                "line 1: unknown clause in a key statement",
            ),
            (
                "key \"a\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };\nkey \"A.\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };",
                "TSIG key a. is defined twice",
            ),
            (
                "key:\n  - id: k\n    algoritm: hmac-sha256\n",
                "line 3: unknown key setting `algoritm`",
            ),
            (
                "key:\n    id: k\n",
                "line 2: a setting outside a `- id:` item",
            ),
            (
                "key:\n  - algorithm: hmac-sha256\n    secret: c2VjcmV0\n",
                "line 2: a key without a name (id)",
            ),
            ("/* open", "line 1: a /* comment is not closed"),
            ("};", "line 1: `}` without `{`"),
            (
                "key { };",
                "line 1: `key` must be followed by the key's name",
            ),
            (
                "key \"a;\n\tb.\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };",
                "\"a;\\n\\tb.\" is not a valid TSIG key name: ",
            ),
        ];
        for (text, want) in cases {
            let e = TsigKey::parse(text, None).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: got {e:?}, want {want:?}");
            assert!(!e.contains('\n'), "{text:?}: {e:?}");
        }
    }

    /// The secret (as text, in base64 and in hex) appears in no Debug,
    /// Display or error output, whatever part of the file it is in.
    #[test]
    fn secret_never_shown() {
        let b64 = "U2VjcmV0U2VjcmV0U2VjcmV0U2VjcmV0U2VjcmV0MTI=";
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let needles = [
            b64.to_string(),
            b64[..16].to_string(),
            hex::encode(&raw),
            String::from_utf8_lossy(&raw).to_string(),
        ];
        let check = |what: &str, s: &str| {
            for n in &needles {
                assert!(!s.contains(n.as_str()), "{what} shows the secret: {s}");
            }
        };
        let good = format!("key \"k\" {{ algorithm hmac-sha256; secret \"{b64}\"; }};");
        let k = TsigKey::parse(&good, None).unwrap();
        check("Debug", &format!("{k:?}"));
        check("pretty Debug", &format!("{k:#?}"));
        check("Display", &k.to_string());
        assert!(k.secret_appears_in(&format!("secret \"{b64}\"")));
        assert!(k.secret_appears_in(&hex::encode_upper(&raw)));
        assert!(!k.secret_appears_in(&format!("{k:?} {k}")));
        let misplaced = [
            format!("key \"k\" {{ algorithm \"{b64}\"; secret \"{b64}\"; }};"),
            format!("key \"k\" {{ algorithm hmac-sha256; {b64}; }};"),
            format!("key \"k\" {{ algorithm hmac-sha256; secret \"{b64}!\"; }};"),
            format!("key \"k\" {{ algorithm hmac-sha256; secret {b64} }};"),
            format!("key:\n  - id: k\n    {b64}\n"),
            format!("key:\n  - id: k\n    {b64}: x\n"),
            format!("key:\n  - id: k\n    algorithm: {b64}\n    secret: {b64}\n"),
            format!(
                "key:\n  - id: k\n    algorithm: hmac-sha256\n    secret: {b64}\n    secret: {b64}\n"
            ),
        ];
        for text in &misplaced {
            let e = TsigKey::parse(text, None).unwrap_err();
            check("error", &e.to_string());
            check("error Debug", &format!("{e:?}"));
        }
    }

    #[test]
    fn load_names_the_file_and_caps_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        std::fs::write(&p, TSIG_KEYGEN).unwrap();
        assert_eq!(TsigKey::load(&p, None).unwrap().name(), "upd-key.");
        std::fs::write(
            &p,
            "key \"k\" { algorithm hmac-md5; secret \"c2VjcmV0\"; };",
        )
        .unwrap();
        let e = TsigKey::load(&p, None).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: TSIG key k.: algorithm hmac-md5", p.display())),
            "{e}"
        );
        std::fs::write(&p, vec![b'#'; MAX_KEY_FILE as usize + 1]).unwrap();
        let e = TsigKey::load(&p, None).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
        let e = TsigKey::load(&dir.path().join("missing"), None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read TSIG key file"), "{e}");
    }

    #[test]
    fn signer_uses_the_key() {
        let k = TsigKey::parse(KEYMGR, None).unwrap();
        let s = k.signer().unwrap();
        assert_eq!(s.signer_name().to_ascii(), "k2.");
        assert_eq!(s.key(), secret_of(&k).as_slice());
        assert_eq!(s.fudge(), FUDGE);
    }
}
