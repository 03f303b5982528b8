//! Concurrency: two deploys of one app at once queue on the app's lock (the second
//! says it waits); a deploy of another app is not held up by that lock.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn deploys_of_one_app_queue_and_other_apps_go_on() {
    let mut s = Server::start();
    let a = s.create_app("conc-a");
    let b = s.create_app("conc-b");
    let src = hello_source();
    s.ok_in(src.path(), &["deploy", "-a", &b]);
    // A rollout that holds app a's lock for a few seconds: the new process is
    // slow to listen.
    let slow = hello_source();
    let manifest = std::fs::read_to_string(slow.path().join("berth.yml")).expect("berth.yml");
    write(
        slow.path(),
        "berth.yml",
        &manifest.replace("    health: /\n", "    health: {path: /, grace: 20}\n").replace(
            "    port: 8080\n",
            "    port: 8080\n    command: [\"/bin/sh\", \"-c\", \"sleep 4; exec httpd -f -p 8080 -h /www\"]\n",
        ),
    );
    let first = spawn_cli(&s, slow.path(), &["deploy", "-a", &a]);
    assert!(
        eventually(Duration::from_secs(60), || {
            s.json(&["apps", "--json"]).as_array().is_some_and(|l| {
                l.iter()
                    .any(|x| x["name"] == a.as_str() && x["status"] == "deploying")
            })
        }),
        "first deploy never took the lock"
    );
    let second = spawn_cli(&s, src.path(), &["deploy", "-a", &a]);
    // While a's lock is held, b changes and finishes.
    s.ok(&["env", "set", "OTHER=1", "--promote", "-a", &b]);
    let a_busy = s.json(&["apps", "--json"]).as_array().is_some_and(|l| {
        l.iter()
            .any(|x| x["name"] == a.as_str() && x["status"] == "deploying")
    });
    assert!(
        a_busy,
        "app b's change finished while app a was still deploying"
    );
    let first = first.wait_with_output().expect("first deploy");
    let second = second.wait_with_output().expect("second deploy");
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(first.status.success(), "first: {}", text(&first));
    assert!(second.status.success(), "second: {}", text(&second));
    assert!(
        text(&second).contains(&format!("waiting for another change to app {a} to finish")),
        "second deploy says it waits: {}",
        text(&second)
    );
    let releases = s.json(&["releases", "--json", "-a", &a]);
    let list = releases.as_array().expect("releases");
    assert_eq!(list.len(), 2, "{releases:#}");
    assert_eq!(list.iter().filter(|r| r["status"] == "active").count(), 1);
    assert!(eventually(Duration::from_secs(30), || s
        .get(&format!("web.{a}.localhost"), "/")
        .0
        == 200));

    // Deleting the app while a deploy holds its lock says that it waits, then deletes.
    let third = spawn_cli(&s, slow.path(), &["deploy", "-a", &a]);
    let deploying = || {
        s.json(&["apps", "--json"]).as_array().is_some_and(|l| {
            l.iter()
                .any(|x| x["name"] == a.as_str() && x["status"] == "deploying")
        })
    };
    assert!(
        eventually(Duration::from_secs(60), deploying),
        "third deploy never took the lock"
    );
    let deleted = s.cli(&["apps", "delete", &a]);
    assert!(deleted.status.success(), "{}", text(&deleted));
    assert!(
        text(&deleted).contains(&format!("waiting for another change to app {a}")),
        "delete says it waits: {}",
        text(&deleted)
    );
    let _ = third.wait_with_output();
    let apps = s.json(&["apps", "--json"]);
    assert!(
        apps.as_array()
            .is_some_and(|l| l.iter().all(|x| x["name"] != a.as_str())),
        "{apps:#}"
    );
}
