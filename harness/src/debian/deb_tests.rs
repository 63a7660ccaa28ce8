//! Tests of the .deb unpacker on packages built here, sound and broken.

use super::*;
use std::io::Cursor;

enum Item<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

fn tar_bytes(items: &[Item]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for item in items {
        let mut h = tar::Header::new_gnu();
        match item {
            Item::File(path, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_mode(*mode);
                set_raw_path(&mut h, path);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            Item::Dir(path) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                set_raw_path(&mut h, path);
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
            }
            Item::Symlink(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                set_raw_path(&mut h, path);
                h.set_link_name(target).unwrap();
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Writes the name field directly: tar::Header::set_path refuses `..` and
/// absolute paths, which is exactly what the hostile cases need.
fn set_raw_path(h: &mut tar::Header, path: &str) {
    let name = &mut h.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn ar_bytes(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = ar::Builder::new(Vec::new());
    for (name, data) in members {
        let h = ar::Header::new(name.as_bytes().to_vec(), data.len() as u64);
        b.append(&h, Cursor::new(data)).unwrap();
    }
    b.into_inner().unwrap()
}

fn deb_with(data_name: &str, data: Vec<u8>) -> Vec<u8> {
    let control = xz(&tar_bytes(&[Item::File(
        "./control",
        b"Package: test\n",
        0o644,
    )]));
    ar_bytes(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.xz", control),
        (data_name, data),
    ])
}

fn kernel_like_items() -> Vec<Item<'static>> {
    vec![
        Item::Dir("./"),
        Item::Dir("./boot/"),
        Item::File("./boot/vmlinuz-6.1.0-1-cloud-amd64", b"kernel", 0o644),
        Item::Dir("./lib/modules/6.1.0-1-cloud-amd64/kernel/fs/"),
        Item::File(
            "./lib/modules/6.1.0-1-cloud-amd64/kernel/fs/x.ko.xz",
            b"xz-module",
            0o644,
        ),
        Item::File("./usr/bin/tool", b"#!/bin/sh\n", 0o4755),
        Item::Symlink("./usr/share/doc/a", "b"),
        Item::Symlink("./lib/modules/6.1.0-1-cloud-amd64/build", "/usr/src/x"),
        Item::Symlink("./escape", "../../etc"),
    ]
}

fn write_deb(dir: &Path, bytes: &[u8]) -> PathBuf {
    let p = dir.join("t.deb");
    fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn extracts_xz_data() {
    let dir = tempfile::tempdir().unwrap();
    let deb = write_deb(
        dir.path(),
        &deb_with("data.tar.xz", xz(&tar_bytes(&kernel_like_items()))),
    );
    let root = dir.path().join("root");
    extract(&deb, &root).unwrap();
    assert_eq!(
        fs::read(root.join("boot/vmlinuz-6.1.0-1-cloud-amd64")).unwrap(),
        b"kernel"
    );
    // Compressed modules are kept as shipped.
    assert_eq!(
        fs::read(root.join("lib/modules/6.1.0-1-cloud-amd64/kernel/fs/x.ko.xz")).unwrap(),
        b"xz-module"
    );
    let mode = fs::metadata(root.join("usr/bin/tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755, "setuid is dropped, exec kept");
    assert_eq!(
        fs::read_link(root.join("usr/share/doc/a")).unwrap(),
        Path::new("b")
    );
    // Links leaving the tree are dropped rather than created.
    assert!(fs::symlink_metadata(root.join("lib/modules/6.1.0-1-cloud-amd64/build")).is_err());
    assert!(fs::symlink_metadata(root.join("escape")).is_err());
}

#[test]
fn extracts_zstd_gzip_and_plain_data() {
    let data = tar_bytes(&[Item::File("./f", b"hello", 0o644)]);
    let zst = zstd::stream::encode_all(Cursor::new(&data), 3).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    let gz = gz.finish().unwrap();
    for (name, bytes) in [
        ("data.tar.zst", zst),
        ("data.tar.gz", gz),
        ("data.tar", data.clone()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let deb = write_deb(dir.path(), &deb_with(name, bytes));
        extract(&deb, &dir.path().join("r")).unwrap();
        assert_eq!(
            fs::read(dir.path().join("r/f")).unwrap(),
            b"hello",
            "{name}"
        );
    }
}

#[test]
fn several_packages_share_a_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let a = tar_bytes(&[Item::Dir("./usr/"), Item::File("./usr/a", b"a", 0o644)]);
    let b = tar_bytes(&[Item::Dir("./usr/"), Item::File("./usr/b", b"b", 0o644)]);
    extract(
        &write_deb(dir.path(), &deb_with("data.tar.xz", xz(&a))),
        &root,
    )
    .unwrap();
    extract(
        &write_deb(dir.path(), &deb_with("data.tar.xz", xz(&b))),
        &root,
    )
    .unwrap();
    assert!(root.join("usr/a").is_file() && root.join("usr/b").is_file());
}

#[test]
fn rejects_non_ar() {
    let dir = tempfile::tempdir().unwrap();
    let deb = write_deb(dir.path(), b"PK\x03\x04 definitely a zip");
    assert!(matches!(
        extract(&deb, dir.path()),
        Err(DebError::NotAr { .. })
    ));
    let empty = write_deb(dir.path(), b"");
    assert!(matches!(
        extract(&empty, dir.path()),
        Err(DebError::NotAr { .. })
    ));
}

#[test]
fn rejects_missing_data_member() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = ar_bytes(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.xz", xz(&tar_bytes(&[]))),
    ]);
    let err = extract(&write_deb(dir.path(), &bytes), dir.path()).unwrap_err();
    match &err {
        DebError::NoDataTar { members, .. } => {
            assert_eq!(members, &["debian-binary", "control.tar.xz"])
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("t.deb"), "{err}");
}

#[test]
fn rejects_other_ar_archives() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = ar_bytes(&[("foo.o", b"\x7fELF".to_vec())]);
    let err = extract(&write_deb(dir.path(), &bytes), dir.path()).unwrap_err();
    assert!(matches!(err, DebError::NotBinaryPackage { .. }), "{err}");
    let bytes = ar_bytes(&[("debian-binary", b"3.0\n".to_vec())]);
    let err = extract(&write_deb(dir.path(), &bytes), dir.path()).unwrap_err();
    assert!(matches!(err, DebError::NotBinaryPackage { .. }), "{err}");
}

#[test]
fn rejects_unknown_compression() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = deb_with("data.tar.lz4", vec![1, 2, 3]);
    let err = extract(&write_deb(dir.path(), &bytes), dir.path()).unwrap_err();
    assert!(
        matches!(&err, DebError::UnknownCompression { member, .. } if member == "data.tar.lz4")
    );
}

#[test]
fn reports_corrupt_compression() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = xz(&tar_bytes(&kernel_like_items()));
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    data[mid + 1] ^= 0xff;
    let err = extract(
        &write_deb(dir.path(), &deb_with("data.tar.xz", data)),
        &dir.path().join("r"),
    )
    .unwrap_err();
    assert!(
        matches!(&err, DebError::Corrupt { member, .. } if member == "data.tar.xz"),
        "{err:?}"
    );
}

#[test]
fn reports_truncated_package() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let data = xz(&tar_bytes(&[Item::File("./big", &big, 0o644)]));
    let mut bytes = deb_with("data.tar.xz", data);
    bytes.truncate(bytes.len() - 100);
    let err = extract(&write_deb(dir.path(), &bytes), &dir.path().join("r")).unwrap_err();
    assert!(matches!(err, DebError::Corrupt { .. }), "{err:?}");
}

#[test]
fn refuses_escaping_paths() {
    for (items, reason) in [
        (vec![Item::File("../evil", b"x", 0o644)], "path contains .."),
        (vec![Item::File("/etc/evil", b"x", 0o644)], "absolute path"),
        (
            vec![
                Item::Symlink("./link", "sub"),
                Item::Dir("./sub/"),
                Item::File("./link/f", b"x", 0o644),
            ],
            "path goes through a symlink",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let deb = write_deb(dir.path(), &deb_with("data.tar.xz", xz(&tar_bytes(&items))));
        let err = extract(&deb, &dir.path().join("r")).unwrap_err();
        assert!(
            matches!(&err, DebError::UnsafeEntry { reason: r, .. } if *r == reason),
            "{err:?}"
        );
    }
}

#[test]
fn does_not_write_through_planted_symlink_file() {
    // A symlink first, then a regular file of the same name: the file must
    // replace the link, not overwrite what it points to.
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("r")).unwrap();
    fs::write(dir.path().join("r/victim"), b"safe").unwrap();
    let items = [
        Item::Symlink("./f", "victim"),
        Item::File("./f", b"new", 0o644),
    ];
    let deb = write_deb(dir.path(), &deb_with("data.tar.xz", xz(&tar_bytes(&items))));
    extract(&deb, &dir.path().join("r")).unwrap();
    assert_eq!(fs::read(dir.path().join("r/victim")).unwrap(), b"safe");
    assert_eq!(fs::read(dir.path().join("r/f")).unwrap(), b"new");
}

#[test]
fn lexical_containment() {
    assert!(stays_inside(Path::new("a/b/link"), Path::new("../c")));
    assert!(stays_inside(Path::new("a/link"), Path::new("../c")));
    assert!(!stays_inside(Path::new("link"), Path::new("../c")));
    assert!(!stays_inside(Path::new("a/link"), Path::new("/c")));
}

#[test]
fn extraction_gives_way_to_a_stop_between_two_reads() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![b'm'; 128 << 10];
    let names: Vec<String> = (0..8).map(|i| format!("./lib/m{i}.ko")).collect();
    let items: Vec<Item> = names
        .iter()
        .map(|n| Item::File(n, &big[..], 0o644))
        .collect();
    let deb = write_deb(dir.path(), &deb_with("data.tar.xz", xz(&tar_bytes(&items))));
    let asked = std::cell::Cell::new(0);
    let stop = || {
        asked.set(asked.get() + 1);
        (asked.get() > 10).then_some(libc::SIGINT)
    };
    let root = dir.path().join("root");
    let r = extract_until(&deb, &root, &stop);
    assert!(
        matches!(r, Err(DebError::Interrupted(Interrupted { signal: 2 }))),
        "{r:?}"
    );
    let written = fs::read_dir(root.join("lib"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        written < 8,
        "stopped after the request, not at the end: {written}"
    );
    assert_eq!(
        DebError::Interrupted(Interrupted { signal: 2 }).class(),
        crate::support::ErrorClass::Interrupted(2)
    );
    extract_until(
        &deb,
        &dir.path().join("whole"),
        &crate::support::stop::never,
    )
    .unwrap();
}
