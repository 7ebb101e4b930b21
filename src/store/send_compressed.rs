//! `--send-compressed`: whether a task's version 2 send streams carry the
//! extents its share's filesystem compressed as they are, as a task column.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::Serialize;

/// Whether a version 2 send stream carries extents compressed on disk as
/// they are (`btrfs send --compressed-data`) rather than inflated by btrfs
/// send (and compressed again by the target's filesystem, if it compresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendCompressed {
    /// Where the share's filesystem compresses (mounted `compress=` or
    /// `compress-force=`, or the share has a compression property).
    Auto,
    Yes,
    No,
}

impl SendCompressed {
    /// The word in the database, JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SendCompressed::Auto => "auto",
            SendCompressed::Yes => "yes",
            SendCompressed::No => "no",
        }
    }
}

impl ToSql for SendCompressed {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for SendCompressed {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "auto" => Ok(SendCompressed::Auto),
            "yes" => Ok(SendCompressed::Yes),
            "no" => Ok(SendCompressed::No),
            other => Err(FromSqlError::Other(
                format!("unknown send_compressed {other:?}").into(),
            )),
        }
    }
}
