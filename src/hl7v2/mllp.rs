//! MLLP (Minimal Lower Layer Protocol, release 1) framing over a byte
//! stream (plain TCP, or TLS over TCP): a message travels as
//! `0x0B <message> 0x1C 0x0D`.
//!
//! `Connection` turns the bytes of a stream into frames and back, whatever
//! the TCP segmentation: a frame split over several reads is assembled, and
//! several frames arriving in one read are returned one by one. Bytes
//! outside a frame (noise before the start byte) are discarded. A frame
//! longer than the configured maximum is an error: the caller answers it
//! and closes the connection, since the rest of the stream can no longer
//! be trusted.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};

/// Start of a frame (vertical tab).
pub const START: u8 = 0x0B;
/// End of a frame: file separator then carriage return.
pub const END: [u8; 2] = [0x1C, 0x0D];

/// What reading the next frame gave.
#[derive(Debug)]
pub enum Frame {
    /// A complete message (without the framing bytes).
    Message(Vec<u8>),
    /// The peer closed the connection between frames.
    Closed,
    /// The peer closed the connection inside a frame; nothing is
    /// acknowledged for the partial message.
    Truncated,
    /// The frame exceeds the maximum size; `head` holds its first bytes, as
    /// many as the maximum (logged as the rejected message; its MSH answers
    /// the rejection ACK).
    TooLarge { head: Vec<u8> },
}

/// Looks for one complete frame at the front of `buf`. Discards bytes
/// before a start byte. Returns the frame's content and consumes it.
pub fn parse_frame(buf: &mut BytesMut, max_size: usize) -> Option<Result<Vec<u8>, Vec<u8>>> {
    // Drop noise before the start byte.
    match buf.iter().position(|b| *b == START) {
        Some(0) => {}
        Some(n) => buf.advance(n),
        None => {
            buf.clear();
            return None;
        }
    }
    let body = &buf[1..];
    match body.windows(2).position(|w| w == END) {
        Some(end) if end <= max_size => {
            let message = body[..end].to_vec();
            buf.advance(1 + end + 2);
            Some(Ok(message))
        }
        Some(_) => Some(Err(body[..max_size].to_vec())),
        None if body.len() > max_size + 1 => Some(Err(body[..max_size].to_vec())),
        None => None,
    }
}

/// A connection speaking MLLP over any byte stream (`TcpStream`, or a TLS
/// stream over one).
pub struct Connection<S> {
    stream: BufWriter<S>,
    buffer: BytesMut,
    max_size: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S, max_size: usize) -> Connection<S> {
        Connection {
            stream: BufWriter::new(stream),
            buffer: BytesMut::with_capacity(8 * 1024),
            max_size,
        }
    }

    /// Reads the next frame, waiting for more bytes as needed.
    pub async fn read_frame(&mut self) -> std::io::Result<Frame> {
        loop {
            match parse_frame(&mut self.buffer, self.max_size) {
                Some(Ok(message)) => return Ok(Frame::Message(message)),
                Some(Err(head)) => return Ok(Frame::TooLarge { head }),
                None => {}
            }
            let read = match self.stream.read_buf(&mut self.buffer).await {
                Ok(n) => n,
                // TLS: the peer closed without close_notify, as many
                // senders do. MLLP frames carry their own end, so this is
                // the end of the stream (a cut frame is still `Truncated`).
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(e),
            };
            if read == 0 {
                return Ok(if self.buffer.contains(&START) {
                    Frame::Truncated
                } else {
                    Frame::Closed
                });
            }
        }
    }

    /// Whether bytes of a next frame are already buffered (a frame is in
    /// flight and should be answered before shutting down).
    pub fn has_pending(&self) -> bool {
        self.buffer.contains(&START)
    }

    /// Writes one framed message and flushes it.
    pub async fn write_frame(&mut self, message: &[u8]) -> std::io::Result<()> {
        self.stream.write_u8(START).await?;
        self.stream.write_all(message).await?;
        self.stream.write_all(&END).await?;
        self.stream.flush().await
    }

    /// Ends the connection cleanly: over TLS, a close_notify alert, then
    /// the end of the TCP stream.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.stream.shutdown().await
    }
}

/// Frames a message (for clients and tests).
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START);
    out.extend_from_slice(message);
    out.extend_from_slice(&END);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_partial_and_splits_coalesced_frames() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"\x0bMSH|a");
        assert!(parse_frame(&mut buf, 100).is_none());
        buf.extend_from_slice(b"\x1c");
        assert!(parse_frame(&mut buf, 100).is_none());
        buf.extend_from_slice(b"\r\x0bMSH|b\x1c\r\x0bMSH|c\x1c\r");
        assert_eq!(parse_frame(&mut buf, 100).unwrap().unwrap(), b"MSH|a");
        assert_eq!(parse_frame(&mut buf, 100).unwrap().unwrap(), b"MSH|b");
        assert_eq!(parse_frame(&mut buf, 100).unwrap().unwrap(), b"MSH|c");
        assert!(parse_frame(&mut buf, 100).is_none());
        assert!(buf.is_empty());
    }

    /// Gives `data`, then fails as a TLS stream closed without
    /// close_notify does.
    struct CutTls(&'static [u8]);

    impl AsyncRead for CutTls {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.0.is_empty() {
                let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no close_notify");
                return std::task::Poll::Ready(Err(eof));
            }
            buf.put_slice(self.0);
            self.0 = &[];
            std::task::Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for CutTls {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_close_without_close_notify_ends_the_stream() {
        let mut c = Connection::new(CutTls(b"\x0bMSH|a\x1c\r"), 100);
        assert!(matches!(c.read_frame().await.unwrap(), Frame::Message(m) if m == b"MSH|a"));
        assert!(matches!(c.read_frame().await.unwrap(), Frame::Closed));
        let mut c = Connection::new(CutTls(b"\x0bMSH|a"), 100);
        assert!(matches!(c.read_frame().await.unwrap(), Frame::Truncated));
    }

    #[test]
    fn drops_noise_and_refuses_oversize_frames() {
        let mut buf = BytesMut::from(&b"noise\r\n\x0bMSH|x\x1c\r"[..]);
        assert_eq!(parse_frame(&mut buf, 100).unwrap().unwrap(), b"MSH|x");
        let mut buf = BytesMut::from(&b"\x0bMSH|0123456789"[..]);
        assert_eq!(parse_frame(&mut buf, 8).unwrap().unwrap_err(), b"MSH|0123");
        let mut buf = BytesMut::from(&b"\x0bMSH|0123456789\x1c\r"[..]);
        assert!(parse_frame(&mut buf, 8).unwrap().is_err());
        let mut buf = BytesMut::from(&b"just noise"[..]);
        assert!(parse_frame(&mut buf, 8).is_none());
        assert!(buf.is_empty());
    }
}
