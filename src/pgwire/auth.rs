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

/// Why authentication failed, with libpq's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("fe_sendauth: no password supplied")]
    NoPassword,
    /// channel_binding's requirements not met.
    #[error("{0}")]
    ChannelBinding(&'static str),
    /// The server's SCRAM exchange does not check out.
    #[error("{0}")]
    Scram(String),
    /// A method (or SASL mechanism) isospec does not speak.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A message that could not be read or written.
    #[error("{0}")]
    Message(String),
}

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

    fn password(&self) -> Result<&[u8], AuthError> {
        self.password.as_deref().ok_or(AuthError::NoPassword)
    }

    /// libpq's check_expected_areq under channel_binding=require.
    fn require_binding(&self, ok: bool) -> Result<(), AuthError> {
        if self.channel_binding != ChannelBinding::Require {
            return Ok(());
        }
        if ok {
            if self.plus && self.scram.is_none() {
                return Ok(());
            }
            return Err(AuthError::ChannelBinding(
                "channel binding required, but server authenticated client without channel binding",
            ));
        }
        Err(AuthError::ChannelBinding(
            "channel binding required but not supported by server's authentication request",
        ))
    }

    /// The answer to one authentication message (None: nothing to send);
    /// `Ok(true)` in the second value once AuthenticationOk arrived.
    pub fn respond(
        &mut self,
        msg: &backend::Message,
    ) -> Result<(Option<BytesMut>, bool), AuthError> {
        let mut out = BytesMut::new();
        let io = |e: std::io::Error| AuthError::Message(e.to_string());
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
                    return Err(AuthError::ChannelBinding(
                        "channel binding required, but SSL not in use",
                    ));
                }
                let mut plain = false;
                let mut plus = false;
                let mut mechs = body.mechanisms();
                while let Some(m) = mechs.next().map_err(io)? {
                    plain |= m == sasl::SCRAM_SHA_256;
                    plus |= m == sasl::SCRAM_SHA_256_PLUS;
                }
                if plus && !self.tls {
                    return Err(AuthError::Scram(
                        "server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection"
                            .into(),
                    ));
                }
                let use_plus = plus && self.channel_binding != ChannelBinding::Disable;
                if self.channel_binding == ChannelBinding::Require && !use_plus {
                    return Err(AuthError::ChannelBinding("channel binding is required, but server did not offer an authentication method that supports channel binding"));
                }
                if !use_plus && !plain {
                    return Err(AuthError::Unsupported(
                        "none of the server's SASL authentication mechanisms are supported",
                    ));
                }
                let binding = if use_plus {
                    let hash = self.end_point.clone().ok_or_else(|| {
                        AuthError::Scram("could not generate peer certificate hash".into())
                    })?;
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
                let s = self.scram.as_mut().ok_or_else(|| {
                    AuthError::Scram("malformed SCRAM message (unexpected SASL continue)".into())
                })?;
                s.update(body.data())
                    .map_err(|e| AuthError::Scram(format!("malformed SCRAM message: {e}")))?;
                frontend::sasl_response(s.message(), &mut out).map_err(io)?;
            }
            backend::Message::AuthenticationSaslFinal(body) => {
                let s = self.scram.as_mut().ok_or_else(|| {
                    AuthError::Scram("malformed SCRAM message (unexpected SASL final)".into())
                })?;
                s.finish(body.data())
                    .map_err(|e| AuthError::Scram(format!("incorrect server signature: {e}")))?;
                self.scram = None;
                return Ok((None, false));
            }
            backend::Message::AuthenticationKerberosV5
            | backend::Message::AuthenticationGss
            | backend::Message::AuthenticationSspi
            | backend::Message::AuthenticationGssContinue(_) => {
                return Err(AuthError::Unsupported(
                    "GSSAPI/SSPI authentication is not supported by isospec",
                ));
            }
            backend::Message::AuthenticationScmCredential => {
                return Err(AuthError::Unsupported(
                    "SCM_CRED authentication method not supported",
                ));
            }
            _ => {
                return Err(AuthError::Unsupported(
                    "authentication method requested by server is not supported",
                ))
            }
        }
        Ok((Some(out), false))
    }
}
