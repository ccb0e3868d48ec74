//! Authentication as libpq's fe-auth.c answers the server's requests:
//! cleartext and MD5 passwords, SCRAM-SHA-256, and SCRAM-SHA-256-PLUS
//! with `tls-server-end-point` channel binding over TLS, under
//! `channel_binding` disable / prefer / require, with libpq's texts.

use super::settings::ChannelBinding;
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::{backend, frontend};

/// The client side of one authentication exchange.
pub struct Authenticator {
    pub user: String,
    pub password: Option<Vec<u8>>,
    pub channel_binding: ChannelBinding,
    /// The server certificate's hash when the connection is encrypted.
    pub end_point: Option<Vec<u8>>,
    pub tls: bool,
    scram: Option<sasl::ScramSha256>,
    plus: bool,
}

const NO_PASSWORD: &str = "fe_sendauth: no password supplied";

impl Authenticator {
    pub fn new(
        user: &str,
        password: Option<Vec<u8>>,
        channel_binding: ChannelBinding,
        tls: bool,
        end_point: Option<Vec<u8>>,
    ) -> Authenticator {
        Authenticator {
            user: user.to_string(),
            password,
            channel_binding,
            end_point,
            tls,
            scram: None,
            plus: false,
        }
    }

    fn password(&self) -> Result<&[u8], String> {
        self.password
            .as_deref()
            .ok_or_else(|| NO_PASSWORD.to_string())
    }

    /// libpq's check_expected_areq under channel_binding=require.
    fn require_binding(&self, ok: bool) -> Result<(), String> {
        if self.channel_binding != ChannelBinding::Require {
            return Ok(());
        }
        if ok {
            if self.plus && self.scram.is_none() {
                return Ok(());
            }
            return Err(
                "channel binding required, but server authenticated client without channel binding"
                    .into(),
            );
        }
        Err("channel binding required but not supported by server's authentication request".into())
    }

    /// The answer to one authentication message (None: nothing to send);
    /// `Ok(true)` in the second value once AuthenticationOk arrived.
    pub fn respond(&mut self, msg: &backend::Message) -> Result<(Option<BytesMut>, bool), String> {
        let mut out = BytesMut::new();
        let io = |e: std::io::Error| e.to_string();
        match msg {
            backend::Message::AuthenticationOk => {
                self.require_binding(true)?;
                return Ok((None, true));
            }
            backend::Message::AuthenticationCleartextPassword => {
                self.require_binding(false)?;
                frontend::password_message(self.password()?, &mut out).map_err(io)?;
            }
            backend::Message::AuthenticationMd5Password(body) => {
                self.require_binding(false)?;
                let hash = md5_hash(self.user.as_bytes(), self.password()?, body.salt());
                frontend::password_message(hash.as_bytes(), &mut out).map_err(io)?;
            }
            backend::Message::AuthenticationSasl(body) => {
                if self.channel_binding == ChannelBinding::Require && !self.tls {
                    return Err("channel binding required, but SSL not in use".into());
                }
                let mut plain = false;
                let mut plus = false;
                let mut mechs = body.mechanisms();
                while let Some(m) = mechs.next().map_err(io)? {
                    plain |= m == sasl::SCRAM_SHA_256;
                    plus |= m == sasl::SCRAM_SHA_256_PLUS;
                }
                if plus && !self.tls {
                    return Err(
                        "server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection"
                            .into(),
                    );
                }
                let use_plus = plus && self.channel_binding != ChannelBinding::Disable;
                if self.channel_binding == ChannelBinding::Require && !use_plus {
                    return Err("channel binding is required, but server did not offer an authentication method that supports channel binding".into());
                }
                if !use_plus && !plain {
                    return Err(
                        "none of the server's SASL authentication mechanisms are supported".into(),
                    );
                }
                let binding = if use_plus {
                    let hash = self
                        .end_point
                        .clone()
                        .ok_or("could not generate peer certificate hash")?;
                    sasl::ChannelBinding::tls_server_end_point(hash)
                } else if self.tls && self.channel_binding != ChannelBinding::Disable {
                    sasl::ChannelBinding::unrequested()
                } else {
                    sasl::ChannelBinding::unsupported()
                };
                let s = sasl::ScramSha256::new(self.password()?, binding);
                let mech = if use_plus {
                    sasl::SCRAM_SHA_256_PLUS
                } else {
                    sasl::SCRAM_SHA_256
                };
                frontend::sasl_initial_response(mech, s.message(), &mut out).map_err(io)?;
                self.plus = use_plus;
                self.scram = Some(s);
            }
            backend::Message::AuthenticationSaslContinue(body) => {
                let s = self
                    .scram
                    .as_mut()
                    .ok_or("malformed SCRAM message (unexpected SASL continue)")?;
                s.update(body.data())
                    .map_err(|e| format!("malformed SCRAM message: {e}"))?;
                frontend::sasl_response(s.message(), &mut out).map_err(io)?;
            }
            backend::Message::AuthenticationSaslFinal(body) => {
                let s = self
                    .scram
                    .as_mut()
                    .ok_or("malformed SCRAM message (unexpected SASL final)")?;
                s.finish(body.data())
                    .map_err(|e| format!("incorrect server signature: {e}"))?;
                self.scram = None;
                return Ok((None, false));
            }
            backend::Message::AuthenticationKerberosV5
            | backend::Message::AuthenticationGss
            | backend::Message::AuthenticationSspi
            | backend::Message::AuthenticationGssContinue(_) => {
                return Err("GSSAPI/SSPI authentication is not supported by isospec".into());
            }
            backend::Message::AuthenticationScmCredential => {
                return Err("SCM_CRED authentication method not supported".into());
            }
            _ => return Err("authentication method requested by server is not supported".into()),
        }
        Ok((Some(out), false))
    }
}
