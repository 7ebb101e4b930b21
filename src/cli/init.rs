//! `ferry init` and `ferry id`: this appliance's identity.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use uuid::Uuid;

use super::ctx::lost_database;
use super::ctx::{bad_input, Ctx};
use super::init_repair;
use super::output::{outln, print_fields, print_json};
use crate::store::{self, Store};
use crate::{identity, names};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// This appliance's name as peers will know it (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Rebuild what is lost or broken (an empty or missing state database, a
    /// deleted key or certificate), keeping this appliance's uuid.
    #[arg(long)]
    repair: bool,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Print JSON: {"name", "uuid", "fingerprint"}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct IdView {
    name: String,
    uuid: Uuid,
    fingerprint: String,
}

pub fn init(ctx: &Ctx, args: InitArgs) -> anyhow::Result<()> {
    if args.repair {
        return init_repair::repair(ctx, args.name.as_deref());
    }
    let dir = &ctx.state_dir;
    match store::check_state_dir(dir) {
        Ok(()) => return already(ctx, args.name.as_deref()),
        Err(store::Error::NotInitialized(_)) => {}
        Err(e) if e.is_state_dir_problem() => bad_input!("{e}"),
        Err(e) => return Err(e.into()),
    }
    let name = match args.name {
        Some(name) => name,
        None => default_name()?,
    };
    if let Err(e) = names::validate("appliance", &name) {
        bad_input!("{e} (choose one with --name)");
    }
    if identity::exists(dir) {
        bad_input!("{}", lost_database(dir));
    }
    create_state_dir(dir)?;
    let uuid = Uuid::new_v4();
    let id = identity::create(dir, &name, uuid)?;
    let store = Store::create(dir)?;
    store.set_identity(&name, uuid)?;
    outln!("initialized ferry in {}", dir.display());
    print_id(&IdView {
        name,
        uuid,
        fingerprint: id.fingerprint.to_string(),
    })
}

/// `init` on an initialized state dir: nothing changes, and what is broken
/// is named with the way out.
fn already(ctx: &Ctx, asked: Option<&str>) -> anyhow::Result<()> {
    let dir = &ctx.state_dir;
    let store = ctx.store()?;
    let Some(me) = store.identity()? else {
        bad_input!("{}", NO_IDENTITY);
    };
    if let Some(asked) = asked.filter(|n| *n != me.name) {
        bad_input!(
            "{} is already initialized as {} ({}); a second init never renames an appliance, \
             so {asked:?} was not applied and nothing changed",
            dir.display(),
            me.name,
            me.uuid
        );
    }
    if let Err(e) = identity::load(dir) {
        bad_input!(
            "{} is initialized as {} ({}), but {e}",
            dir.display(),
            me.name,
            me.uuid
        );
    }
    outln!(
        "ferry is already initialized in {} as {} ({}); nothing changed",
        dir.display(),
        me.name,
        me.uuid
    );
    Ok(())
}

/// A database without its identity row (an init interrupted between the two).
pub const NO_IDENTITY: &str = "the state database has no identity row; `ferry init --repair` \
     restores it from this appliance's certificate";

pub fn id(ctx: &Ctx, args: IdArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let Some(me) = store.identity()? else {
        bad_input!("{}", NO_IDENTITY);
    };
    let id = ctx.identity()?;
    let view = IdView {
        name: me.name,
        uuid: me.uuid,
        fingerprint: id.fingerprint.to_string(),
    };
    if args.json {
        return print_json(&view);
    }
    print_id(&view)
}

fn print_id(view: &IdView) -> anyhow::Result<()> {
    print_fields(&[
        ("name", view.name.clone()),
        ("uuid", view.uuid.to_string()),
        ("fingerprint", view.fingerprint.clone()),
    ])?;
    outln!(
        "\nOn each peer, run: ferry appliance add {} --address <this host> --fingerprint {}",
        view.name,
        view.fingerprint
    );
    Ok(())
}

/// The state dir holds the private key: only root may enter it.
fn create_state_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bad_input!(
            "cannot create state directory {}: permission denied; run ferry init as root",
            dir.display()
        ),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot create state directory {}", dir.display()))
        }
    }
    // An existing directory keeps its mode through create(); tighten it.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set mode 0700 on {}", dir.display()))?;
    Ok(())
}

fn default_name() -> anyhow::Result<String> {
    let host = nix::unistd::gethostname().context("cannot read the host name")?;
    let host = host.to_string_lossy();
    // A fully qualified host name's first label is the appliance's usual name.
    Ok(host.split('.').next().unwrap_or_default().to_string())
}
