//! Automatic certificates over ACME HTTP-01 (`--acme-directory`, `--acme-email`).
//!
//! One task ([`run`]) looks at every host in the route table after each change of
//! it (deploys, scale, deletions; debounced) and at least hourly. A host without a
//! usable certificate (an imported or ACME one that is valid for more than
//! [`RENEW_BEFORE_DAYS`] more days; self-signed ones do not count) gets an order
//! of its own: the router answers the HTTP-01 challenge for any host (pushed over
//! its control socket, acknowledged before the CA is told to validate), the key is
//! generated here (ECDSA P-256, rcgen) and the certificate stored with source
//! `acme`, key sealed, then pushed to the router; older ACME certificates for the
//! same host are removed. Failures are logged (server log and the app's event log)
//! and retried with back-off; serving never waits on any of this.
//!
//! The ACME client is `instant-acme` on ring, speaking HTTPS through hyper-rustls
//! with an explicit ring provider; it trusts the system's CA certificates plus
//! `--acme-ca-cert` (a test CA such as pebble's).

use crate::rack::Rack;
use berth_store::certs::CertRow;
use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A certificate valid for fewer days than this is renewed.
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// How often certificates are checked when nothing else happens.
const CHECK_EVERY: Duration = Duration::from_secs(3600);
/// Route table changes come in bursts (a rollout); wait this long for quiet.
const DEBOUNCE: Duration = Duration::from_secs(2);
/// First retry after a failure; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// The longest one order (challenge, validation, finalization) may take.
const ORDER_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the CA may take to validate, and to issue.
const POLL_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the router may take to acknowledge a challenge.
const CHALLENGE_PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// `--acme-*` flags.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The ACME directory URL (Let's Encrypt:
    /// `https://acme-v02.api.letsencrypt.org/directory`).
    pub directory: String,
    /// Contact address given to the CA (expiry notices).
    pub email: Option<String>,
    /// A PEM CA certificate trusted for the directory's HTTPS, besides the system's.
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error(
        "cannot read the ACME CA certificate {path}: {source}; pass a readable PEM file to --acme-ca-cert"
    )]
    CaCertRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the ACME CA certificate {path} holds no usable PEM certificate ({reason}); pass the CA's PEM certificate to --acme-ca-cert"
    )]
    CaCertBad { path: String, reason: String },
    #[error(
        "no trusted CA certificates for the ACME directory's HTTPS: the system has none (install ca-certificates) and --acme-ca-cert was not given"
    )]
    NoRoots,
    #[error(
        "the ACME directory {0:?} is not an https:// URL; pass e.g. --acme-directory https://acme-v02.api.letsencrypt.org/directory"
    )]
    NotHttps(String),
    #[error("the ACME contact {0:?} is not an email address; pass --acme-email you@example.com")]
    BadEmail(String),
    #[error("cannot set up TLS for the ACME client: {0}")]
    Tls(#[from] rustls::Error),
}

/// The HTTPS client instant-acme talks through: hyper-rustls on ring.
#[derive(Clone)]
struct HttpsClient(Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>);

impl HttpClient for HttpsClient {
    fn request(
        &self,
        req: hyper::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let fut = self.0.request(req);
        Box::pin(async move {
            fut.await
                .map(BytesResponse::from)
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))
        })
    }
}

