//! The history: an embedded SQLite database (WAL), one transaction per audit.
//!
//! Why SQLite in WAL mode: readers (`dane-audit history`) never block the
//! watch and the watch never blocks them; a `kill -9` at any moment loses at
//! most the audit whose transaction had not committed, since a transaction
//! is all or nothing; `synchronous=FULL` makes a commit survive a power cut
//! too. The schema carries its version (`PRAGMA user_version`) and is
//! migrated on start, each step in its own transaction; a database written
//! by a newer dane-audit is refused, not altered.
//!
//! One `watch` writes a database at a time: it holds an exclusive lock on
//! `<db>.lock` (released by the kernel when the process dies, even by
//! `kill -9`). A database locked otherwise (an `sqlite3` shell holding a
//! write transaction) is waited for [`BUSY_TIMEOUT`], then reported.
//!
//! Each audit stores its JSON document (as `check --format ndjson` prints
//! it) and its evidence, both zstd-compressed, plus the domain's watch
//! state (what [`super::events`] compares the next audit with) and the
//! events the audit raised.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, params};

use crate::core::evidence::Timestamp;

use super::events::{Event, EventOptions, WatchState, advance};
use super::snapshot::Snapshot;

/// How long a write waits for another process's lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// `PRAGMA application_id`: "DANE", so another program's database is not mistaken for ours.
const APPLICATION_ID: i32 = 0x4441_4E45;
/// zstd level for stored documents: a good ratio at a few milliseconds per audit.
const ZSTD_LEVEL: i32 = 9;

/// Schema steps; `user_version` is the number applied. Append only.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE domains (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    added_at INTEGER NOT NULL,
    -- events::WatchState as JSON: what the next audit is compared with
    state TEXT,
    -- snapshot::Snapshot of the last audit as JSON (metrics after a restart)
    snapshot TEXT,
    last_audit_id INTEGER
);
CREATE TABLE audits (
    id INTEGER PRIMARY KEY,
    domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    collected_at INTEGER NOT NULL,
    evaluated_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    worst_severity TEXT,
    -- 1 when the verdict differs from the previous audit's (kept by --keep)
    verdict_changed INTEGER NOT NULL DEFAULT 0,
    report BLOB NOT NULL,
    evidence BLOB NOT NULL
);
CREATE INDEX audits_by_domain_time ON audits(domain_id, evaluated_at);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    audit_id INTEGER,
    at INTEGER NOT NULL,
    code TEXT NOT NULL,
    state TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX events_by_domain_time ON events(domain_id, at);
"#];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Why the database cannot be used. Each says what to do, on one line.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "{path}: the database is locked by another process (another `dane-audit watch` on it, or a write transaction left open): stop it or use another --db"
    )]
    Locked { path: String },
    #[error("{path}: cannot write the database: {detail}")]
    ReadOnly { path: String, detail: String },
    #[error(
        "{path}: the disk is full: free space or move --db (nothing was lost: the audit in flight was rolled back)"
    )]
    Full { path: String },
    #[error("{path}: not a dane-audit database, or damaged: {detail}")]
    Corrupt { path: String, detail: String },
    #[error(
        "{path}: written by a newer dane-audit (schema {found}, this build knows {known}): upgrade dane-audit"
    )]
    TooNew {
        path: String,
        found: usize,
        known: usize,
    },
    #[error("{path}: no such database")]
    Missing { path: String },
    #[error("{path}: {detail}")]
    Other { path: String, detail: String },
}

impl DbError {
    /// Whether waiting and trying again could help (another process holds it).
    pub fn is_locked(&self) -> bool {
        matches!(self, DbError::Locked { .. })
    }

    fn sql(path: &Path, e: rusqlite::Error) -> DbError {
        let path = path.display().to_string();
        let code = e.sqlite_error_code();
        match code {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => DbError::Locked { path },
            Some(ErrorCode::ReadOnly) => DbError::ReadOnly {
                path,
                detail: "the file or its directory is read-only".into(),
            },
            Some(ErrorCode::DiskFull) => DbError::Full { path },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => DbError::Corrupt {
                path,
                detail: e.to_string(),
            },
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => DbError::ReadOnly {
                path,
                detail: format!("cannot open it for writing ({e})"),
            },
            _ => DbError::Other {
                path,
                detail: e.to_string(),
            },
        }
    }

