//! TLS certificate calls (admin only on the server).

use crate::{Client, Error};
use berth_api::{CertInfo, GenerateCert, ImportCert};

impl Client {
    /// `GET /certs`
    pub async fn certs(&self) -> Result<Vec<CertInfo>, Error> {
        self.get_json(&["certs"]).await
    }

    /// `POST /certs`
    pub async fn import_cert(&self, cert_pem: String, key_pem: String) -> Result<CertInfo, Error> {
        let url = self.url(&["certs"])?;
        let req = self
            .http
            .post(url.clone())
            .json(&ImportCert { cert_pem, key_pem });
        let resp = self.send(req, true).await?;
        self.decode(&url, resp).await
    }

    /// `POST /certs/generate`
    pub async fn generate_cert(&self, domains: Vec<String>) -> Result<CertInfo, Error> {
        let url = self.url(&["certs", "generate"])?;
        let req = self.http.post(url.clone()).json(&GenerateCert { domains });
        let resp = self.send(req, true).await?;
        self.decode(&url, resp).await
    }

    /// `DELETE /certs/{id}`
    pub async fn delete_cert(&self, id: &str) -> Result<(), Error> {
        self.delete(&["certs", id]).await
    }
}
