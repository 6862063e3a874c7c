//! The webhook delivery settings (`webhook-queue-max`, `webhook-timeout`,
//! `webhook-max-retries`, `webhook-retry-base`). Kept apart from `config.rs` so that file stays
//! small; [`crate::config::Config::set`] hands every name it does not know to
//! [`WebhookConfig::set`]. All of them may be changed by `CONFIG SET` and take effect for the
//! next delivery.

use super::ConfigError;

/// Webhook delivery settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Deliveries waiting to be sent; past it the oldest waiting one is dropped and counted
    /// (`webhook-queue-max`, default 10000, at least 1).
    pub queue_max: usize,
    /// Milliseconds one attempt may take, connect to response (`webhook-timeout`, default
    /// 5000, at least 1).
    pub timeout_ms: u64,
    /// Attempts after the first failed one (`webhook-max-retries`, default 3).
    pub max_retries: u32,
    /// Milliseconds before the first retry; each next retry waits twice as long
    /// (`webhook-retry-base`, default 1000, at least 1).
    pub retry_base_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            queue_max: 10_000,
            timeout_ms: 5_000,
            max_retries: 3,
            retry_base_ms: 1_000,
        }
    }
}

/// The webhook settings `CONFIG SET` may change (all of them).
pub const MUTABLE: &[&str] = &[
    "webhook-queue-max",
    "webhook-timeout",
    "webhook-max-retries",
    "webhook-retry-base",
];

/// Upper bounds: a day of timeout or backoff, a million waiting deliveries, 100 retries.
const MAX_MS: u64 = 86_400_000;
const MAX_QUEUE: u64 = 1_000_000;
const MAX_RETRIES: u64 = 100;

impl WebhookConfig {
    /// Sets `name` if it is a webhook setting: `None` when it is not one.
    pub fn set(&mut self, name: &str, value: &str) -> Option<Result<(), ConfigError>> {
        let bounds = match name {
            "webhook-queue-max" => (1, MAX_QUEUE),
            "webhook-timeout" | "webhook-retry-base" => (1, MAX_MS),
            "webhook-max-retries" => (0, MAX_RETRIES),
            _ => return None,
        };
        let n = match value.trim().parse::<u64>() {
            Ok(n) if (bounds.0..=bounds.1).contains(&n) => n,
            _ => {
                return Some(Err(ConfigError::Invalid(format!(
                    "argument '{value}' is invalid for '{name}' (an integer from {} to {})",
                    bounds.0, bounds.1
                ))))
            }
        };
        match name {
            // Within MAX_QUEUE and MAX_RETRIES, so the conversions cannot fail.
            "webhook-queue-max" => self.queue_max = n as usize,
            "webhook-timeout" => self.timeout_ms = n,
            "webhook-retry-base" => self.retry_base_ms = n,
            _ => self.max_retries = n as u32,
        }
        Some(Ok(()))
    }

    /// Every webhook setting with its value, as `CONFIG GET` reports them.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("webhook-queue-max", self.queue_max.to_string()),
            ("webhook-timeout", self.timeout_ms.to_string()),
            ("webhook-max-retries", self.max_retries.to_string()),
            ("webhook-retry-base", self.retry_base_ms.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_within_bounds_and_ignore_other_names() {
        let mut c = WebhookConfig::default();
        assert!(c.set("port", "1").is_none());
        c.set("webhook-queue-max", "5").unwrap().unwrap();
        c.set("webhook-max-retries", "0").unwrap().unwrap();
        c.set("webhook-retry-base", "10").unwrap().unwrap();
        c.set("webhook-timeout", "250").unwrap().unwrap();
        assert_eq!(
            c,
            WebhookConfig {
                queue_max: 5,
                timeout_ms: 250,
                max_retries: 0,
                retry_base_ms: 10
            }
        );
        for (k, v) in [
            ("webhook-queue-max", "0"),
            ("webhook-timeout", "-1"),
            ("webhook-max-retries", "101"),
            ("webhook-retry-base", "x"),
        ] {
            assert!(c.set(k, v).unwrap().is_err(), "{k} {v}");
        }
    }
}
