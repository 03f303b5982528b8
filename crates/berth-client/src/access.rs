//! Token and audit calls (admin only on the server).

use crate::{Client, Error};
use berth_api::{AuditEntry, CreateToken, CreatedToken, TokenInfo};

impl Client {
    /// `GET /tokens`
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        self.get_json(&["tokens"]).await
    }

    /// `POST /tokens`
    pub async fn create_token(&self, role: &str, app: Option<&str>) -> Result<CreatedToken, Error> {
        let body = CreateToken {
            role: role.to_string(),
            app: app.map(str::to_string),
        };
        self.post_json(&["tokens"], Some(&body)).await
    }

    /// `DELETE /tokens/{id}`
    pub async fn revoke_token(&self, id: &str) -> Result<(), Error> {
        self.delete(&["tokens", id]).await
    }

    /// `GET /audit?limit=N`
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, Error> {
        let mut url = self.url(&["audit"])?;
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        let resp = self.send(self.http.get(url.clone()), true).await?;
        self.decode("GET", &url, resp).await
    }
}
