//! The cache lock: concurrent misses for one URL make one origin request.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use crate::support::origin::Reply;
use crate::support::{Behaviour, Origin, Response};

use super::{cached, get, start, x_cache, SMALL_CACHE};

#[test]
fn fifty_concurrent_misses_make_one_origin_request() {
    let o = Origin::start(
        "o",
        Behaviour::default()
            .delay(Duration::from_millis(400))
            .respond_with(|_| {
                Reply::new(200)
                    .header("Cache-Control", "max-age=600")
                    .body("shared body")
            }),
    );
    let s = Arc::new(start(SMALL_CACHE, &[cached("herd.test", &o)], None));
    let gate = Arc::new(Barrier::new(50));
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let s = s.clone();
            let gate = gate.clone();
            thread::spawn(move || {
                gate.wait();
                get(&s, "herd.test", "/hot")
            })
        })
        .collect();
    let responses: Vec<Response> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(
        o.hits_path("/hot"),
        1,
        "the cache lock collapses the misses"
    );
    for r in &responses {
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "shared body");
    }
    let misses = responses
        .iter()
        .filter(|r| r.header("x-cache") == Some("MISS"))
        .count();
    assert_eq!(
        misses,
        1,
        "{:?}",
        responses.iter().map(x_cache).collect::<Vec<_>>()
    );
}
