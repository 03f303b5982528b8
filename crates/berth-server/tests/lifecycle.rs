//! Rollouts, the reconciler and the one retire path, driven through the API
//! against the in-memory engine and berth's router in this process: no
//! Docker, so each scenario takes milliseconds to a few seconds. The same
//! paths against Docker are in the `berth` crate's integration tests.

mod common;

use axum::http::{Method, StatusCode};
use berth_server::lifecycle::reconcile;
use berth_server::rack::Rack;
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

async fn ps(t: &TestRack, app: &str) -> Vec<serde_json::Value> {
    let (status, body) = t
        .admin(Method::GET, &format!("/apps/{app}/processes"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

/// The id of the app's first process.
async fn first_process(t: &TestRack, app: &str) -> String {
    ps(t, app).await[0]["id"]
        .as_str()
        .expect("a process id")
        .to_string()
}

async fn converge(rack: &Arc<Rack>) {
    reconcile::converge(rack, &mut Default::default(), false)
        .await
        .expect("a reconcile pass");
}

#[tokio::test]
async fn a_deploy_serves_through_the_router_and_a_bad_release_keeps_the_old_one() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let good = web_app(r#"["serve"]"#, "    scale: {count: 2}\n");
    let events = t.deploy("shop", &files(&good)).await;
    assert_eq!(outcome(&events)["type"], "result", "{events:?}");
    let urls = &outcome(&events)["value"]["urls"];
    let port = berth_router::RouterHandle::http_addr(&*t.router).port();
    assert_eq!(urls, &json!([format!("http://web.shop.test:{port}/")]));
    let processes = ps(&t, "shop").await;
    assert_eq!(processes.len(), 2, "{processes:?}");
    assert!(
        processes.iter().all(|p| p["state"] == "running"),
        "{processes:?}"
    );
    let (status, body) = t.get("web.shop.test", "/").await;
    assert_eq!(status, 200, "{body}");

    // A release whose health check fails is not promoted; the old one serves on.
    let bad = web_app(
        r#"["serve", "--fail", "/"]"#,
        "    scale: {count: 2}\n    health: {path: /, attempts: 2}\n",
    );
    let events = t.deploy("shop", &files(&bad)).await;
    assert_eq!(outcome(&events)["type"], "error", "{events:?}");
    assert!(
        outcome(&events)["error"]
            .as_str()
            .unwrap_or_default()
            .contains("failed its health check"),
        "{events:?}"
    );
    let (_, releases) = t.admin(Method::GET, "/apps/shop/releases", None).await;
    assert_eq!(releases[0]["status"], "failed", "{releases}");
    assert_eq!(releases[1]["status"], "active", "{releases}");
    let after = ps(&t, "shop").await;
    let ids = |v: &[serde_json::Value]| v.iter().map(|p| p["id"].clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&after),
        ids(&processes),
        "the old processes were touched"
    );
    assert_eq!(t.get("web.shop.test", "/").await.0, 200);
}

#[tokio::test]
async fn the_reconciler_replaces_a_crashed_process_and_removes_strays() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let app = web_app(r#"["serve"]"#, "");
    t.deploy("shop", &files(&app)).await;
    let before = ps(&t, "shop").await;
    let id = before[0]["id"].as_str().expect("an id").to_string();
    let container = t.rack.container_of("shop", &id);
    t.runtime.kill(&container, 3).await.expect("a crash");
    converge(&t.rack).await;
    let after = ps(&t, "shop").await;
    assert_eq!(after[0]["id"], before[0]["id"], "replaced in place");
    assert_eq!(after[0]["restarts"], 1, "{after:?}");
    assert_eq!(after[0]["last_exit"], 3, "{after:?}");
    let route_back = eventually(Duration::from_secs(5), || async {
        t.get("web.shop.test", "/").await.0 == 200
    })
    .await;
    assert!(route_back, "the replacement was never routed");

    // A container of this rack that no row wants goes; others are not touched.
    let replacement = t.rack.container_of("shop", &id);
    let mut spec = t
        .runtime
        .container_spec(&replacement)
        .expect("the process's spec");
    spec.name = format!("berth-{}-shop-web-stray", t.rack.rack_id);
    spec.labels
        .insert("berth.process".into(), "web-stray".into());
    let stray = berth_runtime::Runtime::run_container(&t.runtime, &spec)
        .await
        .expect("a stray");
    let mut foreign = spec.clone();
    foreign.name = "not-berths".into();
    foreign.labels.clear();
    let foreign = berth_runtime::Runtime::run_container(&t.runtime, &foreign)
        .await
        .expect("a foreign container");
    converge(&t.rack).await;
    let inspect = |id: String| {
        let runtime = t.runtime.clone();
        async move {
            berth_runtime::Runtime::inspect_container(&runtime, &id)
                .await
                .expect("inspect")
        }
    };
    assert!(
        inspect(stray.id).await.is_none(),
        "the stray is still there"
    );
    assert!(
        inspect(foreign.id).await.is_some(),
        "a container without berth's labels was removed"
    );
}

#[tokio::test]
async fn a_restarted_server_adopts_what_runs_without_restarting_it() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.deploy(
        "shop",
        &files(&web_app(r#"["serve"]"#, "    scale: {count: 2}\n")),
    )
    .await;
    let containers: Vec<String> = ps(&t, "shop")
        .await
        .iter()
        .map(|p| {
            t.rack
                .container_of("shop", p["id"].as_str().unwrap_or_default())
        })
        .collect();
    let table_before = berth_router::RouterHandle::table(&*t.router);
    let restarted = t.restarted();
    reconcile::converge(&restarted, &mut Default::default(), true)
        .await
        .expect("the first pass");
    for (i, c) in containers.iter().enumerate() {
        let id = restarted
            .store
            .processes(Some("shop"))
            .expect("rows")
            .get(i)
            .map(|p| restarted.container_of("shop", &p.id));
        assert_eq!(id.as_ref(), Some(c), "a process was replaced");
    }
    let table_after = berth_router::RouterHandle::table(&*t.router);
    let backends = |t: &berth_router::RouteTable| {
        t.hosts
            .get("web.shop.test")
            .map(|r| r.backends.len())
            .unwrap_or(0)
    };
    assert_eq!(backends(&table_before), 2);
    assert_eq!(backends(&table_after), 2, "adopted processes keep serving");
}

/// Requests that take a while, started before a process is stopped, all finish.
async fn slow_requests(
    t: &TestRack,
    host: &'static str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<u16>> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let addr = berth_router::RouterHandle::http_addr(&*t.router);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                    return 0;
                };
                let request =
                    format!("GET /slow HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
                if s.write_all(request.as_bytes()).await.is_err() {
                    return 0;
                }
                let mut answer = Vec::new();
                let _ = s.read_to_end(&mut answer).await;
                String::from_utf8_lossy(&answer)
                    .get(9..12)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0)
            })
        })
        .collect();
    // Until the router has sent them all on.
    let pid = t.rack.store.processes(None).expect("rows");
    let reached = eventually(Duration::from_secs(5), || async {
        pid.iter().map(|p| t.router_inflight(&p.id)).sum::<usize>() == n
    })
    .await;
    assert!(reached, "the requests never reached the processes");
    handles
}

