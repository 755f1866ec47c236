//! The FUSE view of a quorumfs replica (arrives with the mount issue).
