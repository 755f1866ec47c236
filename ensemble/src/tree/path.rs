//! Znode paths: ZooKeeper's validation rules ([`validate_path`]) and the storage key that
//! keeps the children of a znode next to each other in the tree's ordered map.
//!
//! It owns only string rules; whether a path exists is the [`Tree`](super::Tree)'s business.

use crate::{Error, Result};

/// Paths that exist from the start and can never be deleted (ZooKeeper's
/// `DataTree.isSpecialPath`).
pub const SPECIAL_PATHS: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];

/// Checks `path` with ZooKeeper's `PathUtils.validatePath(path, sequential)` rules.
///
/// A path is absolute, has no empty, `.` or `..` component, no trailing `/` (unless it is
/// the root), no NUL, and none of the characters ZooKeeper refuses: U+0001..=U+001F,
/// U+007F..=U+009F, U+D800..=U+F8FF, U+FFF0..=U+FFFF, and anything outside the Basic
/// Multilingual Plane (Java sees those as surrogates, which it refuses). For a sequential
/// create the path is only a prefix, so it is checked with a `1` appended, as ZooKeeper
/// does: `/jobs/` is a valid sequential prefix.
///
/// # Errors
///
/// [`Error::BadArguments`] naming the first problem found.
pub fn validate_path(path: &str, sequential: bool) -> Result<()> {
    check(path, sequential).map_err(|why| Error::BadArguments {
        reason: format!("invalid path {path:?}: {why}"),
    })
}

/// The rules of [`validate_path`], ported from ZooKeeper; `Err` carries the reason.
fn check(path: &str, sequential: bool) -> std::result::Result<(), String> {
    let mut chars: Vec<char> = path.chars().collect();
    if sequential {
        chars.push('1');
    }
    match chars.first() {
        None => return Err("path length must be > 0".into()),
        Some('/') => {}
        Some(_) => return Err("path must start with / character".into()),
    }
    if chars.len() == 1 {
        return Ok(());
    }
    if chars.last() == Some(&'/') {
        return Err("path must not end with / character".into());
    }
    let mut last = '/';
    for (i, &c) in chars.iter().enumerate().skip(1) {
        let ends_component = chars.get(i + 1).is_none_or(|&next| next == '/');
        if c == '\0' {
            return Err(format!("null character not allowed @{i}"));
        } else if c == '/' && last == '/' {
            return Err(format!("empty node name specified @{i}"));
        } else if c == '.' && last == '.' {
            if i >= 2 && chars[i - 2] == '/' && ends_component {
                return Err(format!("relative paths not allowed @{i}"));
            }
        } else if c == '.' {
            if last == '/' && ends_component {
                return Err(format!("relative paths not allowed @{i}"));
            }
        } else if is_refused_char(c) {
            return Err(format!("invalid character @{i}"));
        }
        last = c;
    }
    Ok(())
}

/// Characters ZooKeeper refuses in a path (besides NUL, which has its own message).
fn is_refused_char(c: char) -> bool {
    let u = u32::from(c);
    (0x01..=0x1F).contains(&u)
        || (0x7F..=0x9F).contains(&u)
        || (0xD800..=0xF8FF).contains(&u)
        || (0xFFF0..=0xFFFF).contains(&u)
        || u > 0xFFFF
}

/// Splits a path at its last `/` into (parent, name). The parent of a top-level znode is
/// `/`; `/` itself splits into (`/`, ``), which is what a sequential create under the root
/// needs. `None` if there is no `/` at all.
pub(super) fn split(path: &str) -> Option<(&str, &str)> {
    let i = path.rfind('/')?;
    let parent = if i == 0 { "/" } else { &path[..i] };
    Some((parent, &path[i + 1..]))
}

