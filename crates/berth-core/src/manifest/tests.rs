//! `berth.yml` end to end: text in, a `Manifest` or a positioned error out.

use super::{MAX_MANIFEST_BYTES, ManifestError, check_cron, parse_manifest};
use crate::model::{
    BuildSpec, Deployment, EnvRequirement, Health, ImageSource, Scale, Service, Termination, Timer,
    VolumeMount,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const EXAMPLE: &str = r#"app: shop
environment:            # app-wide; KEY must be set before deploy, KEY=v gives a default
  - DATABASE_URL
  - LOG_LEVEL=info
services:
  web:
    build: .            # or {path: ., dockerfile: Dockerfile, args: {K: V}}; or `image: NAME`
    command: ["./server", "--port", "8080"]   # string or list; default: the image's
    port: 8080          # HTTP port inside the container; no port = not routed
    domain: shop.example.com                  # string or list
    environment: [PORT=8080]
    health: /health     # or {path: /health, grace: 5, interval: 1, timeout: 3, attempts: 3}
    scale: {count: 2, memory: 256, cpu: 0.5}  # memory in MiB, cpu in cores
    deployment: {minimum: 100, maximum: 200}
    termination: {grace: 30}
    drain: 10
    volumes: [data:/var/lib/data]
    singleton: false
  worker:
    build: {path: ./workers/../worker/, dockerfile: docker/Dockerfile.worker, args: {VERSION: 1.10, DEBUG: true}}
    command: ./worker --queue 'high prio' "--name=a \"b\""
    environment:
      - SECRET
  redis:
    image: redis:7
    health: {path: /ping, grace: 5, interval: 2, timeout: 3, attempts: 4}
    port: 6379
    domain: [a.example.com, b.example.com]
    scale: {count: 1, cpu: 2}
    singleton: true
    timeout: 120
timers:
  cleanup: {schedule: "*/5 * * * *", service: web, command: "./cleanup"}
  nightly:
    schedule: 0 3 * jan-mar,DEC mon-fri
    service: worker
    command: [./report, --all]
"#;

#[test]
fn a_service_without_a_port_counts_as_healthy_after_an_uptime_grace() {
    let m = parse_manifest(
        "berth.yml",
        "services:\n  a: {image: x}\n  b: {image: x, health: {grace: 12}}\n  web: {image: x, port: 80}\n",
    )
    .unwrap();
    assert_eq!(m.services["a"].health_grace(), crate::DEFAULT_UPTIME_GRACE);
    assert_eq!(m.services["b"].health_grace(), 12);
    assert_eq!(
        m.services["web"].health_grace(),
        0,
        "HTTP checks start at once"
    );
    assert_eq!(
        m.services["web"].health.interval,
        crate::DEFAULT_HEALTH_INTERVAL
    );
}

#[test]
fn tls_redirect_is_a_service_option() {
    let text = "services:\n  web:\n    image: x\n    port: 80\n    tls: {redirect: true}\n";
    let m = parse_manifest("berth.yml", text).expect("valid manifest");
    assert!(m.services["web"].tls.redirect);
    let m = parse_manifest("berth.yml", "services:\n  web: {image: x}\n").expect("valid");
    assert!(!m.services["web"].tls.redirect, "off unless asked for");
    let e = err("services:\n  web:\n    image: x\n    tls: {redirekt: true}\n");
    assert!(e.to_string().contains("redirekt"), "{e}");
}

#[test]
fn hsts_is_on_or_a_mapping() {
    let hsts = |tls: &str| {
        let text = format!("services:\n  web:\n    image: x\n    port: 80\n    tls: {tls}\n");
        parse_manifest("berth.yml", &text).map(|m| m.services["web"].tls.hsts.clone())
    };
    let year = crate::Hsts {
        max_age: 31_536_000,
        include_subdomains: false,
    };
    assert_eq!(hsts("{hsts: true}").ok(), Some(Some(year)));
    assert_eq!(hsts("{hsts: false}").ok(), Some(None));
    let full = hsts("{hsts: {max_age: 600, include_subdomains: true}}")
        .expect("valid")
        .expect("on");
    assert_eq!(full.header_value(), "max-age=600; includeSubDomains");
    let e = hsts("{hsts: {max_age: -1}}").expect_err("negative");
    assert!(e.to_string().contains("tls.hsts.max_age"), "{e}");
    let e = hsts("{hsts: {maxage: 1}}").expect_err("misspelt");
    assert!(e.to_string().contains("maxage"), "{e}");
}

#[test]
fn placement_is_a_list_of_swarm_constraints() {
    let text = "services:\n  web:\n    image: x\n    placement: [node.labels.disk == ssd, 'node.role!=manager']\n";
    let m = parse_manifest("berth.yml", text).expect("valid manifest");
    assert_eq!(
        m.services["web"].placement,
        strings(&["node.labels.disk==ssd", "node.role!=manager"])
    );
    let m = parse_manifest(
        "berth.yml",
        "services:\n  web: {image: x, placement: node.hostname==a}\n",
    )
    .expect("one constraint as a string");
    assert_eq!(m.services["web"].placement, strings(&["node.hostname==a"]));
    assert_err(
        "services:\n  web:\n    image: x\n    placement: [disk=ssd]\n",
        "disk=ssd",
        &[
            "services.web.placement",
            "compares nothing",
            "node.labels.disk==ssd",
        ],
    );
    assert_err(
        "services:\n  web:\n    image: x\n    placement: [node.colour==red]\n",
        "node.colour",
        &["not a node attribute", "node.labels.KEY"],
    );
    assert_err(
        "services:\n  web:\n    image: x\n    placement: [node.role==boss]\n",
        "node.role==boss",
        &["`manager` or `worker`"],
    );
}

fn err(text: &str) -> ManifestError {
    match parse_manifest("berth.yml", text) {
        Ok(m) => panic!("expected an error, parsed {m:#?}"),
        Err(e) => e,
    }
}

/// 1-based line and (character) column of the only occurrence of `needle` in `text`.
fn position_of(text: &str, needle: &str) -> (usize, usize) {
    let found: Vec<usize> = text.match_indices(needle).map(|(i, _)| i).collect();
    assert_eq!(
        found.len(),
        1,
        "{needle:?} must occur exactly once in {text:?}"
    );
    let before = &text[..found[0]];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Asserts the error points at the start of `needle` (unique in `text`) and
/// that its message contains each of `parts`.
fn assert_err(text: &str, needle: &str, parts: &[&str]) {
    let (line, column) = position_of(text, needle);
    let e = err(text);
    assert_eq!(
        (e.line, e.column),
        (line, column),
        "should point at {needle:?}: {e}"
    );
    for p in parts {
        assert!(e.message.contains(p), "{e}\n  does not contain {p:?}");
    }
    assert!(
        e.to_string()
            .starts_with(&format!("berth.yml:{line}:{column}: ")),
        "{e}"
    );
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn full_example_parses_to_the_model() {
    let m = parse_manifest("berth.yml", EXAMPLE).unwrap();
    assert_eq!(m.app.as_deref(), Some("shop"));
    assert_eq!(
        m.environment,
        vec![
            EnvRequirement {
                key: "DATABASE_URL".into(),
                default: None
            },
            EnvRequirement {
                key: "LOG_LEVEL".into(),
                default: Some("info".into())
            },
        ]
    );
    assert_eq!(
        m.services.keys().collect::<Vec<_>>(),
        ["redis", "web", "worker"]
    );

    let web = &m.services["web"];
    let expected_web = Service {
        source: ImageSource::Build(BuildSpec {
            path: ".".into(),
            dockerfile: "Dockerfile".into(),
            args: BTreeMap::new(),
        }),
        command: Some(strings(&["./server", "--port", "8080"])),
        port: Some(8080),
        domains: strings(&["shop.example.com"]),
        environment: vec![EnvRequirement {
            key: "PORT".into(),
            default: Some("8080".into()),
        }],
        health: Health {
            path: "/health".into(),
            ..Health::default()
        },
        scale: Scale {
            count: 2,
            memory: Some(256),
            cpu: Some(0.5),
        },
        deployment: Deployment {
            minimum: 100,
            maximum: 200,
        },
        termination: Termination { grace: 30 },
        drain: 10,
        volumes: vec![VolumeMount {
            volume: "data".into(),
            path: "/var/lib/data".into(),
        }],
        singleton: false,
        timeout: 60,
        tls: Default::default(),
        placement: Vec::new(),
        resources: Vec::new(),
        resource: None,
    };
    assert_eq!(web, &expected_web);

    let worker = &m.services["worker"];
    let ImageSource::Build(b) = &worker.source else {
        panic!("{worker:?}")
    };
    assert_eq!(b.path, "worker");
    assert_eq!(b.dockerfile, "docker/Dockerfile.worker");
    assert_eq!(b.args["VERSION"], "1.10", "numbers keep their spelling");
    assert_eq!(b.args["DEBUG"], "true");
    assert_eq!(
        worker.command,
        Some(strings(&[
            "./worker",
            "--queue",
            "high prio",
            "--name=a \"b\""
        ]))
    );
    assert_eq!(worker.port, None);
    assert_eq!(worker.health, Health::default());
    assert_eq!(worker.scale, Scale::default());
    assert_eq!(worker.deployment, Deployment::default());
    assert_eq!(worker.termination, Termination::default());
    assert_eq!(
        (worker.drain, worker.timeout, worker.singleton),
        (10, 60, false)
    );

    let redis = &m.services["redis"];
    assert_eq!(redis.source, ImageSource::Image("redis:7".into()));
    assert_eq!(
        redis.health,
        Health {
            path: "/ping".into(),
            grace: 5,
            interval: 2,
            timeout: 3,
            attempts: 4
        }
    );
    assert_eq!(redis.domains, strings(&["a.example.com", "b.example.com"]));
    assert_eq!(
        redis.scale,
        Scale {
            count: 1,
            memory: None,
            cpu: Some(2.0)
        }
    );
    assert!(redis.singleton);
    assert_eq!(redis.timeout, 120);

    assert_eq!(
        m.timers["cleanup"],
        Timer {
            schedule: "*/5 * * * *".into(),
            service: "web".into(),
            command: strings(&["./cleanup"])
        }
    );
    assert_eq!(m.timers["nightly"].service, "worker");
    assert_eq!(m.timers["nightly"].command, strings(&["./report", "--all"]));
}

#[test]
fn minimal_manifest_and_anchors() {
    let m = parse_manifest("berth.yml", "services:\n  web:\n    image: nginx\n").unwrap();
    assert_eq!(m.app, None);
    assert!(m.environment.is_empty() && m.timers.is_empty());
    let text = "services:\n  a: &base\n    image: nginx\n    port: 80\n  b:\n    <<: *base\n    port: 81\n  c: *base\n";
    let m = parse_manifest("berth.yml", text).unwrap();
    assert_eq!(m.services["b"].port, Some(81));
    assert_eq!(m.services["c"].source, ImageSource::Image("nginx".into()));
    // Empty sections are allowed.
    let m = parse_manifest(
        "berth.yml",
        "environment:\ntimers:\nservices:\n  w: {image: x, volumes: }\n",
    );
    assert!(m.is_ok(), "{m:?}");
    // A quoted port is accepted.
    let m = parse_manifest("b", "services:\n  web: {image: x, port: \"8080\"}\n").unwrap();
    assert_eq!(m.services["web"].port, Some(8080));
}

#[test]
fn unknown_keys() {
    assert_err(
        "services:\n  web:\n    image: x\n    prot: 80\n",
        "prot",
        &[
            "unknown key `prot` in `services.web`",
            "did you mean `port`?",
        ],
    );
    assert_err(
        "servics:\n  web: {image: x}\n",
        "servics",
        &["did you mean `services`?"],
    );
    assert_err(
        "services:\n  web: {image: x}\nfrobnicate: 1\n",
        "frobnicate",
        &[
            "unknown key `frobnicate` at the top level",
            "`app`, `environment`, `resources`, `services`, `timers`",
        ],
    );
    assert_err(
        "web:\n  build: .\n",
        "web",
        &["unknown key `web`", "services go under `services:`"],
    );
    assert_err(
        "services:\n  web:\n    image: x\n    port: 80\n    health: {path: /, intervl: 1}\n",
        "intervl",
        &["`services.web.health`", "did you mean `interval`?"],
    );
    assert_err(
        "services:\n  web:\n    build: {path: ., dockerfiel: D}\n",
        "dockerfiel",
        &["did you mean `dockerfile`?"],
    );
    assert_err(
        "services:\n  web: {image: x}\ntimers:\n  t: {schedule: \"* * * * *\", service: web, comand: x}\n",
        "comand",
        &["did you mean `command`?"],
    );
}

#[test]
fn bad_values_point_at_the_value() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "services:\n  web:\n    image: x\n    port: abc\n",
            "abc",
            &["services.web.port: expected a number from 1 to 65535, found \"abc\""],
        ),
        (
            "services:\n  web: {image: x, port: 70000}\n",
            "70000",
            &["found 70000"],
        ),
        (
            "services:\n  web: {image: x, port: 0x0}\n",
            "0x0",
            &["found 0x0"],
        ),
        (
            "services:\n  web: {image: x, port: 80.5}\n",
            "80.5",
            &["found 80.5"],
        ),
        (
            "services:\n  web: {image: x, scale: {count: 2, memory: 4, cpu: 1}}\n",
            "4,",
            &["services.web.scale.memory", "at least 6", "found 4"],
        ),
        (
            "services:\n  web: {image: x, scale: {cpu: 65}}\n",
            "65",
            &["services.web.scale.cpu", "at most 64", "found 65"],
        ),
        (
            "services:\n  web: {image: x, scale: {cpu: 0}}\n",
            "0}",
            &["greater than 0"],
        ),
        (
            "services:\n  web: {image: x, scale: {count: 101}}\n",
            "101",
            &["from 0 to 100"],
        ),
        (
            "services:\n  web: {image: x, deployment: {minimum: 101}}\n",
            "101",
            &["services.web.deployment.minimum: expected a percentage from 0 to 100, found 101"],
        ),
        (
            "services:\n  web: {image: x, deployment: {maximum: 90}}\n",
            "90",
            &["percentage from 100 to 200"],
        ),
        (
            "services:\n  web: {image: x, deployment: {minimum: 100, maximum: 100}}\n",
            "{minimum",
            &["neither start a new process nor stop an old one"],
        ),
        (
            "services:\n  web: {image: x, termination: {grace: 3601}}\n",
            "3601",
            &["services.web.termination.grace", "seconds from 0 to 3600"],
        ),
        (
            "services:\n  web: {image: x, drain: -1}\n",
            "-1",
            &["services.web.drain", "from 0 to 3600"],
        ),
        (
            "services:\n  web: {image: x, timeout: 0}\n",
            "0}",
            &["services.web.timeout", "from 1 to 3600"],
        ),
        (
            "services:\n  web: {image: x, singleton: yes}\n",
            "yes",
            &["`true` or `false`, found \"yes\""],
        ),
        (
            "services:\n  web: {image: x, singleton: true, scale: {count: 2}}\n",
            "true",
            &["at most one process"],
        ),
        (
            "services:\n  web: {image: x, port: 80, health: health}\n",
            "health}",
            &["services.web.health", "starting with '/'"],
        ),
        (
            "services:\n  web: {image: x, port: 80, health: {path: /, interval: 0}}\n",
            "0}",
            &["services.web.health.interval", "from 1 to 3600"],
        ),
        (
            "services:\n  web: {image: x, port: 80, health: {attempts: 0}}\n",
            "0}",
            &["services.web.health.attempts", "from 1 to 100"],
        ),
        (
            "services:\n  web: {image: x, health: /h}\n",
            "health",
            &["has none; add `port:`"],
        ),
        (
            "services:\n  worker: {image: x, health: {grace: 0}}\n",
            "0}",
            &["services.worker.health.grace", "from 1 to 3600"],
        ),
        (
            "services:\n  worker: {image: x, health: {grace: 5, path: /up}}\n",
            "path",
            &[
                "services.worker.health.path",
                "has none; add `port:`",
                "only `health: {grace: N}` applies",
            ],
        ),
        (
            "services:\n  web: {image: x, command: \"\"}\n",
            "\"\"",
            &["command is empty"],
        ),
        (
            "services:\n  web: {image: x, command: []}\n",
            "[]",
            &["command is empty"],
        ),
        (
            "services:\n  web: {image: x, command: \"a 'b\"}\n",
            "\"a 'b\"",
            &["unclosed single quote"],
        ),
        (
            "services:\n  web: {image: x, command: {a: b}}\n",
            "{a: b}",
            &["a command line such as"],
        ),
        (
            "services:\n  web:\n    image: x\n    port: 80\n    domain: [ok.example.com, Shop.Example.com]\n",
            "Shop",
            &["lower case: `shop.example.com`"],
        ),
        (
            "services:\n  web: {image: x, port: 80, domain: \"-a.com\"}\n",
            "\"-a.com\"",
            &["starting or ending with '-'"],
        ),
        (
            "services:\n  web: {image: x, port: 80, domain: 10.0.0.1}\n",
            "10.0.0.1",
            &["IP address"],
        ),
        (
            "services:\n  web: {image: x, port: 80, domain: \"https://x.com\"}\n",
            "\"https://x.com\"",
            &["not a bare host name"],
        ),
        (
            "services:\n  web: {image: x, domain: x.com}\n",
            "domain",
            &["add `port:`"],
        ),
        (
            "services:\n  a: {image: x, port: 80, domain: s.example.com}\n  b: {image: x, port: 80, domain: [s.example.com]}\n",
            "s.example.com]",
            &["services.b.domain: `s.example.com` is already routed to service `a` (line 2)"],
        ),
        (
            "services:\n  web: {image: x, volumes: [\"Data:/x\"]}\n",
            "\"Data",
            &["services.web.volumes[0]", "invalid volume name \"Data\""],
        ),
        (
            "services:\n  web: {image: x, volumes: [\"data:x\"]}\n",
            "\"data:x",
            &["absolute path"],
        ),
        (
            "services:\n  web: {image: x, volumes: [\"data:/x:ro\"]}\n",
            "\"data",
            &["`:ro` are not supported"],
        ),
        (
            "services:\n  web: {image: x, volumes: [\"d:/x\", \"e:/x/\"]}\n",
            "\"e:",
            &[
                "services.web.volumes[1]",
                "already the mount point of volume `d`",
            ],
        ),
        (
            "services:\n  web: {image: \"my image\"}\n",
            "\"my image\"",
            &["has spaces"],
        ),
    ];
    for (text, needle, parts) in cases {
        assert_err(text, needle, parts);
    }
}

