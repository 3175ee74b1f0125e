//! The enrich stage's extractors: plain functions from text to items, unit-tested on typed
//! messages and on speech-recognizer transcripts (lowercase, no punctuation, numbers as words).
//! [`stage`] is the Kafka stage around them.
//!
//! Entry points: [`extract()`] for a body or transcript, [`extract_vcard`] for a vCard
//! attachment (see [`is_vcard_content_type`]), and the optional, off-by-default
//! [`LlmClient`] whose items [`merge`] folds into the rule items. All but the LLM client are
//! sync and do no I/O. [`Extractor`] runs them the way the stage does (rule extraction off the
//! async workers, bounded), and [`batch`] is `smsflow extract` on top of it.
//!
//! Where things live: phone numbers in [`phones`], spoken emails and URLs in [`spoken_links`],
//! names in [`names`], places in [`places`], dates in [`datetime`], the embedded name and place
//! lists in [`gazetteer`] (sources in `data/README.md`).
//!
//! Documented rules (details in each module):
//! - Spans are CHARACTER offsets (Unicode scalar values, `start..end`), see [`item`]; for vCard
//!   items, the span covers the property's content line in the card text ([`vcard`]).
//! - Bare hours ("call her at 5") read 1–6 pm, 7–11 am, 12 noon ([`datetime`]).
//! - LLM items whose value is not in the text are dropped; rule items win on the same kind and
//!   normalized value or an overlapping span ([`llm`]).

pub mod batch;
pub mod context;
pub mod datetime;
pub mod extract;
pub mod extractor;
pub mod gazetteer;
pub mod item;
pub mod lex;
pub mod llm;
pub mod names;
pub mod phones;
pub mod places;
pub mod spoken;
pub mod spoken_links;
pub mod stage;
pub mod vcard;

pub use context::Context;
pub use extract::extract;
pub use extractor::{ExtractError, Extractor};
pub use item::{item_id, span_text, Item, ItemKind, Source};
pub use llm::{merge, LlmClient, LlmConfig, LlmError};
pub use vcard::{extract_vcard, is_vcard_content_type, VcardError};
