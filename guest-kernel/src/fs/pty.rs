//! Pseudo-terminals of the sentry's own devpts (`/dev/ptmx`, `/dev/pts/N`).
//!
//! A pair is a master and a slave end around a line discipline, Linux's
//! `n_tty` reduced to what programs rely on: input written to the master is
//! processed for the slave (`ICRNL`, the `ISIG` characters, `ICANON` line
//! editing with `VERASE`/`VKILL`/`VEOF`, `ECHO`), output written to the
//! slave is processed for the master (`OPOST`/`ONLCR`). The master has a
//! termios of its own, as Linux's, which changes nothing here. Signals the
//! discipline raises are returned to the caller, which owns the tasks.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use spin::Mutex;

use crate::abi::linux::TERMIOS_SIZE;
use crate::abi::Errno;

/// Bytes each direction buffers (Linux's `N_TTY_BUF_SIZE` is 4096; the
/// output side holds more so a burst of slave writes does not block).
const INPUT_MAX: usize = 4096;
const OUTPUT_MAX: usize = 65536;
/// Longest canonical line (Linux keeps 4095 characters and the newline).
const LINE_MAX: usize = 4095;
/// Most pseudo-terminals at once (`/proc/sys/kernel/pty/max`'s default).
pub const PTY_MAX: u32 = 4096;

// c_iflag
const ISTRIP: u32 = 0o40;
const INLCR: u32 = 0o100;
const IGNCR: u32 = 0o200;
const ICRNL: u32 = 0o400;
const IXON: u32 = 0o2000;
// c_oflag
const OPOST: u32 = 0o1;
const ONLCR: u32 = 0o4;
// c_cflag
const B38400: u32 = 0o17;
const CS8: u32 = 0o60;
const CREAD: u32 = 0o200;
const HUPCL: u32 = 0o2000;
// c_lflag
const ISIG: u32 = 0o1;
pub const ICANON: u32 = 0o2;
const ECHO: u32 = 0o10;
const ECHOE: u32 = 0o20;
const ECHOK: u32 = 0o40;
const ECHONL: u32 = 0o100;
const NOFLSH: u32 = 0o200;
const ECHOCTL: u32 = 0o1000;
const ECHOKE: u32 = 0o4000;
const IEXTEN: u32 = 0o100000;
// c_cc indices
const VINTR: usize = 0;
const VQUIT: usize = 1;
const VERASE: usize = 2;
const VKILL: usize = 3;
const VEOF: usize = 4;
pub const VTIME: usize = 5;
pub const VMIN: usize = 6;
const VSUSP: usize = 10;
const VEOL: usize = 11;
const VEOL2: usize = 16;

const SIGINT: i32 = 2;
const SIGQUIT: i32 = 3;
const SIGTSTP: i32 = 20;

/// The kernel's `struct termios`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: [u8; 19],
}

impl Termios {
    /// A terminal's defaults (Linux's `tty_std_termios`).
    pub fn standard() -> Termios {
        Termios {
            iflag: ICRNL | IXON,
            oflag: OPOST | ONLCR,
            cflag: B38400 | CS8 | CREAD | HUPCL,
            lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
            line: 0,
            cc: *b"\x03\x1c\x7f\x15\x04\x00\x01\x00\x11\x13\x1a\x00\x12\x0f\x17\x16\x00\x00\x00",
        }
    }

    pub fn to_bytes(self) -> [u8; TERMIOS_SIZE] {
        let mut out = [0u8; TERMIOS_SIZE];
        for (i, w) in [self.iflag, self.oflag, self.cflag, self.lflag]
            .into_iter()
            .enumerate()
        {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        out[16] = self.line;
        out[17..].copy_from_slice(&self.cc);
        out
    }

    pub fn from_bytes(b: &[u8; TERMIOS_SIZE]) -> Termios {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut cc = [0u8; 19];
        cc.copy_from_slice(&b[17..]);
        Termios {
            iflag: word(0),
            oflag: word(4),
            cflag: word(8),
            lflag: word(12),
            line: b[16],
            cc,
        }
    }
}

/// What a read or write on one end could do right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtyIo {
    Done(usize),
    WouldBlock,
}

