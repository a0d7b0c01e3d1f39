//! `innkeep serve`: start the shards, listen at once (answering `/readyz` 503 while
//! recovering), recover, then serve the API until a shutdown signal.
//!
//! HTTP is served on the shards themselves: one accept loop (on shard 0) deals the
//! connections round-robin to the shards, and each connection is served from then on by
//! axum on its shard's own runtime, where that shard's room actors run too. A request is parsed,
//! decided and answered on one thread whenever its room is local. The thread this function
//! runs on only orchestrates (signals, start-up, shutdown) and serves no request.
//!
//! gRPC, when `grpc_listen` is set, is served by tonic on the last shard (its own accept
//! loop and connections): it is not the booking hot path of a high-traffic front end, so
//! one shard is enough, and the last one keeps it off shard 0, which accepts HTTP.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use innkeep_actors::{Engine, Sandbox, Shards, SyncMode};
use innkeep_http::serve::{serve_dealt, Dealer};
use innkeep_http::{AppState, Connections, PaymentConfig};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::{Config, Provider};
use crate::demo;

/// How long in-flight requests get to finish after a shutdown signal before the server
/// stops waiting (the whole shutdown must fit in 10 s; the rest is for the engine).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(6);

/// Choices made on the command line rather than in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Serve what the data dir holds.
    Plain,
    /// Load the demo hotel into an empty data dir and print how to try it.
    Demo,
}

