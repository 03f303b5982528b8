//! The web console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, `fantoccini`) against a real `berth server` and
//! the real Docker engine; and its sessions, cookies and CSRF checks over
//! plain HTTP. Needs Debian's `chromium` and `chromium-driver`
//! (`scripts/setup-test-host.sh` installs them).

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver (and the chromium it starts) in a process group of its own,
/// killed as a whole when the test ends, whatever happened.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        for (file, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(file).exists(),
                "{file} is missing: apt-get install {package} (scripts/setup-test-host.sh does)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            port,
            _profile: tempfile::tempdir().expect("chromium profile dir"),
        };
        assert!(
            eventually(Duration::from_secs(20), || {
                matches!(http_get(port, "127.0.0.1", "/status"), Ok((200, _)))
            }),
            "chromedriver did not answer on port {port} in 20 s"
        );
        driver
    }

    /// A browser session; `dark` makes the system's colour scheme dark
    /// (`prefers-color-scheme`), `size` is the window's.
    async fn session(&self, dark: bool, size: (u32, u32)) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    format!("--window-size={},{}", size.0, size.1),
                    format!("--blink-settings=preferredColorScheme={}", if dark { 0 } else { 1 }),
                    "--no-first-run", "--no-default-browser-check",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--metrics-recording-only", "--no-proxy-server",
                    format!("--user-data-dir={}/{dark}", self._profile.path().display()),
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Where the screenshots go (kept after the test, to look at).
fn shots_dir(app: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("berth-console-shots-{app}"));
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn shot(c: &Client, dir: &Path, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

/// Waits until the page has an element matching `css`.
async fn wait_for(c: &Client, css: &str, secs: u64) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(secs))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page within {secs} s ({e})"))
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