fn https_client(config: &AcmeConfig) -> Result<HttpsClient, AcmeError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!("system CA certificates: {e}");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = &config.ca_cert {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| AcmeError::CaCertRead {
            path: shown.clone(),
            source,
        })?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| AcmeError::CaCertBad {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(AcmeError::CaCertBad {
                path: shown,
                reason: "no CERTIFICATE block".into(),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|e| AcmeError::CaCertBad {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(AcmeError::NoRoots);
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(HttpsClient(
        Client::builder(TokioExecutor::new()).build(connector),
    ))
}

/// The ACME side of a rack: configuration, HTTPS client, the account once known.
pub struct Acme {
    config: AcmeConfig,
    http: HttpsClient,
    account: Option<Account>,
    /// The stored account was refused by the CA: make a new one.
    new_account: bool,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("directory", &self.config.directory)
            .finish_non_exhaustive()
    }
}

impl Acme {
    /// Checks the flags and builds the HTTPS client; nothing is fetched yet.
    pub fn new(config: AcmeConfig) -> Result<Acme, AcmeError> {
        if !config.directory.starts_with("https://") {
            return Err(AcmeError::NotHttps(config.directory.clone()));
        }
        if let Some(email) = &config.email
            && (!email.contains('@') || email.contains(char::is_whitespace))
        {
            return Err(AcmeError::BadEmail(email.clone()));
        }
        let http = https_client(&config)?;
        Ok(Acme {
            config,
            http,
            account: None,
            new_account: false,
        })
    }

    /// The ACME account: cached, else restored from the store, else registered.
    async fn account(&mut self, rack: &Rack) -> Result<Account, String> {
        if let Some(account) = &self.account {
            return Ok(account.clone());
        }
        let directory = self.config.directory.clone();
        let stored = if self.new_account {
            None
        } else {
            rack.store
                .acme_account(&directory)
                .map_err(|e| format!("cannot read the stored ACME account: {e}"))?
        };
        let builder = Account::builder_with_http(Box::new(self.http.clone()));
        let account = match stored {
            Some(json) => {
                let credentials: AccountCredentials = serde_json::from_str(&json)
                    .map_err(|e| format!("the stored ACME account is unreadable: {e}"))?;
                builder
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| format!("cannot reach the ACME directory {directory}: {e}"))?
            }
            None => {
                let contact = self.config.email.as_ref().map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let (account, credentials) = builder
                    .create(
                        &NewAccount {
                            contact: &contacts,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        directory.clone(),
                        None,
                    )
                    .await
                    .map_err(|e| format!("cannot register an ACME account at {directory}: {e}"))?;
                let json = serde_json::to_string(&credentials)
                    .map_err(|e| format!("cannot serialise the ACME account: {e}"))?;
                rack.store
                    .put_acme_account(&directory, &json)
                    .map_err(|e| format!("cannot store the ACME account: {e}"))?;
                tracing::info!(%directory, "registered an ACME account");
                account
            }
        };
        self.new_account = false;
        self.account = Some(account.clone());
        Ok(account)
    }

    /// Orders a certificate for `domain` over HTTP-01: (chain PEM, key PEM).
    async fn issue(&mut self, rack: &Rack, domain: &str) -> Result<(String, String), String> {
        let account = self.account(rack).await?;
        let outcome = tokio::time::timeout(ORDER_TIMEOUT, order(&account, rack, domain))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the order took longer than {ORDER_TIMEOUT:?}; is the CA reachable?"
                ))
            });
        if let Err(reason) = &outcome
            && reason.contains("accountDoesNotExist")
        {
            // The CA forgot the account (a test CA restarted, or it was deactivated).
            self.account = None;
            self.new_account = true;
        }
        outcome
    }
}

/// One order, challenges answered by the router; the challenges are withdrawn
/// whatever happens.
async fn order(account: &Account, rack: &Rack, domain: &str) -> Result<(String, String), String> {
    let mut tokens = Vec::new();
    let result = order_inner(account, rack, domain, &mut tokens).await;
    for token in &tokens {
        rack.router.remove_challenge(token);
    }
    result
}

