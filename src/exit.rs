//! Process exit codes: part of the public contract (README lists them).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done; every identity holds a usable token.
    Success = 0,
    /// A token could not be obtained (provider down, refused, file trouble).
    Failure = 1,
    /// The command line was wrong (clap's own code).
    Usage = 2,
    /// The configuration is missing or invalid.
    Config = 3,
    /// A person must log in again (an egress grant was revoked or expired).
    ReauthRequired = 4,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The more serious of two outcomes (re-authorization outranks plain failure).
    pub fn worst(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::ReauthRequired => 2,
            Exit::Usage => 3,
            Exit::Config => 4,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}
