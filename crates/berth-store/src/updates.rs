//! The rack's own updates (`berth rack update`): one row per attempt, so
//! `berth rack releases` shows which versions ran and what became of each
//! update. A row is written before the store is backed up for the update, so a
//! rolled-back store still has it and only its outcome changes.

use crate::{Result, Store, StoreError, now_rfc3339};
use rusqlite::{OptionalExtension, params};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRow {
    /// `u-` and 8 hex digits.
    pub id: String,
    pub from_version: String,
    pub to_version: String,
    /// `updating`, `done` or `rolled back`.
    pub state: String,
    pub started: String,
    pub finished: Option<String>,
    /// What happened: the reason of a rollback, the router's handover.
    pub message: Option<String>,
}

fn update_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UpdateRow> {
    Ok(UpdateRow {
        id: r.get(0)?,
        from_version: r.get(1)?,
        to_version: r.get(2)?,
        state: r.get(3)?,
        started: r.get(4)?,
        finished: r.get(5)?,
        message: r.get(6)?,
    })
}

const COLUMNS: &str = "id, from_version, to_version, state, started, finished, message";

impl Store {
    /// Records an update that starts now, in state `updating`.
    pub fn insert_update(&self, id: &str, from_version: &str, to_version: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO rack_updates (id, from_version, to_version, state, started) VALUES (?1, ?2, ?3, 'updating', ?4)",
            params![id, from_version, to_version, now_rfc3339()],
        )?;
        Ok(())
    }

    /// Ends update `id` in `state` (`done` or `rolled back`), saying why.
    pub fn finish_update(&self, id: &str, state: &str, message: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE rack_updates SET state = ?2, finished = ?3, message = ?4 WHERE id = ?1",
            params![id, state, now_rfc3339(), message],
        )?;
        if n == 0 {
            return Err(StoreError::Corrupt(format!("rack update {id} vanished")));
        }
        Ok(())
    }

    /// Every update, newest first.
    pub fn updates(&self) -> Result<Vec<UpdateRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM rack_updates ORDER BY started DESC, rowid DESC"
        ))?;
        let rows = stmt
            .query_map([], update_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn update(&self, id: &str) -> Result<Option<UpdateRow>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM rack_updates WHERE id = ?1"),
                [id],
                update_row,
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_update_is_recorded_then_finished() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = crate::Store::open(&dir.path().join("db"), crate::MasterKey::generate())
            .expect("a store");
        store
            .insert_update("u-1", "0.1.0", "0.1.0+next")
            .expect("insert");
        store
            .insert_update("u-2", "0.1.0+next", "0.1.0")
            .expect("insert");
        store
            .finish_update("u-1", "done", "router handed over")
            .expect("finish");
        let rows = store.updates().expect("list");
        assert_eq!(rows.len(), 2);
        let first = store.update("u-1").expect("read").expect("row");
        assert_eq!(first.state, "done");
        assert_eq!(first.message.as_deref(), Some("router handed over"));
        assert!(first.finished.is_some());
        assert_eq!(
            store.update("u-2").expect("read").expect("row").state,
            "updating"
        );
        assert!(store.finish_update("u-9", "done", "").is_err());
    }
}
