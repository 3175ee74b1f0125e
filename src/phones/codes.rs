//! Six-digit verification codes in Redis: stored as a salted SHA-256, with an expiry and a
//! hard attempt limit (the counter is incremented before the comparison, so concurrent
//! guesses cannot exceed it).

use std::time::Duration;

use deadpool_redis::redis::AsyncCommands;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Codes for one deployment (keys carry the topic prefix).
#[derive(Clone)]
pub struct Codes {
    pool: deadpool_redis::Pool,
    prefix: String,
    ttl: Duration,
    max_attempts: u32,
}

/// The result of checking a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right code: it is consumed. Carries the user it was issued to.
    Valid { user_id: String },
    /// Wrong code; this many guesses remain.
    Wrong { attempts_left: u32 },
    /// Too many wrong guesses: the code is burned; ask for a new one.
    Exhausted,
    /// No code is pending for this number (never issued, expired or used).
    Missing,
}

/// Redis did not answer.
#[derive(Debug, thiserror::Error)]
#[error("verification codes are unavailable (Redis: {0}); retry later")]
pub struct CodeStoreError(pub String);

impl Codes {
    /// `prefix` isolates key spaces (the Kafka topic prefix).
    pub fn new(
        pool: deadpool_redis::Pool,
        prefix: &str,
        ttl: Duration,
        max_attempts: u32,
    ) -> Codes {
        Codes {
            pool,
            prefix: prefix.to_owned(),
            ttl,
            max_attempts: max_attempts.max(1),
        }
    }

    fn key(&self, phone: &str) -> String {
        format!("{}smsflow:verify:{phone}", self.prefix)
    }

    /// Issue a fresh code for `phone` on behalf of `user_id`, replacing any pending one.
    pub async fn issue(&self, phone: &str, user_id: &str) -> Result<String, CodeStoreError> {
        // uuid's v4 comes from the OS CSPRNG; 128 bits reduced mod 10^6 has negligible bias.
        let code = format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000);
        let salt = uuid::Uuid::new_v4().simple().to_string();
        let hash = digest(&salt, phone, &code);
        let key = self.key(phone);
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| CodeStoreError(e.to_string()))?;
        deadpool_redis::redis::pipe()
            .atomic()
            .del(&key)
            .hset_multiple(&key, &[("user", user_id), ("salt", &salt), ("hash", &hash)])
            .hset(&key, "attempts", 0)
            .pexpire(&key, self.ttl.as_millis() as i64)
            .query_async::<()>(&mut *conn)
            .await
            .map_err(|e| CodeStoreError(e.to_string()))?;
        Ok(code)
    }

    /// Check a guess. A right guess consumes the code.
    pub async fn check(&self, phone: &str, guess: &str) -> Result<CodeCheck, CodeStoreError> {
        let key = self.key(phone);
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| CodeStoreError(e.to_string()))?;
        let exists: bool = conn
            .exists(&key)
            .await
            .map_err(|e| CodeStoreError(e.to_string()))?;
        if !exists {
            return Ok(CodeCheck::Missing);
        }
        let attempts: u32 = conn
            .hincr(&key, "attempts", 1)
            .await
            .map_err(|e| CodeStoreError(e.to_string()))?;
        if attempts > self.max_attempts {
            let _: Result<(), _> = conn.del(&key).await;
            return Ok(CodeCheck::Exhausted);
        }
        let (user, salt, hash): (Option<String>, Option<String>, Option<String>) = conn
            .hget(&key, &["user", "salt", "hash"])
            .await
            .map_err(|e| CodeStoreError(e.to_string()))?;
        let (Some(user), Some(salt), Some(hash)) = (user, salt, hash) else {
            // Expired between the calls.
            return Ok(CodeCheck::Missing);
        };
        let presented = digest(&salt, phone, guess.trim());
        if bool::from(presented.as_bytes().ct_eq(hash.as_bytes())) {
            let _: Result<(), _> = conn.del(&key).await;
            Ok(CodeCheck::Valid { user_id: user })
        } else if attempts >= self.max_attempts {
            let _: Result<(), _> = conn.del(&key).await;
            Ok(CodeCheck::Exhausted)
        } else {
            Ok(CodeCheck::Wrong {
                attempts_left: self.max_attempts - attempts,
            })
        }
    }
}

fn digest(salt: &str, phone: &str, code: &str) -> String {
    let mut h = Sha256::new();
    for part in [salt, phone, code] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// Whether a message body is just a code (what a user texts back to verify).
pub fn looks_like_code(body: &str) -> bool {
    let t = body.trim();
    t.len() == 6 && t.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_six_digits_look_like_a_code() {
        assert!(looks_like_code(" 123456 "));
        assert!(!looks_like_code("12345"));
        assert!(!looks_like_code("1234567"));
        assert!(!looks_like_code("12a456"));
        assert!(!looks_like_code("１２３４５６"));
    }

    #[test]
    fn digests_depend_on_every_input() {
        let a = digest("s", "+15105550142", "123456");
        assert_ne!(a, digest("t", "+15105550142", "123456"));
        assert_ne!(a, digest("s", "+15105550143", "123456"));
        assert_ne!(a, digest("s", "+15105550142", "123457"));
    }
}
