//! An appliance's identity: its TLS key and self-signed certificate, and fingerprints that pin peers.
