//! Signed outbound webhooks (issue #17 item 1): every durable event of the hotel event
//! stream that a webhook matches is POSTed to its URL, signed like our payment callbacks,
//! at least once and in journal order, from a durable cursor.
//!
//! - [`Webhooks`] owns the definitions and runs one task per webhook on a thread of its
//!   own (`innkeep-webhooks`, a current-thread tokio runtime), never on the shards: a
//!   slow or dead receiver holds up only its own webhook. Each task reads events after
//!   its cursor from the engine's in-memory window, or, when it is further behind, from
//!   the journal's files ([`innkeep_actors::Engine::journal_events_after`]), a page at a
//!   time (bounded memory), and sends them one by one ([`deliver`]).
//! - The cursor, the current failure run, the newest attempts and the dead letters are
//!   kept in the webhook's file ([`store`]) and written after each settled event (at most
//!   every [`CURSOR_WRITE_INTERVAL`] while events flow, and always before the task
//!   waits or stops), so a restart or a crash resends at most what was delivered since the
//!   last write, and skips nothing.
//! - The journal keeps every record from the oldest live cursor on
//!   ([`innkeep_actors::Engine::retain_journal_from`]), except for a webhook whose
//!   receiver has failed for `max_age`: it holds nothing, and dead-letters events after one
//!   failed attempt (or, if the journal dropped them meanwhile, as one run).
//! - The address policy ([`policy`]) refuses URLs and resolved addresses into private
//!   networks unless `allow_private`; no redirects, no proxies.

pub mod deliver;
pub mod policy;
pub mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use innkeep_actors::{Engine, EngineError};
use innkeep_engine::DomainError;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::ToSchema;

use crate::auth::{HotelScope, Principal};
use crate::constraints::{EventId, WebhookEventType, WebhookHotel, WebhookSecret, WebhookUrl};
use crate::error::ApiError;
use crate::routes::events::EVENT_TYPES;
use policy::Reach;
use store::{Definition, StoreError, Stored, STORE_FORMAT_VERSION};

/// The webhooks' name among the journal's readers
/// ([`innkeep_actors::Engine::retain_journal_from`]).
pub const JOURNAL_READER: &str = "webhooks";

/// Most webhooks a server keeps (each has a task, a file and a connection pool).
pub const MAX_WEBHOOKS: usize = 64;
/// Most hotel ids one webhook may list.
pub const MAX_HOTELS_PER_WEBHOOK: usize = 256;
/// Most entries of a webhook's `events` list.
pub const MAX_EVENTS_PER_WEBHOOK: usize = 64;
/// Shortest webhook secret, in bytes: an HMAC key much shorter is guessable (as for
/// `payment.secret`).
pub const MIN_SECRET_BYTES: usize = 16;
/// Longest webhook secret, in bytes.
pub const MAX_SECRET_BYTES: usize = 256;
/// The JSON Schema pattern of a secret: visible ASCII, [`MIN_SECRET_BYTES`] to
/// [`MAX_SECRET_BYTES`].
pub const SECRET_PATTERN: &str = "^[!-~]{16,256}$";
/// The JSON Schema pattern of an entry of `hotels`: a hotel code or `*`.
pub const HOTEL_ENTRY_PATTERN: &str = "^(\\*|[A-Za-z0-9._-]{1,64})$";
/// While events flow, a webhook's cursor is written at most this often (it is always
/// written before its task waits for new events or stops, and at once after a failure or
/// dead letter). What was delivered since the last write is sent again after a crash.
pub const CURSOR_WRITE_INTERVAL: Duration = Duration::from_millis(200);

/// Counter of delivery attempts by `webhook` and `outcome` (`delivered`: a 2xx;
/// `failed`: anything else).
pub const METRIC_WEBHOOK_ATTEMPTS: &str = "innkeep_webhook_attempts_total";
/// Counter of events dead-lettered, by `webhook` (a run the journal no longer held counts
/// its events).
pub const METRIC_WEBHOOK_DEAD_LETTERS: &str = "innkeep_webhook_dead_letters_total";

/// Defaults of `[webhooks]`.
pub const DEFAULT_MAX_AGE_SECS: u64 = 24 * 3600;
/// Default time limit of one delivery attempt.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Default first backoff after a failed attempt.
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 1_000;
/// Default longest backoff between attempts.
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 600_000;

