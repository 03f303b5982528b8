//! The timer scheduler: each `timers:` entry of an app's promoted release
//! starts a one-off process of its service when its cron schedule (5 fields,
//! UTC) comes due.
//!
//! Per timer the store keeps the last due time handled, written *before* the
//! run starts, so a server restarted within the same minute never runs it
//! twice; and the run in progress, so a run still going when the next is due
//! is not doubled (the skip is logged) and a run that outlived a server restart
//! is adopted: its exit code is still recorded. Due times missed while the
//! server was down are not caught up, apart from one that came due in the last
//! [`CATCH_UP`] seconds.

use crate::error::{Error, Result};
use crate::oneoff::{self, LaunchOptions, WaitGuard};
use crate::rack::Rack;
use berth_api::{RunRequest, TimerInfo};
use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A due time this recent is still run after a server restart.
pub const CATCH_UP: i64 = 90;
const TICK: Duration = Duration::from_secs(1);

/// What to do about one timer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is due.
    Wait,
    /// First sight of the timer: remember `now` as handled, run from the next due time.
    Baseline(i64),
    /// Run for this due time.
    Run(i64),
    /// Due, but the previous run is still going: skip this due time.
    Skip(i64),
    /// Came due too long ago (the server was down): skip it.
    Missed(i64),
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// The next due time strictly after `after` (unix seconds).
pub fn next_after(cron: &Cron, after: i64) -> Option<i64> {
    cron.find_next_occurrence(&at(after), false)
        .ok()
        .map(|t| t.timestamp())
}

/// Pure scheduling: `last_due` is the last due time handled (None: never seen).
pub fn decide(cron: &Cron, last_due: Option<i64>, now: i64, running: bool) -> Decision {
    let Some(last) = last_due else {
        return Decision::Baseline(now);
    };
    match next_after(cron, last) {
        Some(next) if next <= now => {}
        _ => return Decision::Wait,
    }
    let latest = cron
        .find_previous_occurrence(&at(now), true)
        .map(|t| t.timestamp())
        .unwrap_or(now);
    if now - latest > CATCH_UP {
        Decision::Missed(latest)
    } else if running {
        Decision::Skip(latest)
    } else {
        Decision::Run(latest)
    }
}

fn rfc3339(secs: i64) -> String {
    at(secs).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Runs the scheduler until the server stops.
pub async fn run(rack: Arc<Rack>) {
    let waiting: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        if let Err(e) = tick(&rack, &waiting).await {
            tracing::warn!(error = %e, "timer pass failed; retrying");
        }
        tokio::time::sleep(TICK).await;
    }
}

async fn tick(rack: &Arc<Rack>, waiting: &Arc<Mutex<HashSet<String>>>) -> Result<()> {
    let now = Utc::now().timestamp();
    for app in rack.store.apps()? {
        let Some(release_id) = &app.release else {
            continue;
        };
        let Ok(release) = rack.store.release(&app.name, release_id) else {
            continue;
        };
        let Ok(manifest) = rack.manifest(&release) else {
            continue;
        };
        for (name, timer) in &manifest.timers {
            let Ok(cron) = Cron::from_str(&timer.schedule) else {
                continue;
            };
            let state = rack.store.timer_run(&app.name, name)?;
            let key = format!("{}/{name}", app.name);
            let running = state.as_ref().and_then(|s| s.running.clone());
            if let Some(id) = &running
                && !waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&key)
            {
                // A run that outlived a server restart (or whose start was cut short).
                spawn_waiter(rack, waiting, &app.name, (name, &timer.service), id, true);
            }
            match decide(&cron, state.as_ref().map(|s| s.due), now, running.is_some()) {
                Decision::Wait => {}
                Decision::Baseline(t) => rack.store.timer_handled(&app.name, name, t)?,
                Decision::Missed(t) => {
                    rack.store.timer_handled(&app.name, name, t)?;
                    rack.logs.event(
                        &app.name,
                        &format!(
                            "timer {name}: the run due at {} was missed while the server was down; next at {}",
                            rfc3339(t),
                            next_after(&cron, now).map(rfc3339).unwrap_or_default()
                        ),
                    );
                }
                Decision::Skip(t) => {
                    rack.store.timer_handled(&app.name, name, t)?;
                    rack.logs.event(
                        &app.name,
                        &format!(
                            "timer {name}: not starting the run due at {}: the previous run {} is still going",
                            rfc3339(t),
                            running.as_deref().unwrap_or("?")
                        ),
                    );
                }
                Decision::Run(t) => {
                    let id = oneoff::new_id(&timer.service);
                    // Recorded first: a restart from here on never runs this due time again.
                    rack.store.timer_started(&app.name, name, t, &id)?;
                    start(rack, waiting, &app.name, name, timer, &id).await;
                }
            }
        }
    }
    Ok(())
}