#[tokio::test]
async fn ps_stop_and_apps_delete_lose_no_request_that_reached_a_process() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    // Each request takes 600 ms; processes drain for up to 5 s.
    let app = web_app(r#"["serve", "--delay", "600ms"]"#, "    drain: 5\n");
    t.deploy("shop", &files(&app)).await;
    let id = first_process(&t, "shop").await;

    let inflight = slow_requests(&t, "web.shop.test", 5).await;
    let (status, body) = t
        .admin(Method::DELETE, &format!("/apps/shop/processes/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for h in inflight {
        assert_eq!(
            h.await.expect("a request"),
            200,
            "ps stop cut a request short"
        );
    }
    // Restarted in place once the reconciler runs; SIGTERM ended it (143).
    converge(&t.rack).await;
    let after = ps(&t, "shop").await;
    assert_eq!(
        (after[0]["id"].as_str(), after[0]["restarts"].as_u64()),
        (Some(id.as_str()), Some(1))
    );
    assert_eq!(after[0]["last_exit"], 143, "{after:?}");
    let back = eventually(Duration::from_secs(5), || async {
        t.get("web.shop.test", "/").await.0 == 200
    })
    .await;
    assert!(back, "the restarted process was not routed again");

    let inflight = slow_requests(&t, "web.shop.test", 5).await;
    let (status, body) = t.admin(Method::DELETE, "/apps/shop", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for h in inflight {
        assert_eq!(
            h.await.expect("a request"),
            200,
            "apps delete cut a request short"
        );
    }
    assert_eq!(t.get("web.shop.test", "/").await.0, 404);
    let left = berth_runtime::Runtime::list_containers(&t.runtime, "berth.app", "shop")
        .await
        .expect("a listing");
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_rolling_deploy_keeps_the_minimum_routed_and_scale_down_retires_the_newest() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let v1 = web_app(
        r#"["serve"]"#,
        "    scale: {count: 3}\n    deployment: {minimum: 67, maximum: 100}\n",
    );
    t.deploy("shop", &files(&v1)).await;
    let v2 = web_app(
        r#"["serve", "--port", "8080"]"#,
        "    scale: {count: 3}\n    deployment: {minimum: 67, maximum: 100}\n",
    );
    let events = t.deploy("shop", &files(&v2)).await;
    assert_eq!(outcome(&events)["type"], "result", "{events:?}");
    let steps: Vec<&str> = events.iter().filter_map(|e| e["text"].as_str()).collect();
    assert!(
        steps
            .iter()
            .any(|s| s.contains("stopping 1 old process(es) first")),
        "{steps:?}"
    );
    let processes = ps(&t, "shop").await;
    assert_eq!(processes.len(), 3);
    let release = processes[0]["release"].clone();
    assert!(
        processes.iter().all(|p| p["release"] == release),
        "{processes:?}"
    );

    let oldest = processes
        .iter()
        .filter_map(|p| p["id"].as_str())
        .min_by_key(|id| t.created(id))
        .expect("an oldest process")
        .to_string();
    let (status, body) = t
        .send(
            axum::http::Request::builder()
                .method(Method::POST)
                .uri("/apps/shop/services/web/scale")
                .header("authorization", format!("Bearer {}", t.admin))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(json!({"count": 1}).to_string()))
                .expect("a request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = ps(&t, "shop").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["id"], oldest.as_str(), "the oldest stays");
}

/// Starts a detached one-off of `shop`'s web service running `command`; its id.
async fn run_detached(t: &TestRack, command: serde_json::Value) -> String {
    let (status, started) = t
        .admin(
            Method::POST,
            "/apps/shop/run",
            Some(json!({"service": "web", "command": command})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    started["id"].as_str().expect("a one-off id").to_string()
}

async fn oneoff_containers(t: &TestRack) -> Vec<berth_runtime::ContainerInfo> {
    berth_runtime::Runtime::list_containers(&t.runtime, "berth.app", "shop")
        .await
        .expect("a listing")
        .into_iter()
        .filter(|c| c.labels.contains_key("berth.oneoff"))
        .collect()
}

#[tokio::test]
async fn ps_stop_stops_a_one_off_for_good_and_still_refuses_unknown_ids() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.deploy("shop", &files(&web_app(r#"["serve"]"#, ""))).await;
    let process = ps(&t, "shop").await[0]["id"].clone();
    let id = run_detached(&t, json!(["sleep"])).await;

    let (status, body) = t
        .admin(Method::DELETE, &format!("/apps/shop/processes/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let stopped = oneoff_containers(&t).await;
    assert!(
        matches!(
            stopped.first().map(|c| &c.state),
            Some(berth_runtime::ContainerState::Exited {
                code: Some(143),
                ..
            })
        ),
        "{stopped:?}"
    );
    // No row to keep: the reconciler removes it and reports its exit.
    converge(&t.rack).await;
    assert!(oneoff_containers(&t).await.is_empty());
    let logs = t.log_texts("/apps/shop/logs").await;
    for needle in [
        format!("one-off {id} stopped by request"),
        format!("one-off {id} exited with code 143"),
    ] {
        assert!(
            logs.iter().any(|l| l.contains(&needle)),
            "{needle}: {logs:?}"
        );
    }
    let after = ps(&t, "shop").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        (&after[0]["id"], &after[0]["restarts"]),
        (&process, &json!(0))
    );

    let (status, body) = t
        .admin(Method::DELETE, &format!("/apps/shop/processes/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("has no process {id}"))),
        "{body}"
    );
}

#[tokio::test]
async fn ps_lists_one_offs_by_kind_with_their_service_and_start_time() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.deploy("shop", &files(&web_app(r#"["serve"]"#, ""))).await;
    let run = run_detached(&t, json!(["sleep"])).await;
    // A timer's run, started as the scheduler starts it.
    let request = berth_api::RunRequest {
        service: "web".into(),
        command: vec!["sleep".into()],
        ..Default::default()
    };
    let options = berth_server::oneoff::LaunchOptions {
        id: berth_server::oneoff::new_id("web"),
        detached: false,
        timer: Some("tick"),
    };
    let timer_run = berth_server::oneoff::create(&t.rack, "shop", &request, options)
        .await
        .expect("a timer run");
    berth_server::oneoff::start(&t.rack, &timer_run)
        .await
        .expect("started");

    let listed = ps(&t, "shop").await;
    let find = |id: &str| {
        listed
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} is not listed: {listed:?}"))
    };
    let one_off = find(&run);
    assert_eq!(
        (&one_off["kind"], &one_off["service"], &one_off["timer"]),
        (&json!("run"), &json!("web"), &json!(null)),
        "{one_off}"
    );
    assert!(one_off["started"].is_string(), "{one_off}");
    let timed = find(&timer_run.id);
    assert_eq!(
        (&timed["kind"], &timed["service"], &timed["timer"]),
        (&json!("timer"), &json!("web"), &json!("tick")),
        "{timed}"
    );
    let process = listed
        .iter()
        .find(|p| p["kind"] == "service")
        .expect("the web process");
    assert_eq!(process["service"], "web", "{process}");
    assert!(process["started"].is_string(), "{process}");
}

#[tokio::test]
async fn a_one_off_killed_at_its_memory_limit_says_so() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.deploy("shop", &files(&web_app(r#"["serve"]"#, ""))).await;

    // Attached: the exit report carries it, and the app log says it.
    let request = berth_api::RunRequest {
        service: "web".into(),
        command: vec!["oom".into()],
        ..Default::default()
    };
    let (attached, _session) = berth_server::oneoff::attach(&t.rack, "shop", &request)
        .await
        .expect("an attached run");
    let attached_id = attached.launch.id.clone();
    let ended = berth_server::oneoff::finish_attached(
        &t.rack,
        attached,
        berth_server::oneoff::SessionEnd::Exited,
        None,
    )
    .await;
    assert_eq!(
        (ended.code, ended.oom_killed),
        (Some(137), true),
        "{ended:?}"
    );

    // Detached: the reconciler reports it when it removes the one-off.
    let detached_id = run_detached(&t, json!(["oom"])).await;
    let exited = eventually(Duration::from_secs(5), || async {
        oneoff_containers(&t)
            .await
            .iter()
            .all(|c| matches!(c.state, berth_runtime::ContainerState::Exited { .. }))
    })
    .await;
    assert!(exited, "the one-off did not end");
    converge(&t.rack).await;
    let logs = t.log_texts("/apps/shop/logs").await;
    for id in [attached_id, detached_id] {
        let note = format!(
            "one-off {id} exited with code 137: killed for running out of memory; raise the limit with `berth scale web --memory MIB -a shop`"
        );
        assert!(logs.contains(&note), "{note}: {logs:?}");
    }
}

/// A service without a port built from a Dockerfile whose container runs `command`.
fn worker_app(command: &str, service_extra: &str) -> Vec<(&'static str, String)> {
    let dockerfile = format!("FROM scratch\nCMD {command}\n");
    let manifest = format!(
        "services:\n  worker:\n    build: .\n    termination: {{grace: 2}}\n{service_extra}"
    );
    vec![("Dockerfile", dockerfile), ("berth.yml", manifest)]
}

#[tokio::test]
async fn a_worker_that_exits_within_its_grace_fails_the_rollout_like_a_deaf_web() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let good = worker_app(r#"["sleep"]"#, "    health: {grace: 1}\n");
    let events = t.deploy("shop", &files(&good)).await;
    assert_eq!(outcome(&events)["type"], "result", "{events:?}");
    let before = ps(&t, "shop").await;
    assert_eq!(before[0]["state"], "running", "{before:?}");

    // Up for 3 s, within the default grace of 5 s: not started, so not promoted.
    let bad = worker_app(
        r#"["sh", "-c", "echo cannot reach the queue; sleep 3; exit 42"]"#,
        "",
    );
    let events = t.deploy("shop", &files(&bad)).await;
    let failed = outcome(&events);
    assert_eq!(failed["type"], "error", "{events:?}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("exited with code 42 within 5 s of starting")),
        "{failed}"
    );
    assert!(
        failed["logs"]
            .to_string()
            .contains("cannot reach the queue"),
        "{failed}"
    );
    let (_, releases) = t.admin(Method::GET, "/apps/shop/releases", None).await;
    assert_eq!(releases[0]["status"], "failed", "{releases}");
    assert_eq!(releases[1]["status"], "active", "{releases}");
    let after = ps(&t, "shop").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        after[0]["id"], before[0]["id"],
        "the old worker was touched"
    );

    // A replacement counts as healthy again once it has stayed up its grace.
    let id = before[0]["id"].as_str().unwrap_or_default();
    t.runtime
        .kill(&t.rack.container_of("shop", id), 1)
        .await
        .expect("a crash");
    converge(&t.rack).await;
    let healthy_again = eventually(Duration::from_secs(3), || async {
        ps(&t, "shop").await[0]["state"] == "running"
    })
    .await;
    assert!(healthy_again, "{:?}", ps(&t, "shop").await);
}

#[tokio::test]
async fn repeated_crashes_wait_out_a_growing_back_off_from_the_crash() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let app = worker_app(
        r#"["crash-after", "1500ms", "42"]"#,
        "    health: {grace: 1}\n",
    );
    let events = t.deploy("shop", &files(&app)).await;
    assert_eq!(outcome(&events)["type"], "result", "{events:?}");
    let mut backoff = Default::default();
    let restarts = |t: &TestRack| t.rack.store.processes(Some("shop")).expect("rows")[0].restarts;
    let running = |t: &TestRack| {
        let id = t.rack.store.processes(Some("shop")).expect("rows")[0]
            .id
            .clone();
        t.rack.observed("shop", &id).is_some_and(|o| o.running)
    };
    // The first crash is replaced at once; the second waits 2 s from the crash,
    // although the process had been up for longer than that.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let mut second_crash = None;
    let mut down_for = None;
    while tokio::time::Instant::now() < deadline && down_for.is_none() {
        reconcile::converge(&t.rack, &mut backoff, false)
            .await
            .expect("a reconcile pass");
        match second_crash {
            None if restarts(&t) == 2 => second_crash = Some(tokio::time::Instant::now()),
            Some(at) if running(&t) => down_for = Some(at.elapsed()),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let down_for = down_for.expect("the process never came back after its second crash");
    assert!(
        down_for >= Duration::from_millis(1800),
        "restarted {down_for:?} after its second crash"
    );
    let logs = t.log_texts("/apps/shop/logs").await;
    assert!(
        logs.iter().any(|l| l.contains("restarting it in 2 s")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn a_healthy_process_is_checked_at_the_calm_steady_interval() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.deploy("shop", &files(&web_app(r#"["serve"]"#, ""))).await;
    let id = first_process(&t, "shop").await;
    let last_check = || t.rack.observed("shop", &id).and_then(|o| o.last_check);
    let first = last_check();
    assert!(
        first.is_some(),
        "the rollout's passing check is not recorded"
    );
    // The monitor looks every 500 ms; a process checked every second would be
    // checked two or three times in this while.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(
        last_check(),
        first,
        "checked again within {} s",
        berth_core::DEFAULT_HEALTH_INTERVAL
    );
}

#[tokio::test]
async fn a_process_stopped_by_request_is_no_crash_to_back_off_from() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.deploy("shop", &files(&web_app(r#"["serve"]"#, ""))).await;
    let id = first_process(&t, "shop").await;
    let mut backoff = Default::default();
    for round in 1..=2 {
        let (status, body) = t
            .admin(Method::DELETE, &format!("/apps/shop/processes/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        reconcile::converge(&t.rack, &mut backoff, false)
            .await
            .expect("a reconcile pass");
        let process = ps(&t, "shop").await[0].clone();
        assert_eq!(process["restarts"], round, "{process}");
        assert!(
            t.rack.observed("shop", &id).is_some_and(|o| o.running),
            "stop {round} was not restarted at once: {process}"
        );
    }
}

#[tokio::test]
async fn a_services_logs_hold_the_events_about_it_and_an_unknown_service_is_named() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.deploy("shop", &files(&web_app(r#"["serve"]"#, ""))).await;
    let id = first_process(&t, "shop").await;
    t.runtime
        .kill(&t.rack.container_of("shop", &id), 42)
        .await
        .expect("a crash");
    converge(&t.rack).await;
    let web = t.log_texts("/apps/shop/logs?service=web").await;
    for event in [
        format!("process {id} started for release R1"),
        format!("process {id} exited with code 42; replaced"),
    ] {
        assert!(web.contains(&event), "no {event:?} in {web:?}");
    }

    // A service gone from the release still shows the lines it left.
    t.rack
        .logs
        .append("shop", "old/old-1a2b3c", "the last words");
    assert_eq!(
        t.log_texts("/apps/shop/logs?service=old").await,
        ["the last words"]
    );
    let (status, body) = t
        .admin(Method::GET, "/apps/shop/logs?service=nope", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("app shop has no service nope")
            && error.contains("web (release R1)")
            && error.contains("old (in the log only)"),
        "{error}"
    );
}

#[tokio::test]
async fn output_is_collected_while_a_deploy_holds_the_app() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.deploy("shop", &files(&web_app(r#"["serve"]"#, ""))).await;
    let lock = t.rack.app_lock("shop");
    let _deploying = lock.lock().await;
    converge(&t.rack).await;
    let collected = eventually(Duration::from_secs(5), || async {
        t.log_texts("/apps/shop/logs?service=web")
            .await
            .iter()
            .any(|text| text.starts_with("listening on"))
    })
    .await;
    assert!(collected, "the process's output waited for the app's lock");
}

/// POSTs `body` (JSON, or none) to `path` as admin: (status, NDJSON events or the error body).
async fn post(
    t: &TestRack,
    path: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    t.admin(Method::POST, path, body).await
}

/// Uploads `files` to `path` (`/apps/{app}/deploy` or `/builds`) as admin.
async fn upload(
    t: &TestRack,
    path: &str,
    files: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    t.send(
        axum::http::Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("authorization", format!("Bearer {}", t.admin))
            .body(axum::body::Body::from(source_tar(files)))
            .expect("a request"),
    )
    .await
}

fn steps(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect()
}

fn error_of(body: &serde_json::Value) -> String {
    body["error"].as_str().unwrap_or_default().to_string()
}

async fn release_count(t: &TestRack, app: &str) -> usize {
    let (_, releases) = t
        .admin(Method::GET, &format!("/apps/{app}/releases"), None)
        .await;
    releases.as_array().map(Vec::len).unwrap_or_default()
}

#[tokio::test]
async fn a_host_another_app_or_service_serves_is_refused_on_every_path_to_a_rollout() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.create_app("blog").await;
    let shop = web_app(r#"["serve"]"#, "    domain: shop.example\n");
    assert_eq!(
        outcome(&t.deploy("shop", &files(&shop)).await)["type"],
        "result"
    );

    // Another app's domain, and another app's default host: refused before a build.
    for (domain, owner_says) in [
        ("shop.example", "a domain in its berth.yml"),
        ("web.shop.test", "its default host"),
    ] {
        let blog = web_app(r#"["serve"]"#, &format!("    domain: {domain}\n"));
        let (status, body) = upload(&t, "/apps/blog/deploy", &files(&blog)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let error = error_of(&body);
        assert!(
            error.contains(&format!("domain {domain} of service web of app blog"))
                && error.contains("service web of app shop")
                && error.contains(owner_says),
            "{error}"
        );
    }
    let (_, builds) = t.admin(Method::GET, "/apps/blog/builds", None).await;
    assert_eq!(builds, json!([]), "a refused deploy built nothing");

    // Two services of one app: a domain that is the other's default host.
    let two = [
        ("Dockerfile", "FROM scratch\nCMD [\"serve\"]\n".to_string()),
        (
            "berth.yml",
            "services:\n  web:\n    build: .\n    port: 8080\n  api:\n    build: .\n    port: 8080\n    domain: web.blog.test\n"
                .to_string(),
        ),
    ];
    let (status, body) = upload(&t, "/apps/blog/deploy", &files(&two)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(error_of(&body).contains("same app blog"), "{body}");

    // A release built with the domain is refused by promote and by rollback.
    let claiming = web_app(r#"["serve"]"#, "    domain: shop.example\n");
    let (status, body) = upload(&t, "/apps/blog/builds", &files(&claiming)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(outcome(&ndjson(&body))["type"], "result", "{body}");
    for path in [
        "/apps/blog/releases/R1/promote",
        "/apps/blog/releases/R1/rollback",
    ] {
        let (status, body) = post(&t, path, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {body}");
        assert!(error_of(&body).contains("app shop"), "{path}: {body}");
    }
    // The rollout itself checks too (env --promote, deploy --image reach it
    // without a check of their own).
    let release = t.rack.store.release("blog", "R1").expect("R1");
    let refused = berth_server::lifecycle::rollout(
        &t.rack,
        &release,
        None,
        &berth_server::progress::unobserved(),
    )
    .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("app shop")),
        "{refused:?}"
    );
    assert_eq!(t.get("shop.example", "/").await.0, 200);

    // A host of a release being rolled out counts before it is promoted.
    t.create_app("news").await;
    let news = web_app(r#"["serve"]"#, "    domain: news.example\n");
    let (_, body) = upload(&t, "/apps/news/builds", &files(&news)).await;
    assert_eq!(outcome(&ndjson(&body))["type"], "result", "{body}");
    t.rack
        .store
        .start_deployment("news", "R1")
        .expect("a deployment");
    let blog = web_app(r#"["serve"]"#, "    domain: news.example\n");
    let (status, body) = upload(&t, "/apps/blog/deploy", &files(&blog)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        error_of(&body).contains("release R1 being rolled out now"),
        "{body}"
    );

    // Hosts of its own are fine.
    let blog = web_app(r#"["serve"]"#, "    domain: blog.example\n");
    let events = t.deploy("blog", &files(&blog)).await;
    assert_eq!(outcome(&events)["type"], "result", "{events:?}");
    assert_eq!(t.get("blog.example", "/").await.0, 200);
}

#[tokio::test]
async fn env_changes_that_change_nothing_or_break_the_release_are_not_made() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let manifest = "environment:\n  - GREETING=hello\n  - SECRET_KEY\nservices:\n  web:\n    build: .\n    port: 8080\n    environment: [LEVEL=debug]\n";
    let source = [
        ("Dockerfile", "FROM scratch\nCMD [\"serve\"]\n"),
        ("berth.yml", manifest),
    ];
    let (status, body) = post(
        &t,
        "/apps/shop/env",
        Some(json!({"set": {"SECRET_KEY": "s3"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(outcome(&t.deploy("shop", &source).await)["type"], "result");
    assert_eq!(release_count(&t, "shop").await, 1);
    let version = |t: &TestRack| t.rack.store.app("shop").expect("shop").env_version;
    let before = version(&t);

    for change in [
        json!({"set": {"SECRET_KEY": "s3"}, "promote": true}),
        json!({"unset": ["NOTTHERE"]}),
        json!({"set": {"SECRET_KEY": "s3"}, "unset": ["NOTTHERE"]}),
    ] {
        let (status, body) = post(&t, "/apps/shop/env", Some(change.clone())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let events = ndjson(&body);
        assert_eq!(
            outcome(&events),
            &json!({"type": "result", "value": null}),
            "{change}"
        );
        assert!(
            steps(&events).iter().any(|s| s.starts_with("no change")),
            "{change}: {events:?}"
        );
    }
    assert_eq!(release_count(&t, "shop").await, 1, "a no-op made a release");
    assert_eq!(version(&t), before, "a no-op made an environment version");

    // Unsetting what berth.yml requires, rolled out, is refused up front.
    let (status, body) = post(
        &t,
        "/apps/shop/env",
        Some(json!({"unset": ["SECRET_KEY"], "promote": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let error = error_of(&body);
    assert!(
        error.contains("cannot unset SECRET_KEY")
            && error.contains(
                "release R1's berth.yml requires SECRET_KEY (line 3, the app-wide `environment:`)"
            ),
        "{error}"
    );
    assert_eq!(release_count(&t, "shop").await, 1);
    assert_eq!(version(&t), before);

    // The effective environment: values set, defaults, each with its source.
    let (status, env) = t.admin(Method::GET, "/apps/shop/env/effective", None).await;
    assert_eq!(status, StatusCode::OK, "{env}");
    assert_eq!(env["release"], "R1");
    assert_eq!(
        env["vars"],
        json!([
            {"key": "GREETING", "value": "hello", "source": "default"},
            {"key": "LEVEL", "value": "debug", "source": "service", "service": "web"},
            {"key": "SECRET_KEY", "value": "s3", "source": "set"},
        ])
    );
    let (_, plain) = t.admin(Method::GET, "/apps/shop/env", None).await;
    assert_eq!(
        plain,
        json!({"SECRET_KEY": "s3"}),
        "the old answer is unchanged"
    );
    // Every app with its services in one call (the console's rack page).
    let (status, apps) = t.admin(Method::GET, "/apps?services=true", None).await;
    assert_eq!(status, StatusCode::OK, "{apps}");
    assert_eq!(apps[0]["name"], "shop");
    assert_eq!(apps[0]["services"][0]["name"], "web", "{apps}");
    // The keys alone, for roles that may not read values (the console's masked list).
    let (status, keys) = t.admin(Method::GET, "/apps/shop/env/keys", None).await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    assert_eq!(
        keys,
        json!({"keys": ["GREETING", "LEVEL", "SECRET_KEY"], "missing": []})
    );
}

#[tokio::test]
async fn restart_and_scale_say_what_they_did_not_that_a_release_was_promoted() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let good = web_app(r#"["serve"]"#, "");
    assert_eq!(
        outcome(&t.deploy("shop", &files(&good)).await)["type"],
        "result"
    );
    let restart = || post(&t, "/apps/shop/restart", Some(json!({"service": "web"})));
    let (_, body) = restart().await;
    assert!(
        steps(&ndjson(&body)).contains(&"web: 1 process replaced".to_string()),
        "{body}"
    );
    let (_, body) = post(
        &t,
        "/apps/shop/services/web/scale",
        Some(json!({"memory": 64})),
    )
    .await;
    let scaled = steps(&ndjson(&body));
    assert!(
        scaled.contains(&"web: 1 process replaced".to_string()),
        "{scaled:?}"
    );
    assert!(!scaled.iter().any(|s| s.contains("promoted")), "{scaled:?}");
    post(
        &t,
        "/apps/shop/services/web/scale",
        Some(json!({"count": 0})),
    )
    .await;
    let (_, body) = restart().await;
    let events = ndjson(&body);
    assert_eq!(outcome(&events)["type"], "result", "{events:?}");
    assert!(
        steps(&events)
            .iter()
            .any(|s| s.starts_with("web has no processes to restart")),
        "{events:?}"
    );
}

#[tokio::test]
async fn promote_and_rollback_leave_the_active_and_a_failed_release_alone_unless_forced() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    let good = web_app(r#"["serve"]"#, "");
    assert_eq!(
        outcome(&t.deploy("shop", &files(&good)).await)["type"],
        "result"
    );
    let bad = web_app(
        r#"["serve", "--fail", "/"]"#,
        "    health: {path: /, attempts: 2}\n",
    );
    assert_eq!(
        outcome(&t.deploy("shop", &files(&bad)).await)["type"],
        "error"
    );
    let ids = |v: &[serde_json::Value]| v.iter().map(|p| p["id"].clone()).collect::<Vec<_>>();
    let before = ids(&ps(&t, "shop").await);

    // Promoting the active release changes nothing, unless forced.
    let (status, body) = post(&t, "/apps/shop/releases/R1/promote", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = ndjson(&body);
    assert!(
        steps(&events)
            .iter()
            .any(|s| s.contains("release R1 is already active")),
        "{events:?}"
    );
    assert_eq!(outcome(&events)["value"]["release"]["status"], "active");
    assert_eq!(
        ids(&ps(&t, "shop").await),
        before,
        "processes were replaced"
    );
    let (_, body) = post(&t, "/apps/shop/releases/R1/promote?force=true", None).await;
    let events = ndjson(&body);
    assert_eq!(outcome(&events)["type"], "result", "{events:?}");
    assert!(
        steps(&events).contains(&"web: 1 process replaced".to_string()),
        "{events:?}"
    );
    assert_ne!(ids(&ps(&t, "shop").await), before);

    // Rolling back to a release that failed says why, and wants --force.
    let (status, body) = post(&t, "/apps/shop/releases/R2/rollback", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let error = error_of(&body);
    assert!(
        error.contains("release R2 of app shop failed: ")
            && error.contains("health check")
            && error.contains("`berth releases rollback R2 --force -a shop`"),
        "{error}"
    );
    assert_eq!(
        release_count(&t, "shop").await,
        2,
        "a refused rollback made a release"
    );
}

#[tokio::test]
async fn ps_shows_what_each_process_uses_once_sampled_twice() {
    let t = TestRack::new().await;
    t.create_app("shop").await;
    t.deploy("shop", &files(&web_app(r#"["serve"]"#, ""))).await;
    let before = ps(&t, "shop").await;
    assert_eq!(before[0]["cpu"], serde_json::Value::Null, "{before:?}");
    berth_server::rack::usage::sample_once(&t.rack).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    berth_server::rack::usage::sample_once(&t.rack).await;
    let after = ps(&t, "shop").await;
    let cpu = after[0]["cpu"]
        .as_f64()
        .expect("a CPU share after two samples");
    assert!(cpu > 0.0, "{after:?}");
    assert!(
        after[0]["memory"].as_u64().is_some_and(|m| m > 0),
        "{after:?}"
    );
    assert_eq!(
        after[0]["node"],
        serde_json::Value::Null,
        "one engine: no node"
    );
}