/// How webhooks are delivered: `[webhooks]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Which addresses and schemes receivers may have.
    pub reach: Reach,
    /// How long a receiver may keep failing (no 2xx) before events are dead-lettered.
    pub max_age: Duration,
    /// Time limit of one attempt (connect, send, the answer's head).
    pub timeout: Duration,
    /// First backoff after a failed attempt; doubled per attempt, with jitter.
    pub backoff_base: Duration,
    /// Longest backoff between two attempts.
    pub backoff_max: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            reach: Reach::PublicOnly,
            max_age: Duration::from_secs(DEFAULT_MAX_AGE_SECS),
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            backoff_base: Duration::from_millis(DEFAULT_BACKOFF_BASE_MS),
            backoff_max: Duration::from_millis(DEFAULT_BACKOFF_MAX_MS),
        }
    }
}

/// Why webhooks could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookStartError {
    /// A stored webhook could not be read (the message names the file).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client or the delivery thread could not be made.
    #[error("webhooks: {0}")]
    Runtime(String),
}

/// The webhooks as stored in a data dir, read before the engine starts, so the journal
/// keeps what their cursors need from the first moment ([`Loaded::retain_from`]).
#[derive(Debug)]
pub struct Loaded {
    dir: PathBuf,
    stored: Vec<Stored>,
}

impl Loaded {
    /// Reads `data_dir/webhooks/` (created if missing); any unreadable file is an error
    /// naming it.
    pub fn read(data_dir: &std::path::Path) -> Result<Self, WebhookStartError> {
        let dir = store::store_dir(data_dir);
        let stored = store::load(&dir, |name| parse_name(name).is_ok())?;
        // A hand-edited definition must pass the API's rules too (the address policy is
        // applied again at every attempt, under the configuration of the day).
        for s in &stored {
            let d = &s.definition;
            let request = PutWebhookRequest {
                url: d.url.clone(),
                hotels: d.hotels.clone(),
                events: d.events.clone(),
                secret: d.secret.clone(),
            };
            if let Err(e) = validate(request, Reach::Private) {
                return Err(StoreError::Corrupt {
                    path: dir.join(format!("{}.json", s.name)),
                    reason: format!("not a valid webhook: {e}"),
                }
                .into());
            }
        }
        Ok(Self { dir, stored })
    }

    /// The first journal seq some stored webhook still needs (0: none), for
    /// [`innkeep_actors::EngineConfig::journal_retain_from`].
    pub fn retain_from(&self) -> u64 {
        self.stored
            .iter()
            .map(|s| s.cursor.saturating_add(1))
            .min()
            .unwrap_or(0)
    }
}

/// The webhooks of one server: definitions, delivery tasks and their thread.
#[derive(Clone, Debug)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Where events come from (window and journal) and where the retention floor goes.
    engine: Engine,
    /// Address policy, `max_age`, timeouts and backoff.
    settings: WebhookSettings,
    /// `data_dir/webhooks`, one file per webhook.
    dir: PathBuf,
    /// One client for every webhook (its connection pool is per host): guarded resolver,
    /// no redirects, no proxy, the attempt time limit.
    client: reqwest::Client,
    /// Live webhooks by name.
    hooks: Mutex<BTreeMap<String, Arc<Hook>>>,
    /// Serializes definition changes (put, delete, replay) with their file writes, so two
    /// of them on one name cannot interleave their files.
    admin: tokio::sync::Mutex<()>,
    /// The delivery thread's runtime.
    runtime: tokio::runtime::Handle,
    /// Cancelled by [`Webhooks::shutdown`]: every task persists and stops.
    stop: CancellationToken,
    /// The delivery tasks, awaited at shutdown.
    tasks: TaskTracker,
    /// The delivery thread, joined at shutdown.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// One webhook: its state (shared by its task and the API) and the task's controls.
