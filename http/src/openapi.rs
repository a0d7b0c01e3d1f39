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

use crate::constraints;
use crate::routes::{
    availability, board, bookings, events, frontdesk, ops, payments, reservations, rooms, selling,
    setup, webhooks,
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
    // The constraint schemas, also those only parameters use (not collected with them).
    components(schemas(
        constraints::Code,
        constraints::CivilDate,
        constraints::ReservationId,
        constraints::OutTradeNo,
        constraints::CurrencyCode,
        constraints::TimeZoneName,
        constraints::DisplayName,
        constraints::OutOfOrderReason,
        constraints::PhoneNumber,
        constraints::EmailAddress,
        constraints::TradeNo,
        constraints::AmountMinor,
        constraints::Capacity,
        constraints::FeeNights,
        constraints::FeePercent,
        constraints::Weekday,
        constraints::IfMatch,
        constraints::LastEventId,
        constraints::EmptyObject,
        constraints::WebhookUrl,
        constraints::WebhookHotel,
        constraints::WebhookEventType,
        constraints::WebhookSecret,
        constraints::EventId,
    )),
    tags(
        (name = "setup", description = "Hotels, room types, rooms, rates, rate plans and restrictions"),
        (name = "availability", description = "Free rooms and prices"),
        (name = "reservations", description = "Booking and the reservation state machine"),
        (name = "rooms", description = "Live room status"),
        (name = "payments", description = "Payment provider callbacks"),
        (name = "webhooks", description = "Signed outbound webhooks: the event stream POSTed to a URL"),
        (name = "operations", description = "Health, readiness and this document"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer-key scheme, and to every operation the answers the layers around its
/// handler can give, which its own annotation does not list: for a protected one (see
/// [`crate::auth::ROUTES`]) its security requirement and 401/403, and 404 on a hotel
/// route (a hotel the key does not cover); 421 `misdirected` where a hotel or a loaded
/// reservation's hotel may be served by another node of a cluster; 400 where a path
/// segment may not decode; 429 where the rate limiter runs (everything but the probes);
/// 413 where a body is read; 503 `timeout` (the request deadline), `not_ready` (while the
/// server recovers; not `/healthz`), on `/v1/` routes `overloaded` (shed before the
/// handler), and on those that change the engine's state `not_owner` (a fenced node of a
/// cluster). Also fixes what utoipa cannot say (`RestrictionSet`'s `minProperties`, an
/// action's optional body). Applied to the finished document in [`doc_router`], after the
/// routes exist.
#[derive(Debug)]
struct Layers;

/// The problem+json answer `what`.
fn problem(what: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(what)
        .content(
            crate::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// Adds `status` to `op` as `what`, or, when `op` already lists it, appends to its
/// description each of `codes` it does not mention yet.
fn answers(op: &mut utoipa::openapi::path::Operation, status: &str, what: &str, codes: &[&str]) {
    use utoipa::openapi::RefOr;
    match op.responses.responses.get_mut(status) {
        None => {
            op.responses
                .responses
                .insert(status.to_owned(), problem(what));
        }
        Some(RefOr::T(response)) => {
            for code in codes {
                if !response.description.contains(code) {
                    response.description.push_str(&format!("; or {code}"));
                }
            }
        }
        Some(RefOr::Ref(_)) => {}
    }
}

impl utoipa::Modify for Layers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };

        let components = doc.components.get_or_insert_with(Default::default);
        // `#[schema(min_properties = 1)]` comes out as `maxProperties` (utoipa-gen 5.5), so
        // the rule that `set` sets something is added here.
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(set))) =
            components.schemas.get_mut("RestrictionSet")
        {
            set.min_properties = Some(1);
        }
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
        for (template, item) in doc.paths.paths.iter_mut() {
            let operations = [
                ("GET", item.get.as_mut()),
                ("PUT", item.put.as_mut()),
                ("POST", item.post.as_mut()),
                ("DELETE", item.delete.as_mut()),
            ];
            for (method, op) in operations {
                let Some(op) = op else { continue };
                // An action's body (`EmptyObject`) may also be left out.
                if let Some(body) = op.request_body.as_mut() {
                    let empty = body.content.values().any(|c| {
                        matches!(&c.schema, Some(utoipa::openapi::RefOr::Ref(r))
                            if r.ref_location.ends_with("/EmptyObject"))
                    });
                    if empty {
                        body.required = Some(utoipa::openapi::Required::False);
                    }
                }
                let access = crate::auth::ROUTES
                    .iter()
                    .find(|(m, t, _)| *m == method && t == template)
                    .map(|(_, _, access)| *access);
                // Unlisted routes are admin-only (deny by default), so protected too.
                let protected = access != Some(crate::auth::Access::Public);
                if protected {
                    op.security = Some(vec![SecurityRequirement::new(
                        "api_key",
                        Vec::<String>::new(),
                    )]);
                    answers(
                        op,
                        "401",
                        "unauthorized: no key, or an unknown one (with WWW-Authenticate: Bearer)",
                        &["unauthorized"],
                    );
                    answers(
                        op,
                        "403",
                        "forbidden: the key's role may not do this",
                        &["forbidden"],
                    );
                }
                if matches!(access, Some(crate::auth::Access::Hotel(_))) {
                    answers(
                        op,
                        "404",
                        "not_found: also a hotel the key does not cover (as if it did not exist)",
                        &["not_found"],
                    );
                }
                let hotel_scoped = template.contains("{hotel_id}");
                if hotel_scoped || matches!(access, Some(crate::auth::Access::Reservation(_))) {
                    answers(
                        op,
                        "421",
                        "misdirected: on a node of a cluster, a hotel another node serves (the \
                         problem's `owner` names it) or no node serves",
                        &["misdirected"],
                    );
                }
                if template.contains('{') {
                    answers(
                        op,
                        "400",
                        "invalid_request: a path segment that is not UTF-8 once percent-decoded",
                        &["invalid_request"],
                    );
                }
                let probe = matches!(template.as_str(), "/healthz" | "/readyz");
                if !probe {
                    answers(
                        op,
                        "429",
                        "rate_limited (with Retry-After): the key's, or without a valid key the \
                         client address's, requests per second are spent",
                        &["rate_limited"],
                    );
                }
                if op.request_body.is_some() {
                    answers(
                        op,
                        "413",
                        "payload_too_large: the body is over 1 MiB",
                        &["payload_too_large"],
                    );
                }
                // The deadline; the server's answer while it recovers (`innkeep::server`);
                // the shedding of `/v1/` calls while the engine is saturated.
                let mut busy = vec!["timeout"];
                if template != "/healthz" {
                    busy.push("not_ready");
                }
                if template.starts_with("/v1/") {
                    busy.push("overloaded");
                }
                // A change on a node of a cluster whose partition stream has another
                // writer (`replication = "sync"`).
                if template.starts_with("/v1/")
                    && !template.starts_with("/v1/webhooks")
                    && method != "GET"
                {
                    busy.push("not_owner");
                }
                answers(
                    op,
                    "503",
                    &format!("{} (with Retry-After)", busy.join(" or ")),
                    &busy,
                );
            }
        }
    }
}

