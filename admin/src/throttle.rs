//! Bounds on the work a client can cause with password checks. Each one runs argon2id
//! over about 19 MiB on the blocking pool, so unbounded sign-ins with made-up usernames
//! (which the per-user throttle never sees twice) would exhaust memory. Hence:
//! - argon2 runs on [`slots`] threads of its own, [`QUEUE`] more computations may wait
//!   for one, and anything beyond is refused at once (503);
//! - each client address may have [`IN_FLIGHT`] password checks in flight and
//!   [`BURST`] attempts at once, refilled at one every [`REFILL`] (429 beyond).
//!
//! Addresses are the TCP peer's: behind a reverse proxy every client shares the
//! proxy's address, so the proxy must do its own per-client limiting.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Password checks that may wait for a slot; more are refused rather than queued.
pub const QUEUE: usize = 32;
/// Password checks one address may have in flight.
pub const IN_FLIGHT: u32 = 2;
/// Attempts one address may make at once.
pub const BURST: f64 = 20.0;
/// One more attempt per address is allowed after each such interval.
pub const REFILL: Duration = Duration::from_secs(3);
/// Addresses remembered; beyond, full entries are forgotten first.
const MAX_ADDRESSES: usize = 50_000;

/// argon2 computations at once: it is CPU-bound, so more than the cores only costs
/// memory.
pub fn slots() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from).clamp(2, 8)
}

/// A password computation for the pool.
type Job = Box<dyn FnOnce() + Send>;

/// The threads that run password computations: always the same few, because each
/// thread's allocator arena keeps the 19 MiB it last used, so the blocking pool's
/// hundreds of threads would hold hundreds of them.
static POOL: LazyLock<std::sync::mpsc::SyncSender<Job>> = LazyLock::new(|| {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
    let receiver = Arc::new(Mutex::new(receiver));
    for i in 0..slots() {
        let receiver = receiver.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("password-{i}"))
            .spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job.
                    let job = match receiver.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    job();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "starting a password thread");
        }
    }
    sender
});

/// Runs `work` (an argon2 computation) on the password threads, waiting behind at most
/// [`QUEUE`] others; `None` when the queue is full (or the work panicked).
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    POOL.try_send(Box::new(move || {
        let _ = done.send(work());
    }))
    .ok()?;
    result.await.ok()
}

/// Largest argon2 memory accepted from a stored hash (64 MiB), so that one odd hash
/// cannot make a password thread hold more.
const MAX_BLOCKS: usize = 64 * 1024;

thread_local! {
    /// The argon2 working memory of a password thread, allocated once and reused: a
    /// fresh 19 MiB per computation fragments the allocator, whose arenas then keep
    /// growing.
    static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// argon2 over `password` and `salt` (raw bytes) with `argon2`'s settings, into `out`, in
/// this thread's working memory.
fn argon2_into(argon2: &argon2::Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> Option<()> {
    let blocks = argon2.params().block_count();
    if blocks > MAX_BLOCKS {
        return None;
    }
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .ok()
    })
}

/// Hashes a new password (argon2id with the default settings and a random salt) into
/// its PHC string; `None` when too many computations are under way.
pub async fn hash(password: String) -> Option<String> {
    use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
    hashing(move || {
        let argon2 = argon2::Argon2::default();
        let salt = SaltString::generate(&mut OsRng);
        let mut raw = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut raw).ok()?;
        let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
        argon2_into(&argon2, password.as_bytes(), salt_bytes, &mut out)?;
        let phc = PasswordHash {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(argon2::Version::V0x13.into()),
            params: ParamsString::try_from(argon2.params()).ok()?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).ok()?),
        };
        Some(phc.to_string())
    })
    .await
    .flatten()
}

