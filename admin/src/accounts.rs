//! Users: password hashing (argon2id), sign-in with throttling, and turning a session
//! into an [`Actor`].

use std::time::Duration;

use broker_core::store::{AccountStore, UserRecord};
use tower_sessions::Session;

use crate::sessions::{SIGNED_IN_AT, USER_ID};
use crate::types::{Actor, AppError, PortalRole};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;
/// Failed sign-ins in a row before each further attempt must wait.
const FREE_FAILURES: i64 = 5;
/// Longest wait imposed after failed sign-ins.
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);

/// How long sessions last.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
        }
    }
}

/// Hashes a password with argon2id (on the password threads: it takes tens of
/// milliseconds and 19 MiB on purpose).
pub async fn hash_password(password: String) -> Result<String, AppError> {
    crate::throttle::hash(password).await.ok_or_else(busy)
}

/// Whether `password` matches the stored hash (on the password threads, like hashing);
/// `Unavailable` when too many checks are under way.
pub async fn verify(password: &str, hash: &str) -> Result<bool, AppError> {
    crate::throttle::verify(password.to_owned(), hash.to_owned())
        .await
        .ok_or_else(busy)
}

fn busy() -> AppError {
    tracing::warn!("password work refused: too many under way");
    AppError::Unavailable
}

/// Checks a new password against the policy.
pub fn check_password(field: &str, password: &str, username: &str) -> Result<(), AppError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AppError::field(
            field,
            format!("Use at least {MIN_PASSWORD} characters."),
        ));
    }
    if password.len() > 1024 {
        return Err(AppError::field(field, "Use at most 1024 bytes."));
    }
    if password.to_lowercase().contains(&username.to_lowercase()) {
        return Err(AppError::field(field, "The password must not contain the username."));
    }
    Ok(())
}

/// A random password for resets, 20 characters from an unambiguous alphabet.
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// How long a user with these failures must still wait before the next attempt.
fn lock_remaining(user: &UserRecord, now: i64) -> Option<Duration> {
    lock_after(user.failed_sign_ins, user.last_failed_at, now)
}

/// The wait after `failed` failures in a row, the last at `last_failed_at`.
fn lock_after(failed: i64, last_failed_at: Option<i64>, now: i64) -> Option<Duration> {
    let over = failed - FREE_FAILURES;
    let last = last_failed_at?;
    if over < 0 {
        return None;
    }
    let wait = Duration::from_secs(1u64 << over.min(10)).min(MAX_LOCK);
    let until = last.saturating_add(wait.as_micros() as i64);
    (until > now).then(|| Duration::from_micros((until - now) as u64))
}

/// Failed sign-ins per unknown username (failures in a row, last failure), so that
/// unknown names are throttled like known ones and throttling does not reveal which
/// names exist. Per node; entries older than the longest wait are dropped.
static UNKNOWN_FAILURES: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, (i64, i64)>>> =
    std::sync::LazyLock::new(Default::default);

fn unknown_lock(username: &str, now: i64) -> Option<Duration> {
    let failures = UNKNOWN_FAILURES.lock().unwrap_or_else(|e| e.into_inner());
    failures
        .get(username)
        .and_then(|(n, last)| lock_after(*n, Some(*last), now))
}

fn note_unknown_failure(username: &str, now: i64) {
    let mut failures = UNKNOWN_FAILURES.lock().unwrap_or_else(|e| e.into_inner());
    if failures.len() >= 10_000 {
        let horizon = now - MAX_LOCK.as_micros() as i64;
        failures.retain(|_, (_, last)| *last > horizon);
    }
    let entry = failures.entry(username.to_owned()).or_insert((0, now));
    *entry = (entry.0 + 1, now);
}

fn too_many(wait: Duration) -> AppError {
    AppError::TooManyAttempts(format!(
        "Too many failed sign-ins; try again in {} s.",
        wait.as_secs().max(1)
    ))
}

