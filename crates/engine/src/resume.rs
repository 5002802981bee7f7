//! Where a run stopped inside a flow, kept in the flow's state so the run's
//! continuation (another invocation, maybe another process) reads on from
//! the next page instead of the first, and goes on with the file it was
//! writing. Only continuations of the run that saved it use it; it is
//! cleared when the flow ends.

use std::collections::BTreeMap;

use serde_json::Value;

use super::substream::SourcePosition;
use ferry_core::ports::Upload;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Resume {
    /// The run that saved it.
    pub run: String,
    /// The source's position after the last page the checkpoint covers.
    pub source: SourcePosition,
    /// A file target: the file so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileResume>,
}

/// An unfinished file: its durable point, what its writer had decided
/// (CSV columns, the header), and the cursor its records reached, which is
/// saved as the flow's cursor only once the file is committed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FileResume {
    pub upload: Upload,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    #[serde(default)]
    pub header_written: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partitions: BTreeMap<String, Value>,
}