async fn order_inner(
    account: &Account,
    rack: &Rack,
    domain: &str,
    tokens: &mut Vec<String>,
) -> Result<(String, String), String> {
    let identifiers = [Identifier::Dns(domain.to_owned())];
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("the CA refused the order: {e}"))?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| format!("cannot fetch the authorization: {e}"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("the CA's authorization is {other:?}")),
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| "the CA offers no HTTP-01 challenge".to_string())?;
        let key_authorization = challenge.key_authorization();
        let token = challenge.token.clone();
        // Withdrawn by the caller even when the router does not acknowledge it.
        tokens.push(token.clone());
        rack.router
            .add_challenge(&token, key_authorization.as_str(), CHALLENGE_PUSH_TIMEOUT)
            .await
            .map_err(|e| format!("cannot give the challenge to the router: {e}"))?;
        challenge.set_ready().await.map_err(|e| match e {
            // A CA that validates at once (pebble does) reports the failed
            // validation here rather than when the order is polled.
            instant_acme::Error::Api(problem) if failed_validation(&problem) => {
                let why = problem
                    .detail
                    .clone()
                    .unwrap_or_else(|| problem.to_string());
                cannot_validate(domain, &why)
            }
            e => format!("the CA refused the challenge: {e}"),
        })?;
    }
    let retries = RetryPolicy::new().timeout(POLL_TIMEOUT);
    let status = match order.poll_ready(&retries).await {
        Ok(status) => status,
        Err(instant_acme::Error::Api(problem)) => {
            let why = problem
                .detail
                .clone()
                .unwrap_or_else(|| problem.to_string());
            return Err(cannot_validate(domain, &why));
        }
        Err(e) => return Err(format!("the CA did not finish validating: {e}")),
    };
    if status != OrderStatus::Ready {
        return Err(validation_failure(&mut order, domain).await);
    }
    let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])
        .map_err(|e| format!("cannot make the signing request: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| format!("cannot make the signing request: {e}"))?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(|e| format!("the CA refused to finalize the order: {e}"))?;
    let chain = order
        .poll_certificate(&retries)
        .await
        .map_err(|e| format!("the CA issued no certificate: {e}"))?;
    Ok((chain, key.serialize_pem()))
}

/// Why the CA could not validate: the challenge's error as the CA reports it.
async fn validation_failure(order: &mut instant_acme::Order, domain: &str) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        if let Ok(state) = authz.refresh().await {
            for c in &state.challenges {
                if let Some(problem) = &c.error {
                    reasons.push(
                        problem
                            .detail
                            .clone()
                            .unwrap_or_else(|| problem.to_string()),
                    );
                }
            }
        }
    }
    let why = if reasons.is_empty() {
        "the CA gives no reason".to_string()
    } else {
        reasons.join("; ")
    };
    cannot_validate(domain, &why)
}

/// Whether the CA's problem is a validation that failed (RFC 8555, 6.7): it
/// could not reach the domain, or reached something else.
fn failed_validation(problem: &instant_acme::Problem) -> bool {
    const KINDS: [&str; 6] = [
        "connection",
        "dns",
        "incorrectResponse",
        "unauthorized",
        "tls",
        "caa",
    ];
    problem.r#type.as_deref().is_some_and(|t| {
        t.strip_prefix("urn:ietf:params:acme:error:")
            .is_some_and(|kind| KINDS.contains(&kind))
    })
}

fn cannot_validate(domain: &str, why: &str) -> String {
    format!(
        "the CA could not validate http://{domain}/.well-known/acme-challenge/...: {why}; \
         check that {domain} resolves to this server and that port 80 reaches the router (--http)"
    )
}

/// Why a host cannot get a certificate over HTTP-01, if it cannot.
fn not_issuable(domain: &str) -> Option<&'static str> {
    if domain.starts_with("*.") {
        Some(
            "wildcards need DNS-01, which berth does not do; import a certificate with `berth certs import`",
        )
    } else if domain.parse::<IpAddr>().is_ok() {
        Some("an IP address, not a domain name")
    } else if !domain.contains('.') || domain == "localhost" || domain.ends_with(".localhost") {
        Some(
            "not a public domain name; start the server with --domain set to a domain that resolves to it",
        )
    } else {
        None
    }
}

fn parse_time(rfc3339: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()
}

/// Does `pattern` (exact or `*.parent`) cover `domain`, by the router's SNI rule?
fn covers(pattern: &str, domain: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    pattern == domain || berth_router::tls::wildcard_above(domain).is_some_and(|w| w == pattern)
}

/// The latest end of validity among the imported and ACME certificates for `domain`.
fn best_expiry(certs: &[CertRow], domain: &str) -> Option<time::OffsetDateTime> {
    certs
        .iter()
        .filter(|c| c.source != "self-signed")
        .filter(|c| c.domains.iter().any(|d| covers(d, domain)))
        .filter_map(|c| parse_time(&c.not_after))
        .max()
}

/// What needs a certificate now: host → why (for the log), given the certificates.
fn due(
    hosts: &BTreeMap<String, String>,
    certs: &[CertRow],
    now: time::OffsetDateTime,
) -> BTreeMap<String, String> {
    let horizon = now + time::Duration::days(RENEW_BEFORE_DAYS);
    hosts
        .keys()
        .filter(|d| not_issuable(d).is_none())
        .filter_map(|d| match best_expiry(certs, d) {
            None => Some((d.clone(), "it has none".to_string())),
            Some(t) if t <= horizon => Some((
                d.clone(),
                format!(
                    "its certificate ends {}",
                    crate::certs::rfc3339(t.unix_timestamp())
                ),
            )),
            Some(_) => None,
        })
        .collect()
}

fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Per-host memory of failures.
#[derive(Default)]
struct Retry {
    failures: u32,
    next: Option<Instant>,
}

/// Keeps a certificate on every routed host until the server stops.
pub async fn run(rack: Arc<Rack>, mut acme: Acme) {
    let mut changes = rack.router.subscribe();
    let mut retries: HashMap<String, Retry> = HashMap::new();
    let mut skipped: HashSet<String> = HashSet::new();
    loop {
        let _ = changes.borrow_and_update();
        pass(&rack, &mut acme, &mut retries, &mut skipped).await;
        let now = Instant::now();
        let wake = retries
            .values()
            .filter_map(|r| r.next)
            .min()
            .map_or(now + CHECK_EVERY, |t| t.min(now + CHECK_EVERY));
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::time::sleep(DEBOUNCE).await;
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

async fn pass(
    rack: &Rack,
    acme: &mut Acme,
    retries: &mut HashMap<String, Retry>,
    skipped: &mut HashSet<String>,
) {
    // host → app, from what the router serves.
    let hosts: BTreeMap<String, String> = rack
        .router
        .table()
        .hosts
        .iter()
        .map(|(h, r)| (h.trim_end_matches('.').to_ascii_lowercase(), r.app.clone()))
        .collect();
    for (host, app) in &hosts {
        if let Some(why) = not_issuable(host)
            && skipped.insert(host.clone())
        {
            tracing::info!(host = %host, "no ACME certificate for {host}: {why}");
            rack.logs
                .event(app, &format!("no ACME certificate for {host}: {why}"));
        }
    }
    retries.retain(|h, _| hosts.contains_key(h));
    let certs: Vec<CertRow> = match rack.store.certs() {
        Ok(certs) => certs.into_iter().map(|(row, _)| row).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "ACME: cannot read the stored certificates");
            return;
        }
    };
    let todo = due(&hosts, &certs, time::OffsetDateTime::now_utc());
    for (domain, why) in todo {
        let retry = retries.entry(domain.clone()).or_default();
        if retry.next.is_some_and(|t| t > Instant::now()) {
            continue;
        }
        let app = hosts.get(&domain).cloned().unwrap_or_default();
        tracing::info!(%domain, %app, "ordering a certificate over ACME: {why}");
        rack.logs.event(
            &app,
            &format!(
                "certificate for {domain}: ordering one from {} ({why})",
                acme.config.directory
            ),
        );
        match acme.issue(rack, &domain).await {
            Ok((chain, key)) => match save(rack, &domain, chain, &key, &certs) {
                Ok(row) => {
                    retries.remove(&domain);
                    tracing::info!(%domain, id = %row.id, not_after = %row.not_after, "ACME certificate stored");
                    rack.logs.event(
                        &app,
                        &format!(
                            "certificate for {domain} issued over ACME ({}), valid until {}",
                            row.id, row.not_after
                        ),
                    );
                }
                Err(e) => fail(rack, retries, &domain, &app, &e),
            },
            Err(e) => fail(rack, retries, &domain, &app, &e),
        }
    }
}

fn fail(rack: &Rack, retries: &mut HashMap<String, Retry>, domain: &str, app: &str, why: &str) {
    let retry = retries.entry(domain.to_owned()).or_default();
    retry.failures += 1;
    let wait = backoff(retry.failures);
    retry.next = Some(Instant::now() + wait);
    tracing::warn!(%domain, %app, failures = retry.failures, "ACME certificate failed: {why}; next try in {}", human(wait));
    rack.logs.event(
        app,
        &format!(
            "certificate for {domain}: ACME failed: {why}; next try in {}",
            human(wait)
        ),
    );
}