async fn open(c: &Client, url: &str) {
    c.goto(url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
}

/// Waits for the end of long work streamed into the page; it must have succeeded.
async fn work_done(c: &Client) {
    let outcome = wait_for(c, "#outcome", 60)
        .await
        .text()
        .await
        .expect("outcome");
    assert_eq!(outcome, "done", "{}", source(c).await);
}

async fn source(c: &Client) -> String {
    c.source().await.expect("page source")
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    open(c, &format!("{base}/")).await;
    let field = wait_for(c, "#token", 10).await;
    assert!(
        c.current_url().await.expect("url").path() == "/console/signin",
        "without a session / leads to the sign-in page"
    );
    field.send_keys(token).await.expect("type the token");
    click(c, "form[action='/console/signin'] button").await;
    wait_for(c, "#apps-title", 10).await;
}

/// The value of cookie `name` in the browser (HttpOnly ones included).
async fn cookie(c: &Client, name: &str) -> String {
    c.get_named_cookie(name)
        .await
        .unwrap_or_else(|e| panic!("no cookie {name} in the browser: {e}"))
        .value()
        .to_string()
}

fn post_form(server: &Server, path: &str, cookie: &str, body: &str) -> (u16, String) {
    let host = format!("127.0.0.1:{}", server.api);
    let cookie = format!("berth_session={cookie}");
    request_bytes(
        server.api,
        &host,
        "POST",
        path,
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(body.as_bytes()),
    )
    .expect("POST to the console")
}

fn hello_with_log_line() -> tempfile::TempDir {
    let src = hello_source();
    let say = src.path().join("www/cgi-bin/say");
    write(
        &src.path().join("www/cgi-bin"),
        "say",
        "#!/bin/sh\necho \"console-line-${QUERY_STRING}\" >&2\necho 'Content-Type: text/plain'\necho ''\necho said\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&say, std::fs::Permissions::from_mode(0o755)).expect("chmod say");
    src
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    let started = Instant::now();
    let mut server = Server::start();
    let app = server.create_app("console");
    let src = hello_with_log_line();
    server.ok_in(src.path(), &["deploy", "-a", &app]);
    server.ok(&["env", "set", "GREETING=second", "-a", &app, "--promote"]);
    let host = format!("web.{app}.localhost");
    assert!(
        server
            .get(&host, "/cgi-bin/env")
            .1
            .contains("GREETING=second")
    );
    let base = format!("http://127.0.0.1:{}", server.api);
    let shots = shots_dir(&app);
    let driver = Driver::start();
    let c = driver.session(false, (1280, 900)).await;

    // Sign in: the rack and its app.
    sign_in(&c, &base, &server.token).await;
    let page = source(&c).await;
    assert!(page.contains(&app) && page.contains("R2"), "{page}");
    shot(&c, &shots, "rack").await;

    // The app: services with their domain, processes.
    c.find(Locator::LinkText(&app))
        .await
        .expect("app link")
        .click()
        .await
        .expect("open app");
    wait_for(&c, "#processes-title", 10).await;
    let page = source(&c).await;
    assert!(
        page.contains(&format!("http://{host}:{}", server.http)),
        "{page}"
    );
    assert!(
        page.contains(">Stop</button>"),
        "an admin sees the stop buttons"
    );
    shot(&c, &shots, "app").await;

    // Roll back to R1 from the releases page, with the confirmation.
    open(&c, &format!("{base}/console/apps/{app}/releases")).await;
    wait_for(&c, "#release-R1", 10).await;
    shot(&c, &shots, "releases").await;
    click(&c, "#release-R1 a[href$='/rollback']").await;
    wait_for(&c, "#confirm", 10)
        .await
        .click()
        .await
        .expect("confirm");
    work_done(&c).await;
    shot(&c, &shots, "rollback").await;
    let (_, env) = server.get(&host, "/cgi-bin/env");
    assert!(
        env.contains("GREETING=hello") && env.contains("RELEASE=R3"),
        "the router serves the old release's environment as R3: {env}"
    );

    // Edit an env value and promote.
    open(&c, &format!("{base}/console/apps/{app}/env")).await;
    wait_for(&c, "#env-key", 10)
        .await
        .send_keys("GREETING")
        .await
        .expect("key");
    c.find(Locator::Id("env-value"))
        .await
        .expect("value field")
        .send_keys("from-console")
        .await
        .expect("value");
    click(&c, "form.stack button[type=submit]").await;
    work_done(&c).await;
    let (_, env) = server.get(&host, "/cgi-bin/env");
    assert!(env.contains("GREETING=from-console"), "{env}");
    // Values are masked until revealed.
    open(&c, &format!("{base}/console/apps/{app}/env")).await;
    let page = source(&c).await;
    assert!(
        !page.contains("from-console") && page.contains("masked"),
        "{page}"
    );
    open(
        &c,
        &format!("{base}/console/apps/{app}/env?reveal=GREETING"),
    )
    .await;
    assert!(source(&c).await.contains("from-console"));

    // Every field has a label; the page has its landmarks.
    let unlabelled = c
        .execute(
            "return [...document.querySelectorAll('input:not([type=hidden]), select')]\
             .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).length \
             + (document.querySelector('header') && document.querySelector('main') \
             && document.querySelector('nav') ? 0 : 100)",
            vec![],
        )
        .await
        .expect("run a check in the page");
    assert_eq!(unlabelled, serde_json::json!(0), "{}", source(&c).await);
    shot(&c, &shots, "env").await;

    // The live log view shows a line the app prints within 2 s.
    open(&c, &format!("{base}/console/apps/{app}/logs")).await;
    let status = wait_for(&c, "#log-status", 10).await;
    let live = Instant::now() + Duration::from_secs(10);
    while !status.text().await.unwrap_or_default().starts_with("Live") {
        assert!(Instant::now() < live, "the live view did not connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let marker = format!("m{}", std::process::id());
    let asked = Instant::now();
    let (code, _) = server.get(&host, &format!("/cgi-bin/say?{marker}"));
    assert_eq!(code, 200);
    let log = c.find(Locator::Id("log")).await.expect("log list");
    let wanted = format!("console-line-{marker}");
    loop {
        if log.text().await.unwrap_or_default().contains(&wanted) {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "the app's line did not appear in the live view within 2 s:\n{}",
            log.text().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "log line shown {} ms after the request",
        asked.elapsed().as_millis()
    );
    shot(&c, &shots, "logs").await;

    // Admin: a token made in the console shows its secret once; the console's
    // changes are in the audit trail under their API paths, newest first.
    open(&c, &format!("{base}/console/tokens")).await;
    click(&c, "form[action='/console/tokens'] button[type=submit]").await;
    let secret = wait_for(&c, "#new-secret", 10)
        .await
        .text()
        .await
        .expect("secret");
    assert!(secret.starts_with("berth_"), "{secret}");
    shot(&c, &shots, "tokens").await;
    open(&c, &format!("{base}/console/tokens")).await;
    assert!(
        !source(&c).await.contains(&secret),
        "the secret is shown once"
    );
    open(&c, &format!("{base}/console/audit")).await;
    let page = source(&c).await;
    let rollback = page
        .find(&format!("/apps/{app}/releases/R1/rollback"))
        .expect("the console's rollback is audited");
    let env = page
        .find(&format!("/apps/{app}/env<"))
        .expect("the console's env change is audited");
    assert!(env < rollback, "newest first");
    shot(&c, &shots, "audit").await;

    // On a phone with a dark system theme: the same page, dark.
    {
        let phone = driver.session(true, (390, 844)).await;
        sign_in(&phone, &base, &server.token).await;
        phone
            .goto(&format!("{base}/console/apps/{app}"))
            .await
            .expect("app page");
        wait_for(&phone, "#processes-title", 10).await;
        let background = phone
            .execute(
                "return getComputedStyle(document.body).backgroundColor",
                vec![],
            )
            .await
            .expect("background");
        assert_eq!(
            background,
            serde_json::json!("rgb(15, 20, 25)"),
            "dark follows the system"
        );
        shot(&phone, &shots, "app-phone-dark").await;
        phone.close().await.expect("end the phone session");
    }

    // Sign out ends the session: its cookie opens nothing any more.
    let admin_cookie = cookie(&c, "berth_session").await;
    click(&c, "form[action='/console/signout'] button").await;
    wait_for(&c, "#token", 10).await;
    let (status, _) = request_bytes(
        server.api,
        "127.0.0.1",
        "GET",
        "/console/",
        &[("Cookie", &format!("berth_session={admin_cookie}"))],
        None,
    )
    .expect("GET with the old cookie");
    assert_eq!(
        status, 303,
        "a signed-out session's cookie leads to the sign-in page"
    );

    // A read token: masked env, no buttons that change things, and forged posts refused.
    let read = server.json(&["tokens", "create", "--role", "read", "--json"]);
    let read_secret = read["secret"].as_str().expect("secret").to_string();
    sign_in(&c, &base, &read_secret).await;
    open(&c, &format!("{base}/console/apps/{app}/env")).await;
    let page = source(&c).await;
    assert!(
        page.contains("GREETING") && page.contains("masked"),
        "{page}"
    );
    assert!(
        !page.contains("from-console") && !page.contains("Reveal"),
        "{page}"
    );
    shot(&c, &shots, "env-read").await;
    for path in ["", "/env", "/releases"] {
        open(&c, &format!("{base}/console/apps/{app}{path}")).await;
        let forms = c
            .find_all(Locator::Css("main form[method=post]"))
            .await
            .expect("forms");
        assert!(
            forms.is_empty(),
            "a read session sees no forms that change things on {path}"
        );
        let page = source(&c).await;
        assert!(
            !page.contains("Roll back") && !page.contains(">Stop<"),
            "{page}"
        );
    }
    open(
        &c,
        &format!("{base}/console/apps/{app}/env?reveal=GREETING"),
    )
    .await;
    assert!(
        !source(&c).await.contains("from-console"),
        "a read session cannot reveal values"
    );
    let read_cookie = cookie(&c, "berth_session").await;
    let env_path = format!("/console/apps/{app}/env");
    let forged = "key=GREETING&value=forged&promote=true";
    let (status, _) = post_form(&server, &env_path, &read_cookie, forged);
    assert_eq!(status, 403, "a POST without the CSRF token is refused");
    let (status, _) = post_form(
        &server,
        &env_path,
        &read_cookie,
        &format!("{forged}&_csrf=bad"),
    );
    assert_eq!(status, 403, "a POST with a wrong CSRF token is refused");
    open(&c, &format!("{base}/console/apps/{app}")).await;
    let page = source(&c).await;
    let csrf = page
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the sign-out form's CSRF token")
        .to_string();
    let (status, body) = post_form(
        &server,
        &env_path,
        &read_cookie,
        &format!("{forged}&_csrf={csrf}"),
    );
    assert_eq!(status, 403, "the API refuses a read token's change: {body}");
    assert!(body.contains("needs role deploy"), "{body}");
    assert!(
        server
            .get(&host, "/cgi-bin/env")
            .1
            .contains("GREETING=from-console")
    );

    c.close().await.expect("end the browser session");
    drop(driver);
    println!(
        "screenshots in {} ({} s)",
        shots.display(),
        started.elapsed().as_secs()
    );
}

fn set_cookies(head: &str) -> Vec<String> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

fn cookie_value(head: &str, name: &str) -> Option<String> {
    set_cookies(head).into_iter().find_map(|c| {
        c.strip_prefix(&format!("{name}="))
            .map(|v| v.split(';').next().unwrap_or("").to_string())
    })
}

fn form_csrf(body: &str) -> String {
    body.split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF field in the form")
        .to_string()
}

#[test]
fn sessions_cookies_and_cross_site_posts() {
    let server = Server::start();
    let host = format!("127.0.0.1:{}", server.api);
    let get = |path: &str, cookie: &str| {
        let mut headers = vec![];
        if !cookie.is_empty() {
            headers.push(("Cookie", cookie));
        }
        request_full(server.api, &host, "GET", path, &headers, None).expect("GET")
    };
    let post = |path: &str, headers: &[(&str, &str)], body: &str| {
        let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        request_full(server.api, &host, "POST", path, &all, Some(body.as_bytes())).expect("POST")
    };

    // Nothing but the sign-in page and its assets without a session.
    for path in [
        "/",
        "/console/",
        "/console/apps/x",
        "/console/tokens",
        "/console/audit",
        "/console/apps/x/logs/stream",
    ] {
        let (status, head, _) = get(path, "");
        assert_eq!(status, 303, "{path}");
        assert!(head.contains("location: /console/"), "{path}: {head}");
    }
    assert_eq!(get("/console/assets/console.css", "").0, 200);
    assert_eq!(get("/console/assets/console.js", "").0, 200);
    let (status, _, _) = post("/console/tokens", &[], "role=admin");
    assert_eq!(
        status, 303,
        "a POST without a session leads to the sign-in page"
    );

    // The sign-in form's own CSRF token, in an HttpOnly, SameSite=Strict cookie.
    let (status, head, body) = get("/console/signin", "");
    assert_eq!(status, 200);
    let signin_cookie = set_cookies(&head)
        .into_iter()
        .find(|c| c.starts_with("berth_signin="))
        .expect("signin cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
        assert!(signin_cookie.contains(flag), "{signin_cookie}");
    }
    assert!(
        !signin_cookie.contains("Secure"),
        "no Secure flag over plain HTTP: {signin_cookie}"
    );
    let form_token = form_csrf(&body);
    let signin_value = cookie_value(&head, "berth_signin").expect("value");
    let token = server.token.replace('_', "%5F");
    // Session fixation: a session id the browser brings is never the one it gets.
    let planted = "a".repeat(64);
    let cookies = format!("berth_signin={signin_value}; berth_session={planted}");

    // Without or with a wrong form token, or from another site: refused.
    let wrong_token = format!("x{}", &form_token[1..]);
    for (headers, csrf) in [
        (vec![("Cookie", cookies.as_str())], ""),
        (vec![("Cookie", cookies.as_str())], wrong_token.as_str()),
        (
            vec![
                ("Cookie", cookies.as_str()),
                ("Origin", "http://evil.example"),
            ],
            form_token.as_str(),
        ),
    ] {
        let (status, _, _) = post(
            "/console/signin",
            &headers,
            &format!("token={token}&_csrf={csrf}"),
        );
        assert_eq!(status, 403, "{headers:?} {csrf}");
    }
    let (status, _, body) = post(
        "/console/signin",
        &[("Cookie", &cookies)],
        &format!("token=berth_wrong&_csrf={form_token}"),
    );
    assert_eq!(status, 401);
    assert!(body.contains("not valid"), "{body}");

    let (status, head, _) = post(
        "/console/signin",
        &[
            ("Cookie", &cookies),
            ("Origin", &format!("http://{host}")),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        &format!("token={token}&_csrf={form_token}"),
    );
    assert_eq!(status, 303, "{head}");
    let session_cookie = set_cookies(&head)
        .into_iter()
        .find(|c| c.starts_with("berth_session="))
        .expect("session cookie");
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(session_cookie.contains(flag), "{session_cookie}");
    }
    assert!(!session_cookie.contains("Secure"), "{session_cookie}");
    let session = cookie_value(&head, "berth_session").expect("session id");
    assert_ne!(session, planted, "sign-in makes a new session id");
    assert_eq!(session.len(), 64, "256 random bits");
    assert_eq!(
        get("/console/", &format!("berth_session={planted}")).0,
        303,
        "the planted id opens nothing"
    );
    let jar = format!("berth_session={session}");
    let (status, _, page) = get("/console/", &jar);
    assert_eq!(status, 200);
    let csrf = form_csrf(&page);

    // Forms of the session: without, with a wrong, or cross-site: refused before anything runs.
    let before = server.json(&["tokens", "--json"]).as_array().map(Vec::len);
    for (headers, csrf) in [
        (vec![("Cookie", jar.as_str())], ""),
        (vec![("Cookie", jar.as_str())], "0000"),
        (
            vec![("Cookie", jar.as_str()), ("Sec-Fetch-Site", "cross-site")],
            csrf.as_str(),
        ),
        (
            vec![("Cookie", jar.as_str()), ("Origin", "http://evil.example")],
            csrf.as_str(),
        ),
    ] {
        let (status, _, _) = post(
            "/console/tokens",
            &headers,
            &format!("role=admin&_csrf={csrf}"),
        );
        assert_eq!(status, 403, "{headers:?} {csrf}");
    }
    assert_eq!(
        server.json(&["tokens", "--json"]).as_array().map(Vec::len),
        before,
        "no token was made"
    );
    // With its token, from the console: the secret is shown once.
    let (status, _, page) = post(
        "/console/tokens",
        &[("Cookie", &jar), ("Origin", &format!("http://{host}"))],
        &format!("role=read&_csrf={csrf}"),
    );
    assert_eq!(status, 200);
    let shown = page
        .split("id=\"new-secret\" tabindex=\"0\">")
        .nth(1)
        .unwrap_or_else(|| panic!("the new secret is shown: {page}"));
    assert!(shown.starts_with("berth_"), "{shown}");
    let audit = server.ok(&["audit"]);
    assert!(
        audit.contains("POST") && audit.contains("/tokens"),
        "console changes are in the audit trail: {audit}"
    );

    // A revoked token ends its sessions.
    let sign_in_http = |secret: &serde_json::Value| {
        let (_, head, body) = get("/console/signin", "");
        let signin_value = cookie_value(&head, "berth_signin").expect("value");
        let secret = secret.as_str().expect("secret").replace('_', "%5F");
        let (status, head, _) = post(
            "/console/signin",
            &[("Cookie", &format!("berth_signin={signin_value}"))],
            &format!("token={secret}&_csrf={}", form_csrf(&body)),
        );
        assert_eq!(status, 303);
        format!(
            "berth_session={}",
            cookie_value(&head, "berth_session").expect("session")
        )
    };
    let read = server.json(&["tokens", "create", "--role", "read", "--json"]);
    let read_jar = sign_in_http(&read["secret"]);
    assert_eq!(get("/console/", &read_jar).0, 200);
    server.ok(&[
        "tokens",
        "revoke",
        read["token"]["id"].as_str().expect("id"),
    ]);
    assert_eq!(get("/console/", &read_jar).0, 303);

    // A deploy token limited to one app sees that app only.
    let (mine, other) = (unique_app("mine"), unique_app("other"));
    server.ok(&["apps", "create", &mine]);
    server.ok(&["apps", "create", &other]);
    let limited = server.json(&[
        "tokens", "create", "--role", "deploy", "--app", &mine, "--json",
    ]);
    let limited_jar = sign_in_http(&limited["secret"]);
    let (status, _, page) = get("/console/", &limited_jar);
    assert_eq!(status, 200);
    assert!(page.contains(&mine) && !page.contains(&other), "{page}");
    assert!(
        !page.contains("/console/tokens"),
        "no admin pages in its navigation"
    );
    assert_eq!(
        get(&format!("/console/apps/{mine}/releases"), &limited_jar).0,
        200
    );
    let (status, _, page) = get(&format!("/console/apps/{other}"), &limited_jar);
    assert_eq!(status, 403);
    assert!(page.contains(&format!("limited to app {mine}")), "{page}");
    assert_eq!(get("/console/tokens", &limited_jar).0, 403);
    server.ok(&["apps", "delete", &mine, "--yes"]);
    server.ok(&["apps", "delete", &other, "--yes"]);

    // Sign out: the cookie is cleared and its session is gone.
    let (status, head, _) = post(
        "/console/signout",
        &[("Cookie", &jar)],
        &format!("_csrf={csrf}"),
    );
    assert_eq!(status, 303);
    assert!(
        set_cookies(&head)
            .iter()
            .any(|c| c.starts_with("berth_session=;") && c.contains("Max-Age=0")),
        "{head}"
    );
    assert_eq!(get("/console/", &jar).0, 303);
}

#[test]
fn cookies_are_secure_over_tls() {
    let server = Server::start_with(&["--tls"]);
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(server.ca_file())
        .arg(format!("https://localhost:{}/console/signin", server.api))
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).to_string();
    let cookie = set_cookies(&head)
        .into_iter()
        .find(|c| c.starts_with("berth_signin="))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}
