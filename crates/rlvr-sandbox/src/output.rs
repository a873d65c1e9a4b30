//! Capped output buffers for the WASM guest's stdout and stderr.
//!
//! wasmtime-wasi's `MemoryOutputPipe` makes writes past its capacity fail with an opaque error.
//! [`CappedPipe`] keeps the first `cap` bytes, records that more was attempted, and then stops
//! the guest (a trap), so that an output flood ends at once as `output_limit` instead of
//! burning its whole time budget.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamError};

#[derive(Debug, Default)]
struct State {
    buf: Vec<u8>,
    overflowed: bool,
}

/// An in-memory output sink keeping at most `cap` bytes.
#[derive(Debug, Clone)]
pub struct CappedPipe {
    cap: usize,
    state: Arc<Mutex<State>>,
}

impl CappedPipe {
    /// A pipe keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        CappedPipe {
            cap,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `bytes`; returns false (and keeps only what fits) when the cap is exceeded.
    pub fn push(&self, bytes: &[u8]) -> bool {
        let mut st = self.lock();
        let room = self.cap.saturating_sub(st.buf.len());
        if bytes.len() > room {
            st.buf.extend_from_slice(&bytes[..room]);
            st.overflowed = true;
            false
        } else {
            st.buf.extend_from_slice(bytes);
            true
        }
    }

    /// Whether more than `cap` bytes were written.
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// The kept bytes as lossy UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock().buf).into_owned()
    }
}

/// The error a guest write gets once the cap is exceeded.
#[derive(Debug, thiserror::Error)]
#[error("output limit exceeded")]
pub struct OutputLimitExceeded;

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        if self.push(&bytes) {
            Ok(())
        } else {
            Err(StreamError::Trap(wasmtime::Error::new(OutputLimitExceeded)))
        }
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always accept a full chunk: the overflow is detected (and the guest stopped) in
        // `write`, so that the kept prefix is exactly `cap` bytes.
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.push(buf) {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(std::io::Error::other(OutputLimitExceeded)))
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_exactly_the_cap() {
        let p = CappedPipe::new(5);
        assert!(p.push(b"abc"));
        assert!(!p.overflowed());
        assert!(!p.push(b"defg"));
        assert!(p.overflowed());
        assert_eq!(p.text(), "abcde");
        assert!(!p.push(b"x"));
        assert_eq!(p.text(), "abcde");
    }
}
