//! The stage roles, one start function each: build the stage from its settings, then run it
//! on the transactional stage runner.

use std::sync::Arc;

use super::tasks::Tasks;
use super::{AppError, Shared};
use crate::kafka::stage_runner::{run_stage, Stage};
use crate::stages::confirm::ConfirmStage;
use crate::stages::enrich::stage::EnrichStage;
use crate::stages::media::MediaStage;
use crate::stages::notify::{NotifyContext, NotifyStage};
use crate::stages::shared::media_store;
use crate::stages::transcribe::TranscribeStage;

fn run<S: Stage>(shared: &Shared, tasks: &mut Tasks, name: &'static str, stage: S) {
    let (kafka, settings, token) = (
        shared.settings.kafka.clone(),
        shared.settings.stages.clone(),
        tasks.token(),
    );
    tasks.spawn(name, async move {
        Ok(run_stage(kafka, settings, Arc::new(stage), token).await?)
    });
}

/// Fetch MMS media into the media store.
pub(super) fn start_media(shared: &Shared, tasks: &mut Tasks) -> Result<(), AppError> {
    let s = &shared.settings;
    let stage = MediaStage::new(
        &s.media,
        s.twilio.account_sid.clone(),
        s.twilio.auth_token.clone(),
    )?;
    run(shared, tasks, "media stage", stage);
    Ok(())
}

/// Turn stored audio into transcripts.
pub(super) fn start_transcribe(shared: &Shared, tasks: &mut Tasks) -> Result<(), AppError> {
    let (store, _) = media_store::open(&shared.settings.media.store_url)?;
    let stage = TranscribeStage::new(&shared.settings.transcribe, store)?;
    run(shared, tasks, "transcribe stage", stage);
    Ok(())
}

/// Extract items from bodies, transcripts and vCards.
pub(super) fn start_enrich(shared: &Shared, tasks: &mut Tasks) -> Result<(), AppError> {
    let (store, _) = media_store::open(&shared.settings.media.store_url)?;
    let stage = EnrichStage::new(&shared.settings.enrich, store, shared.directory.clone())?;
    run(shared, tasks, "enrich stage", stage);
    Ok(())
}

/// Send outbound SMS through Twilio.
pub(super) fn start_notify(shared: &Shared, tasks: &mut Tasks) -> Result<(), AppError> {
    let s = &shared.settings;
    let stage = NotifyStage::new(
        &s.notify,
        NotifyContext {
            account_sid: s.twilio.account_sid.as_deref(),
            auth_token: crate::secrets::non_empty(&s.twilio.auth_token),
            public_url: &s.http.public_url,
            webhook_overrides: &s.twilio.webhooks.overrides,
            topic_prefix: &s.kafka.topic_prefix,
            redis: shared.clients.redis.clone(),
            phones: shared.directory.clone(),
        },
    )?;
    run(shared, tasks, "notify stage", stage);
    Ok(())
}

/// Text each sender how many items wait, when `confirm.enabled`.
pub(super) fn start_confirm(shared: &Shared, tasks: &mut Tasks) -> Result<(), AppError> {
    let s = &shared.settings;
    if !s.confirm.enabled {
        tracing::info!("confirm role idle: confirmation replies are off (confirm.enabled = false)");
        return Ok(());
    }
    let stage = ConfirmStage::new(
        &s.confirm,
        shared.clients.redis.clone(),
        &s.kafka.topic_prefix,
    )?;
    run(shared, tasks, "confirm stage", stage);
    Ok(())
}
