//! End-to-end latency, observed in the read model: the projector stamps `message_status.stage_at`
//! with `received` (ingress wall clock), `appended` (Kafka LogAppendTime) and `projected` (its
//! own wall clock at the write), all on this host's clock. After a run, a paged scan of
//! `message_status` finds the run's MessageSids and splits send -> received -> appended ->
//! projected per message, where "send" is the request's intended (due) time.
//!
//! A message is "done" when every part (the body and each attachment) is enriched: its
//! `parts_done` holds `parts_expected` parts. Its done time is `stage_at.enriched`, the enrich
//! stage's clock on the last part appended (the projector keeps the stamp of the latest event),
//! so it stops short of the projector's write of that part by one consume-and-write. With
//! `Until::Done` the read-back waits for every message to be done, and splits both times by
//! kind (text, MMS, voice note); the kind follows from the seed and the mix.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use hdrhistogram::Histogram;
use scylla::client::session::Session;
use scylla::statement::unprepared::Statement;
use scylla::value::CqlTimestamp;
use serde::{Deserialize, Serialize};

use crate::mix::{Kind, Mix};
use crate::payload::request_index;
use crate::report::{self, Percentiles, QuantilePoint};

/// When a message counts as arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Until {
    /// `MessageReceived` is in the read model (needs only ingress and the projector).
    #[default]
    Projected,
    /// Every part is enriched (needs the media, transcribe and enrich stages too).
    Done,
}

/// Which requests of a run to look for, and when each was due.
#[derive(Debug, Clone)]
pub struct Expected {
    pub seed: u64,
    /// Wall clock of request 0's due time, µs since the epoch.
    pub start_unix_us: i64,
    pub rate: f64,
    /// The measured requests: warm-up ones are projected too but not counted.
    pub first: u64,
    pub end: u64,
    /// The run's mix: the kind of each request.
    pub mix: Mix,
    pub until: Until,
}

impl Expected {
    /// Due time of request `i`, µs since the epoch.
    fn due_us(&self, i: u64) -> i64 {
        self.start_unix_us + (i as f64 * 1e6 / self.rate) as i64
    }

    fn count(&self) -> u64 {
        self.end.saturating_sub(self.first)
    }
}

/// One second of projection, by the projector's clock, from the end of warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectedSecond {
    pub t: i64,
    pub projected: u64,
}

/// End-to-end latency of one run, in total and per stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndToEnd {
    pub expected: u64,
    pub projected: u64,
    pub missing: u64,
    /// Rows of this seed written before their request was due: left by an earlier run that
    /// used the same seed (ingress then dropped this run's copies as duplicates). Not counted.
    #[serde(default)]
    pub stale: u64,
    /// Due time to `projected`: the whole pipeline, as the sender sees it.
    pub total: Percentiles,
    /// Due time to ingress' `received`: generator queueing, HTTP and the handler's start.
    pub send_to_received: Percentiles,
    /// Ingress to broker append: the handler's work after its first stamp (form parse, Redis
    /// dedupe claim and rate limit, Avro encoding) and the produce (acks=all).
    pub received_to_appended: Percentiles,
    /// Broker append to the read-model write: consume, decode, CQL.
    pub appended_to_projected: Percentiles,
    pub distribution: Vec<QuantilePoint>,
    /// Rows projected per second over the run and its tail.
    pub timeline: Vec<ProjectedSecond>,
    /// Rows per second between the first and the last projection of the run.
    pub projection_rate: f64,
    /// What the read-back waited for.
    #[serde(default)]
    pub until: Until,
    /// Messages with every part enriched.
    #[serde(default)]
    pub done: u64,
    /// Due time to the last part's `enriched` stamp, for done messages.
    #[serde(default)]
    pub to_done: Percentiles,
    /// The same, per kind of message, for the kinds the mix sends.
    #[serde(default)]
    pub by_kind: Vec<KindEndToEnd>,
}

/// End-to-end latency of one kind of message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindEndToEnd {
    pub kind: Kind,
    pub expected: u64,
    pub projected: u64,
    pub done: u64,
    /// Due time to `projected`.
    pub to_projected: Percentiles,
    /// Due time to the last part's `enriched`.
    pub to_done: Percentiles,
}

/// Stage times of one message, µs since the epoch; a peer only has `projected`.
#[derive(Debug, Clone, Copy)]
pub struct Stamps {
    pub received: Option<i64>,
    pub appended: Option<i64>,
    pub projected: i64,
    /// The last part's `enriched` stamp, once every part is enriched.
    pub done: Option<i64>,
}