    fn io(path: &Path, what: &str, e: &std::io::Error) -> DbError {
        use std::io::ErrorKind;
        let path = path.display().to_string();
        let detail = format!("{what}: {e}");
        match e.kind() {
            ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => {
                DbError::ReadOnly { path, detail }
            }
            ErrorKind::StorageFull => DbError::Full { path },
            ErrorKind::NotFound => DbError::Other {
                path,
                detail: format!("{detail} (does the directory exist?)"),
            },
            _ => DbError::Other { path, detail },
        }
    }

    fn data(path: &Path, what: &str, e: impl std::fmt::Display) -> DbError {
        DbError::Corrupt {
            path: path.display().to_string(),
            detail: format!("{what}: {e}"),
        }
    }
}

/// An audit ready to be stored: documents already compressed, so the
/// transaction stays short.
pub struct NewAudit {
    pub snapshot: Snapshot,
    pub collected_at: Timestamp,
    pub duration: Duration,
    /// zstd of the JSON domain object.
    pub report: Vec<u8>,
    /// zstd of the evidence JSON.
    pub evidence: Vec<u8>,
}

impl NewAudit {
    pub fn new(
        snapshot: Snapshot,
        collected_at: Timestamp,
        duration: Duration,
        report_json: &str,
        evidence_json: &str,
    ) -> NewAudit {
        NewAudit {
            snapshot,
            collected_at,
            duration,
            report: compress(report_json),
            evidence: compress(evidence_json),
        }
    }
}

fn compress(text: &str) -> Vec<u8> {
    // Compressing a byte slice in memory cannot fail short of allocation.
    zstd::bulk::compress(text.as_bytes(), ZSTD_LEVEL).unwrap_or_default()
}

/// What storing an audit did.
#[derive(Debug)]
pub struct Recorded {
    pub audit_id: i64,
    pub events: Vec<Event>,
}

/// One domain's remembered state, as loaded at start.
#[derive(Debug, Default)]
pub struct DomainRow {
    pub state: Option<WatchState>,
    pub snapshot: Option<Snapshot>,
    /// When its last audit that was not `incomplete` was evaluated.
    pub last_success: Option<Timestamp>,
    pub last_duration: Option<Duration>,
}

/// One stored audit, without its documents.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub evaluated_at: Timestamp,
    pub verdict: String,
    pub worst_severity: Option<String>,
    pub duration_ms: i64,
}

/// One stored event.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub audit_id: Option<i64>,
    pub event: Event,
}

/// A bounded view of a domain's history ([`Store::recent`]).
#[derive(Debug, Clone)]
pub struct Recent {
    /// Audits stored, and when the first and the last were evaluated.
    pub audits_total: i64,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    pub last_verdict: Option<String>,
    /// Events stored; `events` holds the newest of them, oldest first.
    pub events_total: i64,
    pub events: Vec<EventRow>,
    /// The audits that raised `events` (those still stored), oldest first.
    pub audits: Vec<AuditRow>,
}

/// What `--keep` removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pruned {
    pub audits: usize,
    pub events: usize,
}

/// The database, open for the watch (writing) or for reading.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The instance lock (writers only), held as long as the store.
    _lock: Option<File>,
}

