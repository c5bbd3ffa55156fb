//! One module per group of verbs (as youki's liboci-cli): each verb is a
//! thin function over `container` (the state directory) and `control`
//! (the sandbox process's socket).

pub mod create;
pub mod do_cmd;
pub mod info;
pub mod lifecycle;
pub mod tty;
