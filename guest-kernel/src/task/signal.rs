//! Signal dispositions, masks and pending sets.

use crate::abi::linux::{SIGKILL, SIGRTMAX, SIGSTOP};

/// `SIG_DFL` and `SIG_IGN` handler values.
pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

/// `sa_flags` bits.
pub const SA_SIGINFO: u64 = 0x4;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
pub const SA_RESTORER: u64 = 0x0400_0000;

/// The kernel's `struct sigaction` (x86-64: handler, flags, restorer, mask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

impl SigAction {
    pub const SIZE: usize = 32;

    pub fn from_bytes(b: &[u8; 32]) -> Self {
        let w = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(x)
        };
        SigAction {
            handler: w(0),
            flags: w(1),
            restorer: w(2),
            mask: w(3),
        }
    }

    pub fn to_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, v) in [self.handler, self.flags, self.restorer, self.mask]
            .into_iter()
            .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// What happens to a signal with `SIG_DFL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    Ignore,
    Stop,
    Continue,
}

/// Linux's default action for `sig` (core-dumping signals terminate).
pub fn default_action(sig: i32) -> DefaultAction {
    match sig {
        17 | 23 | 28 => DefaultAction::Ignore, // SIGCHLD, SIGURG, SIGWINCH
        18 => DefaultAction::Continue,         // SIGCONT
        19..=22 => DefaultAction::Stop,        // SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU
        _ => DefaultAction::Terminate,
    }
}

/// The mask bit of `sig`.
pub const fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Signals that can never be blocked or caught.
pub const UNBLOCKABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));

/// Whether `sig` is a valid signal number.
pub fn valid(sig: i32) -> bool {
    (1..=SIGRTMAX).contains(&sig)
}

/// A thread group's signal handlers.
#[derive(Clone, Debug)]
pub struct SigHand {
    pub actions: [SigAction; SIGRTMAX as usize],
}

impl Default for SigHand {
    fn default() -> Self {
        SigHand {
            actions: [SigAction::default(); SIGRTMAX as usize],
        }
    }
}

impl SigHand {
    pub fn action(&self, sig: i32) -> SigAction {
        self.actions[(sig - 1) as usize]
    }

    pub fn set_action(&mut self, sig: i32, act: SigAction) {
        self.actions[(sig - 1) as usize] = act;
    }

    /// Whether `sig` would be discarded on arrival. A default SIGCONT is
    /// too: its continue happens when it is sent (`task::stop`).
    pub fn ignores(&self, sig: i32) -> bool {
        if sig == SIGKILL || sig == SIGSTOP {
            return false;
        }
        let act = self.action(sig);
        act.handler == SIG_IGN
            || (act.handler == SIG_DFL
                && matches!(
                    default_action(sig),
                    DefaultAction::Ignore | DefaultAction::Continue
                ))
    }

    /// `execve` resets caught signals to their default action.
    pub fn reset_for_exec(&mut self) {
        for a in self.actions.iter_mut() {
            if a.handler != SIG_IGN {
                *a = SigAction::default();
            }
        }
    }
}

/// Per-thread signal state.
#[derive(Clone, Copy, Debug)]
pub struct SigState {
    pub blocked: u64,
    /// Thread-directed pending signals.
    pub pending: u64,
    /// `sigaltstack`: (sp, flags, size).
    pub altstack: (u64, i32, u64),
}

impl Default for SigState {
    fn default() -> Self {
        SigState {
            blocked: 0,
            pending: 0,
            altstack: (0, 2, 0),
        } // SS_DISABLE
    }
}

impl SigState {
    /// Set the blocked mask (SIGKILL and SIGSTOP stay unblocked).
    pub fn set_blocked(&mut self, mask: u64) {
        self.blocked = mask & !UNBLOCKABLE;
    }
}

/// The lowest-numbered signal in `set`.
pub fn lowest(set: u64) -> Option<i32> {
    (set != 0).then(|| set.trailing_zeros() as i32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions() {
        let mut h = SigHand::default();
        assert!(h.ignores(17));
        assert!(h.ignores(18));
        assert!(!h.ignores(15));
        assert!(!h.ignores(19));
        h.set_action(
            10,
            SigAction {
                handler: SIG_IGN,
                ..Default::default()
            },
        );
        assert!(h.ignores(10));
        h.set_action(
            12,
            SigAction {
                handler: 0x1000,
                ..Default::default()
            },
        );
        h.reset_for_exec();
        assert!(h.ignores(10));
        assert_eq!(h.action(12).handler, SIG_DFL);
        let a = SigAction {
            handler: 0x1234,
            flags: 4,
            restorer: 0x55,
            mask: 9,
        };
        assert_eq!(SigAction::from_bytes(&a.to_bytes()), a);
        let mut s = SigState::default();
        s.set_blocked(u64::MAX);
        assert_eq!(s.blocked & UNBLOCKABLE, 0);
        assert_eq!(lowest(bit(6) | bit(9)), Some(6));
    }
}
