//! Log drains: where an app's (or every app's) log stream is forwarded. What
//! each drain has sent is not here but next to its spool (`DATA/drains/<id>/`).

use crate::{Result, Store, StoreError};
use rusqlite::{OptionalExtension, params};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainRow {
    /// `d-` and 8 hex digits.
    pub id: String,
    /// As given (credentials included; masked wherever it is shown).
    pub url: String,
    /// The app whose lines it gets; `None`: every app's (rack-wide).
    pub app: Option<String>,
    /// Extra CA (PEM) trusted for a `syslog+tls` receiver besides the system roots.
    pub ca_pem: Option<String>,
    /// Bound of its on-disk buffer, bytes.
    pub max_bytes: u64,
    pub created: String,
}

fn drain_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DrainRow> {
    Ok(DrainRow {
        id: r.get(0)?,
        url: r.get(1)?,
        app: r.get(2)?,
        ca_pem: r.get(3)?,
        max_bytes: r.get::<_, i64>(4)?.max(0) as u64,
        created: r.get(5)?,
    })
}

impl Store {
    pub fn insert_drain(&self, d: &DrainRow) -> Result<()> {
        self.conn().execute(
            "INSERT INTO drains (id, url, app, ca_pem, max_bytes, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![d.id, d.url, d.app, d.ca_pem, d.max_bytes as i64, d.created],
        )?;
        Ok(())
    }

    /// Every drain, rack-wide ones first, then by app and creation.
    pub fn drains(&self) -> Result<Vec<DrainRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, url, app, ca_pem, max_bytes, created FROM drains ORDER BY app IS NOT NULL, app, created, id",
        )?;
        let rows = stmt
            .query_map([], drain_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn drain(&self, id: &str) -> Result<Option<DrainRow>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, url, app, ca_pem, max_bytes, created FROM drains WHERE id = ?1",
                [id],
                drain_row,
            )
            .optional()?)
    }

    pub fn delete_drain(&self, id: &str) -> Result<()> {
        let n = self
            .conn()
            .execute("DELETE FROM drains WHERE id = ?1", [id])?;
        if n == 0 {
            return Err(StoreError::Corrupt(format!("drain {id} vanished")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_are_stored_listed_and_removed_with_their_app() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (key, _) =
            crate::MasterKey::load_or_create(&dir.path().join("k")).expect("a master key");
        let store = Store::open(&dir.path().join("db"), key).expect("a store");
        store.create_app("shop").expect("an app");
        let row = |id: &str, app: Option<&str>| DrainRow {
            id: id.into(),
            url: "syslog+tcp://127.0.0.1:6514".into(),
            app: app.map(str::to_string),
            ca_pem: None,
            max_bytes: 1024,
            created: crate::now_rfc3339(),
        };
        store
            .insert_drain(&row("d-2", Some("shop")))
            .expect("stored");
        store.insert_drain(&row("d-1", None)).expect("stored");
        let ids: Vec<String> = store
            .drains()
            .expect("listed")
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, ["d-1", "d-2"]);
        let got = store.drain("d-2").expect("read").expect("there");
        assert_eq!((got.app.as_deref(), got.max_bytes), (Some("shop"), 1024));
        store.delete_app("shop").expect("deleted");
        assert_eq!(store.drain("d-2").expect("read"), None);
        store.delete_drain("d-1").expect("removed");
        assert!(store.drains().expect("listed").is_empty());
        assert!(store.delete_drain("d-1").is_err());
    }
}
