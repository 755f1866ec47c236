//! The inode table: which inode number stands for which znode path on this host.
//!
//! Numbers are local to the mount and stable for a znode's lifetime: an inode remembers
//! the czxid of the znode it was given for, so a path deleted and created again gets a
//! new number. A rename moves the numbers of the whole subtree to the new paths. The
//! kernel's lookup count is tracked so that the echo thread can tell which directories
//! the kernel knows (only those can have inotify watchers or cached entries).

use std::collections::HashMap;

/// The root's inode number.
pub const ROOT: u64 = 1;

/// czxid of an inode whose znode is not committed yet (a new file before its first close).
pub const PENDING: i64 = i64::MIN;

/// What an inode number stands for.
#[derive(Debug, Clone)]
pub struct Inode {
    /// The znode's path.
    pub path: String,
    /// czxid of the znode it was given for ([`PENDING`] before it is committed).
    pub czxid: i64,
    /// Lookups the kernel holds (the root is never forgotten).
    pub lookups: u64,
    /// Whether the kernel was last told it is a directory.
    pub is_dir: bool,
}

/// Inode numbers by path and paths by inode number.
#[derive(Debug)]
pub struct InodeTable {
    by_ino: HashMap<u64, Inode>,
    by_path: HashMap<String, u64>,
    next: u64,
}

impl Default for InodeTable {
    fn default() -> Self {
        let mut table = InodeTable {
            by_ino: HashMap::new(),
            by_path: HashMap::new(),
            next: ROOT + 1,
        };
        table.by_ino.insert(
            ROOT,
            Inode {
                path: "/".into(),
                czxid: 0,
                lookups: 1,
                is_dir: true,
            },
        );
        table.by_path.insert("/".into(), ROOT);
        table
    }
}

impl InodeTable {
    /// The inode for `path` as of czxid `czxid`, created if needed, counting one kernel
    /// lookup of it.
    pub fn get_or_insert(&mut self, path: &str, czxid: i64, is_dir: bool) -> u64 {
        if let Some(&ino) = self.by_path.get(path) {
            if let Some(inode) = self.by_ino.get_mut(&ino) {
                if inode.czxid == czxid || inode.czxid == PENDING || ino == ROOT {
                    inode.czxid = if ino == ROOT { 0 } else { czxid };
                    inode.is_dir = is_dir;
                    inode.lookups += 1;
                    return ino;
                }
            }
        }
        let ino = self.next;
        self.next += 1;
        self.by_ino.insert(
            ino,
            Inode {
                path: path.to_owned(),
                czxid,
                lookups: 1,
                is_dir,
            },
        );
        self.by_path.insert(path.to_owned(), ino);
        ino
    }

    /// What `ino` stands for.
    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.by_ino.get(&ino)
    }

    /// The inode currently given for `path`.
    pub fn ino_of(&self, path: &str) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    /// The inode of `path` if the kernel holds it (looked up and not forgotten).
    pub fn known(&self, path: &str) -> Option<u64> {
        let ino = self.ino_of(path)?;
        self.by_ino
            .get(&ino)
            .filter(|inode| inode.lookups > 0)
            .map(|_| ino)
    }

    /// The kernel forgot `n` lookups of `ino`.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let Some(inode) = self.by_ino.get_mut(&ino) else {
            return;
        };
        inode.lookups = inode.lookups.saturating_sub(n);
        if inode.lookups == 0 {
            if let Some(inode) = self.by_ino.remove(&ino) {
                if self.by_path.get(&inode.path) == Some(&ino) {
                    self.by_path.remove(&inode.path);
                }
            }
        }
    }

    /// Moves the inodes of `from` and everything under it to `to`. Whatever `to` stood
    /// for before loses its path (the kernel may still hold it, as a deleted file).
    pub fn rename(&mut self, from: &str, to: &str) {
        if from == to {
            return;
        }
        let below = format!("{from}/");
        let moved: Vec<(String, u64)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.as_str() == from || p.starts_with(&below))
            .map(|(p, &ino)| (p.clone(), ino))
            .collect();
        let target_below = format!("{to}/");
        self.by_path
            .retain(|p, _| p.as_str() != to && !p.starts_with(&target_below));
        for (old, _) in &moved {
            self.by_path.remove(old);
        }
        for (old, ino) in moved {
            let new = format!("{to}{}", &old[from.len()..]);
            if let Some(inode) = self.by_ino.get_mut(&ino) {
                inode.path.clone_from(&new);
            }
            self.by_path.insert(new, ino);
        }
    }

    /// Counts a kernel lookup of whatever inode `path` has now, whatever its czxid.
    pub fn lookup_existing(&mut self, path: &str) -> Option<u64> {
        let ino = self.ino_of(path)?;
        let inode = self.by_ino.get_mut(&ino)?;
        inode.lookups += 1;
        Some(ino)
    }

    /// Gives `ino` (a pending inode just committed) its znode's real path and czxid.
    pub fn assign(&mut self, ino: u64, path: &str, czxid: i64) {
        let Some(inode) = self.by_ino.get_mut(&ino) else {
            return;
        };
        let old = std::mem::replace(&mut inode.path, path.to_owned());
        inode.czxid = czxid;
        if self.by_path.get(&old) == Some(&ino) {
            self.by_path.remove(&old);
        }
        self.by_path.insert(path.to_owned(), ino);
    }

    /// Every inode the kernel holds, with its path.
    pub fn all_known(&self) -> Vec<(u64, String)> {
        self.by_ino
            .iter()
            .filter(|(_, i)| i.lookups > 0)
            .map(|(&ino, i)| (ino, i.path.clone()))
            .collect()
    }

    /// Forgets the path of a deleted znode (the number stays while the kernel holds it).
    pub fn unlink(&mut self, path: &str) {
        self.by_path.remove(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable_per_znode_and_new_per_recreate() {
        let mut t = InodeTable::default();
        let a = t.get_or_insert("/a", 5, false);
        assert_eq!(t.get_or_insert("/a", 5, false), a);
        let b = t.get_or_insert("/a", 9, false);
        assert_ne!(a, b);
        assert_eq!(t.known("/a"), Some(b));
    }

    #[test]
    fn rename_moves_a_subtree_and_forget_drops() {
        let mut t = InodeTable::default();
        let d = t.get_or_insert("/d", 1, true);
        let f = t.get_or_insert("/d/f", 2, false);
        t.rename("/d", "/e");
        assert_eq!(t.ino_of("/e"), Some(d));
        assert_eq!(t.ino_of("/e/f"), Some(f));
        assert_eq!(t.ino_of("/d/f"), None);
        assert_eq!(t.get(f).map(|i| i.path.as_str()), Some("/e/f"));
        t.forget(f, 1);
        assert!(t.get(f).is_none() && t.ino_of("/e/f").is_none());
    }
}