/// Where the projection times are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// smsflow: `message_status.stage_at` (milliseconds, per stage).
    StageAt,
    /// A peer writing only `messages_by_user`: `WRITETIME(body)`, the client's write time in
    /// microseconds (the Go driver stamps writes client-side by default).
    WriteTime,
}

/// Scan `message_status` until every expected message is there or `deadline` passes.
#[tracing::instrument(skip_all, fields(expected = expected.count()))]
pub async fn collect(
    session: &Session,
    source: Source,
    expected: &Expected,
    deadline: Duration,
) -> anyhow::Result<EndToEnd> {
    let started = Instant::now();
    let mut poll = Duration::from_millis(250);
    loop {
        let found = match source {
            Source::StageAt => scan(session, expected).await?,
            Source::WriteTime => scan_write_time(session, expected).await?,
        };
        let arrived = match expected.until {
            Until::Projected => found.len(),
            Until::Done => found.values().filter(|s| s.done.is_some()).count(),
        };
        if arrived as u64 >= expected.count() || started.elapsed() >= deadline {
            return summarise(expected, &found);
        }
        // Each scan reads the whole run: back off so polling does not load Cassandra.
        tokio::time::sleep(poll.min(deadline.saturating_sub(started.elapsed()))).await;
        poll = (poll * 2).min(Duration::from_secs(5));
    }
}

/// Every projected message of the run, by request index.
async fn scan(session: &Session, expected: &Expected) -> anyhow::Result<HashMap<u64, Stamps>> {
    let statement = Statement::new(
        "SELECT message_sid, parts_expected, parts_done, stage_at FROM message_status",
    )
    .with_page_size(5000);
    type Row = (
        String,
        Option<i32>,
        Option<Vec<String>>,
        Option<HashMap<String, CqlTimestamp>>,
    );
    let mut rows = session
        .query_iter(statement, ())
        .await?
        .rows_stream::<Row>()?;
    let mut found = HashMap::new();
    while let Some((sid, parts_expected, parts_done, stages)) = rows.try_next().await? {
        let Some(i) = request_index(expected.seed, &sid) else {
            continue;
        };
        if i < expected.first || i >= expected.end {
            continue;
        }
        let stages = stages.unwrap_or_default();
        let at = |k: &str| stages.get(k).map(|t| t.0);
        if let Some(projected) = at("projected") {
            let us = |ms: i64| ms * 1000;
            let all_parts = parts_expected
                .is_some_and(|n| n > 0 && parts_done.as_ref().map_or(0, Vec::len) >= n as usize);
            found.insert(
                i,
                Stamps {
                    received: at("received").map(us),
                    appended: at("appended").map(us),
                    projected: us(projected),
                    done: at("enriched").filter(|_| all_parts).map(us),
                },
            );
        }
    }
    Ok(found)
}

/// A peer's rows of the run in `messages_by_user`, by request index.
async fn scan_write_time(
    session: &Session,
    expected: &Expected,
) -> anyhow::Result<HashMap<u64, Stamps>> {
    let statement = Statement::new("SELECT message_sid, WRITETIME(body) FROM messages_by_user")
        .with_page_size(5000);
    let mut rows = session
        .query_iter(statement, ())
        .await?
        .rows_stream::<(String, Option<i64>)>()?;
    let mut found = HashMap::new();
    while let Some((sid, written)) = rows.try_next().await? {
        let (Some(i), Some(projected)) = (request_index(expected.seed, &sid), written) else {
            continue;
        };
        if i >= expected.first && i < expected.end {
            found.insert(
                i,
                Stamps {
                    received: None,
                    appended: None,
                    projected,
                    done: None,
                },
            );
        }
    }
    Ok(found)
}

