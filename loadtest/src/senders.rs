//! The bounded, seed-deterministic set of sender numbers a run uses, so that they can be
//! registered (`smsflow phones link`) before the run once ingress refuses unknown senders.

/// Numbers available under the one area code used: NANP exchanges 200-999, any line number.
const SPACE: u64 = 8_000_000;
/// Stride through the space; coprime to `SPACE`, so `count` numbers are all distinct.
const STRIDE: u64 = 7_919;

/// `count` distinct E.164 numbers (`+1510NXXXXXX`), the same for the same `seed`.
pub fn senders(count: u64, seed: u64) -> Vec<String> {
    let offset = crate::payload::splitmix(seed) % SPACE;
    (0..count.min(SPACE))
        .map(|k| {
            let n = (offset + k * STRIDE) % SPACE;
            format!("+1510{:07}", 2_000_000 + n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn senders_are_distinct_valid_e164_and_depend_only_on_the_seed() {
        let a = senders(1000, 7);
        assert_eq!(a, senders(1000, 7));
        assert_ne!(a, senders(1000, 8));
        assert_eq!(a.iter().collect::<HashSet<_>>().len(), 1000);
        for s in &a {
            assert_eq!(s.len(), 12, "{s}");
            assert!(s.starts_with("+1510"), "{s}");
            assert!(s[5..6] >= *"2", "exchange starts with 2-9: {s}");
            assert!(s[1..].bytes().all(|b| b.is_ascii_digit()), "{s}");
        }
        assert_eq!(senders(10, 7)[..], a[..10], "a smaller set is a prefix");
    }
}
