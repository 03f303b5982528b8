//! HTTP/2 frames (RFC 9113, section 4 and 6): the 9-octet frame header, the frames the
//! router reads from clients, and the frames it writes, straight into the connection's
//! output buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// What a client sends first.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(crate) const HEAD_LEN: usize = 9;
/// The largest frame payload either side may send before SETTINGS say otherwise; the
/// router never raises its own.
pub(crate) const DEFAULT_MAX_FRAME: usize = 16_384;
/// Flow-control windows start at this (RFC 9113, 6.9.2) and may not pass `MAX_WINDOW`.
pub(crate) const DEFAULT_WINDOW: i64 = 65_535;
pub(crate) const MAX_WINDOW: i64 = (1 << 31) - 1;

pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const PRIORITY: u8 = 0x2;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PUSH_PROMISE: u8 = 0x5;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const WINDOW_UPDATE: u8 = 0x8;
pub(crate) const CONTINUATION: u8 = 0x9;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;
pub(crate) const PADDED: u8 = 0x8;
pub(crate) const PRIORITY_FLAG: u8 = 0x20;

pub(crate) const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub(crate) const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub(crate) const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub(crate) const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub(crate) const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// Error codes (RFC 9113, section 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reason(pub(crate) u32);

impl Reason {
    pub(crate) const NO_ERROR: Reason = Reason(0x0);
    pub(crate) const PROTOCOL_ERROR: Reason = Reason(0x1);
    pub(crate) const INTERNAL_ERROR: Reason = Reason(0x2);
    pub(crate) const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    pub(crate) const STREAM_CLOSED: Reason = Reason(0x5);
    pub(crate) const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    pub(crate) const REFUSED_STREAM: Reason = Reason(0x7);
    #[cfg(test)] // Only clients send it.
    pub(crate) const CANCEL: Reason = Reason(0x8);
    pub(crate) const COMPRESSION_ERROR: Reason = Reason(0x9);
    pub(crate) const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            other => return write!(f, "error code {other:#x}"),
        };
        f.write_str(name)
    }
}

impl std::error::Error for Reason {}

/// A frame's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) len: usize,
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
}

