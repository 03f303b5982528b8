//! TLS certificates the router serves: the PEM chain in the clear, the private key
//! sealed with the master key (associated data: `cert` and the certificate's id),
//! and the OCSP response last stapled to each (`cert_ocsp`, public data).

use crate::{Result, Store, StoreError};
use rusqlite::params;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRow {
    /// Short id (`c-3f9a2c`).
    pub id: String,
    /// Names served, exact or `*.example.com`.
    pub domains: Vec<String>,
    /// RFC 3339 end of validity.
    pub not_after: String,
    /// `imported`, `self-signed` or `acme`.
    pub source: String,
    pub created: String,
    pub cert_pem: String,
}

impl Store {
    /// Stores a certificate and its key (sealed); replaces one with the same id.
    pub fn put_cert(&self, row: &CertRow, key_pem: &str) -> Result<()> {
        let sealed = self.key.seal(key_pem, &crate::seal::aad("cert", &row.id))?;
        let domains = serde_json::to_string(&row.domains)
            .map_err(|e| StoreError::Corrupt(format!("certificate domains: {e}")))?;
        self.conn().execute(
            "INSERT OR REPLACE INTO certs (id, domains, not_after, source, created, cert_pem, key_sealed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![row.id, domains, row.not_after, row.source, row.created, row.cert_pem, sealed],
        )?;
        Ok(())
    }

    /// Every certificate, with its key opened.
    pub fn certs(&self) -> Result<Vec<(CertRow, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, domains, not_after, source, created, cert_pem, key_sealed FROM certs ORDER BY created",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                ))
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        drop(stmt);
        drop(conn);
        rows.into_iter()
            .map(
                |(id, domains, not_after, source, created, cert_pem, sealed)| {
                    let key = self.key.open(&sealed, &crate::seal::aad("cert", &id))?;
                    let domains = serde_json::from_str(&domains).map_err(|e| {
                        StoreError::Corrupt(format!("certificate {id} domains: {e}"))
                    })?;
                    Ok((
                        CertRow {
                            id,
                            domains,
                            not_after,
                            source,
                            created,
                            cert_pem,
                        },
                        key,
                    ))
                },
            )
            .collect()
    }

    /// Stores the ACME account of `directory` (its credentials JSON, which holds the
    /// account key: sealed, associated data `acme-account` and the directory URL).
    pub fn put_acme_account(&self, directory: &str, credentials_json: &str) -> Result<()> {
        let sealed = self.key.seal(
            credentials_json,
            &crate::seal::aad("acme-account", directory),
        )?;
        self.set_meta(&format!("acme_account:{directory}"), &hex::encode(sealed))
    }

    /// The ACME account credentials stored for `directory`, if any.
    pub fn acme_account(&self, directory: &str) -> Result<Option<String>> {
        let Some(value) = self.meta(&format!("acme_account:{directory}"))? else {
            return Ok(None);
        };
        let sealed = hex::decode(value.trim()).map_err(|e| {
            StoreError::Corrupt(format!("ACME account of {directory} is not hex: {e}"))
        })?;
        Ok(Some(self.key.open(
            &sealed,
            &crate::seal::aad("acme-account", directory),
        )?))
    }

    /// Marks the certificate served to clients that send no SNI.
    pub fn set_default_cert(&self, id: &str) -> Result<()> {
        self.set_meta("default_cert", id)
    }

    /// The certificate marked with [`Store::set_default_cert`], if any.
    pub fn default_cert(&self) -> Result<Option<String>> {
        self.meta("default_cert")
    }

    /// Keeps the OCSP response stapled to certificate `id` (DER), good until
    /// `good_until` (Unix seconds); replaces the one kept before. Removed with
    /// the certificate.
    pub fn put_ocsp_staple(&self, id: &str, der: &[u8], good_until: i64) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO cert_ocsp (cert_id, der, good_until, fetched)
             VALUES (?1, ?2, ?3, ?4)",
            params![id, der, good_until, crate::now_rfc3339()],
        )?;
        Ok(())
    }

    /// Forgets the OCSP response of certificate `id` (it expired, or the
    /// responder now says the certificate is not good).
    pub fn delete_ocsp_staple(&self, id: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM cert_ocsp WHERE cert_id = ?1", [id])?;
        Ok(())
    }

    /// Certificate id → (DER OCSP response, good until in Unix seconds).
    pub fn ocsp_staples(&self) -> Result<HashMap<String, (Vec<u8>, i64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT cert_id, der, good_until FROM cert_ocsp")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    /// Removes a certificate; false when there was none with that id.
    pub fn delete_cert(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM certs WHERE id = ?1", [id])?
            > 0)
    }
}
