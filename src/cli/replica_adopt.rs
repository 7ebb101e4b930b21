//! `ferry replica adopt [--source APPLIANCE] [--pool POOL] [--dry-run]`: records
//! the replica lines found under the pools' `.ferry/` after the state database
//! was lost (`ferry init` on a fresh state dir, or `ferry init --repair`).
//!
//! The source comes from the directory name (`.ferry/<source uuid>/<share>`),
//! its name from `ferry appliance add`; only read-only replicas with a
//! received_uuid that nobody changed since they were received are adopted.

use std::collections::BTreeSet;

use clap::Args;
use uuid::Uuid;

use super::ctx::{bad_input, Ctx};
use super::output::outln;
use crate::receiver::adopt::{self, AdoptError, Line, Verdict};
use crate::state_lock::{self, Daemon, StateLock};
use crate::store::{Appliance, Store};

#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// Only this appliance's replicas. Needed when this receiver does not know
    /// the appliance's uuid yet (after `ferry appliance add`, before its first
    /// contact): it is then taken from the replica directory's name.
    #[arg(long, value_name = "APPLIANCE")]
    source: Option<String>,
    /// The appliance's uuid (`ferry id` on it), when the pools hold replicas of
    /// several appliances this receiver does not know by uuid.
    #[arg(long, value_name = "UUID", requires = "source")]
    source_uuid: Option<Uuid>,
    /// Only this pool [default: every pool].
    #[arg(long)]
    pool: Option<String>,
    /// Say what would be adopted, and change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn adopt(ctx: &Ctx, args: &AdoptArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let appliances = store.appliances()?;
    let source = match &args.source {
        Some(name) => match appliances.iter().find(|a| &a.name == name) {
            Some(a) => Some(a.clone()),
            None => bad_input!(
                "no appliance named {name}; add it first with `ferry appliance add {name} \
                 --address HOST --fingerprint FP`"
            ),
        },
        None => None,
    };
    let pools = match &args.pool {
        Some(name) => match store.pool(name)? {
            Some(p) => vec![p],
            None => bad_input!("no pool named {name}; `ferry pool list` shows the known ones"),
        },
        None => store.pools()?,
    };
    // Adopting beside a receiver could race a receive that is about to commit
    // the same subvolume; a dry run only looks.
    let _lock = if args.dry_run { None } else { Some(lock(ctx)?) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut lines = Vec::new();
    for pool in &pools {
        match runtime.block_on(adopt::survey(&store, pool, None)) {
            Ok(found) => lines.extend(found),
            Err(e @ AdoptError::PoolUnavailable { .. }) => outln!("skipped {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    let bind = match &source {
        Some(a) => Some(pick_source(a, args.source_uuid, &appliances, &lines)?),
        None => None,
    };
    let would = if args.dry_run {
        "would adopt"
    } else {
        "adopted"
    };
    let mut adopted = 0;
    let mut bound = false;
    for line in &lines {
        let name = match (&source, bind) {
            (Some(a), Some(uuid)) if uuid == line.source_uuid => a.name.clone(),
            (Some(_), _) => continue,
            (None, _) => match appliances.iter().find(|a| a.uuid == Some(line.source_uuid)) {
                Some(a) => a.name.clone(),
                None => {
                    outln!(
                        "not adopted: {} in pool {}: no appliance is known by uuid {} yet; \
                         name it with --source APPLIANCE (`ferry id` on it shows its uuid)",
                        adopt::shown(&line.pool.path, &line.dir),
                        line.pool.name,
                        line.source_uuid
                    );
                    continue;
                }
            },
        };
        for (snapshot, verdict) in &line.found {
            if let Verdict::Skip(why) = verdict {
                outln!(
                    "not adopted: {}/{snapshot} in pool {}: {why}",
                    adopt::shown(&line.pool.path, &line.dir),
                    line.pool.name
                );
            }
        }
        let n = line.adoptable().count();
        if n == 0 {
            continue;
        }
        if !args.dry_run {
            if let (Some(a), false) = (&source, bound) {
                bind_uuid(&store, a, line.source_uuid)?;
                bound = true;
            }
            adopt::record(&store, line, &name)?;
        }
        adopted += n;
        let newest = line.adoptable().last().unwrap_or_default();
        outln!(
            "{would} {n} replica(s) of share {} from {name} in pool {} (newest received: {newest})",
            line.share,
            line.pool.name
        );
    }
    if adopted == 0 {
        outln!("nothing to adopt: no replica on disk that is not recorded and may be adopted");
    } else if !args.dry_run {
        outln!("the next run of each line is incremental; retention applies to these replicas");
    }
    Ok(())
}

/// The uuid of `source`'s replica directories: its own once known, else the
/// one unknown uuid on disk (or `--source-uuid`).
fn pick_source(
    source: &Appliance,
    given: Option<Uuid>,
    appliances: &[Appliance],
    lines: &[Line],
) -> anyhow::Result<Uuid> {
    if let Some(known) = source.uuid {
        if given.is_some_and(|g| g != known) {
            bad_input!(
                "appliance {} is known by uuid {known}, not {}; leave out --source-uuid",
                source.name,
                given.unwrap_or(known)
            );
        }
        return Ok(known);
    }
    let unknown: BTreeSet<Uuid> = lines
        .iter()
        .map(|l| l.source_uuid)
        .filter(|u| !appliances.iter().any(|a| a.uuid == Some(*u)))
        .collect();
    match given {
        Some(g) if unknown.contains(&g) => Ok(g),
        Some(g) => bad_input!(
            "no replicas of an appliance with uuid {g} that this receiver does not know yet \
             are in the pools; `ferry replica adopt --dry-run` shows what is there"
        ),
        None => match unknown.iter().collect::<Vec<_>>()[..] {
            [one] => Ok(*one),
            [] => bad_input!(
                "the pools hold no replicas of an appliance this receiver does not know by uuid, \
                 so none can be {}'s; `ferry replica adopt --dry-run` shows what is there",
                source.name
            ),
            ref several => bad_input!(
                "the pools hold replicas of several appliances this receiver does not know by \
                 uuid ({}); run `ferry id` on {} and give its uuid with --source-uuid",
                several
                    .iter()
                    .map(|u| u.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                source.name
            ),
        },
    }
}

/// Binds `source` to the uuid of its replica directories, as its first
/// contact would; its certificate is checked against it then.
fn bind_uuid(store: &Store, source: &Appliance, uuid: Uuid) -> anyhow::Result<()> {
    if source.uuid.is_none() {
        store.set_appliance_uuid(source.id, uuid)?;
        outln!(
            "bound appliance {} to uuid {uuid} (the replica directory's name); its first \
             contact checks that against its certificate",
            source.name
        );
    }
    Ok(())
}

fn lock(ctx: &Ctx) -> anyhow::Result<StateLock> {
    match StateLock::acquire(&ctx.state_dir, Daemon::Receiver) {
        Ok(lock) => Ok(lock),
        Err(state_lock::Error::Held { holder, .. }) => bad_input!(
            "a ferry receiver ({holder}) is running on {}; stop it first: adopting beside it \
             could race its receives (--dry-run only looks)",
            ctx.state_dir.display()
        ),
        Err(e) => Err(e.into()),
    }
}