/// Links (OpenAPI 3.1 `links`) from what an answer creates to the operations that use it:
/// a booking's id to the reservation's routes and its payment, a hotel, room type or room
/// set up to the routes under it. Clients and tools (e.g. a fuzzer's stateful phase)
/// follow them to real resources.
#[derive(Debug)]
struct Links;

/// `(from operation, its statuses, link name, to operation, parameters)`; a parameter's
/// value is an OpenAPI runtime expression.
type LinkRow = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static [LinkParameter],
);

/// A link parameter: its name and its value's runtime expression.
type LinkParameter = (&'static str, &'static str);

const HOTEL: LinkParameter = ("hotel_id", "$request.path.hotel_id");
const RESERVATION: LinkParameter = ("id", "$response.body#/id");
/// `(link name, to operation, parameters)` from every answer that shows a reservation.
const RESERVATION_LINKS: &[(&str, &str, &[LinkParameter])] = &[
    ("GetReservation", "get_reservation", &[RESERVATION]),
    ("Cancel", "cancel", &[RESERVATION]),
    ("CheckIn", "check_in", &[RESERVATION]),
    ("CheckOut", "check_out", &[RESERVATION]),
    ("Move", "move_reservation", &[RESERVATION]),
    ("Modify", "modify_reservation", &[RESERVATION]),
    (
        "GetPayment",
        "get_payment",
        &[("out_trade_no", "$response.body#/payment/out_trade_no")],
    ),
];
const WEBHOOK: LinkParameter = ("name", "$request.path.name");
const LINKS: &[LinkRow] = &[
    (
        "put_webhook",
        &["200", "201"],
        "GetWebhook",
        "get_webhook",
        &[WEBHOOK],
    ),
    (
        "put_webhook",
        &["200", "201"],
        "Deliveries",
        "webhook_deliveries",
        &[WEBHOOK],
    ),
    (
        "put_webhook",
        &["200", "201"],
        "Replay",
        "replay_webhook",
        &[WEBHOOK],
    ),
    (
        "put_webhook",
        &["200", "201"],
        "DeleteWebhook",
        "delete_webhook",
        &[WEBHOOK],
    ),
    (
        "put_hotel",
        &["200", "201"],
        "GetHotel",
        "get_hotel",
        &[HOTEL],
    ),
    (
        "put_hotel",
        &["200", "201"],
        "PutRoomType",
        "put_room_type",
        &[HOTEL],
    ),
    (
        "put_hotel",
        &["200", "201"],
        "PutRatePlan",
        "put_rate_plan",
        &[HOTEL],
    ),
    (
        "put_hotel",
        &["200", "201"],
        "GetRatePlans",
        "get_rate_plans",
        &[HOTEL],
    ),
    (
        "put_hotel",
        &["200", "201"],
        "ListRooms",
        "list_rooms",
        &[HOTEL],
    ),
    (
        "put_hotel",
        &["200", "201"],
        "FrontDesk",
        "front_desk",
        &[HOTEL],
    ),
    (
        "put_hotel",
        &["200", "201"],
        "GetRestrictions",
        "get_restrictions",
        &[HOTEL],
    ),
    (
        "put_room_type",
        &["200", "201"],
        "PutRoom",
        "put_room",
        &[HOTEL],
    ),
    (
        "put_room_type",
        &["200", "201"],
        "PutRate",
        "put_rate",
        &[HOTEL, ("code", "$request.path.code")],
    ),
    (
        "put_room_type",
        &["200", "201"],
        "Availability",
        "get_availability",
        &[HOTEL],
    ),
    ("put_room_type", &["200", "201"], "Book", "book", &[HOTEL]),
    (
        "put_room_type",
        &["200", "201"],
        "PutRestrictions",
        "put_restrictions",
        &[HOTEL],
    ),
    (
        "put_room",
        &["200", "201"],
        "SetHousekeeping",
        "put_housekeeping",
        &[HOTEL, ("number", "$request.path.number")],
    ),
    (
        "put_room",
        &["200", "201"],
        "SetOutOfOrder",
        "set_out_of_order",
        &[HOTEL, ("number", "$request.path.number")],
    ),
    (
        "set_out_of_order",
        &["200"],
        "ClearOutOfOrder",
        "clear_out_of_order",
        &[
            HOTEL,
            ("number", "$request.path.number"),
            ("from", "$request.body#/from"),
        ],
    ),
    (
        "put_rate_plan",
        &["200", "201"],
        "GetRatePlans",
        "get_rate_plans",
        &[HOTEL],
    ),
];

