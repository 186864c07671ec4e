//! [`ToolError`]: what stops a command, printed as one line.

use std::fmt;

use crate::exit::Status;

/// A command failed before or while serving: the message (operation, endpoint, errno) and
/// the exit status it maps to.
///
/// ```
/// use vsock_tool::{Status, ToolError};
/// let e = ToolError::usage("bad endpoint 'x' for TARGET: no scheme");
/// assert_eq!(e.status(), Status::Usage);
/// assert_eq!(e.to_string(), "bad endpoint 'x' for TARGET: no scheme");
/// ```
#[derive(Debug)]
pub struct ToolError {
    message: String,
    status: Status,
}

impl ToolError {
    /// A bad command-line value (exit status 2).
    pub fn usage(message: impl Into<String>) -> ToolError {
        ToolError {
            message: message.into(),
            status: Status::Usage,
        }
    }

    /// A failure to set up (connect, listen, engine): exit status 1.
    pub fn setup(message: impl fmt::Display) -> ToolError {
        ToolError {
            message: message.to_string(),
            status: Status::Failed,
        }
    }

    /// The exit status this error ends the process with.
    pub fn status(&self) -> Status {
        self.status
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}

impl From<uring_vsock::Error> for ToolError {
    fn from(e: uring_vsock::Error) -> ToolError {
        ToolError::setup(e)
    }
}
