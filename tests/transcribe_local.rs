//! The transcribe stage with its default local provider, end to end without Kafka: stored
//! bytes → ffmpeg → pocketsphinx → `TranscriptReady`/`TranscriptFailed`. Judged on human
//! recordings with reference transcripts from Debian's `pocketsphinx-testdata` package.
//!
//! Needs Debian's `ffmpeg`, `pocketsphinx`, `pocketsphinx-en-us` and `pocketsphinx-testdata`
//! (`deploy/local/deps.sh` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

use smsflow::events::{encode, MediaStored, TranscriptFailed, TranscriptReady};
use smsflow::kafka::consume::Record;
use smsflow::kafka::stage_runner::handle_record;
use smsflow::stages::transcribe::wer::{word_errors, WordErrors};
use smsflow::stages::transcribe::{TranscribeSettings, TranscribeStage};
use smsflow::stages::StageError;

const TESTDATA: &str = "/usr/share/pocketsphinx/test/data";

/// What the stage produced for one input.
#[derive(Debug)]
enum Produced {
    Ready(TranscriptReady),
    Failed(TranscriptFailed),
    Nothing,
}

struct Harness {
    stage: TranscribeStage,
    store: Arc<InMemory>,
}

impl Harness {
    fn new(settings: TranscribeSettings) -> Harness {
        let store = Arc::new(InMemory::new());
        let stage = TranscribeStage::new(&settings, store.clone()).unwrap_or_else(|e| {
            panic!("{e}\n(run deploy/local/deps.sh to install ffmpeg and pocketsphinx)")
        });
        Harness { stage, store }
    }

