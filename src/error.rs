//! The one error type handlers return, and its single mapping to gRPC and HTTP.
//!
//! Messages name the offending field and never carry SQL, driver text or stack traces: internal
//! details are logged (with the request id) where they arise.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tonic::{Code, Status};

use crate::cache::CacheError;
use crate::store::StoreError;

/// An error a caller may see.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing, malformed or too large.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The field, as named in the proto (`workspace_id`, `items[3].action`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Bad, expired or revoked credential. The message never says which.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The call lacks a credential its RPC needs; the message names the headers it takes.
    #[error("{0}")]
    CredentialMissing(String),
    /// Authenticated but not allowed.
    #[error("{0}")]
    PermissionDenied(String),
    /// The addressed entity does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(String),
    /// The entity already exists; the text says what (a whole sentence).
    #[error("{0}")]
    AlreadyExists(String),
    /// The system is not in a state that allows the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Rate limit reached; the caller may retry after the delay.
    #[error("rate limit exceeded; retry in {}s", retry_after.as_secs().max(1))]
    ResourceExhausted {
        /// When the window resets.
        retry_after: Duration,
    },
    /// A dependency (database, cache) is down.
    #[error("service temporarily unavailable")]
    Unavailable,
    /// A bug or unexpected state; details were logged.
    #[error("internal error")]
    Internal,
}

impl Error {
    /// An INVALID_ARGUMENT naming `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn code(&self) -> Code {
        match self {
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::Unauthenticated(_) | Error::CredentialMissing(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::ResourceExhausted { .. } => Code::ResourceExhausted,
            Error::Unavailable => Code::Unavailable,
            Error::Internal => Code::Internal,
        }
    }

    /// The HTTP status the same error maps to (common.proto, "Errors").
    pub fn http_status(&self) -> StatusCode {
        match self {
            Error::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthenticated(_) | Error::CredentialMissing(_) => StatusCode::UNAUTHORIZED,
            Error::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::AlreadyExists(_) => StatusCode::CONFLICT,
            Error::FailedPrecondition(_) => StatusCode::PRECONDITION_FAILED,
            Error::ResourceExhausted { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC code name used in JSON error bodies (`INVALID_ARGUMENT`, …).
    pub fn code_name(&self) -> &'static str {
        match self.code() {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Unavailable => "UNAVAILABLE",
            _ => "INTERNAL",
        }
    }
}

/// Whole seconds to wait, rounded up, at least one.
pub fn retry_after_secs(delay: Duration) -> u64 {
    (delay.as_secs() + u64::from(delay.subsec_nanos() > 0)).max(1)
}

impl From<crate::model::Invalid> for Status {
    fn from(invalid: crate::model::Invalid) -> Self {
        Error::from(invalid).into()
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let mut status = Status::new(err.code(), err.to_string());
        if let Error::ResourceExhausted { retry_after } = &err {
            let secs = retry_after_secs(*retry_after).to_string();
            if let Ok(value) = secs.parse() {
                status.metadata_mut().insert("retry-after", value);
            }
        }
        status
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable => Error::Unavailable,
            StoreError::Conflict(what) => Error::AlreadyExists(format!("{what} already exists")),
            StoreError::NotFound(what) => Error::NotFound(what.to_string()),
            StoreError::Internal => Error::Internal,
        }
    }
}

impl From<crate::model::Invalid> for Error {
    fn from(invalid: crate::model::Invalid) -> Self {
        Error::InvalidArgument {
            field: invalid.field,
            reason: invalid.reason,
        }
    }
}

impl From<CacheError> for Error {
    fn from(err: CacheError) -> Self {
        match err {
            CacheError::Unavailable => Error::Unavailable,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.http_status();
        let body = serde_json::json!({ "code": self.code_name(), "message": self.to_string() });
        let mut response = (status, axum::Json(body)).into_response();
        if let Error::ResourceExhausted { retry_after } = &self
            && let Ok(value) = retry_after_secs(*retry_after).to_string().parse()
        {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_never_become_internal_by_accident() {
        assert_eq!(
            Status::from(Error::from(StoreError::Conflict("workspace slug"))).code(),
            Code::AlreadyExists
        );
        assert_eq!(
            Status::from(Error::from(StoreError::Unavailable)).code(),
            Code::Unavailable
        );
    }

    #[test]
    fn resource_exhausted_carries_retry_after() {
        let status = Status::from(Error::ResourceExhausted {
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.metadata().get("retry-after").unwrap(), "2");
        let response = Error::ResourceExhausted {
            retry_after: Duration::from_secs(3),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "3");
    }

    #[test]
    fn invalid_argument_names_the_field() {
        let status = Status::from(Error::invalid("workspace_id", "must be a UUID"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "workspace_id: must be a UUID");
    }
}
