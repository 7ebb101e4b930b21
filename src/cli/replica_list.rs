//! `ferry replica list [--source APPLIANCE] [--share NAME] [--pool POOL] [--json]`:
//! every verified replica this appliance holds as a receiver, line by line,
//! newest first, as its record and its disk agree.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use uuid::Uuid;

use super::ctx::{bad_input, Ctx};
use super::output::{print_json, time, Table};
use crate::receiver::{replica_dir, replica_state, ReplicaState};
use crate::store::{Pool, Replica, Store};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only replicas from this appliance (its name, as `ferry appliance
    /// list` shows it, or its uuid: a source that is gone may be known by
    /// its uuid alone).
    #[arg(long, value_name = "APPLIANCE")]
    source: Option<String>,
    /// Only replicas of this share (its replica name).
    #[arg(long, value_name = "NAME")]
    share: Option<String>,
    /// Only replicas in this pool.
    #[arg(long)]
    pool: Option<String>,
    /// Print JSON (see the README for the fields).
    #[arg(long)]
    json: bool,
}

/// A verified replica as `replica list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub source: String,
    pub source_uuid: Uuid,
    pub share: String,
    pub pool: String,
    pub snapshot: String,
    /// Where it is, absolute.
    pub path: PathBuf,
    pub received_uuid: Uuid,
    pub received_at: DateTime<Utc>,
    /// The newest verified replica of its line.
    pub latest: bool,
    #[serde(skip)]
    pub record: Replica,
    #[serde(skip)]
    pub pool_path: PathBuf,
}

/// Which lines to list: each `None` means all.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    pub source: Option<&'a str>,
    pub share: Option<&'a str>,
    pub pool: Option<&'a str>,
}

/// Every replica the record holds that is on disk, read-only, with its
/// received_uuid and unchanged since it was received, line by line (source,
/// share, pool), newest first within each line. A replica that cannot be
/// read (not root: `.ferry` is private) is left out.
///
/// # Errors
///
/// The store's; an unknown `--pool` is bad input.
pub async fn verified(store: &Store, filter: &Filter<'_>) -> anyhow::Result<Vec<Listed>> {
    let pools: Vec<Pool> = match filter.pool {
        Some(name) => match store.pool(name)? {
            Some(p) => vec![p],
            None => bad_input!("no pool named {name}; `ferry pool list` shows the known ones"),
        },
        None => store.pools()?,
    };
    let mut rows: Vec<(Pool, Replica)> = Vec::new();
    for pool in pools {
        for r in store.pool_replicas(&pool.name)? {
            let source = filter
                .source
                .is_none_or(|s| r.source == s || r.source_uuid.to_string() == s.to_lowercase());
            if source && filter.share.is_none_or(|s| r.share == s) {
                rows.push((pool.clone(), r));
            }
        }
    }
    // Lines in a stable order; newest (last committed) first within each.
    rows.sort_by(|(_, a), (_, b)| {
        (&a.source, &a.share, &a.pool)
            .cmp(&(&b.source, &b.share, &b.pool))
            .then(b.id.cmp(&a.id))
    });
    let mut out: Vec<Listed> = Vec::new();
    for (pool, r) in rows {
        let dir = replica_dir(&pool.path, r.source_uuid, &r.share);
        if !matches!(
            replica_state(&dir, &r).await,
            Ok(ReplicaState::Intact { .. })
        ) {
            continue;
        }
        let first_of_line = out.last().is_none_or(|l: &Listed| {
            (l.source_uuid, &l.share, &l.pool) != (r.source_uuid, &r.share, &r.pool)
        });
        out.push(Listed {
            source: r.source.clone(),
            source_uuid: r.source_uuid,
            share: r.share.clone(),
            pool: r.pool.clone(),
            snapshot: r.snapshot.clone(),
            path: dir.join(&r.snapshot),
            received_uuid: r.received_uuid,
            received_at: r.received_at,
            latest: first_of_line,
            pool_path: pool.path.clone(),
            record: r,
        });
    }
    Ok(out)
}

pub fn list(ctx: &Ctx, args: &ListArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let filter = Filter {
        source: args.source.as_deref(),
        share: args.share.as_deref(),
        pool: args.pool.as_deref(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listed = runtime.block_on(verified(&store, &filter))?;
    if let Some(source) = &args.source {
        let known = store.appliance(source)?.is_some()
            || uuid::Uuid::parse_str(source).is_ok()
            || store.pools()?.iter().try_fold(false, |found, p| {
                anyhow::Ok(
                    found
                        || store
                            .pool_replicas(&p.name)?
                            .iter()
                            .any(|r| &r.source == source),
                )
            })?;
        if !known {
            bad_input!(
                "no appliance named {source}, and no replica from one; `ferry appliance list` \
                 shows them (a source that is gone can be named by its uuid)"
            );
        }
    }
    if args.json {
        return print_json(&listed);
    }
    let mut table = Table::new(&[
        "SOURCE", "SHARE", "POOL", "SNAPSHOT", "RECEIVED", "LATEST", "PATH",
    ]);
    for l in &listed {
        table.row(vec![
            l.source.clone(),
            l.share.clone(),
            l.pool.clone(),
            l.snapshot.clone(),
            time(l.received_at),
            if l.latest { "yes" } else { "" }.to_string(),
            l.path.display().to_string(),
        ]);
    }
    table.print()
}