impl Store {
    /// Opens (creating and migrating) the database for the one watch that
    /// writes it. Fails at once, with the reason, when it cannot write.
    pub fn open(path: &Path) -> Result<Store, DbError> {
        let lock = lock_instance(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| DbError::sql(path, e))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            _lock: Some(lock),
        };
        store.configure()?;
        store.migrate()?;
        // Fail now, not at the first audit, when it cannot be written.
        store
            .conn
            .execute_batch("BEGIN IMMEDIATE; COMMIT;")
            .map_err(|e| DbError::sql(path, e))?;
        Ok(store)
    }

    /// Opens an existing database read-only (`history`), beside a running watch.
    pub fn open_read(path: &Path) -> Result<Store, DbError> {
        Store::open_read_waiting(path, BUSY_TIMEOUT)
    }

    /// [`Store::open_read`], waiting at most `busy` for a lock held by
    /// another process (`serve` answers "busy" soon rather than hold a
    /// request). Never writes, never migrates.
    pub fn open_read_waiting(path: &Path, busy: Duration) -> Result<Store, DbError> {
        if !path.exists() {
            return Err(DbError::Missing {
                path: path.display().to_string(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| DbError::sql(path, e))?;
        conn.busy_timeout(busy).map_err(|e| DbError::sql(path, e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            _lock: None,
        };
        store.check_identity()?;
        let v = store.user_version()?;
        if v > SCHEMA_VERSION {
            return Err(DbError::TooNew {
                path: path.display().to_string(),
                found: v,
                known: SCHEMA_VERSION,
            });
        }
        if v < SCHEMA_VERSION {
            return Err(DbError::Other {
                path: path.display().to_string(),
                detail: format!(
                    "schema {v} is older than this build's {SCHEMA_VERSION}: run `dane-audit watch --once` on it to migrate"
                ),
            });
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> DbError {
        DbError::sql(&self.path, e)
    }

    fn configure(&mut self) -> Result<(), DbError> {
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.err(e))?;
        self.check_identity()?;
        // auto_vacuum takes effect only before the first table is created.
        if self.user_version()? == 0 {
            self.conn
                .pragma_update(None, "auto_vacuum", "INCREMENTAL")
                .map_err(|e| self.err(e))?;
        }
        let mode: String = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::ReadOnly {
                path: self.path.display().to_string(),
                detail: format!("cannot switch to WAL mode (journal mode stays {mode})"),
            });
        }
        for (k, v) in [("synchronous", "FULL"), ("foreign_keys", "ON")] {
            self.conn
                .pragma_update(None, k, v)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn user_version(&self) -> Result<usize, DbError> {
        let v: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(usize::try_from(v).unwrap_or(usize::MAX))
    }

    /// Refuses a database of another program (an application id that is not ours).
    fn check_identity(&self) -> Result<(), DbError> {
        let id: i32 = self
            .conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if id != 0 && id != APPLICATION_ID {
            return Err(DbError::Corrupt {
                path: self.path.display().to_string(),
                detail: format!("application id {id:#x} is not dane-audit's"),
            });
        }
        if id == 0 && self.user_version()? == 0 {
            let tables: i64 = self
                .conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            if tables > 0 {
                return Err(DbError::Corrupt {
                    path: self.path.display().to_string(),
                    detail: "it holds tables that dane-audit did not create".into(),
                });
            }
        }
        Ok(())
    }

    /// Applies the missing schema steps, each in its own transaction.
    fn migrate(&mut self) -> Result<(), DbError> {
        let have = self.user_version()?;
        if have > SCHEMA_VERSION {
            return Err(DbError::TooNew {
                path: self.path.display().to_string(),
                found: have,
                known: SCHEMA_VERSION,
            });
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(have) {
            let path = self.path.clone();
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| DbError::sql(&path, e))?;
            tx.execute_batch(step).map_err(|e| DbError::sql(&path, e))?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(|e| DbError::sql(&path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| DbError::sql(&path, e))?;
            tx.commit().map_err(|e| DbError::sql(&path, e))?;
            tracing::info!(db = %path.display(), version = i + 1, "database schema migrated");
        }
        Ok(())
    }

    /// Every domain's remembered state, by name.
    pub fn load(&self) -> Result<Vec<(String, DomainRow)>, DbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.name, d.state, d.snapshot,
                    (SELECT max(evaluated_at) FROM audits a WHERE a.domain_id = d.id AND a.verdict != 'incomplete'),
                    (SELECT duration_ms FROM audits a WHERE a.id = d.last_audit_id)
                 FROM domains d",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, state, snap, success, dur) = row.map_err(|e| self.err(e))?;
            let state = state
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(|e| DbError::data(&self.path, "stored watch state", e))?;
            let snapshot = snap
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(|e| DbError::data(&self.path, "stored snapshot", e))?;
            out.push((
                name,
                DomainRow {
                    state,
                    snapshot,
                    last_success: success.map(Timestamp),
                    last_duration: dur.map(|d| Duration::from_millis(d.max(0) as u64)),
                },
            ));
        }
        Ok(out)
    }

    /// Stores one audit, computes its events against the domain's
    /// remembered state and stores them with the new state: all in one
    /// transaction, so a crash keeps either all of it or none.
    pub fn record(&mut self, audit: &NewAudit, opts: &EventOptions) -> Result<Recorded, DbError> {
        let path = self.path.clone();
        let e = |e| DbError::sql(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(e)?;
        let snap = &audit.snapshot;
        let (domain_id, prev) = domain_row(&tx, &snap.domain, snap.at).map_err(e)?;
        let prev: Option<WatchState> = prev
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|err| DbError::data(&path, "stored watch state", err))?;
        let (events, next) = advance(prev.as_ref(), snap, opts);
        let changed = prev
            .as_ref()
            .is_none_or(|p| p.verdict != Some(snap.verdict));
        tx.execute(
            "INSERT INTO audits (domain_id, collected_at, evaluated_at, duration_ms, verdict, worst_severity, verdict_changed, report, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                domain_id,
                audit.collected_at.0,
                snap.at.0,
                audit.duration.as_millis() as i64,
                snap.verdict.as_str(),
                snap.worst_severity.map(|s| s.as_str()),
                changed,
                audit.report,
                audit.evidence,
            ],
        )
        .map_err(e)?;
        let audit_id = tx.last_insert_rowid();
        for ev in &events {
            let body =
                serde_json::to_string(ev).map_err(|err| DbError::data(&path, "event", err))?;
            tx.execute(
                "INSERT INTO events (domain_id, audit_id, at, code, state, key, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![domain_id, audit_id, ev.at.0, ev.kind.code(), ev.state.as_str(), ev.key, body],
            )
            .map_err(e)?;
        }
        let state =
            serde_json::to_string(&next).map_err(|err| DbError::data(&path, "state", err))?;
        let snapshot =
            serde_json::to_string(snap).map_err(|err| DbError::data(&path, "snapshot", err))?;
        tx.execute(
            "UPDATE domains SET state = ?1, snapshot = ?2, last_audit_id = ?3 WHERE id = ?4",
            params![state, snapshot, audit_id, domain_id],
        )
        .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(Recorded { audit_id, events })
    }

    /// `--keep`: removes audits evaluated before `cutoff`, except each
    /// domain's latest and every audit whose verdict changed, and events
    /// before it except verdict changes and first audits.
    pub fn prune(&mut self, cutoff: Timestamp) -> Result<Pruned, DbError> {
        let path = self.path.clone();
        let e = |e| DbError::sql(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(e)?;
        let audits = tx
            .execute(
                "DELETE FROM audits WHERE evaluated_at < ?1 AND verdict_changed = 0
                 AND id NOT IN (SELECT last_audit_id FROM domains WHERE last_audit_id IS NOT NULL)",
                params![cutoff.0],
            )
            .map_err(e)?;
        let events = tx
            .execute(
                "DELETE FROM events WHERE at < ?1 AND code NOT IN ('verdict-changed', 'domain-added')",
                params![cutoff.0],
            )
            .map_err(e)?;
        tx.commit().map_err(e)?;
        if audits + events > 0 {
            self.conn
                .execute_batch("PRAGMA incremental_vacuum;")
                .map_err(|err| self.err(err))?;
        }
        Ok(Pruned { audits, events })
    }

    /// Folds the write-ahead log into the database file (on a clean stop).
    pub fn checkpoint(&self) -> Result<(), DbError> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|e| self.err(e))
    }

    /// Whether SQLite finds the database intact (`PRAGMA integrity_check`).
    pub fn integrity(&self) -> Result<Vec<String>, DbError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let lines: Result<Vec<String>, _> = rows.collect();
        let lines = lines.map_err(|e| self.err(e))?;
        Ok(lines.into_iter().filter(|l| l != "ok").collect())
    }

    fn domain_id(&self, name: &str) -> Result<Option<i64>, DbError> {
        self.conn
            .query_row("SELECT id FROM domains WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Whether the database holds a domain (it was audited here).
    pub fn knows(&self, name: &str) -> Result<bool, DbError> {
        Ok(self.domain_id(name)?.is_some())
    }

    /// The names of the domains the database knows.
    pub fn domains(&self) -> Result<Vec<String>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM domains ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.err(e))
    }

    /// A domain's audits and events at or after `since` (what `history`
    /// shows); `None` when the database never audited the domain.
    #[allow(clippy::type_complexity)]
    pub fn history(
        &self,
        domain: &str,
        since: Timestamp,
    ) -> Result<Option<(Vec<AuditRow>, Vec<EventRow>)>, DbError> {
        if self.domain_id(domain)?.is_none() {
            return Ok(None);
        }
        Ok(Some((
            self.audits(domain, since)?,
            self.events(domain, since)?,
        )))
    }

    /// A domain's newest `limit` events (oldest of them first), the audits
    /// they belong to, and counts of everything: a bounded view of a
    /// history of any length. `None` when the domain was never audited.
    pub fn recent(&self, domain: &str, limit: usize) -> Result<Option<Recent>, DbError> {
        let Some(id) = self.domain_id(domain)? else {
            return Ok(None);
        };
        let e = |e| DbError::sql(&self.path, e);
        let (audits, first, last): (i64, Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT count(*), min(evaluated_at), max(evaluated_at) FROM audits WHERE domain_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(e)?;
        let last_verdict: Option<String> = self
            .conn
            .query_row(
                "SELECT verdict FROM audits WHERE domain_id = ?1 ORDER BY evaluated_at DESC, id DESC LIMIT 1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(e)?;
        let events_total: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM events WHERE domain_id = ?1",
                [id],
                |r| r.get(0),
            )
            .map_err(e)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT audit_id, body FROM events WHERE domain_id = ?1
                 ORDER BY at DESC, id DESC LIMIT ?2",
            )
            .map_err(e)?;
        let mut events = self.event_rows(&mut stmt, params![id, limit as i64])?;
        events.reverse();
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {AUDIT_COLUMNS} FROM audits WHERE id = ?1"))
            .map_err(e)?;
        let mut rows = Vec::new();
        let mut ids: Vec<i64> = events.iter().filter_map(|ev| ev.audit_id).collect();
        ids.sort_unstable();
        ids.dedup();
        for aid in ids {
            let row = stmt.query_row([aid], audit_row).optional().map_err(e)?;
            rows.extend(row);
        }
        Ok(Some(Recent {
            audits_total: audits,
            first: first.map(Timestamp),
            last: last.map(Timestamp),
            last_verdict,
            events_total,
            events,
            audits: rows,
        }))
    }

    /// A domain's audits evaluated at or after `since`, oldest first.
    pub fn audits(&self, domain: &str, since: Timestamp) -> Result<Vec<AuditRow>, DbError> {
        let Some(id) = self.domain_id(domain)? else {
            return Ok(Vec::new());
        };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audits
                 WHERE domain_id = ?1 AND evaluated_at >= ?2 ORDER BY evaluated_at, id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![id, since.0], audit_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// A domain's events at or after `since`, in the order they were raised.
    pub fn events(&self, domain: &str, since: Timestamp) -> Result<Vec<EventRow>, DbError> {
        let Some(id) = self.domain_id(domain)? else {
            return Ok(Vec::new());
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT audit_id, body FROM events WHERE domain_id = ?1 AND at >= ?2 ORDER BY at, id",
            )
            .map_err(|e| self.err(e))?;
        self.event_rows(&mut stmt, params![id, since.0])
    }

    /// The events a query of `audit_id, body` finds, decoded.
    fn event_rows(
        &self,
        stmt: &mut rusqlite::Statement<'_>,
        params: impl rusqlite::Params,
    ) -> Result<Vec<EventRow>, DbError> {
        let rows = stmt
            .query_map(params, |r| {
                Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (audit_id, body) = row.map_err(|e| self.err(e))?;
            let event = serde_json::from_str(&body)
                .map_err(|e| DbError::data(&self.path, "stored event", e))?;
            out.push(EventRow { audit_id, event });
        }
        Ok(out)
    }

    /// One audit's stored document: `evidence` or `report`, decompressed.
    pub fn document(&self, audit_id: i64, evidence: bool) -> Result<Option<String>, DbError> {
        let col = if evidence { "evidence" } else { "report" };
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row(
                &format!("SELECT {col} FROM audits WHERE id = ?1"),
                [audit_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        blob.map(|b| {
            zstd::stream::decode_all(&b[..])
                .map_err(|e| DbError::data(&self.path, col, e))
                .and_then(|raw| {
                    String::from_utf8(raw).map_err(|e| DbError::data(&self.path, col, e))
                })
        })
        .transpose()
    }

    /// Counts for a size report: audits stored and the database's bytes.
    pub fn size(&self) -> Result<(i64, i64), DbError> {
        let audits: i64 = self
            .conn
            .query_row("SELECT count(*) FROM audits", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let pages: i64 = self
            .conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let page: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok((audits, pages * page))
    }
}

/// The columns [`audit_row`] reads, in its order.
const AUDIT_COLUMNS: &str = "id, evaluated_at, verdict, worst_severity, duration_ms";

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        id: r.get(0)?,
        evaluated_at: Timestamp(r.get(1)?),
        verdict: r.get(2)?,
        worst_severity: r.get(3)?,
        duration_ms: r.get(4)?,
    })
}

/// The domain's id and stored state, creating its row on first sight.
fn domain_row(
    tx: &Transaction<'_>,
    name: &str,
    now: Timestamp,
) -> rusqlite::Result<(i64, Option<String>)> {
    let found = tx
        .query_row(
            "SELECT id, state FROM domains WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match found {
        Some(f) => Ok(f),
        None => {
            tx.execute(
                "INSERT INTO domains (name, added_at) VALUES (?1, ?2)",
                params![name, now.0],
            )?;
            Ok((tx.last_insert_rowid(), None))
        }
    }
}

/// Takes `<db>.lock` exclusively for the life of the process.
fn lock_instance(db: &Path) -> Result<File, DbError> {
    use fs4::fs_std::FileExt;
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| DbError::io(db, &format!("cannot create {}", path.display()), &e))?;
    match f.try_lock_exclusive() {
        Ok(true) => Ok(f),
        Ok(false) => Err(DbError::Locked {
            path: db.display().to_string(),
        }),
        Err(e) => Err(DbError::io(
            db,
            &format!("cannot lock {}", path.display()),
            &e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::verdict::DomainVerdict;

    fn snap(domain: &str, at: i64, verdict: DomainVerdict) -> Snapshot {
        Snapshot {
            domain: domain.into(),
            at: Timestamp(at),
            verdict,
            reason: None,
            worst_severity: None,
            mx_failed: false,
            dns_complete: true,
            ns_checked: true,
            findings: vec![],
            hosts: vec![],
            rrsig_expires: None,
        }
    }

    fn audit(domain: &str, at: i64, verdict: DomainVerdict) -> NewAudit {
        NewAudit::new(
            snap(domain, at, verdict),
            Timestamp(at),
            Duration::from_millis(120),
            &format!("{{\"domain\":\"{domain}\"}}"),
            &format!("{{\"schema_version\":1,\"domain\":\"{domain}\",\"at\":{at}}}"),
        )
    }

    #[test]
    fn records_audits_events_and_state_in_one_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let opts = EventOptions::default();
        {
            let mut s = Store::open(&path).unwrap();
            let r1 = s
                .record(&audit("a.example", 1000, DomainVerdict::Pass), &opts)
                .unwrap();
            assert_eq!(r1.events.len(), 1, "domain-added");
            let r2 = s
                .record(&audit("a.example", 2000, DomainVerdict::Fail), &opts)
                .unwrap();
            assert_eq!(r2.events[0].kind.code(), "verdict-changed");
            let r3 = s
                .record(&audit("a.example", 3000, DomainVerdict::Fail), &opts)
                .unwrap();
            assert!(r3.events.is_empty());
            assert_eq!(
                s.document(r2.audit_id, true).unwrap().unwrap(),
                "{\"schema_version\":1,\"domain\":\"a.example\",\"at\":2000}"
            );
        }
        let r = Store::open_read(&path).unwrap();
        let mode: String = r
            .conn
            .pragma_query_value(None, "journal_mode", |x| x.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(r.user_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(r.audits("a.example", Timestamp(0)).unwrap().len(), 3);
        assert_eq!(r.events("a.example", Timestamp(1500)).unwrap().len(), 1);
        let loaded = r.load().unwrap();
        assert_eq!(loaded[0].0, "a.example");
        assert_eq!(
            loaded[0].1.state.as_ref().unwrap().verdict,
            Some(DomainVerdict::Fail)
        );
        assert_eq!(loaded[0].1.last_success, Some(Timestamp(3000)));
        assert!(r.integrity().unwrap().is_empty());
    }

    #[test]
    fn recent_is_the_newest_events_with_their_audits_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let opts = EventOptions::default();
        let mut s = Store::open(&path).unwrap();
        for t in 0..10 {
            let v = if t % 2 == 0 {
                DomainVerdict::Pass
            } else {
                DomainVerdict::Fail
            };
            s.record(&audit("a.example", 100 * (t + 1), v), &opts)
                .unwrap();
        }
        drop(s);
        let r = Store::open_read_waiting(&path, Duration::from_millis(100)).unwrap();
        assert!(r.recent("b.example", 3).unwrap().is_none());
        assert!(!r.knows("b.example").unwrap());
        assert!(r.knows("a.example").unwrap());
        let rec = r.recent("a.example", 3).unwrap().unwrap();
        assert_eq!(rec.audits_total, 10);
        assert_eq!(rec.events_total, 10, "domain-added, then 9 verdict changes");
        assert_eq!(
            (rec.first, rec.last),
            (Some(Timestamp(100)), Some(Timestamp(1000)))
        );
        assert_eq!(rec.last_verdict.as_deref(), Some("fail"));
        let at: Vec<i64> = rec.events.iter().map(|e| e.event.at.0).collect();
        assert_eq!(at, [800, 900, 1000], "the newest, oldest first");
        let ids: Vec<i64> = rec.audits.iter().map(|a| a.id).collect();
        assert_eq!(ids, [8, 9, 10]);
        let (audits, events) = r.history("a.example", Timestamp(950)).unwrap().unwrap();
        assert_eq!((audits.len(), events.len()), (1, 1));
        assert!(r.history("b.example", Timestamp(0)).unwrap().is_none());
    }

    #[test]
    fn keep_prunes_all_but_the_latest_and_verdict_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("w.db")).unwrap();
        let opts = EventOptions::default();
        for (t, v) in [
            (100, DomainVerdict::Pass),
            (200, DomainVerdict::Pass),
            (300, DomainVerdict::Fail),
            (400, DomainVerdict::Fail),
            (500, DomainVerdict::Fail),
        ] {
            s.record(&audit("a.example", t, v), &opts).unwrap();
        }
        let p = s.prune(Timestamp(1000)).unwrap();
        assert_eq!(
            p.audits, 2,
            "200 and 400 go; 100 (first), 300 (change) and 500 (latest) stay"
        );
        let kept: Vec<i64> = s
            .audits("a.example", Timestamp(0))
            .unwrap()
            .iter()
            .map(|a| a.evaluated_at.0)
            .collect();
        assert_eq!(kept, [100, 300, 500]);
        assert_eq!(
            s.events("a.example", Timestamp(0)).unwrap().len(),
            2,
            "domain-added and verdict-changed are kept"
        );
    }

    #[test]
    fn one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let _first = Store::open(&path).unwrap();
        let e = Store::open(&path).err().unwrap();
        assert!(e.is_locked(), "{e}");
        assert!(e.to_string().contains("locked by another process"), "{e}");
        // Readers are not kept out.
        assert!(Store::open_read(&path).is_ok());
    }

    #[test]
    fn a_write_lock_held_elsewhere_is_reported_after_the_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let mut s = Store::open(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE;").unwrap();
        let started = std::time::Instant::now();
        let e = s
            .record(
                &audit("a.example", 1, DomainVerdict::Pass),
                &EventOptions::default(),
            )
            .unwrap_err();
        assert!(e.is_locked(), "{e}");
        assert!(started.elapsed() >= BUSY_TIMEOUT - Duration::from_millis(100));
        other.execute_batch("ROLLBACK;").unwrap();
        s.record(
            &audit("a.example", 2, DomainVerdict::Pass),
            &EventOptions::default(),
        )
        .unwrap();
    }

    #[test]
    fn newer_schemas_and_foreign_databases_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        drop(Store::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", (SCHEMA_VERSION + 1) as i64)
            .unwrap();
        assert!(matches!(Store::open(&path), Err(DbError::TooNew { .. })));
        assert!(matches!(
            Store::open_read(&path),
            Err(DbError::TooNew { .. })
        ));
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x);")
            .unwrap();
        assert!(matches!(Store::open(&other), Err(DbError::Corrupt { .. })));
        std::fs::write(
            dir.path().join("text.db"),
            "not sqlite at all, just text ".repeat(100),
        )
        .unwrap();
        let e = Store::open(&dir.path().join("text.db")).err().unwrap();
        assert!(matches!(e, DbError::Corrupt { .. }), "{e}");
        assert!(matches!(
            Store::open_read(&dir.path().join("none.db")),
            Err(DbError::Missing { .. })
        ));
    }
}
