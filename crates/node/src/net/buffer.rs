//! Connection buffers and the per-worker pool they come from.
//!
//! A connection holds an input buffer only while it has unprocessed bytes and an output buffer
//! only while it has unsent bytes; otherwise both are back in the pool, so idle connections cost
//! no buffer memory. The pool keeps a bounded number of standard-size buffers; grown or excess
//! buffers are freed, and so is every free buffer while the node is over its memory budget.

use avp_proto::{MAX_FRAME_LEN, MAX_TEXT_FRAME_LEN};

/// Size of a pooled buffer.
pub const STANDARD_CAPACITY: usize = 16 * 1024;
/// Largest input buffer: one maximal frame in either wire form.
pub const MAX_INPUT_CAPACITY: usize = if MAX_TEXT_FRAME_LEN > MAX_FRAME_LEN {
    MAX_TEXT_FRAME_LEN
} else {
    MAX_FRAME_LEN
};

/// Received bytes awaiting decoding: `data[start..end]` is unprocessed.
#[derive(Debug)]
pub struct InputBuffer {
    data: Box<[u8]>,
    // INVARIANT: start <= end <= data.len().
    start: usize,
    end: usize,
}

impl InputBuffer {
    fn with_capacity(capacity: usize) -> Self {
        InputBuffer {
            data: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The unprocessed bytes.
    #[inline]
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Bytes of memory the buffer takes.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// True when no unprocessed bytes remain.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` bytes at the front as processed.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Records that `n` bytes were written into [`InputBuffer::spare_mut`].
    #[inline]
    pub fn commit(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.data.len());
        self.end += n;
    }

    /// Free space to read into. Moves unprocessed bytes to the front when the tail is full,
    /// and, if `grow`, grows the buffer (up to [`MAX_INPUT_CAPACITY`]) when even that leaves no
    /// room, so a partial frame always fits. Empty when the buffer is full and may not grow.
    pub fn spare_mut(&mut self, grow: bool) -> &mut [u8] {
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if grow && self.end == self.data.len() && self.data.len() < MAX_INPUT_CAPACITY {
            let mut grown = vec![0; (self.data.len() * 2).min(MAX_INPUT_CAPACITY)];
            grown[..self.end].copy_from_slice(&self.data[..self.end]);
            self.data = grown.into_boxed_slice();
        }
        &mut self.data[self.end..]
    }
}

/// Answers awaiting the socket: `data[written..]` is unsent.
#[derive(Debug, Default)]
pub struct OutputBuffer {
    /// The answers, oldest first.
    pub data: Vec<u8>,
    /// Bytes of `data` already written. INVARIANT: `written <= data.len()`.
    pub written: usize,
}

impl OutputBuffer {
    /// Bytes not written yet.
    pub fn pending(&self) -> usize {
        self.data.len() - self.written
    }

    /// Drops the written bytes once they are at least as many as the unsent ones, so that a
    /// peer that reads slowly but never lets the output drain does not grow it by what it did
    /// read; moving the rest costs no more than what was sent before it.
    pub fn compact(&mut self) {
        if self.written >= self.pending() {
            self.data.drain(..self.written);
            self.written = 0;
        }
    }
}

/// Per-worker free lists of input and output buffers. They are boxed so that a connection
/// without buffers holds two pointers, not two buffers' headers.
#[derive(Debug)]
// The pool keeps the boxes connections hold, to hand them out again without a new allocation.
#[allow(clippy::vec_box)]
pub struct BufferPool {
    inputs: Vec<Box<InputBuffer>>,
    outputs: Vec<Box<OutputBuffer>>,
    max_pooled: usize,
    /// Bytes of the free buffers kept. INVARIANT: the capacities of `inputs` and `outputs`.
    pooled: usize,
    /// Free buffers are kept for reuse; off (they are freed) while the node is over its
    /// memory budget.
    keep: bool,
}

impl BufferPool {
    /// A pool that keeps at most `max_pooled` free buffers of each kind.
    pub fn new(max_pooled: usize) -> Self {
        BufferPool {
            inputs: Vec::new(),
            outputs: Vec::new(),
            max_pooled,
            pooled: 0,
            keep: true,
        }
    }

