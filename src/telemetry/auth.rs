//! HTTP basic authentication against bcrypt hashes (exporter-toolkit's `basic_auth_users`).
//!
//! Unknown users are checked against a real hash too, so timing does not reveal which users exist;
//! successful (user, password) pairs are cached so a 1 s scrape interval does not pay bcrypt's cost
//! on every request, and so are recent failures (short ones), so that a client retrying the same
//! wrong password costs no bcrypt work either.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use base64::Engine;

/// Most cached successful credentials.
const CACHE_MAX: usize = 256;

/// Most cached failed credentials, and the longest (user + password bytes) worth caching.
const REFUSED_MAX: usize = 1024;
const REFUSED_MAX_LEN: usize = 256;

/// Verifies `Authorization: Basic ...` headers.
#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    dummy: String,
    cache: Mutex<HashSet<(String, String)>>,
    refused: Mutex<HashSet<(String, String)>>,
}

/// Splits a `Basic` authorization header into user and password.
pub fn parse_header(value: &[u8]) -> Option<(String, String)> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

impl BasicAuth {
    /// An authenticator for `users` (name to bcrypt hash); `None` when there are no users.
    pub fn new(users: &BTreeMap<String, String>) -> Option<Self> {
        let dummy = users.values().next()?.clone();
        Some(Self {
            users: users.clone(),
            dummy,
            cache: Mutex::new(HashSet::new()),
            refused: Mutex::new(HashSet::new()),
        })
    }

    /// The verdict on credentials already verified (no bcrypt work): `Some(true)` for accepted
    /// ones, `Some(false)` for a missing or unreadable header or a recently refused pair, `None`
    /// when only bcrypt can tell.
    pub fn check_cached(&self, header: Option<&[u8]>) -> Option<bool> {
        let Some(pair) = header.and_then(parse_header) else {
            return Some(false);
        };
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.contains(&pair) {
            return Some(true);
        }
        drop(cache);
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        refused.contains(&pair).then_some(false)
    }

    /// Verifies the header (bcrypt: tens of milliseconds; call off the async runtime).
    pub fn check(&self, header: Option<&[u8]>) -> bool {
        let Some((user, pass)) = header.and_then(parse_header) else {
            return false;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (self.dummy.as_str(), false),
        };
        let ok = bcrypt::verify(&pass, hash).unwrap_or(false) && known;
        if ok {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert((user, pass));
        } else if user.len() + pass.len() <= REFUSED_MAX_LEN {
            let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            if refused.len() >= REFUSED_MAX {
                refused.clear();
            }
            refused.insert((user, pass));
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pass: &str) -> Vec<u8> {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {b}").into_bytes()
    }

    #[test]
    fn verifies_bcrypt_and_refuses_everything_else() {
        let mut users = BTreeMap::new();
        users.insert("alice".to_string(), bcrypt::hash("s3cret", 4).unwrap());
        let a = BasicAuth::new(&users).unwrap();
        assert_eq!(a.check_cached(Some(&header("alice", "s3cret"))), None);
        assert!(a.check(Some(&header("alice", "s3cret"))));
        assert_eq!(a.check_cached(Some(&header("alice", "s3cret"))), Some(true));
        assert!(!a.check(Some(&header("alice", "wrong"))));
        assert_eq!(a.check_cached(Some(&header("alice", "wrong"))), Some(false));
        assert_eq!(a.check_cached(None), Some(false));
        assert!(!a.check(Some(&header("bob", "s3cret"))));
        assert!(!a.check(None));
        assert!(!a.check(Some(b"Bearer abc")));
        assert!(!a.check(Some(b"Basic !!!notbase64")));
        assert!(!a.check(Some(&[0xff, 0xfe])));
        assert!(BasicAuth::new(&BTreeMap::new()).is_none());
    }

    #[test]
    fn caches_keep_every_recent_pair_and_skip_long_refused_ones() {
        let mut users = BTreeMap::new();
        users.insert("alice".to_string(), bcrypt::hash("a", 4).unwrap());
        users.insert("carol".to_string(), bcrypt::hash("c", 4).unwrap());
        let a = BasicAuth::new(&users).unwrap();
        // Two accepted and two refused pairs: each remembered (no eviction below the caps).
        assert!(a.check(Some(&header("alice", "a"))));
        assert!(a.check(Some(&header("carol", "c"))));
        assert!(!a.check(Some(&header("alice", "x"))));
        assert!(!a.check(Some(&header("carol", "y"))));
        assert_eq!(a.check_cached(Some(&header("alice", "a"))), Some(true));
        assert_eq!(a.check_cached(Some(&header("carol", "c"))), Some(true));
        assert_eq!(a.check_cached(Some(&header("alice", "x"))), Some(false));
        assert_eq!(a.check_cached(Some(&header("carol", "y"))), Some(false));
        // A refused pair is remembered up to REFUSED_MAX_LEN bytes of user + password, not beyond.
        let fits = "p".repeat(REFUSED_MAX_LEN - "alice".len());
        assert!(!a.check(Some(&header("alice", &fits))));
        assert_eq!(a.check_cached(Some(&header("alice", &fits))), Some(false));
        let long = "p".repeat(REFUSED_MAX_LEN - "alice".len() + 1);
        assert!(!a.check(Some(&header("alice", &long))));
        assert_eq!(a.check_cached(Some(&header("alice", &long))), None);
    }
}
