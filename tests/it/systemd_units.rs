//! The shipped systemd units pass `systemd-analyze verify` without a single complaint,
//! and a mistyped directive or value in them would be caught.

use std::path::Path;
use std::process::{Command, Output};

const UNITS: [&str; 2] = ["ferry-sender.service", "ferry-receiver.service"];
const INSTALLED_BINARY: &str = "ExecStart=/usr/local/bin/ferry ";

fn unit_text(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The unit as shipped, but starting the binary cargo built: verify refuses an
/// ExecStart whose binary does not exist, and /usr/local/bin/ferry may not.
fn with_built_binary(unit: &str) -> String {
    let bin = env!("CARGO_BIN_EXE_ferry");
    assert!(
        !bin.contains(char::is_whitespace),
        "systemd would split the binary path {bin:?}; build in a path without spaces"
    );
    assert_eq!(
        unit.matches(INSTALLED_BINARY).count(),
        1,
        "the unit should have exactly one {INSTALLED_BINARY:?}"
    );
    assert_eq!(
        unit.matches("\nExecStart=").count(),
        1,
        "one ExecStart= line"
    );
    unit.replacen(INSTALLED_BINARY, &format!("ExecStart={bin} "), 1)
}

/// systemd-analyze must be here (`make test` installs it): a missing tool fails
/// the test, as a missing btrfs does, rather than checking nothing.
fn require_systemd_analyze() {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "systemd-analyze does not work ({}): `apt-get install systemd`",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("systemd-analyze unavailable ({e}): `apt-get install systemd`"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Verifies `unit` as file `name`; Err holds every complaint. Any output line naming
/// the unit or its directory counts, because verify warns about typos yet may still
/// exit 0; lines about other units on the machine (its targets' dependencies) are
/// shown but not ours to fix.
fn verify(name: &str, unit: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, unit).expect("write unit copy");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--recursive-errors=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze verify");
    let all = text(&out);
    let dir_name = dir.path().to_string_lossy();
    let ours: Vec<&str> = all
        .lines()
        .filter(|l| l.contains(name) || l.contains(&*dir_name) || l.contains("ferry"))
        .collect();
    if all.lines().count() > ours.len() {
        eprintln!("systemd-analyze verify {name}, about other units:\n{all}");
    }
    if !out.status.success() || !ours.is_empty() {
        return Err(format!("verify {name} ({}):\n{all}", out.status));
    }
    // verify accepts unknown capability names without a word, so ask systemd directly.
    let caps: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .flat_map(str::split_whitespace)
        .collect();
    if caps.is_empty() {
        return Err(format!("{name} sets no CapabilityBoundingSet="));
    }
    let out = Command::new("systemd-analyze")
        .arg("capability")
        .args(&caps)
        .output()
        .expect("run systemd-analyze capability");
    if !out.status.success() {
        return Err(format!("{name}: capabilities {caps:?}: {}", text(&out)));
    }
    Ok(())
}

#[test]
fn shipped_units_pass_systemd_analyze_verify() {
    require_systemd_analyze();
    for name in UNITS {
        if let Err(complaints) = verify(name, &with_built_binary(&unit_text(name))) {
            panic!("{complaints}");
        }
    }
}

#[test]
fn mistakes_in_a_unit_are_caught() {
    require_systemd_analyze();
    let unit = with_built_binary(&unit_text("ferry-receiver.service"));
    for (good, bad) in [
        ("ProtectHome=yes", "ProtectHome=yess"),
        ("RestrictRealtime=yes", "RestrictRealtim=yes"),
        ("TimeoutStopSec=20s", "TimeoutStopSec=20q"),
        ("AF_UNIX AF_NETLINK", "AF_UNIX AF_NETLNK"),
        ("CAP_SETFCAP", "CAP_SETFCAPP"),
        ("[Install]", "[Instal]"),
        (env!("CARGO_BIN_EXE_ferry"), "/nonexistent/ferry"),
    ] {
        assert_eq!(unit.matches(good).count(), 1, "{good:?} once in the unit");
        let broken = unit.replacen(good, bad, 1);
        assert!(
            verify("ferry-receiver.service", &broken).is_err(),
            "verify passed a unit with {bad:?} in place of {good:?}"
        );
    }
}

#[test]
fn units_keep_the_agreed_settings() {
    for name in UNITS {
        let unit = unit_text(name);
        let daemon = name
            .trim_start_matches("ferry-")
            .trim_end_matches(".service");
        let exec =
            format!("ExecStart=/usr/local/bin/ferry {daemon} --config /etc/ferry/ferry.toml");
        for line in [
            exec.as_str(),
            "Type=notify",
            "NotifyAccess=main",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "WatchdogSec=60s",
            "Restart=on-failure",
            "StateDirectory=ferry",
            "StateDirectoryMode=0700",
            "ProtectSystem=full",
            "NoNewPrivileges=yes",
            "WantedBy=multi-user.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "{name} lacks {line:?}");
        }
        assert!(
            !unit.lines().any(|l| l == "PrivateDevices=yes"),
            "{name}: btrfs needs /dev"
        );
    }
}

/// `systemd-analyze security` exposure scores (0 = locked down, 10 = exposed)
/// of the units as shipped. A change that loosens the hardening raises a score
/// and fails here; one that tightens it should lower the pin.
const EXPOSURE: [(&str, f64); 2] = [
    ("ferry-sender.service", 4.4),
    ("ferry-receiver.service", 4.9),
];

/// The "Overall exposure level for NAME: 4.4 OK" figure of a unit file.
fn exposure(name: &str, unit: &str) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, unit).expect("write unit copy");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze security");
    let all = text(&out);
    all.lines()
        .find_map(|l| l.split_once(&format!("exposure level for {name}: ")))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level for {name}:\n{all}"))
}

#[test]
fn hardening_scores_do_not_regress() {
    require_systemd_analyze();
    for (name, pinned) in EXPOSURE {
        let unit = with_built_binary(&unit_text(name));
        let score = exposure(name, &unit);
        assert!(
            score <= pinned,
            "{name}: systemd-analyze security scores {score}, pinned at {pinned}: \
             a hardening setting was loosened"
        );
        // The measurement notices loosening: without ProtectSystem= the score rises.
        let loose = unit.replace("ProtectSystem=full\n", "");
        assert!(
            exposure(name, &loose) > score,
            "{name}: ProtectSystem= not counted"
        );
    }
}
