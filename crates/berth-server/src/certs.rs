//! TLS certificates: import, self-signed generation, listing; kept in the store
//! (key sealed) and handed to the router process, which picks one by SNI. ACME
//! certificates are obtained in `acme`.

use crate::error::{Error, Result};
use crate::rack::Rack;
use berth_api::{CertInfo, GenerateCert, ImportCert};
use berth_router::tls::TlsCert;
use berth_store::certs::CertRow;

/// How long a generated self-signed certificate is valid.
const SELF_SIGNED_DAYS: i64 = 90;

fn info(row: &CertRow, default: Option<&str>, ocsp_good_until: Option<i64>) -> CertInfo {
    CertInfo {
        id: row.id.clone(),
        domains: row.domains.clone(),
        not_after: row.not_after.clone(),
        source: row.source.clone(),
        default: default == Some(row.id.as_str()),
        ocsp_good_until: ocsp_good_until
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
    }
}

/// The certificate for clients that send no SNI: the one marked with `berth
/// certs default`, else the first imported, else the oldest (`rows` are
/// oldest first).
fn default_id<'a>(rows: &'a [(CertRow, String)], marked: Option<&str>) -> Option<&'a str> {
    let ids = || rows.iter().map(|(r, _)| r);
    ids()
        .find(|r| Some(r.id.as_str()) == marked)
        .or_else(|| ids().find(|r| r.source == "imported"))
        .or_else(|| ids().next())
        .map(|r| r.id.as_str())
}

/// Gives the router every stored certificate, each with its OCSP response
/// while that is current (`ocsp` keeps them fresh).
pub fn push_to_router(rack: &Rack) {
    let certs = match rack.store.certs() {
        Ok(certs) => certs,
        Err(e) => {
            tracing::warn!(error = %e, "cannot load certificates for the router");
            return;
        }
    };
    let marked = rack.store.default_cert().ok().flatten();
    let default = default_id(&certs, marked.as_deref()).map(str::to_string);
    let mut staples = rack.store.ocsp_staples().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot load OCSP responses; certificates go without");
        Default::default()
    });
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    rack.router.update_certs(
        certs
            .into_iter()
            .map(|(row, key_pem)| TlsCert {
                default: default.as_deref() == Some(row.id.as_str()),
                ocsp: staples
                    .remove(&row.id)
                    .filter(|(_, good_until)| *good_until > now)
                    .map(|(der, _)| der),
                domains: row.domains,
                cert_pem: row.cert_pem,
                key_pem,
            })
            .collect(),
    );
}

/// A host name or `*.` wildcard the router can serve.
fn valid_domain(d: &str) -> bool {
    let name = d.strip_prefix("*.").unwrap_or(d);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

pub(crate) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// (domains from the subject alternative names, else the common name; RFC 3339 end
/// of validity) of the first certificate in a PEM chain.
pub fn describe(cert_pem: &str) -> std::result::Result<(Vec<String>, String), String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| format!("the certificate is not PEM: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("the certificate is not valid X.509: {e}"))?;
    let mut domains: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    if domains.is_empty() {
        domains = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_ascii_lowercase))
            .collect();
    }
    if domains.is_empty() {
        return Err(
            "the certificate names no domain (no DNS subject alternative name or common name)"
                .into(),
        );
    }
    Ok((domains, rfc3339(cert.validity().not_after.timestamp())))
}

pub(crate) fn new_id() -> String {
    format!("c-{}", hex::encode(rand::random::<[u8; 3]>()))
}

fn store(rack: &Rack, row: CertRow, key_pem: &str) -> Result<CertInfo> {
    rack.store.put_cert(&row, key_pem)?;
    push_to_router(rack);
    Ok(list(rack)?
        .into_iter()
        .find(|c| c.id == row.id)
        .unwrap_or_else(|| info(&row, None, None)))
}

pub fn list(rack: &Rack) -> Result<Vec<CertInfo>> {
    let certs = rack.store.certs()?;
    let marked = rack.store.default_cert()?;
    let default = default_id(&certs, marked.as_deref());
    let staples = rack.store.ocsp_staples()?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(certs
        .iter()
        .map(|(row, _)| {
            let good_until = staples
                .get(&row.id)
                .map(|(_, until)| *until)
                .filter(|until| *until > now);
            info(row, default, good_until)
        })
        .collect())
}

/// Makes `id` the certificate served to clients that send no SNI.
pub fn make_default(rack: &Rack, id: &str) -> Result<CertInfo> {
    let Some(cert) = list(rack)?.into_iter().find(|c| c.id == id) else {
        return Err(Error::NotFound(format!(
            "certificate {id} does not exist; list them with `berth certs`"
        )));
    };
    rack.store.set_default_cert(id)?;
    push_to_router(rack);
    Ok(CertInfo {
        default: true,
        ..cert
    })
}