/// Runs the server until `shutdown` resolves, then drains and stops the engine.
pub async fn run(
    config: Config,
    mode: Mode,
    sync: SyncMode,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Before binding: never serve an open API where other hosts can reach it.
    config.check_exposure()?;
    let mut shutdown = std::pin::pin!(shutdown);
    let auth = config.auth()?;
    let cluster = config.cluster()?;
    // Before the engine starts, so recovery and the journal already record into it.
    innkeep_http::metrics::install();
    let shards = Shards::start(config.shards).context("starting the shard threads")?;
    let listeners = bind("listen", config.listen).and_then(|api| {
        let metrics = config.metrics_listen.map(|a| bind("metrics_listen", a));
        Ok((api, metrics.transpose()?))
    });
    let (listener, metrics_listener) = match listeners {
        Ok(l) => l,
        Err(e) => {
            shards.stop();
            return Err(e);
        }
    };
    let local = listener.local_addr()?;
    // Bound now, so a bad address stops start-up at once; served once recovered (calls
    // wait in the backlog meanwhile).
    let grpc_listener = match config
        .grpc_listen
        .map(|a| bind("grpc_listen", a))
        .transpose()
    {
        Ok(l) => l,
        Err(e) => {
            shards.stop();
            return Err(e);
        }
    };
    if auth.is_open() {
        tracing::warn!(
            %local,
            "no [[api_keys]] configured: the API is open to anyone who can reach this \
             loopback address; configure keys (innkeep keygen) before exposing it"
        );
    }
    let connections = Connections::new(config.connection_limits());
    // gRPC's connections count against the same caps.
    let grpc_connections = connections.clone();

    // Until recovery is done every route but /healthz answers 503 `not_ready`.
    let api: Arc<OnceLock<Router>> = Arc::default();
    let app = {
        let api = api.clone();
        Router::new().fallback_service(tower::service_fn(move |req: Request<Body>| {
            let api = api.clone();
            async move {
                match api.get() {
                    Some(router) => router.clone().oneshot(req).await,
                    None => Ok::<_, Infallible>(recovering(&req)),
                }
            }
        }))
    };
    let stop = CancellationToken::new();
    // One accept loop, on shard 0; it deals the connections round-robin to every shard,
    // where each is served from then on (with the rooms that shard hosts).
    let (done, server) = tokio::sync::oneshot::channel();
    {
        let dealer: Dealer = {
            let (shards, next) = (shards.clone(), Arc::new(AtomicUsize::new(0)));
            Arc::new(move |task| {
                let n = next.fetch_add(1, Ordering::Relaxed);
                // Refused only once the shards stopped; dropping the task closes it.
                let _ = shards.spawn(n, task);
            })
        };
        let stop = stop.clone();
        shards.spawn(0, async move {
            // Registered with shard 0's reactor, where the accept loop runs.
            let result = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => serve_dealt(listener, app, connections, stop, dealer).await,
                Err(e) => Err(e),
            };
            let _ = done.send(result);
        });
    }
    tracing::info!(%local, "listening; recovering");

    let secret = match (&config.payment.secret, mode) {
        (Some(s), _) => s.clone(),
        (None, Mode::Demo) => demo::DEMO_PAYMENT_SECRET.to_owned(),
        (None, Mode::Plain) => {
            tracing::warn!("no payment.secret configured: every /v1/payments/notify is refused");
            String::new()
        }
    };
    let mut engine_config = config.engine(sync);
    let sandbox = match config.provider(mode == Mode::Demo) {
        Provider::None => None,
        Provider::Sandbox => {
            if secret.is_empty() {
                abandon_start(&stop, server, &shards).await;
                anyhow::bail!(
                    "config key `payment.secret`: payment.provider = \"sandbox\" signs its \
                     callbacks with it, so it must be set"
                );
            }
            // Callbacks come back to this very server, over loopback when it listens on
            // every address.
            let host = if local.ip().is_unspecified() {
                std::net::SocketAddr::from(([127, 0, 0, 1], local.port()))
            } else {
                local
            };
            let url = format!("http://{host}/v1/payments/notify");
            let sandbox = Sandbox::new(
                config.sandbox(url, secret.as_bytes()),
                Arc::new(crate::callbacks::HttpCallbacks::new()),
            );
            engine_config.payment.gateway = Some(Arc::new(sandbox.clone()));
            tracing::info!("payment provider: sandbox");
            Some(sandbox)
        }
    };
    // Read before the engine starts, so the journal keeps from the first moment what the
    // webhooks' durable cursors still need; an unreadable file stops start-up here.
    let webhooks_loaded = {
        let data_dir = config.data_dir.clone();
        tokio::task::spawn_blocking(move || innkeep_http::webhooks::Loaded::read(&data_dir))
            .await
            .context("webhook store thread failed")?
    };
    let webhooks_loaded = match webhooks_loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            abandon_start(&stop, server, &shards).await;
            return Err(e).with_context(|| {
                format!("cannot start from data dir {}", config.data_dir.display())
            });
        }
    };
    // With partition streams the journal keeps everything until each publisher has found
    // where its stream ends (`stream::Publishers::start`).
    let nats_url = config
        .cluster
        .nats_url
        .clone()
        .filter(|_| cluster.is_some());
    // With NATS a node serves a partition only while it holds the partition's lease.
    let cluster = match (cluster, &nats_url) {
        (Some(cluster), Some(_)) => Some(cluster.leased()),
        (cluster, _) => cluster,
    };
    engine_config.journal_retain_from = match nats_url {
        Some(_) => 1,
        None => webhooks_loaded.retain_from(),
    };
    // `replication = "sync"`: acknowledged once the partition streams have it too.
    let ack_gate = match (&nats_url, config.cluster.replication) {
        (Some(_), crate::config::Replication::Sync) => {
            Some(Arc::new(innkeep_persistence::AckGate::new(
                Duration::from_millis(config.cluster.replication_stall_ms),
            )))
        }
        _ => None,
    };
    engine_config.ack_gate = ack_gate.clone();
    // A standby follows its partitions' streams into its journal until it takes one over;
    // the engine starts on that journal only then (`standby`).
    let stop_standby = tokio_util::sync::CancellationToken::new();
    // Who holds the leases decides: a node whose lease it still holds serves from its
    // journal; a primary a standby replaced while it was down or stalled, and a standby
    // holding no lease, stand by.
    let at_start = match (&cluster, &nats_url) {
        (Some(cluster), Some(url)) => {
            tokio::select! {
                found = crate::standby::at_start(cluster, url, &stop_standby) => found.unwrap_or_default(),
                () = shutdown.as_mut() => {
                    abandon_start(&stop, server, &shards).await;
                    return Ok(());
                }
            }
        }
        _ => crate::standby::AtStart::default(),
    };
    let taken_over = match (&cluster, &nats_url) {
        (Some(cluster), Some(url)) if at_start.stands_by(cluster) => {
            let followed = tokio::select! {
                followed = crate::standby::stand_by(cluster, url, &config.data_dir, &stop_standby, at_start.deposed) => followed,
                () = shutdown.as_mut() => {
                    stop_standby.cancel();
                    Ok(None)
                }
            };
            match followed {
                Ok(Some(took)) => {
                    if let Some(leases) = cluster.leases() {
                        let validity = crate::lease::validity(cluster.file().lease_ttl());
                        for t in &took.partitions {
                            leases.hold_until(t.index, t.sent + validity);
                        }
                    }
                    Some(took)
                }
                // Stopped while standing by.
                Ok(None) => {
                    abandon_start(&stop, server, &shards).await;
                    return Ok(());
                }
                Err(e) => {
                    abandon_start(&stop, server, &shards).await;
                    return Err(e).context("standing by");
                }
            }
        }
        _ => None,
    };
    let (taken_over, followed) = match taken_over {
        Some(took) => (took.partitions, Some((took.state, took.last_seq))),
        None => (Vec::new(), None),
    };
    let adopted: Vec<(usize, u64)> = taken_over.iter().map(|t| (t.index, t.revision)).collect();
    // Besides its primary's: the partitions it took over, or still holds from before a
    // restart.
    let mut also_served: Vec<usize> = taken_over
        .iter()
        .map(|t| t.index)
        .chain(at_start.mine.iter().copied())
        .filter(|&i| {
            cluster
                .as_ref()
                .is_none_or(|c| c.primary_of().all(|(p, _)| p != i))
        })
        .collect();
    also_served.sort_unstable();
    also_served.dedup();
    // The lease keepers start before the engine recovers: a primary holds its lease while
    // it recovers, so a standby starting with it never finds the lease free.
    let keepers = match (&cluster, &nats_url) {
        (Some(cluster), Some(url)) => {
            let gate = ack_gate.clone();
            let on_lost: crate::lease::OnLost = Arc::new(move |partition: &str| {
                if let Some(gate) = &gate {
                    gate.fail(format!(
                        "this node lost partition {partition}'s lease: it acknowledges no more changes"
                    ));
                }
            });
            match crate::lease::LeaseKeepers::start(
                cluster,
                url.clone(),
                on_lost,
                &adopted,
                &also_served,
            ) {
                Ok(keepers) => Some(keepers),
                Err(e) => {
                    abandon_start(&stop, server, &shards).await;
                    return Err(e).context("starting the lease keepers");
                }
            }
        }
        _ => None,
    };
    let started = {
        let shards = shards.clone();
        tokio::task::spawn_blocking(move || {
            let storage = Box::new(innkeep_persistence::FsStorage::new());
            match followed {
                // A standby's engine starts from the state it followed, without a replay.
                Some((state, last_seq)) => {
                    Engine::start_followed(shards, engine_config, storage, state, last_seq)
                }
                None => Engine::start_on(shards, engine_config, storage),
            }
        })
        .await
        .context("recovery thread failed")?
    };
    let engine = match started {
        Ok(engine) => engine,
        Err(e) => {
            abandon_start(&stop, server, &shards).await;
            if let Some(keepers) = keepers {
                tokio::task::spawn_blocking(move || keepers.shutdown())
                    .await
                    .context("lease keepers shutdown")?;
            }
            return Err(e).with_context(|| {
                format!("cannot start from data dir {}", config.data_dir.display())
            });
        }
    };

    // Before the webhooks start: the first reader to set its journal floor replaces the
    // start-up one. The publishers publish only under a lease.
    let replication = match (&cluster, nats_url) {
        (Some(cluster), Some(url)) => {
            tracing::info!(%url, replication = ?config.cluster.replication,
                lease_ttl_ms = cluster.file().lease_ttl().as_millis() as u64,
                "publishing each partition's events to NATS JetStream, under its lease");
            let started = match keepers {
                Some(leases) => {
                    match crate::stream::Publishers::start(
                        engine.clone(),
                        cluster,
                        url,
                        ack_gate,
                        &also_served,
                    ) {
                        Ok(publishers) => Ok((leases, publishers)),
                        Err(e) => {
                            leases.shutdown();
                            Err(e.into())
                        }
                    }
                }
                None => Err(anyhow::anyhow!("the lease keepers did not start")),
            };
            match started {
                Ok(both) => Some(both),
                Err(e) => {
                    stop.cancel();
                    let _ = server.await;
                    tokio::task::spawn_blocking(move || engine.shutdown())
                        .await
                        .context("engine shutdown")?;
                    return Err(e);
                }
            }
        }
        _ => None,
    };

    if mode == Mode::Demo {
        let loaded = demo::load(&engine)
            .await
            .context("loading the demo hotel")?;
        let today = engine
            .today(&innkeep_engine::HotelId::parse(demo::DEMO_HOTEL)?)
            .context("demo hotel")?;
        let tomorrow = today.tomorrow().unwrap_or(today);
        let text = demo::instructions(
            &format!("http://{local}"),
            &secret,
            &today.to_string(),
            &tomorrow.to_string(),
        );
        tracing::info!(loaded, "demo hotel {}", demo::DEMO_HOTEL);
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }

    let mut payment = PaymentConfig::new(secret.into_bytes());
    if let Some(previous) = &config.payment.previous_secret {
        payment = payment.with_previous_secret(previous.clone().into_bytes());
    }
    let webhooks = match innkeep_http::webhooks::Webhooks::start(
        engine.clone(),
        config.webhook_settings(),
        webhooks_loaded,
    ) {
        Ok(webhooks) => webhooks,
        Err(e) => {
            stop.cancel();
            let _ = server.await;
            if let Some(replication) = replication {
                tokio::task::spawn_blocking(move || stop_replication(replication))
                    .await
                    .context("stream publishers shutdown")?;
            }
            tokio::task::spawn_blocking(move || engine.shutdown())
                .await
                .context("engine shutdown")?;
            return Err(e).context("starting webhooks");
        }
    };
    let mut state = AppState::new(engine.clone(), payment)
        .with_security(auth, config.http_limits())
        .with_webhooks(webhooks.clone());
    if let Some(sandbox) = sandbox {
        state = state.with_sandbox(sandbox);
    }
    let leases = cluster.as_ref().and_then(|c| c.leases().cloned());
    if let Some(cluster) = cluster {
        let node = &cluster.this_node().id;
        let serving: Vec<&str> = cluster.primary_of().map(|(_, p)| p.id.as_str()).collect();
        tracing::info!(
            node,
            ?serving,
            "a node of a cluster: serving only these partitions' hotels"
        );
        state = state.in_cluster(cluster);
    }
    let streams = state.streams.clone();
    // The metrics address, once there is an engine to report on; served on shard 0 like
    // the accept loop, with the same connection limits.
    let metrics_server = metrics_listener.map(|listener| {
        let router = innkeep_http::metrics::metrics_router(state.clone());
        let connections = Connections::new(config.connection_limits());
        let deal: Dealer = {
            let shards = shards.clone();
            Arc::new(move |task| {
                let _ = shards.spawn(0, task);
            })
        };
        let (done, served) = tokio::sync::oneshot::channel();
        let stop = stop.clone();
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "serving /metrics without a key");
        }
        let _ = shards.spawn(0, async move {
            let result = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => serve_dealt(listener, router, connections, stop, deal).await,
                Err(e) => Err(e),
            };
            let _ = done.send(result);
        });
        served
    });
    let grpc = match grpc_listener {
        Some(listener) => Some(serve_grpc(
            &shards,
            listener,
            &state,
            grpc_connections,
            stop.clone(),
        )?),
        None => None,
    };
    let _ = api.set(innkeep_http::router(state));
    // With leases: ready once each of this node's partitions has tried for its lease, so
    // that a first request finds the partitions it could take served.
    let stopped_early = match &leases {
        Some(leases) => tokio::select! {
            () = leases_settled(leases) => false,
            () = shutdown.as_mut() => true,
        },
        None => false,
    };
    if !stopped_early {
        tracing::info!(%local, "ready");
        shutdown.as_mut().await;
    }
    tracing::info!("shutting down: draining requests");
    // Event streams never finish by themselves; end them so the drain can complete.
    streams.cancel();
    stop.cancel();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async move {
        let http = server.await;
        let grpc = match grpc {
            Some(done) => Some(done.await),
            None => None,
        };
        (http, grpc)
    })
    .await;
    match drained {
        Ok((http, grpc)) => {
            match http {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "server error"),
                Err(_) => tracing::error!("the server's accept loop ended without a word"),
            }
            match grpc {
                None | Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => tracing::error!(error = %e, "gRPC server error"),
                Some(Err(_)) => tracing::error!("the gRPC server ended without a word"),
            }
        }
        Err(_) => tracing::warn!("requests still running after the drain timeout; stopping anyway"),
    }
    if let Some(served) = metrics_server {
        // Scrapes are short; whatever is left is dropped with the shards below.
        if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(1), served).await {
            tracing::error!(error = %e, "metrics server error");
        }
    }
    // Webhook tasks write their cursors and stop before the engine's final snapshot, so
    // the journal keeps what those cursors need; so do the stream publishers. The leases
    // go last: released, the partitions may move at once.
    if let Some(replication) = replication {
        tokio::task::spawn_blocking(move || stop_replication(replication))
            .await
            .context("stream publishers shutdown")?;
    }
    tokio::task::spawn_blocking(move || webhooks.shutdown())
        .await
        .context("webhooks shutdown")?;
    // Stops the shards too, dropping any connection still open.
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .context("engine shutdown")?;
    Ok(())
}

