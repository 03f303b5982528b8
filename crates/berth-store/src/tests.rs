use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("berth.db"), MasterKey::generate()).expect("open");
    (dir, store)
}

#[test]
fn apps_are_unique_and_deletable() {
    let (_d, s) = store();
    s.create_app("shop").unwrap();
    assert!(matches!(
        s.create_app("shop"),
        Err(StoreError::AppExists(_))
    ));
    assert_eq!(s.apps().unwrap().len(), 1);
    s.delete_app("shop").unwrap();
    assert!(matches!(s.app("shop"), Err(StoreError::NoApp(_))));
}

#[test]
fn env_versions_are_immutable_and_sealed() {
    let (d, s) = store();
    s.create_app("shop").unwrap();
    let mut set = BTreeMap::new();
    set.insert("SECRET".to_string(), "hunter2-plaintext".to_string());
    set.insert("A".to_string(), "1".to_string());
    let v1 = s.change_env("shop", &set, &[]).unwrap();
    let v2 = s
        .change_env("shop", &BTreeMap::new(), &["A".to_string()])
        .unwrap();
    assert_eq!(s.env("shop", v1).unwrap().len(), 2);
    let e2 = s.env("shop", v2).unwrap();
    assert_eq!(
        e2.get("SECRET").map(String::as_str),
        Some("hunter2-plaintext")
    );
    assert!(!e2.contains_key("A"));
    assert_eq!(s.app("shop").unwrap().env_version, v2);
    drop(s);
    // The database files never hold the plaintext.
    for entry in std::fs::read_dir(d.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(17).any(|w| w == b"hunter2-plaintext"));
    }
}

#[test]
fn wrong_key_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("berth.db");
    let s = Store::open(&db, MasterKey::generate()).unwrap();
    s.create_app("shop").unwrap();
    let mut set = BTreeMap::new();
    set.insert("K".to_string(), "v".to_string());
    let v = s.change_env("shop", &set, &[]).unwrap();
    drop(s);
    let s = Store::open(&db, MasterKey::generate()).unwrap();
    assert!(matches!(
        s.env("shop", v),
        Err(StoreError::Seal(SealError::Open))
    ));
}

#[test]
fn tokens_are_hashed_and_checked() {
    let (_d, s) = store();
    let (id, secret) = s.create_token("admin", None).unwrap();
    assert_eq!(
        s.check_token(&secret).unwrap(),
        Some((id, "admin".to_string()))
    );
    assert_eq!(s.check_token("berth_wrong").unwrap(), None);
    assert_eq!(s.check_token("").unwrap(), None);
}

#[test]
fn builds_and_releases_number_per_app() {
    let (_d, s) = store();
    s.create_app("a").unwrap();
    s.create_app("b").unwrap();
    assert_eq!(s.create_build("a", "m").unwrap().id, "B1");
    assert_eq!(s.create_build("a", "m").unwrap().id, "B2");
    assert_eq!(s.create_build("b", "m").unwrap().id, "B1");
    let r1 = s
        .create_release("a", Some("B1"), 0, "m", "build B1")
        .unwrap();
    let r2 = s
        .create_release("a", Some("B2"), 0, "m", "build B2")
        .unwrap();
    assert_eq!((r1.id.as_str(), r2.id.as_str()), ("R1", "R2"));
    s.promote("a", "R1", &[], &[]).unwrap();
    s.promote("a", "R2", &[], &[]).unwrap();
    let rels = s.releases("a").unwrap();
    assert_eq!(rels[0].status, "active");
    assert_eq!(rels[1].status, "superseded");
    assert_eq!(s.app("a").unwrap().release.as_deref(), Some("R2"));
}

#[test]
fn promote_switches_processes_atomically() {
    let (_d, s) = store();
    s.create_app("a").unwrap();
    let proc = |id: &str, state: &str| ProcessRow {
        app: "a".into(),
        id: id.into(),
        service: "web".into(),
        release: "R1".into(),
        state: state.parse().expect("a process state"),
        created: now_rfc3339(),
        memory: Some(64),
        cpu: None,
        restarts: 0,
        last_exit: None,
        log_cursor: 0,
    };
    s.insert_process(&proc("web-old", "active")).unwrap();
    s.insert_process(&proc("web-new", "starting")).unwrap();
    s.create_release("a", None, 0, "m", "x").unwrap();
    s.promote("a", "R1", &["web-new".into()], &["web-old".into()])
        .unwrap();
    let ps = s.processes(Some("a")).unwrap();
    let state = |id: &str| ps.iter().find(|p| p.id == id).map(|p| p.state.to_string());
    assert_eq!(state("web-new").as_deref(), Some("active"));
    assert_eq!(state("web-old").as_deref(), Some("stopping"));
    assert_eq!(ps[0].memory, Some(64));
}