async fn start(
    rack: &Arc<Rack>,
    waiting: &Arc<Mutex<HashSet<String>>>,
    app: &str,
    name: &str,
    timer: &berth_core::Timer,
    id: &str,
) {
    let guard = WaitGuard::new(app, id);
    let req = RunRequest {
        service: timer.service.clone(),
        command: timer.command.clone(),
        ..Default::default()
    };
    let launched = oneoff::create(
        rack,
        app,
        &req,
        LaunchOptions {
            id: id.to_string(),
            detached: false,
            timer: Some(name),
        },
    )
    .await;
    let started = match launched {
        Ok(launch) => match oneoff::start(rack, &launch).await {
            Ok(()) => Ok(launch),
            Err(e) => {
                let _ = rack.runtime.remove_container(&launch.container).await;
                Err(Error::from(e))
            }
        },
        Err(e) => Err(e),
    };
    match started {
        Ok(launch) => {
            rack.logs.event(
                app,
                &format!(
                    "timer {name}: started {id} from release {}: `{}`",
                    launch.release,
                    timer.command.join(" ")
                ),
            );
            spawn_waiter(rack, waiting, app, (name, &timer.service), id, false);
        }
        Err(e) => {
            let _ = rack.store.timer_finished(app, name, id, None);
            rack.logs
                .event(app, &format!("timer {name}: cannot start a run: {e}"));
        }
    }
    drop(guard);
}

/// Follows a run's output into the app log (source `timer/<name>`), waits for
/// its exit, records it and removes the container.
fn spawn_waiter(
    rack: &Arc<Rack>,
    waiting: &Arc<Mutex<HashSet<String>>>,
    app: &str,
    (name, service): (&str, &str),
    id: &str,
    adopted: bool,
) {
    let key = format!("{app}/{name}");
    waiting
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone());
    let (rack, waiting) = (rack.clone(), waiting.clone());
    let (app, name, id) = (app.to_string(), name.to_string(), id.to_string());
    let service = service.to_string();
    let guard = WaitGuard::new(&app, &id);
    tokio::spawn(async move {
        let _guard = guard;
        let container = rack.container_name(&app, &id);
        let since = if adopted { Utc::now().timestamp() } else { 0 };
        let source = format!("timer/{name}");
        let follower = {
            let (rack, app, container) = (rack.clone(), app.clone(), container.clone());
            tokio::spawn(async move {
                let mut lines = rack.runtime.logs(&container, since);
                while let Some(Ok(line)) = lines.next().await {
                    rack.logs
                        .append_at(&app, line.ts_nanos, &source, &line.text);
                }
            })
        };
        let code = rack.runtime.wait_container(&container).await;
        // The output ends with the container; a stuck stream must not hold the record.
        let _ = tokio::time::timeout(Duration::from_secs(5), follower).await;
        let text = match &code {
            Ok(c) => {
                let ended = oneoff::Ended {
                    code: Some(*c),
                    oom_killed: oneoff::ran_out_of_memory(&rack, &container).await,
                };
                format!(
                    "timer {name}: {id} {}",
                    oneoff::exit_text(ended, &app, &service)
                )
            }
            Err(e) => format!("timer {name}: {id} vanished ({e}); its exit code is unknown"),
        };
        let _ = rack.store.timer_finished(&app, &name, &id, code.ok());
        rack.logs.event(&app, &text);
        let _ = rack.runtime.remove_container(&container).await;
        waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    });
}

