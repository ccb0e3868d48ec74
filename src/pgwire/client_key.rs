//! The client's private key (`sslkey`), encrypted or not, as libpq reads
//! it through OpenSSL with `sslpassword` as the passphrase: PKCS#8
//! `ENCRYPTED PRIVATE KEY` (PBES2: PBKDF2 or scrypt, AES or DES), and the
//! traditional OpenSSL form, `RSA`/`EC PRIVATE KEY` with `Proc-Type:
//! 4,ENCRYPTED` and `DEK-Info` (EVP_BytesToKey with MD5, AES or DES in
//! CBC mode).  An unencrypted key is read as before; `sslpassword` is
//! then unused, as in libpq.

use base64::Engine;
use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use md5::{Digest, Md5};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

/// One PEM block: its label, headers and contents.
struct Pem {
    label: String,
    headers: Vec<(String, String)>,
    der: Vec<u8>,
}

/// The first private-key PEM block of `text` (None: no PEM private key).
fn first_key_block(text: &str) -> Result<Option<Pem>, String> {
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        let Some(label) = l
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
        else {
            continue;
        };
        if !label.ends_with("PRIVATE KEY") {
            continue;
        }
        let end = format!("-----END {label}-----");
        let mut headers = Vec::new();
        let mut body = String::new();
        let mut in_headers = true;
        for l in lines.by_ref() {
            let l = l.trim();
            if l == end {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(body.as_bytes())
                    .map_err(|e| format!("its PEM contents are not base64: {e}"))?;
                return Ok(Some(Pem {
                    label: label.to_string(),
                    headers,
                    der,
                }));
            }
            if in_headers {
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                    continue;
                }
                in_headers = false;
                if l.is_empty() {
                    continue;
                }
            }
            body.push_str(l);
        }
        return Err(format!("no \"{end}\" line"));
    }
    Ok(None)
}

/// The private key in `data` (the file's bytes), decrypted with
/// `password` where it is encrypted.  Errors are the reason alone; the
/// caller names the file.
pub fn load(data: &[u8], password: Option<&[u8]>) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(data);
    let block = first_key_block(&text)?;
    let encrypted = |b: &Pem| {
        b.label == "ENCRYPTED PRIVATE KEY"
            || b.headers
                .iter()
                .any(|(k, v)| k == "Proc-Type" && v.ends_with("ENCRYPTED"))
    };
    let Some(block) = block.filter(encrypted) else {
        return rustls_pemfile::private_key(&mut &data[..])
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no private key found".to_string());
    };
    let Some(password) = password else {
        return Err("the key is encrypted: give its passphrase as sslpassword".into());
    };
    if block.label == "ENCRYPTED PRIVATE KEY" {
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(block.der.as_slice())
            .map_err(|e| format!("not a PKCS#8 encrypted key: {e}"))?;
        let doc = info.decrypt(password).map_err(|e| match e {
            // An algorithm (PBES1, say) this reader lacks: not the
            // passphrase's fault.
            pkcs8::Error::EncryptedPrivateKey(
                pkcs5::Error::NoPbes1CryptSupport
                | pkcs5::Error::UnsupportedAlgorithm { .. }
                | pkcs5::Error::AlgorithmParametersInvalid { .. },
            ) => format!(
                "its encryption is not supported: {e} (re-encrypt it with openssl pkcs8 -topk8 -v2 aes-256-cbc)"
            ),
            // pkcs5 says "encryption failed" for a padding that does not
            // check out: the passphrase, as a rule.
            _ => "bad decrypt (is sslpassword right?)".to_string(),
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            doc.as_bytes().to_vec(),
        )));
    }
    let der = traditional(&block, password)?;
    match block.label.as_str() {
        "RSA PRIVATE KEY" => Ok(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))),
        "EC PRIVATE KEY" => Ok(PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))),
        other => Err(format!("an encrypted \"{other}\" is not supported")),
    }
}

