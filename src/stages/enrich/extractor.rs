//! The extraction the enrich stage and `smsflow extract` share: the rule extractors, run off
//! the async workers on a bounded number of blocking threads, then the optional LLM.
//!
//! Rule extraction is plain CPU work (regexes and lookups; a large vCard takes milliseconds),
//! so it must not hold an async worker: each call runs in `spawn_blocking`, and at most one
//! call per CPU runs at a time. Callers beyond that wait for a permit, which pushes back on
//! the consumer instead of growing the blocking pool.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{extract, extract_vcard, merge, Context, Item, LlmClient, LlmConfig, LlmError};
use super::{Source, VcardError};

/// Why extraction produced no answer for an input.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// An extractor panicked: a bug, and the same input will panic again.
    #[error("an extractor panicked on this input (a bug: please report it with the input)")]
    Panicked,
    /// The process is shutting down.
    #[error("extraction was cancelled because the process is shutting down")]
    Cancelled,
}

/// Rule extractors plus the optional LLM, with the CPU bound described above.
#[derive(Clone)]
pub struct Extractor {
    llm: Option<Arc<LlmClient>>,
    permits: Arc<Semaphore>,
}

impl Extractor {
    /// An extractor with the LLM of `llm` (none when it is off, the default).
    pub fn new(llm: &LlmConfig) -> Result<Extractor, LlmError> {
        Ok(Extractor::with_llm(LlmClient::new(llm)?))
    }

    /// An extractor with the given LLM client, if any.
    pub fn with_llm(llm: Option<LlmClient>) -> Extractor {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Extractor {
            llm: llm.map(Arc::new),
            permits: Arc::new(Semaphore::new(cpus)),
        }
    }

    /// Rule items of a body or transcript, plus the LLM's when configured. An LLM failure
    /// never fails the text: the rule items stand alone (logged).
    pub async fn text(
        &self,
        text: &str,
        source: Source,
        ctx: &Context,
    ) -> Result<Vec<Item>, ExtractError> {
        let owned = text.to_owned();
        let c = *ctx;
        let rules = self.blocking(move || extract(&owned, source, &c)).await?;
        let Some(llm) = &self.llm else {
            return Ok(rules);
        };
        match llm.extract(text, source, ctx).await {
            Ok(more) => Ok(merge(rules, more)),
            Err(e) => {
                tracing::warn!(error = %e, "LLM extractor failed; using rule items only");
                Ok(rules)
            }
        }
    }

    /// The items of a vCard attachment, or why the card is unreadable.
    pub async fn vcard(
        &self,
        bytes: Vec<u8>,
        ctx: &Context,
    ) -> Result<Result<Vec<Item>, VcardError>, ExtractError> {
        let c = *ctx;
        self.blocking(move || extract_vcard(&bytes, &c)).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ExtractError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ExtractError::Cancelled)?;
        tokio::task::spawn_blocking(work).await.map_err(|e| {
            if e.is_panic() {
                ExtractError::Panicked
            } else {
                ExtractError::Cancelled
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context::new(
            Some(phonenumber::country::Id::US),
            1_795_888_800_000_000,
            chrono_tz::America::Los_Angeles,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn text_and_vcards_are_extracted_off_the_async_workers() {
        let x = Extractor::with_llm(None);
        let items = x
            .text("call Dana Reyes at 510-555-0142", Source::Body, &ctx())
            .await
            .expect("extracts");
        assert!(items.iter().any(|i| i.normalized == "+15105550142"));
        let card =
            b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Kim Tran\r\nTEL:+1 408 555 0111\r\nEND:VCARD\r\n";
        let items = x
            .vcard(card.to_vec(), &ctx())
            .await
            .expect("runs")
            .expect("reads");
        assert!(items.iter().any(|i| i.normalized == "+14085550111"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_calls_all_finish_within_the_cpu_bound() {
        let x = Extractor::with_llm(None);
        let big = "call 510-555-0142 tomorrow at 5 ".repeat(300);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (x, big) = (x.clone(), big.clone());
            tasks.spawn(async move { x.text(&big, Source::Body, &ctx()).await.map(|i| i.len()) });
        }
        while let Some(done) = tasks.join_next().await {
            assert!(done.expect("task").expect("extracts") >= 2);
        }
        assert_eq!(
            x.permits.available_permits(),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
    }
}
