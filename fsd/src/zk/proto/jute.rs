//! Jute's binary encoding: the primitives and the [`Jute`] trait records implement.
//!
//! Everything is big-endian. `int` is 4 bytes, `long` 8, `boolean` 1 (any non-zero byte
//! reads as true, as Java's `DataInput.readBoolean` does). `buffer` and `ustring` are an
//! `int` length followed by that many bytes, with -1 meaning null; a `vector` is an `int`
//! count (-1 = null) followed by the elements.
//!
//! Records here are plain Rust values, so null reads as the empty value (`""`, empty
//! `Vec`); writers never emit null. A `ustring` that is not valid UTF-8 is decoded lossily,
//! as Java's `new String(bytes, UTF_8)` does, so a bad path reaches path validation (and
//! gets ZooKeeper's error code) instead of killing the connection.
//!
//! This module leaves record layouts to `records` and framing to `frame`.

use bytes::{Buf, BufMut};

use super::ProtoError;

/// Largest `buffer` or `ustring` accepted: ZooKeeper's `jute.maxbuffer` default (1 MiB)
/// plus the 1 KiB of slack its `BinaryInputArchive` allows on top.
pub(crate) const MAX_FIELD_LEN: usize = 1024 * 1024 + 1024;

/// Elements reserved up front when reading a vector; the rest grow as elements actually
/// decode, so a claimed count never turns into one large allocation.
const MAX_VECTOR_PREALLOC: usize = 1024;

/// A value with a jute encoding.
pub(crate) trait Jute: Sized {
    /// The fewest bytes an encoded value can take. Bounds how many elements a `vector` may
    /// claim for the bytes that remain, so it must never overstate.
    const MIN_WIRE_LEN: usize;

    /// Decodes one value from the front of `buf`.
    ///
    /// # Errors
    /// [`ProtoError`] when `buf` is too short or holds an invalid length.
    fn read<B: Buf>(buf: &mut B) -> Result<Self, ProtoError>;

    /// Appends the encoding of `self` to `out`.
    fn write<B: BufMut>(&self, out: &mut B);
}

fn ensure<B: Buf>(buf: &B, needed: usize, what: &'static str) -> Result<(), ProtoError> {
    let remaining = buf.remaining();
    if remaining < needed {
        return Err(ProtoError::Truncated {
            what,
            needed,
            remaining,
        });
    }
    Ok(())
}

/// Reads an `int`.
pub(crate) fn read_int<B: Buf>(buf: &mut B) -> Result<i32, ProtoError> {
    ensure(buf, 4, "int")?;
    Ok(buf.get_i32())
}

/// Reads a `long`.
pub(crate) fn read_long<B: Buf>(buf: &mut B) -> Result<i64, ProtoError> {
    ensure(buf, 8, "long")?;
    Ok(buf.get_i64())
}

/// Reads a `boolean`.
pub(crate) fn read_bool<B: Buf>(buf: &mut B) -> Result<bool, ProtoError> {
    ensure(buf, 1, "boolean")?;
    Ok(buf.get_u8() != 0)
}

/// Reads a length prefix; `None` is the null marker -1. The length is checked against
/// [`MAX_FIELD_LEN`] and against the bytes that remain.
fn read_len<B: Buf>(buf: &mut B, what: &'static str) -> Result<Option<usize>, ProtoError> {
    let len = read_int(buf)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| ProtoError::NegativeLength { what, len })?;
    if len > MAX_FIELD_LEN {
        return Err(ProtoError::FieldTooLong {
            what,
            len,
            max: MAX_FIELD_LEN,
        });
    }
    ensure(buf, len, what)?;
    Ok(Some(len))
}

/// Reads a `buffer`; `None` is null.
pub(crate) fn read_buffer<B: Buf>(buf: &mut B) -> Result<Option<Vec<u8>>, ProtoError> {
    let Some(len) = read_len(buf, "buffer")? else {
        return Ok(None);
    };
    let mut bytes = vec![0; len];
    buf.copy_to_slice(&mut bytes);
    Ok(Some(bytes))
}