#[test]
fn build_and_image() {
    assert_err(
        "services:\n  web:\n    build: .\n    image: nginx\n",
        "image",
        &["services.web: has both `build` and `image`"],
    );
    assert_err(
        "services:\n  web:\n    image: nginx\n    build: .\n",
        "build",
        &["services.web: has both `build` and `image`"],
    );
    assert_err(
        "services:\n  web:\n    port: 80\n",
        "web",
        &["services.web: needs `build`", "or `image`"],
    );
    assert_err(
        "services:\n  web:\n    build: ../other\n",
        "../other",
        &[
            "services.web.build",
            "leaves the source directory through `..`",
        ],
    );
    assert_err(
        "services:\n  web:\n    build: {path: a/../../b}\n",
        "a/../../b",
        &["services.web.build.path", "`..`"],
    );
    assert_err(
        "services:\n  web:\n    build: /srv/app\n",
        "/srv/app",
        &["absolute path"],
    );
    assert_err(
        "services:\n  web:\n    build: {dockerfile: ../Dockerfile}\n",
        "../Dockerfile",
        &["services.web.build.dockerfile"],
    );
    assert_err(
        "services:\n  web:\n    build: 12\n",
        "12",
        &["expected a directory", "found 12"],
    );
    assert_err(
        "services:\n  web:\n    build: {args: {1X: a}}\n",
        "1X",
        &["services.web.build.args", "not a valid build argument name"],
    );
}

