//! The offline provider: Debian's `pocketsphinx_continuous` with its en-US model, run as a
//! subprocess on a 16 kHz WAV file, with a deadline and bounded output.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use tracing::instrument;

use super::audio::Audio;
use super::config::TranscribeSettings;
use super::process::{self, ProcessError, Scratch};
use super::provider::{Provider, ProviderError, Transcript};

const NAME: &str = "local";
const MODEL: &str = "pocketsphinx-en-us";
/// A transcript with per-word timings is a few dozen bytes per word.
const MAX_STDOUT: usize = 1024 * 1024;

/// The pocketsphinx provider.
pub struct LocalProvider {
    program: String,
    hmm: PathBuf,
    lm: PathBuf,
    dict: PathBuf,
    timeout: Duration,
}

impl LocalProvider {
    /// A provider for `settings.local`. Each run is killed after `request_timeout` plus the
    /// audio's own duration (pocketsphinx needs about a third of real time per core).
    pub fn new(settings: &TranscribeSettings) -> LocalProvider {
        let s = &settings.local;
        LocalProvider {
            program: s.pocketsphinx_bin.clone(),
            hmm: s.hmm.clone(),
            lm: s.lm.clone(),
            dict: s.dict.clone(),
            timeout: settings.request_timeout,
        }
    }

    /// The model files, with the setting that names each (for start-up checks).
    pub fn model_files(&self) -> [(&'static str, &Path); 3] {
        [
            ("transcribe.local.hmm", &self.hmm),
            ("transcribe.local.lm", &self.lm),
            ("transcribe.local.dict", &self.dict),
        ]
    }

    #[instrument(
        name = "pocketsphinx.recognize",
        skip_all,
        fields(audio_ms = audio.duration().as_millis() as u64)
    )]
    async fn call(&self, audio: &Audio) -> Result<Transcript, ProviderError> {
        let local = |detail: String| ProviderError::Local { detail };
        let scratch = Scratch::new()
            .await
            .map_err(|e| local(format!("cannot create a temporary folder: {e}")))?;
        // pocketsphinx checks the header only when the name ends in .wav.
        let wav = scratch.path("audio.wav");
        tokio::fs::write(&wav, audio.wav())
            .await
            .map_err(|e| local(format!("cannot write the temporary WAV file: {e}")))?;
        let args = [
            OsStr::new("-infile"),
            wav.as_os_str(),
            OsStr::new("-hmm"),
            self.hmm.as_os_str(),
            OsStr::new("-lm"),
            self.lm.as_os_str(),
            OsStr::new("-dict"),
            self.dict.as_os_str(),
            OsStr::new("-time"),
            OsStr::new("yes"),
        ];
        let deadline = self.timeout + audio.duration();
        let done = process::run(&self.program, &args, deadline, MAX_STDOUT)
            .await
            .map_err(|e: ProcessError| local(e.to_string()))?;
        if !done.status.success() {
            return Err(local(format!(
                "`{}` exited with {}{}",
                self.program,
                done.status,
                error_lines(&done.stderr)
            )));
        }
        Ok(parse_output(&String::from_utf8_lossy(&done.stdout)))
    }
}

impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn model(&self) -> Option<&str> {
        Some(MODEL)
    }

    fn transcribe<'a>(
        &'a self,
        audio: &'a Audio,
    ) -> BoxFuture<'a, Result<Transcript, ProviderError>> {
        Box::pin(self.call(audio))
    }
}

/// Only pocketsphinx's `ERROR`/`FATAL` lines: its INFO log can contain recognised words.
fn error_lines(stderr: &str) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ERROR") || l.starts_with("FATAL"))
        .take(3)
        .collect();
    if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    }
}

/// `pocketsphinx_continuous -time yes` prints, per utterance, the hypothesis line and then one
/// `word start end posterior` line per word. The text is the hypothesis lines joined; the
/// confidence is the mean posterior of the real words (no silences, fillers or markers).
pub fn parse_output(stdout: &str) -> Transcript {
    let mut text = Vec::new();
    let mut posteriors = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match word_line(line) {
            Some((word, p)) => {
                if !is_filler(word) {
                    posteriors.push(p);
                }
            }
            None => text.push(line),
        }
    }
    let confidence =
        (!posteriors.is_empty()).then(|| posteriors.iter().sum::<f64>() / posteriors.len() as f64);
    Transcript {
        text: text.join(" "),
        confidence,
        language: Some("en-US".into()),
    }
}

/// `word 0.470 0.640 0.997303` → (`word`, 0.997303).
fn word_line(line: &str) -> Option<(&str, f64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [word, start, end, posterior] = fields.as_slice() else {
        return None;
    };
    let decimal = |s: &str| s.contains('.') && s.chars().all(|c| c.is_ascii_digit() || c == '.');
    if !(decimal(start) && decimal(end) && decimal(posterior)) {
        return None;
    }
    Some((word, posterior.parse().ok()?))
}

fn is_filler(word: &str) -> bool {
    word.starts_with('<') || word.starts_with('[') || word.starts_with("++")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypotheses_are_joined_and_fillers_do_not_count_towards_confidence() {
        let out = "go forward\n<s> 0.390 0.460 1.000100\ngo 0.470 0.640 0.9\nforward(2) 0.650 1.170 0.7\n\
                   <sil> 1.2 1.3 0.1\n</s> 2.130 2.610 1.000000\nten meters\n<s> 0.0 0.1 1.0\n\
                   ten 1.180 1.530 0.2\nmeters 1.540 2.120 0.4\n[NOISE] 2.2 2.3 0.01\n";
        let t = parse_output(out);
        assert_eq!(t.text, "go forward ten meters");
        let c = t.confidence.unwrap();
        assert!((c - 0.55).abs() < 1e-9, "{c}");
    }

    #[test]
    fn silence_gives_an_empty_transcript() {
        let t = parse_output("\n");
        assert_eq!(t.text, "");
        assert_eq!(t.confidence, None);
    }

    #[test]
    fn a_four_word_hypothesis_is_not_mistaken_for_timings() {
        let t = parse_output("nan inf one two\n");
        assert_eq!(t.text, "nan inf one two");
    }

    #[test]
    fn only_error_lines_of_stderr_are_kept() {
        let stderr = "INFO: ngram_search.c(1) hello world\nERROR: \"acmod.c\", line 83: Folder does not exist\n";
        assert_eq!(
            error_lines(stderr),
            ": ERROR: \"acmod.c\", line 83: Folder does not exist"
        );
        assert_eq!(error_lines("INFO: all fine"), "");
    }
}
