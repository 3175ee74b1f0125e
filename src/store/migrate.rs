//! `smsflow migrate`: apply `migrations/NNN_name.cql` in order, once each, and refuse to go on
//! when a file that was already applied has changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use scylla::client::session::Session;
use scylla::statement::unprepared::Statement;
use sha2::{Digest, Sha256};

use super::session::CqlSettings;
use super::session::StoreError;

/// One migration file.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: u32,
    pub name: String,
    pub checksum: String,
    pub statements: Vec<String>,
}

/// What `migrate` did.
#[derive(Debug, Default)]
pub struct MigrateReport {
    pub applied: Vec<String>,
    pub already_applied: Vec<String>,
}

/// Why migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot read migrations from {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("migration file {0} must be named NNN_name.cql")]
    BadName(String),
    #[error("two migrations share version {0}")]
    DuplicateVersion(u32),
    #[error("migration {name} was edited after it was applied (checksum {applied} in the database, {on_disk} on disk); add a new migration instead")]
    Edited {
        name: String,
        applied: String,
        on_disk: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Read and order the migration files in `dir`.
pub fn load(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let entries = std::fs::read_dir(dir).map_err(|source| MigrateError::Read {
        path: dir.into(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| MigrateError::Read {
                path: dir.into(),
                source,
            })?
            .path();
        if path.extension().is_none_or(|e| e != "cql") {
            continue;
        }
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let version = file
            .split('_')
            .next()
            .filter(|v| v.len() == 3)
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| MigrateError::BadName(file.clone()))?;
        let text = std::fs::read_to_string(&path).map_err(|source| MigrateError::Read {
            path: path.clone(),
            source,
        })?;
        out.push(Migration {
            version,
            name: file.trim_end_matches(".cql").to_owned(),
            checksum: hex::encode(Sha256::digest(text.as_bytes())),
            statements: split_statements(&text),
        });
    }
    out.sort_by_key(|m| m.version);
    for pair in out.windows(2) {
        if pair[0].version == pair[1].version {
            return Err(MigrateError::DuplicateVersion(pair[0].version));
        }
    }
    Ok(out)
}

/// Split a CQL file into statements: drop `--` and `//` comment lines, split on `;`.
pub fn split_statements(text: &str) -> Vec<String> {
    let cleaned: String = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("--") && !t.starts_with("//")
        })
        .collect::<Vec<_>>()
        .join("\n");
    cleaned
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Create the keyspace if needed and apply every pending migration.
pub async fn run(settings: &CqlSettings, dir: &Path) -> Result<MigrateReport, MigrateError> {
    let migrations = load(dir)?;
    let session = super::connect(settings).await?;
    let ks = &settings.keyspace;
    session
        .query_unpaged(
            ddl(format!(
                "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}",
                settings.replication
            )),
            (),
        )
        .await
        .map_err(StoreError::execute("create keyspace"))?;
    session
        .query_unpaged(
            ddl(format!(
                "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (version int PRIMARY KEY, name text, checksum text, applied_at timestamp)"
            )),
            (),
        )
        .await
        .map_err(StoreError::execute("create schema_migrations"))?;
    agree(&session).await;
    session
        .use_keyspace(ks, false)
        .await
        .map_err(|e| StoreError::Keyspace {
            keyspace: ks.clone(),
            source: Box::new(e),
        })?;

    let applied = applied_checksums(&session, ks).await?;
    // Check every applied file before changing anything, so an edit stops the whole run.
    for m in &migrations {
        if let Some((_, sum)) = applied.iter().find(|(v, _)| *v == m.version as i32) {
            if sum != &m.checksum {
                return Err(MigrateError::Edited {
                    name: m.name.clone(),
                    applied: sum.clone(),
                    on_disk: m.checksum.clone(),
                });
            }
        }
    }
    let mut report = MigrateReport::default();
    for m in migrations {
        if applied.iter().any(|(v, _)| *v == m.version as i32) {
            report.already_applied.push(m.name);
            continue;
        }
        for stmt in &m.statements {
            session
                .query_unpaged(ddl(stmt.as_str()), ())
                .await
                .map_err(StoreError::execute("apply migration statement"))?;
            agree(&session).await;
        }
        // Qualified: a statement with values is prepared, and Cassandra warns about preparing
        // unqualified names on a connection that ran `USE <keyspace>`.
        session
            .query_unpaged(
                format!("INSERT INTO {ks}.schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, toTimestamp(now()))"),
                (m.version as i32, m.name.as_str(), m.checksum.as_str()),
            )
            .await
            .map_err(StoreError::execute("record migration"))?;
        tracing::info!(migration = %m.name, "applied");
        report.applied.push(m.name);
    }
    Ok(report)
}

async fn applied_checksums(session: &Session, ks: &str) -> Result<Vec<(i32, String)>, StoreError> {
    let rows = session
        .query_unpaged(
            format!("SELECT version, checksum FROM {ks}.schema_migrations"),
            (),
        )
        .await
        .map_err(StoreError::execute("read schema_migrations"))?
        .into_rows_result()
        .map_err(StoreError::rows("read schema_migrations"))?;
    let out = rows
        .rows::<(i32, String)>()
        .map_err(StoreError::rows("read schema_migrations"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::rows("read schema_migrations"))?;
    Ok(out)
}

/// How long one schema statement may take. A schema change waits for every node's schema
/// lock and a flush, and on a busy cluster (or a loaded two-core box) it outlasts the request
/// timeout meant for reads and writes.
const DDL_TIMEOUT: Duration = Duration::from_secs(60);

/// A schema statement (`CREATE`, `DROP`, `ALTER`) with the schema timeout.
pub fn ddl(text: impl Into<String>) -> Statement {
    let mut st = Statement::new(text.into());
    st.set_request_timeout(Some(DDL_TIMEOUT));
    st
}

async fn agree(session: &Session) {
    // On a single node this returns at once; on a cluster DDL must settle before the next step.
    if let Err(e) = session.await_schema_agreement().await {
        tracing::warn!(error = %e, "schema agreement not reached; continuing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_split_and_comments_dropped() {
        let s = split_statements("-- c\nCREATE TABLE a (x int PRIMARY KEY);\n\n// d\nCREATE TABLE b (y int PRIMARY KEY);\n");
        assert_eq!(
            s,
            vec![
                "CREATE TABLE a (x int PRIMARY KEY)",
                "CREATE TABLE b (y int PRIMARY KEY)"
            ]
        );
    }

    #[test]
    fn checked_in_migrations_load_in_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let ms = load(&dir).unwrap();
        assert!(!ms.is_empty());
        assert!(ms.windows(2).all(|w| w[0].version < w[1].version));
        assert!(ms[0]
            .statements
            .iter()
            .any(|s| s.contains("messages_by_user")));
    }
}