#[derive(Debug)]
struct Hook {
    /// Its name, the key of `Inner::hooks` and of its file.
    name: String,
    /// Definition, cursor and delivery record, as written to its file; never locked
    /// across an await.
    state: Mutex<Stored>,
    /// Bumped by a replay or a new definition: the task drops the event it is retrying
    /// and starts again from the stored cursor with the current definition.
    generation: AtomicU64,
    /// Wakes the task (a replay, a new definition).
    wake: Notify,
    /// Cancelled when the webhook is deleted (a child of the manager's token).
    stop: CancellationToken,
    /// Held across each file write, which takes the state as it is then: writes are
    /// ordered and none writes older state over newer.
    file: Mutex<()>,
    /// Set (under `file`) when deleted: the task writes no more.
    deleted: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Now, as stored in attempts and dead letters.
fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

fn now_unix_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn storage(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "webhook store write failed");
    ApiError::Engine(EngineError::Unavailable(e.to_string()))
}

impl Webhooks {
    /// Starts the delivery thread and a task per stored webhook.
    pub fn start(
        engine: Engine,
        settings: WebhookSettings,
        loaded: Loaded,
    ) -> Result<Self, WebhookStartError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(policy::resolver(settings.reach))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("innkeep-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookStartError::Runtime(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("innkeep-webhooks-io")
            .build()
            .map_err(|e| WebhookStartError::Runtime(e.to_string()))?;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let thread = {
            let stop = stop.clone();
            let tasks = tasks.clone();
            let handle = runtime.handle().clone();
            let thread = std::thread::Builder::new()
                .name("innkeep-webhooks".into())
                .spawn(move || {
                    runtime.block_on(async move {
                        stop.cancelled().await;
                        tasks.close();
                        tasks.wait().await;
                    });
                    runtime.shutdown_timeout(Duration::from_secs(5));
                })
                .map_err(|e| WebhookStartError::Runtime(e.to_string()))?;
            (thread, handle)
        };
        let (thread, handle) = thread;
        let me = Self {
            inner: Arc::new(Inner {
                engine,
                settings,
                dir: loaded.dir,
                client,
                hooks: Mutex::new(BTreeMap::new()),
                admin: tokio::sync::Mutex::new(()),
                runtime: handle,
                stop,
                tasks,
                thread: Mutex::new(Some(thread)),
            }),
        };
        for stored in loaded.stored {
            me.launch(stored);
        }
        me.update_retention();
        Ok(me)
    }