/// Returns once every lease keeper made its first attempt.
async fn leases_settled(leases: &innkeep_http::cluster::Leases) {
    let mut changed = leases.subscribe();
    loop {
        // Seen before looking: a change after this wakes the wait below.
        changed.borrow_and_update();
        if leases.settled() || changed.changed().await.is_err() {
            return;
        }
    }
}

/// Stops the stream publishers, then releases the leases.
/// Start-up gives up before the engine runs: the accept loop (answering 503 meanwhile)
/// stops and is waited for, then the shards stop.
async fn abandon_start<T>(
    stop: &CancellationToken,
    server: tokio::sync::oneshot::Receiver<T>,
    shards: &Shards,
) {
    stop.cancel();
    let _ = server.await;
    shards.stop();
}

fn stop_replication((leases, publishers): (crate::lease::LeaseKeepers, crate::stream::Publishers)) {
    publishers.shutdown();
    leases.shutdown();
}

/// What the gRPC server ends with.
type GrpcDone = tokio::sync::oneshot::Receiver<Result<(), String>>;

/// Starts serving the gRPC API on `listener` on the last shard, with the HTTP API's
/// engine, keys, limits, connection caps and stream token; it stops when `stop` is
/// cancelled.
fn serve_grpc(
    shards: &Shards,
    listener: std::net::TcpListener,
    state: &AppState,
    connections: Connections,
    stop: CancellationToken,
) -> anyhow::Result<GrpcDone> {
    let local = listener.local_addr()?;
    let grpc = innkeep_grpc::GrpcState {
        engine: state.engine.clone(),
        security: state.security.clone(),
        streams: state.streams.clone(),
    };
    let (done, ended) = tokio::sync::oneshot::channel();
    let shard = shards.len().saturating_sub(1);
    let spawned = shards.spawn(shard, async move {
        // Registered with the reactor of the shard that serves it.
        let result = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => innkeep_grpc::serve(listener, grpc, connections, stop)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let _ = done.send(result);
    });
    anyhow::ensure!(spawned, "the shards stopped before gRPC could start");
    tracing::info!(%local, shard, "gRPC listening");
    Ok(ended)
}

