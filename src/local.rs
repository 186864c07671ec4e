//! What this machine is on vsock: its CID, and whether the loopback transport exists.

use std::fs::File;
use std::path::Path;

use crate::{Error, Result};

/// This machine's vsock context ID, from the `IOCTL_VM_SOCKETS_GET_LOCAL_CID` ioctl on
/// `/dev/vsock`. Sends nothing.
///
/// # Errors
///
/// `local_cid /dev/vsock: No such file or directory` when the device is missing (no vsock
/// driver loaded), `Permission denied` when the caller may not open it, or the ioctl's error.
///
/// # Examples
///
/// ```
/// match uring_vsock::local_cid() {
///     Ok(cid) => println!("local CID {cid}"),
///     Err(e) => println!("no vsock here: {e}"),
/// }
/// ```
pub fn local_cid() -> Result<u32> {
    let path = "/dev/vsock";
    let op_err = |e| Error::new("local_cid /dev/vsock", None, e);
    let dev = File::open(path).map_err(op_err)?;
    crate::sys::local_cid(&dev).map_err(op_err)
}

/// Whether the kernel has the vsock loopback transport (`vsock_loopback`), so that
/// [`VsockAddr::CID_LOCAL`](crate::VsockAddr::CID_LOCAL) reaches this machine. Looks at
/// `/sys/module` only: sends nothing.
///
/// Code that picks a vsock peer by default should use CID 1 only when this is true.
///
/// ```
/// if !uring_vsock::loopback_available() {
///     println!("no vsock loopback: use unix or tcp to test");
/// }
/// ```
pub fn loopback_available() -> bool {
    Path::new("/sys/module/vsock_loopback").exists()
}
