//! Signal dispositions, masks and pending sets.

use crate::abi::linux::{SIGKILL, SIGRTMAX, SIGSTOP};

/// `SIG_DFL` and `SIG_IGN` handler values.
pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

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

fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Signals that can never be blocked or caught.
pub const UNBLOCKABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));

/// Per-thread signal state. (Dispositions move to the thread group when
/// threads arrive.)
#[derive(Clone, Debug)]
pub struct SignalState {
    pub actions: [SigAction; SIGRTMAX as usize],
    pub blocked: u64,
    pub pending: u64,
    /// `sigaltstack`: (sp, flags, size).
    pub altstack: (u64, i32, u64),
}

impl Default for SignalState {
    fn default() -> Self {
        SignalState {
            actions: [SigAction::default(); SIGRTMAX as usize],
            blocked: 0,
            pending: 0,
            altstack: (0, 2, 0), // SS_DISABLE
        }
    }
}

impl SignalState {
    /// Whether `sig` is a valid signal number.
    pub fn valid(sig: i32) -> bool {
        (1..=SIGRTMAX).contains(&sig)
    }

    pub fn action(&self, sig: i32) -> SigAction {
        self.actions[(sig - 1) as usize]
    }

    pub fn set_action(&mut self, sig: i32, act: SigAction) {
        self.actions[(sig - 1) as usize] = act;
    }

    /// Queue `sig`; an ignored signal is dropped at once, as on Linux.
    pub fn post(&mut self, sig: i32) {
        let act = self.action(sig);
        let ignored = act.handler == SIG_IGN
            || (act.handler == SIG_DFL && default_action(sig) == DefaultAction::Ignore);
        if ignored && sig != SIGKILL && sig != SIGSTOP {
            return;
        }
        self.pending |= bit(sig);
    }

    /// Set the blocked mask (SIGKILL and SIGSTOP stay unblocked).
    pub fn set_blocked(&mut self, mask: u64) {
        self.blocked = mask & !UNBLOCKABLE;
    }

    /// Take the lowest-numbered deliverable signal.
    pub fn take_deliverable(&mut self) -> Option<i32> {
        let ready = self.pending & !self.blocked;
        if ready == 0 {
            return None;
        }
        let sig = ready.trailing_zeros() as i32 + 1;
        self.pending &= !bit(sig);
        Some(sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_signals_wait_and_kill_cannot_be_blocked() {
        let mut s = SignalState::default();
        s.set_blocked(u64::MAX);
        s.post(6);
        assert_eq!(s.take_deliverable(), None);
        s.post(SIGKILL);
        assert_eq!(s.take_deliverable(), Some(SIGKILL));
        s.set_blocked(0);
        assert_eq!(s.take_deliverable(), Some(6));
        assert_eq!(s.take_deliverable(), None);
    }

    #[test]
    fn ignored_signals_are_dropped() {
        let mut s = SignalState::default();
        s.post(17);
        assert_eq!(s.pending, 0);
        s.set_action(
            10,
            SigAction {
                handler: SIG_IGN,
                ..Default::default()
            },
        );
        s.post(10);
        assert_eq!(s.pending, 0);
        let a = SigAction {
            handler: 0x1234,
            flags: 4,
            restorer: 0x55,
            mask: 9,
        };
        assert_eq!(SigAction::from_bytes(&a.to_bytes()), a);
    }
}