/// A hash to verify against when the username is unknown, so that the answer takes as
/// long as for a real user; made once, on the password threads like every other hash.
async fn decoy_hash() -> Result<&'static str, AppError> {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY
        .get_or_try_init(|| hash_password("decoy password for unknown users".into()))
        .await
        .map(String::as_str)
}

/// Signs a user in: checks throttling, the password and the account, then gives the
/// session a new id (so a planted id is worthless) and records the user in it.
pub async fn sign_in(
    store: &dyn AccountStore,
    session: &Session,
    username: &str,
    password: &str,
) -> Result<Actor, AppError> {
    let username = username.trim().to_lowercase();
    let wrong = || AppError::Invalid {
        message: "Wrong username or password.".into(),
        fields: Default::default(),
        values: [("username".to_owned(), username.clone())].into(),
    };
    let user = store.user_by_username(&username).await?;
    let now = broker_core::clock::now_micros();
    let Some(user) = user else {
        if let Some(wait) = unknown_lock(&username, now) {
            return Err(too_many(wait));
        }
        verify(password, decoy_hash().await?).await?;
        note_unknown_failure(&username, now);
        return Err(wrong());
    };
    if let Some(wait) = lock_remaining(&user, now) {
        return Err(too_many(wait));
    }
    let ok = verify(password, &user.password_hash).await?;
    store.note_sign_in(&user.id, ok && !user.disabled, now).await?;
    if !ok {
        tracing::info!(user = %user.username, "failed sign-in");
        return Err(wrong());
    }
    if user.disabled {
        return Err(wrong());
    }
    session.cycle_id().await.map_err(|_| AppError::Unavailable)?;
    session
        .insert(USER_ID, &user.id)
        .await
        .map_err(|_| AppError::Unavailable)?;
    session
        .insert(SIGNED_IN_AT, chrono::Utc::now().timestamp())
        .await
        .map_err(|_| AppError::Unavailable)?;
    tracing::info!(user = %user.username, "signed in");
    Ok(actor_of(&user))
}

/// Checks the signed-in user's current password before a change, throttled like
/// sign-in: failures count against the same per-user limit, so a stolen session cannot
/// guess it without bound.
pub async fn check_current_password(
    store: &dyn AccountStore,
    user: &UserRecord,
    password: &str,
) -> Result<(), AppError> {
    let now = broker_core::clock::now_micros();
    if let Some(wait) = lock_remaining(user, now) {
        return Err(AppError::TooManyAttempts(format!(
            "Too many wrong passwords; try again in {} s.",
            wait.as_secs().max(1)
        )));
    }
    if verify(password, &user.password_hash).await? {
        return Ok(());
    }
    store.note_sign_in(&user.id, false, now).await?;
    tracing::info!(user = %user.username, "wrong current password");
    Err(AppError::field("current", "This is not your current password."))
}

/// Admits a password attempt from the client `address` (the TCP peer; `None` when not
/// known), or refuses it (too many from that address at once or lately).
pub fn admit_attempt(
    limits: &std::sync::Arc<crate::throttle::AddressLimits>,
    address: Option<std::net::IpAddr>,
) -> Result<crate::throttle::Attempt, AppError> {
    limits.admit(address).map_err(|wait| {
        tracing::info!(?address, "password attempt refused: too many from this address");
        AppError::TooManyAttempts(format!(
            "Too many attempts from your network; try again in {} s.",
            wait.as_secs().max(1)
        ))
    })
}

/// Ends the session on the server and drops the cookie.
pub async fn sign_out(session: &Session) -> Result<(), AppError> {
    session.flush().await.map_err(|_| AppError::Unavailable)
}

/// The actor of a user record.
pub fn actor_of(user: &UserRecord) -> Actor {
    Actor {
        user_id: Some(user.id.clone()),
        name: user.username.clone(),
        display_name: user.display_name.clone(),
        dip_id: user.dip_id.clone(),
        roles: user.roles.iter().filter_map(|r| PortalRole::parse(r)).collect(),
        must_change_password: user.must_change_password,
    }
}

