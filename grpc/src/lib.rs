//! `innkeep-grpc`: Innkeep's gRPC API v1 (`proto/innkeep/v1/innkeep.proto`, package
//! `innkeep.v1`) on tonic.
//!
//! The same operations as the HTTP API over the same [`innkeep_actors::Engine`] facade,
//! and the same protection: [`innkeep_http::auth::authorize_call`] authenticates the
//! `authorization: Bearer <key>` metadata, spends the caller's rate-limit token and checks
//! hotel scope and role; an overloaded shard sheds a call before that; each call has the
//! HTTP request deadline; connections count against HTTP's caps ([`incoming`]); a message
//! is at most [`innkeep_http::BODY_LIMIT_BYTES`]. Inputs
//! go through the engine's parsers and the HTTP layer's own validation functions
//! ([`convert`]), and every refusal is an [`innkeep_http::ApiError`] turned into a gRPC
//! status whose details carry its problem `code` ([`status`]).
//!
//! The code is generated at build time by `build.rs` with `protox` (no system `protoc`).

pub mod convert;
pub mod incoming;
pub mod service;
pub mod status;

/// The generated messages, server and client of `innkeep.v1`.
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod pb {
    tonic::include_proto!("innkeep.v1");
}

pub use service::{serve, GrpcState, InnkeepService};
pub use status::{problem_code, ERROR_DOMAIN};

/// The tonic this crate was built with, so clients use the same version.
pub use tonic;
/// Reads the standard status details (`StatusExt::get_details_error_info`), for clients.
pub use tonic_types;
