//! `ferry init` and `ferry id`: this appliance's identity.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use uuid::Uuid;

use super::ctx::{bad_input, Ctx};
use super::output::{outln, print_fields, print_json};
use crate::store::{self, Store};
use crate::{identity, names};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// This appliance's name as peers will know it (default: the host name).
    #[arg(long)]
    name: Option<String>,
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
    let dir = &ctx.state_dir;
    if dir.join(store::DB_FILE).exists() {
        let store = ctx.store()?;
        if let Some(me) = store.identity()? {
            if let Some(asked) = args.name.as_deref().filter(|n| *n != me.name) {
                bad_input!(
                    "{} is already initialized as {} ({}); a second init never renames an appliance, \
                     so {asked:?} was not applied and nothing changed",
                    dir.display(), me.name, me.uuid
                );
            }
            outln!(
                "ferry is already initialized in {} as {} ({}); nothing changed",
                dir.display(),
                me.name,
                me.uuid
            );
            return Ok(());
        }
    }
    let name = match args.name {
        Some(name) => name,
        None => default_name()?,
    };
    if let Err(e) = names::validate("appliance", &name) {
        bad_input!("{e} (choose one with --name)");
    }
    if identity::exists(dir) {
        anyhow::bail!(
            "{} holds a key or certificate but no state database (an interrupted init?); \
             move the directory aside and run `ferry init` again",
            dir.display()
        );
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

pub fn id(ctx: &Ctx, args: IdArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let me = store
        .identity()?
        .context("the state database has no identity row; run `ferry init`")?;
    let id = identity::load(&ctx.state_dir)?;
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
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create state directory {}", dir.display()))?;
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
