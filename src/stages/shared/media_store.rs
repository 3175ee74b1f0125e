//! The media store: a local folder by default, S3 by configuration, through `object_store`.
//! The media stage writes attachments to it; transcribe and enrich read them back.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    #[error("media.store_url {url:?} is not usable: {detail}")]
    Invalid { url: String, detail: String },
}

/// Open the store named by `url` (`file:///dir` or `s3://bucket/prefix`; S3 credentials and
/// region come from the usual `AWS_*` variables).
pub fn open(url: &str) -> Result<(Arc<dyn ObjectStore>, Path), StoreOpenError> {
    let invalid = |detail: String| StoreOpenError::Invalid {
        url: url.to_owned(),
        detail,
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if parsed.scheme() == "file" {
        let dir = parsed
            .to_file_path()
            .map_err(|_| invalid("not an absolute file path".into()))?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| invalid(format!("cannot create {}: {e}", dir.display())))?;
        let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| invalid(e.to_string()))?;
        return Ok((Arc::new(fs), Path::default()));
    }
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let (store, prefix) =
        object_store::parse_url_opts(&parsed, env).map_err(|e| invalid(e.to_string()))?;
    Ok((Arc::from(store), prefix))
}

/// Where attachment `index` of `message_sid` lives: a retry overwrites the same object.
pub fn object_path(prefix: &Path, message_sid: &str, index: usize) -> Path {
    let sid: String = message_sid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    prefix.child("media").child(sid).child(index.to_string())
}
