//! The strict BTF reader on arbitrary bytes: as base BTF, and as split BTF
//! over a small valid base. It must return an error, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = btfvm_btf::Btf::parse(data);
    if let Ok(base) = btfvm_btf::Btf::parse(&btfvm_btf::minimal_blob()) {
        let _ = btfvm_btf::check_split(data, &base);
        if let Ok(split) = btfvm_btf::Btf::parse_split(data, &base) {
            for t in split.types() {
                let _ = split.name_of(Some(&base), t.name_off);
                let _ = split.members(Some(&base), t).map(|m| m.count());
            }
        }
    }
});
