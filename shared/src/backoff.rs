//! The one back-off: exponential, capped, with the jitter each caller needs.
//! Three policies use it: a retried store request, a retried Salesforce
//! request, and a message SQS redelivers.

use std::time::Duration;

use rand::Rng;

/// How much of the delay is drawn at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The delay itself (SQS redelivery: each message already has its own clock).
    None,
    /// Between half the delay and the delay: spreads retries, never retries at once.
    Half,
    /// Between zero and the delay ("full jitter"): spreads contending writers most.
    Full,
}

/// `base × 2^attempt`, at most `cap`, then jittered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub jitter: Jitter,
}

impl Backoff {
    /// A DynamoDB, Secrets Manager or SQS request that failed transiently or was
    /// throttled: up to 50 ms, 100 ms, … 2 s.
    pub const STORE: Backoff = Backoff {
        base: Duration::from_millis(50),
        cap: Duration::from_secs(2),
        jitter: Jitter::Full,
    };
    /// A Salesforce request that failed transiently (5xx, lock, busy token
    /// endpoint): 100–200 ms, then 200–400 ms, … 2.5–5 s.
    pub const SALESFORCE: Backoff = Backoff {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(5),
        jitter: Jitter::Half,
    };
    /// A message to be retried: SQS redelivers it after 30 s, 1 min, 2 min, …
    /// 15 min (attempt 0 is the first delivery).
    pub const SQS_REDELIVERY: Backoff = Backoff {
        base: Duration::from_secs(30),
        cap: Duration::from_secs(900),
        jitter: Jitter::None,
    };

    /// The pause before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let drawn = match self.jitter {
            Jitter::None => ms,
            Jitter::Half => rand::thread_rng().gen_range(ms / 2..=ms),
            Jitter::Full => rand::thread_rng().gen_range(0..=ms),
        };
        Duration::from_millis(drawn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redelivery_doubles_from_30_seconds_to_15_minutes() {
        let d = |n| Backoff::SQS_REDELIVERY.delay(n).as_secs();
        assert_eq!([d(0), d(1), d(3), d(5), d(40)], [30, 60, 240, 900, 900]);
    }

    #[test]
    fn jittered_delays_stay_within_their_bounds() {
        for attempt in 0..40 {
            let store = Backoff::STORE.delay(attempt);
            let ceiling = Duration::from_millis((50u64 << attempt.min(16)).min(2_000));
            assert!(store <= ceiling, "{attempt}: {store:?}");
            let sf = Backoff::SALESFORCE.delay(attempt);
            let ceiling = Duration::from_millis((200u64 << attempt.min(16)).min(5_000));
            assert!(sf <= ceiling && sf >= ceiling / 2, "{attempt}: {sf:?}");
        }
    }
}
