//! Two appliances on this machine, paired as a user pairs them: nas1 with the
//! share `photos` on its own pool, nas2 with the pool `backup`, trusting nas1.
//! Both the receiver tests (`daemon::Pair`) and the CLI-level runs (`pair::Pair`)
//! start from this one setup.

use std::path::PathBuf;

use ferry::identity::Fingerprint;

use super::client::Peer;
use super::daemon::Daemon;
use super::ferry::Node;
use super::TestPool;

pub struct Nodes {
    /// The sending appliance.
    pub nas1: Node,
    /// The receiving appliance.
    pub nas2: Node,
    /// nas1's share `photos`: a subvolume on `src` holding `a.txt`.
    pub share: PathBuf,
    /// nas1 as nas2 knows it: its identity and uuid.
    pub peer: Peer,
    /// nas2's certificate fingerprint, which nas1 pins.
    pub nas2_fp: Fingerprint,
    // Pools last: they unmount after the nodes' state is gone.
    /// nas1's pool, holding the share.
    pub src: TestPool,
    /// nas2's pool `backup`.
    pub dst: TestPool,
}

impl Nodes {
    /// Pools of the harness's default size.
    pub fn new() -> Nodes {
        Nodes::build(TestPool::new(), TestPool::new())
    }

    /// Pools of `bytes` each (sparse), for tests that move more data.
    pub fn with_pool_size(bytes: u64) -> Nodes {
        Nodes::build(TestPool::with_size(bytes), TestPool::with_size(bytes))
    }

    /// Pools of `bytes` each, in RAM (see [`TestPool::in_ram`]).
    pub fn in_ram(bytes: u64) -> Nodes {
        Nodes::build(TestPool::in_ram(bytes), TestPool::in_ram(bytes))
    }

    fn build(src: TestPool, dst: TestPool) -> Nodes {
        let share = src.subvolume("photos");
        std::fs::write(share.join("a.txt"), b"alpha\n").expect("write");
        let (nas1, nas2) = (Node::init("nas1"), Node::init("nas2"));
        nas2.ok(&[
            "appliance",
            "add",
            "nas1",
            "--address",
            "127.0.0.1",
            "--fingerprint",
            &nas1.fingerprint(),
        ]);
        nas2.ok(&["pool", "add", "backup", &dst.mount.to_string_lossy()]);
        Nodes {
            peer: Peer::load(&nas1.state),
            nas2_fp: nas2.fingerprint().parse().expect("fingerprint"),
            share,
            nas1,
            nas2,
            src,
            dst,
        }
    }

    /// nas1 learns where nas2's receiver listens (`ferry appliance add nas2`
    /// with its ports), as a user does once nas2 runs.
    pub fn nas1_sends_to(&self, receiver: &Daemon) {
        self.nas1.ok(&[
            "appliance",
            "add",
            "nas2",
            "--address",
            "127.0.0.1",
            "--fingerprint",
            &self.nas2_fp.to_string(),
            "--meta-port",
            &receiver.meta.port().to_string(),
            "--data-port",
            &receiver.data.port().to_string(),
        ]);
    }

    /// The uuid nas2 has bound to nas1: `None` until nas1's first authenticated contact.
    pub fn bound_uuid(&self) -> Option<uuid::Uuid> {
        self.nas2
            .store()
            .appliance("nas1")
            .expect("query nas2's appliances")
            .expect("nas2 knows nas1")
            .uuid
    }

    /// `<pool>/.ferry/<nas1 uuid>/photos`: where nas2 keeps nas1's replicas.
    pub fn replica_dir(&self) -> PathBuf {
        ferry::receiver::replica_dir(&self.dst.mount, self.peer.uuid, "photos")
    }
}
