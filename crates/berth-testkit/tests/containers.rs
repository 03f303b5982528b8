//! Containers through the `Runtime` trait: build, run, serve, stop, events,
//! names, labels, logs, attach, exec, crashes and an unreachable engine.

mod common;

use berth_runtime::{ContainerState, LogStream, Runtime, RuntimeError, SessionOutput};
use berth_testkit::MemoryRuntime;
use common::*;
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

async fn runtime_with_network() -> MemoryRuntime {
    let rt = MemoryRuntime::new();
    rt.ensure_network(NETWORK, &labels(&[("berth.rack", "test")]))
        .await
        .unwrap();
    rt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_run_serve_stop_and_the_events_in_order() {
    let rt = runtime_with_network().await;
    let (result, lines) = build(
        &rt,
        "FROM scratch\nLABEL made=by-test\nEXPOSE 8080\nCMD [\"serve\", \"--fail\", \"/health\"]\n",
        &[],
        "shop:b1",
        labels(&[("berth.rack", "test")]),
    )
    .await;
    let image = result.unwrap();
    assert!(image.starts_with("sha256:") && image.len() == 71, "{image}");
    assert_eq!(lines[0], "Step 1/4 : FROM scratch");
    assert!(
        lines.contains(&"Successfully tagged shop:b1".to_string()),
        "{lines:?}"
    );

    let mut events = rt.events("berth.rack", "test");
    let info = rt
        .run_container(&spec("web-1", "shop:b1", &[]))
        .await
        .unwrap();
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.image, "shop:b1");
    assert_eq!(info.labels.get("made").map(String::as_str), Some("by-test"));
    let started = info.started_at.clone().expect("a start time");
    time::OffsetDateTime::parse(&started, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    let ip = info.ip.expect("an address on the network");
    let subnet = rt.network(NETWORK).unwrap().subnet;
    assert!(subnet.starts_with(&ip.to_string().rsplit_once('.').unwrap().0.to_string()));

    let response = http_get_retrying(ip, 8080, "/").await;
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    assert!(response.ends_with("web-1\n"), "{response}");
    let failing = http_get(ip, 8080, "/health").await.unwrap();
    assert!(failing.starts_with("HTTP/1.0 500"), "{failing}");

    rt.stop_container(&info.id, 5).await.unwrap();
    let stopped = rt.inspect_container(&info.id).await.unwrap().unwrap();
    assert_eq!(
        stopped.state,
        ContainerState::Exited {
            code: Some(143),
            oom_killed: false
        }
    );
    assert_eq!(stopped.ip, None);
    assert!(
        http_get(ip, 8080, "/").await.is_err(),
        "the listener is closed"
    );
    assert_eq!(
        actions_until(&mut events, &info.id, "stop").await,
        vec!["create", "start", "kill", "die", "stop"]
    );

    rt.remove_container(&info.id).await.unwrap();
    let destroy = next_event(&mut events, "destroy", &info.id).await;
    assert_eq!(
        destroy.labels.get("name").map(String::as_str),
        Some("web-1")
    );
    assert_eq!(
        destroy.labels.get("image").map(String::as_str),
        Some("shop:b1")
    );
    assert!(rt.inspect_container(&info.id).await.unwrap().is_none());
    // Gone or stopped is not an error.
    rt.stop_container(&info.id, 1).await.unwrap();
    rt.remove_container(&info.id).await.unwrap();
}

#[tokio::test]
async fn die_carries_the_exit_code_and_labels() {
    let rt = runtime_with_network().await;
    rt.add_image("app:1", &labels(&[]), &["sleep"]);
    let mut events = rt.events("berth.rack", "test");
    let info = rt.run_container(&spec("w", "app:1", &[])).await.unwrap();
    rt.stop_container(&info.id, 1).await.unwrap();
    let die = next_event(&mut events, "die", &info.id).await;
    assert_eq!(die.exit_code, Some(143));
    assert_eq!(
        die.labels.get("berth.rack").map(String::as_str),
        Some("test")
    );
    assert_eq!(die.labels.get("exitCode").map(String::as_str), Some("143"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stubborn_program_takes_the_grace_and_is_killed() {
    let rt = runtime_with_network().await;
    rt.add_image("app:1", &labels(&[]), &["stubborn", "serve"]);
    let mut events = rt.events("berth.rack", "test");
    let info = rt.run_container(&spec("w", "app:1", &[])).await.unwrap();
    let began = Instant::now();
    rt.stop_container(&info.id, 1).await.unwrap();
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(rt.wait_container(&info.id).await.unwrap(), 137);
    assert_eq!(
        actions_until(&mut events, &info.id, "stop").await,
        vec!["create", "start", "kill", "kill", "die", "stop"]
    );
}

#[tokio::test]
async fn containers_inherit_image_labels_overlaid_by_their_own() {
    let rt = runtime_with_network().await;
    rt.add_image(
        "app:1",
        &labels(&[("berth.rack", "test"), ("a", "1"), ("b", "2")]),
        &["sleep"],
    );
    let mut helper = spec("helper", "app:1", &[]);
    helper.labels = labels(&[("b", "3"), ("berth.rack", "")]);
    let id = rt.create_container(&helper).await.unwrap();
    let info = rt.inspect_container(&id).await.unwrap().unwrap();
    assert_eq!(
        info.labels,
        labels(&[("a", "1"), ("b", "3"), ("berth.rack", "")])
    );
    assert_eq!(info.state, ContainerState::Created);
    assert!(
        rt.list_containers("berth.rack", "test")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(rt.list_containers("a", "1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_name_is_reused_after_its_leftover_is_removed() {
    let rt = runtime_with_network().await;
    rt.add_image("app:1", &labels(&[]), &["sleep"]);
    let first = rt
        .run_container(&spec("web-1", "app:1", &[]))
        .await
        .unwrap();
    let second = rt
        .run_container(&spec("web-1", "app:1", &[]))
        .await
        .unwrap();
    assert_ne!(first.id, second.id);
    assert!(rt.inspect_container(&first.id).await.unwrap().is_none());
    assert_eq!(
        rt.inspect_container("web-1").await.unwrap().unwrap().id,
        second.id
    );
    assert_ne!(first.ip, None);

    match rt.run_container(&spec("x", "nope:1", &[])).await {
        Err(RuntimeError::ImageMissing(name)) => assert_eq!(name, "nope:1"),
        other => panic!("expected ImageMissing, got {other:?}"),
    }
    let mut elsewhere = spec("y", "app:1", &[]);
    elsewhere.network = "no-such-net".into();
    let err = rt
        .create_container(&elsewhere)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("network no-such-net not found"), "{err}");
    let err = rt
        .run_container(&spec("z", "app:1", &["./server"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("executable file not found"), "{err}");
    assert!(
        rt.inspect_container("z").await.unwrap().is_none(),
        "removed after the failed start"
    );
}

#[tokio::test]
async fn networks_in_use_stay_and_empty_ones_go() {
    let rt = runtime_with_network().await;
    rt.ensure_network(NETWORK, &labels(&[("other", "x")]))
        .await
        .unwrap();
    assert_eq!(
        rt.network(NETWORK).unwrap().labels,
        labels(&[("berth.rack", "test")])
    );
    rt.add_image("app:1", &labels(&[]), &["sleep"]);
    let info = rt.run_container(&spec("w", "app:1", &[])).await.unwrap();
    let err = rt.remove_network(NETWORK).await.unwrap_err().to_string();
    assert!(err.contains("has active endpoints"), "{err}");
    rt.stop_container(&info.id, 1).await.unwrap();
    rt.remove_network(NETWORK).await.unwrap();
    rt.remove_network(NETWORK).await.unwrap();
    let err = rt.start_container(&info.id).await.unwrap_err().to_string();
    assert!(err.contains("not found"), "{err}");
}

#[tokio::test]
async fn logs_follow_until_the_end_and_tail_cuts() {
    let rt = runtime_with_network().await;
    rt.add_image("app:1", &labels(&[]), &["sleep"]);
    let info = rt
        .run_container(&spec(
            "job",
            "app:1",
            &[
                "sh",
                "-c",
                "echo one; echo two >&2; sleep 100ms; echo three; exit 4",
            ],
        ))
        .await
        .unwrap();
    let lines: Vec<_> = tokio::time::timeout(
        Duration::from_secs(5),
        rt.logs(&info.id, 0).collect::<Vec<_>>(),
    )
    .await
    .expect("the stream ends when the container stops")
    .into_iter()
    .collect::<Result<_, _>>()
    .unwrap();
    let texts: Vec<(LogStream, &str)> = lines.iter().map(|l| (l.stream, l.text.as_str())).collect();
    assert_eq!(
        texts,
        vec![
            (LogStream::Stdout, "one"),
            (LogStream::Stderr, "two"),
            (LogStream::Stdout, "three")
        ]
    );
    assert_eq!(rt.wait_container(&info.id).await.unwrap(), 4);
    let tail = rt.tail_logs(&info.id, 2).await.unwrap();
    let tail: Vec<&str> = tail.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(tail, vec!["two", "three"]);
    assert!(matches!(
        rt.tail_logs("nobody", 1).await,
        Err(RuntimeError::NotFound(_))
    ));
    let missing: Vec<_> = rt.logs("nobody", 0).collect().await;
    assert!(matches!(
        missing.as_slice(),
        [Err(RuntimeError::NotFound(_))]
    ));
}

#[tokio::test]
async fn attach_before_start_sees_everything_and_feeds_stdin() {
    let rt = runtime_with_network().await;
    rt.add_image("app:1", &labels(&[]), &["sleep"]);
    let mut one_off = spec("run-1", "app:1", &["sh", "-c", "echo ready && cat"]);
    one_off.stdin = true;
    let id = rt.create_container(&one_off).await.unwrap();
    let mut session = rt.attach_container(&id, true).await.unwrap();
    rt.start_container(&id).await.unwrap();
    session.input.write_all(b"ping\n").await.unwrap();
    session.input.shutdown().await.unwrap();
    drop(session.input);
    let mut seen = Vec::new();
    while let Some(chunk) = session.output.next().await {
        match chunk.unwrap() {
            SessionOutput::Stdout(bytes) => seen.extend_from_slice(&bytes),
            SessionOutput::Stderr(bytes) => panic!("stderr: {bytes:?}"),
        }
    }
    assert_eq!(String::from_utf8_lossy(&seen), "ready\nping\n");
    assert_eq!(rt.wait_container(&id).await.unwrap(), 0);
    rt.resize_container(&id, 40, 120).await.unwrap();
    assert_eq!(rt.tty_size(&id), Some((40, 120)));
}

async fn exec_output(rt: &MemoryRuntime, id: &str, command: &[&str]) -> (String, String, i64) {
    let (exec_id, mut session) = rt.exec(id, &words(command), false, false).await.unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(chunk) = session.output.next().await {
        match chunk.unwrap() {
            SessionOutput::Stdout(b) => out.extend_from_slice(&b),
            SessionOutput::Stderr(b) => err.extend_from_slice(&b),
        }
    }
    let mut code = None;
    for _ in 0..50 {
        code = rt.exec_exit_code(&exec_id).await.unwrap();
        if code.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        code.expect("an exit code"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_the_vocabulary_with_exit_codes() {
    let rt = runtime_with_network().await;
    rt.add_image("app:1", &labels(&[]), &["sleep"]);
    let info = rt.run_container(&spec("w", "app:1", &[])).await.unwrap();
    assert_eq!(
        exec_output(&rt, &info.id, &["echo", "hi", "there"]).await,
        ("hi there\n".into(), String::new(), 0)
    );
    assert_eq!(exec_output(&rt, &info.id, &["exit", "3"]).await.2, 3);
    let (out, err, code) = exec_output(&rt, &info.id, &["nope", "x"]).await;
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("", "sh: nope: not found\n", 127)
    );
    let (env, _, _) = exec_output(&rt, &info.id, &["env"]).await;
    assert!(env.lines().any(|l| l == "PORT=8080"), "{env}");

    let (exec_id, mut session) = rt
        .exec(&info.id, &words(&["cat"]), false, true)
        .await
        .unwrap();
    session.input.write_all(b"echoed\n").await.unwrap();
    drop(session.input);
    let first = session.output.next().await.unwrap().unwrap();
    assert!(matches!(first, SessionOutput::Stdout(b) if b.as_ref() == b"echoed\n"));
    rt.resize_exec(&exec_id, 10, 20).await.unwrap();
    assert_eq!(rt.tty_size(&exec_id), Some((10, 20)));

    rt.stop_container(&info.id, 1).await.unwrap();
    let err = rt
        .exec(&info.id, &words(&["echo"]), false, false)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("is not running"), "{err}");
    assert!(rt.exec_exit_code("no-such-exec").await.is_err());
}

#[tokio::test]
async fn crashes_and_kills_end_with_their_codes() {
    let rt = runtime_with_network().await;
    rt.add_image("app:1", &labels(&[]), &["sleep"]);
    let mut events = rt.events("berth.rack", "test");
    let crashing = rt
        .run_container(&spec("c", "app:1", &["crash-after", "100ms", "1", "serve"]))
        .await
        .unwrap();
    assert_eq!(rt.wait_container(&crashing.id).await.unwrap(), 1);
    assert_eq!(
        next_event(&mut events, "die", &crashing.id).await.exit_code,
        Some(1)
    );

    let worker = rt.run_container(&spec("k", "app:1", &[])).await.unwrap();
    rt.kill(&worker.id, 42).await.unwrap();
    let listed = rt.list_containers("berth.rack", "test").await.unwrap();
    let killed = listed.iter().find(|c| c.id == worker.id).unwrap();
    assert_eq!(
        killed.state,
        ContainerState::Exited {
            code: Some(42),
            oom_killed: false
        }
    );
    assert!(
        killed.started_at.is_some(),
        "an exited container's start time is listed"
    );
    assert!(rt.kill(&worker.id, 1).await.is_err(), "not running");

    let oom = rt
        .run_container(&spec("o", "app:1", &["oom"]))
        .await
        .unwrap();
    assert_eq!(next_event(&mut events, "oom", &oom.id).await.action, "oom");
    let state = rt.inspect_container(&oom.id).await.unwrap().unwrap().state;
    assert_eq!(
        state,
        ContainerState::Exited {
            code: Some(137),
            oom_killed: true
        }
    );
}

#[tokio::test]
async fn an_unreachable_engine_fails_every_call_and_ends_event_streams() {
    let rt = runtime_with_network().await;
    rt.add_image("app:1", &labels(&[]), &["serve"]);
    let info = rt.run_container(&spec("w", "app:1", &[])).await.unwrap();
    let mut events = rt.events("berth.rack", "test");
    rt.set_unreachable(true);
    match events.next().await {
        Some(Err(RuntimeError::Connect(_))) => {}
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(events.next().await.is_none());
    assert!(matches!(rt.version().await, Err(RuntimeError::Connect(_))));
    assert!(matches!(
        rt.list_containers("berth.rack", "test").await,
        Err(RuntimeError::Connect(_))
    ));
    assert!(matches!(
        rt.events("berth.rack", "test").next().await,
        Some(Err(RuntimeError::Connect(_)))
    ));
    // What ran keeps running.
    let ip = info.ip.unwrap();
    assert!(http_get_retrying(ip, 8080, "/").await.contains("200 OK"));
    rt.set_unreachable(false);
    assert_eq!(rt.version().await.unwrap(), "memory 1 (test engine)");
    assert!(rt.endpoint().starts_with("memory://"));
    let listed = rt.list_containers("berth.rack", "test").await.unwrap();
    assert_eq!(listed[0].state, ContainerState::Running);
}

#[tokio::test]
async fn dropping_the_runtime_closes_its_listeners() {
    let rt = runtime_with_network().await;
    rt.add_image("app:1", &labels(&[]), &["serve"]);
    let info = rt.run_container(&spec("w", "app:1", &[])).await.unwrap();
    let ip = info.ip.unwrap();
    http_get_retrying(ip, 8080, "/").await;
    drop(rt);
    for _ in 0..100 {
        if http_get(ip, 8080, "/").await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{ip}:8080 still answers after the runtime is gone");
}
