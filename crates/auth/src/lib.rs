//! Request authentication for Berth's AWS-compatible control plane.
//!
//! Unchanged AWS clients (the aws CLI, boto3, the SDKs with an endpoint override) sign every
//! request with Signature Version 4. This crate checks those signatures and keeps the access
//! keys they are made with:
//!
//! - [`credentials`]: [`CredentialStore`], the key pairs the server accepts, kept in
//!   `<store dir>/credentials` in the AWS shared-credentials format (so a client can point
//!   `AWS_SHARED_CREDENTIALS_FILE` at it). On first start a fresh random pair is written
//!   there atomically with mode 0600. Every profile in the file is accepted; each key pair
//!   belongs to a profile name, the seam where IAM principals and policies attach later.
//! - [`sigv4`]: [`verify`] recomputes the signature of an `http` request (canonical request,
//!   string to sign, signing key) and compares in constant time; [`scope_region`] reads the
//!   region of an unverified request (for `--no-auth`).
//! - [`AuthError`]: every failure, with the code, message and HTTP status AWS's JSON-protocol
//!   services send for it ([`AuthError::aws_code`], `to_string()`, [`AuthError::http_status`]):
//!
//! | situation | code | message |
//! |---|---|---|
//! | no `Authorization` header | `MissingAuthenticationTokenException` | `Missing Authentication Token` |
//! | header lacks parts, no date, bad date format, credential not 5 elements, `host` unsigned | `IncompleteSignatureException` | AWS's text, e.g. `Authorization header requires 'Signature' parameter. ... Authorization=...` |
//! | unknown access key id, or any session token | `UnrecognizedClientException` | `The security token included in the request is invalid.` |
//! | signature differs | `InvalidSignatureException` | `The request signature we calculated does not match ...` |
//! | time more than 5 minutes off | `InvalidSignatureException` | `Signature expired: ... (... - 5 min.)` / `Signature not yet current: ...` |
//! | scope date is not the request's date | `InvalidSignatureException` | `Date in Credential scope does not match YYYYMMDD ...` |
//! | scope region/service/terminator invalid | `InvalidSignatureException` | `Credential should be scoped to a valid region, not '...'. ` (and the like) |
//!
//! All of them are HTTP 400. No input makes this crate panic.

pub mod credentials;
mod error;
pub mod sigv4;
mod time;

#[cfg(test)]
mod suite_tests;

pub use credentials::{CredentialEntry, CredentialStore, Credentials};
pub use error::AuthError;
pub use sigv4::{scope_region, verify, VerifiedRequest};
