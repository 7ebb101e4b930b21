//! `ferry init --repair`: rebuilds what is lost or broken in a state dir (an
//! empty or missing database, a deleted key or certificate), keeping the uuid.
//!
//! The uuid is what peers bind this appliance to and what names its replica
//! directories on targets, so a repair never makes a new one: it comes from the
//! database's identity row, else from the certificate's SAN. Whatever is broken
//! is moved aside (`<file>.broken-<UTC time>`), never deleted.

use std::fs;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::ctx::bad_input;
use super::ctx::Ctx;
use super::output::outln;
use crate::identity::{self, CERT_FILE, KEY_FILE};
use crate::state_lock::{self, Daemon, StateLock};
use crate::store::{self, Store, DB_FILE};

/// The identity a repair keeps, and where it was read from.
struct Kept {
    name: String,
    uuid: Uuid,
    from: &'static str,
}

pub fn repair(ctx: &Ctx, asked_name: Option<&str>) -> anyhow::Result<()> {
    let dir = &ctx.state_dir;
    let db = match store::check_state_dir(dir) {
        Ok(()) => Some(ctx.store()?),
        Err(store::Error::NotInitialized(_) | store::Error::Empty(_)) => None,
        Err(e) if e.is_state_dir_problem() => bad_input!("{e}"),
        Err(e) => return Err(e.into()),
    };
    let recorded = match &db {
        Some(s) => s.identity()?,
        None => None,
    };
    let keys = identity::load(dir);
    if let Err(e @ identity::Error::KeyPermissions { .. }) = &keys {
        // A key others could read is not lost; a new one would not undo that.
        bad_input!("{e}");
    }
    if let Some(me) = &recorded {
        if let Some(asked) = asked_name.filter(|n| *n != me.name) {
            bad_input!(
                "{} is {} ({}); a repair never renames an appliance, so {asked:?} was not \
                 applied and nothing changed",
                dir.display(),
                me.name,
                me.uuid
            );
        }
    }
    if let (Some(me), Ok(_)) = (&recorded, &keys) {
        outln!(
            "nothing to repair in {}: {} ({}) has its database, key and certificate; nothing changed",
            dir.display(),
            me.name,
            me.uuid
        );
        return Ok(());
    }
    let kept = match (&recorded, certificate(dir)) {
        (Some(me), _) => Kept {
            name: me.name.clone(),
            uuid: me.uuid,
            from: "the state database",
        },
        (None, Some((uuid, name))) => Kept {
            name: asked_name.map(str::to_string).or(name).unwrap_or_default(),
            uuid,
            from: "the certificate",
        },
        (None, None) if !dir.exists() || !identity::exists(dir) && db.is_none() => bad_input!(
            "nothing to repair: {} was never initialized; run `ferry init`",
            dir.display()
        ),
        (None, None) => bad_input!(
            "nothing in {} names this appliance's uuid any more (no identity in a state \
             database, no readable certificate); move the directory aside and run `ferry init`: \
             it makes a new appliance, which peers add again",
            dir.display()
        ),
    };
    if let Err(e) = crate::names::validate("appliance", &kept.name) {
        bad_input!("{e} (give the appliance's name with --name)");
    }
    // No daemon may work on what is being rebuilt.
    let _receiver = lock(dir, Daemon::Receiver)?;
    let _sender = lock(dir, Daemon::Sender)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut moved = Vec::new();
    if recorded.is_none() {
        drop(db);
        for file in [DB_FILE, "state.db-wal", "state.db-shm"] {
            moved.extend(move_aside(dir, file, &stamp)?);
        }
        let store = Store::create(dir)?;
        store.set_identity(&kept.name, kept.uuid)?;
        outln!(
            "rebuilt the state database of {} ({}) in {}, with the uuid from {}",
            kept.name,
            kept.uuid,
            dir.display(),
            kept.from
        );
    }
    if keys.is_err() {
        for file in [KEY_FILE, CERT_FILE] {
            moved.extend(move_aside(dir, file, &stamp)?);
        }
        let id = identity::create(dir, &kept.name, kept.uuid)?;
        outln!(
            "made a new key and certificate for {} ({}); fingerprint {}",
            kept.name,
            kept.uuid,
            id.fingerprint
        );
        outln!(
            "On each peer, run: ferry appliance set {} --fingerprint {}",
            kept.name,
            id.fingerprint
        );
    }
    for path in &moved {
        outln!("kept the broken {} aside", path.display());
    }
    if recorded.is_none() {
        outln!(
            "Peers, pools and tasks were in the lost database: add them again (`ferry appliance \
             add`, `ferry pool add`, `ferry task add`); on a receiver, `ferry replica adopt` then \
             takes back the replicas in its pools"
        );
    }
    Ok(())
}

/// The uuid and name in `cert.pem`, when it is there and readable.
fn certificate(dir: &Path) -> Option<(Uuid, Option<String>)> {
    use rustls::pki_types::pem::PemObject;
    let pem = fs::read(dir.join(CERT_FILE)).ok()?;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).ok()?;
    let uuid = identity::certificate_uuid(&der)?;
    Some((uuid, identity::certificate_name(&der)))
}

fn lock(dir: &Path, daemon: Daemon) -> anyhow::Result<StateLock> {
    match StateLock::acquire(dir, daemon) {
        Ok(lock) => Ok(lock),
        Err(state_lock::Error::Held { holder, .. }) => bad_input!(
            "a {} ({holder}) is running on {}; stop it before repairing its state",
            daemon.command(),
            dir.display()
        ),
        Err(e) => Err(e.into()),
    }
}

/// Renames `dir/file` to `dir/file.broken-<stamp>`, if it is there.
fn move_aside(dir: &Path, file: &str, stamp: &str) -> anyhow::Result<Option<PathBuf>> {
    let from = dir.join(file);
    if from.symlink_metadata().is_err() {
        return Ok(None);
    }
    let to = dir.join(format!("{file}.broken-{stamp}"));
    fs::rename(&from, &to).map_err(|e| {
        anyhow::anyhow!(
            "cannot move {} aside to {}: {e}",
            from.display(),
            to.display()
        )
    })?;
    Ok(Some(to))
}