/// Per-stage histograms of the messages found.
pub fn summarise(expected: &Expected, found: &HashMap<u64, Stamps>) -> anyhow::Result<EndToEnd> {
    let mut total = report::histogram()?;
    let mut to_received = report::histogram()?;
    let mut to_appended = report::histogram()?;
    let mut to_projected = report::histogram()?;
    let measured_from = expected.due_us(expected.first);
    let mut per_second: std::collections::BTreeMap<i64, u64> = Default::default();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    // smsflow's stamps are milliseconds: a stage shorter than 1 ms can read as 0 or even -1 ms
    // when the earlier stamp was truncated; record those as the histogram's floor.
    let record = |h: &mut Histogram<u64>, us: i64| h.saturating_record(us.max(1) as u64);
    let mut stale = 0u64;
    let mut to_done = report::histogram()?;
    let mut kinds: HashMap<Kind, KindHists> = HashMap::new();
    for (&i, s) in found {
        let due = expected.due_us(i);
        // A message cannot arrive before it is sent; a second of slack covers clock steps.
        if s.received.unwrap_or(s.projected) < due - 1_000_000 {
            stale += 1;
            continue;
        }
        record(&mut total, s.projected - due);
        let k = match kinds.entry(expected.mix.kind(expected.seed, i)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(KindHists::new()?),
        };
        record(&mut k.projected, s.projected - due);
        if let Some(done) = s.done {
            record(&mut to_done, done - due);
            record(&mut k.done, done - due);
        }
        if let (Some(received), Some(appended)) = (s.received, s.appended) {
            record(&mut to_received, received - due);
            record(&mut to_appended, appended - received);
            record(&mut to_projected, s.projected - appended);
        }
        *per_second
            .entry((s.projected - measured_from).div_euclid(1_000_000))
            .or_default() += 1;
        first = first.min(s.projected);
        last = last.max(s.projected);
    }
    let projected = found.len() as u64 - stale;
    let mut expected_by_kind: HashMap<Kind, u64> = HashMap::new();
    for i in expected.first..expected.end {
        *expected_by_kind
            .entry(expected.mix.kind(expected.seed, i))
            .or_default() += 1;
    }
    let by_kind = Kind::ALL
        .into_iter()
        .filter(|k| expected.mix.weight(*k) > 0)
        .map(|kind| {
            let h = kinds.get(&kind);
            let of = |f: fn(&KindHists) -> &Histogram<u64>| h.map(f).map(Percentiles::of);
            KindEndToEnd {
                kind,
                expected: expected_by_kind.get(&kind).copied().unwrap_or(0),
                projected: h.map_or(0, |h| h.projected.len()),
                done: h.map_or(0, |h| h.done.len()),
                to_projected: of(|h| &h.projected).unwrap_or_default(),
                to_done: of(|h| &h.done).unwrap_or_default(),
            }
        })
        .collect();
    let span_s = ((last - first) as f64 / 1e6).max(1e-3);
    Ok(EndToEnd {
        expected: expected.count(),
        projected,
        missing: expected.count().saturating_sub(projected),
        stale,
        total: Percentiles::of(&total),
        send_to_received: Percentiles::of(&to_received),
        received_to_appended: Percentiles::of(&to_appended),
        appended_to_projected: Percentiles::of(&to_projected),
        distribution: report::distribution(&total),
        timeline: per_second
            .into_iter()
            .map(|(t, projected)| ProjectedSecond { t, projected })
            .collect(),
        projection_rate: if projected > 1 {
            (projected - 1) as f64 / span_s
        } else {
            0.0
        },
        until: expected.until,
        done: to_done.len(),
        to_done: Percentiles::of(&to_done),
        by_kind,
    })
}

/// Latencies of one kind of message while summarising.
struct KindHists {
    projected: Histogram<u64>,
    done: Histogram<u64>,
}

impl KindHists {
    fn new() -> anyhow::Result<KindHists> {
        Ok(KindHists {
            projected: report::histogram()?,
            done: report::histogram()?,
        })
    }
}