/// Reads a `ustring`; `None` is null. Invalid UTF-8 is replaced with U+FFFD.
pub(crate) fn read_ustring<B: Buf>(buf: &mut B) -> Result<Option<String>, ProtoError> {
    let Some(len) = read_len(buf, "ustring")? else {
        return Ok(None);
    };
    let mut bytes = vec![0; len];
    buf.copy_to_slice(&mut bytes);
    Ok(Some(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }))
}

/// Reads a `vector<T>`; `None` is null. The count may not exceed what the remaining bytes
/// could hold at `T::MIN_WIRE_LEN` bytes per element.
pub(crate) fn read_vector<T: Jute, B: Buf>(buf: &mut B) -> Result<Option<Vec<T>>, ProtoError> {
    let count = read_int(buf)?;
    if count == -1 {
        return Ok(None);
    }
    let count = usize::try_from(count).map_err(|_| ProtoError::NegativeLength {
        what: "vector",
        len: count,
    })?;
    let remaining = buf.remaining();
    if count > remaining / T::MIN_WIRE_LEN.max(1) {
        return Err(ProtoError::VectorTooLong { count, remaining });
    }
    let mut items = Vec::with_capacity(count.min(MAX_VECTOR_PREALLOC));
    for _ in 0..count {
        items.push(T::read(buf)?);
    }
    Ok(Some(items))
}

