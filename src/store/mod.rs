//! ferry's state database: SQLite in WAL mode, schema from `migrations/NNNN_name.sql`
//! applied at open. One file per table group; callers get typed rows, never SQL.

mod adopted;
mod appliances;
mod attempt;
mod db;
mod expected;
mod history;
mod local;
mod pools;
mod preflight;
mod prune;
mod receives;
mod replicas;
mod restores;
mod send_compressed;
mod sends;
mod tally;
mod tasks;

pub use appliances::{Appliance, NewAppliance};
pub use attempt::{Attempt, Basis, Finish, Kind, Status, UnknownText};
pub use db::{check_state_dir, migrations, now, Error, Result, Store, DB_FILE};
pub use expected::Expected;
pub use history::{NewReceive, NewSend, ReceiveFilter, ReceiveRow, SendFilter, SendRow};
pub use local::LocalIdentity;
pub use pools::Pool;
pub use replicas::{NewReplica, Replica};
pub use restores::{FailbackBase, OwnSnapshot, Restore};
pub use send_compressed::SendCompressed;
pub use sends::SnapshotRecord;
pub use tally::{History, TallyRow};
pub use tasks::{NewTask, Task, TaskHooks, TaskSettings};
