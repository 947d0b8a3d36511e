//! lvs-l7's chunked-body reader and re-encoder. The first byte says where to cut the rest in
//! two: reading in two pieces must find the same end and forward the same data as reading in
//! one (bytes arrive in any pieces).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_l7::fuzzing::scan_chunked;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let whole = scan_chunked(&[body]);
    if let Ok((used, _, _)) = &whole {
        assert!(used[0] <= body.len());
    }
    let (a, b) = body.split_at(usize::from(cut).min(body.len()));
    let pieces = scan_chunked(&[a, b]);
    match (&whole, &pieces) {
        (Ok((w, wdone, wout)), Ok((p, pdone, pout))) => {
            assert_eq!(wdone, pdone, "the end depends on how the bytes were cut");
            if *wdone {
                assert_eq!(
                    lvs_l7::fuzzing::chunked_data(wout),
                    lvs_l7::fuzzing::chunked_data(pout),
                    "the forwarded data depends on the cut"
                );
            }
            assert_eq!(
                w[0],
                p.iter().sum::<usize>(),
                "body length depends on the cut"
            );
        }
        // An error may come later in one piece than in the other only if the body ended.
        (Err(()), Err(())) => {}
        _ => panic!("whole {whole:?} vs in two pieces {pieces:?}"),
    }
});