#[test]
fn names_and_environment() {
    assert_err(
        "services:\n  Web_1:\n    image: x\n",
        "Web_1",
        &["services: invalid service name \"Web_1\""],
    );
    assert_err(
        "app: My-App\nservices:\n  w: {image: x}\n",
        "My-App",
        &["app: invalid app name \"My-App\""],
    );
    assert_err(
        "environment:\n  - OK\n  - 1BAD=x\nservices:\n  w: {image: x}\n",
        "1BAD",
        &["environment[1]: \"1BAD\" is not a valid variable name"],
    );
    assert_err(
        "environment: [A, B=1, A=2]\nservices:\n  w: {image: x}\n",
        "A=2",
        &["`A` is listed twice (first on line 1)"],
    );
    assert_err(
        "services:\n  w: {image: x, environment: {A: 1}}\n",
        "{A: 1}",
        &["services.w.environment: expected a list of `KEY` or `KEY=default`"],
    );
    assert_err(
        "services:\n  w: {image: x, environment: [3]}\n",
        "3",
        &["services.w.environment[0]", "found 3"],
    );
    assert_err("app: x\n", "app", &["missing `services`"]);
    assert_err("services: {}\n", "{}", &["at least one service"]);
    assert_err("# only a comment\n", "# only", &["the manifest is empty"]);
    assert_err("- a\n- b\n", "- a", &["expected a mapping"]);
    assert_err(
        "services:\n  1: {image: x}\n",
        "1:",
        &["expected a name as key, found 1"],
    );
}

