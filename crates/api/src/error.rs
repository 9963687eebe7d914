//! [`EcsError`]: every failure a client can see, each with its ECS error code.

/// An ECS API error: the variant is the `__type` code, the string the `message`.
///
/// All of them are HTTP 400 except [`EcsError::Server`] (500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EcsError {
    #[error("{0}")]
    Client(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    ClusterNotFound(String),
    #[error("{0}")]
    ClusterContainsContainerInstances(String),
    #[error("{0}")]
    ClusterContainsTasks(String),
    #[error("{0}")]
    ClusterContainsServices(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    TargetNotFound(String),
    #[error("{0}")]
    AttributeLimitExceeded(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    UpdateInProgress(String),
    /// A request that conflicts with an earlier one (a RunTask clientToken reused with other
    /// parameters).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    AccessDenied(String),
    /// Secrets Manager: the request is not valid for the resource's state (a secret marked
    /// for deletion).
    #[error("{0}")]
    InvalidRequest(String),
    /// Secrets Manager: a resource with that name exists.
    #[error("{0}")]
    ResourceExists(String),
    /// Another service's error code as it is (SSM's `ParameterNotFound`, ...), HTTP 400.
    #[error("{message}")]
    Service { code: &'static str, message: String },
    #[error("{0}")]
    UnsupportedFeature(String),
    /// The request body is not the JSON the operation takes.
    #[error("{0}")]
    Serialization(String),
    /// The `X-Amz-Target` names no operation.
    #[error("{0}")]
    UnknownOperation(String),
    /// An authentication failure; the code comes from the auth layer
    /// (`UnrecognizedClientException`, `InvalidSignatureException`, ...).
    #[error("{message}")]
    Auth {
        code: &'static str,
        status: u16,
        message: String,
    },
    /// The server failed (store I/O, a bug); HTTP 500.
    #[error("{0}")]
    Server(String),
}

impl EcsError {
    /// The `__type` a client sees.
    pub fn code(&self) -> &'static str {
        match self {
            EcsError::Client(_) => "ClientException",
            EcsError::InvalidParameter(_) => "InvalidParameterException",
            EcsError::ClusterNotFound(_) => "ClusterNotFoundException",
            EcsError::ClusterContainsContainerInstances(_) => {
                "ClusterContainsContainerInstancesException"
            }
            EcsError::ClusterContainsTasks(_) => "ClusterContainsTasksException",
            EcsError::ClusterContainsServices(_) => "ClusterContainsServicesException",
            EcsError::ResourceNotFound(_) => "ResourceNotFoundException",
            EcsError::TargetNotFound(_) => "TargetNotFoundException",
            EcsError::AttributeLimitExceeded(_) => "AttributeLimitExceededException",
            EcsError::LimitExceeded(_) => "LimitExceededException",
            EcsError::UpdateInProgress(_) => "UpdateInProgressException",
            EcsError::Conflict(_) => "ConflictException",
            EcsError::AccessDenied(_) => "AccessDeniedException",
            EcsError::InvalidRequest(_) => "InvalidRequestException",
            EcsError::ResourceExists(_) => "ResourceExistsException",
            EcsError::Service { code, .. } => code,
            EcsError::UnsupportedFeature(_) => "UnsupportedFeatureException",
            EcsError::Serialization(_) => "SerializationException",
            EcsError::UnknownOperation(_) => "UnknownOperationException",
            EcsError::Auth { code, .. } => code,
            EcsError::Server(_) => "ServerException",
        }
    }

    /// The HTTP status: 500 for [`EcsError::Server`], the auth layer's for auth errors, else 400.
    pub fn http_status(&self) -> u16 {
        match self {
            EcsError::Server(_) => 500,
            EcsError::Auth { status, .. } => *status,
            _ => 400,
        }
    }

    /// The JSON body: `{"__type": CODE, "message": MESSAGE}`.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "__type": self.code(),
            "message": self.to_string(),
        }))
        .unwrap_or_default()
    }

    /// Shorthand constructors.
    pub fn invalid(message: impl Into<String>) -> Self {
        EcsError::InvalidParameter(message.into())
    }
    pub fn client(message: impl Into<String>) -> Self {
        EcsError::Client(message.into())
    }
    pub fn cluster_not_found() -> Self {
        EcsError::ClusterNotFound("Cluster not found.".into())
    }
    pub fn server(message: impl std::fmt::Display) -> Self {
        EcsError::Server(format!("server error: {message}"))
    }
}

impl From<berth_scheduler::SchedulerError> for EcsError {
    fn from(e: berth_scheduler::SchedulerError) -> Self {
        EcsError::InvalidParameter(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let e = EcsError::cluster_not_found();
        assert_eq!(e.code(), "ClusterNotFoundException");
        assert_eq!(e.http_status(), 400);
        assert_eq!(EcsError::server("boom").http_status(), 500);
        let body: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(body["__type"], "ClusterNotFoundException");
        assert_eq!(body["message"], "Cluster not found.");
    }
}