/// Converts a length to its wire form. Lengths above `i32::MAX` cannot be expressed in
/// jute; every field this server writes is far smaller (a 2 GiB reply could not be built),
/// so saturating only guards against arithmetic surprises and never happens in practice.
fn wire_len(len: usize) -> i32 {
    debug_assert!(
        i32::try_from(len).is_ok(),
        "jute length {len} overflows i32"
    );
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Writes an `int`.
pub(crate) fn write_int<B: BufMut>(out: &mut B, value: i32) {
    out.put_i32(value);
}

/// Writes a `long`.
pub(crate) fn write_long<B: BufMut>(out: &mut B, value: i64) {
    out.put_i64(value);
}

/// Writes a `boolean`.
pub(crate) fn write_bool<B: BufMut>(out: &mut B, value: bool) {
    out.put_u8(u8::from(value));
}

/// Writes a `buffer`.
pub(crate) fn write_buffer<B: BufMut>(out: &mut B, value: &[u8]) {
    out.put_i32(wire_len(value.len()));
    out.put_slice(value);
}

/// Writes a `ustring`.
pub(crate) fn write_ustring<B: BufMut>(out: &mut B, value: &str) {
    write_buffer(out, value.as_bytes());
}

/// Writes a `vector<T>`.
pub(crate) fn write_vector<T: Jute, B: BufMut>(out: &mut B, items: &[T]) {
    out.put_i32(wire_len(items.len()));
    for item in items {
        item.write(out);
    }
}

impl Jute for i32 {
    const MIN_WIRE_LEN: usize = 4;
    fn read<B: Buf>(buf: &mut B) -> Result<Self, ProtoError> {
        read_int(buf)
    }
    fn write<B: BufMut>(&self, out: &mut B) {
        write_int(out, *self);
    }
}

impl Jute for i64 {
    const MIN_WIRE_LEN: usize = 8;
    fn read<B: Buf>(buf: &mut B) -> Result<Self, ProtoError> {
        read_long(buf)
    }
    fn write<B: BufMut>(&self, out: &mut B) {
        write_long(out, *self);
    }
}

impl Jute for bool {
    const MIN_WIRE_LEN: usize = 1;
    fn read<B: Buf>(buf: &mut B) -> Result<Self, ProtoError> {
        read_bool(buf)
    }
    fn write<B: BufMut>(&self, out: &mut B) {
        write_bool(out, *self);
    }
}

/// `ustring`; null reads as `""`.
impl Jute for String {
    const MIN_WIRE_LEN: usize = 4;
    fn read<B: Buf>(buf: &mut B) -> Result<Self, ProtoError> {
        Ok(read_ustring(buf)?.unwrap_or_default())
    }
    fn write<B: BufMut>(&self, out: &mut B) {
        write_ustring(out, self);
    }
}

/// `buffer`; null reads as empty.
impl Jute for Vec<u8> {
    const MIN_WIRE_LEN: usize = 4;
    fn read<B: Buf>(buf: &mut B) -> Result<Self, ProtoError> {
        Ok(read_buffer(buf)?.unwrap_or_default())
    }
    fn write<B: BufMut>(&self, out: &mut B) {
        write_buffer(out, self);
    }
}

/// `vector<T>`; null reads as empty.
impl<T: Jute> Jute for Vec<T> {
    const MIN_WIRE_LEN: usize = 4;
    fn read<B: Buf>(buf: &mut B) -> Result<Self, ProtoError> {
        Ok(read_vector(buf)?.unwrap_or_default())
    }
    fn write<B: BufMut>(&self, out: &mut B) {
        write_vector(out, self);
    }
}

/// Defines a jute record: a plain struct whose fields are listed in wire order, with a
/// [`Jute`] impl that reads and writes them in that order.
macro_rules! jute_record {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub(crate) struct $name {
            $( $(#[$fmeta])* pub(crate) $field: $ty, )*
        }

        impl $crate::zk::proto::jute::Jute for $name {
            const MIN_WIRE_LEN: usize =
                0 $( + <$ty as $crate::zk::proto::jute::Jute>::MIN_WIRE_LEN )*;

            fn read<B: ::bytes::Buf>(
                buf: &mut B,
            ) -> Result<Self, $crate::zk::proto::ProtoError> {
                // Struct-expression fields are evaluated in the order written, which is
                // the declaration (wire) order.
                Ok(Self {
                    $( $field: <$ty as $crate::zk::proto::jute::Jute>::read(buf)?, )*
                })
            }

            fn write<B: ::bytes::BufMut>(&self, out: &mut B) {
                $( $crate::zk::proto::jute::Jute::write(&self.$field, out); )*
            }
        }
    };
}
pub(crate) use jute_record;

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes, BytesMut};

    use super::*;

    fn bytes_of(f: impl FnOnce(&mut BytesMut)) -> Bytes {
        let mut out = BytesMut::new();
        f(&mut out);
        out.freeze()
    }

    #[test]
    fn primitives_round_trip() {
        let mut buf = bytes_of(|out| {
            write_int(out, -7);
            write_long(out, i64::MIN);
            write_bool(out, true);
            write_bool(out, false);
            write_buffer(out, b"\x00\xffdata");
            write_ustring(out, "/zk/ä");
            write_vector(out, &["a".to_string(), String::new()]);
        });
        assert_eq!(read_int(&mut buf), Ok(-7));
        assert_eq!(read_long(&mut buf), Ok(i64::MIN));
        assert_eq!(read_bool(&mut buf), Ok(true));
        assert_eq!(read_bool(&mut buf), Ok(false));
        assert_eq!(read_buffer(&mut buf), Ok(Some(b"\x00\xffdata".to_vec())));
        assert_eq!(read_ustring(&mut buf), Ok(Some("/zk/ä".to_string())));
        assert_eq!(
            read_vector::<String, _>(&mut buf),
            Ok(Some(vec!["a".to_string(), String::new()]))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn encodings_are_big_endian() {
        let out = bytes_of(|out| {
            write_int(out, 0x0102_0304);
            write_long(out, 0x0102_0304_0506_0708);
            write_ustring(out, "ab");
        });
        assert_eq!(
            &out[..],
            b"\x01\x02\x03\x04\x01\x02\x03\x04\x05\x06\x07\x08\x00\x00\x00\x02ab"
        );
    }

    #[test]
    fn null_markers_read_as_none_or_empty() {
        let null = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(read_buffer(&mut null.clone()), Ok(None));
        assert_eq!(read_ustring(&mut null.clone()), Ok(None));
        assert_eq!(read_vector::<i32, _>(&mut null.clone()), Ok(None));
        assert_eq!(String::read(&mut null.clone()), Ok(String::new()));
        assert_eq!(<Vec<u8>>::read(&mut null.clone()), Ok(Vec::new()));
        assert_eq!(<Vec<String>>::read(&mut null.clone()), Ok(Vec::new()));
    }

    #[test]
    fn any_nonzero_byte_is_true() {
        assert_eq!(read_bool(&mut Bytes::from_static(&[2])), Ok(true));
    }

    #[test]
    fn truncated_primitives_are_errors() {
        assert!(matches!(
            read_int(&mut Bytes::from_static(&[0, 0, 1])),
            Err(ProtoError::Truncated { what: "int", .. })
        ));
        assert!(matches!(
            read_long(&mut Bytes::from_static(&[0; 7])),
            Err(ProtoError::Truncated { what: "long", .. })
        ));
        assert!(matches!(
            read_bool(&mut Bytes::new()),
            Err(ProtoError::Truncated { .. })
        ));
        // Claims 5 bytes, has 4.
        assert_eq!(
            read_buffer(&mut Bytes::from_static(b"\x00\x00\x00\x05abcd")),
            Err(ProtoError::Truncated {
                what: "buffer",
                needed: 5,
                remaining: 4
            })
        );
    }

    #[test]
    fn negative_lengths_other_than_null_are_errors() {
        let mut buf = Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(
            read_ustring(&mut buf),
            Err(ProtoError::NegativeLength {
                what: "ustring",
                len: -2
            })
        );
        let mut buf = Bytes::from_static(&[0x80, 0, 0, 0]);
        assert!(matches!(
            read_vector::<String, _>(&mut buf),
            Err(ProtoError::NegativeLength { what: "vector", .. })
        ));
    }

    #[test]
    fn absurd_lengths_are_refused_before_allocating() {
        // A 2 GiB buffer claim with 3 bytes behind it.
        let mut buf = Bytes::from_static(b"\x7f\xff\xff\xffabc");
        assert!(matches!(
            read_buffer(&mut buf),
            Err(ProtoError::FieldTooLong { .. })
        ));
        // Just over the field limit, even if the bytes were there.
        let mut big = BytesMut::new();
        big.put_i32(i32::try_from(MAX_FIELD_LEN + 1).unwrap());
        big.put_bytes(b'x', MAX_FIELD_LEN + 1);
        assert!(matches!(
            read_ustring(&mut big.freeze()),
            Err(ProtoError::FieldTooLong { .. })
        ));
        // Exactly the limit is fine.
        let mut max = BytesMut::new();
        write_buffer(&mut max, &vec![7; MAX_FIELD_LEN]);
        assert_eq!(
            read_buffer(&mut max.freeze()).unwrap().unwrap().len(),
            MAX_FIELD_LEN
        );
    }

    #[test]
    fn vector_count_is_bounded_by_remaining_bytes() {
        // i32::MAX strings claimed, 8 bytes left: at most 2 could fit.
        let mut buf = Bytes::from_static(b"\x7f\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(
            read_vector::<String, _>(&mut buf),
            Err(ProtoError::VectorTooLong {
                count: i32::MAX as usize,
                remaining: 8
            })
        );
        // 3 claimed, room for 2 empty strings.
        let mut buf = Bytes::from_static(b"\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00");
        assert!(matches!(
            read_vector::<String, _>(&mut buf),
            Err(ProtoError::VectorTooLong { count: 3, .. })
        ));
        // 2 claimed and present.
        let mut buf = Bytes::from_static(b"\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(
            read_vector::<String, _>(&mut buf),
            Ok(Some(vec![String::new(), String::new()]))
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let mut buf = Bytes::from_static(b"\x00\x00\x00\x03/\xff\xfe");
        assert_eq!(
            read_ustring(&mut buf),
            Ok(Some("/\u{fffd}\u{fffd}".to_string()))
        );
    }
}
