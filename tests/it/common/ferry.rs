//! Running the real `ferry` binary as an appliance with its own state directory,
//! and reading its database to prove a refused command wrote nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// One appliance: a state directory and the binary pointed at it.
pub struct Node {
    _dir: TempDir,
    pub state: PathBuf,
}

impl Node {
    /// A state directory that `ferry init` has not seen yet.
    pub fn uninitialized() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ferry-state-")
            .tempdir()
            .expect("temp dir");
        let state = dir.path().join("state");
        Node { _dir: dir, state }
    }

    /// An initialized appliance named `name`.
    pub fn init(name: &str) -> Self {
        let node = Self::uninitialized();
        node.ok(&["init", "--name", name]);
        node
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("FERRY_STATE_DIR", &self.state)
            // Hermetic: never read this machine's /etc/ferry/ferry.toml.
            .env("FERRY_CONFIG", "/dev/null")
            .env_remove("FERRY_LOG")
            .output()
            .expect("run ferry")
    }

    /// The binary pointed at this appliance, for tests that need to adjust it
    /// (environment, stdio) or run it without blocking a runtime.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(args)
            .env("FERRY_STATE_DIR", &self.state)
            .env("FERRY_CONFIG", "/dev/null")
            .env_remove("FERRY_LOG")
            .kill_on_drop(true);
        cmd
    }

    /// Like `run`, for async tests whose runtime also serves a daemon.
    pub async fn run_async(&self, args: &[&str]) -> Output {
        self.command(args).output().await.expect("run ferry")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "ferry {args:?} failed ({:?}):\n{}{}",
            out.status.code(),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Runs a command that must fail with `code`, print one line on stderr, and
    /// leave the database exactly as it was. Returns that line.
    pub fn refused(&self, code: i32, args: &[&str]) -> String {
        let before = self.dump();
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "ferry {args:?}: expected exit {code}; stdout: {} stderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "ferry {args:?}: expected one line on stderr, got:\n{stderr}"
        );
        assert!(stderr.starts_with("ferry: "), "{stderr}");
        assert_eq!(self.dump(), before, "ferry {args:?} changed the database");
        stderr.trim_end().to_string()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ferry {args:?}: {e}\n{out}"))
    }

    pub fn fingerprint(&self) -> String {
        self.json(&["id", "--json"])["fingerprint"]
            .as_str()
            .expect("fingerprint")
            .to_string()
    }

    pub fn store(&self) -> ferry::store::Store {
        ferry::store::Store::open(&self.state).expect("open store")
    }

    /// Every row of every table, as text: equal dumps mean nothing was written.
    pub fn dump(&self) -> String {
        dump_db(&self.state.join("state.db"))
    }
}

fn dump_db_immutable(path: &Path) -> String {
    use rusqlite::OpenFlags;
    let uri = format!("file:{}?immutable=1", path.display());
    let conn = rusqlite::Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .expect("open db read-only");
    dump_conn(&conn)
}

/// `task add NAME --share SHARE --target nas2 --pool backup --frequency
/// FREQUENCY` and then `extra`: the task most tests add on nas1.
pub fn task_add<'a>(
    name: &'a str,
    share: &'a str,
    frequency: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "task",
        "add",
        name,
        "--share",
        share,
        "--target",
        "nas2",
        "--pool",
        "backup",
        "--frequency",
        frequency,
    ];
    args.extend_from_slice(extra);
    args
}

pub fn dump_db(path: &Path) -> String {
    if !path.exists() {
        return "(no database)".to_string();
    }
    let conn = rusqlite::Connection::open(path).expect("open db");
    if conn
        .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
        .is_err()
    {
        // A database on a read-only mount: read as is, without WAL's side files.
        return dump_db_immutable(path);
    }
    dump_conn(&conn)
}

/// Every row of every table of `conn`'s database, as text.
fn dump_conn(conn: &rusqlite::Connection) -> String {
    let mut out = String::new();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    out.push_str(&format!("user_version {version}\n"));
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("tables");
    for table in tables {
        out.push_str(&format!("[{table}]\n"));
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY rowid"))
            .expect("prepare");
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", r.get_ref(i).map(|v| format!("{v:?}"))))
                    .collect();
                Ok(cells.join(" | "))
            })
            .expect("query");
        for row in rows {
            out.push_str(&row.expect("row"));
            out.push('\n');
        }
    }
    out
}
