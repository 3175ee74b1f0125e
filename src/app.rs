//! `smsflow serve`: start the chosen roles in one process under one shutdown token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

use crate::api::admin::AdminState;
use crate::api::auth::Authenticator;
use crate::api::health::{self, DependencyError};
use crate::api::items::ItemsApi;
use crate::api::phones::PhonesApi;
use crate::api::{self, Dependencies};
use crate::config::{ConfigError, Settings};
use crate::ingress::{self, IngressState};
use crate::kafka::runner;
use crate::kafka::{EventProducer, ProduceError};
use crate::phones::{PhoneDirectory, PhoneRegistry};
use crate::stages::confirm::ConfirmStage;
use crate::stages::enrich::stage::EnrichStage;
use crate::stages::media::MediaStage;
use crate::stages::notify::NotifyStage;
use crate::stages::transcribe::TranscribeStage;
use crate::{http, projector};

/// A role `serve` can run. Roles not yet built are refused with a clear message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Ingress,
    Media,
    Transcribe,
    Enrich,
    Notify,
    Confirm,
    Projector,
    Api,
}

impl Role {
    /// Roles this build can run.
    pub const AVAILABLE: &'static [Role] = &[
        Role::Ingress,
        Role::Media,
        Role::Transcribe,
        Role::Enrich,
        Role::Notify,
        Role::Confirm,
        Role::Projector,
        Role::Api,
    ];
}

