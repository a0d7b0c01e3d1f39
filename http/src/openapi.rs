//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations
//! and the wire types' `ToSchema` derives, so the published contract cannot drift from the
//! code that serves it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::routes::{
    availability, board, events, frontdesk, ops, payments, reservations, rooms, selling, setup,
};
use crate::AppState;

/// The document's fixed parts; `paths` are filled in by [`api_router`].
#[derive(OpenApi, Debug)]
#[openapi(
    info(
        title = "Innkeep HTTP API",
        version = "1",
        description = "Actor-based, in-memory hotel reservation engine. Errors are RFC 9457 \
                       application/problem+json with a stable snake_case `code`."
    ),
    paths(openapi_json),
    tags(
        (name = "setup", description = "Hotels, room types, rooms, rates, rate plans and restrictions"),
        (name = "availability", description = "Free rooms and prices"),
        (name = "reservations", description = "Booking and the reservation state machine"),
        (name = "rooms", description = "Live room status"),
        (name = "payments", description = "Payment provider callbacks"),
        (name = "operations", description = "Health, readiness and this document"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer-key scheme, and to every protected operation (see
/// [`crate::auth::ROUTES`]) its security requirement and the 401/403/429 answers the guard
/// can give. Applied to the finished document in [`doc_router`], after the routes exist.
#[derive(Debug)]
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from `innkeep keygen`: `Authorization: Bearer <key>`. Not \
                         needed when the server runs without keys (loopback only).",
                    ))
                    .build(),
            ),
        );
        let problem = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    crate::PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for (method, template, access) in crate::auth::ROUTES {
            if *access == crate::auth::Access::Public {
                continue;
            }
            let Some(item) = doc.paths.paths.get_mut(*template) else {
                continue;
            };
            let op = match *method {
                "GET" => item.get.as_mut(),
                "PUT" => item.put.as_mut(),
                "POST" => item.post.as_mut(),
                _ => None,
            };
            let Some(op) = op else { continue };
            op.security = Some(vec![SecurityRequirement::new(
                "api_key",
                Vec::<String>::new(),
            )]);
            let answers = [
                (
                    "401",
                    "unauthorized: no key, or an unknown one (with WWW-Authenticate: Bearer)",
                ),
                ("403", "forbidden: the key's role may not do this"),
                (
                    "429",
                    "rate_limited (with Retry-After), or too_many_holds when booking",
                ),
            ];
            for (status, what) in answers {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(what).into());
            }
        }
    }
}

/// Every API route, registered together with its OpenAPI operation.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(setup::put_hotel, setup::get_hotel))
        .routes(routes!(setup::put_room_type))
        .routes(routes!(setup::put_room))
        .routes(routes!(setup::put_rate))
        .routes(routes!(selling::put_rate_plan))
        .routes(routes!(selling::get_rate_plans))
        .routes(routes!(
            selling::put_restrictions,
            selling::get_restrictions
        ))
        .routes(routes!(availability::get_availability))
        .routes(routes!(reservations::book))
        .routes(routes!(reservations::get_reservation))
        .routes(routes!(reservations::cancel))
        .routes(routes!(reservations::check_in))
        .routes(routes!(reservations::check_out))
        .routes(routes!(reservations::move_reservation))
        .routes(routes!(rooms::list_rooms))
        .routes(routes!(rooms::put_housekeeping))
        .routes(routes!(rooms::set_out_of_order))
        .routes(routes!(rooms::clear_out_of_order))
        .routes(routes!(events::events))
        .routes(routes!(payments::notify))
        .routes(routes!(payments::get_payment))
        .routes(routes!(payments::sandbox_ledger))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(crate::metrics::metrics))
        .routes(routes!(frontdesk::front_desk))
        .routes(routes!(board::board))
}

/// The serialized document, rendered once at start-up.
#[derive(Debug)]
pub struct OpenApiJson(String);

/// `GET /openapi.json`, serving `doc`.
pub fn doc_router(mut doc: utoipa::openapi::OpenApi) -> Router {
    utoipa::Modify::modify(&Security, &mut doc);
    let json = doc.to_json().unwrap_or_else(|_| "{}".to_owned());
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .with_state(Arc::new(OpenApiJson(json)))
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json(State(doc): State<Arc<OpenApiJson>>) -> Response {
    let mut res = doc.0.clone().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