#[derive(Debug)]
struct PtyState {
    slave: Termios,
    master: Termios,
    winsize: [u8; 8],
    locked: bool,
    /// The canonical line being edited.
    line: Vec<u8>,
    /// What the slave reads.
    input: VecDeque<u8>,
    /// With `ICANON`, the lengths of the complete lines in `input` (0 for
    /// an end of file).
    lines: VecDeque<usize>,
    /// What the master reads.
    output: VecDeque<u8>,
    /// How many bytes at the end of `output` echo the line being edited:
    /// a signal character drops them with the line.
    line_echo: usize,
    masters: usize,
    slaves: usize,
    slave_opened: bool,
    /// The session whose controlling terminal this is, and its foreground
    /// process group (0: none).
    session: i32,
    fg: i32,
}

/// One pseudo-terminal pair.
#[derive(Debug)]
pub struct Pty {
    pub index: u32,
    /// Wait key (in the pipe key space) for both directions.
    pub id: u64,
    pub generation: AtomicU64,
    /// When the slave last got input (monotonic ns): `VTIME`'s inter-byte
    /// timer runs from it.
    pub last_input: AtomicU64,
    state: Mutex<PtyState>,
}

impl Pty {
    pub fn new(index: u32) -> Pty {
        Pty {
            index,
            id: super::pipe::next_id(),
            generation: AtomicU64::new(0),
            last_input: AtomicU64::new(0),
            state: Mutex::new(PtyState {
                slave: Termios::standard(),
                master: Termios::standard(),
                winsize: [0; 8],
                locked: true,
                line: Vec::new(),
                input: VecDeque::new(),
                lines: VecDeque::new(),
                output: VecDeque::new(),
                line_echo: 0,
                masters: 0,
                slaves: 0,
                slave_opened: false,
                session: 0,
                fg: 0,
            }),
        }
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    pub fn locked(&self) -> bool {
        self.state.lock().locked
    }

    pub fn set_locked(&self, locked: bool) {
        self.state.lock().locked = locked;
    }

    /// Whether a master end is still open (the slave can be opened).
    pub fn master_open(&self) -> bool {
        self.state.lock().masters > 0
    }

    pub fn termios(&self, master: bool) -> Termios {
        let s = self.state.lock();
        if master {
            s.master
        } else {
            s.slave
        }
    }

    /// `TCSETS`: leaving canonical mode makes the line being edited
    /// readable as it is.
    pub fn set_termios(&self, master: bool, t: Termios) {
        let mut s = self.state.lock();
        if master {
            s.master = t;
            return;
        }
        let was_canon = s.slave.lflag & ICANON != 0;
        s.slave = t;
        if was_canon && t.lflag & ICANON == 0 {
            let line = core::mem::take(&mut s.line);
            s.input.extend(line);
            s.lines.clear();
        }
        drop(s);
        self.changed();
    }

    pub fn winsize(&self) -> [u8; 8] {
        self.state.lock().winsize
    }

    /// `TIOCSWINSZ`; whether the size changed (then the foreground group
    /// gets `SIGWINCH`).
    pub fn set_winsize(&self, w: [u8; 8]) -> bool {
        let mut s = self.state.lock();
        let changed = s.winsize != w;
        s.winsize = w;
        changed
    }

    /// (session, foreground process group); 0 for none.
    pub fn control(&self) -> (i32, i32) {
        let s = self.state.lock();
        (s.session, s.fg)
    }

    pub fn set_control(&self, session: i32, fg: i32) {
        let mut s = self.state.lock();
        s.session = session;
        s.fg = fg;
    }

    pub fn open_end(&self, master: bool) {
        let mut s = self.state.lock();
        if master {
            s.masters += 1;
        } else {
            s.slaves += 1;
            s.slave_opened = true;
        }
    }

    pub fn close_end(&self, master: bool) {
        let mut s = self.state.lock();
        if master {
            s.masters = s.masters.saturating_sub(1);
        } else {
            s.slaves = s.slaves.saturating_sub(1);
        }
        drop(s);
        self.changed();
    }

    /// `TCFLSH`: drop what the slave has not read (`input`), what the
    /// master has not read (`output`), or both.
    pub fn flush(&self, input: bool, output: bool) {
        let mut s = self.state.lock();
        if input {
            s.line.clear();
            s.input.clear();
            s.lines.clear();
        }
        if output {
            s.output.clear();
            s.line_echo = 0;
        }
        drop(s);
        self.changed();
    }

    /// Bytes a read on this end would find (`FIONREAD`).
    pub fn readable(&self, master: bool) -> usize {
        let s = self.state.lock();
        if master {
            s.output.len()
        } else if s.slave.lflag & ICANON != 0 {
            s.lines.front().copied().unwrap_or(0)
        } else {
            s.input.len()
        }
    }

    /// Poll state of an end: (readable, writable, hung up).
    pub fn readiness(&self, master: bool) -> (bool, bool, bool) {
        let s = self.state.lock();
        if master {
            let hup = s.slave_opened && s.slaves == 0;
            (!s.output.is_empty() || hup, true, hup)
        } else {
            let canon = s.slave.lflag & ICANON != 0;
            let data = if canon {
                !s.lines.is_empty()
            } else {
                !s.input.is_empty()
            };
            let hup = s.masters == 0;
            (data || hup, s.output.len() < OUTPUT_MAX, hup)
        }
    }

    /// Read what the master end sees: the slave's processed output. `EIO`
    /// once every slave end that was opened is closed, as Linux.
    pub fn read_master(&self, buf: &mut [u8]) -> Result<PtyIo, Errno> {
        let mut s = self.state.lock();
        if s.output.is_empty() {
            return if s.slave_opened && s.slaves == 0 {
                Err(Errno::EIO)
            } else {
                Ok(PtyIo::WouldBlock)
            };
        }
        let n = buf.len().min(s.output.len());
        for (b, c) in buf.iter_mut().zip(s.output.drain(..n)) {
            *b = c;
        }
        s.line_echo = s.line_echo.min(s.output.len());
        drop(s);
        self.changed();
        Ok(PtyIo::Done(n))
    }

    /// Read what the slave end sees: one line at most in canonical mode;
    /// 0 at an end of file (`VEOF`, or the master gone).
    pub fn read_slave(&self, buf: &mut [u8]) -> PtyIo {
        let mut s = self.state.lock();
        let canon = s.slave.lflag & ICANON != 0;
        let avail = if canon {
            s.lines.front().copied()
        } else if s.input.is_empty() {
            None
        } else {
            Some(s.input.len())
        };
        let Some(avail) = avail else {
            if s.masters == 0 || (s.slave.cc[VMIN] == 0 && s.slave.cc[VTIME] == 0 && !canon) {
                return PtyIo::Done(0);
            }
            return PtyIo::WouldBlock;
        };
        let n = buf.len().min(avail);
        for (b, c) in buf.iter_mut().zip(s.input.drain(..n)) {
            *b = c;
        }
        if canon {
            match s.lines.front_mut() {
                Some(left) if *left > n => *left -= n,
                _ => {
                    s.lines.pop_front();
                }
            }
        }
        drop(s);
        self.changed();
        PtyIo::Done(n)
    }

    /// Write to the slave end: processed (`OPOST`) into the master's queue.
    /// `EIO` once the master is gone.
    pub fn write_slave(&self, data: &[u8]) -> Result<PtyIo, Errno> {
        let mut s = self.state.lock();
        if s.masters == 0 {
            return Err(Errno::EIO);
        }
        if s.output.len() >= OUTPUT_MAX {
            return Ok(PtyIo::WouldBlock);
        }
        let room = OUTPUT_MAX - s.output.len();
        let n = data.len().min(room);
        let oflag = s.slave.oflag;
        for &c in &data[..n] {
            output_char(&mut s.output, oflag, c);
        }
        s.line_echo = 0;
        drop(s);
        self.changed();
        Ok(PtyIo::Done(n))
    }

    /// Write to the master end: each byte goes through the slave's line
    /// discipline. Returns the signals the `ISIG` characters raise for the
    /// foreground process group, in order.
    pub fn write_master(&self, data: &[u8]) -> Vec<i32> {
        let mut sigs = Vec::new();
        let mut s = self.state.lock();
        for &c in data {
            if let Some(sig) = input_char(&mut s, c) {
                sigs.push(sig);
            }
        }
        drop(s);
        self.changed();
        sigs
    }
}

/// Put `c` in the master's queue as the slave's output processing does.
fn output_char(out: &mut VecDeque<u8>, oflag: u32, c: u8) {
    if oflag & OPOST != 0 && oflag & ONLCR != 0 && c == b'\n' {
        out.push_back(b'\r');
    }
    out.push_back(c);
}

/// Echo `c` to the master, control characters as `^X` with `ECHOCTL`.
fn echo(s: &mut PtyState, c: u8) {
    let (lflag, oflag) = (s.slave.lflag, s.slave.oflag);
    if lflag & ECHOCTL != 0 && (c < 0x20 || c == 0x7f) && c != b'\t' && c != b'\n' {
        s.output.push_back(b'^');
        s.output.push_back(c ^ 0x40);
    } else {
        output_char(&mut s.output, oflag, c);
    }
}

/// Erase one character of the line being edited, visibly with `ECHOE`.
fn erase(s: &mut PtyState) {
    if s.line.pop().is_some() && s.slave.lflag & ECHO != 0 && s.slave.lflag & ECHOE != 0 {
        s.output.extend(*b"\x08 \x08");
    }
}

/// One byte of input through the line discipline.
fn input_char(s: &mut PtyState, mut c: u8) -> Option<i32> {
    let t = s.slave;
    if t.iflag & ISTRIP != 0 {
        c &= 0x7f;
    }
    if c == b'\r' {
        if t.iflag & IGNCR != 0 {
            return None;
        }
        if t.iflag & ICRNL != 0 {
            c = b'\n';
        }
    } else if c == b'\n' && t.iflag & INLCR != 0 {
        c = b'\r';
    }
    let special = |i: usize| t.cc[i] != 0 && c == t.cc[i];
    if t.lflag & ISIG != 0 {
        let sig = if special(VINTR) {
            Some(SIGINT)
        } else if special(VQUIT) {
            Some(SIGQUIT)
        } else if special(VSUSP) {
            Some(SIGTSTP)
        } else {
            None
        };
        if let Some(sig) = sig {
            // The input is dropped, and so is the echo of the line being
            // typed, as far as the master has not read it (Linux's `isig`
            // flushes the queue the echo is in).
            if t.lflag & NOFLSH == 0 {
                s.line.clear();
                s.input.clear();
                s.lines.clear();
                let keep = s.output.len() - s.line_echo.min(s.output.len());
                s.output.truncate(keep);
                s.line_echo = 0;
            }
            if t.lflag & ECHO != 0 {
                echo(s, c);
            }
            return Some(sig);
        }
    }
    if t.lflag & ICANON == 0 {
        if s.input.len() < INPUT_MAX {
            s.input.push_back(c);
        }
        if t.lflag & ECHO != 0 {
            echo(s, c);
        }
        return None;
    }
    let before = s.output.len();
    let committed = s.lines.len();
    canonical_char(s, c);
    if s.lines.len() != committed {
        s.line_echo = 0;
    } else {
        s.line_echo += s.output.len().saturating_sub(before);
    }
    None
}

/// One byte of input in canonical mode: line editing.
fn canonical_char(s: &mut PtyState, c: u8) {
    let t = s.slave;
    let special = |i: usize| t.cc[i] != 0 && c == t.cc[i];
    if special(VERASE) {
        erase(s);
    } else if special(VKILL) {
        if t.lflag & ECHO != 0 && t.lflag & ECHOKE == 0 {
            // The line is dropped, not erased on screen.
            echo(s, c);
            if t.lflag & ECHOK != 0 {
                output_char(&mut s.output, t.oflag, b'\n');
            }
            s.line.clear();
        } else {
            while !s.line.is_empty() {
                erase(s);
            }
        }
    } else if special(VEOF) {
        commit_line(s);
    } else if c == b'\n' || special(VEOL) || special(VEOL2) {
        s.line.push(c);
        if t.lflag & ECHO != 0 || (c == b'\n' && t.lflag & ECHONL != 0) {
            echo(s, c);
        }
        commit_line(s);
    } else if s.line.len() < LINE_MAX {
        s.line.push(c);
        if t.lflag & ECHO != 0 {
            echo(s, c);
        }
    }
}

/// The edited line becomes readable (an empty one is an end of file).
fn commit_line(s: &mut PtyState) {
    if s.input.len() + s.line.len() > INPUT_MAX {
        s.line.clear();
        return;
    }
    let line = core::mem::take(&mut s.line);
    s.lines.push_back(line.len());
    s.input.extend(line);
}

/// An open end of a pseudo-terminal; dropping it closes the end.
#[derive(Debug)]
pub struct PtyEnd {
    pub pty: alloc::sync::Arc<Pty>,
    pub master: bool,
    /// `O_ACCMODE` and `O_NONBLOCK`.
    pub flags: AtomicU32,
}

impl PtyEnd {
    pub fn new(pty: alloc::sync::Arc<Pty>, master: bool, flags: u32) -> PtyEnd {
        pty.open_end(master);
        PtyEnd {
            pty,
            master,
            flags: AtomicU32::new(flags),
        }
    }

