//! The strict segment reader on arbitrary bytes: every input must give a
//! value or an error, never a panic, an abort or a huge allocation.
//! The first byte picks the structure; the rest is its bytes.
#![no_main]

use kinesis_peon::segment::reader::{read_bitmaps, read_column, read_index_drd};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let _ = read_column("fuzzed", bytes);
        }
        1 => {
            let _ = read_index_drd(bytes);
        }
        _ => {
            let _ = read_bitmaps("fuzzed", bytes);
        }
    }
});
