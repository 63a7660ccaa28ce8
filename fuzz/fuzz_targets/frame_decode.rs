//! The host's decoder of guest messages on arbitrary bytes, fed in chunks
//! whose sizes come from the input too (a serial line splits anywhere).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut d = btfvm_proto::Decoder::new();
    for chunk in rest.chunks(step) {
        d.push(chunk);
        loop {
            match d.next_message() {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = d.finish();
});
