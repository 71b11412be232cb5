//! The one place that encodes stored values: a schema-version byte, then bincode (serde). The
//! format can move (e.g. to postcard) here alone; old versions are rejected with a clear error.

use serde::{Serialize, de::DeserializeOwned};
use thiserror::Error;

/// Version byte written before every stored value.
pub const CODEC_VERSION: u8 = 1;

/// Encoding or decoding a stored value failed.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The value could not be encoded.
    #[error("encoding failed: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The stored bytes are not a valid value (corruption, or a bug).
    #[error("stored value is corrupt: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The value was written by another format version.
    #[error("stored value has format version {found}, this build reads version {CODEC_VERSION}")]
    Version {
        /// Version byte found.
        found: u8,
    },
    /// Nothing after the version byte, or not even that.
    #[error("stored value is empty")]
    Empty,
    /// Bytes left over after the value (corruption).
    #[error("stored value has {0} unexpected trailing bytes")]
    Trailing(usize),
    /// A JSON record could not be written or read.
    #[error("JSON record: {0}")]
    Json(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `value` with the version byte in front.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![CODEC_VERSION];
    out.extend(bincode::serde::encode_to_vec(value, config())?);
    Ok(out)
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != CODEC_VERSION {
        return Err(CodecError::Version { found: version });
    }
    let (value, used) = bincode::serde::decode_from_slice(body, config())?;
    if used != body.len() {
        return Err(CodecError::Trailing(body.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FileEntry, Profile, Seen};

    fn profile() -> Profile {
        let mut p = Profile::default();
        p.files.insert(
            FileEntry {
                path: "/etc/hosts".into(),
                access: crate::Access::Read,
            },
            Seen {
                count: 3,
                first_ns: 1,
                last_ns: 9,
            },
        );
        p
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&profile()).unwrap();
        assert_eq!(bytes[0], CODEC_VERSION);
        assert_eq!(decode::<Profile>(&bytes).unwrap(), profile());
    }

    #[test]
    fn bad_bytes_are_clear_errors() {
        let mut bytes = encode(&profile()).unwrap();
        assert!(matches!(decode::<Profile>(&[]), Err(CodecError::Empty)));
        bytes[0] = 9;
        assert!(matches!(
            decode::<Profile>(&bytes),
            Err(CodecError::Version { found: 9 })
        ));
        bytes[0] = CODEC_VERSION;
        bytes.push(0);
        assert!(matches!(
            decode::<Profile>(&bytes),
            Err(CodecError::Trailing(1))
        ));
        let truncated = &bytes[..bytes.len() / 2];
        assert!(matches!(
            decode::<Profile>(truncated),
            Err(CodecError::Decode(_))
        ));
    }
}
