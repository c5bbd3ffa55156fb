//! Architecture support. Only x86-64 (PVM flavour) exists today.
pub mod x86_64;
