//! Stored audio in any container ffmpeg reads (ogg/opus, mp3, amr/3gpp, mp4, wav) becomes
//! 16 kHz mono 16-bit PCM, with its duration checked against the configured limit.

use std::ffi::OsStr;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;
use tracing::instrument;

use super::process::{self, ProcessError, Scratch};

/// Sample rate every provider receives.
pub const SAMPLE_RATE: u32 = 16_000;
const BYTES_PER_SECOND: u64 = SAMPLE_RATE as u64 * 2;
const WAV_HEADER_LEN: usize = 44;

/// Decoded audio: 16 kHz mono signed 16-bit little-endian PCM, held inside a WAV container.
#[derive(Clone)]
pub struct Audio {
    wav: Bytes,
}

impl Audio {
    /// Wrap raw 16 kHz mono s16le samples (a trailing odd byte is dropped).
    pub fn from_pcm16(pcm: &[u8]) -> Audio {
        let pcm = &pcm[..pcm.len() & !1];
        let mut wav = Vec::with_capacity(WAV_HEADER_LEN + pcm.len());
        wav.extend_from_slice(&wav_header(pcm.len() as u32, SAMPLE_RATE, 1));
        wav.extend_from_slice(pcm);
        Audio { wav: wav.into() }
    }

    /// The whole WAV file (canonical 44-byte header, then the samples).
    pub fn wav(&self) -> Bytes {
        self.wav.clone()
    }

    /// The samples alone, as Google's `LINEAR16` wants them.
    pub fn pcm(&self) -> Bytes {
        self.wav.slice(WAV_HEADER_LEN..)
    }

    /// How long the audio plays.
    pub fn duration(&self) -> Duration {
        let bytes = (self.wav.len() - WAV_HEADER_LEN) as u64;
        Duration::from_micros(bytes * 1_000_000 / BYTES_PER_SECOND)
    }
}

impl std::fmt::Debug for Audio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audio")
            .field("duration", &self.duration())
            .finish()
    }
}

/// A canonical 44-byte PCM WAV header (what pocketsphinx expects).
pub fn wav_header(data_len: u32, sample_rate: u32, channels: u16) -> [u8; WAV_HEADER_LEN] {
    let block_align = channels * 2;
    let byte_rate = sample_rate * u32::from(block_align);
    let mut h = [0u8; WAV_HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data_len).to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Why stored bytes did not become [`Audio`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not audio ffmpeg can read: a permanent property of the input.
    #[error("the stored file is not decodable audio: {detail}")]
    Undecodable { detail: String },
    /// Longer than `transcribe.max_audio_duration`.
    #[error("the audio is longer than transcribe.max_audio_duration ({limit:?})")]
    TooLong { limit: Duration },
    /// ffmpeg itself could not run or was killed; a retry may succeed.
    #[error("ffmpeg failed: {0}")]
    Tool(#[from] ProcessError),
    /// ffmpeg was ended by a signal (out of memory, or stopped by an operator).
    #[error("ffmpeg was ended by a signal before it finished; retry later")]
    Killed,
    /// The temporary file for ffmpeg's input could not be written.
    #[error("cannot write the audio to a temporary file: {0}; check free space in $TMPDIR")]
    Scratch(#[source] std::io::Error),
}

impl DecodeError {
    /// Whether retrying the same bytes may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DecodeError::Tool(_) | DecodeError::Killed | DecodeError::Scratch(_)
        )
    }
}

/// Runs ffmpeg, at most one decode per CPU at a time.
pub struct Decoder {
    ffmpeg: String,
    timeout: Duration,
    max_duration: Duration,
    permits: Semaphore,
}

impl Decoder {
    /// A decoder using `ffmpeg` (name or path) with the given limits.
    pub fn new(ffmpeg: &str, timeout: Duration, max_duration: Duration) -> Decoder {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Decoder {
            ffmpeg: ffmpeg.to_owned(),
            timeout,
            max_duration,
            permits: Semaphore::new(cpus),
        }
    }

    /// Decode any container ffmpeg reads into 16 kHz mono PCM. Only `max_duration` plus one
    /// second is decoded, so an hour-long file costs no more than a long-enough one.
    #[instrument(name = "transcribe.decode", skip_all, fields(input_bytes = stored.len(), duration_ms = tracing::field::Empty))]
    pub async fn decode(&self, stored: Bytes) -> Result<Audio, DecodeError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DecodeError::Killed)?;
        // A file, not stdin: mp4/3gpp often keep their index at the end, which a pipe can't seek to.
        let scratch = Scratch::new().await.map_err(DecodeError::Scratch)?;
        let input = scratch.path("input");
        tokio::fs::write(&input, &stored)
            .await
            .map_err(DecodeError::Scratch)?;
        let cap = self.max_duration + Duration::from_secs(1);
        let cap_arg = format!("{:.3}", cap.as_secs_f64());
        let mut args: Vec<&OsStr> = [
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-threads",
            "1",
            "-i",
        ]
        .map(OsStr::new)
        .to_vec();
        args.push(input.as_os_str());
        args.extend(
            [
                "-map",
                "0:a:0",
                "-vn",
                "-t",
                cap_arg.as_str(),
                "-ac",
                "1",
                "-ar",
                "16000",
                "-c:a",
                "pcm_s16le",
                "-f",
                "s16le",
                "pipe:1",
            ]
            .map(OsStr::new),
        );
        let max_stdout = (cap.as_secs() + 1) * BYTES_PER_SECOND;
        let done = process::run(
            &self.ffmpeg,
            &args,
            self.timeout,
            usize::try_from(max_stdout).unwrap_or(usize::MAX),
        )
        .await?;
        match done.status.code() {
            None => return Err(DecodeError::Killed),
            Some(0) => {}
            Some(_) => {
                return Err(DecodeError::Undecodable {
                    detail: summarize(&done.stderr, &input.to_string_lossy()),
                })
            }
        }
        if done.stdout.len() < 2 {
            return Err(DecodeError::Undecodable {
                detail: "ffmpeg found no audio samples".into(),
            });
        }
        let audio = Audio::from_pcm16(&done.stdout);
        tracing::Span::current().record("duration_ms", audio.duration().as_millis() as u64);
        if audio.duration() > self.max_duration {
            return Err(DecodeError::TooLong {
                limit: self.max_duration,
            });
        }
        Ok(audio)
    }
}

/// ffmpeg's first error line, without our temporary path, short enough for an event.
fn summarize(stderr: &str, path: &str) -> String {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("ffmpeg exited with an error and said nothing");
    let line = line.replace(path, "input");
    line.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_header_describes_16k_mono_pcm() {
        let audio = Audio::from_pcm16(&vec![0u8; 32_000 * 3]);
        let wav = audio.wav();
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(&wav[8..12], b"WAVE");
        assert_eq!(
            u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
            16_000
        );
        assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 1);
        assert_eq!(
            u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]),
            96_000
        );
        assert_eq!(audio.pcm().len(), 96_000);
        assert_eq!(audio.duration(), Duration::from_secs(3));
    }

    #[test]
    fn an_odd_trailing_byte_is_dropped() {
        let audio = Audio::from_pcm16(&[1, 2, 3]);
        assert_eq!(audio.pcm().as_ref(), &[1, 2]);
    }

    #[test]
    fn ffmpeg_errors_lose_the_temporary_path() {
        let s = summarize(
            "/tmp/smsflow-transcribe-x/input: Invalid data found when processing input\n",
            "/tmp/smsflow-transcribe-x/input",
        );
        assert_eq!(s, "input: Invalid data found when processing input");
    }
}
