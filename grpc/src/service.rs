//! The `innkeep.v1.Innkeep` service over the engine facade, and [`serve`].
//!
//! Every call goes through the HTTP API's checks in its order: shed while this shard's
//! engine calls are at their bound (`UNAVAILABLE overloaded`), then
//! [`authorize_call`] (key, rate limit, hotel scope, role), then the handler under the
//! request deadline. Reservation calls load the reservation and check it with
//! [`Caller::check_reservation`] before acting, as the HTTP handlers do.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::{self, Stream, StreamExt};
use innkeep_actors::feed::FeedEvent;
use innkeep_actors::{Engine, EngineError};
use innkeep_engine::{Action, HotelId, RoomNumber, RoomTypeCode, Upsert};
use innkeep_http::auth::{authorize_call, Access, Call, Caller, Op};
use innkeep_http::limits::{within_deadline, Security, METRIC_SHED};
use innkeep_http::routes::events::{
    resync_lagged, resync_missed, stream_items, StreamItem, RESYNC,
};
use innkeep_http::wire::parse_date;
use innkeep_http::{ApiError, Connections, BODY_LIMIT_BYTES};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::convert;
use crate::pb;
use crate::pb::innkeep_server::{Innkeep, InnkeepServer};
use crate::status::to_status;

/// Counter of gRPC calls by `method` and `outcome` (`ok`, or the problem code of the
/// refusal: `not_found`, `rate_limited`, …).
pub const METRIC_CALLS: &str = "innkeep_grpc_calls_total";
/// Histogram of gRPC call latency in seconds (until the answer, or until a stream
/// starts), by `method`.
pub const METRIC_CALL_SECONDS: &str = "innkeep_grpc_call_duration_seconds";

/// What the service needs: the engine, the HTTP API's keys and limits (one rate-limit
/// bucket per key whichever API it calls), and the token that ends event streams.
#[derive(Clone, Debug)]
pub struct GrpcState {
    /// The engine every call uses.
    pub engine: Engine,
    /// API keys, the rate limiter and the request deadline, shared with HTTP.
    pub security: Arc<Security>,
    /// Cancelled when the server begins to shut down: `WatchEvents` streams end then, or
    /// graceful shutdown would wait on them forever.
    pub streams: CancellationToken,
}

/// The gRPC service.
#[derive(Clone, Debug)]
pub struct InnkeepService(GrpcState);

impl InnkeepService {
    /// The service over `state`.
    pub fn new(state: GrpcState) -> Self {
        Self(state)
    }

    /// Sheds, authenticates and authorizes a call: the caller, or the refusal.
    fn admit<T>(
        &self,
        request: &Request<T>,
        access: Access,
        hotel: &str,
    ) -> Result<Caller, ApiError> {
        if self.0.engine.is_saturated() {
            metrics::counter!(METRIC_SHED).increment(1);
            return Err(ApiError::Engine(EngineError::Overloaded));
        }
        let headers = request.metadata().clone().into_headers();
        let call = Call {
            access: Some(access),
            headers: &headers,
            client_ip: request.remote_addr().map(|a| a.ip()),
            hotel,
        };
        // `None` only for public calls, and no call of this service is public.
        authorize_call(&self.0.security, &call)?.ok_or(ApiError::Forbidden)
    }

    /// Runs a unary call: [`Self::admit`], then `work` under the request deadline.
    async fn unary<T, R, Fut>(
        &self,
        method: &'static str,
        request: Request<T>,
        access: Access,
        hotel: fn(&T) -> &str,
        work: impl FnOnce(Engine, Caller, T) -> Fut,
    ) -> Result<Response<R>, Status>
    where
        Fut: Future<Output = Result<R, ApiError>>,
    {
        let started = std::time::Instant::now();
        let span = tracing::info_span!("grpc", method, principal = tracing::field::Empty);
        let outcome = match span.in_scope(|| self.admit(&request, access, hotel(request.get_ref())))
        {
            Ok(caller) => {
                let limit = self.0.security.limits.request_timeout;
                let work =
                    work(self.0.engine.clone(), caller, request.into_inner()).instrument(span);
                within_deadline(limit, work).await.and_then(|done| done)
            }
            Err(e) => Err(e),
        };
        let label = outcome.as_ref().map_or_else(ApiError::code, |_| "ok");
        metrics::counter!(METRIC_CALLS, "method" => method, "outcome" => label).increment(1);
        metrics::histogram!(METRIC_CALL_SECONDS, "method" => method)
            .record(started.elapsed().as_secs_f64());
        outcome.map(Response::new).map_err(|e| to_status(&e))
    }
}

