//! Running a helper program (ffmpeg, pocketsphinx) off the runtime: a deadline, bounded
//! output, and the child killed whenever the caller stops waiting.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Most bytes of stderr kept for diagnostics; the rest is read and dropped.
const STDERR_KEEP: usize = 4096;

/// What a finished program left behind.
#[derive(Debug)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (at most the caller's limit).
    pub stdout: Vec<u8>,
    /// The start of what it wrote to stderr.
    pub stderr: String,
}

/// Why a helper program did not finish normally.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start `{program}`: {source}; install it or set its path in [transcribe]")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` did not finish within {after:?} and was killed")]
    TimedOut { program: String, after: Duration },
    #[error("`{program}` wrote more than {limit} bytes and was killed")]
    OutputTooLarge { program: String, limit: usize },
    #[error("reading the output of `{program}` failed: {source}")]
    Io {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Run `program args…` with no stdin, keeping at most `max_stdout` bytes of stdout, and kill
/// it after `timeout`.
pub async fn run(
    program: &str,
    args: &[&std::ffi::OsStr],
    timeout: Duration,
    max_stdout: usize,
) -> Result<Finished, ProcessError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ProcessError::Io {
            program: program.to_owned(),
            source: std::io::Error::other("stdout or stderr was not piped"),
        });
    };
    let io_err = |source| ProcessError::Io {
        program: program.to_owned(),
        source,
    };
    let work = async {
        let (out, err) = tokio::join!(read_bounded(stdout, max_stdout), read_head(stderr));
        let out = out.map_err(io_err)?;
        let err = err.map_err(io_err)?;
        let Some(stdout) = out else {
            return Err(ProcessError::OutputTooLarge {
                program: program.to_owned(),
                limit: max_stdout,
            });
        };
        let status = child.wait().await.map_err(io_err)?;
        Ok(Finished {
            status,
            stdout,
            stderr: err,
        })
    };
    // On timeout or too much output the future holding `child` is dropped: kill_on_drop ends it.
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ProcessError::TimedOut {
            program: program.to_owned(),
            after: timeout,
        })?
}

/// Everything `r` yields, or `None` once it exceeds `limit`.
async fn read_bounded(
    mut r: impl AsyncRead + Unpin,
    limit: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Some(buf));
        }
        if buf.len() + n > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The first `STDERR_KEEP` bytes of `r`, draining the rest so the child never blocks on it.
async fn read_head(mut r: impl AsyncRead + Unpin) -> std::io::Result<String> {
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(String::from_utf8_lossy(&kept).into_owned());
        }
        let room = STDERR_KEEP.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}

/// Whether `program` can be started: a path that exists, or a name found on `PATH`.
pub fn resolve(program: &str) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// A private temporary folder for one job's files, removed off the runtime when dropped.
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
}

impl Scratch {
    /// Create the folder (on a blocking thread).
    pub async fn new() -> std::io::Result<Scratch> {
        let dir = tokio::task::spawn_blocking(|| {
            tempfile::Builder::new()
                .prefix("smsflow-transcribe-")
                .tempdir()
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Scratch { dir: Some(dir) })
    }

    /// A path for `name` inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        match &self.dir {
            Some(d) => d.path().join(name),
            None => PathBuf::from(name),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || drop(dir));
            }
            Err(_) => drop(dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[tokio::test]
    async fn output_is_captured() {
        let done = run(
            "sh",
            &[OsStr::new("-c"), OsStr::new("printf hi; printf oops >&2")],
            Duration::from_secs(5),
            16,
        )
        .await
        .unwrap();
        assert!(done.status.success());
        assert_eq!(done.stdout, b"hi");
        assert_eq!(done.stderr, "oops");
    }

    #[tokio::test]
    async fn a_slow_program_is_killed_at_the_deadline() {
        let started = std::time::Instant::now();
        let e = run("sleep", &[OsStr::new("30")], Duration::from_millis(200), 16)
            .await
            .unwrap_err();
        assert!(matches!(e, ProcessError::TimedOut { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn too_much_output_is_refused() {
        let e = run(
            "sh",
            &[OsStr::new("-c"), OsStr::new("yes | head -c 100000")],
            Duration::from_secs(5),
            1000,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, ProcessError::OutputTooLarge { limit: 1000, .. }),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_missing_program_says_so() {
        let e = run("no-such-program-smsflow", &[], Duration::from_secs(5), 16)
            .await
            .unwrap_err();
        assert!(matches!(e, ProcessError::Spawn { .. }), "{e}");
        assert!(resolve("no-such-program-smsflow").is_none());
        assert!(resolve("sh").is_some());
    }
}
