//! One-off processes (`berth run`), `berth exec` and timers, through the CLI
//! (stdin not a terminal) and through the WebSocket protocol a terminal uses,
//! against the real engine.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Containers of `app` that are one-off processes.
fn oneoff_containers(app: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=berth.app={app}"),
        "--filter",
        "label=berth.oneoff",
    ])
    .split_whitespace()
    .map(String::from)
    .collect()
}

fn deployed(
    server: &mut Server,
    prefix: &str,
    manifest_extra: &str,
) -> (String, tempfile::TempDir) {
    let app = server.create_app(prefix);
    let src = hello_source();
    if !manifest_extra.is_empty() {
        let manifest = std::fs::read_to_string(src.path().join("berth.yml")).expect("berth.yml");
        write(
            src.path(),
            "berth.yml",
            &format!("{manifest}\n{manifest_extra}"),
        );
    }
    server.ok_in(src.path(), &["deploy", ".", "-a", &app]);
    (app, src)
}

/// Runs the CLI with `input` piped to its stdin.
fn cli_with_stdin(server: &Server, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BERTH)
        .args(args)
        .env("BERTH_HOST", format!("http://127.0.0.1:{}", server.api))
        .env("BERTH_TOKEN", &server.token)
        .env("HOME", server.home.path())
        .env("XDG_CONFIG_HOME", server.home.path().join("config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run berth CLI");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for berth CLI")
}

