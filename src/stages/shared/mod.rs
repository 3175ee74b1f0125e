//! Helpers more than one stage uses, so that no stage reaches into another: the media store,
//! derived event ids, content types and HTTP `Retry-After`.

pub mod content_type;
pub mod event_ids;
pub mod http;
pub mod media_store;