#[test]
fn env_versions_after_a_rollback_never_collide() {
    let (_d, s) = store();
    s.create_app("a").unwrap();
    let one = BTreeMap::from([("K".to_string(), "1".to_string())]);
    let two = BTreeMap::from([("K".to_string(), "2".to_string())]);
    let v1 = s.change_env("a", &one, &[]).unwrap();
    let v2 = s.change_env("a", &two, &[]).unwrap();
    s.set_env_version("a", v1).unwrap();
    let v3 = s
        .change_env(
            "a",
            &BTreeMap::from([("L".to_string(), "x".to_string())]),
            &[],
        )
        .unwrap();
    assert!(v3 > v2);
    let env = s.env("a", v3).unwrap();
    assert_eq!(env.get("K").map(String::as_str), Some("1"));
    assert_eq!(
        s.env("a", v2).unwrap().get("K").map(String::as_str),
        Some("2")
    );
}

#[test]
fn acme_accounts_are_sealed_per_directory() {
    let (d, s) = store();
    let a = "https://acme.example/dir";
    assert_eq!(s.acme_account(a).unwrap(), None);
    s.put_acme_account(a, "{\"key\":\"account-secret-pkcs8\"}")
        .unwrap();
    assert_eq!(
        s.acme_account(a).unwrap().as_deref(),
        Some("{\"key\":\"account-secret-pkcs8\"}")
    );
    assert_eq!(s.acme_account("https://other.example/dir").unwrap(), None);
    drop(s);
    for file in ["berth.db", "berth.db-wal"] {
        let raw = std::fs::read(d.path().join(file)).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&raw).contains("account-secret"));
    }
}

#[test]
fn a_backup_is_a_whole_store_that_only_its_key_opens() {
    let (d, s) = store();
    s.create_app("shop").unwrap();
    let mut set = BTreeMap::new();
    set.insert("SECRET".to_string(), "v".to_string());
    s.change_env("shop", &set, &[]).unwrap();
    let copy = d.path().join("copy.db");
    s.backup_to(&copy).unwrap();
    assert_eq!(schema_version_of(&copy).unwrap(), SCHEMA_VERSION);
    let same = Store::open(&copy, s.key.clone()).unwrap();
    same.check_key().unwrap();
    assert_eq!(same.env("shop", 1).unwrap(), set);
    drop(same);
    let other = Store::open(&copy, MasterKey::generate()).unwrap();
    assert!(matches!(other.check_key(), Err(StoreError::Seal(_))));
}

#[test]
fn a_store_newer_than_this_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("berth.db");
    drop(Store::open(&db, MasterKey::generate()).unwrap());
    let conn = Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    assert!(matches!(
        Store::open(&db, MasterKey::generate()),
        Err(StoreError::NewerSchema { found, .. }) if found == SCHEMA_VERSION + 1
    ));
}

#[test]
fn resource_passwords_are_made_once_sealed_and_go_with_the_app() {
    let (d, s) = store();
    s.create_app("shop").unwrap();
    let pw = s.resource_password("shop", "db").unwrap();
    assert_eq!(pw.len(), 32);
    assert_eq!(s.resource_password("shop", "db").unwrap(), pw, "stable");
    assert_ne!(s.resource_password("shop", "cache").unwrap(), pw);
    for entry in std::fs::read_dir(d.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(pw.len()).any(|w| w == pw.as_bytes()));
    }
    s.delete_app("shop").unwrap();
    s.create_app("shop").unwrap();
    assert_ne!(s.resource_password("shop", "db").unwrap(), pw);
}

#[test]
fn an_upgraded_resource_image_is_kept_with_the_password_and_goes_with_the_app() {
    let (_d, s) = store();
    s.create_app("shop").unwrap();
    assert_eq!(s.resource_image("shop", "db").unwrap(), None);
    let pw = s.resource_password("shop", "db").unwrap();
    s.set_resource_image("shop", "db", Some("postgres:16"))
        .unwrap();
    assert_eq!(
        s.resource_image("shop", "db").unwrap().as_deref(),
        Some("postgres:16")
    );
    assert_eq!(
        s.resource_password("shop", "db").unwrap(),
        pw,
        "same credentials"
    );
    s.set_resource_image("shop", "db", None).unwrap();
    assert_eq!(s.resource_image("shop", "db").unwrap(), None);
    s.set_resource_image("shop", "db", Some("postgres:16"))
        .unwrap();
    s.delete_app("shop").unwrap();
    s.create_app("shop").unwrap();
    assert_eq!(s.resource_image("shop", "db").unwrap(), None);
}

