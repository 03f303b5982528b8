//! Showing long work as it happens: the server's event stream, and upload progress.

use crate::output;
use anyhow::{Result, bail};
use berth_api::{BuildResult, DeployResult, Event, Release, ResourceUpgraded};
use berth_client::EventStream;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// The work failed on the server; shown with the failing process's last log lines.
#[derive(Debug)]
struct WorkFailed {
    error: String,
    logs: Vec<String>,
}

impl std::fmt::Display for WorkFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)?;
        if !self.logs.is_empty() {
            write!(f, "\nlast lines of the failing process's log:")?;
            for line in &self.logs {
                write!(f, "\n    {line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for WorkFailed {}

/// Prints events as they come (`Build` lines as they are, `Step` lines after `==> `)
/// until the `result`, whose value it returns; an `error` event becomes [`WorkFailed`].
async fn follow(mut events: EventStream) -> Result<serde_json::Value> {
    while let Some(event) = events.next().await {
        match event? {
            Event::Build { text } => println!("{text}"),
            Event::Step { text } => println!("==> {text}"),
            Event::Error { error, logs } => return Err(WorkFailed { error, logs }.into()),
            Event::Result { value } => return Ok(value),
        }
    }
    bail!(
        "the server ended the response before the work finished; `berth releases` and `berth ps` show where it got to"
    )
}

/// Follows a stream of long work to its end and prints the outcome.
pub async fn finish(events: EventStream) -> Result<()> {
    let value = follow(events).await?;
    print_result(&value);
    Ok(())
}

/// Runs an upload, showing its progress: `send` starts it with the callback for the
/// bytes sent; the bar goes once the server answers, or the upload fails.
pub async fn upload<F, Fut>(total: u64, send: F) -> Result<EventStream>
where
    F: FnOnce(Box<dyn FnMut(u64) + Send>) -> Fut,
    Fut: Future<Output = Result<EventStream, berth_client::Error>>,
{
    let upload = Upload::start(total);
    match send(Box::new(upload.callback())).await {
        Ok(events) => {
            upload.finish();
            Ok(events)
        }
        Err(e) => {
            upload.abandon();
            Err(e.into())
        }
    }
}

/// Prints the outcome of a stream's `result`, whatever work it ended.
fn print_result(value: &serde_json::Value) {
    if let Ok(r) = serde_json::from_value::<DeployResult>(value.clone()) {
        print_deploy(&r);
    } else if let Ok(r) = serde_json::from_value::<BuildResult>(value.clone()) {
        println!(
            "build {} {}; release {} created; roll it out with `berth releases promote {}`",
            r.build.id, r.build.status, r.release.id, r.release.id
        );
    } else if let Ok(r) = serde_json::from_value::<Release>(value.clone()) {
        print_release(&r);
    } else if let Ok(r) = serde_json::from_value::<ResourceUpgraded>(value.clone()) {
        println!(
            "resource {} runs image {} (was {}); the backup taken first: {} (on the server); berth.yml should name `image: {}` from now on",
            r.name, r.image, r.previous, r.backup, r.image
        );
    }
}

fn print_deploy(r: &DeployResult) {
    println!("release {} is {}", r.release.id, r.release.status);
    for url in &r.urls {
        println!("  {url}");
    }
}

fn print_release(r: &Release) {
    println!("release {} is {}", r.id, r.status);
}

/// Upload progress: a bar when stderr is a terminal, plain lines otherwise.
struct Upload {
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
}

impl Upload {
    fn start(total: u64) -> Upload {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "==> uploading [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        if bar.is_none() {
            eprintln!("==> uploading {}", output::bytes(total));
        }
        Upload {
            bar,
            total,
            started: Instant::now(),
        }
    }

    /// The callback for the client: bytes sent so far.
    fn callback(&self) -> impl FnMut(u64) + Send + 'static {
        let bar = self.bar.clone();
        move |sent| {
            if let Some(bar) = &bar {
                bar.set_position(sent);
            }
        }
    }

    /// The server answered: the upload is over.
    fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let secs = self.started.elapsed().as_secs_f64();
        eprintln!("==> uploaded {} in {secs:.1}s", output::bytes(self.total));
    }

    /// The upload failed; take the bar away so the error is readable.
    fn abandon(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_show_logs() {
        let f = WorkFailed {
            error: "web-1 failed its health check".into(),
            logs: vec!["boot".into(), "panic".into()],
        };
        assert_eq!(
            f.to_string(),
            "web-1 failed its health check\nlast lines of the failing process's log:\n    boot\n    panic"
        );
        let f = WorkFailed {
            error: "x".into(),
            logs: vec![],
        };
        assert_eq!(f.to_string(), "x");
    }

    #[tokio::test]
    async fn follow_stops_at_result_or_error() {
        let ok = vec![
            Ok(Event::Step { text: "a".into() }),
            Ok(Event::Result {
                value: serde_json::json!({"x": 1}),
            }),
        ];
        let v = follow(futures_util::stream::iter(ok).boxed()).await.ok();
        assert_eq!(v, Some(serde_json::json!({"x": 1})));

        let failed = vec![Ok(Event::Error {
            error: "boom".into(),
            logs: vec![],
        })];
        let e = follow(futures_util::stream::iter(failed).boxed())
            .await
            .err();
        assert_eq!(e.map(|e| e.to_string()).as_deref(), Some("boom"));

        let cut = vec![Ok(Event::Build {
            text: "step 1".into(),
        })];
        assert!(
            follow(futures_util::stream::iter(cut).boxed())
                .await
                .is_err()
        );
    }
}
