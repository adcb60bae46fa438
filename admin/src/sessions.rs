//! Web sessions kept in the platform's database (tower-sessions over the store), so that
//! every node sees them and disabling a user can end them all.

use std::sync::Arc;

use async_trait::async_trait;
use broker_core::store::{AccountStore, SessionRecord};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result, SessionStore};

/// Session key of the signed-in user's id.
pub const USER_ID: &str = "user_id";
/// Name of the session cookie.
pub const COOKIE: &str = "dip_session";
/// Session key of the sign-in time (seconds since the epoch), for the absolute timeout.
pub const SIGNED_IN_AT: &str = "signed_in_at";

/// tower-sessions' store over the platform store.
#[derive(Clone)]
pub struct DbSessions(pub Arc<dyn AccountStore>);

impl std::fmt::Debug for DbSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbSessions")
    }
}

fn row(record: &Record) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id: record.id.to_string(),
        user_id: record.data.get(USER_ID).and_then(|v| v.as_str()).map(str::to_owned),
        data: serde_json::to_string(record).map_err(|e| Error::Encode(e.to_string()))?,
        expires_at: record.expiry_date.unix_timestamp().saturating_mul(1_000_000),
    })
}

fn backend(e: broker_core::store::StoreError) -> Error {
    Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for DbSessions {
    async fn create(&self, record: &mut Record) -> Result<()> {
        // A fresh id until it is unused (a collision of 128 random bits is theoretical).
        loop {
            if self.0.create_session(&row(record)?).await.map_err(backend)? {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.0.save_session(&row(record)?).await.map_err(backend)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let now = broker_core::clock::now_micros();
        match self.0.session(&id.to_string(), now).await.map_err(backend)? {
            Some(s) => Ok(Some(
                serde_json::from_str(&s.data).map_err(|e| Error::Decode(e.to_string()))?,
            )),
            None => Ok(None),
        }
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.0.delete_session(&id.to_string()).await.map_err(backend)
    }
}
