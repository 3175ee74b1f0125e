//! Six-digit verification codes in Redis, stored as a salted SHA-256 with an expiry, and the
//! limits that keep them from costing money or being guessed:
//!
//! - **Sends:** at most `code_sends_per_number` codes to one number and `code_sends_per_user`
//!   for one account per `code_limit_window`, and none sooner than `code_resend_interval`
//!   after the last one to that number. Over a limit, no SMS goes out and the caller learns
//!   how long to wait.
//! - **Guesses:** at most `code_max_attempts` wrong guesses per number per
//!   `code_limit_window`, counted across re-sent codes (a new code does not reset the count),
//!   and incremented before the comparison, so concurrent guesses cannot exceed it. While
//!   they are used up, no new code is sent either.
//! - **Consumption:** a right guess does not consume the code; [`Codes::consume`] does, once
//!   the caller has stored what the code proved. A failed append leaves the code usable.
//!
//! Each check is one Lua script, so every instance shares the same counts atomically.

use std::time::Duration;

use deadpool_redis::redis::Script;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::PhoneSettings;

/// Codes for one deployment (keys carry the topic prefix).
#[derive(Clone)]
pub struct Codes {
    pool: deadpool_redis::Pool,
    prefix: String,
    limits: CodeLimits,
}

/// The limits of [`Codes`], from `[phones]`.
#[derive(Debug, Clone, Copy)]
pub struct CodeLimits {
    /// How long a code stays valid.
    pub ttl: Duration,
    /// Wrong guesses per number per window.
    pub max_attempts: u32,
    /// Codes sent to one number per window.
    pub sends_per_number: u32,
    /// Codes sent for one account per window.
    pub sends_per_user: u32,
    /// The window of the counts above.
    pub window: Duration,
    /// The least time between two codes to one number.
    pub resend_interval: Duration,
}

impl From<&PhoneSettings> for CodeLimits {
    fn from(s: &PhoneSettings) -> Self {
        CodeLimits {
            ttl: s.code_ttl,
            max_attempts: s.code_max_attempts.max(1),
            sends_per_number: s.code_sends_per_number.max(1),
            sends_per_user: s.code_sends_per_user.max(1),
            window: s.code_limit_window,
            resend_interval: s.code_resend_interval,
        }
    }
}

/// The result of checking a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right code, issued to this user. It stays usable until [`Codes::consume`].
    Valid { user_id: String },
    /// Wrong code; this many guesses remain for the number.
    Wrong { attempts_left: u32 },
    /// The number's wrong guesses are used up: no guess is checked, and no code sent, until
    /// `retry_after` has passed.
    Exhausted { retry_after: Duration },
    /// No code is pending for this number (never issued, expired or used).
    Missing,
}

/// What asking for a new code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issued {
    /// A fresh code, replacing any pending one; it is the caller's to send.
    Code(String),
    /// Over a limit: no code until `retry_after`.
    Limited {
        retry_after: Duration,
        limit: SendLimit,
    },
}

/// Which limit refused a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendLimit {
    /// `code_resend_interval`: the last code to this number is too recent.
    Resend,
    /// `code_sends_per_number`.
    Number,
    /// `code_sends_per_user`.
    User,
    /// `code_max_attempts`: the number's guesses are used up.
    Guesses,
}

impl SendLimit {
    /// For messages: what was exceeded.
    pub fn describe(self) -> &'static str {
        match self {
            SendLimit::Resend => "a code was just sent to this number",
            SendLimit::Number => "too many codes were sent to this number",
            SendLimit::User => "too many codes were sent for this account",
            SendLimit::Guesses => "too many wrong codes were tried for this number",
        }
    }

    fn parse(s: &str) -> SendLimit {
        match s {
            "resend" => SendLimit::Resend,
            "number" => SendLimit::Number,
            "user" => SendLimit::User,
            _ => SendLimit::Guesses,
        }
    }
}

/// Redis did not answer.
#[derive(Debug, thiserror::Error)]
#[error("verification codes are unavailable (Redis: {0}); retry later")]
pub struct CodeStoreError(pub String);

// KEYS: code, sends per number, sends per user, resend cooldown, attempts.
// ARGV: user, salt, hash, ttl ms, window ms, per number, per user, resend ms, max attempts.
const ISSUE: &str = r#"
local function wait(key)
  local t = redis.call('PTTL', key)
  if t < 0 then t = tonumber(ARGV[5]) end
  return t
end
if tonumber(redis.call('GET', KEYS[5]) or '0') >= tonumber(ARGV[9]) then
  return {0, wait(KEYS[5]), 'guesses'}
end
if redis.call('EXISTS', KEYS[4]) == 1 then return {0, wait(KEYS[4]), 'resend'} end
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n >= tonumber(ARGV[6]) then return {0, wait(KEYS[2]), 'number'} end
local u = tonumber(redis.call('GET', KEYS[3]) or '0')
if u >= tonumber(ARGV[7]) then return {0, wait(KEYS[3]), 'user'} end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
if redis.call('INCR', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[5]) end
if tonumber(ARGV[8]) > 0 then redis.call('SET', KEYS[4], 1, 'PX', ARGV[8]) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'salt', ARGV[2], 'hash', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, 0, ''}
"#;

