//! Two network namespaces of a test's own joined by a veth pair, for link
//! faults on a real network path: shaping (`tc tbf`), loss and blackholes
//! (nftables drop rules on each end's ingress hook; this kernel has no
//! sch_netem), and processes started inside. Dropping a [`Link`] kills what
//! runs in its namespaces and deletes them (with the veth pair and the nft
//! tables), also when a test panics. Names carry the test process's pid and a
//! counter, so tests run in parallel; namespaces of dead test processes are
//! removed at the first [`Link::new`].

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use super::ferry::Node;

/// Every namespace of these tests is `<PREFIX><pid>x<n><side>`.
const PREFIX: &str = "fl";

/// The nftables table each namespace gets, with its ingress chain.
const TABLE: &str = "ferrytest";

/// One end of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The sending appliance's namespace.
    Tx,
    /// The receiving appliance's namespace.
    Rx,
}

/// Two namespaces and the veth pair between them: `tx_addr` in `tx`,
/// `rx_addr` in `rx`, each with its loopback up.
pub struct Link {
    pub tx: String,
    pub rx: String,
    pub tx_addr: Ipv4Addr,
    pub rx_addr: Ipv4Addr,
    tx_dev: String,
    rx_dev: String,
}

impl Link {
    /// A new pair of namespaces joined by veth, shaped to `rate` (a `tc`
    /// rate such as `100mbit`) at both ends when given. Panics naming what is
    /// missing when `ip`, `tc` or `nft` cannot do their part: never a skip.
    pub fn new(rate: Option<&str>) -> Link {
        super::require_root_and_btrfs();
        require_tools();
        remove_leftovers();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("{PREFIX}{}x{n}", std::process::id());
        let link = Link {
            tx: format!("{base}t"),
            rx: format!("{base}r"),
            tx_addr: Ipv4Addr::new(10, 203, 0, 1),
            rx_addr: Ipv4Addr::new(10, 203, 0, 2),
            // Interface names are at most 15 bytes; `base` is at most 13.
            tx_dev: format!("{base}a"),
            rx_dev: format!("{base}b"),
        };
        // From here on, Drop removes whatever part of the setup happened.
        for ns in [&link.tx, &link.rx] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // Made inside tx with its peer moved into rx: nothing ever shows in
        // the host's namespace.
        ip(&[
            "-n",
            &link.tx,
            "link",
            "add",
            &link.tx_dev,
            "type",
            "veth",
            "peer",
            "name",
            &link.rx_dev,
            "netns",
            &link.rx,
        ]);
        for side in [Side::Tx, Side::Rx] {
            let (ns, dev, addr) = link.end(side);
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            if let Some(rate) = rate {
                let tc = [
                    "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst",
                    "32kbit", "latency", "400ms",
                ];
                super::run("tc", &tc.map(std::ffi::OsStr::new));
            }
            let table = format!(
                "table netdev {TABLE} {{\n  chain ingress {{\n    type filter hook ingress \
                 device \"{dev}\" priority 0; policy accept;\n  }}\n}}\n"
            );
            link.nft(side, &["-f", "-"], Some(&table));
        }
        link
    }

    fn end(&self, side: Side) -> (&str, &str, Ipv4Addr) {
        match side {
            Side::Tx => (&self.tx, &self.tx_dev, self.tx_addr),
            Side::Rx => (&self.rx, &self.rx_dev, self.rx_addr),
        }
    }

    /// Every packet arriving at either end is dropped, both ways, until [`Link::heal`].
    pub fn blackhole(&self) {
        for side in [Side::Tx, Side::Rx] {
            let rule = ["add", "rule", "netdev", TABLE, "ingress", "counter", "drop"];
            self.nft(side, &rule, None);
        }
    }

    /// `percent` of the packets arriving at each end are dropped at random,
    /// both ways, until [`Link::heal`].
    pub fn lose(&self, percent: u8) {
        let below = percent.to_string();
        for side in [Side::Tx, Side::Rx] {
            let rule = [
                "add", "rule", "netdev", TABLE, "ingress", "numgen", "random", "mod", "100", "<",
                &below, "counter", "drop",
            ];
            self.nft(side, &rule, None);
        }
    }

