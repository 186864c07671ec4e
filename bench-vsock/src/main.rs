//! `bench-vsock`: placeholder until the harness lands (issue 4).
fn main() {}
