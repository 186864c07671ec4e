//! `info`: what this machine has for vsock — its CID, the transports loaded, the io_uring
//! features the engine would use. Opens `/dev/vsock` for the CID ioctl and builds one ring;
//! connects nothing, sends nothing.

use std::io::{self, Write};
use std::path::Path;

use uring_vsock::uring::Engine;

use crate::error::ToolError;
use crate::exit::Status;

/// The vsock transport modules, and what each carries.
pub const TRANSPORTS: [(&str, &str); 5] = [
    ("vsock_loopback", "loopback (CID 1)"),
    ("vmw_vsock_virtio_transport", "virtio guest"),
    ("vhost_vsock", "vhost host"),
    ("hv_sock", "Hyper-V"),
    ("vmw_vsock_vmci_transport", "VMware VMCI"),
];

/// The transports of [`TRANSPORTS`] whose module is loaded (or built in), seen in
/// `sysfs` (`/sys/module/NAME`).
pub fn loaded_transports(sys_module: &Path) -> Vec<&'static str> {
    TRANSPORTS
        .iter()
        .filter(|(name, _)| sys_module.join(name).exists())
        .map(|(name, _)| *name)
        .collect()
}

/// Writes the report to `out`.
///
/// # Errors
///
/// Writing `out` failed.
///
/// # Examples
///
/// ```
/// let mut out = Vec::new();
/// vsock_tool::info::run(&mut out).unwrap();
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("local CID:") && text.contains("io_uring:"), "{text}");
/// ```
pub fn run(out: &mut impl Write) -> Result<Status, ToolError> {
    report(out).map_err(|e| ToolError::setup(format!("write report: {e}")))?;
    Ok(Status::Clean)
}

fn report(out: &mut impl Write) -> io::Result<()> {
    match uring_vsock::local_cid() {
        Ok(cid) => writeln!(out, "local CID: {cid}")?,
        Err(e) => writeln!(out, "local CID: none ({e})")?,
    }
    let loaded = loaded_transports(Path::new("/sys/module"));
    for (name, what) in TRANSPORTS {
        let state = if loaded.contains(&name) {
            "loaded"
        } else {
            "not loaded"
        };
        writeln!(out, "transport {name} ({what}): {state}")?;
    }
    match Engine::builder().workers(1).build() {
        Ok(engine) => writeln!(out, "io_uring: {}", engine.features())?,
        Err(e) => writeln!(out, "io_uring: unavailable ({e})")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_are_read_from_the_module_directory() {
        let dir = std::env::temp_dir().join(format!("vsock-tool-info-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("vhost_vsock")).unwrap();
        std::fs::create_dir_all(dir.join("vsock_loopback")).unwrap();
        assert_eq!(loaded_transports(&dir), ["vsock_loopback", "vhost_vsock"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
