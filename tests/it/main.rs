//! The integration tests, in one binary so the shared harness (`common`) compiles once.
//! Each module is one area; they run on real loop-backed btrfs pools (see `common`).

mod common;

mod adopt;
mod bad_input;
mod bandwidth;
mod bench_quick;
mod btrfs_layer;
mod check;
mod cli_output;
mod cli_setup;
mod cli_task_set;
mod cli_tasks;
mod clock_steps;
mod housekeeping;
mod install;
mod invariants;
mod messages;
mod metrics;
mod migrations;
mod module_graph;
mod notify;
mod old_peers;
mod pool_remove;
mod receiver;
mod receiver_disk;
mod receiver_peers;
mod receiver_slow_btrfs;
mod repair;
mod replication;
mod replication_faults;
mod resume;
mod schedule_edges;
mod scheduler;
mod starvation;
mod state_lock;
mod systemd_units;
mod task_pickup;
mod task_retention;
mod task_runs;