    /// Stops every delivery task (each writes its cursor first) and joins the thread.
    /// Idempotent.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
        let thread = lock(&self.inner.thread).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("webhook delivery thread panicked");
            }
        }
    }

    /// Registers `stored` and starts its task.
    fn launch(&self, stored: Stored) -> Arc<Hook> {
        let hook = Arc::new(Hook {
            name: stored.name.clone(),
            state: Mutex::new(stored),
            generation: AtomicU64::new(0),
            wake: Notify::new(),
            stop: self.inner.stop.child_token(),
            file: Mutex::new(()),
            deleted: AtomicBool::new(false),
        });
        lock(&self.inner.hooks).insert(hook.name.clone(), hook.clone());
        let task = deliver::run(self.clone(), hook.clone());
        self.inner.tasks.spawn_on(task, &self.inner.runtime);
        hook
    }

    /// Writes `hook`'s state as it is now, on the blocking pool, unless it was deleted.
    async fn persist(&self, hook: &Arc<Hook>) -> Result<(), StoreError> {
        let hook = hook.clone();
        let dir = self.inner.dir.clone();
        let written = self
            .inner
            .runtime
            .spawn_blocking(move || {
                let _file = lock(&hook.file);
                if hook.deleted.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let snapshot = lock(&hook.state).clone();
                store::write(&dir, &snapshot)
            })
            .await;
        let result = written.unwrap_or_else(|e| {
            Err(StoreError::Io {
                path: self.inner.dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        });
        self.update_retention();
        result
    }

    /// Tells the journal the oldest record a live webhook still needs: after the
    /// smallest cursor among webhooks not failing for `max_age` (0: none needs any).
    fn update_retention(&self) {
        let now = now_unix_ms();
        let max_age_ms = i64::try_from(self.inner.settings.max_age.as_millis()).unwrap_or(i64::MAX);
        let floor = lock(&self.inner.hooks)
            .values()
            .filter_map(|h| {
                let s = lock(&h.state);
                let given_up = s
                    .failing_since_unix_ms
                    .is_some_and(|since| now.saturating_sub(since) >= max_age_ms);
                (!given_up).then(|| s.cursor.saturating_add(1))
            })
            .min()
            .unwrap_or(0);
        self.inner.engine.retain_journal_from(JOURNAL_READER, floor);
    }

    fn get(&self, name: &str) -> Option<Arc<Hook>> {
        lock(&self.inner.hooks).get(name).cloned()
    }

    /// The webhook `name` if `caller` may see it: every hotel it names is in the caller's
    /// scope (`*` needs a key for every hotel). Else 404, as if it did not exist.
    fn visible(&self, caller: &Principal, name: &str) -> Result<Arc<Hook>, ApiError> {
        self.get(name)
            .filter(|h| covers(&caller.hotels, &lock(&h.state).definition.hotels))
            .ok_or_else(|| ApiError::NotFound(format!("no webhook named {name:?}")))
    }

    /// Creates or replaces webhook `name` (`PUT /v1/webhooks/{name}`).
    pub async fn put(
        &self,
        caller: &Principal,
        name: &str,
        request: PutWebhookRequest,
    ) -> Result<(bool, WebhookView), ApiError> {
        let name = parse_name(name)?;
        let definition = validate(request, self.inner.settings.reach)?;
        if !covers(&caller.hotels, &definition.hotels) {
            return Err(ApiError::Forbidden);
        }
        let _admin = self.inner.admin.lock().await;
        match self.get(&name) {
            Some(hook) => {
                if !covers(&caller.hotels, &lock(&hook.state).definition.hotels) {
                    return Err(ApiError::Forbidden);
                }
                let previous = {
                    let mut s = lock(&hook.state);
                    let previous = s.clone();
                    s.definition = definition;
                    s.updated_at = now_rfc3339();
                    // Under the state lock: the task settles no event of the old
                    // definition after this.
                    hook.generation.fetch_add(1, Ordering::SeqCst);
                    previous
                };
                if let Err(e) = self.persist(&hook).await {
                    *lock(&hook.state) = previous;
                    return Err(storage(e));
                }
                hook.wake.notify_one();
                let view = WebhookView::of(&lock(&hook.state));
                Ok((false, view))
            }
            None => {
                if lock(&self.inner.hooks).len() >= MAX_WEBHOOKS {
                    return Err(DomainError::LimitReached("webhooks").into());
                }
                let now = now_rfc3339();
                let stored = Stored {
                    format: STORE_FORMAT_VERSION,
                    name: name.clone(),
                    definition,
                    created_at: now.clone(),
                    updated_at: now,
                    // From the next event on: a new webhook is not a replay.
                    cursor: self
                        .inner
                        .engine
                        .watch_next_event_seq()
                        .borrow()
                        .saturating_sub(1),
                    failing_since_unix_ms: None,
                    attempts: Default::default(),
                    dead_letters: Default::default(),
                    dead_letters_total: 0,
                };
                let dir = self.inner.dir.clone();
                let to_write = stored.clone();
                self.inner
                    .runtime
                    .spawn_blocking(move || store::write(&dir, &to_write))
                    .await
                    .map_err(|e| ApiError::Engine(EngineError::Unavailable(e.to_string())))?
                    .map_err(storage)?;
                let view = WebhookView::of(&stored);
                self.launch(stored);
                self.update_retention();
                Ok((true, view))
            }
        }
    }

    /// The webhooks `caller` may see, by name (`GET /v1/webhooks`).
    pub fn list(&self, caller: &Principal) -> Vec<WebhookView> {
        lock(&self.inner.hooks)
            .values()
            .filter_map(|h| {
                let s = lock(&h.state);
                covers(&caller.hotels, &s.definition.hotels).then(|| WebhookView::of(&s))
            })
            .collect()
    }

    /// One webhook (`GET /v1/webhooks/{name}`).
    pub fn show(&self, caller: &Principal, name: &str) -> Result<WebhookView, ApiError> {
        let name = parse_name(name)?;
        let hook = self.visible(caller, &name)?;
        let view = WebhookView::of(&lock(&hook.state));
        Ok(view)
    }

    /// Deletes a webhook and its file; its task stops (`DELETE /v1/webhooks/{name}`).
    pub async fn delete(&self, caller: &Principal, name: &str) -> Result<(), ApiError> {
        let name = parse_name(name)?;
        let _admin = self.inner.admin.lock().await;
        let hook = self.visible(caller, &name)?;
        let dir = self.inner.dir.clone();
        let file_hook = hook.clone();
        self.inner
            .runtime
            .spawn_blocking(move || {
                let _file = lock(&file_hook.file);
                store::remove(&dir, &file_hook.name)?;
                file_hook.deleted.store(true, Ordering::SeqCst);
                Ok::<(), StoreError>(())
            })
            .await
            .map_err(|e| ApiError::Engine(EngineError::Unavailable(e.to_string())))?
            .map_err(storage)?;
        lock(&self.inner.hooks).remove(&name);
        hook.stop.cancel();
        self.update_retention();
        Ok(())
    }

    /// The cursor, newest attempts and dead letters (`GET /v1/webhooks/{name}/deliveries`).
    pub fn deliveries(&self, caller: &Principal, name: &str) -> Result<DeliveriesView, ApiError> {
        let name = parse_name(name)?;
        let hook = self.visible(caller, &name)?;
        let view = DeliveriesView::of(&lock(&hook.state));
        Ok(view)
    }

    /// Sends again from `from_event_id` on (`POST /v1/webhooks/{name}/replay`): 409
    /// `event_unavailable` when the journal no longer holds that event or never had it.
    pub async fn replay(
        &self,
        caller: &Principal,
        name: &str,
        from_event_id: u64,
    ) -> Result<DeliveriesView, ApiError> {
        let name = parse_name(name)?;
        if from_event_id == 0 || from_event_id > i64::MAX as u64 {
            return Err(ApiError::InvalidRequest(
                "from_event_id: an event id, 1 to 2^63 - 1".into(),
            ));
        }
        let _admin = self.inner.admin.lock().await;
        let hook = self.visible(caller, &name)?;
        let engine = &self.inner.engine;
        let next = *engine.watch_next_event_seq().borrow();
        if from_event_id > next {
            return Err(ApiError::EventUnavailable(format!(
                "event {from_event_id} does not exist yet; the next event will be {next}"
            )));
        }
        // Kept from here on before looking, so a snapshot cannot delete it in between.
        engine.retain_journal_from(JOURNAL_READER, from_event_id);
        if from_event_id < next {
            let page = engine.events_page(from_event_id - 1, 1);
            let first = match page.missed_before {
                None => page.events.first().map(|e| e.seq),
                Some(_) => engine
                    .journal_events_after(from_event_id - 1, 1)
                    .await?
                    .first()
                    .map(|e| e.seq),
            };
            if first != Some(from_event_id) {
                self.update_retention();
                return Err(ApiError::EventUnavailable(format!(
                    "event {from_event_id} is no longer in the journal{}",
                    first.map_or(String::new(), |f| format!("; the oldest it holds is {f}"))
                )));
            }
        }
        let (previous, view) = {
            let mut s = lock(&hook.state);
            let previous = s.clone();
            s.cursor = from_event_id - 1;
            s.failing_since_unix_ms = None;
            // Under the state lock: the task moves the cursor no further on its own.
            hook.generation.fetch_add(1, Ordering::SeqCst);
            (previous, DeliveriesView::of(&s))
        };
        if let Err(e) = self.persist(&hook).await {
            *lock(&hook.state) = previous;
            self.update_retention();
            return Err(storage(e));
        }
        hook.wake.notify_one();
        // As the replay left it: the task may have sent more by now.
        Ok(view)
    }
}

/// Whether a key's `scope` covers every hotel of `hotels` (`*` needs every hotel).
fn covers(scope: &HotelScope, hotels: &[String]) -> bool {
    match scope {
        HotelScope::All => true,
        HotelScope::Only(set) => hotels.iter().all(|h| h != "*" && set.contains(h)),
    }
}

/// A webhook name: a code like every other id.
fn parse_name(raw: &str) -> Result<String, ApiError> {
    // The rule of every code (hotel ids and the like).
    innkeep_engine::HotelId::parse(raw)
        .map(|_| raw.to_owned())
        .map_err(|_| {
            ApiError::InvalidRequest(
                "webhook name: 1 to 64 ASCII letters, digits, '-', '_' and '.'".into(),
            )
        })
}

/// The body of `PUT /v1/webhooks/{name}`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutWebhookRequest {
    /// Where events are POSTed: `https://…`, or `http://` to a loopback host
    /// (`localhost`, `127.0.0.0/8`, `[::1]`); with `[webhooks] allow_private = true` also
    /// plain http and private addresses. No credentials, no fragment; at most 2048 bytes.
    /// A URL or a resolved address outside these rules is 400 `invalid_request`.
    #[schema(value_type = WebhookUrl)]
    pub url: String,
    /// Hotel ids whose events are sent, or `"*"` for every hotel (the key must cover all
    /// hotels then). Duplicates are ignored.
    #[schema(value_type = Vec<WebhookHotel>, min_items = 1, max_items = 256, example = json!(["DEMO"]))]
    pub hotels: Vec<String>,
    /// Event types sent (those of the event stream that carry an id), or `"*"` for all.
    /// Duplicates are ignored.
    #[schema(value_type = Vec<WebhookEventType>, min_items = 1, max_items = 64, example = json!(["reservation.created", "reservation.cancelled"]))]
    pub events: Vec<String>,
    /// The HMAC key the receiver verifies `Innkeep-Signature` with: 16 to 256 visible
    /// ASCII characters. Never shown again.
    #[schema(value_type = WebhookSecret)]
    pub secret: String,
}

