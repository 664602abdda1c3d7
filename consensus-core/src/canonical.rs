//! Canonical encoding: the deterministic bytes (postcard) that signatures, value ids and wire
//! frames are made of, and their SHA-256 digest. Below both `protocol::messages` (a value's id
//! is a digest) and `wire` (frames and signing bytes), so neither imports the other for it.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Canonical bytes of any serialisable value (postcard; maps are ordered, so deterministic).
pub fn canonical_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    tagged_bytes(b"", value)
}

/// `tag` followed by the canonical bytes of `value`, in one buffer sized for a typical message
/// (so that serialising does not grow it step by step).
pub(crate) fn tagged_bytes<T: Serialize>(tag: &[u8], value: &T) -> Vec<u8> {
    let mut b = Vec::with_capacity(tag.len() + 256);
    b.extend_from_slice(tag);
    // Serialising plain data to a Vec cannot fail; an empty result would only weaken a hash.
    postcard::serialize_with_flavor(value, VecFlavor(b)).unwrap_or_default()
}

/// postcard's output into a `Vec`, copying slices with `extend_from_slice` (postcard's own
/// `to_extend` goes through the generic `Extend`, byte by byte). The same bytes.
struct VecFlavor(Vec<u8>);

impl postcard::ser_flavors::Flavor for VecFlavor {
    type Output = Vec<u8>;

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// SHA-256 of `tag` followed by the canonical bytes of `value`, streamed into the hash through a
/// small stack buffer instead of serialised into a heap buffer first: the same digest as hashing
/// `tag` and [`canonical_bytes`] of `value`.
pub fn canonical_digest<T: Serialize>(tag: &[u8], value: &T) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(tag);
    let flavor = HashFlavor { hasher, buf: [0; HASH_CHUNK], len: 0 };
    // Serialising plain data cannot fail (the flavor never refuses a byte).
    match postcard::serialize_with_flavor(value, flavor) {
        Ok(hasher) => hasher.finalize().into(),
        Err(_) => Sha256::new().finalize().into(),
    }
}

const HASH_CHUNK: usize = 256;

/// Feeds postcard's output to a SHA-256 in chunks of up to [`HASH_CHUNK`] bytes.
struct HashFlavor {
    hasher: Sha256,
    buf: [u8; HASH_CHUNK],
    len: usize,
}

impl HashFlavor {
    fn flush(&mut self) {
        self.hasher.update(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl postcard::ser_flavors::Flavor for HashFlavor {
    type Output = Sha256;

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        if self.len == HASH_CHUNK {
            self.flush();
        }
        self.buf[self.len] = data;
        self.len += 1;
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if self.len + data.len() > HASH_CHUNK {
            self.flush();
            if data.len() > HASH_CHUNK {
                self.hasher.update(data);
                return Ok(());
            }
        }
        self.buf[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<Sha256> {
        self.flush();
        Ok(self.hasher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed digest equals the digest of the buffered bytes, for values below, at and
    /// above the chunk size (slices longer than a chunk bypass the buffer).
    #[test]
    fn the_streamed_digest_is_the_digest_of_the_canonical_bytes() {
        for len in [0, 1, HASH_CHUNK - 3, HASH_CHUNK, HASH_CHUNK + 1, 3 * HASH_CHUNK + 7] {
            let value = (7u64, "x".repeat(len), vec![len as u32; len % 17], "y".repeat(len / 2));
            let mut plain = b"tag".to_vec();
            plain.extend(canonical_bytes(&value));
            let expected: [u8; 32] = Sha256::digest(&plain).into();
            assert_eq!(canonical_digest(b"tag", &value), expected, "{len} bytes");
            assert_eq!(tagged_bytes(b"tag", &value), plain);
        }
    }
}