    pub fn nonblock(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & super::O_NONBLOCK != 0
    }
}

impl Drop for PtyEnd {
    fn drop(&mut self) {
        self.pty.close_end(self.master);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> Pty {
        let p = Pty::new(0);
        p.open_end(true);
        p.open_end(false);
        p
    }

    fn read_all(p: &Pty, master: bool) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let n = if master {
            match p.read_master(&mut buf) {
                Ok(PtyIo::Done(n)) => n,
                _ => 0,
            }
        } else {
            match p.read_slave(&mut buf) {
                PtyIo::Done(n) => n,
                PtyIo::WouldBlock => 0,
            }
        };
        buf[..n].to_vec()
    }

    #[test]
    fn canonical_input_is_edited_echoed_and_read_by_line() {
        let p = pair();
        assert_eq!(p.write_master(b"helo\x7flo\r"), Vec::<i32>::new());
        assert_eq!(read_all(&p, false), b"hello\n");
        assert_eq!(read_all(&p, true), b"helo\x08 \x08lo\r\n");
        p.write_master(b"one\ntwo\n");
        let mut buf = [0u8; 2];
        assert_eq!(p.read_slave(&mut buf), PtyIo::Done(2));
        assert_eq!(read_all(&p, false), b"e\n");
        assert_eq!(read_all(&p, false), b"two\n");
        assert_eq!(p.read_slave(&mut buf), PtyIo::WouldBlock);
        p.write_master(b"\x04");
        assert_eq!(
            p.read_slave(&mut buf),
            PtyIo::Done(0),
            "VEOF on an empty line"
        );
    }