    /// Drops nothing any more.
    pub fn heal(&self) {
        for side in [Side::Tx, Side::Rx] {
            self.nft(side, &["flush", "chain", "netdev", TABLE, "ingress"], None);
        }
    }

    /// Packets the drop rules at `side` dropped since they were added (a
    /// proof that a fault took effect).
    pub fn dropped(&self, side: Side) -> u64 {
        let (ns, _, _) = self.end(side);
        let out = ns_exec(ns, "nft", &["list", "table", "netdev", TABLE], None);
        let text = String::from_utf8_lossy(&out.stdout);
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| w[0] == "packets")
            .filter_map(|w| w[1].parse::<u64>().ok())
            .sum()
    }

    fn nft(&self, side: Side, args: &[&str], stdin: Option<&str>) {
        let (ns, _, _) = self.end(side);
        let out = ns_exec(ns, "nft", args, stdin);
        assert!(
            out.status.success(),
            "nft {args:?} in {ns} failed: {} (the kernel needs nf_tables with the netdev family)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// `ferry ARGS` as appliance `node` inside `side`'s namespace, with the
    /// configuration file `config`; killed when dropped.
    pub fn ferry(
        &self,
        side: Side,
        node: &Node,
        config: &Path,
        args: &[&str],
    ) -> tokio::process::Command {
        let (ns, _, _) = self.end(side);
        let mut cmd = tokio::process::Command::new(program("ip"));
        // `ip netns exec` execs the command after setns: the child's pid is ferry's.
        cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_ferry")])
            .args(args)
            .env("FERRY_STATE_DIR", &node.state)
            .env("FERRY_CONFIG", config)
            .env_remove("FERRY_LOG")
            .kill_on_drop(true);
        cmd
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Runs while unwinding from a failed test too: report, never panic.
        for ns in [&self.rx, &self.tx] {
            if let Err(e) = remove_namespace(ns) {
                eprintln!("netns: cleaning up {ns} failed: {e}");
            }
        }
    }
}

/// Kills every process inside `ns` (only the test's own run there) and
/// deletes it; its veth end and nft table go with it.
fn remove_namespace(ns: &str) -> Result<(), String> {
    if !Path::new("/run/netns").join(ns).exists() {
        return Ok(());
    }
    let pids = Command::new(program("ip"))
        .args(["netns", "pids", ns])
        .output()
        .map_err(|e| format!("ip netns pids: {e}"))?;
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let out = Command::new(program("ip"))
        .args(["netns", "del", ns])
        .output()
        .map_err(|e| format!("ip netns del: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Once per test process: namespaces of earlier test processes that died
/// without cleaning up. Those of live processes (parallel test binaries) stay.
fn remove_leftovers() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(entries) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('x').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if let Err(e) = remove_namespace(&name) {
                eprintln!("netns: leftover {name} not removed: {e}");
            }
        }
    });
}

/// Panics naming the package unless `ip`, `tc` and `nft` are installed.
fn require_tools() {
    let missing: Vec<String> = [("ip", "iproute2"), ("tc", "iproute2"), ("nft", "nftables")]
        .into_iter()
        .filter(|(tool, _)| super::find_program(tool).is_none())
        .map(|(tool, package)| format!("`{tool}`: `apt-get install {package}`"))
        .collect();
    assert!(
        missing.is_empty(),
        "the link-fault tests need network namespaces with shaping and nftables, and are \
         never skipped; missing: {} (`make deps` installs them)",
        missing.join(", ")
    );
}

fn program(name: &str) -> PathBuf {
    super::find_program(name).unwrap_or_else(|| PathBuf::from(name))
}

fn ip(args: &[&str]) {
    super::run(
        "ip",
        &args.iter().map(std::ffi::OsStr::new).collect::<Vec<_>>(),
    );
}

/// `program args` inside namespace `ns`, with `stdin` fed to it.
fn ns_exec(ns: &str, program_name: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(program("ip"))
        .args(["netns", "exec", ns])
        .arg(program(program_name))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program_name} in {ns}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("wait")
}