impl Head {
    pub(crate) fn parse(b: &[u8]) -> Head {
        Head {
            len: (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize,
            kind: b[3],
            flags: b[4],
            // The reserved bit is ignored on receipt.
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Takes the padding off a DATA or HEADERS payload (when PADDED is set).
pub(crate) fn unpad(head: &Head, payload: &mut Bytes) -> Result<(), Reason> {
    if !head.has(PADDED) {
        return Ok(());
    }
    if payload.is_empty() {
        return Err(Reason::FRAME_SIZE_ERROR);
    }
    let pad = payload.get_u8() as usize;
    if pad > payload.len() {
        return Err(Reason::PROTOCOL_ERROR);
    }
    payload.truncate(payload.len() - pad);
    Ok(())
}

pub(crate) fn put_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    out.put_slice(&head_bytes(len, kind, flags, stream));
}

fn head_bytes(len: usize, kind: u8, flags: u8, stream: u32) -> [u8; HEAD_LEN] {
    let [_, l1, l2, l3] = (len as u32).to_be_bytes();
    let [s0, s1, s2, s3] = stream.to_be_bytes();
    [l1, l2, l3, kind, flags, s0, s1, s2, s3]
}

pub(crate) fn put_settings(out: &mut BytesMut, settings: &[(u16, u32)]) {
    put_head(out, settings.len() * 6, SETTINGS, 0, 0);
    for &(id, value) in settings {
        out.put_u16(id);
        out.put_u32(value);
    }
}

pub(crate) fn put_window_update(out: &mut BytesMut, stream: u32, increment: u32) {
    put_head(out, 4, WINDOW_UPDATE, 0, stream);
    out.put_u32(increment);
}

pub(crate) fn put_rst_stream(out: &mut BytesMut, stream: u32, reason: Reason) {
    put_head(out, 4, RST_STREAM, 0, stream);
    out.put_u32(reason.0);
}

pub(crate) fn put_goaway(out: &mut BytesMut, last_stream: u32, reason: Reason) {
    put_head(out, 8, GOAWAY, 0, 0);
    out.put_u32(last_stream);
    out.put_u32(reason.0);
}

pub(crate) fn put_data(out: &mut BytesMut, stream: u32, data: &[u8], end_stream: bool) {
    put_head(
        out,
        data.len(),
        DATA,
        if end_stream { END_STREAM } else { 0 },
        stream,
    );
    out.put_slice(data);
}

/// Writes a header block as HEADERS and, past the client's largest frame, CONTINUATION
/// frames. The block is encoded into `out` first, after room for the HEADERS frame's
/// header, so the usual one-frame case moves nothing.
pub(crate) fn put_headers(
    out: &mut BytesMut,
    stream: u32,
    end_stream: bool,
    max_frame: usize,
    encode: impl FnOnce(&mut BytesMut),
) {
    let start = out.len();
    out.put_bytes(0, HEAD_LEN);
    encode(out);
    let block_len = out.len() - start - HEAD_LEN;
    let stream_flag = if end_stream { END_STREAM } else { 0 };
    if block_len <= max_frame {
        let head = head_bytes(block_len, HEADERS, stream_flag | END_HEADERS, stream);
        out[start..start + HEAD_LEN].copy_from_slice(&head);
        return;
    }
    let block = out.split_off(start + HEAD_LEN).freeze();
    out.truncate(start);
    let mut chunks = block.chunks(max_frame).peekable();
    let mut kind = HEADERS;
    let mut flags = stream_flag;
    while let Some(chunk) = chunks.next() {
        if chunks.peek().is_none() {
            flags |= END_HEADERS;
        }
        put_head(out, chunk.len(), kind, flags, stream);
        out.put_slice(chunk);
        kind = CONTINUATION;
        flags = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_head_reads_back_as_written_without_the_reserved_bit() {
        let mut out = BytesMut::new();
        put_head(&mut out, 0x01_02_03, HEADERS, END_HEADERS | END_STREAM, 7);
        out[5] |= 0x80;
        let head = Head::parse(&out);
        assert_eq!(
            head,
            Head {
                len: 0x01_02_03,
                kind: HEADERS,
                flags: END_HEADERS | END_STREAM,
                stream: 7
            }
        );
        assert!(head.has(END_STREAM) && !head.has(PADDED));
    }

    #[test]
    fn padding_is_removed_and_too_much_of_it_refused() {
        let padded = Head {
            len: 0,
            kind: DATA,
            flags: PADDED,
            stream: 1,
        };
        let mut payload = Bytes::from_static(b"\x02abc\0\0");
        unpad(&padded, &mut payload).unwrap();
        assert_eq!(payload, "abc");
        let mut payload = Bytes::from_static(b"\x05abc");
        assert_eq!(unpad(&padded, &mut payload), Err(Reason::PROTOCOL_ERROR));
        let mut payload = Bytes::new();
        assert_eq!(unpad(&padded, &mut payload), Err(Reason::FRAME_SIZE_ERROR));
    }

    #[test]
    fn a_header_block_past_the_largest_frame_continues() {
        let mut out = BytesMut::from(&b"before"[..]);
        put_headers(&mut out, 3, true, 4, |out| out.put_slice(b"0123456789"));
        let frames = &out[6..];
        let first = Head::parse(frames);
        assert_eq!(
            (first.len, first.kind, first.flags),
            (4, HEADERS, END_STREAM)
        );
        let second = Head::parse(&frames[13..]);
        assert_eq!(
            (second.len, second.kind, second.flags),
            (4, CONTINUATION, 0)
        );
        let third = Head::parse(&frames[26..]);
        assert_eq!(
            (third.len, third.kind, third.flags),
            (2, CONTINUATION, END_HEADERS)
        );
        assert_eq!(&frames[35..], b"89");

        let mut out = BytesMut::new();
        put_headers(&mut out, 3, false, 16_384, |out| out.put_slice(b"ab"));
        let head = Head::parse(&out);
        assert_eq!((head.len, head.flags, head.stream), (2, END_HEADERS, 3));
        assert_eq!(&out[9..], b"ab");
    }
}
