//! The bound on requests in flight, and the file descriptors it takes: every request in flight
//! holds one connection, so the generator raises its own soft `RLIMIT_NOFILE` up to the hard
//! limit when needed, and refuses to start when even that is too low.

/// Most requests a run may keep in flight.
pub const MAX_IN_FLIGHT: usize = 65_536;
/// Descriptors beyond one per connection: the runtime, CQL, the media host and its clients.
const SPARE_FDS: u64 = 512;

/// Parse `--max-in-flight`: 1 to `MAX_IN_FLIGHT`.
pub fn parse_max_in_flight(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if (1..=MAX_IN_FLIGHT).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be from 1 to {MAX_IN_FLIGHT}"))
    }
}

/// The open-files limits before and after `ensure_fds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub before: u64,
    pub now: u64,
    pub hard: u64,
}

/// Why the generator cannot hold that many connections.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("reading the open-files limit: {0}")]
    Read(std::io::Error),
    #[error("{wanted} requests in flight need about {need} open files, but the hard limit is {hard}; raise it (ulimit -Hn, or LimitNOFILE in systemd) or lower --max-in-flight")]
    TooLow { wanted: usize, need: u64, hard: u64 },
    #[error("raising the open-files limit to {need}: {source}; raise ulimit -n or lower --max-in-flight")]
    Raise { need: u64, source: std::io::Error },
}

/// Make sure `max_in_flight` connections fit under this process's open-files limit.
pub fn ensure_fds(max_in_flight: usize) -> Result<FdLimit, LimitError> {
    let need = max_in_flight as u64 + SPARE_FDS;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(LimitError::Read(std::io::Error::last_os_error()));
    }
    let (before, hard) = (lim.rlim_cur, lim.rlim_max);
    if before >= need {
        return Ok(FdLimit {
            before,
            now: before,
            hard,
        });
    }
    if hard < need {
        return Err(LimitError::TooLow {
            wanted: max_in_flight,
            need,
            hard,
        });
    }
    lim.rlim_cur = need;
    // SAFETY: setrlimit reads the struct; raising the soft limit up to the hard one is allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(LimitError::Raise {
            need,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(FdLimit {
        before,
        now: need,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_bounded() {
        assert_eq!(parse_max_in_flight("1024"), Ok(1024));
        assert_eq!(parse_max_in_flight("65536"), Ok(MAX_IN_FLIGHT));
        assert!(parse_max_in_flight("0").is_err());
        assert!(parse_max_in_flight("65537").is_err());
        assert!(parse_max_in_flight("lots").is_err());
    }

    #[test]
    fn a_small_cap_fits_and_an_impossible_one_is_refused_with_what_to_do() {
        let ok = ensure_fds(16).unwrap();
        assert!(ok.now >= 16 + SPARE_FDS && ok.now <= ok.hard.max(ok.now));
        // More than any hard limit allows on this box.
        let e = ensure_fds(usize::MAX / 2).unwrap_err();
        assert!(e.to_string().contains("--max-in-flight"), "{e}");
    }
}