/// Checks a definition against every rule: any failure is 400 `invalid_request` naming
/// the field, and nothing changes.
pub fn validate(request: PutWebhookRequest, reach: Reach) -> Result<Definition, ApiError> {
    let invalid = |m: String| ApiError::InvalidRequest(m);
    let url = policy::check_url(&request.url, reach).map_err(|e| invalid(e.to_string()))?;
    if request.hotels.is_empty() || request.hotels.len() > MAX_HOTELS_PER_WEBHOOK {
        return Err(invalid(format!(
            "hotels: 1 to {MAX_HOTELS_PER_WEBHOOK} entries"
        )));
    }
    let mut hotels = Vec::with_capacity(request.hotels.len());
    for h in &request.hotels {
        if h != "*" {
            innkeep_engine::HotelId::parse(h)
                .map_err(|e| invalid(format!("hotels: {h:?}: {e}")))?;
        }
        hotels.push(h.clone());
    }
    if request.events.is_empty() || request.events.len() > MAX_EVENTS_PER_WEBHOOK {
        return Err(invalid(format!(
            "events: 1 to {MAX_EVENTS_PER_WEBHOOK} entries"
        )));
    }
    for e in &request.events {
        if e != "*" && !EVENT_TYPES.contains(&e.as_str()) {
            return Err(invalid(format!(
                "events: {e:?} is not an event type; known: {}, or \"*\"",
                EVENT_TYPES.join(", ")
            )));
        }
    }
    let secret = request.secret;
    if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&secret.len())
        || !secret.bytes().all(|b| (b'!'..=b'~').contains(&b))
    {
        return Err(invalid(format!(
            "secret: {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} visible ASCII characters"
        )));
    }
    Ok(Definition {
        url: url.as_str().to_owned(),
        hotels: normalize(hotels),
        events: normalize(request.events),
        secret,
    })
}