/// The schema as SQLite keeps it: every table and index with its SQL.
fn schema_of(conn: &Connection) -> Vec<(String, String, Option<String>)> {
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
        .expect("read the schema");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("read the schema")
        .collect::<rusqlite::Result<_>>()
        .expect("read the schema")
}

/// Each table's row count.
fn row_counts(conn: &Connection) -> Vec<(String, i64)> {
    schema_of(conn)
        .into_iter()
        .filter(|(kind, _, _)| kind == "table")
        .map(|(_, table, _)| {
            let n = conn
                .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                    r.get(0)
                })
                .expect("count rows");
            (table, n)
        })
        .collect()
}

/// Puts two rows in every table, each column given a value of its declared type.
fn fill_every_table(conn: &Connection) {
    for (kind, table, _) in schema_of(conn) {
        if kind != "table" {
            continue;
        }
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info(\"{table}\")"))
            .expect("table info");
        let types: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(2))
            .expect("table info")
            .collect::<rusqlite::Result<_>>()
            .expect("table info");
        for row in 1..=2 {
            let values: Vec<String> = types
                .iter()
                .map(|t| match t.to_ascii_uppercase().as_str() {
                    "INTEGER" => row.to_string(),
                    "REAL" => format!("{row}.5"),
                    "BLOB" => format!("x'0{row}'"),
                    _ => format!("'{table}-{row}'"),
                })
                .collect();
            conn.execute_batch(&format!(
                "INSERT INTO \"{table}\" VALUES ({})",
                values.join(", ")
            ))
            .unwrap_or_else(|e| panic!("a row in {table}: {e}"));
        }
    }
}

/// Every schema berth has shipped is the first `k` migrations. A store left at
/// each of them, with rows in every table, opens with this build: it migrates
/// to the latest schema, keeps every row, passes SQLite's checks and ends with
/// the very schema of a new store.
#[test]
fn a_store_of_every_earlier_schema_migrates_to_the_latest_keeping_its_rows() {
    let (_fresh_dir, fresh) = store();
    let latest = schema_of(&fresh.conn());
    for shipped in 0..SCHEMA_VERSION as usize {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("berth.db");
        let before = {
            let conn = Connection::open(&path).expect("an old store");
            for sql in &MIGRATIONS[..shipped] {
                conn.execute_batch(sql).expect("an old migration");
            }
            conn.pragma_update(None, "user_version", shipped as i64)
                .expect("its version");
            fill_every_table(&conn);
            row_counts(&conn)
        };
        let store = Store::open(&path, MasterKey::generate())
            .unwrap_or_else(|e| panic!("a store of schema {shipped} does not open: {e}"));
        let conn = store.conn();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION, "from schema {shipped}");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity check");
        assert_eq!(check, "ok", "from schema {shipped}");
        let after = row_counts(&conn);
        for (table, n) in before {
            let kept = after.iter().find(|(t, _)| *t == table).map(|(_, n)| *n);
            assert_eq!(kept, Some(n), "rows of {table}, from schema {shipped}");
        }
        assert_eq!(schema_of(&conn), latest, "from schema {shipped}");
    }
}

#[test]
fn an_ocsp_staple_is_replaced_and_goes_with_its_certificate() {
    let (_d, s) = store();
    let row = certs::CertRow {
        id: "c-000001".into(),
        domains: vec!["a.example".into()],
        not_after: "2030-01-01T00:00:00Z".into(),
        source: "imported".into(),
        created: now_rfc3339(),
        cert_pem: "PEM".into(),
    };
    s.put_cert(&row, "KEY").unwrap();
    // A staple for a certificate that is not stored is refused.
    assert!(s.put_ocsp_staple("c-missing", b"der", 1).is_err());
    s.put_ocsp_staple(&row.id, b"first", 100).unwrap();
    s.put_ocsp_staple(&row.id, b"second", 200).unwrap();
    let staples = s.ocsp_staples().unwrap();
    assert_eq!(staples.len(), 1);
    assert_eq!(staples[&row.id], (b"second".to_vec(), 200));
    s.delete_ocsp_staple(&row.id).unwrap();
    assert!(s.ocsp_staples().unwrap().is_empty());
    s.put_ocsp_staple(&row.id, b"third", 300).unwrap();
    assert!(s.delete_cert(&row.id).unwrap());
    assert!(s.ocsp_staples().unwrap().is_empty());
}
