//! An authenticated meta connection as the request handlers see it: the
//! receiver's shared state, the connection, and who is on the other end.

use std::net::SocketAddr;

use uuid::Uuid;

use super::shared::Shared;
use crate::store::Appliance;
use crate::wire::{Features, MetaConn};

/// The peer of a session, authenticated by its pinned certificate.
#[derive(Debug, Clone)]
pub(super) struct Peer {
    /// Its row in the appliances table.
    pub appliance: Appliance,
    /// Its appliance uuid, from its certificate (the hello had to agree).
    pub uuid: Uuid,
    pub addr: SocketAddr,
    /// The features both hellos listed: all this session may use.
    pub features: Features,
}

impl Peer {
    pub fn name(&self) -> &str {
        &self.appliance.name
    }
}

/// One session's connection with its peer and the receiver's shared state.
pub(super) struct Link<'a, S> {
    pub shared: &'a Shared,
    pub conn: MetaConn<S>,
    pub peer: Peer,
}