/// Stores a PEM chain and its key, once the key matches the chain.
pub fn import(rack: &Rack, req: ImportCert) -> Result<CertInfo> {
    let bad = |e: String| {
        Error::Invalid(format!(
            "{e}; pass the PEM certificate chain first and its PEM private key second"
        ))
    };
    berth_router::tls::certified_key(&req.cert_pem, &req.key_pem).map_err(bad)?;
    let (domains, not_after) = describe(&req.cert_pem).map_err(bad)?;
    let row = CertRow {
        id: new_id(),
        domains,
        not_after,
        source: "imported".into(),
        created: berth_store::now_rfc3339(),
        cert_pem: req.cert_pem,
    };
    store(rack, row, &req.key_pem)
}

/// Makes and stores a self-signed certificate for the given domains.
pub fn generate(rack: &Rack, req: GenerateCert) -> Result<CertInfo> {
    let domains: Vec<String> = req
        .domains
        .iter()
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if domains.is_empty() {
        return Err(Error::Invalid(
            "name at least one domain, e.g. `berth certs generate web.myapp.example.com`".into(),
        ));
    }
    if let Some(d) = domains.iter().find(|d| !valid_domain(d)) {
        return Err(Error::Invalid(format!(
            "{d:?} is not a domain name; use names like example.com or *.example.com"
        )));
    }
    let (cert_pem, key_pem) = self_signed(&domains)
        .map_err(|e| Error::Internal(format!("cannot generate a certificate: {e}")))?;
    let (_, not_after) = describe(&cert_pem).map_err(Error::Internal)?;
    let row = CertRow {
        id: new_id(),
        domains,
        not_after,
        source: "self-signed".into(),
        created: berth_store::now_rfc3339(),
        cert_pem,
    };
    store(rack, row, &key_pem)
}

pub fn delete(rack: &Rack, id: &str) -> Result<()> {
    if !rack.store.delete_cert(id)? {
        return Err(Error::NotFound(format!(
            "certificate {id} does not exist; list them with `berth certs`"
        )));
    }
    push_to_router(rack);
    Ok(())
}

/// A self-signed certificate (ECDSA P-256) for `domains`: (cert PEM, key PEM).
pub fn self_signed(domains: &[String]) -> std::result::Result<(String, String), rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(domains.to_vec())?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        domains.first().cloned().unwrap_or_default(),
    );
    params.distinguished_name = dn;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_describe_themselves()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let domains = vec!["a.example.com".to_string(), "*.b.example.com".to_string()];
        let (cert, key) = self_signed(&domains)?;
        let (named, not_after) = describe(&cert)?;
        assert_eq!(named, domains);
        assert!(not_after.starts_with('2'), "{not_after}");
        berth_router::tls::certified_key(&cert, &key)?;
        // SNI: exact names and one level below a wildcard, nothing else.
        let store = berth_router::tls::CertStore::default();
        store.update(&[TlsCert {
            domains,
            cert_pem: cert,
            key_pem: key,
            default: true,
            ocsp: None,
        }]);
        assert!(store.default_cert().is_some());
        assert!(store.lookup("A.example.com").is_some());
        assert!(store.lookup("x.b.example.com").is_some());
        assert!(store.lookup("b.example.com").is_none());
        assert!(store.lookup("y.x.b.example.com").is_none());
        Ok(())
    }

    #[test]
    fn an_ocsp_staple_crosses_the_wire_and_is_served()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let (cert_pem, key_pem) = self_signed(&["a.example".to_string()])?;
        let sent = TlsCert {
            domains: vec!["a.example".into()],
            cert_pem,
            key_pem,
            default: false,
            ocsp: Some(vec![0x30, 0x03, 0x0a, 0x01, 0x00]),
        };
        let got: TlsCert = serde_json::from_str(&serde_json::to_string(&sent)?)?;
        assert_eq!(got.ocsp, sent.ocsp);
        // Without a staple the wire says nothing of one (as older servers sent).
        let plain = serde_json::to_string(&TlsCert {
            ocsp: None,
            ..got.clone()
        })?;
        assert!(!plain.contains("ocsp"), "{plain}");
        let store = berth_router::tls::CertStore::default();
        store.update(&[got]);
        let served = store
            .lookup("a.example")
            .ok_or("no certificate for a.example")?;
        assert_eq!(served.ocsp, sent.ocsp);
        Ok(())
    }

    #[test]
    fn domains_are_checked() {
        assert!(valid_domain("web.app.example.com"));
        assert!(valid_domain("*.example.com"));
        assert!(!valid_domain("*"));
        assert!(!valid_domain("a..b"));
        assert!(!valid_domain("-a.b"));
        assert!(!valid_domain("a b"));
    }
}
