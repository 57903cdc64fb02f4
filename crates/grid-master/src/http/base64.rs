//! Standard base64 (RFC 4648, padded or not), decoded: for a job's binary
//! stdin in a JSON body.

use ::base64::Engine;
use ::base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The standard alphabet, taking text with its padding or without.
const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &::base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The bytes `text` encodes, or why it is not base64.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    STANDARD.decode(text).map_err(|e| format!("not base64: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_with_and_without_padding() {
        assert_eq!(super::decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(super::decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(super::decode("AP8=").unwrap(), [0, 255]);
        assert_eq!(super::decode("").unwrap(), b"");
        assert!(super::decode("a").is_err());
        assert!(super::decode("a*").is_err());
    }
}