/// Sorted, without duplicates, and `["*"]` when `*` is among them.
fn normalize(mut list: Vec<String>) -> Vec<String> {
    if list.iter().any(|x| x == "*") {
        return vec!["*".to_owned()];
    }
    list.sort();
    list.dedup();
    list
}

/// A webhook as the API shows it: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its name.
    #[schema(example = "crm")]
    pub name: String,
    /// Where events go (as normalised by the URL parser).
    #[schema(example = "https://hooks.example.com/innkeep")]
    pub url: String,
    /// Hotel ids, sorted, or `["*"]`.
    pub hotels: Vec<String>,
    /// Event types, sorted, or `["*"]`.
    pub events: Vec<String>,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// When its definition was last replaced (RFC 3339, UTC).
    pub updated_at: String,
}

impl WebhookView {
    fn of(s: &Stored) -> Self {
        Self {
            name: s.name.clone(),
            url: s.definition.url.clone(),
            hotels: s.definition.hotels.clone(),
            events: s.definition.events.clone(),
            created_at: s.created_at.clone(),
            updated_at: s.updated_at.clone(),
        }
    }
}

/// `GET /v1/webhooks`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// The webhooks the key may see, by name.
    pub webhooks: Vec<WebhookView>,
}

/// One delivery attempt.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// The event sent (`Innkeep-Event-Id`).
    pub event_id: u64,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Milliseconds from sending to the answer (or the failure).
    pub latency_ms: u64,
}

