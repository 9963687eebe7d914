//! The crate's one error type, [`AuthError`], and its mapping to AWS's wire errors.

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
///
/// Request failures (the variants whose [`AuthError::aws_code`] is `Some`) display exactly
/// the message AWS sends for them, so the server can put `to_string()` into the `message`
/// field of its JSON error. The other variants are about the credentials file and display a
/// lowercase message for the operator.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request carries no `Authorization` header.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The `Authorization` header, its credential or the date header is malformed or
    /// incomplete; the text is AWS's.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The access key id is unknown, or the request carries a session token (none are issued).
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// The signature does not match the one computed from the request and the secret key.
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    SignatureMismatch,
    /// The request fails a signature rule: its time is outside the allowed window
    /// ("Signature expired: ...", "Signature not yet current: ..."), the credential scope's
    /// date differs from the request's, or the scope names an invalid region, service or
    /// terminator ("Credential should be scoped to ..."). The text is AWS's.
    #[error("{0}")]
    InvalidSignature(String),
    /// The credentials file could not be read or written.
    #[error("credentials file {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The credentials file exists but is not a valid AWS shared-credentials file.
    #[error("malformed credentials file {path}, line {line}: {reason} (fix the file, or move it away to have a new key pair created)")]
    MalformedCredentials {
        /// The file.
        path: PathBuf,
        /// 1-based line number the problem was found at.
        line: usize,
        /// What is wrong there.
        reason: String,
    },
}

impl AuthError {
    /// The AWS error code a client sees, e.g. `"MissingAuthenticationTokenException"`,
    /// `"UnrecognizedClientException"`, `"InvalidSignatureException"`,
    /// `"IncompleteSignatureException"`; `None` for errors that are not about a request
    /// (the credentials file could not be read or written).
    pub fn aws_code(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingAuthenticationToken => Some("MissingAuthenticationTokenException"),
            AuthError::IncompleteSignature(_) => Some("IncompleteSignatureException"),
            AuthError::UnrecognizedClient => Some("UnrecognizedClientException"),
            AuthError::SignatureMismatch | AuthError::InvalidSignature(_) => {
                Some("InvalidSignatureException")
            }
            AuthError::Io { .. } | AuthError::MalformedCredentials { .. } => None,
        }
    }

    /// The HTTP status AWS uses for it: 400 for every authentication error of the JSON 1.0/1.1
    /// protocols (ECS, ECR, DynamoDB, Kinesis, ... answer `400 Bad Request`), 500 for the
    /// errors that are not about the request.
    pub fn http_status(&self) -> u16 {
        if self.aws_code().is_some() {
            400
        } else {
            500
        }
    }

    /// The message to send in the wire error's `message` field (the same as `to_string()`).
    pub fn aws_message(&self) -> String {
        self.to_string()
    }
}
