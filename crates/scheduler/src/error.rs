//! The crate's one error type. Every variant is a client error: the control plane maps all of
//! them to ECS's `InvalidParameterException` (HTTP 400), see [`SchedulerError::ecs_error_code`].

/// Why a placement request (or one of its expressions) was rejected.
///
/// Positions are byte offsets from 0 into the expression text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// A cluster query language expression does not parse.
    #[error("invalid expression at position {position}: expected {expected}, found {found}")]
    InvalidExpression {
        position: usize,
        expected: String,
        found: String,
    },
    /// A `=~`/`!~` argument is not a valid regular expression.
    #[error("invalid regular expression at position {position}: {reason}")]
    InvalidRegex { position: usize, reason: String },
    /// A `registeredAt` argument is not one of the accepted date forms.
    #[error(
        "invalid date `{found}` at position {position}: use 2018-06-18, 2018-06-18T22:28:28, \
         2018-06-18T22:28:28Z or 2018-06-18T22:28:28+00:00"
    )]
    InvalidDate { position: usize, found: String },
    /// An expression longer than ECS's limit (2000 characters).
    #[error("expression is {length} characters long; the limit is {limit}")]
    ExpressionTooLong { length: usize, limit: usize },
    /// A placement constraint that is not `distinctInstance` or `memberOf` with an expression.
    #[error("invalid placement constraint: {reason}")]
    InvalidConstraint { reason: String },
    /// A placement strategy with an unknown type or field, or too many strategies.
    #[error("invalid placement strategy: {reason}")]
    InvalidStrategy { reason: String },
    /// Task resources the scheduler cannot place (for example a host port mapped twice).
    #[error("invalid task resources: {reason}")]
    InvalidTask { reason: String },
}

impl SchedulerError {
    /// The ECS error code the API edge answers with.
    pub fn ecs_error_code(&self) -> &'static str {
        "InvalidParameterException"
    }
}
