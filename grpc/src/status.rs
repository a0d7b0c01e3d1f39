//! API errors as gRPC statuses.
//!
//! Each [`ApiError`] becomes the gRPC code closest to its HTTP status, and its stable
//! problem `code` (`sold_out`, `version_mismatch`, …) travels in the status details as a
//! `google.rpc.ErrorInfo` with `reason` = the code and `domain` = [`ERROR_DOMAIN`], the
//! standard place gRPC clients of every language look (`grpc-status-details-bin`). Errors
//! a client should retry later also carry a `google.rpc.RetryInfo` (HTTP's
//! `Retry-After`); `restricted` lists its reasons in the ErrorInfo's `reasons` metadata
//! entry, comma-separated, and `misdirected` its hotel's owner in `owner_partition`,
//! `owner_node` and `owner_address`.

use std::collections::HashMap;
use std::time::Duration;

use innkeep_actors::EngineError;
use innkeep_engine::DomainError;
use innkeep_http::ApiError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `domain` of every `google.rpc.ErrorInfo` this API sends.
pub const ERROR_DOMAIN: &str = "innkeep";

/// The gRPC code for an error.
pub fn grpc_code(e: &ApiError) -> Code {
    match e {
        ApiError::Engine(EngineError::Domain(d)) => domain_code(d),
        ApiError::Engine(
            EngineError::Overloaded
            | EngineError::Unavailable(_)
            | EngineError::ShuttingDown
            | EngineError::NotOwner(_),
        )
        | ApiError::NotReady => Code::Unavailable,
        ApiError::Timeout { .. } => Code::DeadlineExceeded,
        ApiError::Engine(EngineError::TooManyHolds { .. })
        | ApiError::RateLimited { .. }
        | ApiError::PayloadTooLarge { .. } => Code::ResourceExhausted,
        ApiError::Unauthorized(_) | ApiError::BadSignature => Code::Unauthenticated,
        ApiError::Forbidden => Code::PermissionDenied,
        ApiError::InvalidRequest(_)
        | ApiError::UnsupportedMediaType(_)
        | ApiError::AmountMismatch(_) => Code::InvalidArgument,
        ApiError::NotFound(_) => Code::NotFound,
        ApiError::MethodNotAllowed => Code::Unimplemented,
        ApiError::EventUnavailable(_) => Code::FailedPrecondition,
        // Another node serves the hotel: retrying here never helps, the owner can.
        ApiError::Misdirected { .. } => Code::FailedPrecondition,
        ApiError::NotOwner { .. } => Code::Unavailable,
    }
}

/// Domain refusals: bad input is `InvalidArgument`; a request that the state forbids
/// (sold out, an illegal transition, restrictions, a key used for another request) is
/// `FailedPrecondition`; a lost race with another change (version, move) is `Aborted`,
/// which gRPC clients read as "re-read and retry".
fn domain_code(d: &DomainError) -> Code {
    match d {
        DomainError::Invalid(_) | DomainError::InvalidStay(_) | DomainError::RatePlan(_) => {
            Code::InvalidArgument
        }
        DomainError::NotFound(_) => Code::NotFound,
        DomainError::SoldOut
        | DomainError::InvalidTransition { .. }
        | DomainError::RoomNotReady { .. }
        | DomainError::NotWithinStay
        | DomainError::RoomInUse(_)
        | DomainError::CurrencyLocked
        | DomainError::NightsSold(_)
        | DomainError::Restricted(_)
        | DomainError::IdempotencyKeyReused
        | DomainError::SoldOutOn(_)
        | DomainError::SoldOutTypes(_) => Code::FailedPrecondition,
        DomainError::LimitReached(_) => Code::ResourceExhausted,
        // Like a lost race, it resolves itself: retrying later can succeed.
        DomainError::VersionMismatch { .. }
        | DomainError::MoveInProgress
        | DomainError::PaymentInProgress => Code::Aborted,
    }
}

/// The gRPC status for an error: its code, the problem's detail as the message, and the
/// problem code in an ErrorInfo (plus RetryInfo where HTTP sends `Retry-After`).
pub fn to_status(e: &ApiError) -> Status {
    let problem = e.problem();
    let mut metadata = HashMap::new();
    if let Some(reasons) = &problem.reasons {
        metadata.insert("reasons".to_owned(), reasons.join(","));
    }
    if let Some(owner) = &problem.owner {
        metadata.insert("owner_partition".to_owned(), owner.partition.clone());
        metadata.insert("owner_node".to_owned(), owner.node.clone());
        metadata.insert("owner_address".to_owned(), owner.address.clone());
    }
    let mut details = ErrorDetails::with_error_info(problem.code, ERROR_DOMAIN, metadata);
    if let Some(secs) = e.retry_after_secs() {
        details.set_retry_info(Some(Duration::from_secs(secs)));
    }
    if e.status().is_server_error() {
        tracing::warn!(code = e.code(), error = %e, "grpc call failed");
    }
    Status::with_error_details(grpc_code(e), problem.detail, details)
}