    /// Bytes of the free buffers the pool keeps.
    pub fn pooled_bytes(&self) -> usize {
        self.pooled
    }

    /// Keeps free buffers for reuse, or (`false`) frees them now and from now on.
    pub fn keep_free_buffers(&mut self, keep: bool) {
        self.keep = keep;
        if !keep {
            self.inputs = Vec::new();
            self.outputs = Vec::new();
            self.pooled = 0;
        }
    }

    /// An empty input buffer.
    #[inline]
    pub fn take_input(&mut self) -> Box<InputBuffer> {
        match self.inputs.pop() {
            Some(buf) => {
                self.pooled -= buf.capacity();
                buf
            }
            None => Box::new(InputBuffer::with_capacity(STANDARD_CAPACITY)),
        }
    }

    /// Returns a drained input buffer; grown buffers are freed.
    #[inline]
    pub fn give_input(&mut self, buf: Box<InputBuffer>) {
        debug_assert!(buf.is_empty());
        if self.keep && buf.data.len() == STANDARD_CAPACITY && self.inputs.len() < self.max_pooled {
            self.pooled += buf.capacity();
            self.inputs.push(buf);
        }
    }

    /// An empty output buffer.
    #[inline]
    pub fn take_output(&mut self) -> Box<OutputBuffer> {
        match self.outputs.pop() {
            Some(buf) => {
                self.pooled -= buf.data.capacity();
                buf
            }
            None => Box::new(OutputBuffer {
                data: Vec::with_capacity(STANDARD_CAPACITY),
                written: 0,
            }),
        }
    }

    /// Returns an output buffer; buffers that grew past four times the standard size are freed.
    #[inline]
    pub fn give_output(&mut self, mut buf: Box<OutputBuffer>) {
        if self.keep
            && buf.data.capacity() <= 4 * STANDARD_CAPACITY
            && self.outputs.len() < self.max_pooled
        {
            buf.data.clear();
            buf.written = 0;
            self.pooled += buf.data.capacity();
            self.outputs.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_then_grows_for_a_large_partial_frame() {
        let mut pool = BufferPool::new(4);
        let mut buf = pool.take_input();
        let n = buf.spare_mut(true).len();
        assert_eq!(n, STANDARD_CAPACITY);
        buf.commit(n);
        buf.consume(10);
        assert_eq!(
            buf.spare_mut(true).len(),
            10,
            "compaction frees the consumed prefix"
        );
        buf.commit(10);
        assert_eq!(buf.filled().len(), STANDARD_CAPACITY);
        assert_eq!(
            buf.spare_mut(true).len(),
            STANDARD_CAPACITY,
            "a full buffer doubles"
        );
        loop {
            let n = buf.spare_mut(true).len();
            if n == 0 {
                break;
            }
            buf.commit(n);
        }
        assert_eq!(
            buf.filled().len(),
            MAX_INPUT_CAPACITY,
            "growth stops at one maximal frame"
        );
        buf.consume(1);
        assert_eq!(buf.spare_mut(false).len(), 1, "compaction without growth");
        let len = buf.filled().len();
        buf.consume(len);
        pool.give_input(buf);
        assert!(pool.inputs.is_empty(), "grown buffers are not pooled");
    }

    #[test]
    fn pool_is_bounded() {
        let mut pool = BufferPool::new(1);
        let (a, b) = (pool.take_output(), pool.take_output());
        pool.give_output(a);
        pool.give_output(b);
        assert_eq!(pool.outputs.len(), 1);
        assert_eq!(pool.pooled_bytes(), STANDARD_CAPACITY);
        let c = pool.take_output();
        assert_eq!(pool.pooled_bytes(), 0);
        pool.keep_free_buffers(false);
        pool.give_output(c);
        assert_eq!(pool.pooled_bytes(), 0, "not kept over the budget");
    }
}