/// OpenSSL's EVP_BytesToKey with MD5 and one iteration: the key of a
/// traditional encrypted PEM block, from the passphrase and the IV's
/// first 8 bytes (the salt).
fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(len + 16);
    let mut prev: Vec<u8> = Vec::new();
    while key.len() < len {
        let mut h = Md5::new();
        h.update(&prev);
        h.update(password);
        h.update(salt);
        prev = h.finalize().to_vec();
        key.extend_from_slice(&prev);
    }
    key.truncate(len);
    key
}

/// A traditional encrypted PEM block's DER, decrypted as its `DEK-Info`
/// says.
fn traditional(block: &Pem, password: &[u8]) -> Result<Vec<u8>, String> {
    let dek = block
        .headers
        .iter()
        .find(|(k, _)| k == "DEK-Info")
        .map(|(_, v)| v.as_str())
        .ok_or("an encrypted PEM block without DEK-Info")?;
    let (cipher, iv_hex) = dek
        .split_once(',')
        .ok_or_else(|| format!("DEK-Info \"{dek}\" names no IV"))?;
    let iv = hex(iv_hex.trim()).ok_or_else(|| format!("DEK-Info's IV \"{iv_hex}\" is not hex"))?;
    let salt = iv.get(..8).ok_or("DEK-Info's IV is too short")?;
    let mut buf = block.der.clone();
    let bad = |_| "bad decrypt (is sslpassword right?)".to_string();
    macro_rules! decrypt {
        ($cipher:ty, $key_len:expr) => {{
            let key = bytes_to_key(password, salt, $key_len);
            cbc::Decryptor::<$cipher>::new_from_slices(&key, &iv)
                .map_err(|_| format!("DEK-Info's IV does not fit {cipher}"))?
                .decrypt_padded_mut::<Pkcs7>(&mut buf)
                .map_err(bad)?
                .len()
        }};
    }
    let n = match cipher.trim() {
        "AES-128-CBC" => decrypt!(aes::Aes128, 16),
        "AES-192-CBC" => decrypt!(aes::Aes192, 24),
        "AES-256-CBC" => decrypt!(aes::Aes256, 32),
        "DES-EDE3-CBC" => decrypt!(des::TdesEde3, 24),
        "DES-CBC" => decrypt!(des::Des, 8),
        other => return Err(format!("the key's cipher {other} is not supported")),
    };
    buf.truncate(n);
    // A wrong passphrase can unpad by chance: the result must at least be
    // a DER SEQUENCE.
    if buf.first() != Some(&0x30) {
        return Err("bad decrypt (is sslpassword right?)".into());
    }
    Ok(buf)
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evp_bytes_to_key_as_openssl() {
        // D1 = MD5(password || salt), D2 = MD5(D1 || password || salt).
        let k = bytes_to_key(b"secret", &[1, 2, 3, 4, 5, 6, 7, 8], 32);
        let mut h = Md5::new();
        h.update(b"secret");
        h.update([1, 2, 3, 4, 5, 6, 7, 8]);
        let d1 = h.finalize().to_vec();
        assert_eq!(&k[..16], &d1[..]);
        let mut h = Md5::new();
        h.update(&d1);
        h.update(b"secret");
        h.update([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&k[16..], &h.finalize()[..]);
    }

    #[test]
    fn an_encrypted_key_without_a_password_says_so() {
        let pem =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert_eq!(
            load(pem.as_bytes(), None).unwrap_err(),
            "the key is encrypted: give its passphrase as sslpassword"
        );
        let trad = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAAAAAAAAAAAAAAAAAAAA==\n-----END RSA PRIVATE KEY-----\n";
        assert!(load(trad.as_bytes(), None)
            .unwrap_err()
            .contains("sslpassword"));
        assert!(load(trad.as_bytes(), Some(b"x"))
            .unwrap_err()
            .contains("bad decrypt"));
        assert_eq!(load(b"nothing", None).unwrap_err(), "no private key found");
    }
}
