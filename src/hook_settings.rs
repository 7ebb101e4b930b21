//! The config file's `[sender.hooks]`: the hook commands of tasks that set none
//! of their own, and how long any hook may run.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[sender.hooks]`: the hook commands of tasks that set none themselves, and
/// how long any hook may run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HookSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_success: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// A hook still running after this is killed (its process group) and
    /// counts as failed.
    #[serde(with = "crate::config_text::duration")]
    pub timeout: Duration,
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            pre_snapshot: None,
            post_snapshot: None,
            on_success: None,
            on_failure: None,
            timeout: Duration::from_secs(120),
        }
    }
}
