//! Container id validation.

use crate::SpecError;

/// Longest container id accepted, in bytes (runc's limit).
pub const MAX_CONTAINER_ID_LEN: usize = 1024;

/// Checks a container id against runc's rule: non-empty, at most
/// [`MAX_CONTAINER_ID_LEN`] bytes, only ASCII letters, digits and `_ + - .`
/// (the regex `^[\w+\-.]+$` with Go's ASCII `\w`), and neither `.` nor `..`.
///
/// Ids become directory names under the state root, so this also keeps
/// them free of `/`, NUL and path traversal.
pub fn validate_container_id(id: &str) -> Result<(), SpecError> {
    let reject = |reason| {
        Err(SpecError::InvalidContainerId {
            id: id.to_owned(),
            reason,
        })
    };
    if id.is_empty() {
        return reject("must not be empty");
    }
    if id.len() > MAX_CONTAINER_ID_LEN {
        return reject("longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        return reject("\".\" and \"..\" are not allowed");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.');
    if !id.bytes().all(allowed) {
        return reject("only ASCII letters, digits and '_', '+', '-', '.' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_ids() {
        let long = "a".repeat(MAX_CONTAINER_ID_LEN);
        for id in [
            "a",
            "abc",
            "my-container_1",
            "a.b+c-d_e",
            "...",
            ".hidden",
            "0123456789",
            "UPPER",
            &long,
        ] {
            assert!(validate_container_id(id).is_ok(), "{id:?} should be valid");
        }
    }

    #[test]
    fn bad_ids() {
        let too_long = "a".repeat(MAX_CONTAINER_ID_LEN + 1);
        for id in [
            "", ".", "..", "a/b", "../x", "a b", "a\0b", "a\nb", "é", "a:b", "a*", &too_long,
        ] {
            assert!(
                validate_container_id(id).is_err(),
                "{id:?} should be invalid"
            );
        }
    }

    #[test]
    fn messages() {
        let msg = validate_container_id("a/b").unwrap_err().to_string();
        assert!(msg.starts_with("invalid container id \"a/b\": "), "{msg}");
        let msg = validate_container_id("").unwrap_err().to_string();
        assert_eq!(msg, "invalid container id \"\": must not be empty");
        let msg = validate_container_id("..").unwrap_err().to_string();
        assert!(msg.contains("\"..\""), "{msg}");
        // A huge id is cut short in the message.
        let msg = validate_container_id(&"x".repeat(5000))
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.contains("5000 bytes"), "{msg}");
    }
}
