use super::*;
use crate::inputs::kernelspec;
use crate::kernel::bzimage::tests::synthetic;

const RELEASE: &str = "6.1.0-50-cloud-amd64";

/// A kernel on disk in Debian's layout: vmlinuz, config and modules tree.
fn kernel_at(dir: &Path, config_line: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let vmlinuz = dir.join(format!("vmlinuz-{RELEASE}"));
    std::fs::write(&vmlinuz, synthetic(&format!("{RELEASE} (x) #1 SMP"))).unwrap();
    std::fs::write(
        dir.join(format!("config-{RELEASE}")),
        format!("# Linux/x86 6.1.176 Kernel Configuration\n{config_line}\n"),
    )
    .unwrap();
    let modules = dir.join("lib/modules").join(RELEASE);
    std::fs::create_dir_all(&modules).unwrap();
    vmlinuz
}

fn request(words: &[&str]) -> KernelRequest {
    KernelRequest {
        words: words.iter().map(|w| w.to_string()).collect(),
        fragments_dir: PathBuf::from("/k/fragments"),
        ..Default::default()
    }
}

fn spec_file(dir: &Path, name: &str, text: &str) -> KernelSpec {
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, text).unwrap();
    kernelspec::load(&p).unwrap()
}

#[test]
fn a_path_spec_is_matched_even_with_modules_and_config_given() {
    let d = tempfile::tempdir().unwrap();
    let vmlinuz = kernel_at(&d.path().join("k"), "CONFIG_DEBUG_INFO_BTF_MODULES=y");
    let other = d.path().join("other-config");
    std::fs::write(
        &other,
        "# Linux/x86 6.1.176 Kernel Configuration\nCONFIG_DEBUG_INFO_BTF_MODULES=n\n",
    )
    .unwrap();
    let spec = spec_file(
        d.path(),
        "mine",
        &format!(
            "about: x\nsource: {}\nmodules: k/lib/modules/{RELEASE}\nexpect:\n  config: {{CONFIG_DEBUG_INFO_BTF_MODULES: y}}\n",
            vmlinuz.display()
        ),
    );
    let mut req = request(&[vmlinuz.to_str().unwrap()]);
    req.config = Some(other.clone());
    let got = select(&req, &[spec]).unwrap();
    assert_eq!(got.len(), 1);
    // The spec's name and expectations stay; the config that boots is the
    // one given, so kernel-config compares the two and fails.
    assert_eq!(got[0].spec.name, "mine");
    assert_eq!(
        got[0].spec.expect.config["CONFIG_DEBUG_INFO_BTF_MODULES"],
        "y"
    );
    let image = got[0].resolved.as_ref().unwrap();
    assert_eq!(image.config.path, other);
    assert_eq!(
        image.config.parsed.get("CONFIG_DEBUG_INFO_BTF_MODULES"),
        "n"
    );
}

#[test]
fn a_spec_says_where_its_modules_and_config_are() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("k");
    let vmlinuz = kernel_at(&dir, "CONFIG_X=y");
    let cfg = dir.join("the-config");
    std::fs::rename(dir.join(format!("config-{RELEASE}")), &cfg).unwrap();
    let spec = spec_file(
        d.path(),
        "mine",
        &format!(
            "about: x\nsource: k/{}\nmodules: k/lib/modules/{RELEASE}\nconfig: k/the-config\n",
            vmlinuz.file_name().unwrap().to_str().unwrap()
        ),
    );
    let got = select(&request(&["mine"]), &[spec]).unwrap();
    let image = got[0].resolved.as_ref().unwrap();
    assert_eq!(image.config.path, cfg);
    assert_eq!(image.modules_dir, dir.join("lib/modules").join(RELEASE));
}

#[test]
fn modules_and_config_belong_to_the_path_form_only() {
    let d = tempfile::tempdir().unwrap();
    let vmlinuz = kernel_at(&d.path().join("k"), "CONFIG_X=y");
    let spec = spec_file(
        d.path(),
        "mine",
        &format!("about: x\nsource: {}\n", vmlinuz.display()),
    );
    let deb = spec_file(d.path(), "bookworm", "about: x\nsource: debian:bookworm\n");
    let specs = [spec, deb];
    for words in [&["mine"][..], &["debian:sid"], &["bookworm"]] {
        let mut req = request(words);
        req.modules = Some(d.path().join("k/lib/modules").join(RELEASE));
        let e = select(&req, &specs).unwrap_err();
        assert!(
            matches!(e, SelectError::OptionWithoutPath { .. }),
            "{words:?}: {e}"
        );
        assert!(
            e.to_string()
                .contains("--modules belongs to a kernel given by path"),
            "{e}"
        );
    }
    let mut req = request(&["mine"]);
    req.config = Some("/x".into());
    let e = select(&req, &specs).unwrap_err().to_string();
    assert!(e.contains("`modules:` and `config:` in"), "{e}");
}

#[test]
fn two_kernels_with_one_file_name_get_names_of_their_own() {
    let d = tempfile::tempdir().unwrap();
    let a = kernel_at(&d.path().join("a"), "CONFIG_X=y");
    let b = kernel_at(&d.path().join("b"), "CONFIG_X=y");
    let got = select(&request(&[a.to_str().unwrap(), b.to_str().unwrap()]), &[]).unwrap();
    let names: Vec<&str> = got.iter().map(|k| k.spec.name.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("a-vmlinuz-{RELEASE}"),
            format!("b-vmlinuz-{RELEASE}")
        ]
    );
    // The same file twice, even spelled differently, is one kernel.
    let again = d.path().join("a/../a").join(a.file_name().unwrap());
    let e = select(
        &request(&[a.to_str().unwrap(), again.to_str().unwrap()]),
        &[],
    )
    .unwrap_err();
    assert!(matches!(e, SelectError::Twice { .. }), "{e}");
    // --modules with two kernels on disk cannot say which one it is for.
    let mut req = request(&[a.to_str().unwrap(), b.to_str().unwrap()]);
    req.modules = Some("/m".into());
    assert!(matches!(
        select(&req, &[]),
        Err(SelectError::OptionAmbiguous { .. })
    ));
}

#[test]
fn defaults_words_and_duplicates() {
    let d = tempfile::tempdir().unwrap();
    let one = spec_file(
        d.path(),
        "one",
        "about: x\nsource: debian:bookworm\ndefault: true\n",
    );
    let two = spec_file(
        d.path(),
        "two",
        "about: x\nsource: debian:sid\ndefault: true\n",
    );
    let e = select(&request(&[]), &[one.clone(), two.clone()]).unwrap_err();
    assert!(e.to_string().contains("both say `default: true`"), "{e}");
    assert!(matches!(
        select(&request(&[]), &[]),
        Err(SelectError::NoDefault)
    ));
    let got = select(&request(&[]), std::slice::from_ref(&one)).unwrap();
    assert_eq!(got[0].spec.name, "one");
    // A word that names a spec's source runs under the spec's name, once.
    let got = select(&request(&["debian:sid"]), &[one.clone(), two.clone()]).unwrap();
    assert_eq!(got[0].spec.name, "two");
    let e = select(&request(&["two", "debian:sid"]), &[one, two]).unwrap_err();
    assert!(matches!(e, SelectError::Twice { .. }), "{e}");
    let e = select(&request(&["nonesuch"]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a kernel spec"), "{e}");
    let e = select(&request(&["fedora:40"]), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown kernel source"), "{e}");
}
