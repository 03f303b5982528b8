//! API tokens (who may do what) and the audit trail (who changed what, when).

use crate::{Result, Store, StoreError, now_rfc3339, seal};
use rusqlite::params;

/// The roles a token can have: `admin`, `deploy` and `read` from most to least
/// powerful, and `node`, which is no user's: it only lets `berth agent` on a
/// swarm node introduce itself.
pub const ROLES: &[&str] = &["admin", "deploy", "read", NODE_ROLE];

/// The role of the tokens agents use (`berth instances join` makes them).
pub const NODE_ROLE: &str = "node";

/// Who a request comes from, once its token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub role: String,
    /// The only app this token may touch; `None` for every app.
    pub app: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub role: String,
    pub app: Option<String>,
    pub created: String,
    pub last_used: Option<String>,
}

/// One change made through the API. Never holds request bodies, so never env values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub time: String,
    pub token: String,
    pub role: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl Store {
    /// The identity whose secret this is. Every token row is hashed and compared in
    /// constant time whatever `secret` looks like (empty, malformed or wrong), so the
    /// answer's timing says nothing about why a token was refused.
    pub fn authenticate(&self, secret: &str) -> Result<Option<Identity>> {
        let want = seal::token_hash(secret);
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT id, hash, role, app FROM tokens")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut found = None;
        for row in rows {
            let (id, hash, role, app) = row?;
            if seal::hashes_equal(&hash, &want) && found.is_none() {
                found = Some(Identity { id, role, app });
            }
        }
        Ok(found)
    }

    pub fn tokens(&self) -> Result<Vec<TokenRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, role, app, created, last_used FROM tokens ORDER BY created, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TokenRow {
                id: r.get(0)?,
                role: r.get(1)?,
                app: r.get(2)?,
                created: r.get(3)?,
                last_used: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes a token; refuses to delete the last admin token, which would lock
    /// everybody out of token management.
    pub fn revoke_token(&self, id: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let role: Option<String> = tx
            .query_row("SELECT role FROM tokens WHERE id = ?1", [id], |r| r.get(0))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        let Some(role) = role else {
            return Err(StoreError::NoToken(id.into()));
        };
        if role == "admin" {
            let admins: i64 = tx.query_row(
                "SELECT COUNT(*) FROM tokens WHERE role = 'admin'",
                [],
                |r| r.get(0),
            )?;
            if admins <= 1 {
                return Err(StoreError::LastAdmin(id.into()));
            }
        }
        tx.execute("DELETE FROM tokens WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    pub fn touch_token(&self, id: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE tokens SET last_used = ?2 WHERE id = ?1",
            params![id, now_rfc3339()],
        )?;
        Ok(())
    }

    pub fn record_audit(
        &self,
        token: &str,
        role: &str,
        method: &str,
        path: &str,
        status: u16,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO audit (time, token, role, method, path, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now_rfc3339(), token, role, method, path, status],
        )?;
        Ok(())
    }

    /// The newest `limit` audit records, oldest first.
    pub fn audit(&self, limit: u32) -> Result<Vec<AuditRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, time, token, role, method, path, status FROM
               (SELECT * FROM audit ORDER BY id DESC LIMIT ?1) ORDER BY id",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(AuditRow {
                id: r.get(0)?,
                time: r.get(1)?,
                token: r.get(2)?,
                role: r.get(3)?,
                method: r.get(4)?,
                path: r.get(5)?,
                status: r.get::<_, i64>(6)?.clamp(0, 999) as u16,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use crate::{MasterKey, Store, StoreError};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (key, _) = MasterKey::load_or_create(&dir.path().join("k")).expect("key");
        let s = Store::open(&dir.path().join("db"), key).expect("open");
        (dir, s)
    }

    #[test]
    fn authenticate_returns_role_and_app() {
        let (_d, s) = store();
        let (id, secret) = s.create_token("deploy", Some("web")).expect("create");
        let who = s.authenticate(&secret).expect("auth").expect("known");
        assert_eq!(who.id, id);
        assert_eq!(who.role, "deploy");
        assert_eq!(who.app.as_deref(), Some("web"));
        for bad in ["", "berth_", "Bearer x", "berth_00", "\u{0}", &secret[1..]] {
            assert_eq!(s.authenticate(bad).expect("auth"), None, "{bad:?}");
        }
    }

    #[test]
    fn tokens_list_and_revoke_keep_one_admin() {
        let (_d, s) = store();
        let (admin, _) = s.create_token("admin", None).expect("admin");
        let (reader, secret) = s.create_token("read", None).expect("read");
        assert_eq!(s.tokens().expect("list").len(), 2);
        assert!(matches!(
            s.revoke_token(&admin),
            Err(StoreError::LastAdmin(_))
        ));
        s.touch_token(&reader).expect("touch");
        assert!(
            s.tokens()
                .expect("list")
                .iter()
                .any(|t| t.id == reader && t.last_used.is_some())
        );
        s.revoke_token(&reader).expect("revoke");
        assert_eq!(s.authenticate(&secret).expect("auth"), None);
        assert!(matches!(
            s.revoke_token(&reader),
            Err(StoreError::NoToken(_))
        ));
        let (admin2, _) = s.create_token("admin", None).expect("admin2");
        s.revoke_token(&admin).expect("one admin left after");
        assert_eq!(s.tokens().expect("list")[0].id, admin2);
    }

    #[test]
    fn audit_keeps_newest_in_order() {
        let (_d, s) = store();
        for i in 0..5 {
            s.record_audit("t1", "admin", "POST", &format!("/apps/a{i}"), 200)
                .expect("record");
        }
        let rows = s.audit(3).expect("audit");
        let paths: Vec<_> = rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/apps/a2", "/apps/a3", "/apps/a4"]);
        assert_eq!(rows[0].status, 200);
    }
}
