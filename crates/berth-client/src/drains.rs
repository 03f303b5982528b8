//! Log drain calls: rack-wide ones (admin) and an app's (its deployers).

use crate::{Client, Error};
use berth_api::{AddDrain, DrainInfo};

impl Client {
    /// `GET /drains` (every drain), or `GET /apps/{app}/drains`.
    pub async fn drains(&self, app: Option<&str>) -> Result<Vec<DrainInfo>, Error> {
        match app {
            Some(app) => self.get_json(&["apps", app, "drains"]).await,
            None => self.get_json(&["drains"]).await,
        }
    }

    /// `POST /drains` (rack-wide), or `POST /apps/{app}/drains`.
    pub async fn add_drain(&self, app: Option<&str>, req: &AddDrain) -> Result<DrainInfo, Error> {
        match app {
            Some(app) => self.post_json(&["apps", app, "drains"], Some(req)).await,
            None => self.post_json(&["drains"], Some(req)).await,
        }
    }

    /// `DELETE /drains/{id}`, or `DELETE /apps/{app}/drains/{id}`.
    pub async fn remove_drain(&self, app: Option<&str>, id: &str) -> Result<(), Error> {
        match app {
            Some(app) => self.delete(&["apps", app, "drains", id]).await,
            None => self.delete(&["drains", id]).await,
        }
    }
}