/// The signed-in user of a session, checked on every request: an unknown or disabled
/// user, or a session past its absolute lifetime, ends the session.
pub async fn current(
    store: &dyn AccountStore,
    session: &Session,
    policy: &SessionPolicy,
) -> Result<Option<Actor>, AppError> {
    let Some(user_id) = session
        .get::<String>(USER_ID)
        .await
        .map_err(|_| AppError::Unavailable)?
    else {
        return Ok(None);
    };
    let signed_in_at = session.get::<i64>(SIGNED_IN_AT).await.ok().flatten().unwrap_or(0);
    let age = chrono::Utc::now().timestamp().saturating_sub(signed_in_at);
    let user = store.user(&user_id).await?;
    match user {
        Some(user) if !user.disabled && age >= 0 && (age as u64) < policy.absolute.as_secs() => {
            Ok(Some(actor_of(&user)))
        }
        _ => {
            session.flush().await.map_err(|_| AppError::Unavailable)?;
            Ok(None)
        }
    }
}

/// Removes expired sessions every few minutes (loading one checks expiry anyway; this
/// keeps the table small).
pub fn start_session_sweeper(store: std::sync::Arc<dyn AccountStore>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            if let Err(e) = store.delete_expired_sessions(broker_core::clock::now_micros()).await {
                tracing::warn!(error = %e, "sweeping expired sessions");
            }
        }
    });
}

/// Creates a user unless the username exists (for `dip demo` and `dip users create`);
/// returns whether it was created.
pub async fn ensure_user(
    store: &dyn AccountStore,
    username: &str,
    display_name: &str,
    dip_id: Option<&str>,
    roles: &[PortalRole],
    password: &str,
    must_change_password: bool,
) -> Result<bool, AppError> {
    if store.user_by_username(username).await?.is_some() {
        return Ok(false);
    }
    let at = broker_core::clock::now_micros();
    let user = UserRecord {
        id: uuid::Uuid::now_v7().to_string(),
        username: username.to_owned(),
        display_name: display_name.to_owned(),
        email: String::new(),
        dip_id: dip_id.map(str::to_owned),
        roles: roles.iter().map(|r| r.code().to_owned()).collect(),
        password_hash: hash_password(password.to_owned()).await?,
        disabled: false,
        must_change_password,
        failed_sign_ins: 0,
        last_failed_at: None,
        last_sign_in_at: None,
        created_at: at,
        updated_at: at,
    };
    Ok(store.insert_user(&user).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(failed: i64, last: Option<i64>) -> UserRecord {
        UserRecord {
            id: "u".into(),
            username: "u".into(),
            display_name: "u".into(),
            email: String::new(),
            dip_id: None,
            roles: vec![],
            password_hash: String::new(),
            disabled: false,
            must_change_password: false,
            failed_sign_ins: failed,
            last_failed_at: last,
            last_sign_in_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn throttling_starts_after_five_failures_and_doubles() {
        let now = 1_000_000_000_000;
        assert_eq!(lock_remaining(&user(4, Some(now)), now), None);
        assert_eq!(lock_remaining(&user(5, Some(now)), now), Some(Duration::from_secs(1)));
        assert_eq!(lock_remaining(&user(8, Some(now)), now), Some(Duration::from_secs(8)));
        assert_eq!(
            lock_remaining(&user(40, Some(now)), now),
            Some(Duration::from_secs(900))
        );
        assert_eq!(lock_remaining(&user(8, Some(now - 9_000_000)), now), None);
    }

    #[test]
    fn password_policy() {
        assert!(check_password("p", "short", "bob").is_err());
        assert!(check_password("p", "bob-is-my-password", "bob").is_err());
        assert!(check_password("p", "correct horse battery", "bob").is_ok());
    }
}