/// Stores a new ACME certificate (key sealed), removes the ACME ones it replaces and
/// gives the router the new set.
fn save(
    rack: &Rack,
    domain: &str,
    chain: String,
    key_pem: &str,
    before: &[CertRow],
) -> Result<CertRow, String> {
    berth_router::tls::certified_key(&chain, key_pem)
        .map_err(|e| format!("the CA's certificate is unusable: {e}"))?;
    let (domains, not_after) = crate::certs::describe(&chain)
        .map_err(|e| format!("the CA's certificate is unusable: {e}"))?;
    let row = CertRow {
        id: crate::certs::new_id(),
        domains,
        not_after,
        source: "acme".into(),
        created: berth_store::now_rfc3339(),
        cert_pem: chain,
    };
    rack.store
        .put_cert(&row, key_pem)
        .map_err(|e| format!("cannot store the certificate: {e}"))?;
    for old in before {
        if old.source == "acme"
            && old.domains == [domain]
            && old.id != row.id
            && let Err(e) = rack.store.delete_cert(&old.id)
        {
            tracing::warn!(id = %old.id, "cannot remove the replaced ACME certificate: {e}");
        }
    }
    crate::certs::push_to_router(rack);
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, domains: &[&str], not_after: &str, source: &str) -> CertRow {
        CertRow {
            id: id.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            not_after: not_after.into(),
            source: source.into(),
            created: "2025-01-01T00:00:00Z".into(),
            cert_pem: String::new(),
        }
    }

    #[test]
    fn hosts_without_a_usable_certificate_are_due() {
        let now = time::macros::datetime!(2025-06-01 00:00 UTC);
        let hosts: BTreeMap<String, String> = [
            "fresh.example.com",
            "old.example.com",
            "none.example.com",
            "self.example.com",
            "x.wild.example.com",
            "web.shop.localhost",
            "*.star.example.com",
        ]
        .iter()
        .map(|h| (h.to_string(), "shop".to_string()))
        .collect();
        let certs = vec![
            row(
                "c-1",
                &["fresh.example.com"],
                "2025-08-01T00:00:00Z",
                "acme",
            ),
            row("c-2", &["old.example.com"], "2025-06-20T00:00:00Z", "acme"),
            row(
                "c-3",
                &["self.example.com"],
                "2026-01-01T00:00:00Z",
                "self-signed",
            ),
            row(
                "c-4",
                &["*.wild.example.com"],
                "2026-01-01T00:00:00Z",
                "imported",
            ),
        ];
        let due = due(&hosts, &certs, now);
        let names: Vec<&str> = due.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["none.example.com", "old.example.com", "self.example.com"]
        );
        assert!(due["old.example.com"].contains("2025-06-20"), "{due:?}");
    }

    #[test]
    fn failed_validations_are_told_from_other_problems() {
        let problem = |kind: &str| -> instant_acme::Problem {
            serde_json::from_value(serde_json::json!({
                "type": format!("urn:ietf:params:acme:error:{kind}"),
                "detail": "x",
            }))
            .expect("a problem")
        };
        assert!(failed_validation(&problem("connection")));
        assert!(failed_validation(&problem("incorrectResponse")));
        assert!(!failed_validation(&problem("malformed")));
        assert!(!failed_validation(&problem("rateLimited")));
    }

    #[test]
    fn only_public_names_are_ordered() {
        assert!(not_issuable("web.shop.example.com").is_none());
        assert!(not_issuable("web.shop.localhost").is_some());
        assert!(not_issuable("localhost").is_some());
        assert!(not_issuable("intranet").is_some());
        assert!(not_issuable("10.0.0.1").is_some());
        assert!(not_issuable("*.example.com").is_some());
    }

    #[test]
    fn backoff_doubles_up_to_a_limit() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(5), Duration::from_secs(960));
        assert_eq!(backoff(40), MAX_BACKOFF);
        assert_eq!(human(Duration::from_secs(7260)), "2h01m");
    }

    #[test]
    fn flags_are_checked() {
        let config = |directory: &str, email: Option<&str>, ca: Option<&str>| AcmeConfig {
            directory: directory.into(),
            email: email.map(String::from),
            ca_cert: ca.map(PathBuf::from),
        };
        let err = |c| {
            Acme::new(c)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(config("http://ca/dir", None, None)).contains("https://"));
        assert!(err(config("https://ca/dir", Some("nobody"), None)).contains("--acme-email"));
        assert!(
            err(config("https://ca/dir", None, Some("/nonexistent/ca.pem")))
                .contains("--acme-ca-cert")
        );
    }
}