// KEYS: code, attempts. ARGV: max attempts, window ms.
// Returns {'exhausted', wait ms} | {'missing'} | {'check', attempts, user, salt, hash}.
const CHECK: &str = r#"
local a = tonumber(redis.call('GET', KEYS[2]) or '0')
if a >= tonumber(ARGV[1]) then
  local t = redis.call('PTTL', KEYS[2])
  if t < 0 then t = tonumber(ARGV[2]) end
  return {'exhausted', tostring(t)}
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
a = redis.call('INCR', KEYS[2])
if a == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
local v = redis.call('HMGET', KEYS[1], 'user', 'salt', 'hash')
if not v[1] or not v[2] or not v[3] then return {'missing'} end
return {'check', tostring(a), v[1], v[2], v[3]}
"#;

impl Codes {
    /// `prefix` isolates key spaces (the Kafka topic prefix).
    pub fn new(pool: deadpool_redis::Pool, prefix: &str, limits: CodeLimits) -> Codes {
        Codes {
            pool,
            prefix: prefix.to_owned(),
            limits,
        }
    }

    fn key(&self, what: &str, id: &str) -> String {
        format!("{}smsflow:verify:{what}{id}", self.prefix)
    }

    fn code_key(&self, phone: &str) -> String {
        // The key of the code itself predates the limits; kept so pending codes survive.
        self.key("", phone)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, CodeStoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| CodeStoreError(e.to_string()))
    }

    /// A fresh code for `phone` on behalf of `user_id`, replacing any pending one, unless a
    /// limit refuses it. The send is counted here: call this only to send the code.
    pub async fn issue(&self, phone: &str, user_id: &str) -> Result<Issued, CodeStoreError> {
        // uuid's v4 comes from the OS CSPRNG; 128 bits reduced mod 10^6 has negligible bias.
        let code = format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000);
        let salt = uuid::Uuid::new_v4().simple().to_string();
        let hash = digest(&salt, phone, &code);
        let l = &self.limits;
        let (ok, wait_ms, limit): (i64, i64, String) = Script::new(ISSUE)
            .key(self.code_key(phone))
            .key(self.key("sends:number:", phone))
            .key(self.key("sends:user:", user_id))
            .key(self.key("resend:", phone))
            .key(self.key("attempts:", phone))
            .arg(user_id)
            .arg(&salt)
            .arg(&hash)
            .arg(millis(l.ttl))
            .arg(millis(l.window))
            .arg(l.sends_per_number)
            .arg(l.sends_per_user)
            .arg(millis(l.resend_interval))
            .arg(l.max_attempts)
            .invoke_async(&mut *self.conn().await?)
            .await
            .map_err(|e| CodeStoreError(e.to_string()))?;
        Ok(if ok == 1 {
            Issued::Code(code)
        } else {
            Issued::Limited {
                retry_after: Duration::from_millis(wait_ms.max(1) as u64),
                limit: SendLimit::parse(&limit),
            }
        })
    }

    /// Check a guess. A right guess is not consumed here (see [`Codes::consume`]) and does
    /// not count against the number's guesses.
    pub async fn check(&self, phone: &str, guess: &str) -> Result<CodeCheck, CodeStoreError> {
        let attempts_key = self.key("attempts:", phone);
        let mut conn = self.conn().await?;
        let answer: Vec<String> = Script::new(CHECK)
            .key(self.code_key(phone))
            .key(&attempts_key)
            .arg(self.limits.max_attempts)
            .arg(millis(self.limits.window))
            .invoke_async(&mut *conn)
            .await
            .map_err(|e| CodeStoreError(e.to_string()))?;
        let field = |i: usize| answer.get(i).map(String::as_str).unwrap_or_default();
        match field(0) {
            "exhausted" => Ok(CodeCheck::Exhausted {
                retry_after: Duration::from_millis(field(1).parse::<u64>().unwrap_or(1).max(1)),
            }),
            "check" => {
                let attempts: u32 = field(1).parse().unwrap_or(u32::MAX);
                let presented = digest(field(3), phone, guess.trim());
                if bool::from(presented.as_bytes().ct_eq(field(4).as_bytes())) {
                    // A right guess costs nothing.
                    let _: Result<i64, _> = deadpool_redis::redis::cmd("DECR")
                        .arg(&attempts_key)
                        .query_async(&mut *conn)
                        .await;
                    Ok(CodeCheck::Valid {
                        user_id: field(2).to_owned(),
                    })
                } else if attempts >= self.limits.max_attempts {
                    // The last guess: the pending code is void too.
                    let _: Result<i64, _> = deadpool_redis::redis::cmd("DEL")
                        .arg(self.code_key(phone))
                        .query_async(&mut *conn)
                        .await;
                    Ok(CodeCheck::Exhausted {
                        retry_after: self.limits.window,
                    })
                } else {
                    Ok(CodeCheck::Wrong {
                        attempts_left: self.limits.max_attempts - attempts,
                    })
                }
            }
            _ => Ok(CodeCheck::Missing),
        }
    }

    /// The code proved what it had to and that is stored: it is used up, and the number's
    /// wrong guesses are forgotten.
    pub async fn consume(&self, phone: &str) -> Result<(), CodeStoreError> {
        deadpool_redis::redis::pipe()
            .del(self.code_key(phone))
            .del(self.key("attempts:", phone))
            .query_async::<()>(&mut *self.conn().await?)
            .await
            .map_err(|e| CodeStoreError(e.to_string()))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
