//! A corrupt data directory is refused: `fsd run` exits non-zero with a message on stderr that
//! names the damaged file (or a directory under `--data` that holds it), and does not "repair"
//! it by truncation.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::*;

/// The largest regular file under `dir`, recursively.
fn largest_file(dir: &Path) -> Option<(PathBuf, u64)> {
    let mut best: Option<(PathBuf, u64)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).ok()?.flatten() {
            let meta = entry.metadata().ok()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && best.as_ref().is_none_or(|(_, len)| meta.len() > *len) {
                best = Some((entry.path(), meta.len()));
            }
        }
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_data_file_is_refused_with_its_path() {
    let mut cluster = Cluster::start(1);
    {
        let c = zk_connect(&cluster.node(1).client_addr()).await;
        c.create("/fill", b"", &persistent())
            .await
            .expect("create /fill");
        let data = vec![b'z'; 1024];
        for chunk in (0..600).collect::<Vec<_>>().chunks(32) {
            let results = futures::future::join_all(chunk.iter().map(|i| {
                let path = format!("/fill/n{i:04}");
                let c = &c;
                let data = &data;
                async move { c.create(&path, data, &persistent()).await.map(|_| ()) }
            }))
            .await;
            for r in results {
                r.expect("create under /fill");
            }
        }
    }
    let node = cluster.node_mut(1);
    let status = node.stop();
    assert!(
        status.success(),
        "SIGTERM should exit 0, got {}",
        describe_exit(&status)
    );

    let data_dir = node.data_dir();
    let store = data_dir.join("store");
    let search = if store.is_dir() {
        store.clone()
    } else {
        data_dir.clone()
    };
    let (file, len) =
        largest_file(&search).unwrap_or_else(|| panic!("no files under {}", search.display()));
    assert!(len > 0, "largest file {} is empty", file.display());
    // Overwrite the middle with garbage.
    let n = (len / 2).clamp(1, 64 * 1024);
    let offset = len / 2 - n / 2;
    {
        let mut f = open_rw(&file);
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(&Garbage::new(0xbad_da7a).bytes(n as usize))
            .unwrap();
        f.sync_all().unwrap();
    }
    println!(
        "corrupted {n} bytes at offset {offset} of {} ({len} bytes)",
        file.display()
    );

    // Start it again on the corrupt directory: it must exit non-zero, not serve.
    let mut cmd = node.run_command();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "info");
    set_parent_death_signal(&mut cmd);
    let mut child = ChildGuard(Some(cmd.spawn().expect("spawn fsd run")));
    let mut stderr_pipe = child.0.as_mut().unwrap().stderr.take().unwrap();
    let stderr_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.as_mut().unwrap().try_wait().expect("try_wait") {
            child.0 = None;
            break status;
        }
        if node.healthy() {
            child.kill9();
            panic!(
                "fsd started serving on a corrupt data directory; stderr:\n{}",
                stderr_reader.join().unwrap()
            );
        }
        if Instant::now() >= deadline {
            child.kill9();
            panic!(
                "fsd neither exited nor served within 60 s on a corrupt data directory; stderr:\n{}",
                stderr_reader.join().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stderr = stderr_reader.join().unwrap();
    println!(
        "fsd run on the corrupt directory: {}; stderr:\n{stderr}",
        describe_exit(&status)
    );
    assert!(
        !status.success(),
        "fsd run must refuse a corrupt data directory"
    );
    assert!(
        status.code().is_some(),
        "it should exit, not die by a signal: {status}"
    );

    // The message names the file, or a directory under --data that contains it.
    let mut names: Vec<PathBuf> = Vec::new();
    let mut p = Some(file.as_path());
    while let Some(q) = p {
        if q == data_dir.as_path() {
            break;
        }
        names.push(q.to_path_buf());
        if let Ok(c) = q.canonicalize() {
            names.push(c);
        }
        p = q.parent();
    }
    assert!(
        names.iter().any(|n| stderr.contains(&*n.to_string_lossy())),
        "stderr should name {} or a directory under {} that holds it; stderr:\n{stderr}",
        file.display(),
        data_dir.display()
    );
    // Refused, not repaired by truncation.
    let after = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    assert!(
        after >= len,
        "{} shrank from {len} to {after} bytes",
        file.display()
    );
}
