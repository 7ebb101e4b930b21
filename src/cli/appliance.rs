//! `ferry appliance add|list|remove`: the peers this appliance trusts.

use std::net::IpAddr;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::ctx::{bad_input, Ctx};
use super::output::{or_dash, outln, print_json, time, Table};
use super::values;
use crate::config::{DEFAULT_DATA_PORT, DEFAULT_META_PORT};
use crate::identity::Fingerprint;
use crate::names;
use crate::store::{Appliance, NewAppliance, Store};

#[derive(Debug, Subcommand)]
pub enum ApplianceCommand {
    /// Trust a peer: it may send to this appliance, and tasks may send to it.
    Add(AddArgs),
    /// List known peers.
    List(ListArgs),
    /// Change how a peer is reached or its fingerprint (say, after it was reinstalled).
    Set(SetArgs),
    /// Forget a peer (refused while tasks send to it).
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct SetArgs {
    name: String,
    /// The peer's new host name or IP address.
    #[arg(long)]
    address: Option<String>,
    /// The peer's new certificate fingerprint, from `ferry id` on the peer.
    #[arg(long)]
    fingerprint: Option<String>,
    #[arg(long, allow_negative_numbers = true, value_parser = values::port)]
    meta_port: Option<u16>,
    #[arg(long, allow_negative_numbers = true, value_parser = values::port)]
    data_port: Option<u16>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The peer's name (as it calls itself in `ferry id`, or any name you like).
    name: String,
    /// The peer's host name or IP address.
    #[arg(long)]
    address: String,
    /// The peer's certificate fingerprint, as printed by `ferry id` on the peer.
    #[arg(long)]
    fingerprint: String,
    /// The peer receiver's meta (control) port.
    #[arg(long, default_value_t = DEFAULT_META_PORT, allow_negative_numbers = true, value_parser = values::port)]
    meta_port: u16,
    /// The peer receiver's data (bulk) port.
    #[arg(long, default_value_t = DEFAULT_DATA_PORT, allow_negative_numbers = true, value_parser = values::port)]
    data_port: u16,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (see the README for the fields).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ApplianceView<'a> {
    name: &'a str,
    address: &'a str,
    fingerprint: &'a str,
    meta_port: u16,
    data_port: u16,
    uuid: Option<uuid::Uuid>,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl<'a> From<&'a Appliance> for ApplianceView<'a> {
    fn from(a: &'a Appliance) -> Self {
        ApplianceView {
            name: &a.name,
            address: &a.address,
            fingerprint: &a.fingerprint,
            meta_port: a.meta_port,
            data_port: a.data_port,
            uuid: a.uuid,
            created_at: a.created_at,
        }
    }
}

pub fn run(ctx: &Ctx, cmd: ApplianceCommand) -> anyhow::Result<()> {
    match cmd {
        ApplianceCommand::Add(args) => add(ctx, args),
        ApplianceCommand::List(args) => list(ctx, args),
        ApplianceCommand::Set(args) => set(ctx, args),
        ApplianceCommand::Remove { name } => remove(ctx, &name),
    }
}

fn add(ctx: &Ctx, args: AddArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    if let Err(e) = names::validate("appliance", &args.name) {
        bad_input!("{e}");
    }
    check_address(&args.address)?;
    values::distinct_ports(
        args.meta_port,
        args.data_port,
        "--meta-port and --data-port",
    )?;
    let fingerprint = check_fingerprint(ctx, &store, &args.fingerprint, None)?;
    if store.appliance(&args.name)?.is_some() {
        bad_input!(
            "appliance {} already exists; change it with `ferry appliance set {}` or pick another name",
            args.name, args.name
        );
    }
    store.add_appliance(&NewAppliance {
        name: &args.name,
        address: &args.address,
        fingerprint: &fingerprint,
        meta_port: args.meta_port,
        data_port: args.data_port,
    })?;
    outln!(
        "added appliance {} at {} (meta port {}, data port {})",
        args.name,
        args.address,
        args.meta_port,
        args.data_port
    );
    Ok(())
}

fn set(ctx: &Ctx, args: SetArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let Some(current) = store.appliance(&args.name)? else {
        bad_input!(
            "no appliance named {}; `ferry appliance list` shows the known ones",
            args.name
        );
    };
    if args.address.is_none()
        && args.fingerprint.is_none()
        && args.meta_port.is_none()
        && args.data_port.is_none()
    {
        bad_input!("nothing to change; give --address, --fingerprint, --meta-port or --data-port");
    }
    if let Some(address) = &args.address {
        check_address(address)?;
    }
    values::distinct_ports(
        args.meta_port.unwrap_or(current.meta_port),
        args.data_port.unwrap_or(current.data_port),
        &match (args.meta_port, args.data_port) {
            (Some(_), Some(_)) => "--meta-port and --data-port".to_string(),
            (Some(_), None) => format!("--meta-port and {}'s data port", current.name),
            (None, _) => format!("{}'s meta port and --data-port", current.name),
        },
    )?;
    let fingerprint = match &args.fingerprint {
        Some(fp) => check_fingerprint(ctx, &store, fp, Some(current.id))?,
        None => current.fingerprint.clone(),
    };
    let after = NewAppliance {
        name: &current.name,
        address: args.address.as_deref().unwrap_or(&current.address),
        fingerprint: &fingerprint,
        meta_port: args.meta_port.unwrap_or(current.meta_port),
        data_port: args.data_port.unwrap_or(current.data_port),
    };
    let changes = differences(&current, &after);
    if changes.is_empty() {
        outln!("appliance {}: nothing changed", current.name);
        return Ok(());
    }
    // A new fingerprint is a new identity: the uuid it claims is learned again.
    let new_identity = fingerprint != current.fingerprint;
    store.update_appliance(current.id, &after, new_identity)?;
    outln!("appliance {}: {}", current.name, changes.join(", "));
    Ok(())
}

/// Each changed setting as `name old -> new`, as `task set` lists them.
fn differences(before: &Appliance, after: &NewAppliance) -> Vec<String> {
    // Every field is named, so one added to `NewAppliance` does not compile
    // until it is compared here (`task set` once dropped one silently).
    let NewAppliance {
        name: _,
        address,
        fingerprint,
        meta_port,
        data_port,
    } = after;
    let fields = [
        ("address", before.address.clone(), address.to_string()),
        (
            "fingerprint",
            before.fingerprint.clone(),
            fingerprint.to_string(),
        ),
        (
            "meta port",
            before.meta_port.to_string(),
            meta_port.to_string(),
        ),
        (
            "data port",
            before.data_port.to_string(),
            data_port.to_string(),
        ),
    ];
    fields
        .into_iter()
        .filter(|(_, old, new)| old != new)
        .map(|(name, old, new)| format!("{name} {old} -> {new}"))
        .collect()
}

fn check_address(address: &str) -> anyhow::Result<()> {
    if let Err(why) = validate_address(address) {
        bad_input!("address {address:?} {why}; give a host name or an IP address");
    }
    Ok(())
}

/// Parses and normalizes a fingerprint, refusing this appliance's own and one
/// that another appliance (other than `except`) already has.
fn check_fingerprint(
    ctx: &Ctx,
    store: &Store,
    given: &str,
    except: Option<i64>,
) -> anyhow::Result<String> {
    let fingerprint: Fingerprint = match given.parse() {
        Ok(fp) => fp,
        Err(e) => bad_input!("fingerprint {given:?}: {e}"),
    };
    let fingerprint = fingerprint.to_string();
    if let Some(other) = store.appliance_by_fingerprint(&fingerprint)? {
        if Some(other.id) != except {
            bad_input!(
                "fingerprint {fingerprint} already belongs to appliance {}; one appliance, one name",
                other.name
            );
        }
    }
    if ctx.identity()?.fingerprint.to_string() == fingerprint {
        bad_input!("fingerprint {fingerprint} is this appliance's own; give the peer's, from `ferry id` on the peer");
    }
    Ok(fingerprint)
}

fn list(ctx: &Ctx, args: ListArgs) -> anyhow::Result<()> {
    let appliances = ctx.store()?.appliances()?;
    if args.json {
        let views: Vec<ApplianceView> = appliances.iter().map(Into::into).collect();
        return print_json(&views);
    }
    let mut table = Table::new(&[
        "NAME",
        "ADDRESS",
        "META",
        "DATA",
        "UUID",
        "ADDED",
        "FINGERPRINT",
    ]);
    for a in &appliances {
        table.row(vec![
            a.name.clone(),
            a.address.clone(),
            a.meta_port.to_string(),
            a.data_port.to_string(),
            or_dash(a.uuid),
            time(a.created_at),
            a.fingerprint.clone(),
        ]);
    }
    table.print()?;
    Ok(())
}

fn remove(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let Some(appliance) = store.appliance(name)? else {
        bad_input!("no appliance named {name}; `ferry appliance list` shows the known ones");
    };
    let tasks = store.tasks_targeting(appliance.id)?;
    if !tasks.is_empty() {
        bad_input!(
            "appliance {name} is the target of task(s) {}; delete them first (`ferry task delete NAME --yes`)",
            tasks.join(", ")
        );
    }
    store.remove_appliance(name)?;
    outln!("removed appliance {name}; its history rows are kept");
    Ok(())
}

/// An IP address, or a host name by RFC 1123 (no lookup: the peer may be offline).
fn validate_address(address: &str) -> Result<(), &'static str> {
    if address.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if address.is_empty() || address.len() > 253 {
        return Err("is not 1 to 253 characters long");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !address.trim_end_matches('.').split('.').all(label_ok) {
        return Err("is not a valid host name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_address;

    #[test]
    fn addresses() {
        for ok in ["192.0.2.1", "::1", "nas2", "nas2.example.org", "a-b.c"] {
            assert!(validate_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "nas 2",
            "-nas",
            "nas_2",
            "a..b",
            "http://nas",
            "1.2.3.4:22",
        ] {
            assert!(validate_address(bad).is_err(), "{bad}");
        }
    }
}