/// The problem `code` a status carries (its ErrorInfo's `reason` in [`ERROR_DOMAIN`]), for
/// clients and tests.
pub fn problem_code(status: &Status) -> Option<String> {
    status
        .get_details_error_info()
        .filter(|info| info.domain == ERROR_DOMAIN)
        .map(|info| info.reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use innkeep_engine::{Status as ResStatus, ValidationError};

    fn code_and_reason(e: ApiError) -> (Code, Option<String>) {
        let status = to_status(&e);
        (status.code(), problem_code(&status))
    }

    #[test]
    fn every_kind_of_refusal_maps_to_its_grpc_code_with_the_problem_code() {
        let cases: Vec<(ApiError, Code, &str)> = vec![
            (
                ApiError::from(ValidationError::new("guests", "must be at least 1")),
                Code::InvalidArgument,
                "invalid_request",
            ),
            (
                ApiError::from(DomainError::NotFound("hotel")),
                Code::NotFound,
                "not_found",
            ),
            (
                ApiError::from(DomainError::SoldOut),
                Code::FailedPrecondition,
                "sold_out",
            ),
            (
                ApiError::from(DomainError::InvalidTransition {
                    from: ResStatus::Cancelled,
                    action: "check_in",
                }),
                Code::FailedPrecondition,
                "invalid_transition",
            ),
            (
                ApiError::from(DomainError::IdempotencyKeyReused),
                Code::FailedPrecondition,
                "idempotency_key_reused",
            ),
            (
                ApiError::from(DomainError::VersionMismatch {
                    expected: 1,
                    current: 2,
                }),
                Code::Aborted,
                "version_mismatch",
            ),
            (
                ApiError::from(DomainError::MoveInProgress),
                Code::Aborted,
                "move_in_progress",
            ),
            (
                ApiError::RateLimited {
                    retry_after_secs: 3,
                },
                Code::ResourceExhausted,
                "rate_limited",
            ),
            (
                ApiError::Engine(EngineError::TooManyHolds { limit: 5 }),
                Code::ResourceExhausted,
                "too_many_holds",
            ),
            (
                ApiError::Engine(EngineError::Overloaded),
                Code::Unavailable,
                "overloaded",
            ),
            (
                ApiError::Engine(EngineError::ShuttingDown),
                Code::Unavailable,
                "shutting_down",
            ),
            (
                ApiError::Timeout { timeout_ms: 5000 },
                Code::DeadlineExceeded,
                "timeout",
            ),
            (
                ApiError::Unauthorized("unknown API key"),
                Code::Unauthenticated,
                "unauthorized",
            ),
            (ApiError::Forbidden, Code::PermissionDenied, "forbidden"),
            (
                ApiError::PayloadTooLarge { limit_bytes: 1 },
                Code::ResourceExhausted,
                "payload_too_large",
            ),
            (
                ApiError::from(DomainError::SoldOutOn(vec![])),
                Code::FailedPrecondition,
                "sold_out",
            ),
            (
                ApiError::from(DomainError::PaymentInProgress),
                Code::Aborted,
                "payment_in_progress",
            ),
            (
                ApiError::EventUnavailable("gone".to_owned()),
                Code::FailedPrecondition,
                "event_unavailable",
            ),
            (
                ApiError::Misdirected {
                    hotel: "H2".to_owned(),
                    owner: None,
                },
                Code::FailedPrecondition,
                "misdirected",
            ),
            (
                ApiError::NotOwner {
                    partition: "p2".to_owned(),
                },
                Code::Unavailable,
                "not_owner",
            ),
            (
                ApiError::Engine(EngineError::NotOwner(
                    "p2's stream has another writer".to_owned(),
                )),
                Code::Unavailable,
                "not_owner",
            ),
        ];
        for (error, code, reason) in cases {
            let text = error.to_string();
            assert_eq!(
                code_and_reason(error),
                (code, Some(reason.to_owned())),
                "{text}"
            );
        }
    }

    #[test]
    fn retryable_errors_say_when_and_others_do_not() {
        let status = to_status(&ApiError::RateLimited {
            retry_after_secs: 7,
        });
        let retry = status.get_details_retry_info().expect("retry info");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));
        let status = to_status(&ApiError::from(DomainError::SoldOut));
        assert!(status.get_details_retry_info().is_none());
        assert_eq!(
            status.message(),
            ApiError::from(DomainError::SoldOut).to_string()
        );
    }

    #[test]
    fn a_misdirected_call_names_the_hotels_owner() {
        let status = to_status(&ApiError::Misdirected {
            hotel: "H2".to_owned(),
            owner: Some(innkeep_http::cluster::Owner {
                partition: "p2".to_owned(),
                node: "b".to_owned(),
                address: "10.0.0.2:8080".to_owned(),
            }),
        });
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.reason, "misdirected");
        assert_eq!(info.metadata["owner_partition"], "p2");
        assert_eq!(info.metadata["owner_node"], "b");
        assert_eq!(info.metadata["owner_address"], "10.0.0.2:8080");
        assert!(status.message().contains("node b"), "{}", status.message());
    }

    #[test]
    fn storage_internals_stay_out_of_the_message() {
        let status = to_status(&ApiError::Engine(EngineError::Unavailable(
            "/secret/path: EIO".to_owned(),
        )));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            !status.message().contains("/secret/path"),
            "{}",
            status.message()
        );
        assert_eq!(
            problem_code(&status).as_deref(),
            Some("storage_unavailable")
        );
    }

    #[test]
    fn a_status_from_elsewhere_has_no_problem_code() {
        assert_eq!(problem_code(&Status::internal("boom")), None);
    }
}
