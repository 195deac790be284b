//! A kernel pipe that moves bytes between two sockets without copying them through
//! user space (Linux `splice(2)`, through `nix`'s safe wrappers).
//!
//! The relay of a busy local stream splices socket → pipe on one side and pipe →
//! socket on the other: the pages the sender's kernel filled are handed on by
//! reference, so the server no longer copies every byte in and out.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};

/// Size asked for a new pipe (the kernel may grant less; `/proc/sys/fs/pipe-max-size`
/// is 1 MiB by default).
const WANTED_SIZE: usize = 1024 * 1024;

/// A pipe smaller than this is not worth splicing through.
const MIN_SIZE: usize = 64 * 1024;

/// The two ends of a non-blocking kernel pipe.
#[derive(Debug)]
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// bytes the pipe holds at most (its capacity as the kernel reports it)
    size: usize,
}

fn errno(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

impl Pipe {
    /// A new non-blocking pipe, enlarged towards 1 MiB.
    ///
    /// # Errors
    /// The pipe cannot be created (e.g. out of file descriptors) or the kernel
    /// grants less than 64 KiB.
    pub(crate) fn new() -> io::Result<Self> {
        let (read, write) =
            nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(errno)?;
        // A failed enlargement (per-user pipe limits) leaves the default size.
        let wanted = i32::try_from(WANTED_SIZE).unwrap_or(i32::MAX);
        let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(wanted));
        let size = fcntl(&write, FcntlArg::F_GETPIPE_SZ).map_err(errno)?;
        let size = usize::try_from(size).unwrap_or(0);
        if size < MIN_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel grants only a small pipe",
            ));
        }
        Ok(Self { read, write, size })
    }

    /// Bytes the pipe holds at most.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Moves up to `len` bytes from `from` (a socket) into the pipe without waiting.
    /// `Ok(0)` means end of stream on `from`.
    ///
    /// # Errors
    /// `WouldBlock` when `from` has nothing to read or the pipe is full; other errors
    /// of `splice(2)`.
    pub(crate) fn fill_from(&self, from: impl AsFd, len: usize) -> io::Result<usize> {
        splice(from, None, &self.write, None, len, flags()).map_err(errno)
    }

    /// Moves up to `len` bytes from the pipe into `to` (a socket) without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when `to` has no room; other errors of `splice(2)` (e.g.
    /// `BrokenPipe` when the peer is gone).
    pub(crate) fn drain_into(&self, to: impl AsFd, len: usize) -> io::Result<usize> {
        splice(&self.read, None, to, None, len, flags()).map_err(errno)
    }

    /// Copies up to `buf.len()` bytes out of the pipe (for readers that are not a
    /// socket).
    ///
    /// # Errors
    /// `WouldBlock` when the pipe is empty.
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        nix::unistd::read(&self.read, buf).map_err(errno)
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_go_through_a_socket_pair() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        let listener2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(listener2.local_addr().unwrap()).unwrap();
        let (mut d, _) = listener2.accept().unwrap();
        let pipe = Pipe::new().unwrap();
        assert!(pipe.size() >= MIN_SIZE);
        a.write_all(b"spliced bytes").unwrap();
        a.shutdown(std::net::Shutdown::Write).unwrap();
        let mut moved = 0;
        loop {
            match pipe.fill_from(&b, 1024) {
                Ok(0) => break,
                Ok(n) => moved += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(moved, 13);
        assert_eq!(pipe.drain_into(&c, 5).unwrap(), 5);
        let mut rest = [0u8; 16];
        assert_eq!(pipe.read(&mut rest).unwrap(), 8);
        assert_eq!(&rest[..8], b"ed bytes");
        let mut got = [0u8; 5];
        d.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"splic");
        let err = pipe.read(&mut rest).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
}