/// The storage key of `path`: the path with its last `/` replaced by NUL, and `""` for the
/// root. `/a` is `"\0a"` and `/a/b` is `"/a\0b"`.
///
/// Since names never contain NUL or `/`, every child of `/a` has a key starting with
/// [`child_prefix`]`("/a")` = `"/a\0"`, so children are one contiguous range of the map in
/// name order; deeper descendants are the range starting with `"/a/"`. The mapping is a
/// bijection on NUL-free paths, so a key built from a path nobody could create (invalid, or
/// holding a NUL) never finds another znode. `None` if `path` has no `/`.
pub(super) fn key(path: &str) -> Option<String> {
    if path == "/" {
        return Some(String::new());
    }
    let i = path.rfind('/')?;
    let mut key = String::with_capacity(path.len());
    key.push_str(&path[..i]);
    key.push('\0');
    key.push_str(&path[i + 1..]);
    Some(key)
}

/// The path a storage key was made from (inverse of [`key`]).
pub(super) fn path_of_key(key: &str) -> String {
    if key.is_empty() {
        "/".to_owned()
    } else {
        key.replace('\0', "/")
    }
}

/// The key prefix shared by all children of `path` (see [`key`]).
pub(super) fn child_prefix(path: &str) -> String {
    if path == "/" {
        "\0".to_owned()
    } else {
        format!("{path}\0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(path: &str) -> bool {
        validate_path(path, false).is_ok()
    }

    #[test]
    fn accepts_ordinary_paths() {
        for p in [
            "/",
            "/a",
            "/a/b",
            "/this is / a valid/path",
            "/name/with.period.",
            "/.a",
            "/a/..b",
            "/a/...",
            "/zookeeper",
        ] {
            assert!(valid(p), "{p}");
        }
        assert!(valid("/test\u{0020}"));
        assert!(valid("/test\u{007e}"));
        assert!(valid("/test\u{00a0}"));
        assert!(valid("/test\u{ffef}"));
        assert!(valid("/日本"));
    }

    #[test]
    fn refuses_what_zookeeper_refuses() {
        for p in [
            "",
            "a",
            "a/b",
            "/a/",
            "/a//b",
            "//",
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a/.",
            "/a/..",
            "/test\u{0000}",
            "/test\u{0001}",
            "/test\u{001f}",
            "/test\u{007f}",
            "/test\u{009f}",
            "/test\u{e000}",
            "/test\u{f8ff}",
            "/test\u{fff0}",
            "/test\u{ffff}",
            "/emoji\u{1f600}",
        ] {
            let err = validate_path(p, false).unwrap_err();
            assert!(matches!(err, Error::BadArguments { .. }), "{p:?}: {err:?}");
        }
    }

    #[test]
    fn sequential_prefix_is_checked_with_a_digit_appended() {
        assert!(validate_path("/jobs/", true).is_ok());
        assert!(validate_path("/", true).is_ok());
        assert!(validate_path("/a/.", true).is_ok());
        assert!(validate_path("/jobs/", false).is_err());
        assert!(validate_path("", true).is_err());
        assert!(validate_path("/a//", true).is_err());
        assert!(validate_path("a", true).is_err());
    }

    #[test]
    fn keys_round_trip_and_group_children() {
        for p in ["/", "/a", "/a/b", "/a/b/c", "/zookeeper/quota"] {
            let k = key(p).unwrap();
            assert_eq!(path_of_key(&k), p);
        }
        assert_eq!(key("/").unwrap(), "");
        assert_eq!(key("/a").unwrap(), "\0a");
        assert_eq!(key("/a/b").unwrap(), "/a\0b");
        assert!(key("a").is_none());
        assert!(key("/a/b").unwrap().starts_with(&child_prefix("/a")));
        assert!(key("/a").unwrap().starts_with(&child_prefix("/")));
        assert!(!key("/ab").unwrap().starts_with(&child_prefix("/a")));
        assert!(!key("/a/b/c").unwrap().starts_with(&child_prefix("/a")));
        assert!(!key("/").unwrap().starts_with(&child_prefix("/")));
    }

    #[test]
    fn split_gives_parent_and_name() {
        assert_eq!(split("/a"), Some(("/", "a")));
        assert_eq!(split("/a/b"), Some(("/a", "b")));
        assert_eq!(split("/a/"), Some(("/a", "")));
        assert_eq!(split("/"), Some(("/", "")));
        assert_eq!(split("a"), None);
    }
}
