//! A connection whose answers are bounded in bytes: what the server sends after each request counts against a
//! budget that the next request renews. A server that streams without end (an endless `INFO`, a result that
//! never finishes) is cut off there, instead of growing the operator's memory, which every tenant shares.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The error a cut-off read carries (inside an `io::Error`); see [`too_large`].
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
#[error("answer larger than {limit} bytes")]
pub struct AnswerTooLarge {
    pub limit: usize,
}

/// `inner` with answers of at most `limit` bytes (counted on the wire: under TLS, with its framing).
#[derive(Debug)]
pub struct Bounded<S> {
    inner: S,
    limit: usize,
    /// Bytes read since the last request was written.
    read: usize,
}

impl<S> Bounded<S> {
    pub fn new(inner: S, limit: usize) -> Self {
        Self { inner, limit, read: 0 }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.read >= self.limit {
            return Poll::Ready(Err(io::Error::other(AnswerTooLarge { limit: self.limit })));
        }
        // Never read past the budget: the answer is cut at the limit, not at the end of the caller's buffer.
        let room = self.limit - self.read;
        if buf.remaining() <= room {
            let before = buf.filled().len();
            let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
            self.read += buf.filled().len() - before;
            return polled;
        }
        // Only near the limit: a smaller buffer of our own, copied over.
        let mut own = vec![0; room];
        let mut part = ReadBuf::new(&mut own);
        let polled = Pin::new(&mut self.inner).poll_read(cx, &mut part);
        let n = part.filled().len();
        buf.put_slice(part.filled());
        self.read += n;
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.read = 0;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The limit of a cut-off answer somewhere in `error`'s chain of sources. Clients wrap the I/O error in their
/// own; some keep it as a source, some only its text, so the text is read too.
pub fn too_large(error: &(dyn std::error::Error + 'static)) -> Option<usize> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(cut) = e.downcast_ref::<AnswerTooLarge>() {
            return Some(cut.limit);
        }
        if let Some(cut) = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()?.downcast_ref::<AnswerTooLarge>()) {
            return Some(cut.limit);
        }
        if let Some(limit) = limit_in_text(&e.to_string()) {
            return Some(limit);
        }
        next = e.source();
    }
    None
}

fn limit_in_text(text: &str) -> Option<usize> {
    let rest = &text[text.find("answer larger than ")? + "answer larger than ".len()..];
    rest.split(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn each_request_renews_the_budget_and_a_longer_answer_is_cut_at_the_limit() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut bounded = Bounded::new(client, 100);
        bounded.write_all(b"ask").await.unwrap();
        server.write_all(&[1; 80]).await.unwrap();
        let mut buf = [0; 80];
        bounded.read_exact(&mut buf).await.unwrap();
        // A new request: 80 more bytes fit again.
        bounded.write_all(b"again").await.unwrap();
        server.write_all(&[2; 150]).await.unwrap();
        let mut got = Vec::new();
        let error = bounded.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(got.len(), 100, "read up to the limit, not past it");
        assert_eq!(too_large(&error), Some(100));
        assert_eq!(error.to_string(), "answer larger than 100 bytes");
    }

    #[test]
    fn the_limit_is_found_in_a_wrapped_error_or_its_text() {
        #[derive(Debug, thiserror::Error)]
        #[error("query failed: {0}")]
        struct Wrapped(String);
        assert_eq!(too_large(&Wrapped("answer larger than 512 bytes".into())), Some(512));
        assert_eq!(too_large(&Wrapped("connection reset".into())), None);
        let io = io::Error::other(AnswerTooLarge { limit: 7 });
        assert_eq!(too_large(&io), Some(7));
    }
}
