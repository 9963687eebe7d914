//! The crate's one error type.

use std::io;

/// What went wrong in the image store. Messages are lowercase and say what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image matches the reference (name, id or id prefix).
    #[error("no such image: {0}")]
    NotFound(String),
    /// The reference is not a valid image name, tag, digest or id.
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    /// An id prefix matches more than one image.
    #[error("ambiguous image id prefix {0}: it matches several images, give more characters")]
    Ambiguous(String),
    /// An archive or layer is malformed, truncated or fails digest verification.
    #[error("invalid archive: {0}")]
    InvalidArchive(String),
    /// Stored content does not match its digest or is unreadable.
    #[error("corrupt image store: {0}")]
    Corrupt(String),
    /// A feature of the input that Berth does not support (e.g. an xz-compressed layer).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The operation conflicts with the store's state (e.g. deleting an image by id that has
    /// several tags without `force`).
    #[error("conflict: {0}")]
    Conflict(String),
    /// An I/O failure, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }

    /// An archive problem.
    pub fn archive(msg: impl Into<String>) -> Self {
        ImageError::InvalidArchive(msg.into())
    }
}

/// Adds context to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, ImageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, ImageError> {
        self.map_err(|e| ImageError::io(context(), e))
    }
}
