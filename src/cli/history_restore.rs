//! `ferry history restore`: the writable copies `ferry replica restore` made,
//! newest first.

use clap::Args;

use super::output::{print_json, time, Table};
use super::{ctx::Ctx, values};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// How many rows, newest first.
    #[arg(long, default_value_t = 20, allow_negative_numbers = true, value_parser = values::count)]
    limit: u32,
    /// Print JSON (see the README for the fields).
    #[arg(long)]
    json: bool,
}

pub fn list(ctx: &Ctx, args: &RestoreArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let rows: Vec<_> = store
        .restores()?
        .into_iter()
        .take(usize::try_from(args.limit).unwrap_or(usize::MAX))
        .collect();
    if args.json {
        return print_json(&rows);
    }
    let mut table = Table::new(&["RESTORED", "PATH", "SOURCE", "SHARE", "POOL", "REPLICA"]);
    for r in &rows {
        table.row(vec![
            time(r.restored_at),
            r.path.display().to_string(),
            r.source.clone(),
            r.share.clone(),
            r.pool.clone(),
            r.snapshot.clone(),
        ]);
    }
    table.print()
}
