# tools/lib/virtio-testbed.sh: the virtio-vsock testbed of tools/vm-virtio and
# tools/bench-virtio, sourced by both (not run by itself): QEMU (TCG) with
# vhost-user-vsock-pci, served on the host by vhost-device-vsock 0.3.0, and a
# Debian bookworm 6.1 cloud guest (6.12 sends packets over 32 KiB as descriptor
# chains that vhost-device-vsock 0.3.0 rejects).
# The sourcing script sets `repo` and `prog` (for messages) and `set -euo pipefail`.

virtio_target=x86_64-unknown-linux-gnu
virtio_vmdir=$repo/target/vm-virtio
virtio_devroot=$repo/target/virtio/vhost-device-vsock
virtio_device=$virtio_devroot/bin/vhost-device-vsock
virtio_modules="virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport"
virtio_mem=512

# The host packages and the 6.1 kernel with the virtio vsock modules (tools/vm-setup, into
# target/vm-virtio/), and vhost-device-vsock by `cargo install`, cached under target/virtio/.
virtio_setup() {
    VM_DIR=$virtio_vmdir VM_KERNEL_SERIES=6.1 VM_MODULES=$virtio_modules "$repo/tools/vm-setup"
    if [[ ! -x $virtio_device ]]; then
        printf '%s: %s\n' "$prog" "cargo install vhost-device-vsock 0.3.0 (into $virtio_devroot)"
        cargo install --quiet --locked vhost-device-vsock --version 0.3.0 --root "$virtio_devroot" \
            || { printf '%s: error: %s\n' "$prog" "cargo install vhost-device-vsock failed" >&2; exit 2; }
    fi
}

# Starts the device for guest CID 3 in folder $1 (vhost.sock for QEMU, vm.sock and
# vm.sock_<port> for the host side, device.log); sets virtio_device_pid. Waits for its socket.
virtio_start_device() {
    local work=$1
    "$virtio_device" --guest-cid 3 --socket "$work/vhost.sock" --uds-path "$work/vm.sock" >"$work/device.log" 2>&1 &
    virtio_device_pid=$!
    disown "$virtio_device_pid" # a test kills it: no job notice for that
    for _ in $(seq 100); do [[ -S $work/vhost.sock ]] && break; sleep 0.1; done
    [[ -S $work/vhost.sock ]] || {
        cat "$work/device.log" >&2
        printf '%s: error: %s\n' "$prog" "vhost-device-vsock did not create its socket" >&2
        exit 2
    }
}

# QEMU's arguments for the device in folder $1 (shared memory for vhost-user, the
# vhost-user-vsock-pci device), for tools/vm-run's VM_TEST_QEMU_ARGS.
virtio_qemu_args() {
    local work=$1
    printf '%s' "-object memory-backend-memfd,id=mem,size=${virtio_mem}M,share=on -numa node,memdev=mem"
    printf '%s' " -chardev socket,id=vhost,path=$work/vhost.sock -device vhost-user-vsock-pci,chardev=vhost"
}