#[test]
fn timers() {
    let base = "services:\n  web: {image: x}\ntimers:\n";
    let with = |t: &str| format!("{base}{t}");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "  tick: {schedule: \"*/5 * * *\", service: web, command: x}\n",
            "\"*/5",
            &["timers.tick.schedule", "has 4 fields; a schedule has 5"],
        ),
        (
            "  tick: {schedule: \"61 * * * *\", service: web, command: x}\n",
            "\"61",
            &["the minute field \"61\" has 61, outside 0-59"],
        ),
        (
            "  tick: {schedule: \"* * * * */0\", service: web, command: x}\n",
            "\"*",
            &["day-of-week", "step \"0\""],
        ),
        (
            "  tick: {schedule: \"* 5-2 * * *\", service: web, command: x}\n",
            "\"*",
            &["runs backwards"],
        ),
        (
            "  tick: {schedule: \"* * * foo *\", service: web, command: x}\n",
            "\"*",
            &["month field \"foo\""],
        ),
        (
            "  tick: {schedule: 5, service: web, command: x}\n",
            "5,",
            &["expected a 5-field cron expression", "found 5"],
        ),
        (
            "  tick: {schedule: \"* * * * *\", service: wbe, command: x}\n",
            "wbe",
            &["timers.tick.service: there is no service `wbe` in `services`; did you mean `web`?"],
        ),
        (
            "  tick: {schedule: \"* * * * *\", service: zzzzz, command: x}\n",
            "zzzzz",
            &["the services are `web`"],
        ),
        (
            "  tick: {schedule: \"* * * * *\", service: web}\n",
            "tick",
            &["missing `command`"],
        ),
        (
            "  tick: {service: web, command: x}\n",
            "tick",
            &["missing `schedule`"],
        ),
        (
            "  Tick: {schedule: \"* * * * *\", service: web, command: x}\n",
            "Tick",
            &["invalid timer name"],
        ),
    ];
    for (timer, needle, parts) in cases {
        assert_err(&with(timer), needle, parts);
    }
    for ok in [
        "0 0 1 1 0",
        "*/15 0-23/2 1,15 * 7",
        "0 12 * JAN-jun sun",
        "5/10 * * * *",
        "59 23 31 12 6",
    ] {
        assert!(check_cron(ok).is_ok(), "{ok}: {:?}", check_cron(ok));
    }
    for bad in [
        "* * * * * *",
        "",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "1,,2 * * * *",
        "a-b * * * *",
        "*/ * * * *",
        "-1 * * * *",
        "*/61 * * * *",
        "1-2-3 * * * *",
    ] {
        assert!(check_cron(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn yaml_errors_have_positions() {
    assert_err(
        "services:\n  web:\n    port: 1\n    port: 2\n",
        "port: 2",
        &["duplicate"],
    );
    assert_err(
        "services:\n  web: [a, b\n  x: 1\n",
        ": 1",
        &["invalid YAML"],
    );
    assert_err("services:\n\tweb: {}\n", "web", &["tabs"]);
    assert_err("a: 1\n---\nb: 2\n", "---", &["more than one YAML document"]);
}

#[test]
fn billion_laughs_is_refused_fast() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        text.push_str(&format!("{}: &{} [{}]\n", w[1], w[1], refs));
    }
    let start = Instant::now();
    let e = err(&text);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    assert!(e.message.contains("YAML bomb"), "{e}");
    assert!(e.line > 1, "{e}");
}

#[test]
fn deep_nesting_is_refused_fast() {
    let start = Instant::now();
    let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let e = err(&text);
    assert!(e.message.contains("nested more than 32 levels"), "{e}");
    let block: String = (0..200).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
    let e = err(&block);
    assert!(e.message.contains("nested more than 32 levels"), "{e}");
    let flow = format!("services: {}{}", "{a: ".repeat(10_000), "}".repeat(10_000));
    let e = err(&flow);
    assert!(e.message.contains("nested more than 32 levels"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    let e = err(&"#".repeat(MAX_MANIFEST_BYTES + 1));
    assert!(e.message.contains("at most"), "{e}");
}

#[test]
fn overlong_variable_names_are_refused() {
    let long = "K".repeat(257);
    let text = format!("environment: [{long}]\nservices:\n  w: {{image: x}}\n");
    let e = err(&text);
    assert!(e.message.starts_with("environment[0]: \"KKKK"), "{e}");
    assert!(e.message.contains("at most 256 bytes"), "{e}");
    let text = format!("services:\n  w:\n    build: {{args: {{{long}: a}}}}\n");
    let e = err(&text);
    assert!(e.message.starts_with("services.w.build.args: "), "{e}");
    assert!(e.message.contains("at most 256 bytes"), "{e}");
    let ok = "K".repeat(256);
    let text = format!("environment: [{ok}=1]\nservices:\n  w: {{image: x}}\n");
    assert!(parse_manifest("berth.yml", &text).is_ok());
}

#[test]
fn resources_run_as_services_of_their_name_and_give_urls() {
    use crate::model::{Resource, ResourceKind};
    let text = "resources:\n  db: {type: postgres, image: berth-test/postgres:15}\n  cache: {type: redis}\nservices:\n  web: {build: ., port: 8080, resources: [db, cache]}\n  worker: {build: .}\n";
    let m = parse_manifest("berth.yml", text).expect("manifest");
    let db = &m.services["db"];
    assert_eq!(
        db.resource,
        Some(Resource {
            kind: ResourceKind::Postgres,
            image: "berth-test/postgres:15".into()
        })
    );
    assert_eq!(
        db.source,
        ImageSource::Image("berth-test/postgres:15".into())
    );
    assert!(db.singleton && db.port.is_none());
    assert_eq!(db.volumes[0].volume, "db");
    assert_eq!(db.volumes[0].path, "/var/lib/postgresql/data");
    assert_eq!(
        m.services["cache"].source,
        ImageSource::Image("redis:7".into()),
        "the default image"
    );
    assert_eq!(m.services["web"].resources, strings(&["db", "cache"]));
    assert_eq!(m.resources().count(), 2);
    let env = m.resource_env("web", &|name| Some(format!("{name}-pw")));
    assert_eq!(env["DB_URL"], "postgres://app:db-pw@db:5432/app");
    assert_eq!(env["DATABASE_URL"], env["DB_URL"]);
    assert_eq!(env["CACHE_URL"], "redis://default:cache-pw@cache:6379");
    assert_eq!(env["REDIS_URL"], env["CACHE_URL"]);
    assert!(m.resource_env("worker", &|_| Some("x".into())).is_empty());

    // Two postgres resources: each has its own name, none is DATABASE_URL.
    let two = "resources: {a: {type: postgres}, b-2: {type: postgres}}\nservices:\n  web: {build: ., resources: [a, b-2]}\n";
    let m = parse_manifest("berth.yml", two).expect("manifest");
    let env = m.resource_env("web", &|_| Some("p".into()));
    assert!(env.contains_key("A_URL") && env.contains_key("B_2_URL"));
    assert!(!env.contains_key("DATABASE_URL"), "{env:?}");
}

#[test]
fn resource_mistakes_are_pointed_at() {
    assert_err(
        "resources:\n  db: {type: postgress}\nservices:\n  web: {build: .}\n",
        "postgress",
        &["resources.db.type", "did you mean `postgres`?"],
    );
    assert_err(
        "resources:\n  db: {image: x}\nservices:\n  web: {build: .}\n",
        "db:",
        &["missing `type`", "postgres, redis"],
    );
    assert_err(
        "resources:\n  db: {type: redis, size: 3}\nservices:\n  web: {build: .}\n",
        "size",
        &["resources.db"],
    );
    assert_err(
        "resources:\n  db: {type: postgres}\nservices:\n  web: {build: ., resources: [dbb]}\n",
        "dbb",
        &[
            "services.web.resources[0]",
            "no resource `dbb`",
            "did you mean `db`?",
        ],
    );
    assert_err(
        "services:\n  web: {build: ., resources: [db]}\n",
        "db]",
        &["no resource `db`", "resources: {db: {type: postgres}}"],
    );
    assert_err(
        "resources:\n  db: {type: postgres}\nservices:\n  db: {build: .}\n",
        "db: {b",
        &["also the name of a resource (line 2)"],
    );
    assert_err(
        "resources:\n  db: {type: postgres}\nservices:\n  web: {build: ., volumes: [db:/x]}\n",
        "[db:/x]",
        &["volume `db` is the data of resource `db`"],
    );
    assert_err(
        "resources:\n  db: {type: postgres}\nservices:\n  web: {build: .}\ntimers:\n  t: {schedule: '* * * * *', service: db, command: x}\n",
        "db, command",
        &["timers.t.service", "is a resource"],
    );
}