    /// Store `bytes` as media `sid`/0 and run the stage on its `MediaStored`.
    async fn run(
        &self,
        sid: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Produced, StageError> {
        let media = media_stored(sid, content_type, bytes.len());
        self.store
            .put(
                &ObjectPath::from(media.object_key.as_str()),
                PutPayload::from(bytes),
            )
            .await
            .expect("in-memory put");
        self.handle(&media, "MediaStored").await
    }

    async fn handle(&self, media: &MediaStored, event_type: &str) -> Result<Produced, StageError> {
        let input = Record {
            topic: smsflow::topics::MEDIA.into(),
            partition: 0,
            offset: 0,
            log_time_ms: 0,
            key: Some(media.partition_key().as_bytes().to_vec()),
            payload: Some(encode(media).expect("encode MediaStored")),
            event_type: Some(event_type.into()),
            headers: Vec::new(),
            trace: Default::default(),
        };
        let mut outputs = handle_record(&self.stage, &input).await?;
        assert!(outputs.len() <= 1, "one output per input at most");
        let Some(out) = outputs.pop() else {
            return Ok(Produced::Nothing);
        };
        assert_eq!(out.topic, smsflow::topics::TRANSCRIPTS);
        assert_eq!(out.key, media.partition_key());
        Ok(match out.event_type() {
            "TranscriptReady" => Produced::Ready(out.event::<TranscriptReady>().unwrap().clone()),
            "TranscriptFailed" => {
                Produced::Failed(out.event::<TranscriptFailed>().unwrap().clone())
            }
            other => panic!("unexpected event type {other}"),
        })
    }

    async fn text_of(&self, sid: &str, content_type: &str, bytes: Vec<u8>) -> TranscriptReady {
        match self.run(sid, content_type, bytes).await {
            Ok(Produced::Ready(t)) => t,
            other => panic!("{sid}: expected TranscriptReady, got {other:?}"),
        }
    }
}

fn media_stored(sid: &str, content_type: &str, size: usize) -> MediaStored {
    MediaStored {
        event_id: format!("event-{sid}"),
        stored_at: 1_700_000_000_000_000,
        message_sid: sid.into(),
        media_index: 0,
        sender: "+15105550142".into(),
        user_id: Some("user-1".into()),
        received_at: 1_700_000_000_000_000,
        content_type: content_type.into(),
        size_bytes: size as i64,
        sha256: "0".repeat(64),
        object_key: format!("media/{sid}/0"),
        source_url: format!("https://api.twilio.com/media/{sid}"),
    }
}

fn data(rel: &str) -> PathBuf {
    let p = Path::new(TESTDATA).join(rel);
    assert!(
        p.exists(),
        "{} is missing: apt-get install pocketsphinx-testdata (deploy/local/deps.sh does)",
        p.display()
    );
    p
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Raw 16 kHz mono s16le inside a WAV container, built here independently of the crate.
fn wav(raw: &[u8]) -> Vec<u8> {
    let len = raw.len() as u32;
    let mut w = Vec::with_capacity(44 + raw.len());
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&32_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&len.to_le_bytes());
    w.extend_from_slice(raw);
    w
}

/// Transcode `input` with ffmpeg (`codec_args` choose the output format).
fn transcode(input: &[u8], codec_args: &[&str], ext: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("in.wav");
    let dst = dir.path().join(format!("out.{ext}"));
    std::fs::write(&src, input).expect("write wav");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(&src)
        .args(codec_args)
        .arg(&dst)
        .status()
        .expect("run ffmpeg (apt-get install ffmpeg)");
    assert!(status.success(), "ffmpeg {codec_args:?} failed");
    read(&dst)
}

/// `<s> words </s> (id)` lines of a pocketsphinx reference file.
fn references(path: &Path) -> Vec<(String, String)> {
    String::from_utf8_lossy(&read(path))
        .lines()
        .filter_map(|line| {
            let (text, id) = line.rsplit_once('(')?;
            let text = text.replace("<s>", "").replace("</s>", "");
            Some((
                id.trim_end_matches(')').trim().to_owned(),
                text.trim().to_owned(),
            ))
        })
        .collect()
}

fn goforward_wav() -> Vec<u8> {
    wav(&read(&data("goforward.raw")))
}

#[tokio::test]
async fn goforward_in_a_wav_container_transcribes_exactly() {
    let h = Harness::new(TranscribeSettings::default());
    let t = h.text_of("MMgoforward", "audio/wav", goforward_wav()).await;
    println!("goforward: {:?} (confidence {:?})", t.text, t.confidence);
    assert_eq!(t.text, "go forward ten meters");
    assert_eq!(t.provider, "local");
    assert_eq!(t.model.as_deref(), Some("pocketsphinx-en-us"));
    assert_eq!(t.user_id.as_deref(), Some("user-1"));
    assert_eq!(t.object_key, "media/MMgoforward/0");
    // 89 160 bytes of 16 kHz 16-bit audio.
    assert_eq!(t.audio_duration_ms, Some(2786));
    let c = t.confidence.expect("pocketsphinx reports word posteriors");
    assert!((0.0..=1.0).contains(&c), "{c}");
}

/// Transcribe every clip of `dir` listed in `reference_file`; print and return the WER.
async fn score(h: &Harness, dir: &str, reference_file: &str) -> WordErrors {
    let refs = references(&data(&format!("{dir}/{reference_file}")));
    assert!(!refs.is_empty(), "no references in {dir}/{reference_file}");
    let runs = refs.iter().map(|(id, reference)| async move {
        let bytes = read(&data(&format!("{dir}/{id}.wav")));
        let t = h.text_of(id, "audio/x-wav", bytes).await;
        let errors = word_errors(reference, &t.text);
        (id, reference, t.text, errors)
    });
    let results = futures::future::join_all(runs).await;
    println!("{dir}: word error rate of the local provider (pocketsphinx en-us)");
    let mut total = WordErrors::default();
    for (id, reference, hypothesis, e) in &results {
        println!(
            "  {id}: WER {:.3} ({}/{} words)",
            e.rate(),
            e.errors,
            e.reference_words
        );
        println!("    ref: {reference}\n    hyp: {hypothesis}");
        total = total + *e;
    }
    println!(
        "  {dir} overall: WER {:.3} ({}/{} words)",
        total.rate(),
        total.errors,
        total.reference_words
    );
    total
}

#[tokio::test]
async fn librivox_clips_transcribe_with_overall_word_error_rate_at_most_half() {
    let h = Harness::new(TranscribeSettings::default());
    let total = score(&h, "librivox", "transcription").await;
    assert_eq!(
        total.reference_words, 71,
        "the package's five librivox clips"
    );
    assert!(
        total.rate() <= 0.5,
        "overall WER {:.3} above 0.5",
        total.rate()
    );
}

/// Playing-card phrases, meant for a grammar; read here with the general language model,
/// so the bar is lower.
#[tokio::test]
async fn cards_clips_transcribe_with_overall_word_error_rate_at_most_0_6() {
    let h = Harness::new(TranscribeSettings::default());
    let total = score(&h, "cards", "cards.transcription").await;
    assert!(
        total.rate() <= 0.6,
        "overall WER {:.3} above 0.6",
        total.rate()
    );
}

#[tokio::test]
async fn mp3_3gpp_and_opus_are_decoded_and_transcribed() {
    let h = Harness::new(TranscribeSettings::default());
    let source = goforward_wav();
    let cases = [
        (
            "MMmp3",
            "audio/mpeg",
            transcode(&source, &["-c:a", "libmp3lame", "-b:a", "32k"], "mp3"),
        ),
        // 3GPP with its index at the end, as phones write it: read from a file, not a pipe.
        (
            "MM3gp",
            "audio/3gpp",
            transcode(&source, &["-c:a", "aac", "-b:a", "24k", "-f", "3gp"], "3gp"),
        ),
        (
            "MMopus",
            "audio/ogg",
            transcode(
                &source,
                &["-c:a", "libopus", "-b:a", "16k", "-f", "ogg"],
                "ogg",
            ),
        ),
    ];
    for (sid, content_type, bytes) in cases {
        assert_ne!(&bytes[..4], b"RIFF", "{sid} must not be WAV");
        let t = h.text_of(sid, content_type, bytes).await;
        println!("{sid} ({content_type}): {:?}", t.text);
        assert_eq!(t.text, "go forward ten meters", "{sid}");
        let ms = t.audio_duration_ms.unwrap_or_default();
        assert!((2700..=2900).contains(&ms), "{sid}: {ms} ms");
    }
}

#[tokio::test]
async fn audio_over_the_duration_limit_is_failed_as_too_long() {
    let settings = TranscribeSettings {
        max_audio_duration: Duration::from_secs(5),
        ..Default::default()
    };
    let h = Harness::new(settings);
    // 7.1 s of speech.
    let bytes = read(&data(
        "librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
    ));
    match h.run("MMlong", "audio/wav", bytes).await {
        Ok(Produced::Failed(f)) => {
            assert_eq!(f.reason, "too_long");
            assert_eq!(f.provider, "local");
            assert!(f.detail.contains("max_audio_duration"), "{}", f.detail);
        }
        other => panic!("expected TranscriptFailed, got {other:?}"),
    }
    // Just under the limit passes.
    let short = h
        .text_of(
            "MMshort",
            "audio/wav",
            read(&data(
                "librivox/sense_and_sensibility_01_austen_64kb-0880.wav",
            )),
        )
        .await;
    assert!(!short.text.is_empty());
}

#[tokio::test]
async fn bytes_that_are_not_audio_are_failed_as_undecodable() {
    let h = Harness::new(TranscribeSettings::default());
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    match h.run("MMgarbage", "audio/ogg", garbage).await {
        Ok(Produced::Failed(f)) => {
            assert_eq!(f.reason, "undecodable_audio");
            assert!(
                !f.detail.contains("/tmp"),
                "no temporary paths in events: {}",
                f.detail
            );
        }
        other => panic!("expected TranscriptFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn silence_is_failed_as_empty() {
    let h = Harness::new(TranscribeSettings::default());
    match h
        .run("MMsilence", "audio/wav", wav(&vec![0u8; 32_000 * 2]))
        .await
    {
        Ok(Produced::Failed(f)) => assert_eq!(f.reason, "empty"),
        other => panic!("expected TranscriptFailed(empty), got {other:?}"),
    }
}

#[tokio::test]
async fn images_and_rejected_media_produce_nothing() {
    let h = Harness::new(TranscribeSettings::default());
    assert!(matches!(
        h.run("MMimg", "image/jpeg", vec![0xff, 0xd8, 0xff]).await,
        Ok(Produced::Nothing)
    ));
    let media = media_stored("MMrej", "audio/ogg", 1);
    assert!(matches!(
        h.handle(&media, "MediaRejected").await,
        Ok(Produced::Nothing)
    ));
}

#[tokio::test]
async fn a_missing_stored_object_is_a_permanent_failure() {
    let h = Harness::new(TranscribeSettings::default());
    let media = media_stored("MMgone", "audio/ogg", 1);
    match h.handle(&media, "MediaStored").await {
        Err(StageError::Permanent(msg)) => assert!(msg.contains("missing"), "{msg}"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_recognizer_is_refused_at_start_up_with_the_key() {
    let mut settings = TranscribeSettings::default();
    settings.local.pocketsphinx_bin = "/nonexistent/pocketsphinx_continuous".into();
    let e = TranscribeStage::new(&settings, Arc::new(InMemory::new()))
        .err()
        .expect("refused");
    assert!(
        e.to_string().contains("transcribe.local.pocketsphinx_bin"),
        "{e}"
    );
}