impl From<store::Attempt> for AttemptView {
    fn from(a: store::Attempt) -> Self {
        Self {
            event_id: a.event_id,
            at: a.at,
            status: a.status,
            error: a.error,
            latency_ms: a.latency_ms,
        }
    }
}

/// An event (or run of events) given up on.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    /// The event, or the first of the run.
    pub event_id: u64,
    /// The last event of the run (= `event_id` for one).
    pub through_event_id: u64,
    /// Its type; null for a run the journal no longer held.
    pub event_type: Option<String>,
    /// When it was given up on (RFC 3339, UTC).
    pub at: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why.
    pub reason: String,
}

impl From<store::DeadLetter> for DeadLetterView {
    fn from(d: store::DeadLetter) -> Self {
        Self {
            event_id: d.event_id,
            through_event_id: d.through_event_id,
            event_type: d.event_type,
            at: d.at,
            attempts: d.attempts,
            reason: d.reason,
        }
    }
}

/// `GET /v1/webhooks/{name}/deliveries`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeliveriesView {
    /// The webhook.
    pub name: String,
    /// Every event up to this id is settled (delivered, not matching, or dead-lettered);
    /// delivery continues after it.
    pub cursor: u64,
    /// Since when the receiver has been failing (RFC 3339, UTC); null while it answers
    /// 2xx.
    pub failing_since: Option<String>,
    /// The newest attempts, newest first (at most 20).
    pub attempts: Vec<AttemptView>,
    /// The newest dead letters, newest first (at most 100).
    pub dead_letters: Vec<DeadLetterView>,
    /// Dead letters ever.
    pub dead_letters_total: u64,
}

impl DeliveriesView {
    fn of(s: &Stored) -> Self {
        Self {
            name: s.name.clone(),
            cursor: s.cursor,
            failing_since: s
                .failing_since_unix_ms
                .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                .map(|t| t.to_string()),
            attempts: s
                .attempts
                .iter()
                .rev()
                .cloned()
                .map(AttemptView::from)
                .collect(),
            dead_letters: s
                .dead_letters
                .iter()
                .rev()
                .cloned()
                .map(DeadLetterView::from)
                .collect(),
            dead_letters_total: s.dead_letters_total,
        }
    }
}