/// The end-to-end table for the terminal.
pub fn table(e: &EndToEnd) -> String {
    let row = |name: &str, p: &Percentiles| {
        if p.count == 0 {
            // A peer has no per-stage stamps.
            return String::new();
        }
        format!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
        )
    };
    let mut out = format!(
        "end to end: {} of {} measured messages projected ({} missing, {} stale rows of an earlier run with this seed), {:.0} rows/s\n\
         | stage | n | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---|---|---|---|---|\n{}{}{}{}{}",
        e.projected,
        e.expected,
        e.missing,
        e.stale,
        e.projection_rate,
        row("send -> received", &e.send_to_received),
        row("received -> appended", &e.received_to_appended),
        row("appended -> projected", &e.appended_to_projected),
        row("send -> projected", &e.total),
        row("send -> done (last part enriched)", &e.to_done),
    );
    if e.until == Until::Done || e.by_kind.len() > 1 {
        out.push_str(&format!(
            "done (every part enriched): {} of {}\n\
             | kind | sent | projected | done | projected p50 ms | projected p99 ms | done p50 ms | done p99 ms | done max ms |\n\
             |---|---|---|---|---|---|---|---|---|\n",
            e.done, e.expected
        ));
        for k in &e.by_kind {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
                k.kind.name(),
                k.expected,
                k.projected,
                k.done,
                k.to_projected.p50_ms,
                k.to_projected.p99_ms,
                k.to_done.p50_ms,
                k.to_done.p99_ms,
                k.to_done.max_ms
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_split_from_the_due_time_and_missing_messages_counted() {
        let expected = Expected {
            seed: 1,
            start_unix_us: 1_700_000_000_000_000,
            rate: 10.0,
            first: 10,
            end: 20,
            mix: Mix::default(),
            until: Until::Projected,
        };
        // Request i is due at start + i * 100 ms; each arrives 2 ms later, is appended 3 ms
        // after that and projected 5 ms after that: 10 ms in all.
        let found: HashMap<u64, Stamps> = (10..19)
            .map(|i| {
                let due_us = 1_700_000_000_000_000 + i as i64 * 100_000;
                let s = Stamps {
                    received: Some(due_us + 2_000),
                    appended: Some(due_us + 5_000),
                    projected: due_us + 10_000,
                    done: None,
                };
                (i, s)
            })
            .collect();
        let e = summarise(&expected, &found).unwrap();
        assert_eq!((e.expected, e.projected, e.missing, e.stale), (10, 9, 1, 0));
        assert!((e.total.p99_ms - 10.0).abs() < 0.05, "{:?}", e.total);
        assert!((e.send_to_received.p50_ms - 2.0).abs() < 0.01);
        assert!((e.received_to_appended.p50_ms - 3.0).abs() < 0.01);
        assert!((e.appended_to_projected.max_ms - 5.0).abs() < 0.01);
        assert_eq!(e.timeline.iter().map(|s| s.projected).sum::<u64>(), 9);
        assert!(
            (e.projection_rate - 10.0).abs() < 0.01,
            "{}",
            e.projection_rate
        );
    }

    #[test]
    fn done_messages_are_timed_to_their_last_part_and_split_by_kind() {
        let mix: Mix = "sms=2,mms=1,voice=1".parse().unwrap();
        let expected = Expected {
            seed: 3,
            start_unix_us: 1_700_000_000_000_000,
            rate: 10.0,
            first: 0,
            end: 400,
            mix,
            until: Until::Done,
        };
        // Every message is projected 10 ms after it is due; text is done 20 ms after, MMS
        // 200 ms, voice notes 2 s; one voice note is projected but never done.
        let mut not_done = None;
        let found: HashMap<u64, Stamps> = (0..400)
            .map(|i| {
                let due_us = expected.due_us(i);
                let kind = mix.kind(3, i);
                let done_after = match kind {
                    Kind::Sms => 20_000,
                    Kind::Mms => 200_000,
                    Kind::Voice => 2_000_000,
                };
                let mut done = Some(due_us + done_after);
                if kind == Kind::Voice && not_done.is_none() {
                    not_done = Some(i);
                    done = None;
                }
                let s = Stamps {
                    received: Some(due_us + 1_000),
                    appended: Some(due_us + 2_000),
                    projected: due_us + 10_000,
                    done,
                };
                (i, s)
            })
            .collect();
        let e = summarise(&expected, &found).unwrap();
        assert_eq!((e.projected, e.done), (400, 399));
        assert_eq!(e.until, Until::Done);
        assert_eq!(e.by_kind.len(), 3);
        let k = |kind| e.by_kind.iter().find(|k| k.kind == kind).unwrap();
        assert_eq!(
            k(Kind::Sms).expected + k(Kind::Mms).expected + k(Kind::Voice).expected,
            400
        );
        assert_eq!(k(Kind::Voice).done + 1, k(Kind::Voice).expected);
        assert!((k(Kind::Sms).to_done.p99_ms - 20.0).abs() < 0.05);
        assert!((k(Kind::Mms).to_done.p50_ms - 200.0).abs() < 0.5);
        assert!((k(Kind::Voice).to_done.max_ms - 2000.0).abs() < 2.0);
        assert!((k(Kind::Voice).to_projected.max_ms - 10.0).abs() < 0.05);
        assert!((e.to_done.max_ms - 2000.0).abs() < 2.0);
        let t = table(&e);
        assert!(t.contains("| voice |"), "{t}");
        assert!(t.contains("done (every part enriched): 399 of 400"), "{t}");
    }
}
