//! WeChat's callback security, as its developer documentation specifies it (消息加解密):
//! the SHA-1 signature of the sorted token, timestamp and nonce (plus the ciphertext in safe
//! mode), and AES-256-CBC with the account's EncodingAESKey — key = base64(EncodingAESKey +
//! "="), IV = its first 16 bytes, PKCS#7 padding to 32-byte blocks — over
//! `random(16) ‖ length(4, big-endian) ‖ message ‖ receive id` (the AppID of an Official
//! Account, the CorpID of a WeCom app). WeCom callbacks use the same scheme.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;

type Decryptor = cbc::Decryptor<aes::Aes256>;
type Encryptor = cbc::Encryptor<aes::Aes256>;

/// Base64 as WeChat's (Java) decoder reads it: an EncodingAESKey is any 43 characters, so
/// the bits past the 32nd byte need not be zero.
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// WeChat pads to multiples of 32 bytes, not AES's 16.
const PAD_BLOCK: usize = 32;

/// Why a callback is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The EncodingAESKey is not 43 base64 characters of a 32-byte key.
    #[error("EncodingAESKey must be 43 base64 characters")]
    BadKey,
    /// The ciphertext is not base64 or not whole blocks.
    #[error("ciphertext is not base64 of whole AES blocks")]
    NotCiphertext,
    /// The plaintext's padding or length prefix is inconsistent (wrong key or tampered).
    #[error("decrypted payload is malformed (wrong key or tampered ciphertext)")]
    Malformed,
    /// The receive id inside is another account's.
    #[error("decrypted payload is for another account")]
    WrongReceiver,
}

/// SHA-1 hex of the sorted parts joined: `signature` (token, timestamp, nonce) and, with
/// the ciphertext as fourth part, `msg_signature`.
pub fn signature(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        sorted.concat().as_bytes(),
    );
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time comparison of a received signature with the expected one (hex, either case).
pub fn signature_matches(expected: &str, received: &str) -> bool {
    same(expected, &received.to_ascii_lowercase())
}

/// Constant-time equality of two secrets' texts.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An account's AES key.
#[derive(Clone)]
pub struct AesKey([u8; 32]);

impl AesKey {
    /// From the 43-character EncodingAESKey of the account's settings.
    pub fn from_encoding_aes_key(encoding: &str) -> Result<AesKey, CryptoError> {
        if encoding.len() != 43 {
            return Err(CryptoError::BadKey);
        }
        let bytes = B64
            .decode(format!("{encoding}="))
            .map_err(|_| CryptoError::BadKey)?;
        bytes
            .try_into()
            .map(AesKey)
            .map_err(|_| CryptoError::BadKey)
    }

    /// Decrypts a callback's `Encrypt` and checks its receive id; the message XML.
    pub fn decrypt(&self, encrypt: &str, receive_id: &str) -> Result<String, CryptoError> {
        let mut buf = B64
            .decode(encrypt.trim())
            .map_err(|_| CryptoError::NotCiphertext)?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(CryptoError::NotCiphertext);
        }
        let (key, iv) = (&self.0, &self.0[..16]);
        let plain = Decryptor::new(key.into(), iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::NotCiphertext)?;
        let pad = usize::from(*plain.last().ok_or(CryptoError::Malformed)?);
        if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
            return Err(CryptoError::Malformed);
        }
        let body = &plain[..plain.len() - pad];
        if body.len() < 20 {
            return Err(CryptoError::Malformed);
        }
        let len = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
        let rest = &body[20..];
        if len > rest.len() {
            return Err(CryptoError::Malformed);
        }
        let (message, receiver) = rest.split_at(len);
        if receiver != receive_id.as_bytes() {
            return Err(CryptoError::WrongReceiver);
        }
        String::from_utf8(message.to_vec()).map_err(|_| CryptoError::Malformed)
    }

    /// Encrypts `message` for `receive_id` with the 16 random bytes `random`: what WeChat
    /// does (and the gateway's encrypted replies would); the tests play WeChat with it.
    pub fn encrypt(&self, message: &str, receive_id: &str, random: [u8; 16]) -> String {
        let mut plain = Vec::with_capacity(message.len() + receive_id.len() + 52);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(receive_id.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let (key, iv) = (&self.0, &self.0[..16]);
        let len = plain.len();
        let cipher = Encryptor::new(key.into(), iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, len)
            .expect("whole blocks");
        base64::engine::general_purpose::STANDARD.encode(cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn signature_is_sha1_of_the_sorted_parts() {
        // sha1("1409304348" + "nonce" + "token"), sorted lexicographically.
        let expected = {
            let d = ring::digest::digest(
                &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                b"1409304348noncetoken",
            );
            d.as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        assert_eq!(signature(&["token", "1409304348", "nonce"]), expected);
        assert!(signature_matches(&expected, &expected.to_uppercase()));
        assert!(!signature_matches(&expected, "00"));
    }

    #[test]
    fn encrypted_messages_round_trip_and_tampering_is_refused() {
        let key = AesKey::from_encoding_aes_key(KEY).expect("key");
        let xml = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName></xml>";
        let enc = key.encrypt(xml, "wx1234", [7; 16]);
        assert_eq!(key.decrypt(&enc, "wx1234").as_deref(), Ok(xml));
        assert_eq!(key.decrypt(&enc, "wx9999"), Err(CryptoError::WrongReceiver));
        // A flipped byte in the last block breaks the padding or the receive id.
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&enc)
            .expect("b64");
        let last = raw.len() - 1;
        raw[last] ^= 0x55;
        let tampered = base64::engine::general_purpose::STANDARD.encode(raw);
        assert!(key.decrypt(&tampered, "wx1234").is_err());
        assert_eq!(
            key.decrypt("not base64!", "wx1234"),
            Err(CryptoError::NotCiphertext)
        );
        assert!(AesKey::from_encoding_aes_key("short").is_err());
        // Every length pads to whole 32-byte blocks.
        for n in 0..70 {
            let m = "x".repeat(n);
            assert_eq!(
                key.decrypt(&key.encrypt(&m, "wx1", [1; 16]), "wx1")
                    .as_deref(),
                Ok(m.as_str())
            );
        }
    }
}
