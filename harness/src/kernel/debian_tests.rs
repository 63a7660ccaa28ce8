//! Tests of resolution bookkeeping and layout detection on synthetic trees;
//! the real fetch is an ignored test (it needs a reachable mirror).

use super::*;
use crate::kernel::bzimage::tests::synthetic;
use crate::support::cache::Cache;
use std::fs;

fn res(names: &[(&str, &str)]) -> Resolution {
    Resolution {
        packages: names
            .iter()
            .map(|(n, v)| Pinned {
                name: n.to_string(),
                version: v.to_string(),
            })
            .collect(),
    }
}

fn put(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

#[test]
fn names() {
    assert!(is_versioned_image("linux-image-6.1.0-28-cloud-amd64"));
    assert!(is_versioned_image("linux-image-7.2.13+deb14-cloud-amd64"));
    assert!(!is_versioned_image("linux-image-cloud-amd64"));
    assert!(!is_versioned_image("linux-image-6.1.0-28-cloud-amd64-dbg"));
    assert_eq!(
        release_of("linux-image-6.1.0-28-cloud-amd64-unsigned"),
        "6.1.0-28-cloud-amd64"
    );
}

#[test]
fn memo_round_trip_and_staleness() {
    let r = res(&[
        ("linux-image-7.2.13+deb14-cloud-amd64", "7.2.13-1"),
        ("linux-base-7.2.13+deb14-cloud-amd64", "7.2.13-1"),
    ]);
    // The lists' generation is the suite's business (Suite::memo).
    let text = r.to_memo();
    assert_eq!(Resolution::from_memo(&text), Some(r));
    assert_eq!(Resolution::from_memo(""), None);
    assert_eq!(Resolution::from_memo("broken\n"), None);
}

#[test]
fn cache_key_escapes_epochs() {
    let r = res(&[("linux-image-6.1.0-1-cloud-amd64", "1:6.1.1-1")]);
    assert_eq!(r.cache_key(), "linux-image-6.1.0-1-cloud-amd64_1%3a6.1.1-1");
}

#[test]
fn locates_boot_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let k = "6.1.0-28-cloud-amd64";
    put(
        root,
        &format!("boot/vmlinuz-{k}"),
        &synthetic(&format!("{k} (x) #1 SMP")),
    );
    put(root, &format!("boot/config-{k}"), b"CONFIG_X=y\n");
    put(root, &format!("lib/modules/{k}/kernel/fs/a.ko"), b"");
    let img = locate(root, &res(&[(&format!("linux-image-{k}"), "6.1.119-1")])).unwrap();
    assert_eq!(img.vmlinuz, root.join(format!("boot/vmlinuz-{k}")));
    assert_eq!(img.config, root.join(format!("boot/config-{k}")));
    assert_eq!(img.modules_dir, root.join(format!("lib/modules/{k}")));
    assert_eq!(img.release, k);
}

#[test]
fn locates_usr_lib_modules_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let k = "7.2.13+deb14-cloud-amd64";
    let m = format!("usr/lib/modules/{k}");
    put(
        root,
        &format!("{m}/vmlinuz"),
        &synthetic(&format!("{k} (x) #1 SMP")),
    );
    put(root, &format!("{m}/config"), b"CONFIG_X=y\n");
    put(root, &format!("{m}/kernel/fs/a.ko.xz"), b"");
    let img = locate(root, &res(&[(&format!("linux-image-{k}"), "7.2.13-1")])).unwrap();
    assert_eq!(img.vmlinuz, root.join(format!("{m}/vmlinuz")));
    assert_eq!(img.config, root.join(format!("{m}/config")));
    assert_eq!(img.modules_dir, root.join(&m));
}

#[test]
fn missing_files_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let k = "6.12.1-cloud-amd64";
    put(root, &format!("lib/modules/{k}/kernel/a.ko"), b"");
    put(root, &format!("boot/config-{k}"), b"");
    put(root, "usr/share/doc/x/changelog.gz", b"");
    let err = locate(root, &res(&[(&format!("linux-image-{k}"), "1")])).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            FetchError::MissingFile {
                what: "vmlinuz",
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains(&format!("boot/config-{k}")), "{msg}");
    assert!(!msg.contains("a.ko"), "module trees are not listed: {msg}");
}

#[test]
fn release_mismatch_and_non_kernels_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let k = "6.12.1-cloud-amd64";
    put(root, &format!("lib/modules/{k}/kernel/a.ko"), b"");
    put(root, &format!("boot/config-{k}"), b"");
    put(
        root,
        &format!("boot/vmlinuz-{k}"),
        &synthetic("6.12.2-cloud-amd64 (x)"),
    );
    let r = res(&[(&format!("linux-image-{k}"), "1")]);
    assert!(matches!(
        locate(root, &r),
        Err(FetchError::ReleaseMismatch { .. })
    ));
    put(
        root,
        &format!("boot/vmlinuz-{k}"),
        b"\x7fELF not a bzImage at all",
    );
    assert!(matches!(locate(root, &r), Err(FetchError::BzImage { .. })));
}

/// Real fetch through apt: `BTFVM_DEBIAN_SUITE=bookworm cargo test -- --ignored`.
#[test]
#[ignore = "downloads a kernel from the Debian archive"]
fn fetches_a_real_kernel() {
    let suite = std::env::var("BTFVM_DEBIAN_SUITE").unwrap_or_else(|_| "bookworm".into());
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path().to_path_buf());
    let req = DebianKernel {
        suite,
        package: None,
    };
    let mirror = std::env::var("BTFVM_DEBIAN_MIRROR").ok();
    let mut events = Vec::new();
    let img = fetch(&req, &cache, mirror.as_deref(), &mut |e| events.push(e)).unwrap();
    assert!(img.vmlinuz.is_file() && img.config.path.is_file() && img.modules_dir.is_dir());
    assert!(matches!(events[0], FetchEvent::UpdatingIndex { .. }));

    let mut again = Vec::new();
    let img2 = fetch(&req, &cache, mirror.as_deref(), &mut |e| again.push(e)).unwrap();
    assert_eq!(img.vmlinuz, img2.vmlinuz);
    assert!(
        matches!(again.as_slice(), [FetchEvent::Cached { .. }]),
        "{again:?}"
    );
}