impl Links {
    /// Adds the links to the serialized document. (Not through utoipa's `Link`: 5.5
    /// serializes its fields in snake_case, `operation_id`, which no tool reads.)
    fn add_to(doc: &mut serde_json::Value) {
        let reservation_sources: &[(&str, &[&str])] = &[
            ("book", &["201"]),
            ("get_reservation", &["200"]),
            ("cancel", &["200"]),
            ("check_in", &["200"]),
            ("check_out", &["200"]),
            ("move_reservation", &["200"]),
            ("modify_reservation", &["200"]),
        ];
        let mut rows: Vec<LinkRow> = LINKS.to_vec();
        for (from, statuses) in reservation_sources {
            for (name, to, parameters) in RESERVATION_LINKS {
                if from != to {
                    rows.push((from, statuses, name, to, parameters));
                }
            }
        }
        let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
            return;
        };
        for item in paths.values_mut().filter_map(|i| i.as_object_mut()) {
            for op in item.values_mut().filter_map(|o| o.as_object_mut()) {
                let id = op
                    .get("operationId")
                    .and_then(|i| i.as_str())
                    .unwrap_or_default()
                    .to_owned();
                for (from, statuses, name, to, parameters) in &rows {
                    if *from != id {
                        continue;
                    }
                    for status in *statuses {
                        let Some(response) = op
                            .get_mut("responses")
                            .and_then(|r| r.get_mut(*status))
                            .and_then(|r| r.as_object_mut())
                        else {
                            continue;
                        };
                        let parameters: serde_json::Map<String, serde_json::Value> = parameters
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
                            .collect();
                        let links = response
                            .entry("links")
                            .or_insert_with(|| serde_json::json!({}));
                        if let Some(links) = links.as_object_mut() {
                            links.insert(
                                (*name).to_owned(),
                                serde_json::json!({"operationId": to, "parameters": parameters}),
                            );
                        }
                    }
                }
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
        .routes(routes!(bookings::book_group))
        .routes(routes!(bookings::get_booking))
        .routes(routes!(bookings::cancel_booking))
        .routes(routes!(reservations::get_reservation))
        .routes(routes!(reservations::cancel))
        .routes(routes!(reservations::check_in))
        .routes(routes!(reservations::check_out))
        .routes(routes!(reservations::move_reservation))
        .routes(routes!(reservations::modify_reservation))
        .routes(routes!(reservations::get_hotel_reservation))
        .routes(routes!(reservations::hotel_cancel))
        .routes(routes!(reservations::hotel_check_in))
        .routes(routes!(reservations::hotel_check_out))
        .routes(routes!(reservations::move_hotel_reservation))
        .routes(routes!(reservations::modify_hotel_reservation))
        .routes(routes!(rooms::list_rooms))
        .routes(routes!(rooms::put_housekeeping))
        .routes(routes!(rooms::set_out_of_order))
        .routes(routes!(rooms::clear_out_of_order))
        .routes(routes!(events::events))
        .routes(routes!(payments::notify))
        .routes(routes!(bookings::get_hotel_booking))
        .routes(routes!(bookings::cancel_hotel_booking))
        .routes(routes!(payments::get_payment))
        .routes(routes!(payments::notify_hotel))
        .routes(routes!(payments::get_hotel_payment))
        .routes(routes!(payments::sandbox_ledger))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(crate::metrics::metrics))
        .routes(routes!(frontdesk::front_desk))
        .routes(routes!(frontdesk::tape))
        .routes(routes!(board::board))
        .routes(routes!(webhooks::list_webhooks))
        .routes(routes!(
            webhooks::put_webhook,
            webhooks::get_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::webhook_deliveries))
        .routes(routes!(webhooks::replay_webhook))
}

/// The serialized document, rendered once at start-up.
#[derive(Debug)]
pub struct OpenApiJson(String);

/// `GET /openapi.json`, serving `doc`.
pub fn doc_router(mut doc: utoipa::openapi::OpenApi) -> Router {
    utoipa::Modify::modify(&Layers, &mut doc);
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    Links::add_to(&mut value);
    let json = serde_json::to_string(&value).unwrap_or_else(|_| "{}".to_owned());
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