/// The listening socket on `addr`, as a std socket to be registered with the runtime of
/// the shard that accepts (not `SO_REUSEPORT` sockets per shard: that would let any other
/// process of the same user bind the port too and silently take a share of the
/// connections, and hide a second server started on the same address).
fn bind(key: &str, addr: std::net::SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    /// Pending connections the kernel queues (capped at `net.core.somaxconn`): a burst of
    /// thousands of connects waits here rather than being refused.
    const BACKLOG: u32 = 4096;
    (|| {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)?.into_std()
    })()
    .with_context(|| format!("config key `{key}`: cannot listen on {addr}"))
}

fn recovering(req: &Request<Body>) -> Response<Body> {
    if req.uri().path() == "/healthz" {
        return json(
            StatusCode::OK,
            "application/json",
            r#"{"status":"ok"}"#.into(),
        );
    }
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "recovering state from disk; retry shortly",
        "code": "not_ready",
    });
    let mut res = json(
        StatusCode::SERVICE_UNAVAILABLE,
        "application/problem+json",
        body.to_string(),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    res
}

fn json(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    res
}

/// Installs the SIGINT and SIGTERM handlers now and returns a future that resolves on
/// the first of them. Call it (inside the runtime) before start-up: a handler installed
/// only when the future is first polled would leave the default action (exit at once,
/// no drain, no final snapshot) in place during recovery.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}