/// Whether `password` matches the PHC string `hash` (compared in constant time); `None`
/// when too many computations are under way.
pub async fn verify(password: String, hash: String) -> Option<bool> {
    use argon2::password_hash::{Output, PasswordHash};
    hashing(move || {
        let check = || -> Option<bool> {
            let parsed = PasswordHash::new(&hash).ok()?;
            let algorithm = argon2::Algorithm::try_from(parsed.algorithm).ok()?;
            let version = match parsed.version {
                Some(v) => argon2::Version::try_from(v).ok()?,
                None => argon2::Version::default(),
            };
            let params = argon2::Params::try_from(&parsed).ok()?;
            let (salt, expected) = (parsed.salt?, parsed.hash?);
            let mut raw = [0u8; 64];
            let salt_bytes = salt.decode_b64(&mut raw).ok()?;
            let mut out = vec![0u8; expected.len()];
            argon2_into(
                &argon2::Argon2::new(algorithm, version, params),
                password.as_bytes(),
                salt_bytes,
                &mut out,
            )?;
            Some(Output::new(&out).ok()? == expected)
        };
        check().unwrap_or(false)
    })
    .await
}

/// Per-address limits on password attempts (one per server).
#[derive(Debug, Default)]
pub struct AddressLimits {
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    tokens: f64,
    at: Instant,
    in_flight: u32,
}

impl Entry {
    fn refilled(mut self, now: Instant) -> Self {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        self.tokens = (self.tokens + gained).min(BURST);
        self.at = now;
        self
    }
}

/// An admitted attempt; it stops counting as in flight when dropped.
#[derive(Debug)]
pub struct Attempt {
    limits: Arc<AddressLimits>,
    key: Option<IpAddr>,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut entries = self.limits.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = entries.get_mut(&key) {
                e.in_flight = e.in_flight.saturating_sub(1);
            }
        }
    }
}

/// The key an address is limited under: IPv6 clients get a whole /64 each, so they
/// are limited per network rather than per address.
fn key_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl AddressLimits {
    /// Admits one password attempt from `address` (`None`: unknown, not limited), or
    /// says how long to wait.
    pub fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Attempt, Duration> {
        self.admit_at(address, Instant::now())
    }

    fn admit_at(self: &Arc<Self>, address: Option<IpAddr>, now: Instant) -> Result<Attempt, Duration> {
        let untracked = Attempt {
            limits: self.clone(),
            key: None,
        };
        let Some(key) = address.map(key_of) else {
            return Ok(untracked);
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if !entries.contains_key(&key) && entries.len() >= MAX_ADDRESSES {
            entries.retain(|_, e| e.in_flight > 0 || e.refilled(now).tokens < BURST);
            if entries.len() >= MAX_ADDRESSES {
                // So many addresses at once: the process-wide bound still holds.
                return Ok(untracked);
            }
        }
        let entry = entries.entry(key).or_insert(Entry {
            tokens: BURST,
            at: now,
            in_flight: 0,
        });
        *entry = entry.refilled(now);
        if entry.in_flight >= IN_FLIGHT {
            return Err(Duration::from_secs(1));
        }
        if entry.tokens < 1.0 {
            return Err(REFILL.mul_f64(1.0 - entry.tokens));
        }
        entry.tokens -= 1.0;
        entry.in_flight += 1;
        Ok(Attempt {
            limits: self.clone(),
            key: Some(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_a_burst_then_one_attempt_per_interval() {
        let limits = Arc::new(AddressLimits::default());
        let a = Some("192.0.2.1".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..BURST as usize {
            drop(limits.admit_at(a, t0).unwrap());
        }
        let wait = limits.admit_at(a, t0).unwrap_err();
        assert!(wait <= REFILL && wait > Duration::ZERO, "{wait:?}");
        // Another address is not affected.
        assert!(limits.admit_at(Some("192.0.2.2".parse().unwrap()), t0).is_ok());
        drop(limits.admit_at(a, t0 + REFILL).unwrap());
        assert!(limits.admit_at(a, t0 + REFILL).is_err());
    }

    #[test]
    fn an_address_has_only_a_few_attempts_in_flight() {
        let limits = Arc::new(AddressLimits::default());
        let a = Some("2001:db8::1".parse().unwrap());
        let t0 = Instant::now();
        let held: Vec<_> = (0..IN_FLIGHT).map(|_| limits.admit_at(a, t0).unwrap()).collect();
        // The same /64 counts as the same client.
        assert!(limits.admit_at(Some("2001:db8::2".parse().unwrap()), t0).is_err());
        drop(held);
        assert!(limits.admit_at(a, t0).is_ok());
        assert!(limits.admit_at(None, t0).is_ok());
    }
}