    #[test]
    fn isig_characters_raise_signals_and_flush() {
        let p = pair();
        assert_eq!(
            p.write_master(b"abc\x03\x1c\x1a"),
            vec![SIGINT, SIGQUIT, SIGTSTP]
        );
        assert_eq!(
            read_all(&p, true),
            b"^C^\\^Z",
            "the line's echo went with it"
        );
        p.write_master(b"x\n");
        assert_eq!(read_all(&p, false), b"x\n", "the partial line was flushed");
    }

    #[test]
    fn raw_mode_passes_bytes_and_output_gets_crlf() {
        let p = pair();
        let mut t = p.termios(false);
        t.lflag &= !(ICANON | ECHO | ISIG);
        p.set_termios(false, t);
        p.write_master(b"a\x03\x7f");
        assert_eq!(read_all(&p, false), b"a\x03\x7f");
        assert_eq!(p.write_slave(b"x\ny"), Ok(PtyIo::Done(3)));
        assert_eq!(read_all(&p, true), b"x\r\ny");
        p.close_end(false);
        let mut buf = [0u8; 4];
        assert_eq!(p.read_master(&mut buf), Err(Errno::EIO));
        p.close_end(true);
        p.open_end(false);
        assert_eq!(p.write_slave(b"z"), Err(Errno::EIO));
        assert_eq!(p.read_slave(&mut buf), PtyIo::Done(0), "hung up");
    }
}
