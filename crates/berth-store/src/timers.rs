//! What the timer scheduler remembers across restarts: per timer, the last
//! due minute it handled (so a restart never runs one minute twice) and the
//! last run's start and exit code.

use crate::{Result, Store};
use rusqlite::{OptionalExtension, params};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimerRun {
    /// Unix seconds of the last due time handled (run or skipped); 0 = never.
    pub due: i64,
    /// RFC 3339 start of the last run.
    pub last_run: Option<String>,
    pub exit_code: Option<i64>,
    /// One-off id of the run in progress.
    pub running: Option<String>,
}

impl Store {
    pub fn timer_run(&self, app: &str, timer: &str) -> Result<Option<TimerRun>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT due, last_run, exit_code, running FROM timer_runs WHERE app = ?1 AND timer = ?2",
                params![app, timer],
                |r| {
                    Ok(TimerRun {
                        due: r.get(0)?,
                        last_run: r.get(1)?,
                        exit_code: r.get(2)?,
                        running: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Marks `due` handled without running (first sight of a timer, or a skip).
    pub fn timer_handled(&self, app: &str, timer: &str, due: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO timer_runs (app, timer, due) VALUES (?1, ?2, ?3)
             ON CONFLICT (app, timer) DO UPDATE SET due = excluded.due",
            params![app, timer, due],
        )?;
        Ok(())
    }

    /// Records that a run for `due` started as one-off `id`.
    pub fn timer_started(&self, app: &str, timer: &str, due: i64, id: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO timer_runs (app, timer, due, last_run, running) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (app, timer) DO UPDATE SET due = excluded.due,
               last_run = excluded.last_run, exit_code = NULL, running = excluded.running",
            params![app, timer, due, crate::now_rfc3339(), id],
        )?;
        Ok(())
    }

    /// Records the end of run `id` (ignored when a newer run replaced it).
    pub fn timer_finished(
        &self,
        app: &str,
        timer: &str,
        id: &str,
        code: Option<i64>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE timer_runs SET exit_code = ?4, running = NULL
             WHERE app = ?1 AND timer = ?2 AND running = ?3",
            params![app, timer, id, code],
        )?;
        Ok(())
    }
}
