//! berth's desired state and history in SQLite, with env values sealed at rest.
//!
//! One connection behind a mutex: every call is short, and a single writer keeps
//! read-modify-write sequences (sequence numbers, env versions) simple and safe.

pub mod access;
pub mod certs;
pub mod drains;
pub mod seal;
pub mod timers;
pub mod updates;

pub use seal::{MasterKey, SealError};

pub use berth_core::ProcessState;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store error: {0}; if the data dir is damaged, restore it from a backup")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    Seal(#[from] SealError),
    #[error("app {0} does not exist; create it with `berth apps create {0}`")]
    NoApp(String),
    #[error("app {0} already exists; pick another name or delete it with `berth apps delete {0}`")]
    AppExists(String),
    #[error("{kind} {id} of app {app} does not exist; list them with `berth {list} -a {app}`")]
    NotFound {
        kind: &'static str,
        id: String,
        app: String,
        list: &'static str,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error(
        "the store {path} has schema version {found}, newer than this berth knows ({known}); run the berth version that wrote it (or a newer one)"
    )]
    NewerSchema {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("token {0} does not exist; list them with `berth tokens`")]
    NoToken(String),
    #[error(
        "token {0} is the last admin token; create another with `berth tokens create --role admin` first"
    )]
    LastAdmin(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRow {
    pub name: String,
    pub created: String,
    pub release: Option<String>,
    pub env_version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRow {
    pub app: String,
    pub id: String,
    pub status: String,
    pub created: String,
    pub finished: Option<String>,
    /// The manifest text the build was made with.
    pub manifest: String,
    /// service → image
    pub images: BTreeMap<String, String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRow {
    pub app: String,
    pub id: String,
    pub seq: u64,
    pub build: Option<String>,
    pub env_version: u64,
    pub manifest: String,
    pub created: String,
    pub status: String,
    pub description: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRow {
    pub app: String,
    pub id: String,
    pub service: String,
    pub release: String,
    pub state: ProcessState,
    pub created: String,
    pub memory: Option<u64>,
    pub cpu: Option<f64>,
    pub restarts: u32,
    pub last_exit: Option<i64>,
    /// Nanoseconds since the epoch of the last log line collected.
    pub log_cursor: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Formation {
    pub count: Option<u32>,
    pub memory: Option<u64>,
    pub cpu: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRow {
    pub id: i64,
    pub app: String,
    pub release: String,
    pub status: String,
    pub started: String,
    pub finished: Option<String>,
    pub error: Option<String>,
}

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tokens (
  id TEXT PRIMARY KEY, hash BLOB NOT NULL, role TEXT NOT NULL, app TEXT, created TEXT NOT NULL);
CREATE TABLE apps (
  name TEXT PRIMARY KEY, created TEXT NOT NULL, release TEXT,
  env_version INTEGER NOT NULL DEFAULT 0,
  next_build INTEGER NOT NULL DEFAULT 1, next_release INTEGER NOT NULL DEFAULT 1);
CREATE TABLE env_values (
  app TEXT NOT NULL, version INTEGER NOT NULL, key TEXT NOT NULL, sealed BLOB NOT NULL,
  PRIMARY KEY (app, version, key));
CREATE TABLE builds (
  app TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL,
  created TEXT NOT NULL, finished TEXT, manifest TEXT NOT NULL, images TEXT NOT NULL,
  error TEXT, PRIMARY KEY (app, id));
CREATE TABLE releases (
  app TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, build TEXT,
  env_version INTEGER NOT NULL, manifest TEXT NOT NULL, created TEXT NOT NULL,
  status TEXT NOT NULL, description TEXT NOT NULL, error TEXT, PRIMARY KEY (app, id));
CREATE TABLE formation (
  app TEXT NOT NULL, service TEXT NOT NULL, count INTEGER, memory INTEGER, cpu REAL,
  PRIMARY KEY (app, service));
CREATE TABLE processes (
  app TEXT NOT NULL, id TEXT NOT NULL, service TEXT NOT NULL, release TEXT NOT NULL,
  state TEXT NOT NULL, created TEXT NOT NULL, memory INTEGER, cpu REAL,
  restarts INTEGER NOT NULL DEFAULT 0, last_exit INTEGER, log_cursor INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (app, id));
CREATE TABLE deployments (
  id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, release TEXT NOT NULL,
  status TEXT NOT NULL, started TEXT NOT NULL, finished TEXT, error TEXT);
"#,
    r#"
ALTER TABLE tokens ADD COLUMN last_used TEXT;
CREATE TABLE audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, token TEXT NOT NULL,
  role TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL);
"#,
    r#"
CREATE TABLE timer_runs (
  app TEXT NOT NULL, timer TEXT NOT NULL, due INTEGER NOT NULL, last_run TEXT,
  exit_code INTEGER, running TEXT, PRIMARY KEY (app, timer));
"#,
    r#"
CREATE TABLE certs (
  id TEXT PRIMARY KEY, domains TEXT NOT NULL, not_after TEXT NOT NULL, source TEXT NOT NULL,
  created TEXT NOT NULL, cert_pem TEXT NOT NULL, key_sealed BLOB NOT NULL);
"#,
    r#"
CREATE TABLE drains (
  id TEXT PRIMARY KEY, url TEXT NOT NULL, app TEXT, ca_pem TEXT,
  max_bytes INTEGER NOT NULL, created TEXT NOT NULL);
"#,
    r#"
CREATE TABLE resource_secrets (
  app TEXT NOT NULL, name TEXT NOT NULL, sealed BLOB NOT NULL, created TEXT NOT NULL,
  PRIMARY KEY (app, name));
"#,
    r#"
ALTER TABLE resource_secrets ADD COLUMN image TEXT;
"#,
    r#"
CREATE TABLE rack_updates (
  id TEXT PRIMARY KEY, from_version TEXT NOT NULL, to_version TEXT NOT NULL,
  state TEXT NOT NULL, started TEXT NOT NULL, finished TEXT, message TEXT);
"#,
    r#"
CREATE TABLE cert_ocsp (
  cert_id TEXT PRIMARY KEY REFERENCES certs(id) ON DELETE CASCADE,
  der BLOB NOT NULL, good_until INTEGER NOT NULL, fetched TEXT NOT NULL);
"#,
];

/// The schema version this build of berth migrates stores to (SQLite's
/// `user_version` after every migration ran).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The schema version of the store file at `db_path`, opened read-only (for a
/// restore to refuse a store newer than this binary before touching it).
pub fn schema_version_of(db_path: &Path) -> Result<i64> {
    let conn = Connection::open_with_flags(db_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(StoreError::Corrupt(format!(
            "{}: SQLite's check says {check}",
            db_path.display()
        )));
    }
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

pub struct Store {
    conn: Mutex<Connection>,
    key: MasterKey,
    path: std::path::PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Store {
    /// Opens (creating and migrating when needed) `db_path`, sealing with `key`.
    pub fn open(db_path: &Path, key: MasterKey) -> Result<Store> {
        let conn = Connection::open(db_path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let store = Store {
            conn: Mutex::new(conn),
            key,
            path: db_path.to_path_buf(),
        };
        store.migrate()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(db_path, std::fs::Permissions::from_mode(0o600))
                .map_err(io_err(db_path))?;
        }
        Ok(store)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite itself consistent (transactions
        // roll back), so a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: self.path.display().to_string(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Copies a consistent snapshot of the store to `dest` with SQLite's online
    /// backup API while the server keeps writing: a connection of its own reads
    /// every page in one step, inside one read transaction (WAL lets writers go
    /// on meanwhile), so the copy is the store as of one moment.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let src = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        src.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut dst = Connection::open(dest)?;
        {
            let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
            loop {
                match backup.step(-1)? {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More => continue,
                    // Busy or locked: the writer holds a lock a moment; try again.
                    _ => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        }
        // A single file: the copy keeps no WAL of its own.
        dst.pragma_update(None, "journal_mode", "DELETE")?;
        Ok(())
    }

    /// Checks that the master key opens the store's sealed values (one env value
    /// and one certificate key, if any), so a restore with the wrong key file is
    /// refused before a server starts on it.
    pub fn check_key(&self) -> Result<()> {
        let conn = self.conn();
        let env: Option<(String, String, Vec<u8>)> = conn
            .query_row("SELECT app, key, sealed FROM env_values LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        if let Some((app, key, sealed)) = env {
            self.key.open(&sealed, &seal::aad(&app, &key))?;
        }
        let cert: Option<(String, Vec<u8>)> = conn
            .query_row("SELECT id, key_sealed FROM certs LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        if let Some((id, sealed)) = cert {
            self.key.open(&sealed, &seal::aad("cert", &id))?;
        }
        Ok(())
    }

    // ---- meta and tokens ----

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            params![key, value],
        )?;
        Ok(())
    }

    /// Creates a token and returns its secret (shown once; only its hash is kept).
    pub fn create_token(&self, role: &str, app: Option<&str>) -> Result<(String, String)> {
        let secret = format!("berth_{}", hex::encode(rand::random::<[u8; 32]>()));
        let id = format!("t{}", hex::encode(rand::random::<[u8; 4]>()));
        self.conn().execute(
            "INSERT INTO tokens (id, hash, role, app, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id,
                seal::token_hash(&secret).to_vec(),
                role,
                app,
                now_rfc3339()
            ],
        )?;
        Ok((id, secret))
    }

    /// The (id, role) of the token whose secret this is, compared in constant time.
    pub fn check_token(&self, secret: &str) -> Result<Option<(String, String)>> {
        let want = seal::token_hash(secret);
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT id, hash, role FROM tokens")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut found = None;
        for row in rows {
            let (id, hash, role) = row?;
            // Every row is compared (no early exit) so timing says nothing about which matched.
            if seal::hashes_equal(&hash, &want) && found.is_none() {
                found = Some((id, role));
            }
        }
        Ok(found)
    }

    // ---- apps ----

    pub fn create_app(&self, name: &str) -> Result<AppRow> {
        let created = now_rfc3339();
        let n = self.conn().execute(
            "INSERT INTO apps (name, created) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
            params![name, created],
        )?;
        if n == 0 {
            return Err(StoreError::AppExists(name.into()));
        }
        Ok(AppRow {
            name: name.into(),
            created,
            release: None,
            env_version: 0,
        })
    }

    pub fn apps(&self) -> Result<Vec<AppRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT name, created, release, env_version FROM apps ORDER BY name")?;
        let rows = stmt
            .query_map([], app_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn app(&self, name: &str) -> Result<AppRow> {
        self.conn()
            .prepare_cached("SELECT name, created, release, env_version FROM apps WHERE name = ?1")?
            .query_row([name], app_row)
            .optional()?
            .ok_or_else(|| StoreError::NoApp(name.into()))
    }

    /// Deletes the app and everything the store holds about it.
    pub fn delete_app(&self, name: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute("DELETE FROM apps WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(StoreError::NoApp(name.into()));
        }
        for table in [
            "env_values",
            "builds",
            "releases",
            "formation",
            "processes",
            "deployments",
            "timer_runs",
            "drains",
            "resource_secrets",
        ] {
            tx.execute(&format!("DELETE FROM {table} WHERE app = ?1"), [name])?;
        }
        tx.commit()?;
        Ok(())
    }

    // ---- resources ----

    /// The password of resource `name` of `app`, made (random, sealed) the
    /// first time it is asked for and the same ever after, so a resource's
    /// data and its credentials stay together across releases.
    pub fn resource_password(&self, app: &str, name: &str) -> Result<String> {
        let conn = self.conn();
        let aad = seal::resource_aad(app, name);
        let fresh = hex::encode(rand::random::<[u8; 16]>());
        let sealed = self.key.seal(&fresh, &aad)?;
        conn.execute(
            "INSERT INTO resource_secrets (app, name, sealed, created) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(app, name) DO NOTHING",
            params![app, name, sealed, now_rfc3339()],
        )?;
        let sealed: Vec<u8> = conn.query_row(
            "SELECT sealed FROM resource_secrets WHERE app = ?1 AND name = ?2",
            params![app, name],
            |r| r.get(0),
        )?;
        Ok(self.key.open(&sealed, &aad)?)
    }

    /// The image resource `name` of `app` was upgraded to (`berth resources
    /// upgrade`), which wins over its releases' manifests; `None` when never
    /// upgraded.
    pub fn resource_image(&self, app: &str, name: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT image FROM resource_secrets WHERE app = ?1 AND name = ?2",
                params![app, name],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Records (or with `None` forgets) the image resource `name` of `app`
    /// runs since an upgrade; goes with the app's rows.
    pub fn set_resource_image(&self, app: &str, name: &str, image: Option<&str>) -> Result<()> {
        self.resource_password(app, name)?;
        self.conn().execute(
            "UPDATE resource_secrets SET image = ?3 WHERE app = ?1 AND name = ?2",
            params![app, name, image],
        )?;
        Ok(())
    }

    // ---- environment ----

    /// The app's environment at `version` (0 = empty), unsealed.
    pub fn env(&self, app: &str, version: u64) -> Result<BTreeMap<String, String>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT key, sealed FROM env_values WHERE app = ?1 AND version = ?2")?;
        let rows = stmt.query_map(params![app, version as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (key, sealed) = row?;
            let value = self.key.open(&sealed, &seal::aad(app, &key))?;
            out.insert(key, value);
        }
        Ok(out)
    }

    /// Writes a new env version (the current one with `set` applied and `unset`
    /// removed) and returns its number. Sealed blobs of unchanged keys are copied.
    pub fn change_env(
        &self,
        app: &str,
        set: &BTreeMap<String, String>,
        unset: &[String],
    ) -> Result<u64> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: i64 = tx
            .query_row("SELECT env_version FROM apps WHERE name = ?1", [app], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NoApp(app.into()))?;
        // After a rollback the current version may be older than the newest one,
        // and versions are immutable: the next one is always past every release's.
        let newest: i64 = tx
            .query_row(
                "SELECT MAX(v) FROM (SELECT MAX(version) AS v FROM env_values WHERE app = ?1
                 UNION ALL SELECT MAX(env_version) FROM releases WHERE app = ?1
                 UNION ALL SELECT env_version FROM apps WHERE name = ?1)",
                [app],
                |r| r.get::<_, Option<i64>>(0),
            )?
            .unwrap_or(current);
        let next = newest.max(current) + 1;
        tx.execute(
            "INSERT INTO env_values (app, version, key, sealed)
             SELECT app, ?3, key, sealed FROM env_values WHERE app = ?1 AND version = ?2",
            params![app, current, next],
        )?;
        for key in unset {
            tx.execute(
                "DELETE FROM env_values WHERE app = ?1 AND version = ?2 AND key = ?3",
                params![app, next, key],
            )?;
        }
        for (key, value) in set {
            let sealed = self.key.seal(value, &seal::aad(app, key))?;
            tx.execute(
                "INSERT INTO env_values (app, version, key, sealed) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(app, version, key) DO UPDATE SET sealed = ?4",
                params![app, next, key, sealed],
            )?;
        }
        tx.execute(
            "UPDATE apps SET env_version = ?2 WHERE name = ?1",
            params![app, next],
        )?;
        tx.commit()?;
        Ok(next as u64)
    }

    /// Points the app's environment at an existing version (a rollback brings
    /// back the environment it ran with).
    pub fn set_env_version(&self, app: &str, version: u64) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE apps SET env_version = ?2 WHERE name = ?1",
            params![app, version as i64],
        )?;
        if n == 0 {
            return Err(StoreError::NoApp(app.into()));
        }
        Ok(())
    }

    // ---- builds ----

    /// Creates a build record in state `running` with the next id (`B1`, `B2`, ...).
    pub fn create_build(&self, app: &str, manifest: &str) -> Result<BuildRow> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let seq: i64 = tx
            .query_row("SELECT next_build FROM apps WHERE name = ?1", [app], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NoApp(app.into()))?;
        tx.execute(
            "UPDATE apps SET next_build = ?2 WHERE name = ?1",
            params![app, seq + 1],
        )?;
        let row = BuildRow {
            app: app.into(),
            id: format!("B{seq}"),
            status: "running".into(),
            created: now_rfc3339(),
            finished: None,
            manifest: manifest.into(),
            images: BTreeMap::new(),
            error: None,
        };
        tx.execute(
            "INSERT INTO builds (app, id, seq, status, created, manifest, images)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, '{}')",
            params![row.app, row.id, seq, row.status, row.created, row.manifest],
        )?;
        tx.commit()?;
        Ok(row)
    }

    pub fn finish_build(
        &self,
        app: &str,
        id: &str,
        images: &BTreeMap<String, String>,
        error: Option<&str>,
    ) -> Result<()> {
        let status = if error.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        let images =
            serde_json::to_string(images).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn().execute(
            "UPDATE builds SET status = ?3, finished = ?4, images = ?5, error = ?6
             WHERE app = ?1 AND id = ?2",
            params![app, id, status, now_rfc3339(), images, error],
        )?;
        Ok(())
    }

    /// Marks builds still `running` (a server stopped mid-build) as failed.
    pub fn fail_running_builds(&self, reason: &str) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE builds SET status = 'failed', finished = ?1, error = ?2 WHERE status = 'running'",
            params![now_rfc3339(), reason],
        )?)
    }

    pub fn builds(&self, app: &str) -> Result<Vec<BuildRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT app, id, status, created, finished, manifest, images, error FROM builds
             WHERE app = ?1 ORDER BY seq DESC",
        )?;
        let rows = stmt
            .query_map([app], build_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn build(&self, app: &str, id: &str) -> Result<BuildRow> {
        self.conn()
            .query_row(
                "SELECT app, id, status, created, finished, manifest, images, error FROM builds
                 WHERE app = ?1 AND id = ?2",
                params![app, id],
                build_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                kind: "build",
                id: id.into(),
                app: app.into(),
                list: "builds",
            })
    }

    // ---- releases ----

    /// Creates a release (`R1`, `R2`, ...) in state `created`.
    pub fn create_release(
        &self,
        app: &str,
        build: Option<&str>,
        env_version: u64,
        manifest: &str,
        description: &str,
    ) -> Result<ReleaseRow> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let seq: i64 = tx
            .query_row(
                "SELECT next_release FROM apps WHERE name = ?1",
                [app],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NoApp(app.into()))?;
        tx.execute(
            "UPDATE apps SET next_release = ?2 WHERE name = ?1",
            params![app, seq + 1],
        )?;
        let row = ReleaseRow {
            app: app.into(),
            id: format!("R{seq}"),
            seq: seq as u64,
            build: build.map(Into::into),
            env_version,
            manifest: manifest.into(),
            created: now_rfc3339(),
            status: "created".into(),
            description: description.into(),
            error: None,
        };
        tx.execute(
            "INSERT INTO releases (app, id, seq, build, env_version, manifest, created, status, description)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                row.app,
                row.id,
                seq,
                row.build,
                env_version as i64,
                row.manifest,
                row.created,
                row.status,
                row.description
            ],
        )?;
        tx.commit()?;
        Ok(row)
    }

    pub fn releases(&self, app: &str) -> Result<Vec<ReleaseRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {RELEASE_COLS} FROM releases WHERE app = ?1 ORDER BY seq DESC"
        ))?;
        let rows = stmt
            .query_map([app], release_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn release(&self, app: &str, id: &str) -> Result<ReleaseRow> {
        self.conn()
            .prepare_cached(&format!(
                "SELECT {RELEASE_COLS} FROM releases WHERE app = ?1 AND id = ?2"
            ))?
            .query_row(params![app, id], release_row)
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                kind: "release",
                id: id.into(),
                app: app.into(),
                list: "releases",
            })
    }

    pub fn fail_release(&self, app: &str, id: &str, error: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE releases SET status = 'failed', error = ?3 WHERE app = ?1 AND id = ?2",
            params![app, id, error],
        )?;
        Ok(())
    }

    // ---- processes and promotion ----

    pub fn insert_process(&self, p: &ProcessRow) -> Result<()> {
        self.conn().execute(
            "INSERT INTO processes (app, id, service, release, state, created, memory, cpu, restarts, last_exit, log_cursor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                p.app,
                p.id,
                p.service,
                p.release,
                p.state.as_str(),
                p.created,
                p.memory.map(|m| m as i64),
                p.cpu,
                p.restarts,
                p.last_exit,
                p.log_cursor
            ],
        )?;
        Ok(())
    }

    /// Every process of `app`, or of every app when `None`.
    pub fn processes(&self, app: Option<&str>) -> Result<Vec<ProcessRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT app, id, service, release, state, created, memory, cpu, restarts, last_exit, log_cursor
             FROM processes WHERE ?1 IS NULL OR app = ?1 ORDER BY app, service, created, id",
        )?;
        let rows = stmt
            .query_map([app], process_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn set_process_state(&self, app: &str, id: &str, state: ProcessState) -> Result<()> {
        self.conn().execute(
            "UPDATE processes SET state = ?3 WHERE app = ?1 AND id = ?2",
            params![app, id, state.as_str()],
        )?;
        Ok(())
    }

    pub fn record_restart(&self, app: &str, id: &str, exit: Option<i64>) -> Result<()> {
        self.conn().execute(
            "UPDATE processes SET restarts = restarts + 1, last_exit = ?3 WHERE app = ?1 AND id = ?2",
            params![app, id, exit],
        )?;
        Ok(())
    }

    pub fn set_log_cursor(&self, app: &str, id: &str, cursor: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE processes SET log_cursor = ?3 WHERE app = ?1 AND id = ?2 AND log_cursor < ?3",
            params![app, id, cursor],
        )?;
        Ok(())
    }

    pub fn delete_process(&self, app: &str, id: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM processes WHERE app = ?1 AND id = ?2",
            params![app, id],
        )?;
        Ok(())
    }

    /// In one transaction: `release` becomes the app's promoted release, the
    /// processes in `activate` become `active`, and those in `retire` become `stopping`.
    pub fn promote(
        &self,
        app: &str,
        release: &str,
        activate: &[String],
        retire: &[String],
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let previous: Option<String> = tx
            .query_row("SELECT release FROM apps WHERE name = ?1", [app], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NoApp(app.into()))?;
        if previous.as_deref() != Some(release) {
            tx.execute(
                "UPDATE releases SET status = 'superseded' WHERE app = ?1 AND status = 'active'",
                [app],
            )?;
        }
        tx.execute(
            "UPDATE releases SET status = 'active', error = NULL WHERE app = ?1 AND id = ?2",
            params![app, release],
        )?;
        tx.execute(
            "UPDATE apps SET release = ?2 WHERE name = ?1",
            params![app, release],
        )?;
        for id in activate {
            tx.execute(
                "UPDATE processes SET state = 'active' WHERE app = ?1 AND id = ?2",
                params![app, id],
            )?;
        }
        for id in retire {
            tx.execute(
                "UPDATE processes SET state = 'stopping' WHERE app = ?1 AND id = ?2",
                params![app, id],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    // ---- formation (scale overrides) ----

    pub fn formation(&self, app: &str) -> Result<BTreeMap<String, Formation>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT service, count, memory, cpu FROM formation WHERE app = ?1")?;
        let rows = stmt.query_map([app], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Formation {
                    count: r.get::<_, Option<i64>>(1)?.map(|c| c as u32),
                    memory: r.get::<_, Option<i64>>(2)?.map(|m| m as u64),
                    cpu: r.get(3)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<BTreeMap<_, _>>>()?)
    }

    pub fn set_formation(&self, app: &str, service: &str, f: &Formation) -> Result<()> {
        self.conn().execute(
            "INSERT INTO formation (app, service, count, memory, cpu) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(app, service) DO UPDATE SET count = ?3, memory = ?4, cpu = ?5",
            params![app, service, f.count, f.memory.map(|m| m as i64), f.cpu],
        )?;
        Ok(())
    }

    // ---- deployments ----

    pub fn start_deployment(&self, app: &str, release: &str) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO deployments (app, release, status, started) VALUES (?1, ?2, 'running', ?3)",
            params![app, release, now_rfc3339()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    pub fn finish_deployment(&self, id: i64, error: Option<&str>) -> Result<()> {
        let status = if error.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        self.conn().execute(
            "UPDATE deployments SET status = ?2, finished = ?3, error = ?4 WHERE id = ?1",
            params![id, status, now_rfc3339(), error],
        )?;
        Ok(())
    }

    /// Deployments left `running` by a server that stopped mid-way.
    pub fn running_deployments(&self) -> Result<Vec<DeploymentRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, app, release, status, started, finished, error FROM deployments
             WHERE status = 'running'",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DeploymentRow {
                    id: r.get(0)?,
                    app: r.get(1)?,
                    release: r.get(2)?,
                    status: r.get(3)?,
                    started: r.get(4)?,
                    finished: r.get(5)?,
                    error: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn counts(&self) -> Result<(u64, u64, u64, u64)> {
        let conn = self.conn();
        let count = |table: &str| -> rusqlite::Result<u64> {
            conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
        };
        Ok((
            count("apps")?,
            count("processes")?,
            count("builds")?,
            count("releases")?,
        ))
    }
}

const RELEASE_COLS: &str =
    "app, id, seq, build, env_version, manifest, created, status, description, error";

fn app_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AppRow> {
    Ok(AppRow {
        name: r.get(0)?,
        created: r.get(1)?,
        release: r.get(2)?,
        env_version: r.get::<_, i64>(3)? as u64,
    })
}

fn build_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BuildRow> {
    let images: String = r.get(6)?;
    Ok(BuildRow {
        app: r.get(0)?,
        id: r.get(1)?,
        status: r.get(2)?,
        created: r.get(3)?,
        finished: r.get(4)?,
        manifest: r.get(5)?,
        images: serde_json::from_str(&images).unwrap_or_default(),
        error: r.get(7)?,
    })
}

fn release_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReleaseRow> {
    Ok(ReleaseRow {
        app: r.get(0)?,
        id: r.get(1)?,
        seq: r.get::<_, i64>(2)? as u64,
        build: r.get(3)?,
        env_version: r.get::<_, i64>(4)? as u64,
        manifest: r.get(5)?,
        created: r.get(6)?,
        status: r.get(7)?,
        description: r.get(8)?,
        error: r.get(9)?,
    })
}

fn process_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProcessRow> {
    Ok(ProcessRow {
        app: r.get(0)?,
        id: r.get(1)?,
        service: r.get(2)?,
        release: r.get(3)?,
        state: {
            let name: String = r.get(4)?;
            name.parse().map_err(|e: berth_core::UnknownProcessState| {
                rusqlite::Error::FromSqlConversionFailure(
                    4,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?
        },
        created: r.get(5)?,
        memory: r.get::<_, Option<i64>>(6)?.map(|m| m as u64),
        cpu: r.get(7)?,
        restarts: r.get::<_, i64>(8)? as u32,
        last_exit: r.get(9)?,
        log_cursor: r.get(10)?,
    })
}

#[cfg(test)]
mod tests;