/// Why the application could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(
        "role {0:?} is not available in this build yet; available roles: ingress, media, transcribe, enrich, notify, confirm, projector, api"
    )]
    RoleUnavailable(Role),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "cannot bind HTTP on {addr}: {source}; is another process using the port (http.addr)?"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Produce(#[from] ProduceError),
    #[error(transparent)]
    Dependency(#[from] DependencyError),
    #[error(transparent)]
    Http(#[from] http::ServeError),
    #[error(transparent)]
    Projector(#[from] projector::ProjectorError),
    #[error("cannot start a stage: {0}")]
    Stage(String),
    #[error(transparent)]
    Runner(#[from] runner::RunnerError),
    #[error("a task failed: {0}")]
    Task(String),
}

/// A started application: its HTTP address (when it serves HTTP) and its tasks.
pub struct Application {
    http_addr: Option<SocketAddr>,
    tasks: JoinSet<Result<(), AppError>>,
    shutdown: CancellationToken,
}

impl Application {
    /// Bind and start every role; returns once listeners are bound and clients created.
    pub async fn start(
        settings: Settings,
        roles: &[Role],
        shutdown: CancellationToken,
    ) -> Result<Self, AppError> {
        if let Some(r) = roles.iter().find(|r| !Role::AVAILABLE.contains(r)) {
            return Err(AppError::RoleUnavailable(*r));
        }
        let mut tasks = JoinSet::new();
        let metrics_handle = crate::metrics::install();

        let deps = Arc::new(Dependencies::new(&settings)?);
        {
            // Pool statistics as gauges, sampled every few seconds until shutdown.
            let deps = deps.clone();
            let token = shutdown.clone();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    tokio::select! {
                        _ = token.cancelled() => return Ok(()),
                        _ = tick.tick() => deps.export_pool_gauges(),
                    }
                }
            });
        }
        let authenticator = Arc::new(Authenticator::new(&settings.api.auth));
        let admin = Arc::new(AdminState { deps: deps.clone() });
        let mut router = Router::new()
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz).with_state(deps.clone()))
            .route(
                "/metrics",
                get(move || std::future::ready(metrics_handle.render())),
            )
            .merge(api::admin::router(admin, authenticator.clone()));

        // One phone cache per process, shared by the webhook, the phone API and enrich (time
        // zones), and kept fresh by following the registry topic.
        let directory = Arc::new(PhoneDirectory::new(&settings.cql, &settings.phones));
        if [Role::Ingress, Role::Api, Role::Enrich]
            .iter()
            .any(|r| roles.contains(r))
        {
            let directory = directory.clone();
            let s = settings.clone();
            let token = shutdown.clone();
            tasks.spawn(async move {
                let follow = directory.clone().follow(s, token.clone());
                let sample = async {
                    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                    loop {
                        tick.tick().await;
                        crate::metrics::phone_cache_entries(directory.entry_count());
                    }
                };
                tokio::select! {
                    r = follow => r.map_err(|e| AppError::Stage(format!("phone cache follower: {e}"))),
                    _ = sample => Ok(()),
                }
            });
        }
        if roles.contains(&Role::Ingress) || roles.contains(&Role::Api) {
            let kafka = settings.kafka.clone();
            let producer =
                tokio::task::spawn_blocking(move || EventProducer::new(&kafka, "smsflow-ingress"))
                    .await
                    .map_err(|e| AppError::Task(e.to_string()))??
                    .with_encoder(deps.encoder.clone());
            {
                // Confluent wire format: fetch the registry ids now and keep trying while the
                // registry is away; until then /readyz says why and sends fail with 503.
                let encoder = deps.encoder.clone();
                let token = shutdown.clone();
                tasks.spawn(async move {
                    let mut delay = std::time::Duration::from_millis(500);
                    loop {
                        match encoder.ready().await {
                            Ok(()) => return Ok(()),
                            Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "not ready: schema registry ids are not cached"),
                        }
                        tokio::select! {
                            _ = token.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(std::time::Duration::from_secs(30));
                    }
                });
            }
            let registry = Arc::new(PhoneRegistry::new(
                &settings,
                directory.clone(),
                producer.clone(),
                deps.redis.clone(),
            ));
            if roles.contains(&Role::Ingress) {
                let state = Arc::new(IngressState::new(
                    &settings,
                    producer.clone(),
                    deps.redis.clone(),
                    directory.clone(),
                    registry.clone(),
                )?);
                router = router.merge(ingress::router(state, settings.http.body_limit_bytes));
                crate::twilio::startup::check(crate::twilio::startup::Inputs {
                    public_url: &settings.http.public_url,
                    webhooks: &settings.twilio.webhooks,
                    status_callback_url: settings.notify.status_callback_url.as_deref(),
                    produce_deadline: settings.kafka.produce_deadline,
                    account_sid: settings.twilio.account_sid.as_deref(),
                    auth_token: settings.twilio.auth_token.clone().map(Into::into),
                });
            }
            if roles.contains(&Role::Api) {
                if !authenticator.configured() {
                    tracing::warn!("api.auth has neither hs256_secret nor jwks_url: every /v1 request will get 401");
                }
                let session = deps.cql().await.map_err(|e| {
                    AppError::Stage(format!("the api role needs CQL at start: {e}"))
                })?;
                let phones =
                    PhonesApi::new(registry.clone(), session.clone(), &settings.cql.keyspace)
                        .await
                        .map_err(|e| AppError::Stage(e.to_string()))?;
                router = router.merge(api::phones::router(Arc::new(phones), authenticator.clone()));
                let items = ItemsApi::new(
                    session.clone(),
                    &settings.cql.keyspace,
                    producer.clone(),
                    settings.topic(crate::topics::REVIEWS),
                )
                .await
                .map_err(|e| AppError::Stage(e.to_string()))?;
                router = router.merge(api::items::router(Arc::new(items), authenticator));
                router = router.merge(api::openapi::router());
            }
            let flush_on_exit = producer;
            let token = shutdown.clone();
            tasks.spawn(async move {
                token.cancelled().await;
                let flushed = tokio::task::spawn_blocking(move || {
                    flush_on_exit.flush(std::time::Duration::from_secs(5))
                })
                .await;
                if !matches!(flushed, Ok(Ok(()))) {
                    tracing::warn!("producer flush on shutdown did not complete");
                }
                Ok(())
            });
        }

        // Every process serves health, readiness and metrics; ingress adds the webhook.
        let http_addr = {
            let router = router.layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                settings.http.request_timeout,
            ));
            let listener = TcpListener::bind(settings.http.addr)
                .await
                .map_err(|source| AppError::Bind {
                    addr: settings.http.addr,
                    source,
                })?;
            let http_addr = listener.local_addr().ok();
            let http_settings = settings.http.clone();
            let token = shutdown.clone();
            tasks.spawn(
                async move { Ok(http::serve(listener, router, &http_settings, token).await?) },
            );
            tracing::info!(addr = ?http_addr, "HTTP listening");
            http_addr
        };

        if roles.contains(&Role::Projector) {
            let token = shutdown.clone();
            let s = settings.clone();
            tasks.spawn(async move { Ok(projector::run(s, token).await?) });
        }

        if roles.contains(&Role::Transcribe) {
            let (store, _) = crate::stages::media::store::open(&settings.media.store_url)
                .map_err(|e| AppError::Stage(e.to_string()))?;
            let stage = TranscribeStage::new(&settings.transcribe, store)
                .map_err(|e| AppError::Stage(e.to_string()))?;
            let token = shutdown.clone();
            let s = settings.clone();
            tasks.spawn(async move { Ok(runner::run(s, Arc::new(stage), token).await?) });
        }

        if roles.contains(&Role::Enrich) {
            let (store, _) = crate::stages::media::store::open(&settings.media.store_url)
                .map_err(|e| AppError::Stage(e.to_string()))?;
            let stage = EnrichStage::new(&settings.enrich, store, directory.clone())
                .map_err(|e| AppError::Stage(e.to_string()))?;
            let token = shutdown.clone();
            let s = settings.clone();
            tasks.spawn(async move { Ok(runner::run(s, Arc::new(stage), token).await?) });
        }

        if roles.contains(&Role::Media) {
            let stage = MediaStage::new(
                &settings.media,
                settings.twilio.account_sid.clone(),
                settings.twilio.auth_token.clone(),
            )
            .map_err(|e| AppError::Stage(e.to_string()))?;
            let token = shutdown.clone();
            let s = settings.clone();
            tasks.spawn(async move { Ok(runner::run(s, Arc::new(stage), token).await?) });
        }

        if roles.contains(&Role::Notify) {
            let session = deps
                .cql()
                .await
                .map_err(|e| AppError::Stage(e.to_string()))?
                .clone();
            let stage = NotifyStage::new(&settings, deps.redis.clone(), session)
                .await
                .map_err(|e| AppError::Stage(e.to_string()))?;
            let token = shutdown.clone();
            let s = settings.clone();
            tasks.spawn(async move { Ok(runner::run(s, Arc::new(stage), token).await?) });
        }

        if roles.contains(&Role::Confirm) {
            if settings.confirm.enabled {
                let stage = ConfirmStage::new(
                    &settings.confirm,
                    deps.redis.clone(),
                    &settings.kafka.topic_prefix,
                )
                .map_err(|e| AppError::Stage(e.to_string()))?;
                let token = shutdown.clone();
                let s = settings.clone();
                tasks.spawn(async move { Ok(runner::run(s, Arc::new(stage), token).await?) });
            } else {
                tracing::info!(
                    "confirm role idle: confirmation replies are off (confirm.enabled = false)"
                );
            }
        }

        Ok(Application {
            http_addr,
            tasks,
            shutdown,
        })
    }

    /// The bound HTTP address (port 0 in tests resolves here).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Wait for every task; the first failure cancels the rest.
    pub async fn wait(mut self) -> Result<(), AppError> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let result = joined
                .map_err(|e| AppError::Task(e.to_string()))
                .and_then(|r| r);
            if let Err(e) = result {
                tracing::error!(error = %e, "a role failed; shutting the others down");
                self.shutdown.cancel();
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