#[test]
fn run_streams_output_forwards_exit_code_and_cleans_up() {
    let mut server = Server::start();
    // A memory limit, for the one-off that runs out of memory at the end.
    let (app, _src) = deployed(&mut server, "run", "    scale: {memory: 16}\n");

    // Output streamed apart (stdout, stderr), env as a process gets it, exit code forwarded.
    let out = server.cli(&[
        "run",
        "web",
        "-a",
        &app,
        "--",
        "sh",
        "-c",
        "env; echo to-stderr >&2; exit 3",
    ]);
    let (so, se) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "stdout:\n{so}\nstderr:\n{se}");
    for needle in [
        "GREETING=hello",
        "BERTH_APP=",
        "BERTH_SERVICE=web",
        "BERTH_RELEASE=R1",
        "BERTH_PROCESS=web-run-",
        "PORT=8080",
    ] {
        assert!(so.contains(needle), "{needle} missing from:\n{so}");
    }
    assert!(se.contains("to-stderr"), "{se}");
    assert!(!so.contains("to-stderr"), "{so}");
    assert!(
        oneoff_containers(&app).is_empty(),
        "the one-off's container was left behind"
    );
    // It never took part in the service: still one web process, still serving.
    let ps = server.json(&["ps", "-a", &app, "--json"]);
    assert_eq!(ps.as_array().map(Vec::len), Some(1), "{ps}");
    assert_eq!(server.get(&format!("web.{app}.localhost"), "/").0, 200);

    // Piped stdin reaches the process.
    let out = cli_with_stdin(
        &server,
        &[
            "run",
            "web",
            "-a",
            &app,
            "--",
            "sh",
            "-c",
            "read line; echo got:$line",
        ],
        "piped-in\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("got:piped-in"), "{}", stdout(&out));

    // A service that is not there is named, and nothing is started.
    let out = server.cli(&["run", "wbe", "-a", &app, "--", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no service wbe"), "{}", stderr(&out));

    // --release picks the release; one that does not exist is named.
    let out = server.cli(&[
        "run",
        "web",
        "-a",
        &app,
        "--release",
        "R1",
        "--",
        "sh",
        "-c",
        "echo rel-$BERTH_RELEASE",
    ]);
    assert!(stdout(&out).contains("rel-R1"), "{}", stderr(&out));
    let out = server.cli(&["run", "web", "-a", &app, "--release", "R9", "--", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("release R9"), "{}", stderr(&out));

    // --timeout stops it, says so, and fails.
    let started = Instant::now();
    let out = server.cli(&[
        "run",
        "web",
        "-a",
        &app,
        "--timeout",
        "2",
        "--",
        "sleep",
        "60",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "--timeout 2 did not stop `sleep 60`"
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("timed out after 2 s"),
        "{}",
        stderr(&out)
    );
    assert!(oneoff_containers(&app).is_empty());
    let logs = server.ok(&["logs", "-a", &app]);
    assert!(logs.contains("exited with code 3"), "{logs}");
    assert!(logs.contains("timed out"), "{logs}");

    // Killed at its memory limit: said on stderr and in the app log, with the fix.
    let out = server.cli(&[
        "run",
        "web",
        "-a",
        &app,
        "--",
        "sh",
        "-c",
        "x=a; while true; do x=$x$x$x$x; done",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    for needle in [
        "killed for running out of memory",
        "berth scale web --memory",
    ] {
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
    }
    let logs = server.ok(&["logs", "-a", &app]);
    assert!(
        logs.contains("exited with code 137: killed for running out of memory"),
        "{logs}"
    );

    // A closed stdout (`| head -1`) ends every command quietly: status 0, nothing
    // on stderr (no error, panic or backtrace).
    for args in [
        vec!["completions", "bash"],
        vec!["apps"],
        vec!["apps", "--json"],
        vec!["logs", "-a", &app],
        vec!["run", "web", "-a", &app, "--", "seq", "1", "100000"],
    ] {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let out = server
            .cli_command(std::path::Path::new("."), &args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run berth");
        assert_eq!(stderr(&out), "", "berth {args:?}: {}", out.status);
        assert!(out.status.success(), "berth {args:?}: {}", out.status);
    }
    assert!(
        eventually(Duration::from_secs(20), || oneoff_containers(&app)
            .is_empty()),
        "the one-off cut off by the closed pipe was left behind"
    );
}

#[test]
fn detached_run_is_listed_then_removed_and_exec_reaches_a_process() {
    let mut server = Server::start();
    let (app, _src) = deployed(&mut server, "det", "");

    let id = server
        .ok(&[
            "run",
            "web",
            "-a",
            &app,
            "--detach",
            "--",
            "sh",
            "-c",
            "echo detached-out; sleep 3",
        ])
        .trim()
        .to_string();
    assert!(id.starts_with("web-run-"), "{id}");
    assert_eq!(oneoff_containers(&app).len(), 1);
    let ps = server.ok(&["ps", "-a", &app]);
    assert!(ps.contains(&id) && ps.contains("web (run)"), "{ps}");
    let listed = server.json(&["ps", "-a", &app, "--json"]);
    let one_off = listed
        .as_array()
        .and_then(|l| l.iter().find(|p| p["id"] == id.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (&one_off["kind"], &one_off["service"]),
        (&serde_json::json!("run"), &serde_json::json!("web")),
        "{listed}"
    );
    assert!(one_off["started"].is_string(), "{listed}");
    // Survives a reconciler pass while it runs (it has no process row).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(oneoff_containers(&app).len(), 1, "removed while running");
    assert!(
        eventually(Duration::from_secs(20), || oneoff_containers(&app)
            .is_empty()),
        "the finished detached one-off was not removed"
    );
    let logs = server.ok(&["logs", "-a", &app]);
    assert!(logs.contains("detached-out"), "{logs}");
    assert!(
        logs.contains(&format!("one-off {id} exited with code 0")),
        "{logs}"
    );

    // A detached one-off outlives a server restart, and is cleaned up after it ends.
    let id = server
        .ok(&["run", "web", "-a", &app, "-d", "--", "sh", "-c", "sleep 6"])
        .trim()
        .to_string();
    server.stop();
    server.spawn();
    let ps = server.ok(&["ps", "-a", &app]);
    assert!(
        ps.contains(&id),
        "the one-off did not survive the restart:\n{ps}"
    );
    assert!(
        eventually(Duration::from_secs(20), || oneoff_containers(&app)
            .is_empty()),
        "the one-off was not removed after the restart"
    );

    // A detached one-off past its --timeout is stopped by the reconciler.
    server.ok(&[
        "run",
        "web",
        "-a",
        &app,
        "-d",
        "--timeout",
        "1",
        "--",
        "sleep",
        "60",
    ]);
    assert!(
        eventually(Duration::from_secs(20), || oneoff_containers(&app)
            .is_empty()),
        "the detached one-off outlived its timeout"
    );

    // `ps stop` stops a one-off for good: it is removed, not replaced.
    let id = server
        .ok(&[
            "run",
            "web",
            "-a",
            &app,
            "-d",
            "--",
            "sh",
            "-c",
            "while true; do sleep 1; done",
        ])
        .trim()
        .to_string();
    server.ok(&["ps", "stop", &id, "-a", &app]);
    assert!(
        eventually(Duration::from_secs(20), || oneoff_containers(&app)
            .is_empty()),
        "the stopped one-off was not removed"
    );
    let logs = server.ok(&["logs", "-a", &app]);
    assert!(
        logs.contains(&format!("one-off {id} stopped by request")),
        "{logs}"
    );

    // exec: output and exit code of a command inside a running process.
    let ps = server.json(&["ps", "-a", &app, "--json"]);
    let process = ps[0]["id"].as_str().expect("a process id").to_string();
    let out = server.cli(&[
        "exec",
        &process,
        "-a",
        &app,
        "--",
        "sh",
        "-c",
        "echo inside-$BERTH_PROCESS; echo oops >&2; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("inside-{process}")),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("oops"));
    let out = server.cli(&["exec", "web-nope", "-a", &app, "--", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
}

/// The protocol a terminal uses: TTY, stdin forwarded, size set and changed.
#[test]
fn tty_sessions_over_websocket() {
    let mut server = Server::start();
    let (app, _src) = deployed(&mut server, "tty", "");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client =
        berth_client::Client::new(&format!("http://127.0.0.1:{}", server.api), &server.token)
            .expect("client");
    rt.block_on(async {
        let req = berth_api::RunRequest {
            service: "web".into(),
            command: vec![
                "sh".into(),
                "-c".into(),
                "read x; echo got-$x; stty size; [ -t 0 ] && echo is-a-tty".into(),
            ],
            tty: true,
            stdin: true,
            rows: Some(33),
            cols: Some(111),
            ..Default::default()
        };
        let session = client.open_run(&app, &req).await.expect("open run");
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let mut out = Vec::new();
        let outcome = session
            .drive(Some(&b"abc\n"[..]), &mut out, tokio::io::sink(), rx)
            .await
            .expect("drive run");
        let text = String::from_utf8_lossy(&out);
        assert_eq!(outcome.code, Some(0), "{text}");
        assert!(text.contains("33 111"), "{text}");
        assert!(text.contains("got-abc"), "{text}");
        assert!(text.contains("is-a-tty"), "{text}");

        let ps = client.processes(&app).await.expect("ps");
        let req = berth_api::ExecRequest {
            command: vec![
                "sh".into(),
                "-c".into(),
                "sleep 1; stty size; exit 7".into(),
            ],
            tty: true,
            stdin: false,
            rows: Some(20),
            cols: Some(70),
        };
        let session = client
            .open_exec(&app, &ps[0].id, &req)
            .await
            .expect("open exec");
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send((44, 99)).await.expect("resize");
        let mut out = Vec::new();
        let outcome = session
            .drive(None::<&[u8]>, &mut out, tokio::io::sink(), rx)
            .await
            .expect("drive exec");
        let text = String::from_utf8_lossy(&out);
        assert_eq!(outcome.code, Some(7), "{text}");
        assert!(text.contains("44 99"), "resize not applied: {text}");
    });
    assert!(oneoff_containers(&app).is_empty());

    // The CLI itself on a real pseudo-terminal (util-linux `script`): the
    // process gets a TTY and the CLI still exits with its code.
    let command =
        format!("{BERTH} run web -a {app} -- sh -c '[ -t 0 ] && [ -t 1 ] && echo tty-yes; exit 6'");
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("BERTH_HOST", format!("http://127.0.0.1:{}", server.api))
        .env("BERTH_TOKEN", &server.token)
        .env("HOME", server.home.path())
        .env("XDG_CONFIG_HOME", server.home.path().join("config"))
        .stdin(Stdio::null())
        .output()
        .expect("run script(1); apt-get install util-linux");
    assert!(
        stdout(&out).contains("tty-yes"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(oneoff_containers(&app).is_empty());
}

/// One real timer run: waits for the next minute boundary (up to a minute).
#[test]
fn timer_runs_on_schedule_and_records_its_exit() {
    let mut server = Server::start();
    let timers = "timers:\n  tick:\n    schedule: \"* * * * *\"\n    service: web\n    command: [sh, -c, \"echo tick-ran; exit 5\"]\n";
    let (app, _src) = deployed(&mut server, "tmr", timers);
    let table = server.ok(&["timers", "-a", &app]);
    assert!(
        table.contains("NEXT-RUN") && table.contains("tick") && table.contains("* * * * *"),
        "{table}"
    );
    assert!(
        table.contains("sh -c 'echo tick-ran; exit 5'"),
        "the command is quoted as a shell reads it: {table}"
    );
    let ran = eventually(Duration::from_secs(80), || {
        let t = server.json(&["timers", "-a", &app, "--json"]);
        t[0]["exit_code"] == 5 && t[0]["last_run"].is_string()
    });
    let logs = server.ok(&["logs", "-a", &app]);
    assert!(ran, "the timer did not run within a minute:\n{logs}");
    assert!(logs.contains("timer/tick tick-ran"), "{logs}");
    assert!(logs.contains("timer tick: started"), "{logs}");
    assert!(logs.contains("exited with code 5"), "{logs}");
    assert!(
        eventually(Duration::from_secs(10), || oneoff_containers(&app)
            .is_empty()),
        "the timer's container was left behind"
    );
    let t = server.json(&["timers", "-a", &app, "--json"]);
    assert!(t[0]["next_run"].is_string(), "{t}");
}