/// The timers of the app's promoted release, with their last and next run.
pub fn list(rack: &Rack, app: &str) -> Result<Vec<TimerInfo>> {
    crate::apps::get(rack, app)?;
    let Some(manifest) = rack.current_manifest(app)? else {
        return Ok(vec![]);
    };
    let now = Utc::now().timestamp();
    let mut out = Vec::new();
    for (name, timer) in &manifest.timers {
        let state = rack.store.timer_run(app, name)?.unwrap_or_default();
        let next = Cron::from_str(&timer.schedule)
            .ok()
            .and_then(|c| next_after(&c, now))
            .map(rfc3339);
        out.push(TimerInfo {
            name: name.clone(),
            schedule: timer.schedule.clone(),
            service: timer.service.clone(),
            command: timer.command.clone(),
            last_run: state.last_run,
            exit_code: state.exit_code,
            running: state.running,
            next_run: next,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(s: &str) -> Cron {
        Cron::from_str(s).expect("valid cron")
    }

    /// 2026-01-01T12:00:00Z
    const NOON: i64 = 1_767_268_800;

    #[test]
    fn first_sight_only_sets_a_baseline() {
        assert_eq!(
            decide(&cron("* * * * *"), None, NOON + 30, false),
            Decision::Baseline(NOON + 30)
        );
    }

    #[test]
    fn runs_once_per_due_minute() {
        let c = cron("* * * * *");
        assert_eq!(
            decide(&c, Some(NOON + 30), NOON + 59, false),
            Decision::Wait
        );
        assert_eq!(
            decide(&c, Some(NOON + 30), NOON + 60, false),
            Decision::Run(NOON + 60)
        );
        // After the run for 12:01 was recorded (also across a restart): not again.
        assert_eq!(
            decide(&c, Some(NOON + 60), NOON + 61, false),
            Decision::Wait
        );
        assert_eq!(
            decide(&c, Some(NOON + 60), NOON + 119, false),
            Decision::Wait
        );
        assert_eq!(
            decide(&c, Some(NOON + 60), NOON + 121, false),
            Decision::Run(NOON + 120)
        );
    }

    #[test]
    fn a_run_still_going_is_not_doubled() {
        let c = cron("*/5 * * * *");
        assert_eq!(
            decide(&c, Some(NOON), NOON + 300, true),
            Decision::Skip(NOON + 300)
        );
        assert_eq!(
            decide(&c, Some(NOON), NOON + 300, false),
            Decision::Run(NOON + 300)
        );
    }

    #[test]
    fn downtime_is_not_caught_up_beyond_the_grace() {
        let c = cron("0 * * * *");
        // Down from 12:00 to 15:30: the 15:00 run is 30 minutes stale.
        assert_eq!(
            decide(&c, Some(NOON), NOON + 3 * 3600 + 1800, false),
            Decision::Missed(NOON + 3 * 3600)
        );
        // Back at 15:01: the 15:00 run still happens, once (12:00..15:00 collapse).
        assert_eq!(
            decide(&c, Some(NOON), NOON + 3 * 3600 + 60, false),
            Decision::Run(NOON + 3 * 3600)
        );
    }

    #[test]
    fn schedules_are_utc_five_field_cron() {
        let c = cron("30 2 * * 1");
        // 2026-01-01 is a Thursday; the next Monday 02:30 UTC is 2026-01-05.
        assert_eq!(
            next_after(&c, NOON).map(rfc3339).as_deref(),
            Some("2026-01-05T02:30:00Z")
        );
    }
}
