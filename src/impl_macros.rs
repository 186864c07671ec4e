//! Trait impls shared by the listener and stream types of every path: each wraps a
//! `socket: socket2::Socket` field, and these delegate to it, so the paths stay independent
//! without repeating the same delegation.

/// `AsFd`, `AsRawFd`, `IntoRawFd` and `From<$ty> for OwnedFd`, through the `socket` field.
macro_rules! impl_fd_traits {
    ($ty:ty) => {
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.socket)
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.socket)
            }
        }

        impl std::os::fd::IntoRawFd for $ty {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                std::os::fd::IntoRawFd::into_raw_fd(self.socket)
            }
        }

        impl From<$ty> for std::os::fd::OwnedFd {
            fn from(value: $ty) -> std::os::fd::OwnedFd {
                value.socket.into()
            }
        }
    };
}

/// `Read` and `Write` for `$ty` and `&$ty`, through the `socket` field. Writes pass
/// `MSG_NOSIGNAL`, so a closed peer is an `EPIPE` error and never a `SIGPIPE`.
macro_rules! impl_stream_io {
    ($ty:ty) => {
        impl std::io::Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::io::Read::read(&mut &self.socket, buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                std::io::Read::read_vectored(&mut &self.socket, bufs)
            }
        }

        impl std::io::Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.socket.send_with_flags(buf, libc::MSG_NOSIGNAL)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.socket
                    .send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::io::Read::read(&mut &*self, buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                std::io::Read::read_vectored(&mut &*self, bufs)
            }
        }

        impl std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::io::Write::write(&mut &*self, buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                std::io::Write::write_vectored(&mut &*self, bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}

pub(crate) use {impl_fd_traits, impl_stream_io};