/// Loads reservation `id`, checks the caller may see it and do its operation, then
/// applies `action` (HTTP's `act`).
async fn act(
    engine: Engine,
    caller: Caller,
    req: pb::ReservationActionRequest,
    action: Action,
) -> Result<pb::Reservation, ApiError> {
    let id = convert::reservation_id(&req.reservation_id)?;
    let current = engine.reservation(id).await?;
    caller.check_reservation(&current)?;
    let r = engine.change(id, action, req.expected_version).await?;
    Ok(convert::reservation(&r))
}

fn no_hotel<T>(_: &T) -> &str {
    ""
}

/// The stream `WatchEvents` answers with.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send + 'static>>;

fn event(item: StreamItem) -> pb::Event {
    pb::Event {
        seq: item.seq,
        r#type: item.name.to_owned(),
        data_json: item.data.to_string(),
    }
}

fn resync(data: serde_json::Value) -> pb::Event {
    pb::Event {
        seq: None,
        r#type: RESYNC.to_owned(),
        data_json: data.to_string(),
    }
}

/// One hotel's events after `after` (or new ones only), as the SSE route streams them:
/// a `resync` first if the window cannot replay everything after `after`, the backlog,
/// then live events; a final `resync` ends the stream of a client too slow to keep up;
/// `stop` ends it.
fn hotel_events(
    engine: Engine,
    hotel: HotelId,
    after: Option<u64>,
    stop: CancellationToken,
) -> EventStream {
    let sub = engine.events(after);
    let notice = sub.missed_before.map(|first| resync(resync_missed(first)));
    let backlog: Vec<pb::Event> = sub
        .backlog
        .iter()
        .filter(|e| e.event.hotel_id() == &hotel)
        .flat_map(|e| stream_items(&engine, e))
        .map(event)
        .collect();
    let live = stream::unfold(Some((sub.live, hotel, engine)), |open| async move {
        let (mut rx, hotel, engine) = open?;
        loop {
            match rx.recv().await {
                Ok(e) if e.event.hotel_id() == &hotel => {
                    let items = items_of(&engine, &e);
                    return Some((stream::iter(items), Some((rx, hotel, engine))));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(skipped)) => {
                    let last = vec![resync(resync_lagged(skipped))];
                    return Some((stream::iter(last), None));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Box::pin(
        stream::iter(notice.into_iter().chain(backlog))
            .chain(live.flatten())
            .take_until(stop.cancelled_owned())
            .map(Ok),
    )
}

fn items_of(engine: &Engine, e: &FeedEvent) -> Vec<pb::Event> {
    stream_items(engine, e).into_iter().map(event).collect()
}

#[tonic::async_trait]
impl Innkeep for InnkeepService {
    async fn put_hotel(
        &self,
        request: Request<pb::PutHotelRequest>,
    ) -> Result<Response<pb::PutHotelResponse>, Status> {
        let access = Access::Hotel(Op::PutHotel);
        self.unary(
            "PutHotel",
            request,
            access,
            |r| &r.hotel_id,
            |engine, _, req| async move {
                let id = HotelId::parse(&req.hotel_id)?;
                let upsert = engine
                    .put_hotel(id.clone(), &req.name, &req.time_zone, &req.currency)
                    .await?;
                let hotel = engine.hotel(&id)?;
                Ok(pb::PutHotelResponse {
                    created: upsert == Upsert::Created,
                    hotel: Some(convert::hotel(&hotel)),
                })
            },
        )
        .await
    }

    async fn get_hotel(
        &self,
        request: Request<pb::GetHotelRequest>,
    ) -> Result<Response<pb::Hotel>, Status> {
        let access = Access::Hotel(Op::GetHotel);
        self.unary(
            "GetHotel",
            request,
            access,
            |r| &r.hotel_id,
            |engine, _, req| async move {
                let hotel = engine.hotel(&HotelId::parse(&req.hotel_id)?)?;
                Ok(convert::hotel(&hotel))
            },
        )
        .await
    }

    async fn put_room_type(
        &self,
        request: Request<pb::PutRoomTypeRequest>,
    ) -> Result<Response<pb::PutRoomTypeResponse>, Status> {
        let access = Access::Hotel(Op::PutRoomType);
        self.unary(
            "PutRoomType",
            request,
            access,
            |r| &r.hotel_id,
            |engine, _, req| async move {
                let hotel_id = HotelId::parse(&req.hotel_id)?;
                let code = RoomTypeCode::parse(&req.code)?;
                let currency = engine.hotel(&hotel_id)?.currency;
                let base_rate_minor =
                    convert::money_in("base_rate", req.base_rate.as_ref(), currency)?;
                let capacity = convert::capacity(req.capacity)?;
                let upsert = engine
                    .put_room_type(
                        &hotel_id,
                        code.clone(),
                        &req.name,
                        capacity,
                        base_rate_minor,
                    )
                    .await?;
                let hotel = engine.hotel(&hotel_id)?;
                let rt = hotel
                    .room_types
                    .get(&code)
                    .ok_or(innkeep_engine::DomainError::NotFound("room type"))?;
                Ok(pb::PutRoomTypeResponse {
                    created: upsert == Upsert::Created,
                    room_type: Some(convert::room_type(&hotel, &code, rt)),
                })
            },
        )
        .await
    }

    async fn put_room(
        &self,
        request: Request<pb::PutRoomRequest>,
    ) -> Result<Response<pb::PutRoomResponse>, Status> {
        let access = Access::Hotel(Op::PutRoom);
        self.unary(
            "PutRoom",
            request,
            access,
            |r| &r.hotel_id,
            |engine, _, req| async move {
                let hotel_id = HotelId::parse(&req.hotel_id)?;
                let number = RoomNumber::parse(&req.number)?;
                let room_type = RoomTypeCode::parse(&req.room_type)?;
                let upsert = engine.put_room(&hotel_id, number, room_type).await?;
                Ok(pb::PutRoomResponse {
                    created: upsert == Upsert::Created,
                })
            },
        )
        .await
    }

    async fn put_rate(
        &self,
        request: Request<pb::PutRateRequest>,
    ) -> Result<Response<pb::PutRateResponse>, Status> {
        let access = Access::Hotel(Op::PutRate);
        self.unary(
            "PutRate",
            request,
            access,
            |r| &r.hotel_id,
            |engine, _, req| async move {
                let hotel_id = HotelId::parse(&req.hotel_id)?;
                let code = RoomTypeCode::parse(&req.room_type)?;
                let from = parse_date("from", &req.from)?;
                let to = parse_date("to", &req.to)?;
                let currency = engine.hotel(&hotel_id)?.currency;
                let amount_minor = convert::money_in("amount", req.amount.as_ref(), currency)?;
                engine
                    .put_rate(&hotel_id, &code, from, to, amount_minor)
                    .await?;
                Ok(pb::PutRateResponse {})
            },
        )
        .await
    }

    async fn put_rate_plan(
        &self,
        request: Request<pb::PutRatePlanRequest>,
    ) -> Result<Response<pb::PutRatePlanResponse>, Status> {
        let access = Access::Hotel(Op::PutRatePlan);
        self.unary(
            "PutRatePlan",
            request,
            access,
            |r| &r.hotel_id,
            |engine, _, req| async move {
                let hotel_id = HotelId::parse(&req.hotel_id)?;
                let (code, plan) = convert::rate_plan(&req)?;
                let upsert = engine.put_rate_plan(&hotel_id, code, plan).await?;
                Ok(pb::PutRatePlanResponse {
                    created: upsert == Upsert::Created,
                })
            },
        )
        .await
    }

    async fn set_restrictions(
        &self,
        request: Request<pb::SetRestrictionsRequest>,
    ) -> Result<Response<pb::SetRestrictionsResponse>, Status> {
        let access = Access::Hotel(Op::PutRestrictions);
        self.unary(
            "SetRestrictions",
            request,
            access,
            |r| &r.hotel_id,
            |engine, _, req| async move {
                let change = convert::restriction_change(&req)?;
                let (hotel_id, from, to) = (change.hotel_id.clone(), change.from, change.to);
                engine.set_restrictions(change).await?;
                let cells = engine.restrictions(&hotel_id, from, to)?.len();
                Ok(pb::SetRestrictionsResponse {
                    cells: u64::try_from(cells).unwrap_or(u64::MAX),
                })
            },
        )
        .await
    }

    async fn get_availability(
        &self,
        request: Request<pb::GetAvailabilityRequest>,
    ) -> Result<Response<pb::Availability>, Status> {
        let access = Access::Hotel(Op::Availability);
        self.unary(
            "GetAvailability",
            request,
            access,
            |r| &r.hotel_id,
            |engine, _, req| async move {
                let q = convert::availability_query(&req)?;
                let a = engine.availability(&q.hotel_id, q.arrival, q.departure, q.guests)?;
                Ok(convert::availability(&a))
            },
        )
        .await
    }

    async fn book(
        &self,
        request: Request<pb::BookRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let access = Access::Hotel(Op::Book);
        self.unary(
            "Book",
            request,
            access,
            |r| &r.hotel_id,
            |engine, caller, req| async move {
                // The booking records who made it, as in HTTP.
                let (input, key) = convert::book_input(&req, caller.principal.creator())?;
                let r = engine.book(input, key).await?;
                Ok(convert::reservation(&r))
            },
        )
        .await
    }

    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let access = Access::Reservation(Op::GetReservation);
        self.unary(
            "GetReservation",
            request,
            access,
            no_hotel,
            |engine, caller, req| async move {
                let id = convert::reservation_id(&req.reservation_id)?;
                let r = engine.reservation(id).await?;
                caller.check_reservation(&r)?;
                Ok(convert::reservation(&r))
            },
        )
        .await
    }

    async fn cancel(
        &self,
        request: Request<pb::ReservationActionRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let access = Access::Reservation(Op::Cancel);
        self.unary(
            "Cancel",
            request,
            access,
            no_hotel,
            |engine, caller, req| act(engine, caller, req, Action::Cancel),
        )
        .await
    }

    async fn check_in(
        &self,
        request: Request<pb::ReservationActionRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let access = Access::Reservation(Op::CheckIn);
        self.unary(
            "CheckIn",
            request,
            access,
            no_hotel,
            |engine, caller, req| act(engine, caller, req, Action::CheckIn),
        )
        .await
    }

    async fn check_out(
        &self,
        request: Request<pb::ReservationActionRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let access = Access::Reservation(Op::CheckOut);
        self.unary(
            "CheckOut",
            request,
            access,
            no_hotel,
            |engine, caller, req| act(engine, caller, req, Action::CheckOut),
        )
        .await
    }

    async fn r#move(
        &self,
        request: Request<pb::MoveRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let access = Access::Reservation(Op::MoveReservation);
        self.unary(
            "Move",
            request,
            access,
            no_hotel,
            |engine, caller, req| async move {
                let id = convert::reservation_id(&req.reservation_id)?;
                // Who may act on it is decided before the target is judged, as in HTTP.
                let current = engine.reservation(id).await?;
                caller.check_reservation(&current)?;
                let to = RoomNumber::parse(&req.room)?;
                let r = engine
                    .move_reservation(id, to, req.expected_version)
                    .await?;
                Ok(convert::reservation(&r))
            },
        )
        .await
    }

    async fn modify(
        &self,
        request: Request<pb::ModifyRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let access = Access::Reservation(Op::ModifyReservation);
        self.unary(
            "Modify",
            request,
            access,
            no_hotel,
            |engine, caller, req| async move {
                let id = convert::reservation_id(&req.reservation_id)?;
                // Who may act on it is decided before its fields are judged, as in HTTP.
                let current = engine.reservation(id).await?;
                caller.check_reservation(&current)?;
                let input = convert::modify_input(&req)?;
                let r = engine.modify(id, input, req.expected_version).await?;
                Ok(convert::reservation(&r))
            },
        )
        .await
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let access = Access::Hotel(Op::Events);
        let stop = self.0.streams.clone();
        self.unary(
            "WatchEvents",
            request,
            access,
            |r| &r.hotel_id,
            |engine, _, req| async move {
                let hotel = HotelId::parse(&req.hotel_id)?;
                engine.hotel(&hotel)?;
                Ok(hotel_events(engine, hotel, req.after_seq, stop))
            },
        )
        .await
    }
}

/// Serves the gRPC API on `listener` until `stop` is cancelled, then drains: calls in
/// flight finish (each within the request deadline) and event streams end once
/// [`GrpcState::streams`] is cancelled. Its connections count against the caps of
/// `connections` (shared with the HTTP server); messages over [`BODY_LIMIT_BYTES`] are
/// refused, as HTTP bodies are.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: GrpcState,
    connections: Connections,
    stop: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let service =
        InnkeepServer::new(InnkeepService::new(state)).max_decoding_message_size(BODY_LIMIT_BYTES);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(
            crate::incoming::counted(listener, connections),
            stop.cancelled_owned(),
        )
        .await
}
