//! `Listener::incoming()` when the process is out of fds: the accept's `EMFILE` is an item
//! (a typed error naming the operation and endpoint, not a panic or the stream's end), and
//! once fds are free the same queued connection comes out, after the pause that keeps
//! consumers such as tonic from spinning (the pause's length is not asserted: that would be
//! timing). Its own binary: it lowers the process's `RLIMIT_NOFILE`.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uring_vsock::tokio::Listener;
use uring_vsock::Endpoint;
use util::{checksum, open_fds, pattern};

/// Sets the soft open-file limit; returns the old one.
fn set_nofile_soft(n: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit through valid pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let old = lim.rlim_cur;
        lim.rlim_cur = n;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        old
    }
}

/// The next item of a `futures_core::Stream`, under the watchdog.
async fn next<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    let item = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx));
    tokio::time::timeout(util::WATCHDOG, item)
        .await
        .expect("an item from incoming() within the watchdog")
}

#[tokio::test(flavor = "current_thread")]
async fn incoming_yields_emfile_then_the_connection_once_fds_are_free() {
    let listener = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap()).expect("bind");
    let ep = listener.local_addr().unwrap();
    let Endpoint::Tcp(addr) = ep else {
        unreachable!()
    };
    let mut incoming = listener.incoming();
    // The handshake completes in the kernel: the connection waits in the backlog.
    let mut client = TcpStream::connect(addr).expect("connect");

    let old = set_nofile_soft(open_fds() as u64 + 8);
    let mut hogs = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hogs.push(f);
        assert!(hogs.len() < 64, "the fd limit does not bite");
    }
    let err = next(&mut incoming)
        .await
        .expect("incoming never ends")
        .expect_err("no fd for the accepted socket");
    drop(hogs);
    set_nofile_soft(old);
    // An io::Error (what tonic's accept loop classifies), of the kernel's kind, holding our
    // Error with the operation, endpoint and errno.
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<uring_vsock::Error>())
        .unwrap_or_else(|| panic!("no uring_vsock::Error inside {err:?}"));
    assert_eq!(inner.raw_os_error(), Some(libc::EMFILE), "{err}");
    assert_eq!(inner.op(), "accept");
    assert_eq!(inner.endpoint(), Some(&ep));

    let mut server = next(&mut incoming)
        .await
        .expect("incoming never ends")
        .expect("the queued connection, now that fds are free");
    assert_eq!(
        server.peer_addr().unwrap(),
        client.local_addr().unwrap().into()
    );
    let data = pattern(7, 64 * 1024);
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        client.write_all(&sent).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        back
    });
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    server.write_all(&got).await.unwrap();
    server.shutdown().await.unwrap();
    let back = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    assert_eq!((got.len(), checksum(&got)), (data.len(), checksum(&data)));
    assert_eq!((back.len(), checksum(&back)), (data.len(), checksum(&data)));
}
