//! `ferry task run NAME [--progress]`: one run now, through the same code the
//! scheduler uses. Exit 0 only when the target confirmed the snapshot.

use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::ctx::{bad_input, Ctx};
use super::output::{bytes, elapsed, estimate_text, outln, rate};
use super::signals::Signals;
use crate::estimate::estimate;
use crate::sender::{self, Outcome, Progress};

pub fn run(ctx: &Ctx, name: &str, progress: bool) -> anyhow::Result<()> {
    if ctx.store()?.task(name)?.is_none() {
        bad_input!("no task named {name}; `ferry task list` shows the tasks");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Ctrl-C or SIGTERM stops the run cleanly: the row says "interrupted by shutdown".
        let cancel = CancellationToken::new();
        let signals = Signals::stop()?;
        let cancelling = cancel.clone();
        tokio::spawn(async move {
            signals.stopped().await;
            cancelling.cancel();
        });
        let (tx, rx) = watch::channel(Progress::default());
        let bar = progress.then(|| tokio::spawn(show_progress(rx)));
        let started = Instant::now();
        let settings = &ctx.config.sender;
        let options = sender::RunOptions {
            resume_for: settings.resume_for,
            keepalive: crate::wire::Keepalive::every(settings.keepalive),
            cap: crate::wire::Throttle::new(settings.bwlimit, settings.bwlimit_window),
            hooks: settings.hooks.clone(),
        };
        let result = sender::run_task(&ctx.state_dir, name, Some(tx), cancel, options).await;
        if let Some(bar) = bar {
            let _ = bar.await;
        }
        let outcome = match result.with_context(|| format!("task {name} failed"))? {
            Outcome::Sent(sent) => sent,
            Outcome::Unchanged { since, .. } => {
                outln!("task {name}: no change since {since}, which the target holds; no snapshot taken");
                return Ok(());
            }
        };
        let took = started.elapsed();
        let warnings: String = outcome
            .warnings
            .iter()
            .map(|w| format!("; warning: {w}"))
            .collect();
        outln!(
            "task {name}: sent {} ({}{}), {} stream, {} on the wire, {} over {} of transfer ({} in all); confirmed received_uuid {}{warnings}",
            outcome.snapshot,
            outcome.kind,
            outcome
                .parent
                .as_ref()
                .map(|p| format!(" from {p}"))
                .unwrap_or_default(),
            bytes(outcome.stream_bytes),
            bytes(outcome.wire_bytes),
            rate(outcome.stream_bytes, outcome.transfer_time),
            elapsed(outcome.transfer_time),
            elapsed(took),
            outcome.received_uuid
        );
        Ok(())
    })
}

/// Draws bytes, rate and elapsed time on stderr; indicatif hides the bar when
/// stderr is not a terminal, so logs and pipes stay clean. A btrfs send
/// stream's size is not known in advance: when the run has a basis for an
/// estimate (see `sender::expect`), a bar, the share and an ETA follow it,
/// marked `~` and "estimate"; else the spinner alone.
async fn show_progress(mut rx: watch::Receiver<Progress>) {
    let style = |template| {
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(style(
        "{spinner} {bytes} sent, {binary_bytes_per_sec}, {elapsed_precise} {msg}",
    ));
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut estimated = false;
    while rx.changed().await.is_ok() {
        let p = *rx.borrow();
        let on_wire = format!("({} on the wire)", bytes(p.wire_bytes));
        let took = bar.elapsed();
        match p
            .expected
            .and_then(|x| estimate(x.bytes, p.stream_bytes, took))
        {
            Some(e) => {
                if !estimated {
                    // The bar counts percent; bytes and rate are in the message.
                    bar.set_style(style("{spinner} [{bar:12}] {wide_msg}"));
                    bar.set_length(100);
                    estimated = true;
                }
                bar.set_position(u64::from(e.percent));
                // What matters first: a narrow terminal cuts the end off.
                bar.set_message(format!(
                    "{}; {} sent at {}, {} {on_wire}",
                    estimate_text(&e),
                    bytes(p.stream_bytes),
                    rate(p.stream_bytes, took),
                    elapsed(took),
                ));
            }
            None => {
                bar.set_position(p.stream_bytes);
                bar.set_message(on_wire);
            }
        }
    }
    bar.finish_and_clear();
}
