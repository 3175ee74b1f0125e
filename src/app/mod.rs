//! `smsflow serve`: start the chosen roles in one process under one shutdown token. Each role
//! has its own small start function ([`ingress`], [`api`], [`projector`], [`stages`]); they
//! share the process's clients ([`clients`]: one CQL session, one Redis pool), the phone
//! directory ([`phone_cache`]) and two HTTP listeners ([`http`]): the public one and the
//! operator one.

mod api;
mod clients;
mod error;
mod http;
mod ingress;
mod phone_cache;
mod projector;
mod stages;
mod tasks;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::api::auth::Authenticator;
use crate::config::Settings;
use crate::kafka::EventProducer;
use crate::phones::PhoneRegistry;

pub use clients::{Clients, ClientsError};
pub use error::AppError;
use tasks::Tasks;

/// A role `serve` can run.
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
    /// Every role, in start order.
    pub const ALL: &'static [Role] = &[
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

/// A started application: its HTTP addresses and its tasks.
pub struct Application {
    http: http::Bound,
    tasks: Tasks,
}

/// What the roles of one process share.
struct Shared {
    settings: Settings,
    clients: Arc<Clients>,
    directory: Arc<crate::phones::PhoneDirectory>,
}

impl Application {
    /// Bind and start every role; returns once listeners are bound and clients created.
    pub async fn start(
        settings: Settings,
        roles: &[Role],
        shutdown: CancellationToken,
    ) -> Result<Self, AppError> {
        let has = |r: Role| roles.contains(&r);
        let mut tasks = Tasks::new(shutdown);
        let metrics = crate::metrics::install();
        let clients = Arc::new(Clients::new(&settings)?);
        clients::sample_pools(clients.clone(), &mut tasks);
        let directory = phone_cache::start(
            &settings,
            &clients,
            [Role::Ingress, Role::Api, Role::Enrich]
                .iter()
                .any(|r| has(*r)),
            &mut tasks,
        );
        let shared = Shared {
            settings,
            clients,
            directory,
        };
        let authenticator = Arc::new(Authenticator::new(&shared.settings.api.auth));
        let ops = http::ops_router(&shared.clients, metrics, authenticator.clone());
        let mut router = http::public_router();

        if has(Role::Ingress) || has(Role::Api) {
            let (producer, registry) = front_clients(&shared, &mut tasks).await?;
            if has(Role::Ingress) {
                router = router.merge(ingress::start(&shared, &producer, &registry, &mut tasks)?);
            }
            if has(Role::Api) {
                router =
                    router.merge(api::start(&shared, &producer, &registry, authenticator).await?);
            }
        }
        let http = http::serve(&shared.settings.http, router, ops, &mut tasks).await?;

        if has(Role::Projector) {
            projector::start(&shared, &mut tasks);
        }
        if has(Role::Media) {
            stages::start_media(&shared, &mut tasks)?;
        }
        if has(Role::Transcribe) {
            stages::start_transcribe(&shared, &mut tasks)?;
        }
        if has(Role::Enrich) {
            stages::start_enrich(&shared, &mut tasks)?;
        }
        if has(Role::Notify) {
            stages::start_notify(&shared, &mut tasks)?;
        }
        if has(Role::Confirm) {
            stages::start_confirm(&shared, &mut tasks)?;
        }
        Ok(Application { http, tasks })
    }

    /// The bound address of the public listener, `http.addr` (port 0 in tests resolves here).
    pub fn http_addr(&self) -> SocketAddr {
        self.http.public
    }

    /// The bound address of the operator listener, `http.ops_addr`.
    pub fn ops_addr(&self) -> SocketAddr {
        self.http.ops
    }

    /// Wait for every task; the first failure cancels the rest.
    pub async fn wait(self) -> Result<(), AppError> {
        self.tasks.wait().await
    }
}

/// The producer and the registry that ingress and the API share (one of each per process);
/// the producer is flushed on shutdown.
async fn front_clients(
    shared: &Shared,
    tasks: &mut Tasks,
) -> Result<(EventProducer, Arc<PhoneRegistry>), AppError> {
    let kafka = shared.settings.kafka.clone();
    // librdkafka blocks while it creates a client: off the async workers.
    let producer =
        tokio::task::spawn_blocking(move || EventProducer::new(&kafka, "smsflow-ingress"))
            .await
            .map_err(|source| AppError::Task {
                task: "create the producer",
                source,
            })??;
    // Confluent wire format: fetch the registry ids now, and keep trying while the registry
    // is away; until then /readyz says why and sends fail at once with 503.
    let encoder = producer.encoder().clone();
    let token = tasks.token();
    tasks.spawn("schema registry ids", async move {
        encoder.wait_ready("ingress and API producer", &token).await;
        Ok(())
    });
    let registry = Arc::new(PhoneRegistry::new(
        &shared.settings.phones,
        &shared.settings.kafka,
        shared.directory.clone(),
        producer.clone(),
        shared.clients.redis.clone(),
    ));
    let flush_on_exit = producer.clone();
    let token = tasks.token();
    tasks.spawn("flush the producer on shutdown", async move {
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
    Ok((producer, registry))
}