/// The body of `POST /v1/webhooks/{name}/replay`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Send again from this event id on (it must still be in the journal).
    #[serde(deserialize_with = "crate::wire::whole")]
    #[schema(value_type = EventId)]
    pub from_event_id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str, hotels: &[&str], events: &[&str], secret: &str) -> PutWebhookRequest {
        PutWebhookRequest {
            url: url.into(),
            hotels: hotels.iter().map(|s| (*s).into()).collect(),
            events: events.iter().map(|s| (*s).into()).collect(),
            secret: secret.into(),
        }
    }

    const SECRET: &str = "whsec-0123456789abcdef";

    #[test]
    fn a_valid_definition_is_normalised() {
        let d = validate(
            request(
                "https://Hooks.Example.com/a",
                &["H2", "H1", "H2"],
                &[
                    "reservation.created",
                    "payment.updated",
                    "reservation.created",
                ],
                SECRET,
            ),
            Reach::PublicOnly,
        )
        .unwrap();
        assert_eq!(d.url, "https://hooks.example.com/a");
        assert_eq!(d.hotels, vec!["H1", "H2"]);
        assert_eq!(d.events, vec!["payment.updated", "reservation.created"]);
        let d = validate(
            request(
                "http://127.0.0.1:1/",
                &["H1", "*"],
                &["*", "room.status"],
                SECRET,
            ),
            Reach::PublicOnly,
        )
        .unwrap();
        assert_eq!(
            (d.hotels, d.events),
            (vec!["*".to_owned()], vec!["*".to_owned()])
        );
        assert!(d.secret == SECRET);
    }

    #[test]
    fn every_field_is_checked() {
        let bad = [
            request("http://example.com/", &["H1"], &["*"], SECRET),
            request("https://10.0.0.8/", &["H1"], &["*"], SECRET),
            request("https://example.com/", &[], &["*"], SECRET),
            request("https://example.com/", &["bad id"], &["*"], SECRET),
            request("https://example.com/", &["H1"], &[], SECRET),
            request(
                "https://example.com/",
                &["H1"],
                &["reservation.eaten"],
                SECRET,
            ),
            // Derived events carry no id of their own: not deliverable.
            request(
                "https://example.com/",
                &["H1"],
                &["availability.changed"],
                SECRET,
            ),
            request("https://example.com/", &["H1"], &["*"], "short"),
            request(
                "https://example.com/",
                &["H1"],
                &["*"],
                "with a space 0123456789",
            ),
            request("https://example.com/", &["H1"], &["*"], &"x".repeat(257)),
        ];
        for r in bad {
            let shown = format!("{r:?}");
            match validate(r, Reach::PublicOnly) {
                Err(ApiError::InvalidRequest(_)) => {}
                other => panic!("{shown}: {other:?}"),
            }
        }
        let too_many: Vec<String> = (0..=MAX_HOTELS_PER_WEBHOOK)
            .map(|i| format!("H{i}"))
            .collect();
        let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
        assert!(validate(
            request("https://example.com/", &refs, &["*"], SECRET),
            Reach::PublicOnly
        )
        .is_err());
        // Private receivers only when allowed.
        assert!(validate(
            request("http://10.0.0.8/", &["H1"], &["*"], SECRET),
            Reach::Private
        )
        .is_ok());
    }

    /// A stored definition that the API would refuse stops start-up, naming the file.
    #[test]
    fn an_invalid_stored_definition_is_refused_at_load() {
        let data = tempfile::tempdir().unwrap();
        let dir = store::store_dir(data.path());
        let mut s = Stored {
            format: STORE_FORMAT_VERSION,
            name: "crm".into(),
            definition: validate(
                request("https://example.com/", &["H1"], &["*"], SECRET),
                Reach::PublicOnly,
            )
            .unwrap(),
            created_at: String::new(),
            updated_at: String::new(),
            cursor: 4,
            failing_since_unix_ms: None,
            attempts: Default::default(),
            dead_letters: Default::default(),
            dead_letters_total: 0,
        };
        store::write(&dir, &s).unwrap();
        let loaded = Loaded::read(data.path()).unwrap();
        assert_eq!(loaded.retain_from(), 5);
        s.definition.events = vec!["reservation.eaten".into()];
        store::write(&dir, &s).unwrap();
        let err = Loaded::read(data.path()).unwrap_err().to_string();
        assert!(err.contains("crm.json") && err.contains("events"), "{err}");
    }

    #[test]
    fn scope_covers_named_hotels_and_star_needs_all() {
        let only = HotelScope::Only(["H1".to_owned(), "H2".to_owned()].into());
        assert!(covers(&only, &["H1".into()]));
        assert!(covers(&only, &["H1".into(), "H2".into()]));
        assert!(!covers(&only, &["H1".into(), "H3".into()]));
        assert!(!covers(&only, &["*".into()]));
        assert!(covers(&HotelScope::All, &["*".into()]));
    }

    #[test]
    fn definitions_match_hotel_and_type() {
        let d = Definition {
            url: String::new(),
            hotels: vec!["H1".into()],
            events: vec!["reservation.created".into()],
            secret: String::new(),
        };
        assert!(d.matches("H1", "reservation.created"));
        assert!(!d.matches("H2", "reservation.created"));
        assert!(!d.matches("H1", "reservation.cancelled"));
        let all = Definition {
            hotels: vec!["*".into()],
            events: vec!["*".into()],
            ..d
        };
        assert!(all.matches("H9", "room.status"));
    }
}
