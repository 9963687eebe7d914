//! [`ServerError`]: failures of the server itself (not of a request).

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("serving http failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("reading the listener's address failed: {0}")]
    Address(#[source] std::io::Error),
}
