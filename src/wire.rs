//! The `ferry/1` protocol: framing and messages for the meta (control) and data (bulk) ports.
